"""Metrics of Bayesian and continual learning on simulated memristive hardware.

Plain functions of tensors (nothing here depends on the rest of memcim except
:class:`memcim.ConfigError`, and :func:`accuracy_under_noise` on the private input corruption
that :func:`memcim.data.gaussian_corruption` publishes); bad input raises
:class:`memcim.ConfigError`.
Probabilities are [N, C] (or [S, N, C] for S Monte-Carlo samples), labels integer [N];
entropies are in nats.

- Uncertainty (:mod:`.uncertainty`): :func:`decompose` -> :class:`UncertaintyDecomposition`
  (``mean``, ``total``, ``aleatoric``, ``epistemic``).
- Classification (:mod:`.classification`): :func:`accuracy`, :func:`nll`, :func:`brier`,
  :func:`ece` (15 bins by default), :func:`reliability_curve` -> :class:`ReliabilityCurve`.
- OOD detection (:mod:`.ood`): :func:`ood_auroc` (OOD = positive class).
- Selective prediction (:mod:`.selective`): :func:`accuracy_rejection_curve` ->
  :class:`RejectionCurve`, :func:`accuracy_at_coverage`.
- Robustness (:mod:`.robustness`): :func:`accuracy_under_noise` (Gaussian input noise).
- Continual learning (:mod:`.continual`): :func:`acc`, :func:`bwt`, :func:`forgetting` of an
  accuracy matrix ``R[i, j]``.
"""

from memcim.metrics.classification import (
    ReliabilityCurve,
    accuracy,
    brier,
    ece,
    nll,
    reliability_curve,
)
from memcim.metrics.continual import acc, bwt, forgetting
from memcim.metrics.ood import ood_auroc
from memcim.metrics.robustness import accuracy_under_noise
from memcim.metrics.selective import (
    DEFAULT_COVERAGES,
    RejectionCurve,
    accuracy_at_coverage,
    accuracy_rejection_curve,
)
from memcim.metrics.uncertainty import UncertaintyDecomposition, decompose

__all__ = [
    "DEFAULT_COVERAGES",
    "RejectionCurve",
    "ReliabilityCurve",
    "UncertaintyDecomposition",
    "acc",
    "accuracy",
    "accuracy_at_coverage",
    "accuracy_rejection_curve",
    "accuracy_under_noise",
    "brier",
    "bwt",
    "decompose",
    "ece",
    "forgetting",
    "nll",
    "ood_auroc",
    "reliability_curve",
]
