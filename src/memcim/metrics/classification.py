"""Accuracy and proper scoring rules of predicted class probabilities, and calibration.

Every function takes probabilities ``probs`` [N, C] (not logits: apply ``softmax`` first, or
pass the Monte-Carlo mean ``decompose(p).mean``) and integer labels ``y`` [N] in ``0..C-1``.
The predicted class is ``argmax_c probs[n, c]`` (the first maximum on ties).

Calibration follows Guo et al. 2017: the top-1 confidence ``max_c p̄_c`` is binned into
``n_bins`` equal-width bins over [0, 1] (15 by default, ``docs/references.md`` "Bayesian CIM"), and
the expected calibration error is the sample-weighted mean of ``|accuracy − confidence|`` over
bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from memcim._errors import check_count, require
from memcim.metrics._checks import check_labels, check_probs


def _checked(probs: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Validated, detached ``probs`` (the results are plain numbers) and ``y`` on its device."""
    check_probs(probs, "probs", 2)
    y = check_labels(y, probs.shape[0], probs.shape[1])
    return probs.detach(), y.to(probs.device)


def _binnable(probs: Tensor) -> Tensor:
    """``probs`` in at least float32: half-precision bin sums would lose digits of the ECE."""
    return probs.float() if probs.element_size() < 4 else probs


def _correct(probs: Tensor, y: Tensor) -> Tensor:
    """Boolean [N]: is the top-1 class the label (validated inputs)."""
    return probs.argmax(-1) == y


def accuracy(probs: Tensor, y: Tensor) -> float:
    """Top-1 accuracy.

    Args:
        probs: class probabilities [N, C].
        y: labels [N], integer in ``0..C-1``.

    Returns:
        Fraction of samples whose ``argmax_c probs[n, c]`` equals ``y[n]``, in [0, 1].

    Raises:
        ConfigError: bad shapes, NaN, probabilities outside [0, 1] or not summing to 1, or
            labels out of range.
    """
    probs, y = _checked(probs, y)
    return float(_correct(probs, y).double().mean())


def nll(probs: Tensor, y: Tensor, *, min_prob: float = 1e-12) -> float:
    """Mean negative log-likelihood (cross-entropy) of the labels, in nats.

    Args:
        probs: class probabilities [N, C].
        y: labels [N], integer in ``0..C-1``.
        min_prob: the probability of the true class is clamped to at least this value before
            the logarithm, so a sample predicted with probability 0 (a saturated float32
            softmax) costs ``−log(min_prob)`` (27.6 nats for the default 1e-12) instead of inf.
            In (0, 1).

    Returns:
        ``−mean_n log max(probs[n, y[n]], min_prob)``, nats, >= 0.

    Raises:
        ConfigError: invalid ``probs`` / ``y`` (see :func:`accuracy`) or ``min_prob``.
    """
    require(
        isinstance(min_prob, int | float) and 0 < min_prob < 1,
        "min_prob",
        min_prob,
        "a number in (0, 1)",
    )
    probs, y = _checked(probs, y)
    p_true = probs.gather(1, y[:, None])[:, 0].double().clamp_min(min_prob)
    return float(-p_true.log().mean())


