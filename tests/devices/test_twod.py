"""TwoDFET: Gaussian + random-telegraph read noise against its closed-form moments."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from memcim import ConfigError
from memcim.devices.twod import TwoDFET

N = 20_000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def one_device_repeated(dev: TwoDFET, g_us: float, amp: float, n: int = N):
    """n copies of one programmed cell with RTN amplitude ``amp``: n independent reads of it."""
    state = dev.program(torch.tensor([g_us], dtype=torch.float64), generator=gen())
    state = dataclasses.replace(
        state,
        g_us=torch.tensor([g_us], dtype=torch.float64),
        params={"rtn_amp_rel": torch.tensor([amp], dtype=torch.float64)},
    )
    return state.map(lambda t: t.expand(n))


def test_read_mean_and_variance_match_closed_form():
    dev = TwoDFET(read_noise_rel=0.05, p_trap=0.4)
    g, a, p = 6.0, 0.25, 0.4
    state = one_device_repeated(dev, g, a)
    mean, var = dev.read_moments(state)
    assert mean[0].item() == pytest.approx(g * (1 - p * a))
    assert var[0].item() == pytest.approx((0.05 * g) ** 2 + p * (1 - p) * (a * g) ** 2)
    reads = dev.read(state, generator=gen(1))
    m, v = reads.mean().item(), reads.var().item()
    m4 = ((reads - m) ** 4).mean().item()
    # 5 SE: mean sqrt(var/n); sample variance sqrt((mu4 - var^2)/n) (RTN makes the read
    # non-Gaussian, so the fourth central moment is estimated from the sample).
    assert abs(m - mean[0].item()) < 5 * math.sqrt(var[0].item() / N)
    assert abs(v - var[0].item()) < 5 * math.sqrt((m4 - v**2) / N)


def test_telegraph_levels_and_occupation_probability():
    dev = TwoDFET(read_noise_rel=0.0, p_trap=0.3)
    g, a = 5.0, 0.2
    reads = dev.read(one_device_repeated(dev, g, a), generator=gen(2))
    low = torch.isclose(reads, torch.tensor(g * (1 - a), dtype=torch.float64))
    high = reads == g
    assert (low | high).all()  # exactly two levels without Gaussian noise
    # occupied fraction ~ Binomial(N, 0.3)/N: 5 SE = 5 sqrt(p(1-p)/N).
    assert abs(low.double().mean().item() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / N)


def test_rtn_amplitude_is_drawn_once_and_persists():
    dev = TwoDFET(rtn_amp_rel_mean=0.2)
    target = torch.full((4, 50, 100), 5.0)  # [S, rows, cols]
    state = dev.program(target, generator=gen(3))
    amp = state.params["rtn_amp_rel"]
    # a = min(X, 1), X ~ Exp(mean m): E[a] = m (1 − e^(−1/m)); std(a) <= m, so 5 m/sqrt(n).
    m = 0.2
    assert abs(amp.mean().item() - m * (1 - math.exp(-1 / m))) < 5 * m / math.sqrt(amp.numel())
    assert amp.max() <= 1.0 and amp.min() >= 0.0
    again = dev.program(target * 0.5, generator=gen(4), state=state)
    assert torch.equal(again.params["rtn_amp_rel"], amp)
    dev.read(again, generator=gen(5))
    assert torch.equal(again.params["rtn_amp_rel"], amp)


def test_programming_noise():
    dev = TwoDFET(prog_noise_std_us=0.2)
    state = dev.program(torch.full((N,), 5.0, dtype=torch.float64), generator=gen(6))
    # 5 SE: mean 0.2/sqrt(N), std 0.2/sqrt(2N).
    assert abs(state.g_us.mean().item() - 5.0) < 5 * 0.2 / math.sqrt(N)
    assert abs(state.g_us.std().item() - 0.2) < 5 * 0.2 / math.sqrt(2 * N)


def test_not_gaussian_read_noise_and_gaussian_part_std():
    dev = TwoDFET(read_noise_rel=0.1)
    assert TwoDFET.gaussian_read_noise is False
    state = dev.program(torch.full((3,), 4.0), generator=gen())
    assert torch.allclose(dev.read_noise_std(state, t_s=0.0), 0.1 * state.g_us)


def test_same_seed_is_bit_identical():
    dev = TwoDFET()
    target = torch.full((32, 32), 5.0)

    def run(seed):
        return dev.read(dev.program(target, generator=gen(seed)), generator=gen(seed + 1))

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"p_trap": 1.5}, "TwoDFET.p_trap"),
        ({"p_trap": float("nan")}, "TwoDFET.p_trap"),
        ({"read_noise_rel": -0.1}, "TwoDFET.read_noise_rel"),
        ({"rtn_amp_rel_mean": -1.0}, "TwoDFET.rtn_amp_rel_mean"),
        ({"prog_noise_std_us": float("nan")}, "TwoDFET.prog_noise_std_us"),
        ({"g_min_us": 10.0, "g_max_us": 1.0}, "TwoDFET.g_max_us"),
    ],
)
def test_bad_fields_raise(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        TwoDFET(**kwargs)


def test_bad_targets_raise():
    dev = TwoDFET()
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([float("nan")]))
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([11.0]))
    with pytest.raises(ConfigError, match="t_s"):
        dev.read(torch.tensor([1.0]), t_s=-1.0, generator=gen())
