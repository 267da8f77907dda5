"""Checkpoints of models on tiles: a safetensors file of tensors and a JSON file of configs.

:func:`save_checkpoint` writes two files side by side:

- ``<path>`` (safetensors): the model's ``state_dict``, the programmed devices of every
  crossbar layer included (conductances, write counts, stuck cells, device parameters, ADC
  ranges, the read time); and, per crossbar layer, the state of its private generator and the
  tiles' cached read at the current time (drifted conductances and that time's read-noise
  realisation), so that the loaded model continues exactly where the saved one was.
- ``<path>.json``: the memcim and torch versions and every crossbar layer's
  :class:`~memcim.nn.CIMConfig` (device, mapping, converters, tile size, seed), flattened to
  ``"tile.adc.bits": 8``-style entries.

:func:`load_checkpoint` loads both into a model of the same architecture. The configs are
compared first: a layer whose config differs from the saved one is an error naming the layer
and the field with both values; the checkpoint never overrides a config silently. Safetensors
holds tensors only and never runs code on load. ``model.state_dict()`` still saves with
``torch.save`` and loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from memcim._errors import ConfigError, require
from memcim.nn.layers import CIMLayer

_EXTRA = "_extra_state"
_GENERATOR = "__generator__"
_CACHE = "__read_cache__"


def _json_value(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, Tensor):
        return value.tolist()
    return value


def flat_config(config: object, prefix: str = "") -> dict[str, object]:
    """A (nested) config dataclass as ``{"tile.device.g_max_us": 25.0, ...}``; a nested
    dataclass also records its class (``"tile.device": "PCM"``)."""
    out: dict[str, object] = {}
    for field in dataclasses.fields(config):
        value, key = getattr(config, field.name), prefix + field.name
        if dataclasses.is_dataclass(value):
            out[key] = type(value).__name__
            out.update(flat_config(value, key + "."))
        else:
            out[key] = _json_value(value)
    return out


def _layer_config(layer: CIMLayer) -> dict[str, object]:
    return {"class": type(layer).__name__, **flat_config(layer.cim_config)}


def _crossbar_layers(model: nn.Module) -> dict[str, CIMLayer]:
    return {name: m for name, m in model.named_modules() if isinstance(m, CIMLayer)}


def _flatten_state(state: dict) -> dict[str, Tensor]:
    """``state_dict`` with every layer's extra state (a dict) spread into tensor entries."""
    out = {}
    for key, value in state.items():
        if key.endswith(_EXTRA):
            out[f"{key}.t_s"] = torch.tensor(value["t_s"], dtype=torch.float64)
            out.update({f"{key}.tiles.{k}": v for k, v in value["tiles"].items()})
        else:
            out[key] = value
    return out


def _unflatten_state(tensors: dict[str, Tensor], extra_keys: list[str]) -> dict:
    state = {k: v for k, v in tensors.items() if _EXTRA not in k and "__" not in k}
    for key in extra_keys:
        tiles = {k.removeprefix(f"{key}.tiles."): v for k, v in tensors.items()
                 if k.startswith(f"{key}.tiles.")}  # fmt: skip
        state[key] = {"t_s": float(tensors[f"{key}.t_s"]), "tiles": tiles}
    return state


def _programmed_tiles(layer: CIMLayer):
    """((row, col), tile) of a layer whose tiles hold its weights; none otherwise."""
    if not layer.tiles_current():
        return
    for i, row in enumerate(layer.matrix.tiles):
        for j, tile in enumerate(row):
            yield (i, j), tile


def _runtime_state(layers: dict[str, CIMLayer]) -> dict[str, Tensor]:
    """Each layer's generator state and its tiles' cached reads."""
    out = {}
    for name, layer in layers.items():
        out[f"{name}.{_GENERATOR}"] = layer.generator.get_state()
        for (i, j), tile in _programmed_tiles(layer):
            cached = tile.read_cache_tensors()
            out.update({f"{name}.{_CACHE}.{i}.{j}.{k}": v for k, v in cached.items()})
    return out


def _restore_runtime_state(layers: dict[str, CIMLayer], tensors: dict[str, Tensor]) -> None:
    for name, layer in layers.items():
        layer.generator.set_state(tensors[f"{name}.{_GENERATOR}"])
        for (i, j), tile in _programmed_tiles(layer):
            where = f"{name}.{_CACHE}.{i}.{j}."
            tile.load_read_cache({k.removeprefix(where): v for k, v in tensors.items()
                                  if k.startswith(where)})  # fmt: skip


def save_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``model`` to ``path`` (safetensors) and its configs to ``path`` + ``.json``.
    Returns the two paths."""
    from safetensors.torch import save_file

    import memcim

    path = Path(path)
    layers = _crossbar_layers(model)
    tensors = _flatten_state(model.state_dict())
    tensors.update(_runtime_state(layers))
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(path))
    configs = {
        "memcim": memcim.__version__,
        "torch": torch.__version__,
        "layers": {name: _layer_config(layer) for name, layer in layers.items()},
    }
    meta = path.with_name(path.name + ".json")
    meta.write_text(json.dumps(configs, indent=2))
    return path, meta


def _check_configs(saved: dict, layers: dict[str, CIMLayer]) -> None:
    require(sorted(saved) == sorted(layers), "model", f"crossbar layers {sorted(layers)}",
            f"the checkpoint's crossbar layers {sorted(saved)}")  # fmt: skip
    for name, layer in layers.items():
        now = _layer_config(layer)
        for key in sorted(saved[name].keys() | now.keys()):
            was, is_ = saved[name].get(key), now.get(key)
            if was != is_:
                raise ConfigError(
                    f"{name}.{key}: the checkpoint was saved with {was!r}, the model has "
                    f"{is_!r}; build the model with the saved config to load it"
                )


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (same architecture,
    same configs) in place, and return it.

    Raises:
        ConfigError: a file is missing, or a crossbar layer's config differs from the saved
            one (the message names the layer, the field and both values).
    """
    from safetensors.torch import load_file

    path = Path(path)
    meta = path.with_name(path.name + ".json")
    for p in (path, meta):
        require(p.is_file(), "path", str(p), "an existing checkpoint file (save_checkpoint)")
    layers = _crossbar_layers(model)
    _check_configs(json.loads(meta.read_text())["layers"], layers)
    tensors = load_file(str(path))
    extra_keys = [k for k in model.state_dict() if k.endswith(_EXTRA)]
    model.load_state_dict(_unflatten_state(tensors, extra_keys))
    _restore_runtime_state(layers, tensors)
    return model
