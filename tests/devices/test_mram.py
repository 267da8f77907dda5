"""STTMRAM: sigmoidal switching, nearest-state programming, read disturb, read noise."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from memcim import ConfigError
from memcim.devices.mram import STTMRAM

N = 10_000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def closed_form_p_sw(dev: STTMRAM, i_ua: float, t_s: float) -> float:
    """P = sigmoid((I − I_c0 (1 − ln(t/τ0)/Δ)) / ΔI), written out independently of the model."""
    i_c = dev.i_c0_ua * (1 - math.log(t_s / dev.tau0_s) / dev.delta)
    return 1 / (1 + math.exp(-(i_ua - i_c) / dev.i_width_ua))


def tol(p: float, n: int = N) -> float:
    # 5 standard errors of a binomial fraction.
    return 5 * math.sqrt(p * (1 - p) / n) + 1e-12


def test_two_conductances_from_tmr():
    dev = STTMRAM.from_tmr(300.0, 2.0, i_write_ua=120.0)
    assert (dev.g_max_us, dev.g_min_us, dev.i_write_ua) == (300.0, pytest.approx(100.0), 120.0)
    assert dev.tmr == pytest.approx(2.0)
    assert STTMRAM().tmr == pytest.approx(1.5)  # default G_P = 200 µS, G_AP = 80 µS


@pytest.mark.parametrize("z", [-2.0, -0.5, 0.0, 1.0, 2.5])
def test_write_switching_fraction_follows_sigmoid(z):
    base = STTMRAM()
    i_c = base.critical_current_ua(base.t_write_s)
    dev = dataclasses.replace(base, i_write_ua=i_c + z * base.i_width_ua)
    p = closed_form_p_sw(dev, dev.i_write_ua, dev.t_write_s)
    assert p == pytest.approx(1 / (1 + math.exp(-z)))
    state = dev.program(torch.full((N,), dev.g_max_us), generator=gen())  # fresh AP -> P
    frac = dev.is_parallel(state).double().mean().item()
    assert abs(frac - p) < tol(p)
    assert dev.write_error_rate() == pytest.approx(1 - p)
    assert torch.equal(state.last_pulses, torch.ones(N, dtype=torch.int64))


@pytest.mark.parametrize("t_pulse_s", [2e-9, 1e-8, 1e-6])
def test_switch_fraction_depends_on_pulse_width(t_pulse_s):
    dev = STTMRAM()
    state = dataclasses.replace(dev, i_write_ua=1e4).program(torch.full((N,), dev.g_max_us))
    assert dev.is_parallel(state).all()
    out = dev.switch(state, -95.0, t_pulse_s, generator=gen(1))  # drive P -> AP
    p = closed_form_p_sw(dev, 95.0, t_pulse_s)
    assert abs((~dev.is_parallel(out)).double().mean().item() - p) < tol(p)


def test_switch_direction_and_zero_current():
    dev = STTMRAM()
    strong = 1e4  # sigmoid saturates to exactly 1 in float64
    ap = dev.program(torch.full((6,), dev.g_min_us))
    assert torch.equal(dev.switch(ap, -strong, 1e-8, generator=gen()).g_us, ap.g_us)
    to_p = dev.switch(ap, strong, 1e-8, generator=gen())
    assert dev.is_parallel(to_p).all()
    assert torch.equal(dev.switch(to_p, 0.0, 1.0, generator=gen()).g_us, to_p.g_us)
    assert torch.equal(to_p.writes, ap.writes + 1)


def test_program_picks_nearest_state():
    dev = STTMRAM(i_write_ua=1e4)  # write error rate exactly 0
    mid = dev.g_mid_us
    target = torch.tensor([dev.g_min_us, mid - 1, mid, mid + 1, dev.g_max_us])
    state = dev.program(target, generator=gen())
    lo, hi = dev.g_min_us, dev.g_max_us
    assert torch.equal(state.g_us, torch.tensor([lo, lo, lo, hi, hi]))


def test_random_bit_source_is_fair():
    dev = STTMRAM()
    i_half = dev.current_for_probability_ua(0.5, 5e-9)
    bits = dev.is_parallel(
        dev.switch(torch.full((4, N // 4), dev.g_min_us), i_half, 5e-9, generator=gen(4))
    )
    assert bits.shape == (4, N // 4)
    assert abs(bits.double().mean().item() - 0.5) < tol(0.5)


@pytest.mark.parametrize(
    ("direction", "n_reads"), [("ap_to_p", 1), ("ap_to_p", 3), ("p_to_ap", 2), ("both", 1)]
)
def test_read_disturb_rate(direction, n_reads):
    base = STTMRAM(read_disturb_direction=direction)
    dev = dataclasses.replace(base, i_read_ua=base.current_for_probability_ua(0.2, base.t_read_s))
    assert dev.read_disturb_probability() == pytest.approx(0.2)
    p = 1 - 0.8**n_reads
    half = torch.cat([torch.full((N,), dev.g_min_us), torch.full((N,), dev.g_max_us)])
    state = dataclasses.replace(dev, i_write_ua=1e4).program(half)
    after = dev.read_disturb(state, n_reads=n_reads, generator=gen(5))
    flipped = dev.is_parallel(after) != dev.is_parallel(state)
    frac_ap, frac_p = (flipped[:N].double().mean().item(), flipped[N:].double().mean().item())
    assert abs(frac_ap - (p if direction != "p_to_ap" else 0.0)) < tol(p)
    assert abs(frac_p - (p if direction != "ap_to_p" else 0.0)) < tol(p)
    assert torch.equal(after.writes, state.writes)  # a read is not a write


def test_read_noise_mean_and_std():
    dev = STTMRAM(read_noise_rel=0.05)
    g = torch.full((2 * N,), dev.g_max_us, dtype=torch.float64)
    reads = dev.read(g, generator=gen(6))
    sigma = 0.05 * dev.g_max_us
    # n = 2N reads; 5 SE: mean sigma/sqrt(n), std of a Gaussian sample sigma/sqrt(2n).
    assert abs(reads.mean().item() - dev.g_max_us) < 5 * sigma / math.sqrt(2 * N)
    assert abs(reads.std().item() - sigma) < 5 * sigma / math.sqrt(4 * N)


def test_same_seed_is_bit_identical():
    dev = STTMRAM(i_write_ua=100.0)
    target = torch.full((32, 32), dev.g_max_us)

    def run(seed):
        s = dev.program(target, generator=gen(seed))
        s = dev.read_disturb(s, n_reads=10**6, generator=gen(seed))
        return dev.read(s, generator=gen(seed))

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"g_min_us": 0.0}, "STTMRAM.g_min_us"),
        ({"g_min_us": float("nan")}, "STTMRAM.g_min_us"),
        ({"g_max_us": 50.0}, "STTMRAM.g_max_us"),
        ({"i_width_ua": 0.0}, "STTMRAM.i_width_ua"),
        ({"delta": -5.0}, "STTMRAM.delta"),
        ({"i_write_ua": float("nan")}, "STTMRAM.i_write_ua"),
        ({"read_noise_rel": -0.1}, "STTMRAM.read_noise_rel"),
        ({"read_disturb_direction": "sideways"}, "STTMRAM.read_disturb_direction"),
    ],
)
def test_bad_fields_raise(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        STTMRAM(**kwargs)


@pytest.mark.parametrize("tmr", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_tmr_raises(tmr):
    with pytest.raises(ConfigError, match=r"STTMRAM\.tmr"):
        STTMRAM.from_tmr(200.0, tmr)


def test_bad_arguments_raise():
    dev = STTMRAM()
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([float("nan")]))
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([10.0]))  # below G_AP
    with pytest.raises(ConfigError, match="t_pulse_s"):
        dev.switch(torch.full((2,), dev.g_min_us), 100.0, 0.0)
    with pytest.raises(ConfigError, match="n_reads"):
        dev.read_disturb(torch.full((2,), dev.g_min_us), n_reads=-1)
