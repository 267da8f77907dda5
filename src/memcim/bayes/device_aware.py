"""Device-aware training: keep each weight's σ where the device and mapping can realise it.

A variational posterior trained in software may ask for a σ that the hardware cannot draw at
that μ: with one device per weight (``CYCLE_TO_CYCLE``) the spread *is* the device's σ(median),
and a differential pair can only span what its two medians allow. Dalgaty et al. [8] add a
"technological loss" to the ELBO so that every weight's distribution obeys the device's
σ(median) relation and the trained posterior is programmable. This module provides

* :func:`realisable_sigma`: the interval [low, high] of σ each scheme realises at each μ,
  computed by the same mapping and device table as the tiles of :func:`~memcim.bayes.realise`
  and :func:`~memcim.bayes.to_hardware` use;
* :func:`technological_loss`: a penalty, the mean squared log-distance of σ to its interval;
* :func:`project_sigma_`: a hard constraint, σ clamped into its interval in place;
* :func:`feasible_fraction`: how much of the posterior is programmable;
* :class:`DeviceAware`: the training option of :func:`memcim.bayes.train_elbo`, with
  :func:`technological_penalty` / :func:`sigma_projection` as hooks for the shared loop.

Intervals per scheme (weight units):

* ``CYCLE_TO_CYCLE``, ``READ_NOISE``: a point, low = high = the coupled σ(μ).
* ``DIFFERENTIAL``, ``DEVICE_POPULATION``: σ of the pair with its lower median at g_min and at
  its highest (g_max − k|μ|), at the scale k that ``realise`` would choose for this posterior.
* ``SEPARATE_MU_SIGMA``: [0, ∞). The σ array's scale maps the largest σ onto the full window,
  so the largest σ it can hold is whatever the largest σ is: the range is unconstrained (the
  device limits the resolution and fidelity of σ, which this interval does not express).

The scale k = W / max|μ| depends on the posterior as a whole: W, the conductance the largest
|μ| is mapped to, is fixed for the coupled schemes and chosen by a search over 9 candidates for
the differential ones (from μ and σ together). During training that choice of W is the costly
part: it is cached per parameter tensor and redone every ``refresh_steps`` steps, while k (from
the current largest |μ|) and every weight's interval (a table interpolation, as cheap as an
element-wise layer) are recomputed at every step. Caching the intervals or k instead does not
work: early in training max|μ| grows several-fold within a few dozen steps and every σ(μ) with
it (on digits from scratch, k cached for 50 steps left 5 % of the weights feasible; recomputed
every step, 99 %). The bounds are constants (detached) for the gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memcim._errors import ConfigError, is_int, is_real, require
from memcim.bayes.layers import BayesianLayer, inverse_softplus
from memcim.bayes.schemes import (
    HardwareSampling,
    SamplingScheme,
    _best_differential_scale,
    _scale,
    _table,
    coupled_sigma,
    differential_sigma_range,
)

Mode = Literal["penalty", "project"]
_MODES = ("penalty", "project")
_COUPLED = (SamplingScheme.CYCLE_TO_CYCLE, SamplingScheme.READ_NOISE)
_PAIRED = (SamplingScheme.DIFFERENTIAL, SamplingScheme.DEVICE_POPULATION)
# Smallest σ (weight units) taken to a log or through softplus⁻¹; realise uses the same floor.
_SIGMA_FLOOR = 1e-12
# σ within this relative distance of its interval is left alone by the projection: float32
# softplus(softplus⁻¹(σ)) returns σ only to a few 1e-7, and a point interval would otherwise be
# rewritten (and counted as changed) at every step.
_PROJECT_RTOL = 1e-5
# The projection lands this far (relative) inside a wide interval rather than on its end: a σ
# on the end is feasible for ``realise`` or not by float round-off, and the differential scale
# search, which counts feasible weights, would then pick another scale with other intervals.
_PROJECT_MARGIN = 1e-4
#: Relative tolerance of :func:`feasible_fraction`: the 10 % that ``realise`` allows the coupled
#: schemes (|σ_realised − σ| <= 0.1 σ).
FEASIBLE_RTOL = 0.1


@dataclass(frozen=True, eq=False)  # tensors: no element-wise __eq__
class SigmaRange:
    """The σ a scheme can realise for each weight.

    Attributes:
        low, high: smallest and largest realisable σ (weight units), shape of μ; detached.
        k_us: the scale of the mapping they assume, as ``Realisation.k_us`` (µS of a
            weight's summed bit-line conductance per weight unit; the μ array's scale for
            ``SEPARATE_MU_SIGMA``).
    """

    low: Tensor
    high: Tensor
    k_us: float

    def log_distance(self, sigma: Tensor) -> Tensor:
        """|log σ − log(nearest end)| outside [low, high], 0 inside (nats of ratio).

        Differentiable in ``sigma``; σ below the floor 1e-12 is treated as the floor.
        """
        log_sigma = sigma.clamp_min(_SIGMA_FLOOR).log()
        below = (self.low.clamp_min(_SIGMA_FLOOR).log() - log_sigma).clamp_min(0)
        above = (log_sigma - self.high.clamp_min(_SIGMA_FLOOR).log()).clamp_min(0)
        return below + above

    def contains(self, sigma: Tensor, rtol: float = FEASIBLE_RTOL) -> Tensor:
        """Whether some realisable σ' lies within ``rtol``·σ of σ (bool, shape of σ)."""
        return (sigma * (1 - rtol) <= self.high) & (sigma * (1 + rtol) >= self.low)

    def clamp(self, sigma: Tensor, margin: float = 0.0) -> Tensor:
        """σ clamped into [low, high], ``margin`` (relative) inside its ends where the interval
        is wide enough, and above the floor 1e-12 so that softplus⁻¹ is finite."""
        low = torch.minimum(self.low * (1 + margin), self.high)
        high = torch.maximum(self.high * (1 - margin), self.low)
        return sigma.clamp(low, high).clamp_min(_SIGMA_FLOOR)


