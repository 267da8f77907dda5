"""The shared models: likelihoods and priors against scikit-learn and torch.distributions."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import log_loss

from memcim import ConfigError
from memcim.learning import network


def test_bernoulli_log_likelihood_matches_sklearn(gen):
    logits = torch.randn(3, 50, 1, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (50,), generator=gen)
    ll = network.log_likelihood(logits, y)
    for c in range(3):
        p1 = torch.sigmoid(logits[c, :, 0]).numpy()
        expected = -50 * log_loss(y.numpy(), p1, labels=[0, 1])
        assert ll[c].item() == pytest.approx(expected, rel=1e-9)


def test_softmax_log_likelihood_matches_sklearn(gen):
    logits = torch.randn(2, 4, 40, 3, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=gen)
    ll = network.log_likelihood(logits, y)
    assert ll.shape == (2, 4)
    probs = network.probabilities(logits)[1, 2].numpy()
    assert ll[1, 2].item() == pytest.approx(-40 * log_loss(y.numpy(), probs), rel=1e-9)


def test_gaussian_prior_matches_torch_distributions(gen):
    w = [torch.randn(5, 2, 3, generator=gen), torch.randn(5, 1, 3, generator=gen)]
    expected = sum(torch.distributions.Normal(0.0, 0.7).log_prob(t).sum((-2, -1)) for t in w)
    torch.testing.assert_close(network.gaussian_log_prior(w, 0.7), expected)
    assert torch.equal(network.gaussian_log_prior(w, None), torch.zeros(5))


def test_forward_is_the_dense_network(gen):
    w1, w2 = torch.randn(4, 3, generator=gen), torch.randn(1, 5, generator=gen)
    x = torch.randn(7, 2, generator=gen)
    h = torch.tanh(x @ w1[:, :2].T + w1[:, 2])
    torch.testing.assert_close(network.forward([w1, w2], x, "tanh"), h @ w2[:, :4].T + w2[:, 4])
    assert network.shapes((2, 4, 1)) == [(4, 3), (1, 5)]
    assert network.parameter_count((2, 4, 1)) == 17


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="layers"):
        network.check_layers((30,), "layers")
    with pytest.raises(ConfigError, match=r"\[N, 3\]"):
        network.check_data(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), (3, 1))
    with pytest.raises(ConfigError, match="NaN"):
        labels = torch.zeros(4, dtype=torch.long)
        network.check_data(torch.full((4, 3), float("nan")), labels, (3, 1))
    with pytest.raises(ConfigError, match="labels outside"):
        network.check_data(torch.zeros(4, 3), torch.full((4,), 2), (3, 1))
