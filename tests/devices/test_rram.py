"""Statistical checks of FilamentaryRRAM against the closed forms of its model.

Tolerances are 5 standard errors (SE) of the estimator over n seeded draws:
mean 5·σ/√n; std 5·σ/√(2n) (Gaussian); probability 5·√(p(1−p)/n); correlation 5·(1−ρ²)/√n;
variance of a non-Gaussian mixture 5·√((m4 − s⁴)/n) with m4 the sample fourth central moment.
"""

from __future__ import annotations

import math

import pytest
import torch

from memcim import ConfigError
from memcim.devices.rram import FilamentaryRRAM

N = 20_000
K = 5.0  # standard errors allowed


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def full(value: float, n: int = N) -> torch.Tensor:
    return torch.full((n,), value, dtype=torch.float64)


def test_median_relation_and_inverse():
    dev = FilamentaryRRAM(set_slope_us_per_ua=1.7)
    i = torch.tensor([3.0, 20.0, 70.0], dtype=torch.float64)
    torch.testing.assert_close(dev.median_g_us(i), 1.7 * i)
    torch.testing.assert_close(dev.i_set_for(dev.median_g_us(i)), i)
    torch.testing.assert_close(
        dev.sigma_c2c_us(torch.tensor([4.0, 100.0])), torch.tensor([0.6 * 2.0, 0.6 * 10.0])
    )


@pytest.mark.parametrize("target", [10.0, 40.0, 100.0])
def test_program_mean_and_std_without_d2d(target):
    dev = FilamentaryRRAM(d2d_sigma=0.0)
    g = dev.program(full(target), generator=gen(1)).g_us
    sigma = 0.6 * target**0.5  # a · median^b with the defaults
    assert abs(g.mean().item() - target) < K * sigma / math.sqrt(N)
    assert abs(g.std().item() - sigma) < K * sigma / math.sqrt(2 * N)


@pytest.mark.parametrize("exponent", [0.5, 1.0])
def test_total_variance_and_correlation_with_d2d(exponent):
    # d = exp(s z − s²/2): E[d] = 1, Var d = e^{s²} − 1, E[d^{2b}] = e^{s² b (2b − 1)}.
    s, a, m = 0.15, 0.08 if exponent == 1.0 else 0.6, 50.0
    dev = FilamentaryRRAM(d2d_sigma=s, c2c_coeff=a, c2c_exponent=exponent)
    st1 = dev.program(full(m), generator=gen(2))
    st2 = dev.program(full(m), generator=gen(3), state=st1)
    torch.testing.assert_close(st2.params["d2d_factor"], st1.params["d2d_factor"], rtol=0, atol=0)
    var_d2d = m**2 * (math.exp(s**2) - 1)
    var_total = var_d2d + a**2 * m ** (2 * exponent) * math.exp(
        s**2 * exponent * (2 * exponent - 1)
    )
    g = st1.g_us
    assert abs(g.mean().item() - m) < K * math.sqrt(var_total / N)
    c = g - g.mean()
    m4 = (c**4).mean().item()
    var = g.var().item()
    assert abs(var - var_total) < K * math.sqrt((m4 - var**2) / N)
    # Successive programs share only the device's median: Cov = Var(m·d).
    rho = var_d2d / var_total
    r = torch.corrcoef(torch.stack([st1.g_us, st2.g_us]))[0, 1].item()
    assert abs(r - rho) < K * (1 - rho**2) / math.sqrt(N)


def test_each_program_is_a_fresh_draw_without_d2d():
    dev = FilamentaryRRAM(d2d_sigma=0.0)
    st1 = dev.program(full(60.0), generator=gen(4))
    st2 = dev.program(full(60.0), generator=gen(4), state=st1)  # same seed on purpose
    r = torch.corrcoef(torch.stack([st1.g_us, st2.g_us]))[0, 1].item()
    assert abs(r) < K / math.sqrt(N)
    assert torch.all(st2.writes == 2) and torch.all(st2.last_pulses == 1)


@pytest.mark.parametrize("t_s", [0.0, 100.0])
def test_read_noise_std(t_s):
    dev = FilamentaryRRAM(read_noise_rel=0.02)
    st = dev.program(full(80.0), generator=gen(5))
    g_t = dev.drift(st, t_s)
    z = (dev.read(st, t_s=t_s, generator=gen(6)) - g_t) / (0.02 * g_t)
    assert abs(z.mean().item()) < K / math.sqrt(N)
    assert abs(z.std().item() - 1.0) < K / math.sqrt(2 * N)
    torch.testing.assert_close(dev.read_noise_std(st, t_s=t_s), 0.02 * g_t)


