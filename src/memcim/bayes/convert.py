"""Turn a trained deterministic model into a Bayesian one (μ from the trained weights)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from memcim._errors import ConfigError
from memcim._modules import Selection, replace_modules, select_layers
from memcim.bayes.layers import BayesConfig, BayesianConv2d, BayesianLinear


def _to_bayesian_layer(layer: nn.Module, config: BayesConfig) -> nn.Module:
    bias = layer.bias is not None
    if isinstance(layer, nn.Linear):
        new = BayesianLinear(layer.in_features, layer.out_features, bias, config,
                             device=layer.weight.device)  # fmt: skip
    else:
        if layer.padding_mode != "zeros":
            raise ConfigError(
                f"padding_mode={layer.padding_mode!r} is invalid: BayesianConv2d supports 'zeros'"
            )
        new = BayesianConv2d(
            layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
            layer.padding, layer.dilation, layer.groups, bias, config,
            device=layer.weight.device,
        )  # fmt: skip
    with torch.no_grad():
        new.weight_mu.copy_(layer.weight)
        if bias:
            new.bias_mu.copy_(layer.bias)
    new.to(device=layer.weight.device, dtype=layer.weight.dtype)
    new.train(layer.training)
    return new


def to_bayesian(
    model: nn.Module, *, config: BayesConfig | None = None, layers: Selection = "all"
) -> nn.Module:
    """Replace ``nn.Linear`` / ``nn.Conv2d`` layers by Bayesian ones, μ = the trained weights.

    σ starts at ``config.sigma_init`` for every weight and bias, so the converted model starts
    (almost) as the deterministic one; fine-tune it with :func:`memcim.bayes.train_elbo`. Other
    modules (activations, BatchNorm, pooling, Flatten, ...) are kept as they are; the result
    runs S Monte-Carlo samples through them folded into the batch (see
    :func:`memcim.bayes.forward_samples`).

    Args:
        model: the model, modified in place and returned.
        config: prior, initialisation and sampling (default :class:`BayesConfig`).
        layers: ``"all"``, ``"all_but_first_last"`` or an iterable of module names (as in
            ``model.named_modules()``).

    Returns:
        ``model`` (a new module when ``model`` is itself a single ``nn.Linear``/``nn.Conv2d``).
        The i-th converted layer in module order gets a private generator seeded
        ``config.seed + i``.

    Raises:
        ConfigError: unknown layer names, or a convolution with a non-zero padding mode (then
            the model is left unchanged).
    """
    config = config if config is not None else BayesConfig()
    if not isinstance(config, BayesConfig):
        raise ConfigError(f"config={config!r} is invalid: a memcim.bayes.BayesConfig")
    # Build every replacement first, so that an unsupported layer leaves the model untouched.
    new = {
        name: _to_bayesian_layer(model.get_submodule(name), replace(config, seed=config.seed + i))
        for i, name in enumerate(select_layers(model, layers))
    }
    return replace_modules(model, new)
