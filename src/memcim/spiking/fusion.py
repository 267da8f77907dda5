"""Bayesian fusion of classifiers that see one object through different sensors.

Each modality m gives class probabilities p_m(y | x_m) [N, C] (a predictive mean over its
Monte-Carlo samples) and an uncertainty u_m [N] (its epistemic part, nats). The rules:

- :func:`product_of_experts`: p ∝ Π_m p_m, the Bayes posterior when the views are independent
  given the class and the class prior is uniform; a confidently wrong modality can veto.
- :func:`mean_of_probabilities`: p = mean_m p_m, a mixture; never sharper than its parts.
- :func:`log_linear_pool`: p ∝ Π_m p_m^{w_m} with per-input weights w_m >= 0 (1: the product).
- :class:`UncertaintyWeighting`: log-linear pooling with w_m = scale_m · softmax over the
  modalities of (a_m − b_m log ū_m), b_m >= 0, so a modality is trusted less the more
  uncertain it is relative to the others, and each keeps its own sharpness (scale_m). ū_m is
  the modality's uncertainty averaged (geometrically) over a window of its last inputs
  (:func:`stream_uncertainty`): a sensor that is corrupted stays corrupted for a while, and
  one input's spread says little. a, b and the scales are fitted on validation data
  (:func:`fit_uncertainty_weighting`) by the pooled likelihood.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from memcim._errors import check_count, require

#: Epistemic uncertainties below this (nats) count as this when their logarithm is taken.
UNCERTAINTY_FLOOR = 1e-8
_LOG_FLOOR = 1e-12  # probabilities below this count as this in logarithms


def _check_probs(probs: Sequence[Tensor]) -> Tensor:
    require(len(probs) >= 1 and all(isinstance(p, Tensor) and p.dim() == 2 for p in probs),
            "probs", [tuple(getattr(p, "shape", ())) for p in probs],
            "one or more [N, C] probability tensors")  # fmt: skip
    shapes = {tuple(p.shape) for p in probs}
    require(len(shapes) == 1, "probs", sorted(shapes), "the same [N, C] for every modality")
    return torch.stack([p.float() for p in probs])


def log_linear_pool(probs: Sequence[Tensor], weights: Sequence[Tensor | float]) -> Tensor:
    """p ∝ Π_m p_m^{w_m}, normalised over classes: [N, C]. ``weights``: one per modality, each
    a number or a tensor [N] of weights >= 0."""
    stacked = _check_probs(probs)
    require(len(weights) == len(stacked), "weights", len(weights),
            f"one per modality ({len(stacked)})")  # fmt: skip
    w = torch.stack([torch.as_tensor(v, dtype=stacked.dtype, device=stacked.device)
                     .expand(stacked.shape[1]) for v in weights])  # fmt: skip
    require(bool((w >= 0).all()) and bool(torch.isfinite(w).all()), "weights",
            f"min {float(w.min()):g}", "finite weights >= 0")  # fmt: skip
    return F.softmax((w[..., None] * stacked.clamp_min(_LOG_FLOOR).log()).sum(0), dim=-1)


def product_of_experts(probs: Sequence[Tensor]) -> Tensor:
    """p ∝ Π_m p_m: every modality with weight 1."""
    return log_linear_pool(probs, [1.0] * len(probs))


def mean_of_probabilities(probs: Sequence[Tensor]) -> Tensor:
    """p = mean_m p_m."""
    return _check_probs(probs).mean(0)


def stream_uncertainty(uncertainty: Tensor, window: int) -> Tensor:
    """Each input's uncertainty replaced by the geometric mean over its window: consecutive
    blocks of ``window`` inputs of the stream (the last block may be shorter), values below
    :data:`UNCERTAINTY_FLOOR` counted as the floor. ``window=1``: unchanged above the floor."""
    require(isinstance(uncertainty, Tensor) and uncertainty.dim() == 1, "uncertainty",
            tuple(getattr(uncertainty, "shape", ())), "a tensor [N]")  # fmt: skip
    check_count(window, "window", 1)
    block = torch.arange(len(uncertainty), device=uncertainty.device) // window
    log_u = uncertainty.clamp_min(UNCERTAINTY_FLOOR).log()
    blocks = -(-len(uncertainty) // window)  # ceil: the last block may be shorter
    sums = log_u.new_zeros(blocks).index_add_(0, block, log_u)
    return (sums / torch.bincount(block)).exp()[block]


def _log_stream(uncertainties: Sequence[Tensor], window: int) -> Tensor:
    """log ū [M, N]: the logarithm of every modality's windowed uncertainty."""
    stream = torch.stack([stream_uncertainty(u.float(), window) for u in uncertainties])
    return stream.clamp_min(UNCERTAINTY_FLOOR).log()


