"""Entropy decomposition: hand-computed cases, a numpy reimplementation, entropy identities."""

import math

import numpy as np
import pytest
import torch

from memcim import ConfigError
from memcim.metrics import UncertaintyDecomposition, decompose


def _h(*p: float) -> float:
    return -sum(q * math.log(q) for q in p if q > 0)


def _random_mc_probs(gen, s=7, n=50, c=5, zeros=True):
    """Dirichlet-like probabilities [S, N, C] with some exact zeros (saturated classes)."""
    p = torch.rand(s, n, c, generator=gen, dtype=torch.float64) ** 3
    if zeros:
        p = p * (torch.rand(s, n, c, generator=gen, dtype=torch.float64) > 0.3)
        p[..., 0] += 1e-3  # keep every row non-empty
    return p / p.sum(-1, keepdim=True)


def test_hand_computed_two_samples():
    p = torch.tensor([[[0.8, 0.2]], [[0.4, 0.6]]], dtype=torch.float64)
    d = decompose(p)
    assert isinstance(d, UncertaintyDecomposition)
    torch.testing.assert_close(d.mean, torch.tensor([[0.6, 0.4]], dtype=torch.float64))
    total = _h(0.6, 0.4)
    aleatoric = (_h(0.8, 0.2) + _h(0.4, 0.6)) / 2
    assert d.total.item() == pytest.approx(total, abs=1e-12)
    assert d.aleatoric.item() == pytest.approx(aleatoric, abs=1e-12)
    assert d.epistemic.item() == pytest.approx(total - aleatoric, abs=1e-12)


def test_confident_disagreement_is_purely_epistemic():
    d = decompose(torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]))
    assert d.total.item() == pytest.approx(math.log(2), abs=1e-6)
    assert d.aleatoric.item() == 0.0  # 0·log 0 = 0: no NaN at saturated probabilities
    assert d.epistemic.item() == pytest.approx(math.log(2), abs=1e-6)


def test_matches_numpy_reimplementation(gen):
    p = _random_mc_probs(gen)
    d = decompose(p)
    a = p.numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(a > 0, a * np.log(a), 0.0)
        mean = a.mean(0)
        total = -np.where(mean > 0, mean * np.log(mean), 0.0).sum(-1)
    aleatoric = -plogp.sum(-1).mean(0)
    np.testing.assert_allclose(d.mean.numpy(), mean, atol=1e-12)
    np.testing.assert_allclose(d.total.numpy(), total, atol=1e-12)
    np.testing.assert_allclose(d.aleatoric.numpy(), aleatoric, atol=1e-12)
    np.testing.assert_allclose(d.epistemic.numpy(), np.maximum(total - aleatoric, 0), atol=1e-12)


def test_epistemic_is_mean_kl_to_the_predictive(gen):
    # Mutual information = mean_s KL(p_s || p̄): an independent formula for the same quantity.
    p = _random_mc_probs(gen, zeros=False)
    d = decompose(p)
    kl = torch.special.xlogy(p, p / d.mean).sum(-1).mean(0)
    torch.testing.assert_close(d.epistemic, kl, atol=1e-12, rtol=0)


def test_identities(gen):
    c = 5
    p = _random_mc_probs(gen, c=c).float()
    d = decompose(p)
    assert torch.isfinite(torch.stack([d.total, d.aleatoric, d.epistemic])).all()
    assert (d.epistemic >= 0).all()
    assert (d.total <= math.log(c) + 1e-6).all()
    assert (d.aleatoric >= 0).all()
    torch.testing.assert_close(d.total, d.aleatoric + d.epistemic, atol=1e-6, rtol=0)


def test_epistemic_zero_when_all_samples_agree(gen):
    one = _random_mc_probs(gen, s=1)
    d = decompose(one.expand(9, -1, -1).float())
    torch.testing.assert_close(d.epistemic, torch.zeros_like(d.epistemic), atol=1e-6, rtol=0)
    torch.testing.assert_close(d.total, d.aleatoric, atol=1e-6, rtol=0)
    assert decompose(one).epistemic.abs().max() == 0  # S = 1


def test_aleatoric_is_maximal_for_uniform(gen):
    c = 4
    uniform = torch.full((3, 1, c), 1 / c)
    d = decompose(torch.cat([uniform, _random_mc_probs(gen, s=3, n=20, c=c).float()], dim=1))
    assert d.aleatoric[0].item() == pytest.approx(math.log(c), abs=1e-6)
    assert d.total[0].item() == pytest.approx(math.log(c), abs=1e-6)
    assert d.epistemic[0].item() == pytest.approx(0, abs=1e-6)
    assert (d.aleatoric[1:] < d.aleatoric[0]).all()


def test_dtype_is_kept():
    p = torch.full((2, 3, 2), 0.5, dtype=torch.float64)
    assert decompose(p).epistemic.dtype == torch.float64


@pytest.mark.parametrize(
    ("probs", "match"),
    [
        (torch.full((3, 2), 0.5), r"probs=.*\[S, N, C\]"),
        (torch.full((2, 3, 2), 1), r"probs=.*floating-point"),
        (torch.empty(0, 3, 2), r"probs=.*no empty dimension"),
        (torch.tensor([[[0.5, float("nan")]]]), r"probs=.*1 NaN"),
        (torch.tensor([[[1.5, -0.5]]]), r"probs=.*outside \[0, 1\].*softmax"),
        (torch.tensor([[[0.5, 0.6]]]), r"probs=.*rows sum to 1 ± 0\.1.*softmax"),
        ("not a tensor", r"probs='str'"),
    ],
)
def test_bad_input_is_rejected(probs, match):
    with pytest.raises(ConfigError, match=match):
        decompose(probs)