def realisable_sigma(
    mu: Tensor,
    sampling: HardwareSampling,
    *,
    sigma: Tensor | None = None,
    k_us: float | None = None,
) -> SigmaRange:
    """The interval of σ that ``sampling`` can realise at each μ (see module docstring).

    Args:
        mu: means (weight units), any shape; detached.
        sampling: scheme, device and read time.
        sigma: the current σ (weight units, shape of ``mu``). Needed by ``DIFFERENTIAL`` and
            ``DEVICE_POPULATION`` to choose their scale k from μ and σ as ``realise`` does
            (unless ``k_us`` is given); ignored by the other schemes.
        k_us: the scale to assume (a previous :attr:`SigmaRange.k_us`); ``None``: the scale
            ``realise`` would choose for this μ (and σ).

    Returns:
        A :class:`SigmaRange` with ``low``/``high`` of the shape of ``mu``.
    """
    require(isinstance(sampling, HardwareSampling), "sampling", sampling,
            "a memcim.bayes.HardwareSampling")  # fmt: skip
    with torch.no_grad():
        mu = mu.detach().float()
        if not bool(torch.isfinite(mu).all()):
            raise ConfigError("mu must be finite")
        if sampling.scheme in _COUPLED:
            coupled, k = coupled_sigma(mu, sampling, k_us=k_us)
            return SigmaRange(coupled, coupled, k)
        if sampling.scheme in _PAIRED:
            return _paired_range(mu, sigma, sampling, k_us)
        k_mu = _scale(mu, sampling.device.g_span_us) if k_us is None else k_us
        return SigmaRange(torch.zeros_like(mu), torch.full_like(mu, math.inf), k_mu)


def _paired_range(mu: Tensor, sigma: Tensor | None, sampling: HardwareSampling,
                  k_us: float | None) -> SigmaRange:  # fmt: skip
    table = _table(sampling)
    if k_us is None:
        require(sigma is not None and sigma.shape == mu.shape, "sigma",
                None if sigma is None else tuple(sigma.shape),
                f"a tensor of mu's shape {tuple(mu.shape)}: {sampling.scheme.name} chooses "
                "its scale from mu and sigma")  # fmt: skip
        sigma = sigma.detach().float()
        k_us = _best_differential_scale(mu, sigma, table, sampling.bisection_steps)
    low, high = differential_sigma_range(mu, k_us, table)
    return SigmaRange(low, high, k_us)


def _sigma_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, nn.Parameter]]:
    """``(name of ρ, μ, ρ)`` for every weight and bias of every Bayesian layer."""
    found = False
    for name, layer in model.named_modules():
        if isinstance(layer, BayesianLayer):
            found = True
            prefix = f"{name}." if name else ""
            yield prefix + "weight_rho", layer.weight_mu, layer.weight_rho
            if layer.bias_rho is not None:
                yield prefix + "bias_rho", layer.bias_mu, layer.bias_rho
    if not found:
        raise ConfigError("the model has no Bayesian layers: convert it with to_bayesian first")