@pytest.mark.parametrize("t_s", [0.0, 10.0, 1e3, 1e4, 1e6])
def test_relaxation_law(t_s):
    r, tau, sat, target = 0.05, 1.0, 1e4, 50.0
    dev = FilamentaryRRAM(c2c_coeff=0.0, d2d_sigma=0.0, relax_sigma_rel=r)
    st = dev.program(full(target), generator=gen(7))
    assert torch.all(st.g_us == target)
    f = min(math.log(1 + t_s / tau) / math.log(1 + sat / tau), 1.0)
    g_t = dev.drift(st, t_s)
    assert torch.equal(g_t, dev.drift(st, t_s))  # deterministic given the state
    sigma = r * target * f
    if f == 0.0:
        assert torch.all(g_t == target)
        return
    assert abs(g_t.mean().item() - target) < K * sigma / math.sqrt(N)
    assert abs(g_t.std().item() - sigma) < K * sigma / math.sqrt(2 * N)


def test_relaxation_saturates_and_is_redrawn_at_each_program():
    dev = FilamentaryRRAM()
    st = dev.program(full(30.0), generator=gen(8))
    assert torch.equal(dev.drift(st, 1e5), dev.drift(st, 1e7))
    assert dev.relax_fraction(1e4) == 1.0 and dev.relax_fraction(0.0) == 0.0
    st2 = dev.program(full(30.0), generator=gen(9), state=st)
    r = torch.corrcoef(torch.stack([st.params["relax_z"], st2.params["relax_z"]]))[0, 1].item()
    assert abs(r) < K / math.sqrt(N)


def test_stuck_fault_fractions_and_persistence():
    p_lo, p_hi = 0.05, 0.02
    dev = FilamentaryRRAM(p_stuck_low=p_lo, p_stuck_high=p_hi, g_stuck_low_us=0.5)
    st = dev.program(full(40.0), generator=gen(10))
    low, high = st.stuck & (st.g_us == 0.5), st.stuck & (st.g_us == dev.g_max_us)
    assert torch.equal(low | high, st.stuck)
    for frac, p in ((low.double().mean().item(), p_lo), (high.double().mean().item(), p_hi)):
        assert abs(frac - p) < K * math.sqrt(p * (1 - p) / N)
    assert torch.all(st.writes[st.stuck] == 0) and torch.all(st.writes[~st.stuck] == 1)
    st2 = dev.program(full(90.0), generator=gen(11), state=st)
    assert torch.equal(st2.stuck, st.stuck)  # faults are drawn for fresh cells only
    assert torch.equal(st2.g_us[st.stuck], st.g_us[st.stuck])
    assert torch.all(st2.last_pulses[st.stuck] == 0)
    assert torch.all(dev.drift(st2, 1e6)[st.stuck] == st.g_us[st.stuck])  # no relaxation


def test_endurance_limit():
    dev = FilamentaryRRAM(endurance_cycles=3)
    st = dev.program(full(20.0, 1000), generator=gen(12))
    st = dev.program(full(60.0, 1000), generator=gen(13), state=st)
    assert not st.stuck.any()
    st = dev.program(full(100.0, 1000), generator=gen(14), state=st)  # third write still works
    assert st.stuck.all() and torch.all(st.writes == 3)
    # Std with the default D2D (b = 0.5 makes E[d^{2b}] = 1): √(0.6²·100 + 100²(e^{s²} − 1)).
    sd = math.sqrt(36.0 + 100.0**2 * (math.exp(0.03**2) - 1))
    assert abs(st.g_us.mean().item() - 100.0) < K * sd / math.sqrt(1000)
    st4 = dev.program(full(20.0, 1000), generator=gen(15), state=st)
    assert torch.equal(st4.g_us, st.g_us) and torch.all(st4.writes == 3)
    assert torch.all(st4.last_pulses == 0)


def truncated_geometric(p: float, m: int) -> tuple[float, float, float]:
    """(P(converged), E[pulses], std[pulses]) when each pulse succeeds with probability p."""
    pmf = [(1 - p) ** (k - 1) * p for k in range(1, m)] + [(1 - p) ** (m - 1)]
    mean = sum(k * q for k, q in zip(range(1, m + 1), pmf, strict=True))
    var = sum((k - mean) ** 2 * q for k, q in zip(range(1, m + 1), pmf, strict=True))
    return 1 - (1 - p) ** m, mean, math.sqrt(var)


def test_program_and_verify_statistics():
    target, tol, m = 50.0, 1.0, 8
    dev = FilamentaryRRAM(
        d2d_sigma=0.0, read_noise_rel=0.0, verify_tolerance_us=tol, max_verify_pulses=m
    )
    st = dev.program(full(target), generator=gen(16))
    ok, pulses = st.params["verify_ok"], st.last_pulses
    assert torch.all((st.g_us[ok] - target).abs() <= tol)
    assert torch.all(pulses[~ok] == m) and pulses.min() >= 1 and pulses.max() <= m
    assert torch.equal(st.writes, pulses)
    p = math.erf(tol / (0.6 * target**0.5 * math.sqrt(2)))  # one pulse lands within tol
    p_conv, mean, sd = truncated_geometric(p, m)
    assert abs(ok.double().mean().item() - p_conv) < K * math.sqrt(p_conv * (1 - p_conv) / N)
    assert abs(pulses.double().mean().item() - mean) < K * sd / math.sqrt(N)
    assert dev.write_energy_pj(st) == pulses.sum().item() * 1.0  # 1 pJ per write [13][14]
    st2 = dev.program(full(target), generator=gen(17), state=st)
    assert torch.equal(st2.writes, st.writes + st2.last_pulses)


