"""Accuracy, NLL, Brier, ECE and the reliability curve: hand examples, sklearn and numpy checks."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss

from memcim import ConfigError
from memcim.metrics import ReliabilityCurve, accuracy, brier, ece, nll, reliability_curve

# Three samples, three classes: predictions 0 (right), 1 (wrong, label 2), 2 (right).
P = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], dtype=torch.float64)
Y = torch.tensor([0, 2, 2])


def _random(gen, n=400, c=4, dtype=torch.float64):
    logits = 2.5 * torch.randn(n, c, generator=gen, dtype=dtype)
    y = torch.randint(0, c, (n,), generator=gen)
    return torch.softmax(logits, -1), y


def _numpy_ece(probs: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    """Textbook ECE (Guo et al. 2017): equal-width bins, each [lo, hi) except the last [lo, 1]."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for k in range(n_bins):
        hi_ok = conf <= edges[k + 1] if k == n_bins - 1 else conf < edges[k + 1]
        in_bin = (conf >= edges[k]) & hi_ok
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(total)


def test_hand_computed_example():
    assert accuracy(P, Y) == pytest.approx(2 / 3)
    assert nll(P, Y) == pytest.approx(-(math.log(0.7) + math.log(0.3) + math.log(0.8)) / 3)
    sq = [0.3**2 + 0.2**2 + 0.1**2, 0.2**2 + 0.5**2 + 0.7**2, 0.1**2 + 0.1**2 + 0.2**2]
    assert brier(P, Y) == pytest.approx(sum(sq) / 3)
    # One bin per third: confidences 0.7 (bin 2, right), 0.5 (bin 1, wrong), 0.8 (bin 2, right).
    expected = (1 / 3) * abs(0 - 0.5) + (2 / 3) * abs(1 - 0.75)
    assert ece(P, Y, n_bins=3) == pytest.approx(expected, abs=1e-7)


def test_perfect_confident_predictions():
    eye = torch.eye(3)
    y = torch.arange(3)
    assert accuracy(eye, y) == 1.0
    assert nll(eye, y) == pytest.approx(0.0, abs=1e-12)
    assert brier(eye, y) == 0.0
    assert ece(eye, y) == pytest.approx(0.0, abs=1e-6)
    assert brier(eye, (y + 1) % 3) == 2.0  # confident and wrong: the maximum


def test_nll_clamps_zero_probability():
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    y = torch.tensor([1, 0])
    assert nll(probs, y) == pytest.approx((-math.log(1e-12) + math.log(2)) / 2)
    assert nll(probs, y, min_prob=1e-3) == pytest.approx((-math.log(1e-3) + math.log(2)) / 2)