def realisable_ranges(
    model: nn.Module,
    sampling: HardwareSampling,
    *,
    scales: dict[str, float] | None = None,
) -> dict[str, SigmaRange]:
    """:func:`realisable_sigma` of every Bayesian weight and bias, keyed by the ρ parameter's
    name (e.g. ``"0.weight_rho"``). Weights and biases get separate scales, as in
    :func:`memcim.bayes.to_hardware`; ``scales`` (by the same names) fixes them instead."""
    return {
        name: realisable_sigma(mu, sampling, sigma=F.softplus(rho.detach()),
                               k_us=None if scales is None else _lookup(scales, name))
        for name, mu, rho in _sigma_parameters(model)
    }  # fmt: skip


def _lookup(table: dict, name: str):
    if name not in table:
        raise ConfigError(f"no entry {name!r} for this model: compute it with realisable_ranges")
    return table[name]


def technological_loss(
    model: nn.Module,
    sampling: HardwareSampling,
    *,
    ranges: dict[str, SigmaRange] | None = None,
) -> Tensor:
    """Mean over every Bayesian weight and bias of d², d the log-distance of σ to its interval.

    d = relu(log low − log σ) + relu(log σ − log high), so the loss is 0 when every σ is
    realisable and (ln r)² for a σ off by a factor r. Log space makes it scale-free (the same
    for every layer's weight units and every device's µS) and even-handed across the decades
    σ spans, where a squared difference would be dominated by the largest σ.

    Args:
        model: a model with Bayesian layers.
        sampling: the scheme and device the posterior must be realisable on.
        ranges: precomputed intervals (:func:`realisable_ranges`); recomputed when ``None``.

    Returns:
        A 0-d tensor (squared nats of σ ratio), differentiable in every ρ; the bounds are
        constants.
    """
    ranges = realisable_ranges(model, sampling) if ranges is None else ranges
    total, count = None, 0
    for name, _, rho in _sigma_parameters(model):
        d2 = _lookup(ranges, name).log_distance(F.softplus(rho)).square().sum()
        total = d2 if total is None else total + d2
        count += rho.numel()
    return total / count


@torch.no_grad()
def project_sigma_(
    model: nn.Module,
    sampling: HardwareSampling,
    *,
    ranges: dict[str, SigmaRange] | None = None,
) -> float:
    """Clamp every σ into its realisable interval, in place (ρ = softplus⁻¹(clamped σ)).

    Only the ρ of σ outside the interval (by more than a relative 1e-5, the float32 round-off
    of softplus⁻¹ then softplus) are written, so a realisable posterior is left bit for bit
    unchanged and a second projection changes nothing. A σ outside an interval wider than
    that lands a relative 1e-4 inside its nearer end, so that ``realise`` (and its choice of
    the differential scale) sees it inside rather than on the end by round-off.

    Args:
        model: a model with Bayesian layers; its ρ are modified.
        sampling: the scheme and device.
        ranges: precomputed intervals (:func:`realisable_ranges`); recomputed when ``None``.

    Returns:
        The fraction of parameters whose σ was changed.
    """
    ranges = realisable_ranges(model, sampling) if ranges is None else ranges
    changed = total = 0
    for name, _, rho in _sigma_parameters(model):
        sigma = F.softplus(rho)
        interval = _lookup(ranges, name)
        outside = ~interval.contains(sigma, _PROJECT_RTOL)
        target = interval.clamp(sigma, _PROJECT_MARGIN)
        rho.copy_(torch.where(outside, inverse_softplus(target).to(rho.dtype), rho))
        changed += int(outside.sum())
        total += rho.numel()
    return changed / total


@torch.no_grad()
def feasible_fraction(
    model: nn.Module,
    sampling: HardwareSampling,
    *,
    ranges: dict[str, SigmaRange] | None = None,
    rtol: float = FEASIBLE_RTOL,
) -> float:
    """Fraction of Bayesian weights and biases whose σ the hardware can realise.

    A σ counts as realisable when some σ' in its interval is within ``rtol``·σ of it (10 % by
    default, the criterion ``realise`` applies to the coupled schemes, whose interval is a
    single point that no trained σ hits exactly).
    """
    require(is_real(rtol) and 0 <= rtol < 1, "rtol", rtol, "finite, in [0, 1)")
    ranges = realisable_ranges(model, sampling) if ranges is None else ranges
    inside = total = 0
    for name, _, rho in _sigma_parameters(model):
        inside += int(_lookup(ranges, name).contains(F.softplus(rho), rtol).sum())
        total += rho.numel()
    return inside / total


