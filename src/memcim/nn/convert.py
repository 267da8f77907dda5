"""Put a PyTorch model on crossbars and take it back; set inference time and seeds."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from memcim._errors import ConfigError
from memcim._modules import Selection, replace_modules, select_layers
from memcim.devices.base import check_time
from memcim.nn.layers import CIMConfig, CIMConv2d, CIMLayer, CIMLinear


def _convertible(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (name, m)
        for name, m in model.named_modules()
        if type(m) in (nn.Linear, nn.Conv2d) or isinstance(m, CIMLayer)
    ]


def _to_cim(layer: nn.Module, config: CIMConfig) -> CIMLayer:
    if isinstance(layer, nn.Linear):
        new = CIMLinear(layer.in_features, layer.out_features, layer.bias is not None, config,
                        device=layer.weight.device)  # fmt: skip
    else:
        if layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ConfigError(
                f"CIMConv2d supports groups=1, padding_mode='zeros' and numeric padding; got "
                f"groups={layer.groups}, padding_mode={layer.padding_mode!r}, "
                f"padding={layer.padding!r}"
            )
        new = CIMConv2d(
            layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
            layer.padding, layer.dilation, layer.bias is not None, config,
            device=layer.weight.device,
        )  # fmt: skip
    with torch.no_grad():
        new.weight.copy_(layer.weight)
        if layer.bias is not None:
            new.bias.copy_(layer.bias)
    new.train(layer.training)
    return new


def convert(
    model: nn.Module, config: CIMConfig | None = None, *, layers: Selection = "all"
) -> nn.Module:
    """Replace ``nn.Linear`` / ``nn.Conv2d`` layers by crossbar layers, keeping their weights.

    Args:
        model: the model, modified in place and returned.
        config: tiles and training behaviour (default :class:`CIMConfig`).
        layers: ``"all"``, ``"all_but_first_last"`` (keep the first and last layer digital, a
            common choice) or an iterable of module names (as in ``model.named_modules()``).

    Returns:
        ``model`` (a new module when ``model`` is itself a single ``nn.Linear``/``nn.Conv2d``).
        The i-th converted layer in module order gets a private generator seeded
        ``config.seed + i``; converting in several calls restarts i, so call :func:`seed`
        afterwards if the layers must not share seeds.
    """
    config = config if config is not None else CIMConfig()
    # Build every replacement first, so that an unsupported layer leaves the model untouched.
    new = {
        name: _to_cim(model.get_submodule(name), replace(config, seed=config.seed + i))
        for i, name in enumerate(select_layers(model, layers))
    }
    return replace_modules(model, new)


def to_digital(model: nn.Module) -> nn.Module:
    """Replace crossbar layers by plain ``nn.Linear`` / ``nn.Conv2d`` with their mapped weights.

    The mapped weights are the float weights clipped to the mappable range, i.e. what training
    optimised; the device noise is not baked in. Modifies ``model`` in place and returns it
    (a new module when ``model`` is itself a crossbar layer).
    """
    new_layers = {}
    for name, layer in _convertible(model):
        if isinstance(layer, CIMLinear):
            new = nn.Linear(layer.in_features, layer.out_features, layer.bias is not None,
                            device=layer.weight.device)  # fmt: skip
        elif isinstance(layer, CIMConv2d):
            new = nn.Conv2d(
                layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                layer.padding, layer.dilation, bias=layer.bias is not None,
                device=layer.weight.device,
            )  # fmt: skip
        else:
            continue
        with torch.no_grad():
            new.weight.copy_(layer.mapped_weight().reshape(new.weight.shape))
            if layer.bias is not None:
                new.bias.copy_(layer.bias)
        new.train(layer.training)
        new_layers[name] = new
    return replace_modules(model, new_layers)


def cim_layers(model: nn.Module) -> list[CIMLayer]:
    """The crossbar layers of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, CIMLayer)]


def drift_to(model: nn.Module, t_s: float) -> nn.Module:
    """Set the inference time (s since programming) of every crossbar layer."""
    t_s = check_time(t_s)
    for layer in cim_layers(model):
        layer.t_s = t_s
    return model


def seed(model: nn.Module, value: int) -> nn.Module:
    """Re-seed every crossbar layer's generator (layer i gets ``value + i``).

    Cached reads and training-noise tables are dropped too, so everything random afterwards
    follows from the new seed.
    """
    for i, layer in enumerate(cim_layers(model)):
        layer.reseed(value + i)
    return model


def program(model: nn.Module) -> nn.Module:
    """Program every crossbar layer's current weights onto its tiles now."""
    for layer in cim_layers(model):
        layer.program()
    return model
