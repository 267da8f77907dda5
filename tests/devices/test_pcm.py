"""PCM against the published statistical model (Nandakumar et al. 2019, REFERENCES.md).

The expected values below are written out from the published formulas, independently of the
implementation's helper methods. Tolerances are 5 standard errors: for a mean of n draws with
std σ, 5σ/√n; for a sample std, 5σ/√(2n) (normal theory). A false alarm at 5 SE has
probability ~6e-7 per check, and the seeds are fixed anyway.
"""

import math

import pytest
import torch

from memcim import ConfigError
from memcim.devices import PCM

N = 40_000
G_MAX = 25.0
G_HATS = [0.1, 0.3, 0.6, 0.9]


def published_sigma_prog(g_hat: float) -> float:
    return max(-1.1731 * g_hat**2 + 1.9650 * g_hat + 0.2635, 0.0)


def published_nu_stats(g_hat: float) -> tuple[float, float]:
    mu = min(max(-0.0155 * math.log(g_hat) + 0.0244, 0.049), 0.1)
    sigma = min(max(-0.0125 * math.log(g_hat) - 0.0059, 0.008), 0.045)
    return mu, sigma


def folded_normal_moments(mu: float, sigma: float) -> tuple[float, float]:
    """Mean and std of |X|, X ~ N(mu, sigma²)."""
    phi = 0.5 * (1 + math.erf(-mu / (sigma * math.sqrt(2))))
    mean = sigma * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * sigma**2)) + mu * (1 - 2 * phi)
    var = mu**2 + sigma**2 - mean**2
    return mean, math.sqrt(var)


@pytest.mark.parametrize("g_hat", G_HATS)
def test_programming_noise_matches_published_polynomial(g_hat, gen):
    target = torch.full((N,), g_hat * G_MAX)
    g = PCM().program(target, generator=gen).g_us.double()
    sigma = published_sigma_prog(g_hat)
    assert abs(g.mean().item() - g_hat * G_MAX) < 5 * sigma / math.sqrt(N)
    assert abs(g.std().item() - sigma) < 5 * sigma / math.sqrt(2 * N)


@pytest.mark.parametrize("g_hat", G_HATS)
def test_drift_exponent_statistics_match_published_fit(g_hat, gen):
    state = PCM().program(torch.full((N,), g_hat * G_MAX), generator=gen)
    nu = state.params["nu"].double()
    mean, std = folded_normal_moments(*published_nu_stats(g_hat))
    assert (nu >= 0).all()
    assert abs(nu.mean().item() - mean) < 5 * std / math.sqrt(N)
    # The sample std of a folded normal is not normal-theory; 8 SE keeps a wide margin.
    assert abs(nu.std().item() - std) < 8 * std / math.sqrt(2 * N)


def test_drift_is_the_published_power_law_per_device(gen):
    pcm = PCM()
    state = pcm.program(torch.full((1000,), 12.0), generator=gen)
    for t in (0.0, 1.0, 3600.0, 86400.0, 3.15e7):
        expected = state.g_us * ((t + 20.0) / 20.0) ** (-state.params["nu"])
        torch.testing.assert_close(pcm.drift(state, t), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("g_hat", [0.2, 0.8])
@pytest.mark.parametrize("t", [1.0, 86400.0])
def test_read_noise_is_one_over_f_with_published_amplitude(g_hat, t, gen):
    pcm = PCM()
    state = pcm.program(torch.full((N,), g_hat * G_MAX), generator=gen)
    mean = pcm.drift(state, t)
    rel = (pcm.read(state, t_s=t, generator=gen) - mean) / (mean * PCM().q_s(state.g_us))
    # σ_read / (g(t) Q_s) = sqrt(ln((t + t0 + t_read) / (2 t_read))), from the published model.
    expected = math.sqrt(math.log((t + 20.0 + 250e-9) / (2 * 250e-9)))
    assert abs(rel.mean().item()) < 5 * expected / math.sqrt(N)
    assert abs(rel.std().item() - expected) < 5 * expected / math.sqrt(2 * N)


def test_q_s_matches_published_formula():
    g = torch.tensor([0.5, 2.5, 10.0, 25.0])
    expected = torch.clamp(0.0088 / (g / 25.0) ** 0.65, max=0.2)
    torch.testing.assert_close(PCM().q_s(g), expected)


def test_same_seed_is_bit_identical():
    target = torch.rand(64, 32) * 25
    runs = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(7)
        state = PCM().program(target, generator=gen)
        runs.append(PCM().read(state, t_s=3600.0, generator=gen))
    assert torch.equal(runs[0], runs[1])


def test_monte_carlo_leading_dimension(gen):
    target = torch.rand(8, 16) * 25
    state = PCM().program(target.expand(500, 8, 16), generator=gen)
    assert state.g_us.shape == (500, 8, 16)
    # Samples along the leading dimension are independent draws around each target.
    assert (state.g_us.std(0) > 0.1).all()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"g_min_us": 30.0}, "PCM.g_max_us"),
        ({"t0_s": 0.0}, "PCM.t0_s"),
        ({"read_noise_scale": -1.0}, "PCM.read_noise_scale"),
        ({"e_write_pj": float("nan")}, "PCM.e_write_pj"),
    ],
)
def test_bad_fields_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        PCM(**kwargs)


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (torch.tensor([1.0, float("nan")]), "NaN"),
        (torch.tensor([1.0, 40.0]), "outside the PCM window"),
        (torch.tensor([1, 2]), "floating-point"),
    ],
)
def test_bad_targets_raise(target, match, gen):
    with pytest.raises(ConfigError, match=match):
        PCM().program(target, generator=gen)


def test_bad_time_raises(gen):
    state = PCM().program(torch.ones(3), generator=gen)
    with pytest.raises(ConfigError, match="t_s"):
        PCM().read(state, t_s=-1.0, generator=gen)
