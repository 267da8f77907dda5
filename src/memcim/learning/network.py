"""The small fully connected models the on-chip learners share, and their common checks.

A model is a list of weight tensors, one per layer, each ``[..., out, in + 1]`` in PyTorch's
[out, in] layout with the bias as the last input column (driven at 1, so on a crossbar the bias
is one more word line). Leading dimensions are chains and samples. One output is logistic
regression (Bernoulli likelihood, class-1 logit); more outputs are a softmax classifier.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from memcim._errors import ConfigError, check_count, is_int, is_real, require
from memcim.crossbar import TileConfig
from memcim.crossbar.converters import ConverterConfig
from memcim.crossbar.mapping import MappingConfig
from memcim.devices import Device

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
    return torch.cat([x, x.new_ones((*x.shape[:-1], 1))], dim=-1)


def shapes(layers: tuple[int, ...]) -> list[tuple[int, int]]:
    """Weight shapes [(out, in + 1), ...] of the layers."""
    return [(n_out, n_in + 1) for n_in, n_out in itertools.pairwise(layers)]


def parameter_count(layers: tuple[int, ...]) -> int:
    """Weights and biases of the model."""
    return sum(o * i for o, i in shapes(layers))


def run_layers(layers: Sequence[Callable[[Tensor], Tensor]], x: Tensor, activation: str) -> Tensor:
    """Outputs of dense layers in turn: each gets its input with the bias column of ones,
    and ``activation`` acts between layers (not after the last).

    Args:
        layers: one callable per layer, [..., N, in + 1] -> [..., N, out] (a matrix product
            in software, a tile's MVM in hardware).
        x: inputs [N, in].
    """
    act = ACTIVATIONS[activation]
    h = x
    for i, layer in enumerate(layers):
        h = layer(with_bias_input(h))
        if i < len(layers) - 1:
            h = act(h)
    return h


def forward(weights: list[Tensor], x: Tensor, activation: str) -> Tensor:
    """Logits [..., N, out] of the model for inputs ``x`` [N, in] (float weights)."""
    return run_layers([lambda h, w=w: h @ w.transpose(-1, -2) for w in weights], x, activation)


def tile_config(
    device: Device,
    w_max: float,
    *,
    weight_bits: int | None = None,
    dac_bits: int | None,
    adc_bits: int | None,
    read_noise: bool,
) -> TileConfig:
    """Tiles of on-chip learning: differential pairs at a fixed weight scale ``w_max`` (the
    learner owns the scale), per-read noise or none, and no drift compensation (the learner
    reads its own cells right after programming them)."""
    return TileConfig(
        device=device,
        mapping=MappingConfig(scheme="differential", w_max=w_max, weight_bits=weight_bits),
        dac=ConverterConfig(bits=dac_bits),
        adc=ConverterConfig(bits=adc_bits),
        read_noise="per_read" if read_noise else "off",
        drift_compensation=False,
    )


def check_chains(config: object, name: str) -> None:
    """Validate the fields a Metropolis–Hastings config shares: ``layers``, ``activation``,
    ``chains``, ``steps``, ``burn_in``, ``thin`` and ``prior_std`` (``None``: flat)."""
    check_layers(config.layers, f"{name}.layers")
    check_activation(config.activation, f"{name}.activation")
    for f in ("chains", "steps", "thin"):
        check_count(getattr(config, f), f"{name}.{f}", 1)
    require(is_int(config.burn_in) and 0 <= config.burn_in < config.steps, f"{name}.burn_in",
            config.burn_in, f"must be an int in [0, steps={config.steps})")  # fmt: skip
    if config.prior_std is not None:
        require(is_real(config.prior_std) and config.prior_std > 0, f"{name}.prior_std",
                config.prior_std, "must be > 0 or None (flat)")  # fmt: skip


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
        return weights[0].new_zeros(lead)
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


def stochastic_round(u: Tensor, generator: torch.Generator | None) -> Tensor:
    """``u`` rounded to an integer, up with probability equal to its fractional part
    (unbiased: E[round(u)] = u); the draws on ``u``'s device."""
    low = torch.floor(u)
    return low + (torch.rand(u.shape, generator=generator, device=u.device) < (u - low)).to(u.dtype)
