"""The networks of Bonnet et al.'s permuted-MNIST runs [23]: a fully connected ReLU network
without biases, Bayesian (for MESU) or deterministic (for the SGD-based baselines)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from memcim._errors import check_generator, is_int, is_real, require
from memcim.bayes import BayesConfig, BayesianLinear, inverse_softplus


def _check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(sizes)
    require(len(sizes) >= 2 and all(is_int(s) and s >= 1 for s in sizes), "sizes", sizes,
            "at least two layer widths, each an int >= 1 (e.g. (784, 50, 10))")  # fmt: skip
    return sizes


def _stack(layers: list[nn.Module]) -> nn.Sequential:
    body: list[nn.Module] = []
    for i, layer in enumerate(layers):
        body += [layer] if i == len(layers) - 1 else [layer, nn.ReLU()]
    return nn.Sequential(*body)


def bayesian_mlp(sizes: Sequence[int], *, generator: torch.Generator, init_scale: float = 4.0,
                 sigma_fraction: float = 0.5) -> nn.Sequential:  # fmt: skip
    """Bayesian MLP without biases, initialised as the authors' code does: every layer's
    μ ~ U(±a/√fan_in) with a = ``init_scale`` and σ = ``sigma_fraction`` · a/√fan_in
    (784-50-10: σ0 = 0.071 and 0.28). Weight samples are whole matrices shared by the batch
    (``BayesConfig(estimator="reparam")``), as MESU needs. Built on the generator's device.
    """
    sizes = _check_sizes(sizes)
    check_generator(generator)
    require(is_real(init_scale) and init_scale > 0, "init_scale", init_scale, "> 0")
    require(is_real(sigma_fraction) and sigma_fraction > 0, "sigma_fraction", sigma_fraction,
            "> 0")  # fmt: skip
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = init_scale / math.sqrt(fan_in)
        seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
        config = BayesConfig(estimator="reparam", sigma_init=sigma_fraction * bound, seed=seed)
        layer = BayesianLinear(fan_in, fan_out, bias=False, config=config,
                               device=generator.device)  # fmt: skip
        with torch.no_grad():
            layer.weight_mu.uniform_(-bound, bound, generator=generator)
            layer.weight_rho.fill_(float(inverse_softplus(sigma_fraction * bound)))
        layers.append(layer)
    return _stack(layers)


def deterministic_mlp(sizes: Sequence[int], *, generator: torch.Generator) -> nn.Sequential:
    """The same network with point weights, ``nn.Linear``'s default U(±1/√fan_in) init, on the
    generator's device."""
    sizes = _check_sizes(sizes)
    check_generator(generator)
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layer = nn.Linear(fan_in, fan_out, bias=False, device=generator.device)
        bound = 1 / math.sqrt(fan_in)
        with torch.no_grad():
            layer.weight.uniform_(-bound, bound, generator=generator)
        layers.append(layer)
    return _stack(layers)
