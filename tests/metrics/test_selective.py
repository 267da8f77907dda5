"""Accuracy-rejection curve: hand example, stable ties and a brute-force numpy reference."""

import math

import numpy as np
import pytest
import torch

from memcim import ConfigError
from memcim.metrics import (
    DEFAULT_COVERAGES,
    RejectionCurve,
    accuracy_at_coverage,
    accuracy_rejection_curve,
)


def _onehot_probs(pred, c=3):
    return torch.nn.functional.one_hot(torch.as_tensor(pred), c).double() * 0.9 + 0.1 / c


# Predictions right, wrong, right, wrong with uncertainties 0.1, 0.9, 0.2, 0.5.
PROBS = _onehot_probs([0, 1, 2, 0])
Y = torch.tensor([0, 2, 2, 1])
U = torch.tensor([0.1, 0.9, 0.2, 0.5])


def test_hand_example():
    curve = accuracy_rejection_curve(PROBS, Y, U, coverages=[0.25, 0.5, 0.75, 1.0])
    assert isinstance(curve, RejectionCurve)
    assert curve.n_kept.tolist() == [1, 2, 3, 4]
    torch.testing.assert_close(curve.accuracy, torch.tensor([1.0, 1.0, 2 / 3, 0.5]).double())
    torch.testing.assert_close(curve.coverage, torch.tensor([0.25, 0.5, 0.75, 1.0]).double())
    assert accuracy_at_coverage(PROBS, Y, U, 0.5) == 1.0
    assert accuracy_at_coverage(PROBS, Y, U) == 1.0  # default coverage 0.5


def test_coverage_rounds_up_and_keeps_at_least_one():
    probs = _onehot_probs([0] * 10)
    y = torch.zeros(10, dtype=torch.long)
    u = torch.arange(10.0)
    curve = accuracy_rejection_curve(probs, y, u, coverages=[0.3, 0.31, 0.01, 1.0])
    assert curve.n_kept.tolist() == [3, 4, 1, 10]  # 0.3 · 10 is 3.0000000000000004 in floats


def test_ties_are_broken_stably():
    # All equally uncertain: the first samples (by index) are kept.
    probs = _onehot_probs([0, 0, 0, 0])
    y = torch.tensor([0, 1, 0, 1])
    curve = accuracy_rejection_curve(probs, y, torch.zeros(4), coverages=[0.25, 0.5])
    torch.testing.assert_close(curve.accuracy, torch.tensor([1.0, 0.5]).double())
    flipped = accuracy_rejection_curve(probs, y.flip(0), torch.zeros(4), coverages=[0.25])
    assert flipped.accuracy.item() == 0.0


def test_matches_bruteforce_numpy(gen):
    n, c = 97, 4
    probs = torch.softmax(torch.randn(n, c, generator=gen, dtype=torch.float64), -1)
    y = torch.randint(0, c, (n,), generator=gen)
    u = torch.randint(0, 6, (n,), generator=gen).double()  # many ties
    curve = accuracy_rejection_curve(probs, y, u)
    correct = probs.numpy().argmax(1) == y.numpy()
    order = np.argsort(u.numpy(), kind="stable")
    expected = []
    for cov in DEFAULT_COVERAGES:
        k = max(1, math.ceil(round(cov * n, 9)))
        expected.append(correct[order[:k]].mean())
    np.testing.assert_allclose(curve.accuracy.numpy(), expected, atol=1e-12)
    assert curve.accuracy[-1].item() == pytest.approx(correct.mean())


def test_informative_uncertainty_gives_a_decreasing_curve(gen):
    n = 200
    probs = torch.softmax(torch.randn(n, 5, generator=gen), -1)
    y = torch.randint(0, 5, (n,), generator=gen)
    wrong = (probs.argmax(1) != y).double()
    curve = accuracy_rejection_curve(probs, y, wrong, coverages=torch.linspace(0.05, 1, 20))
    assert (curve.accuracy.diff() <= 0).all()
    assert curve.accuracy[0] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"coverages": [0.0, 0.5]}, r"coverages=.*\(0, 1\]"),
        ({"coverages": [1.5]}, r"coverages=.*\(0, 1\]"),
        ({"coverages": [float("nan")]}, "coverages="),
        ({"coverages": []}, "coverages="),
        ({"coverages": "0.5"}, "coverages="),
        ({"uncertainty": torch.tensor([0.1, float("nan"), 0.2, 0.3])}, r"uncertainty=.*NaN"),
        ({"uncertainty": torch.zeros(3)}, r"uncertainty=.*\[4\]"),
        ({"y": torch.tensor([0, 1, 2, 3])}, r"y=.*out of range"),
    ],
)
def test_bad_input_is_rejected(kwargs, match):
    args = {"probs": PROBS, "y": Y, "uncertainty": U} | kwargs
    with pytest.raises(ConfigError, match=match):
        accuracy_rejection_curve(**args)


@pytest.mark.parametrize("coverage", [0, 1.01, float("nan"), True, "half"])
def test_bad_single_coverage(coverage):
    with pytest.raises(ConfigError, match="coverage="):
        accuracy_at_coverage(PROBS, Y, U, coverage)