def brier(probs: Tensor, y: Tensor) -> float:
    """Multiclass Brier score (Brier 1950): mean over samples of ``Σ_c (p_c − onehot_c)²``.

    This is the original multiclass convention, in [0, 2] (0 for a confident correct
    prediction, 2 for a confident wrong one). For C = 2 it is twice the binary score
    ``mean (p_1 − y)²`` of ``sklearn.metrics.brier_score_loss``; it equals sklearn's value with
    ``scale_by_half=False``.

    Args:
        probs: class probabilities [N, C].
        y: labels [N], integer in ``0..C-1``.

    Returns:
        The Brier score, in [0, 2].

    Raises:
        ConfigError: invalid ``probs`` / ``y`` (see :func:`accuracy`).
    """
    probs, y = _checked(probs, y)
    onehot = torch.nn.functional.one_hot(y, probs.shape[1]).to(torch.float64)
    return float((probs.double() - onehot).square().sum(1).mean())


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin statistics of top-1 confidence, for a reliability diagram.

    Bin ``k`` holds confidences in ``[edges[k], edges[k+1])``; the last bin is closed,
    ``[edges[B-1], 1]``.

    Attributes:
        edges: bin edges [B + 1], ``linspace(0, 1, B + 1)``, float64.
        confidence: mean top-1 confidence per bin [B], float64; NaN for an empty bin.
        accuracy: fraction of correct top-1 predictions per bin [B], float64; NaN for an
            empty bin.
        count: number of samples per bin [B], int64.
    """

    edges: Tensor
    confidence: Tensor
    accuracy: Tensor
    count: Tensor

    @property
    def ece(self) -> float:
        """Expected calibration error ``Σ_k (count_k / N) |accuracy_k − confidence_k|``."""
        full = self.count > 0
        weights = self.count[full].double() / self.count.sum()
        gaps = (self.accuracy[full] - self.confidence[full]).abs().double()
        return float((weights * gaps).sum())


def reliability_curve(probs: Tensor, y: Tensor, n_bins: int = 15) -> ReliabilityCurve:
    """Bin the top-1 confidence and compare it with the accuracy in each bin.

    The bins are those of :func:`ece` (``torch.linspace(0, 1, n_bins + 1)`` in the dtype of
    ``probs``, or float32 for half-precision ``probs``; each bin closed on the left, the last
    one on both sides), so ``reliability_curve(p, y, B).ece`` equals ``ece(p, y, B)`` up to
    rounding.

    Args:
        probs: class probabilities [N, C].
        y: labels [N], integer in ``0..C-1``.
        n_bins: number B of equal-width bins over [0, 1], >= 1.

    Returns:
        :class:`ReliabilityCurve` with ``B`` bins, on the device of ``probs``; per-bin sums
        and means are accumulated in float64.

    Raises:
        ConfigError: invalid ``probs`` / ``y`` (see :func:`accuracy`) or ``n_bins``.
    """
    n_bins = check_count(n_bins, "n_bins", 1)
    probs, y = _checked(probs, y)
    probs = _binnable(probs)
    conf, pred = probs.max(-1)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=probs.dtype, device=probs.device)
    # right=True puts x in bin k iff edges[k] <= x < edges[k+1], like torchmetrics; a
    # confidence of exactly 1 then lands one past the end and belongs to the last bin.
    idx = (torch.bucketize(conf, edges, right=True) - 1).clamp_(0, n_bins - 1)
    count = torch.bincount(idx, minlength=n_bins)
    zeros = torch.zeros(n_bins, dtype=torch.float64, device=probs.device)
    sum_conf = zeros.index_add(0, idx, conf.double())
    sum_acc = zeros.index_add(0, idx, (pred == y).double())
    denom = count.double()
    nan = torch.full_like(denom, float("nan"))
    full = count > 0
    return ReliabilityCurve(
        edges=edges.double(),
        confidence=torch.where(full, sum_conf / denom, nan),
        accuracy=torch.where(full, sum_acc / denom, nan),
        count=count,
    )


def ece(probs: Tensor, y: Tensor, n_bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence (Guo et al. 2017), L1 norm.

    Computed by torchmetrics' ``multiclass_calibration_error(num_classes=C, n_bins=n_bins,
    norm="l1")``. torchmetrics 1.x counts a confidence of exactly 1.0 in an extra bin of its
    own (Lightning-AI/torchmetrics#3510); such probabilities are lowered by one ulp first so
    that they fall in the last bin ``[1 − 1/B, 1]`` of the textbook definition, as in
    :func:`reliability_curve`.

    Args:
        probs: class probabilities [N, C], e.g. the Monte-Carlo mean ``p̄``.
        y: labels [N], integer in ``0..C-1``.
        n_bins: number of equal-width confidence bins over [0, 1], >= 1 (15 by default).

    Returns:
        ``Σ_k (n_k / N) |acc_k − conf_k|``, in [0, 1].

    Raises:
        ConfigError: invalid ``probs`` / ``y`` (see :func:`accuracy`) or ``n_bins``.
    """
    # Imported on use: torchmetrics takes about a second to import (it loads scipy), which
    # ``import memcim.metrics`` (and the CLI above it) should not pay.
    from torchmetrics.functional.classification import multiclass_calibration_error

    n_bins = check_count(n_bins, "n_bins", 1)
    probs, y = _checked(probs, y)
    probs = _binnable(probs)
    one = torch.ones((), dtype=probs.dtype, device=probs.device)
    below_one = torch.nextafter(one, torch.zeros_like(one))
    return float(multiclass_calibration_error(probs.clamp(max=below_one), y,
                                              num_classes=probs.shape[1], n_bins=n_bins,
                                              norm="l1"))  # fmt: skip