def _weights(offset: Tensor, slope: Tensor, scale: Tensor, log_u: Tensor) -> Tensor:
    return scale[:, None] * F.softmax(offset[:, None] - slope[:, None] * log_u, dim=0)


@dataclass(frozen=True)
class UncertaintyWeighting:
    """Log-linear pooling weighted by each modality's windowed uncertainty ū_m:
    w_m = scale_m · softmax_m(offset_m − slope_m · log ū_m), slope_m >= 0.

    Attributes:
        window: inputs per window of :func:`stream_uncertainty`.
        offset, slope, scale: [M] tensors, one entry per modality, in the order of the inputs.
    """

    window: int
    offset: Tensor
    slope: Tensor
    scale: Tensor

    def weights(self, uncertainties: Sequence[Tensor]) -> Tensor:
        """The weights [M, N] of each modality at each input."""
        require(len(uncertainties) == len(self.offset), "uncertainties", len(uncertainties),
                f"one per modality ({len(self.offset)})")  # fmt: skip
        log_u = _log_stream(uncertainties, self.window)
        return _weights(self.offset, self.slope, self.scale, log_u)

    def pool(self, probs: Sequence[Tensor], uncertainties: Sequence[Tensor]) -> Tensor:
        """The pooled probabilities [N, C]."""
        return log_linear_pool(probs, list(self.weights(uncertainties)))


def fit_uncertainty_weighting(
    probs: Sequence[Tensor],
    uncertainties: Sequence[Tensor],
    labels: Tensor,
    *,
    window: int = 32,
    iterations: int = 200,
) -> UncertaintyWeighting:
    """Fit offset, slope and scale of every modality (L-BFGS) to the mean negative
    log-likelihood of the pooled prediction on validation data: ``probs`` [N, C] and
    ``uncertainties`` [N] (nats) per modality, ``labels`` [N]. The validation stream should
    hold windows of every condition the weighting will meet (e.g. clean and corrupted
    sensors)."""
    stacked = _check_probs(probs)
    check_count(window, "window", 1)
    check_count(iterations, "iterations", 1)
    require(isinstance(labels, Tensor) and labels.shape == stacked.shape[1:2], "labels",
            tuple(getattr(labels, "shape", ())), f"[{stacked.shape[1]}] class indices")  # fmt: skip
    m = len(stacked)
    offset = stacked.new_zeros(m, requires_grad=True)
    raw_slope = stacked.new_zeros(m, requires_grad=True)  # slope = softplus(raw) >= 0
    log_scale = stacked.new_zeros(m, requires_grad=True)
    optimiser = torch.optim.LBFGS([offset, raw_slope, log_scale], max_iter=iterations,
                                  line_search_fn="strong_wolfe")  # fmt: skip
    log_p = stacked.clamp_min(_LOG_FLOOR).log()
    log_u = _log_stream(uncertainties, window)

    def objective() -> Tensor:
        optimiser.zero_grad()
        w = _weights(offset, F.softplus(raw_slope), log_scale.exp(), log_u)
        loss = F.cross_entropy((w[..., None] * log_p).sum(0), labels)
        loss.backward()
        return loss

    optimiser.step(objective)
    with torch.no_grad():
        return UncertaintyWeighting(window, offset.detach().clone(),
                                    F.softplus(raw_slope).detach().clone(),
                                    log_scale.exp().detach().clone())  # fmt: skip
