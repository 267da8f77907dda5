"""Decomposition of Monte-Carlo predictive uncertainty into aleatoric and epistemic parts.

With S Monte-Carlo predictions ``p_s`` (one per sampled weight set, e.g. one per memristor
read or per array row), the predictive distribution is ``p̄ = mean_s p_s`` and

- total uncertainty ``H[p̄]`` (predictive entropy),
- aleatoric uncertainty ``mean_s H[p_s]`` (expected entropy: noise the model sees in the data),
- epistemic uncertainty ``H[p̄] − mean_s H[p_s]``, the mutual information between the label and
  the weights (disagreement between samples; >= 0 by concavity of the entropy).

All in nats (natural logarithm). See Depeweg et al. 2018 and Bonnet et al. [8] in
``docs/references.md`` ("Bayesian CIM").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from memcim.metrics._checks import check_probs


@dataclass(frozen=True)
class UncertaintyDecomposition:
    """Predictive mean and its entropy decomposition, per sample.

    Attributes:
        mean: predictive probabilities ``p̄ = mean_s p_s``, [N, C].
        total: ``H[p̄]``, nats, [N]; in ``[0, log C]``.
        aleatoric: ``mean_s H[p_s]``, nats, [N]; in ``[0, total]`` up to rounding.
        epistemic: ``total − aleatoric`` (mutual information), nats, [N]; >= 0.
    """

    mean: Tensor
    total: Tensor
    aleatoric: Tensor
    epistemic: Tensor


def _entropy(probs: Tensor) -> Tensor:
    """Shannon entropy along the last axis, in nats, with ``0 · log 0 = 0``.

    Args:
        probs: probabilities [..., C], already validated.

    Returns:
        ``−Σ_c p_c log p_c``, shape [...].
    """
    # entr(p) = -p log p, defined as 0 at p = 0, so saturated softmax outputs give no NaN.
    return torch.special.entr(probs).sum(-1)


def decompose(probs: Tensor) -> UncertaintyDecomposition:
    """Split the uncertainty of Monte-Carlo predictions into aleatoric and epistemic parts.

    Args:
        probs: class probabilities of S Monte-Carlo samples, [S, N, C] (S >= 1, C >= 1),
            floating point, entries in [0, 1], each row summing to 1 within
            ``max(1e-4, C · eps)``.

    Returns:
        :class:`UncertaintyDecomposition` with ``mean`` [N, C] and ``total``, ``aleatoric``,
        ``epistemic`` [N] in nats, in the dtype of ``probs``. ``epistemic`` is clamped at 0:
        mathematically it is >= 0, and the clamp only removes rounding of order
        ``eps · log C`` when all samples agree. With S = 1 it is 0.

    Raises:
        ConfigError: ``probs`` is not a floating [S, N, C] tensor, contains NaN, has entries
            outside [0, 1], or has rows that do not sum to 1.

    Example:
        >>> p = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # two samples that disagree
        >>> d = decompose(p)
        >>> round(float(d.epistemic[0]), 4)  # log 2: all of it is epistemic
        0.6931
    """
    check_probs(probs, "probs", 3, min_classes=1)
    mean = probs.mean(0)
    total = _entropy(mean)
    aleatoric = _entropy(probs).mean(0)
    epistemic = (total - aleatoric).clamp_min(0)
    return UncertaintyDecomposition(
        mean=mean, total=total, aleatoric=aleatoric, epistemic=epistemic
    )
