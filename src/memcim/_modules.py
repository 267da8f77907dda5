"""Choosing and swapping the layers of a PyTorch model, describing their configs, and the flat
key-prefixed state dicts they save (shared by memcim.crossbar, memcim.nn and memcim.bayes)."""

from __future__ import annotations

import dataclasses
import enum
import warnings
from collections.abc import Iterable
from typing import Literal

import torch
from torch import Tensor, nn

from memcim._errors import ConfigError

Selection = Literal["all", "all_but_first_last"] | Iterable[str]


def select_layers(model: nn.Module, layers: Selection) -> list[str]:
    """Names of the ``nn.Linear`` / ``nn.Conv2d`` layers to convert, in module order, each once.

    Exact types only: subclasses (and memcim's own layers) may behave differently.

    Args:
        model: the model.
        layers: ``"all"``, ``"all_but_first_last"`` or an iterable of module names.

    Raises:
        ConfigError: a bad string or names that are not such layers (the message lists the
            convertible layers).
    """
    names = [n for n, m in model.named_modules() if type(m) in (nn.Linear, nn.Conv2d)]
    if isinstance(layers, str):
        if layers == "all":
            return names
        if layers == "all_but_first_last":
            return names[1:-1]
        raise ConfigError(
            f"layers={layers!r} is invalid: use 'all', 'all_but_first_last' or a list of "
            f"layer names ({', '.join(names)})"
        )
    wanted = set(layers)
    unknown = sorted(wanted.difference(names))
    if unknown:
        raise ConfigError(
            f"layers={unknown} is invalid: not nn.Linear/nn.Conv2d layers of this model; "
            f"convertible layers: {', '.join(names) or 'none'}"
        )
    return [n for n in names if n in wanted]


def replace_modules(model: nn.Module, new: dict[str, nn.Module]) -> nn.Module:
    """Put ``new[name]`` in place of each named submodule; returns the (possibly new) model.

    The name ``""`` is the model itself, which is then returned replaced.
    """
    if "" in new:
        return new[""]
    for name, module in new.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module)
    return model


def _json_value(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, Tensor):
        return value.tolist()
    return value


def flat_config(config: object, prefix: str = "") -> dict[str, object]:
    """A (nested) config dataclass as JSON-ready ``{"tile.device.g_max_us": 25.0, ...}``; a
    nested dataclass also records its class (``"tile.device": "PCM"``)."""
    out: dict[str, object] = {}
    for field in dataclasses.fields(config):
        value, key = getattr(config, field.name), prefix + field.name
        if dataclasses.is_dataclass(value):
            out[key] = type(value).__name__
            out.update(flat_config(value, key + "."))
        else:
            out[key] = _json_value(value)
    return out


def under(entries: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries whose key starts with ``prefix``, the prefix removed."""
    return {k.removeprefix(prefix): v for k, v in entries.items() if k.startswith(prefix)}


def generator_on(device: torch.device | str | None, seed: int) -> torch.Generator:
    """A layer's private generator on ``device`` (default: torch's default device), seeded with
    ``seed``. Random numbers are drawn where the tensors live, so a seed gives other numbers on
    a GPU than on the CPU."""
    device = torch.empty(0, device=device).device if device is None else torch.device(device)
    return torch.Generator(device=device).manual_seed(seed)


def follow(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """``generator`` if it draws on ``device``, else a new one there with the same seed (what a
    module's ``_apply`` gives a private generator when ``.to()`` moves its parameters)."""
    if generator.device == device:
        return generator
    return generator_on(device, generator.initial_seed())


def device_of(generator: torch.Generator | None) -> torch.device | None:
    """Where a model initialised from ``generator`` is built: the generator's device (``None``,
    torch's default device, without one)."""
    return generator.device if generator is not None else None


def moved(tensors: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """``tensors`` on ``device`` (a checkpoint loads on the CPU; a layer's state lives where
    the layer does)."""
    return {k: v.to(device) for k, v in tensors.items()}


def restore_generator(generator: torch.Generator, state: Tensor, owner: str) -> None:
    """Set ``generator`` to a saved ``state``. A state saved on another kind of device (the
    CPU's and CUDA's generators keep different states) cannot be restored: the generator keeps
    drawing from its own seed, with a warning naming ``owner``."""
    try:
        generator.set_state(state)
    except RuntimeError as error:
        warnings.warn(f"{owner}: the checkpoint's generator state does not fit a generator on "
                      f"{generator.device} ({error}); random draws continue from the layer's "
                      f"seed {generator.initial_seed()} instead", stacklevel=3)  # fmt: skip
