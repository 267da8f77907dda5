"""Binarized and multi-level quantised networks with hidden weights (Laborieux et al. [22];
D'Agostino et al. [21]).

Every weight has a real *hidden* value W_h (the parameter the optimiser moves) and a quantised
value used in the forward pass: sign(W_h) for a binarized network, or the nearest of ``levels``
evenly spaced values in [−1, 1] for a multi-level one. The gradient with respect to the
quantised weight is applied to W_h unchanged (straight-through). Hidden activations are signs
whose gradient is passed where |x| <= 1 and zero elsewhere; the first layer sees the real-valued
pixels. Every layer, the output included, is followed by a BatchNorm1d with affine parameters and
*no* running statistics: tests too use the statistics of the batch evaluated, and what is kept
per task is the affine state (γ, β), reloaded when that task is tested.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memcim._errors import ConfigError, check_count, require
from memcim._modules import device_of


class _SignSTE(torch.autograd.Function):
    """sign(x) forward; the gradient passes where |x| <= 1 (hard-tanh straight-through).

    In the ``setup_context`` form, with a generated vmap rule, so that ``torch.func``
    transforms (``grad``, ``vmap``) accept it as well as ``backward``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign_activation(x: Tensor) -> Tensor:
    """±1 activations (0 maps to +1) with the straight-through gradient of hard-tanh."""
    return _SignSTE.apply(x)


def level_values(levels: int, device: torch.device | None = None) -> Tensor:
    """The ``levels`` quantised weight values, evenly spaced in [−1, 1] (±1 for 2 levels)."""
    return torch.linspace(-1.0, 1.0, levels, device=device)


def quantise(w_hidden: Tensor, levels: int) -> Tensor:
    """The quantised weights of hidden weights ``w_hidden``: sign (0 → +1) for 2 levels, else
    the nearest of :func:`level_values` (hidden weights beyond ±1 take the end levels)."""
    if levels == 2:
        return torch.where(w_hidden >= 0, 1.0, -1.0).to(w_hidden.dtype)
    step = 2.0 / (levels - 1)
    index = torch.round((w_hidden.clamp(-1.0, 1.0) + 1.0) / step)
    return index * step - 1.0


def level_index(w_hidden: Tensor, levels: int) -> Tensor:
    """Index 0..levels−1 of each hidden weight's quantised level (int64)."""
    return torch.round((quantise(w_hidden, levels) + 1.0) * (levels - 1) / 2.0).long()


class QuantisedLinear(nn.Module):
    """A linear layer without bias whose forward uses the quantised hidden weights.

    Args:
        in_features, out_features: sizes.
        levels: quantisation levels (2 = binarized).
        generator: initialisation, hidden weights U(−init, init); the layer is built on its
            device.
        init: half-width of the uniform initialisation (docs/references.md: U(−0.05, 0.05)).
    """

    def __init__(self, in_features: int, out_features: int, *, levels: int = 2,
                 generator: torch.Generator | None = None, init: float = 0.05) -> None:  # fmt: skip
        super().__init__()
        self.levels = levels
        u = torch.rand(out_features, in_features, generator=generator, device=device_of(generator))
        self.weight = nn.Parameter((u * 2 - 1) * init)

    def quantised_weight(self) -> Tensor:
        """The weights the forward uses, [out, in], straight-through to the hidden ones."""
        w = self.weight
        return w + (quantise(w.detach(), self.levels) - w).detach()

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.quantised_weight())


class MetaplasticMLP(nn.Module):
    """Laborieux et al.'s binarized MLP (or its multi-level version): quantised linear layers
    without bias, each followed by BatchNorm1d (affine, batch statistics only); sign
    activations between layers; the output is the last BatchNorm's.

    Args:
        sizes: layer widths, input first (e.g. ``(784, 512, 512, 10)``).
        levels: quantisation levels of every weight (2 = binarized, up to 16).
        generator: initialisation; the model is built on its device.
        init: half-width of the hidden weights' uniform initialisation.
    """

    def __init__(self, sizes: tuple[int, ...] = (784, 512, 512, 10), *, levels: int = 2,
                 generator: torch.Generator | None = None, init: float = 0.05) -> None:  # fmt: skip
        super().__init__()
        require(len(sizes) >= 2, "sizes", sizes, "at least an input and an output width")
        for s in sizes:
            check_count(s, "sizes", 1)
        require(isinstance(levels, int) and 2 <= levels <= 16, "levels", levels,
                "an int from 2 to 16")  # fmt: skip
        self.sizes, self.levels = tuple(sizes), levels
        self.layers = nn.ModuleList(
            QuantisedLinear(a, b, levels=levels, generator=generator, init=init)
            for a, b in itertools.pairwise(sizes)
        )
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(b, affine=True, track_running_stats=False, device=device_of(generator))
            for b in sizes[1:]
        )

    def forward(self, x: Tensor) -> Tensor:
        h = x.reshape(x.shape[0], -1)
        if h.shape[1] != self.sizes[0]:
            raise ConfigError(f"MetaplasticMLP expects {self.sizes[0]} inputs, got {h.shape[1]}")
        last = len(self.layers) - 1
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
            h = norm(layer(h))
            if i < last:
                h = sign_activation(h)
        return h

    def hidden_weights(self) -> list[nn.Parameter]:
        """The hidden weights W_h of every layer (the metaplastic parameters)."""
        return [layer.weight for layer in self.layers]

    def norm_state(self) -> dict[str, Tensor]:
        """A copy of every BatchNorm's affine parameters (γ, β): what is kept per task."""
        return {k: v.detach().clone() for k, v in self.norms.state_dict().items()}

    def load_norm_state(self, state: dict[str, Tensor]) -> None:
        """Restore BatchNorm affine parameters saved by :meth:`norm_state`."""
        self.norms.load_state_dict(state)


class FloatMLP(nn.Module):
    """The float baseline of :class:`MetaplasticMLP`: the same widths and BatchNorm
    arrangement (affine, batch statistics, kept per task), real weights and ReLU."""

    def __init__(self, sizes: tuple[int, ...] = (784, 512, 512, 10), *,
                 generator: torch.Generator | None = None) -> None:  # fmt: skip
        super().__init__()
        self.sizes = tuple(sizes)
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=False, device=device_of(generator))
            for a, b in itertools.pairwise(sizes)
        )
        for layer in self.layers:
            bound = 1 / layer.in_features**0.5  # nn.Linear's default, from the generator
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=generator)
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(b, affine=True, track_running_stats=False, device=device_of(generator))
            for b in sizes[1:]
        )

    def forward(self, x: Tensor) -> Tensor:
        h = x.reshape(x.shape[0], -1)
        last = len(self.layers) - 1
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
            h = norm(layer(h))
            if i < last:
                h = F.relu(h)
        return h

    norm_state = MetaplasticMLP.norm_state
    load_norm_state = MetaplasticMLP.load_norm_state
