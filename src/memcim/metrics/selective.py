"""Selective prediction: accuracy after rejecting the most uncertain samples.

A model that knows what it does not know gains accuracy when it abstains on its most uncertain
inputs; the accuracy–rejection curve (accuracy against the fraction of samples kept, the
coverage) shows how much. A useless uncertainty gives a flat curve at the overall accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from memcim._errors import require
from memcim.metrics._checks import check_labels, check_number_list, check_probs, check_scores

# The default coverages: 5 %, 10 %, ..., 100 %.
DEFAULT_COVERAGES: tuple[float, ...] = tuple(k / 20 for k in range(1, 21))

# c · N is computed in floating point (0.3 · 10 = 3.0000000000000004, a relative error of a
# few 1e-16); shrinking it by this relative amount before the ceiling keeps such products on
# the integer they stand for, while any coverage that truly exceeds k / N still rounds up.
_ROUNDING_SLACK = 1e-12


@dataclass(frozen=True)
class RejectionCurve:
    """Accuracy of the retained samples at each coverage.

    Attributes:
        coverage: requested coverages [K], float64, in (0, 1].
        n_kept: number of retained samples [K], int64, ``ceil(coverage · N)`` and >= 1.
        accuracy: top-1 accuracy on the retained samples [K], float64, in [0, 1].
    """

    coverage: Tensor
    n_kept: Tensor
    accuracy: Tensor


def accuracy_rejection_curve(
    probs: Tensor,
    y: Tensor,
    uncertainty: Tensor,
    coverages: Sequence[float] | Tensor = DEFAULT_COVERAGES,
) -> RejectionCurve:
    """Accuracy after rejecting the most uncertain samples, at several coverages.

    The samples are sorted by increasing ``uncertainty`` with a *stable* sort, so among samples
    of equal uncertainty the one with the lower index is kept first: the result is deterministic,
    but with many ties (e.g. a quantised score) it depends on the sample order; shuffle the
    samples beforehand if that order is meaningful. For each coverage ``c`` the
    ``ceil(c · N)`` least uncertain samples are kept (the fewest whose fraction is at least
    ``c``, at least one).

    Args:
        probs: class probabilities [N, C]; the prediction is ``argmax_c``.
        y: labels [N], integer in ``0..C-1``.
        uncertainty: per-sample uncertainty [N], higher = less trustworthy (e.g. total or
            epistemic entropy from :func:`memcim.metrics.decompose`); real, +inf allowed
            (always rejected first), NaN not.
        coverages: fractions of samples to keep, each in (0, 1]; a sequence or 1-D tensor
            (default 0.05, 0.10, ..., 1.0).

    Returns:
        :class:`RejectionCurve` (on the CPU) with one entry per coverage, in the given order.

    Raises:
        ConfigError: invalid ``probs`` / ``y``, ``uncertainty`` not a real 1-D tensor [N] or
            containing NaN, or a coverage outside (0, 1].
    """
    covs = check_number_list(coverages, "coverages", low=0.0, high=1.0, low_open=True)
    check_probs(probs, "probs", 2)
    n = probs.shape[0]
    y = check_labels(y, n, probs.shape[1]).to(probs.device)
    check_scores(uncertainty, "uncertainty", n)
    correct = (probs.argmax(-1) == y).cpu()
    order = torch.sort(uncertainty.cpu(), stable=True).indices
    hits = torch.cumsum(correct[order].long(), 0)
    n_kept = torch.tensor(
        [max(1, math.ceil(c * n * (1 - _ROUNDING_SLACK))) for c in covs],
        dtype=torch.long,
        device="cpu",
    )
    return RejectionCurve(
        coverage=torch.tensor(covs, dtype=torch.float64, device="cpu"),
        n_kept=n_kept,
        accuracy=hits[n_kept - 1].double() / n_kept.double(),
    )


def accuracy_at_coverage(
    probs: Tensor, y: Tensor, uncertainty: Tensor, coverage: float = 0.5
) -> float:
    """Accuracy on the ``ceil(coverage · N)`` least uncertain samples.

    One point of :func:`accuracy_rejection_curve` (same sorting and tie rule).

    Args:
        probs: class probabilities [N, C].
        y: labels [N], integer in ``0..C-1``.
        uncertainty: per-sample uncertainty [N], higher = less trustworthy.
        coverage: fraction of samples to keep, in (0, 1] (default 0.5).

    Returns:
        Top-1 accuracy on the retained samples, in [0, 1].

    Raises:
        ConfigError: see :func:`accuracy_rejection_curve`.
    """
    if isinstance(coverage, Tensor) and coverage.ndim == 0:
        coverage = float(coverage)
    require(
        isinstance(coverage, int | float)
        and not isinstance(coverage, bool)
        and math.isfinite(coverage)
        and 0 < coverage <= 1,
        "coverage",
        coverage,
        "a number in (0, 1]",
    )
    curve = accuracy_rejection_curve(probs, y, uncertainty, coverages=[coverage])
    return float(curve.accuracy[0])
