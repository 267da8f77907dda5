"""GEM continual-learning summaries of an accuracy matrix."""

import math

import pytest
import torch

from memcim import ConfigError
from memcim.metrics import acc, bwt, forgetting

NAN = float("nan")
# R[i, j]: accuracy on task j after training task i; NaN above the diagonal (not yet trained).
R = [
    [0.95, NAN, NAN],
    [0.80, 0.93, NAN],
    [0.60, 0.85, 0.97],
]


def test_hand_computed():
    assert acc(R) == pytest.approx((0.60 + 0.85 + 0.97) / 3)
    assert bwt(R) == pytest.approx(((0.60 - 0.95) + (0.85 - 0.93)) / 2)
    assert forgetting(R) == pytest.approx(-bwt(R))
    assert forgetting(R) > 0


def test_matches_explicit_loops(gen):
    t = 6
    r = torch.rand(t, t, generator=gen, dtype=torch.float64)
    last = t - 1
    assert acc(r) == pytest.approx(sum(r[last, j].item() for j in range(t)) / t)
    expected = sum(r[last, j].item() - r[j, j].item() for j in range(last)) / last
    assert bwt(r) == pytest.approx(expected)
    assert acc(r.float()) == pytest.approx(acc(r), abs=1e-6)


def test_no_forgetting_and_single_task():
    r = torch.tensor([[90.0, 10.0], [90.0, 95.0]])  # percent stay percent
    assert bwt(r) == 0.0
    assert acc(r) == 92.5
    assert acc([[0.8]]) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("r", "match"),
    [
        (torch.ones(2, 3), r"R=.*square"),
        (torch.ones(4), r"R=.*square"),
        ([[0.9, 0.1], [NAN, 0.8]], "finite entries in the last row and on the diagonal"),
        ([[NAN, 0.1], [0.5, 0.8]], "finite entries"),
        ([[0.9, 0.1], [0.5]], "R="),
        ("abc", "R="),
    ],
)
def test_bad_matrix(r, match):
    for func in (acc, bwt, forgetting):
        with pytest.raises(ConfigError, match=match):
            func(r)


def test_bwt_needs_two_tasks():
    with pytest.raises(ConfigError, match="T >= 2"):
        bwt([[0.9]])
    with pytest.raises(ConfigError, match="T >= 2"):
        forgetting(torch.ones(1, 1))
    assert math.isfinite(acc(torch.ones(1, 1)))
