"""Fusion rules of classifiers that see one object through different sensors."""

from __future__ import annotations

import math

import pytest
import torch

from memcim import ConfigError
from memcim.metrics import accuracy, nll
from memcim.spiking.fusion import (
    UNCERTAINTY_FLOOR,
    fit_uncertainty_weighting,
    log_linear_pool,
    mean_of_probabilities,
    product_of_experts,
    stream_uncertainty,
)

P = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
Q = torch.tensor([[0.5, 0.25, 0.25], [0.3, 0.6, 0.1]])


def test_product_of_experts_is_the_normalised_product():
    by_hand = P * Q / (P * Q).sum(-1, keepdim=True)
    torch.testing.assert_close(product_of_experts([P, Q]), by_hand)


def test_a_uniform_expert_changes_nothing_in_the_product():
    torch.testing.assert_close(product_of_experts([P, torch.full_like(P, 1 / 3)]), P)


def test_log_linear_pool_weights():
    torch.testing.assert_close(log_linear_pool([P, Q], [1.0, 0.0]), P)
    torch.testing.assert_close(log_linear_pool([P, Q], [1.0, 1.0]), product_of_experts([P, Q]))
    half = P.sqrt() * Q.sqrt()
    torch.testing.assert_close(log_linear_pool([P, Q], [0.5, 0.5]), half / half.sum(-1, True))
    per_input = log_linear_pool([P, Q], [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])])
    torch.testing.assert_close(per_input, torch.stack([P[0], Q[1]]))


def test_mean_of_probabilities():
    torch.testing.assert_close(mean_of_probabilities([P, Q]), (P + Q) / 2)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: log_linear_pool([P, Q], [1.0]), "weights"),
        (lambda: log_linear_pool([P, Q], [1.0, -1.0]), "weights"),
        (lambda: product_of_experts([P, Q[:1]]), "probs"),
        (lambda: product_of_experts([]), "probs"),
        (lambda: stream_uncertainty(torch.ones(4), 0), "window"),
        (lambda: stream_uncertainty(torch.ones(2, 2), 2), "uncertainty"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ConfigError, match=field):
        call()


def test_stream_uncertainty_is_the_geometric_mean_of_each_window():
    u = torch.tensor([1.0, 4.0, 2.0, 8.0, 3.0])
    expected = torch.tensor([2.0, 2.0, 4.0, 4.0, 3.0])  # sqrt(1*4), sqrt(2*8), the lone 3
    torch.testing.assert_close(stream_uncertainty(u, 2), expected)
    torch.testing.assert_close(stream_uncertainty(u, 1), u)
    zero = stream_uncertainty(torch.zeros(3), 3)
    torch.testing.assert_close(zero, torch.full((3,), UNCERTAINTY_FLOOR))


def _stream(n: int, generator: torch.Generator):
    """Two sensors of one class label, in windows of 16: A is sharp and right on clean
    windows and confidently wrong on corrupted ones, where its uncertainty is 10x higher;
    B is right 80 % of the time with a soft prediction and a constant uncertainty."""
    y = torch.randint(0, 4, (n,), generator=generator)
    corrupted = (torch.rand(n // 16, generator=generator) < 0.5).repeat_interleave(16)
    wrong = (y + torch.randint(1, 4, (n,), generator=generator)) % 4
    a_label = torch.where(corrupted, wrong, y)
    a = torch.full((n, 4), 0.02).scatter_(1, a_label[:, None], 0.94)
    b_label = torch.where(torch.rand(n, generator=generator) < 0.8, y, wrong)
    b = torch.full((n, 4), 0.1).scatter_(1, b_label[:, None], 0.7)
    noise = torch.exp(0.3 * torch.randn(n, generator=generator))
    u_a = torch.where(corrupted, 0.1, 0.01) * noise
    return [a, b], [u_a, torch.full((n,), 0.05)], y, corrupted


def test_uncertainty_weighting_trusts_the_sensor_that_is_not_corrupted():
    """Fitted on one stream, scored on another: on corrupted windows the pooled prediction
    follows B (the product of experts follows the confident, wrong A), on clean ones A. With
    A's uncertainty shuffled across windows (the mechanism removed) the same fit cannot tell
    the windows apart and its likelihood is far worse."""
    gen = torch.Generator().manual_seed(0)
    probs, u, y, _ = _stream(4096, gen)
    weighting = fit_uncertainty_weighting(probs, u, y, window=16)
    probs, u, y, corrupted = _stream(4096, gen)
    fused = weighting.pool(probs, u)
    w = weighting.weights(u)
    assert float(w[0][corrupted].mean()) < 0.2 * float(w[0][~corrupted].mean())
    # B alone is right 80 % of the time; the SE of an accuracy over ~2000 inputs is 0.9 %.
    assert accuracy(fused[corrupted], y[corrupted]) > 0.77
    assert accuracy(fused[~corrupted], y[~corrupted]) > 0.99
    poe = product_of_experts(probs)
    assert nll(fused, y) < 0.5 * nll(poe, y)

    shuffled = [u[0][torch.randperm(len(y), generator=gen)], u[1]]
    blind = fit_uncertainty_weighting(probs, shuffled, y, window=16)
    assert nll(blind.pool(probs, shuffled), y) > nll(fused, y) + 0.2
    assert math.isfinite(nll(blind.pool(probs, shuffled), y))
