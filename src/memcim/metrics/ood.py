"""Out-of-distribution detection: AUROC of an uncertainty score, OOD as the positive class."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from memcim._errors import require
from memcim.metrics._checks import check_scores


def ood_auroc(score_in: Tensor, score_out: Tensor) -> float:
    """Area under the ROC curve for telling out-of-distribution samples from in-distribution ones.

    The score is any uncertainty where *higher means more likely OOD* (e.g. the epistemic or
    total uncertainty of :func:`memcim.metrics.decompose`); OOD samples are the positive class
    (``docs/references.md``, "Bayesian CIM"). The AUROC is the probability that a random OOD sample
    scores higher than a random in-distribution one, ties counting one half: 1 is perfect
    separation, 0.5 chance, 0 a reversed score.

    Computed exactly (no threshold grid) by torchmetrics' ``binary_auroc``. The scores are
    first replaced by their ranks, scaled to [0, 1] in float64: the AUROC depends only on the
    order, and torchmetrics would otherwise pass scores outside [0, 1] through a sigmoid, which
    saturates in float32 (for scores above about 17) and would merge distinct scores into ties.

    Args:
        score_in: scores of the in-distribution samples [N_in], real-valued (±inf allowed).
        score_out: scores of the out-of-distribution samples [N_out], real-valued.

    Returns:
        The AUROC, in [0, 1].

    Raises:
        ConfigError: a score tensor is not 1-D and real, is empty (only one class would be
            present, and the AUROC is undefined), or contains NaN.
    """
    # Imported on use: torchmetrics takes about a second to import (see metrics.classification).
    from torchmetrics.functional.classification import binary_auroc

    for field, score in (("score_in", score_in), ("score_out", score_out)):
        require(
            not (isinstance(score, Tensor) and score.ndim == 1 and score.shape[0] == 0),
            field,
            "an empty tensor",
            "at least one sample: the AUROC needs both in-distribution and OOD samples",
        )
        check_scores(score, field)
    scores = torch.cat([score_in.double().flatten(), score_out.double().to(score_in.device)])
    # Dense ranks keep ties tied and distinct values distinct (float64 holds any rank exactly).
    unique, ranks = torch.unique(scores, return_inverse=True)
    ranked = ranks.double() / max(unique.numel() - 1, 1)
    target = torch.cat(
        [
            torch.zeros(score_in.shape[0], dtype=torch.long, device=scores.device),
            torch.ones(score_out.shape[0], dtype=torch.long, device=scores.device),
        ]
    )
    return float(binary_auroc(ranked, target, thresholds=None))


def select_ood_score(
    validation: Mapping[str, tuple[Tensor, Tensor]],
) -> tuple[str, dict[str, float]]:
    """Choose an OOD score on validation data: the one with the highest validation AUROC.

    Taking the better of several scores by their AUROC on the test set reports an optimistic
    maximum (the choice is fitted to the test samples). The choice belongs to held-out data:
    in-distribution validation samples and OOD samples distinct from the test ones; the test
    AUROC reported is then that of the chosen score.

    Args:
        validation: score name -> (scores of in-distribution validation samples [N_in],
            scores of OOD validation samples [N_out]), higher meaning more likely OOD.

    Returns:
        ``(name, aurocs)``: the chosen score (ties: the first in ``validation``'s order) and
        every score's validation AUROC.

    Raises:
        ConfigError: no score is given, or a score fails :func:`ood_auroc`'s checks.
    """
    require(len(validation) > 0, "validation", validation, "at least one named score")
    aurocs = {name: ood_auroc(s_in, s_out) for name, (s_in, s_out) in validation.items()}
    best = max(aurocs.values())
    return next(name for name, a in aurocs.items() if a == best), aurocs
