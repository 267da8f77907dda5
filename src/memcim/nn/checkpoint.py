"""Checkpoints of models on tiles: a safetensors file of tensors and a JSON file of configs.

:func:`save_checkpoint` writes two files side by side:

- ``<path>`` (safetensors): the model's ``state_dict`` (for crossbar layers it carries the
  programmed devices: conductances, write counts, stuck cells, device parameters, ADC ranges,
  the read time) and, for every layer on tiles, what its ``checkpoint_tensors()`` returns: its
  private generator's state and the tiles' cached read at the current time (drifted
  conductances and that time's read-noise realisation); a hardware Bayesian layer
  (:func:`memcim.bayes.to_hardware`) adds its sampled tiles' programmed state and targets. So
  the loaded model continues exactly where the saved one was.
- ``<path>.json``: the memcim and torch versions and every such layer's ``checkpoint_config()``
  (class, device, mapping, converters, tile size, seed; for hardware Bayesian layers the
  sampling scheme and the copies), flattened to ``"tile.adc.bits": 8``-style entries.

:func:`load_checkpoint` loads both into a model of the same architecture, built the same way
(for hardware Bayesian layers: ``to_hardware`` with the same sampling, tiles and samples; its
fresh programming is replaced). The configs are compared first: a layer whose config differs
from the saved one is an error naming the layer and the field with both values; the checkpoint
never overrides a config silently. Safetensors holds tensors only and never runs code on load.
``model.state_dict()`` still saves with ``torch.save`` and loads with
``torch.load(weights_only=True)``.

A layer takes part by having three methods: ``checkpoint_config() -> dict`` (JSON-ready),
``checkpoint_tensors() -> dict[str, Tensor]`` and ``load_checkpoint_tensors(tensors)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from memcim._errors import ConfigError, require
from memcim._modules import under

__all__ = ["load_checkpoint", "save_checkpoint"]

_EXTRA = "_extra_state"
_RUNTIME = "__checkpoint__"


def _layers(model: nn.Module) -> dict[str, nn.Module]:
    """The modules that take part (see the module docstring), by name."""
    return {name: m for name, m in model.named_modules() if hasattr(m, "checkpoint_tensors")}


def _flatten_state(state: dict) -> dict[str, Tensor]:
    """``state_dict`` with every layer's extra state (a dict) spread into tensor entries."""
    out = {}
    for key, value in state.items():
        if key.endswith(_EXTRA):
            out[f"{key}.t_s"] = torch.tensor(value["t_s"], dtype=torch.float64, device="cpu")
            out.update({f"{key}.tiles.{k}": v for k, v in value["tiles"].items()})
        else:
            out[key] = value
    return out


def _unflatten_state(tensors: dict[str, Tensor], extra_keys: list[str]) -> dict:
    state = {k: v for k, v in tensors.items() if _EXTRA not in k and _RUNTIME not in k}
    for key in extra_keys:
        state[key] = {"t_s": float(tensors[f"{key}.t_s"]), "tiles": under(tensors, f"{key}.tiles.")}
    return state


def save_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``model`` to ``path`` (safetensors) and its configs to ``path`` + ``.json``.
    Returns the two paths."""
    from safetensors.torch import save_file

    import memcim

    path = Path(path)
    layers = _layers(model)
    tensors = _flatten_state(model.state_dict())
    for name, layer in layers.items():
        tensors.update({f"{name}.{_RUNTIME}.{k}": v for k, v in layer.checkpoint_tensors().items()})
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(path))
    described = {name: layer.checkpoint_config() for name, layer in layers.items()}
    configs = {"memcim": memcim.__version__, "torch": torch.__version__, "layers": described}
    meta = path.with_name(path.name + ".json")
    meta.write_text(json.dumps(configs, indent=2))
    return path, meta


def _check_configs(saved: dict, layers: dict[str, nn.Module]) -> None:
    require(sorted(saved) == sorted(layers), "model", f"layers on tiles {sorted(layers)}",
            f"the checkpoint's layers on tiles {sorted(saved)}")  # fmt: skip
    for name, layer in layers.items():
        now = json.loads(json.dumps(layer.checkpoint_config()))  # as the JSON file holds it
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
        ConfigError: a file is missing, or a layer's config differs from the saved one (the
            message names the layer, the field and both values).
    """
    from safetensors.torch import load_file

    path = Path(path)
    meta = path.with_name(path.name + ".json")
    for p in (path, meta):
        require(p.is_file(), "path", str(p), "an existing checkpoint file (save_checkpoint)")
    layers = _layers(model)
    _check_configs(json.loads(meta.read_text())["layers"], layers)
    tensors = load_file(str(path))
    extra_keys = [k for k in model.state_dict() if k.endswith(_EXTRA)]
    model.load_state_dict(_unflatten_state(tensors, extra_keys))
    for name, layer in layers.items():
        layer.load_checkpoint_tensors(under(tensors, f"{name}.{_RUNTIME}."))
    return model
