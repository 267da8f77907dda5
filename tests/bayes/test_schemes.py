"""Sampling schemes: device-realised weight samples against their targets and closed forms."""

import itertools
import math

import pytest
import torch

from memcim import ConfigError
from memcim.bayes import HardwareSampling, SamplingScheme, realise
from memcim.bayes.fidelity import per_weight, summary
from memcim.devices import PCM, FilamentaryRRAM, LaplaceRRAM
from memcim.devices.laplace import lin_laplace_scale_ua

S = 400


def targets(gen, shape=(16, 32)):
    mu = (torch.rand(shape, generator=gen) * 2 - 1) * 0.2
    return mu, torch.full(shape, 0.03)


def test_fidelity_of_exact_gaussian_samples_is_near_zero(gen):
    mu, sigma = targets(gen)
    draws = mu + sigma * torch.randn(S, *mu.shape, generator=gen)
    f = per_weight(draws, mu, sigma)
    # Mean error in σ units has SE 1/√S = 0.05; the median of |N(0, 0.05²)| is 0.034.
    assert f["mean_error"].abs().median() < 0.05
    assert f["sigma_rel_error"].abs().median() < 0.05  # SE of a std ≈ 1/√(2S) = 0.035
    # KS of S exact draws: median of sup|F_S − Φ| ≈ 0.83/√S = 0.041.
    assert 0.02 < f["ks"].median() < 0.06
    shifted = per_weight(draws + 0.5 * sigma, mu, sigma)
    assert shifted["mean_error"].mean() == pytest.approx(0.5 + f["mean_error"].mean().item())
    assert shifted["wasserstein"].median() > 0.4


@pytest.mark.parametrize("scheme", [SamplingScheme.DIFFERENTIAL,
                                    SamplingScheme.DEVICE_POPULATION])  # fmt: skip
def test_decoupled_schemes_realise_the_target_sigma(scheme, gen):
    """The solved medians give the pair's spread σ. One weight's sample std over S = 400 has
    an SE of 3.5 %; the median over the 512 weights of the signed relative error is unbiased
    and far more precise, so |median| < 5 % leaves room only for a real bias."""
    mu, sigma = targets(gen)
    cfg = HardwareSampling(scheme=scheme, device=FilamentaryRRAM(d2d_sigma=0.0))
    r = realise(mu, sigma, cfg, S, generator=gen)
    assert r.samples.shape == (S, *mu.shape)
    assert r.feasible.float().mean() > 0.9
    f = per_weight(r.samples, mu, sigma)
    ok = r.feasible
    assert f["sigma_rel_error"][ok].median().abs() < 0.05
    assert f["mean_error"][ok].abs().median() < 0.1  # sampling alone: 0.034 median
    assert r.writes == 2 * mu.numel() * (S if scheme is SamplingScheme.DIFFERENTIAL else 100)


def test_cycle_to_cycle_couples_sigma_to_the_median(gen):
    """One device per weight: the realised σ is the device's σ(median)/k whatever the target."""
    mu, sigma = targets(gen)
    dev = FilamentaryRRAM(d2d_sigma=0.0, read_noise_rel=0.0)
    r = realise(mu, sigma, HardwareSampling(scheme=SamplingScheme.CYCLE_TO_CYCLE, device=dev),
                S, generator=gen)  # fmt: skip
    g_mid = dev.g_min_us + dev.g_span_us / 2
    expected = dev.sigma_c2c_us(g_mid + r.k_us * mu) / r.k_us
    realised = r.samples.std(0)
    # Per weight, a sample std over S = 400 has SE ≈ σ/√(2S) = 3.5 %; 5 SE = 18 %.
    assert ((realised / expected - 1).abs() < 0.18).all()
    torch.testing.assert_close(r.samples.mean(0), mu, atol=float(5 * expected.max() / S**0.5),
                               rtol=0)  # fmt: skip


def test_read_noise_scheme_follows_lin_et_al(gen):
    mu, sigma = targets(gen)
    r = realise(mu, sigma, HardwareSampling(scheme=SamplingScheme.READ_NOISE), S, generator=gen)
    scale = r.k_us * LaplaceRRAM().v_char_v  # µA of ΣI per weight unit = 10.5 / layer scale
    currents = (mu * scale + 7.2) / 3
    b = lin_laplace_scale_ua(currents)
    # Sum of 3 Laplace(b): variance 3·2b²; in weight units / scale.
    expected = torch.sqrt(6 * b * b) / scale
    assert ((r.samples.std(0) / expected - 1).abs() < 0.25).all()  # 5 SE incl. Laplace kurtosis
    assert b.max() < 0.06 and currents.min() >= 0.4 and currents.max() <= 4.0


def test_separate_mu_sigma_uses_binomial_random_bits(gen):
    mu, sigma = targets(gen)
    cfg = HardwareSampling(scheme=SamplingScheme.SEPARATE_MU_SIGMA, random_bits=16,
                           device=FilamentaryRRAM(c2c_coeff=1e-4, d2d_sigma=0.0,
                                                  read_noise_rel=0.0))  # fmt: skip
    r = realise(mu, sigma, cfg, S, generator=gen)
    z = (r.samples - mu) / sigma
    # ε = (B − 8)/2 takes 17 values on a grid of 1/2; with a near-noiseless device the
    # realised values sit on that grid.
    assert torch.allclose(z * 2, (z * 2).round(), atol=0.05)
    f = summary(r.samples, mu, sigma)
    assert abs(f["sigma_rel_error_mean"]) < 0.05


