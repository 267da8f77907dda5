"""OOD AUROC (OOD = positive class) against hand cases and sklearn's roc_auc_score."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from memcim import ConfigError
from memcim.metrics import ood_auroc


def _sklearn(score_in, score_out):
    y = np.r_[np.zeros(len(score_in)), np.ones(len(score_out))]
    return roc_auc_score(y, np.r_[score_in.numpy(), score_out.numpy()])


def test_hand_cases():
    low, high = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.7, 0.8])
    assert ood_auroc(low, high) == pytest.approx(1.0)
    assert ood_auroc(high, low) == pytest.approx(0.0)  # a reversed score
    assert ood_auroc(torch.zeros(4), torch.zeros(3)) == pytest.approx(0.5)  # all tied
    # Pairs (in, out): out wins 3 of the 4 pairs {(0,1) (0,3) (2,1) (2,3)} minus (2,1).
    assert ood_auroc(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 3.0])) == pytest.approx(0.75)


@pytest.mark.parametrize("shift", [0.0, 0.5, 2.0])
def test_random_scores_match_sklearn(gen, shift):
    score_in = torch.randn(300, generator=gen)
    score_out = torch.randn(200, generator=gen) + shift
    assert ood_auroc(score_in, score_out) == pytest.approx(_sklearn(score_in, score_out), abs=1e-6)


def test_tied_scores_match_sklearn(gen):
    # Integer scores in 0..4: most pairs are ties, which count one half.
    score_in = torch.randint(0, 4, (250,), generator=gen).float()
    score_out = torch.randint(1, 5, (150,), generator=gen).float()
    assert ood_auroc(score_in, score_out) == pytest.approx(_sklearn(score_in, score_out), abs=1e-6)
    assert ood_auroc(score_in.long(), score_out.long()) == pytest.approx(
        _sklearn(score_in, score_out), abs=1e-6
    )


def test_large_scores_are_not_saturated(gen):
    # torchmetrics passes scores outside [0, 1] through a sigmoid, which is 1.0 in float32 for
    # all of these; the rank transform keeps their order.
    score_in = 100 + torch.rand(100, generator=gen)
    score_out = 100.5 + torch.rand(100, generator=gen)
    expected = _sklearn(score_in, score_out)
    assert 0.75 < expected < 0.99  # population value 1 - 0.5²/2 = 0.875, far from tied 0.5
    assert ood_auroc(score_in, score_out) == pytest.approx(expected, abs=1e-6)


def test_infinite_scores():
    score_in = torch.tensor([0.0, 1.0, -float("inf")])
    score_out = torch.tensor([float("inf"), 0.5])
    assert ood_auroc(score_in, score_out) == pytest.approx(_sklearn_finite(score_in, score_out))


def _sklearn_finite(score_in, score_out):
    return _sklearn(score_in.clamp(-1e30, 1e30), score_out.clamp(-1e30, 1e30))


@pytest.mark.parametrize(
    ("score_in", "score_out", "match"),
    [
        (torch.tensor([]), torch.tensor([1.0]), r"score_in=.*both in-distribution and OOD"),
        (torch.tensor([1.0]), torch.tensor([]), r"score_out=.*both in-distribution and OOD"),
        (torch.tensor([1.0, float("nan")]), torch.tensor([1.0]), r"score_in=.*1 NaN"),
        (torch.ones(2, 2), torch.tensor([1.0]), r"score_in=.*1-D"),
        (torch.tensor([True]), torch.tensor([1.0]), r"score_in=.*real-valued"),
        ([0.1, 0.2], torch.tensor([1.0]), r"score_in='list'"),
    ],
)
def test_bad_input_is_rejected(score_in, score_out, match):
    with pytest.raises(ConfigError, match=match):
        ood_auroc(score_in, score_out)