@dataclass(frozen=True, kw_only=True)
class DeviceAware:
    """Device-aware training option of :func:`memcim.bayes.train_elbo` ([8]'s technological loss).

    Attributes:
        sampling: the scheme and device the trained posterior must be realisable on.
        weight: strength (>= 0) of the penalty in ``"penalty"`` mode, which adds
            ``weight · N · technological_loss / D`` = weight · Σ d² / D (N Bayesian parameters,
            D training examples) to the per-example negative ELBO: scaled like KL/D, so one
            weight works for any network and dataset size. Per parameter the KL pulls ρ with a
            gradient of order 1/D and the penalty pushes back with 2·weight·d/D, so σ settles
            about d ≈ 1/(2·weight) (log units) outside its interval: the default 10 keeps it
            within ~5 %, inside the 10 % tolerance of :func:`feasible_fraction`. Unused by
            ``"project"``.
        mode: ``"penalty"`` (soft: σ is pulled toward its interval through the loss) or
            ``"project"`` (hard: σ is clamped into it after every optimizer step, and once more
            with fresh bounds at the end of training).
        refresh_steps: optimizer steps between choices of the conductance each tensor's
            largest |μ| maps to (9 candidates for the differential schemes); in between the
            choice is reused and the scale and intervals follow the current μ (see module
            docstring).
    """

    sampling: HardwareSampling
    weight: float = 10.0
    mode: Mode = "penalty"
    refresh_steps: int = 50

    def __post_init__(self) -> None:
        require(isinstance(self.sampling, HardwareSampling), "DeviceAware.sampling",
                self.sampling, "a memcim.bayes.HardwareSampling")  # fmt: skip
        require(is_real(self.weight) and self.weight >= 0, "DeviceAware.weight", self.weight,
                "finite and >= 0")  # fmt: skip
        require(self.mode in _MODES, "DeviceAware.mode", self.mode, f"one of {_MODES}")
        require(is_int(self.refresh_steps) and self.refresh_steps >= 1,
                "DeviceAware.refresh_steps", self.refresh_steps, "an int >= 1")  # fmt: skip


def _full_scale(mu: Tensor, k_us: float) -> float:
    """W = k · max|μ|, the inverse of ``_scale(mu, W)`` (k itself when μ = 0, as there)."""
    peak = float(mu.detach().abs().max())
    return k_us * peak if peak > 0 else k_us


class _RangeCache:
    """Intervals of one model at every call; the full scale W of each tensor chosen afresh on
    the first call and every ``refresh_steps`` calls, reused in between (module docstring)."""

    def __init__(self, config: DeviceAware) -> None:
        self.config = config
        self.calls = 0
        self.full_scales: dict[str, float] | None = None
        self._model_id: int | None = None

    def __call__(self, model: nn.Module) -> dict[str, SigmaRange]:
        sampling = self.config.sampling
        if (self.full_scales is None or self._model_id != id(model)
                or self.calls % self.config.refresh_steps == 0):  # fmt: skip
            ranges = realisable_ranges(model, sampling)
            self.full_scales = {name: _full_scale(mu, ranges[name].k_us)
                                for name, mu, _ in _sigma_parameters(model)}  # fmt: skip
            self._model_id = id(model)
        else:
            scales = {name: _scale(mu.detach(), _lookup(self.full_scales, name))
                      for name, mu, _ in _sigma_parameters(model)}  # fmt: skip
            ranges = realisable_ranges(model, sampling, scales=scales)
        self.calls += 1
        return ranges


def technological_penalty(
    config: DeviceAware, *, dataset_size: int
) -> Callable[[nn.Module], Tensor]:
    """``penalty(model)``: ``config.weight · N · technological_loss / dataset_size`` (N the
    model's Bayesian parameters; see :class:`DeviceAware`), to add to a per-example training
    loss once per optimizer step; the scales are re-chosen every ``config.refresh_steps``
    calls."""
    require(isinstance(config, DeviceAware), "device_aware", config, "a DeviceAware")
    require(is_int(dataset_size) and dataset_size >= 1, "dataset_size", dataset_size,
            "an int >= 1")  # fmt: skip
    cache = _RangeCache(config)

    def penalty(model: nn.Module) -> Tensor:
        n = sum(rho.numel() for _, _, rho in _sigma_parameters(model))
        loss = technological_loss(model, config.sampling, ranges=cache(model))
        return config.weight * n / dataset_size * loss

    return penalty


def sigma_projection(config: DeviceAware) -> Callable[[nn.Module], None]:
    """An ``after_step`` hook for :func:`memcim.training.train`: :func:`project_sigma_` after
    every optimizer step, the scales re-chosen every ``config.refresh_steps`` steps."""
    require(isinstance(config, DeviceAware), "device_aware", config, "a DeviceAware")
    cache = _RangeCache(config)

    def after_step(model: nn.Module) -> None:
        project_sigma_(model, config.sampling, ranges=cache(model))

    return after_step