def test_drift_degrades_pcm_fidelity(gen):
    mu, sigma = targets(gen)
    early = HardwareSampling(scheme=SamplingScheme.DIFFERENTIAL, device=PCM(), t_s=1.0)
    late = HardwareSampling(scheme=SamplingScheme.DIFFERENTIAL, device=PCM(), t_s=3.15e7)
    f_early = summary(realise(mu, sigma, early, 200, generator=gen).samples, mu, sigma)
    f_late = summary(realise(mu, sigma, late, 200, generator=gen).samples, mu, sigma)
    assert f_late["wasserstein_abs_median"] > 1.5 * f_early["wasserstein_abs_median"]


def test_same_seed_is_bit_identical_and_errors_are_clear():
    mu, sigma = torch.zeros(3, 4), torch.full((3, 4), 0.02)
    cfg = HardwareSampling()
    a = realise(mu, sigma, cfg, 5, generator=torch.Generator().manual_seed(1)).samples
    b = realise(mu, sigma, cfg, 5, generator=torch.Generator().manual_seed(1)).samples
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="HardwareSampling.population"):
        HardwareSampling(population=0)
    with pytest.raises(ConfigError, match="differ in shape"):
        realise(mu, sigma[:2], cfg, 5, generator=torch.Generator())
    with pytest.raises(ConfigError, match="sigma must be > 0"):
        per_weight(a, mu, torch.zeros(3, 4))
    assert math.isfinite(summary(a, mu, sigma)["ks_mean"])


def test_laplace_noise_is_finite_even_when_the_uniform_draw_is_zero(gen, monkeypatch):
    """torch.rand can return exactly 0; the inverse CDF must not turn it into an infinity."""
    from memcim.devices import laplace

    monkeypatch.setattr(laplace.torch, "rand", lambda shape, **kw: torch.zeros(shape))
    draws = laplace.laplace_noise(torch.tensor(0.05), (4,), generator=gen)
    assert torch.isfinite(draws).all()
    monkeypatch.undo()
    # Its moments: Laplace(0, b) has mean 0 and variance 2b²; 5 SE over 200k draws.
    b, n = 0.05, 200_000
    x = laplace.laplace_noise(torch.tensor(b), (n,), generator=gen).double()
    assert abs(x.mean().item()) < 5 * (2 * b * b / n) ** 0.5
    assert abs(x.var().item() / (2 * b * b) - 1) < 5 * (5 / n) ** 0.5  # kurtosis 6: Var(s²)=5σ⁴/n


def test_versus_time_programs_once_for_the_design_time_and_drift_degrades_it(gen):
    from memcim.bayes.fidelity import versus_time

    mu, sigma = targets(gen)
    cfg = HardwareSampling(scheme=SamplingScheme.DEVICE_POPULATION, device=PCM(), t_s=1.0)
    times = (1.0, 3600.0, 86_400.0, 3.15e7)
    trend = versus_time(mu, sigma, cfg, times, samples=100, generator=gen)
    w1 = [trend[t]["wasserstein_mean"] for t in times]
    # PCM drift (ν ≈ 0.05-0.1) shrinks every conductance: the sample means move away from μ
    # further with every decade, so W1 must grow at each step (and by > 2x over a year).
    assert all(a < b for a, b in itertools.pairwise(w1)), w1
    assert w1[-1] > 2 * w1[0]
    # design_t_s = t_s explicitly is the default (None) exactly.
    explicit = HardwareSampling(scheme=SamplingScheme.DEVICE_POPULATION, device=PCM(), t_s=1.0,
                                design_t_s=1.0)  # fmt: skip
    a = realise(mu, sigma, cfg, 4, generator=torch.Generator().manual_seed(2)).samples
    b = realise(mu, sigma, explicit, 4, generator=torch.Generator().manual_seed(2)).samples
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="design_t_s"):
        HardwareSampling(design_t_s=-1.0)


def test_clipping_is_counted_never_silent(gen):
    mu, sigma = targets(gen)
    for scheme in SamplingScheme:  # the scale realise chooses keeps every target inside
        assert realise(mu, sigma, HardwareSampling(scheme=scheme), 2, generator=gen).clipped == 0
    # At twice its own scale (the largest |μ| on the whole half-window beyond mid), every μ
    # beyond half the largest |μ| asks for a median outside the window: clamped and counted.
    dev = FilamentaryRRAM(d2d_sigma=0.0, read_noise_rel=0.0)
    c2c = HardwareSampling(scheme=SamplingScheme.CYCLE_TO_CYCLE, device=dev)
    k = 2 * realise(mu, sigma, c2c, 1, generator=gen).k_us
    r = realise(mu, sigma, c2c, S, generator=gen, k_us=k)
    beyond = mu.abs() > mu.abs().max() / 2
    assert r.clipped == int(beyond.sum()) > 0 and r.k_us == k
    # The clipped weights sit at the window's edge, ±(span / 2) / k: their sample means are
    # within 5 SE (σ_c2c(edge) / k / √S) of it, not at μ.
    edge = torch.sign(mu[beyond]) * dev.g_span_us / 2 / k
    se = float(dev.sigma_c2c_us(torch.tensor(dev.g_max_us))) / k / S**0.5
    assert (r.samples.mean(0)[beyond] - edge).abs().max() < 5 * se
    # READ_NOISE: per-weight currents (μ·k + 7.2) / 3 outside Lin et al.'s 0.4–4 µA.
    lin = HardwareSampling(scheme=SamplingScheme.READ_NOISE)
    k = 2 * realise(mu, sigma, lin, 1, generator=gen).k_us
    currents = (mu * k * LaplaceRRAM().v_char_v + 7.2) / 3
    outside = int(((currents < 0.4) | (currents > 4.0)).sum())
    assert realise(mu, sigma, lin, 2, generator=gen, k_us=k).clipped == outside > 0
    with pytest.raises(ConfigError, match="k_us"):
        realise(mu, sigma, c2c, 2, generator=gen, k_us=0.0)