def test_program_and_verify_with_read_noise_and_endurance():
    rho, tol = 0.01, 2.0
    dev = FilamentaryRRAM(read_noise_rel=rho, verify_tolerance_us=tol, max_verify_pulses=50)
    st = dev.program(full(100.0), generator=gen(18))
    ok = st.params["verify_ok"]
    # Each pulse lands within tol with p ≈ 0.26 (σ ≈ 6 µS): P(fail after 50) ≈ 3e-7 per cell.
    assert ok.double().mean().item() > 0.99
    # A verify read lies within 6 read-noise σ of the true value (P < 2e-9 per cell).
    assert torch.all((st.g_us[ok] - 100.0).abs() <= tol + 6 * rho * st.g_us[ok])
    worn = FilamentaryRRAM(endurance_cycles=4, verify_tolerance_us=1e-12, max_verify_pulses=20)
    st = worn.program(full(50.0, 1000), generator=gen(19))
    assert torch.all(st.last_pulses == 4) and st.stuck.all()


def test_program_current_matches_median():
    dev = FilamentaryRRAM(set_slope_us_per_ua=2.0, d2d_sigma=0.0)
    st = dev.program_current(full(30.0), generator=gen(20))
    sigma = 0.6 * 60.0**0.5
    assert abs(st.g_us.mean().item() - 60.0) < K * sigma / math.sqrt(N)
    assert torch.equal(st.g_us, dev.program(full(60.0), generator=gen(20)).g_us)


def test_same_seed_is_bit_identical_and_shapes():
    dev = FilamentaryRRAM(p_stuck_low=0.01, p_stuck_high=0.01, verify_tolerance_us=2.0)
    target = 5.0 + 115.0 * torch.rand(4, 8, 16, generator=gen(21))

    def run(seed):
        g = gen(seed)
        st = dev.program(target, generator=g)
        st = dev.program(target.flip(-1), generator=g, state=st)
        return st, dev.read(st, t_s=60.0, generator=g)

    (st_a, read_a), (st_b, read_b) = run(22), run(22)
    assert torch.equal(st_a.g_us, st_b.g_us) and torch.equal(read_a, read_b)
    assert torch.equal(st_a.last_pulses, st_b.last_pulses)
    for key in st_a.params:
        assert torch.equal(st_a.params[key], st_b.params[key])
    assert st_a.g_us.shape == read_a.shape == dev.drift(st_a, 1.0).shape == (4, 8, 16)
    # Draws depend on element order only: the flat call gives the same cells.
    flat = FilamentaryRRAM().program(target.reshape(-1), generator=gen(23)).g_us
    assert torch.equal(flat, FilamentaryRRAM().program(target, generator=gen(23)).g_us.reshape(-1))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("g_max_us", 5.0),  # g_max_us must exceed g_min_us = 5
        ("set_slope_us_per_ua", 0.0),
        ("c2c_coeff", -0.1),
        ("c2c_exponent", float("nan")),
        ("d2d_sigma", -0.01),
        ("read_noise_rel", float("inf")),
        ("relax_tau_s", 0.0),
        ("relax_sat_s", -1.0),
        ("p_stuck_low", 1.5),
        ("p_stuck_high", -0.1),
        ("g_stuck_high_us", -1.0),
        ("verify_tolerance_us", 0.0),
        ("max_verify_pulses", 0),
        ("max_verify_pulses", 2.5),
        ("endurance_cycles", 0),
    ],
)
def test_bad_fields_raise(field, value):
    with pytest.raises(ConfigError, match=rf"FilamentaryRRAM\.{field}"):
        FilamentaryRRAM(**{field: value})


def test_bad_targets_and_currents_raise():
    with pytest.raises(ConfigError, match="p_stuck_low"):
        FilamentaryRRAM(p_stuck_low=0.6, p_stuck_high=0.6)
    dev = FilamentaryRRAM()
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([float("nan")]))
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([200.0]))
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([1.0]))
    with pytest.raises(ConfigError, match="i_set_ua"):
        dev.program_current(torch.tensor([-3.0]))
    with pytest.raises(ConfigError, match="i_set_ua"):
        dev.program_current(torch.tensor([500.0]))
    with pytest.raises(ConfigError, match="state"):
        dev.program(full(20.0, 3), state=dev.program(full(20.0, 4)))