def test_against_sklearn_binary(gen):
    p1 = torch.rand(300, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    y = (torch.rand(300, generator=gen, dtype=torch.float64) < p1).long()
    probs = torch.stack([1 - p1, p1], 1)
    assert nll(probs, y) == pytest.approx(log_loss(y.numpy(), p1.numpy()), abs=1e-12)
    # Our multiclass Brier sums over both classes: twice the binary score.
    assert brier(probs, y) == pytest.approx(2 * brier_score_loss(y.numpy(), p1.numpy()), abs=1e-12)


def test_against_sklearn_multiclass(gen):
    probs, y = _random(gen, c=4)
    probs = probs.clamp_min(1e-6)
    probs = probs / probs.sum(1, keepdim=True)  # away from 0 so no clamp is involved
    labels = list(range(4))
    assert nll(probs, y) == pytest.approx(log_loss(y.numpy(), probs.numpy(), labels=labels))
    sk = brier_score_loss(y.numpy(), probs.numpy(), labels=labels, scale_by_half=False)
    assert brier(probs, y) == pytest.approx(sk, abs=1e-12)
    assert accuracy(probs, y) == pytest.approx(float((probs.numpy().argmax(1) == y.numpy()).mean()))


@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_ece_matches_numpy_and_reliability_curve(gen, n_bins):
    probs, y = _random(gen, n=200, c=3, dtype=torch.float32)
    expected = _numpy_ece(probs.double().numpy(), y.numpy(), n_bins)
    assert ece(probs, y, n_bins) == pytest.approx(expected, abs=1e-6)
    assert reliability_curve(probs, y, n_bins).ece == pytest.approx(expected, abs=1e-6)


def test_ece_puts_confidence_one_in_the_last_bin():
    # torchmetrics 1.x would count the 1.0 in a bin of its own (|0 - 1| · 1/2 + |1 - 0.95| · 1/2
    # = 0.525); in the textbook last bin [14/15, 1] the pair averages to |0.5 - 0.975| / 1.
    probs = torch.tensor([[0.95, 0.05], [1.0, 0.0]])
    y = torch.tensor([0, 1])
    expected = _numpy_ece(probs.double().numpy(), y.numpy(), 15)
    assert expected == pytest.approx(0.475)
    assert ece(probs, y) == pytest.approx(expected, abs=1e-6)
    assert reliability_curve(probs, y).ece == pytest.approx(expected, abs=1e-6)


def test_reliability_curve_hand_example():
    curve = reliability_curve(P, Y, n_bins=4)
    assert isinstance(curve, ReliabilityCurve)
    torch.testing.assert_close(curve.edges, torch.tensor([0, 0.25, 0.5, 0.75, 1.0]).double())
    # Confidences 0.7 -> [0.5, 0.75), 0.5 -> [0.5, 0.75) (left-closed), 0.8 -> [0.75, 1].
    assert curve.count.tolist() == [0, 0, 2, 1]
    assert curve.count.dtype == torch.int64
    assert torch.isnan(curve.confidence[:2]).all() and torch.isnan(curve.accuracy[:2]).all()
    torch.testing.assert_close(curve.confidence[2:], torch.tensor([0.6, 0.8]).double())
    torch.testing.assert_close(curve.accuracy[2:], torch.tensor([0.5, 1.0]).double())


def test_reliability_curve_counts_every_sample(gen):
    probs, y = _random(gen, n=500, c=10)
    curve = reliability_curve(probs, y)
    assert curve.count.sum() == 500
    full = curve.count > 0
    conf = curve.confidence[full]
    assert ((conf >= curve.edges[:-1][full]) & (conf <= curve.edges[1:][full])).all()
    assert ((curve.accuracy[full] >= 0) & (curve.accuracy[full] <= 1)).all()


FUNCS = [accuracy, nll, brier, ece, reliability_curve]


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize(
    ("probs", "y", "match"),
    [
        (torch.full((3,), 1 / 3), Y, r"probs=.*\[N, C\]"),
        (torch.ones(3, 1), Y, r"probs=.*C >= 2"),
        (torch.tensor([[0.5, 0.5], [float("nan"), 0.5]]), torch.tensor([0, 1]), "NaN"),
        (torch.tensor([[2.0, -1.0]]), torch.tensor([0]), r"outside \[0, 1\]"),
        (torch.tensor([[0.3, 0.3]]), torch.tensor([0]), "rows sum to 1"),
        (P, torch.tensor([0, 1]), r"y=.*label tensor \[3\]"),
        (P, Y.double(), r"y=.*integer label tensor"),
        (P, torch.tensor([0, 1, 3]), r"y=.*1 labels out of range.*0\.\.2"),
        (P, torch.tensor([0, -1, 2]), r"y=.*out of range"),
    ],
)
def test_bad_input_is_rejected(func, probs, y, match):
    with pytest.raises(ConfigError, match=match):
        func(probs, y)


@pytest.mark.parametrize("func", [ece, reliability_curve])
@pytest.mark.parametrize("n_bins", [0, 2.0, True])
def test_bad_n_bins(func, n_bins):
    with pytest.raises(ConfigError, match="n_bins="):
        func(P, Y, n_bins=n_bins)


@pytest.mark.parametrize("min_prob", [0, 1, -1e-3, "x"])
def test_bad_min_prob(min_prob):
    with pytest.raises(ConfigError, match="min_prob="):
        nll(P, Y, min_prob=min_prob)


def test_softmax_rounding_is_accepted():
    probs = torch.softmax(torch.randn(64, 1000, generator=torch.Generator().manual_seed(0)), -1)
    assert 0 <= nll(probs, torch.zeros(64, dtype=torch.long)) < 20


def test_half_precision_and_autograd_inputs(gen):
    probs, y = _random(gen, n=300, c=4, dtype=torch.float32)
    reference = ece(probs, y)
    for dtype in (torch.float16, torch.bfloat16):
        low = probs.to(dtype)
        # Bins are summed in float32 or better, so only the inputs' own rounding (~eps / 2
        # per confidence, plus the rare sample moved across a bin edge) separates the results.
        assert ece(low, y) == pytest.approx(reference, abs=0.02)
        assert reliability_curve(low, y).ece == pytest.approx(ece(low, y), abs=1e-6)
    leaf = probs.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "converting a tensor with requires_grad=True"
        for func in FUNCS:
            func(leaf, y)
