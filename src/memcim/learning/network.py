"""The small fully connected Bayesian models the on-chip samplers share.

A model is a list of weight tensors, one per layer, each ``[..., out, in + 1]`` in PyTorch's
[out, in] layout with the bias as the last input column (driven at 1, so on a crossbar the bias
is one more word line). Leading dimensions are chains and samples. One output is logistic
regression (Bernoulli likelihood, class-1 logit); more outputs are a softmax classifier.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from memcim._errors import ConfigError, require

Activation = Literal["tanh", "relu"]
ACTIVATIONS: dict[str, object] = {"tanh": torch.tanh, "relu": torch.relu}


def check_layers(layers: tuple[int, ...], name: str) -> tuple[int, ...]:
    """Validate layer widths (inputs, hidden..., outputs): at least two ints >= 1."""
    ok = (
        isinstance(layers, tuple)
        and len(layers) >= 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in layers)
    )
    require(ok, name, layers, "must be a tuple of >= 2 ints >= 1 (inputs, hidden..., outputs)")
    return layers


def check_activation(activation: str, name: str) -> str:
    require(activation in ACTIVATIONS, name, activation, f"must be one of {tuple(ACTIVATIONS)}")
    return activation


def with_bias_input(x: Tensor) -> Tensor:
    """``x`` [..., N, D] with a column of ones appended: [..., N, D + 1]."""
    return torch.cat([x, torch.ones((*x.shape[:-1], 1), dtype=x.dtype)], dim=-1)


def shapes(layers: tuple[int, ...]) -> list[tuple[int, int]]:
    """Weight shapes [(out, in + 1), ...] of the layers."""
    return [(n_out, n_in + 1) for n_in, n_out in itertools.pairwise(layers)]


def parameter_count(layers: tuple[int, ...]) -> int:
    """Weights and biases of the model."""
    return sum(o * i for o, i in shapes(layers))


def forward(weights: list[Tensor], x: Tensor, activation: str) -> Tensor:
    """Logits [..., N, out] of the model for inputs ``x`` [N, in] (float weights)."""
    act = ACTIVATIONS[activation]
    h = x
    for i, w in enumerate(weights):
        h = with_bias_input(h) @ w.transpose(-1, -2)
        if i < len(weights) - 1:
            h = act(h)
    return h


def log_likelihood(logits: Tensor, y: Tensor) -> Tensor:
    """Σ_n log p(y_n | x_n, θ) over the last-but-one dimension: logits [..., N, out] -> [...].

    One output is a Bernoulli logit for class 1; more outputs are softmax logits.
    """
    if logits.shape[-1] == 1:
        target = y.to(logits.dtype).expand(logits.shape[:-1])
        nll = F.binary_cross_entropy_with_logits(logits[..., 0], target, reduction="none")
        return -nll.sum(-1)
    logp = torch.log_softmax(logits, dim=-1)
    index = y.view(*([1] * (logits.dim() - 2)), -1, 1).expand(*logits.shape[:-1], 1)
    return logp.gather(-1, index)[..., 0].sum(-1)


def probabilities(logits: Tensor) -> Tensor:
    """Class probabilities [..., N, classes] (2 classes for a single Bernoulli logit)."""
    if logits.shape[-1] == 1:
        p1 = torch.sigmoid(logits)
        return torch.cat([1 - p1, p1], dim=-1)
    return torch.softmax(logits, dim=-1)


def gaussian_log_prior(weights: list[Tensor], std: float | None) -> Tensor:
    """Σ log N(w; 0, std²) over every weight of each model, [...]; 0 for a flat prior (None)."""
    lead = weights[0].shape[:-2]
    if std is None:
        return torch.zeros(lead)
    sq = sum(w.square().sum(dim=(-2, -1)) for w in weights)
    n = sum(w.shape[-1] * w.shape[-2] for w in weights)
    return -0.5 * sq / std**2 - n * (math.log(std) + 0.5 * math.log(2 * math.pi))


def check_data(x: Tensor, y: Tensor, layers: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Validate a training set for a model of ``layers``: x [N, in] finite, y [N] class ids."""
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != layers[0]:
        raise ConfigError(f"x must be a [N, {layers[0]}] tensor, got {getattr(x, 'shape', x)}")
    if not torch.isfinite(x).all():
        raise ConfigError("x contains NaN or infinite values")
    classes = max(2, layers[-1])
    if not isinstance(y, Tensor) or y.shape != (x.shape[0],) or y.is_floating_point():
        raise ConfigError(f"y must be an integer tensor of shape [{x.shape[0]}]")
    if y.numel() and (y.min() < 0 or y.max() >= classes):
        raise ConfigError(f"y holds labels outside 0..{classes - 1}")
    return x.float(), y.long()
