"""Global drift compensation: by default from calibration reads through the read noise and the
converters (as a chip measures it); the noise-free factor only as the named "oracle"."""

import math

import pytest
import torch

from memcim import ConfigError
from memcim.crossbar import ConverterConfig, Tile, TileConfig
from memcim.devices import PCM, TwoDFET
from memcim.energy.cim import tile_cost

IDEAL_IO = {"dac": ConverterConfig(bits=None), "adc": ConverterConfig(bits=None)}
DAY = 86_400.0


def weights(rows: int = 128, cols: int = 64, seed: int = 0) -> torch.Tensor:
    # A positive mean keeps every column sum (the all-ones calibration output) far from 0, so
    # mean|y| is linear in the noise and the first-order error formula below holds.
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(cols, rows, generator=g) + 0.5) / math.sqrt(rows)


def programmed(config: TileConfig, w: torch.Tensor, seed: int = 1) -> Tile:
    rows, cols = w.shape[1], w.shape[0]
    return Tile(rows, cols, config).program(w, generator=torch.Generator().manual_seed(seed))


def test_default_is_calibration_reads_and_the_old_flags_still_mean_on_and_off():
    cfg = TileConfig()
    assert cfg.drift_compensation is True and cfg.drift_compensation_mode == "read"
    with pytest.raises(ConfigError, match="drift_compensation_mode"):
        TileConfig(drift_compensation_mode="exact")
    with pytest.raises(ConfigError, match="drift_compensation"):
        TileConfig(drift_compensation="read")
    off = programmed(TileConfig(drift_compensation=False), weights())
    assert float(off.drift_factor(DAY)) == 1.0


def test_oracle_mode_is_the_noise_free_abs_weight_ratio():
    w = weights()
    tile = programmed(TileConfig(drift_compensation_mode="oracle", **IDEAL_IO), w)
    plain = programmed(TileConfig(drift_compensation=False, **IDEAL_IO), w)
    expected = plain.read_weights(0.0).abs().sum() / plain.read_weights(DAY).abs().sum()
    torch.testing.assert_close(tile.drift_factor(DAY).squeeze(), expected, rtol=1e-6, atol=0)
    # The oracle draws nothing and counts nothing: the same for every generator.
    again = programmed(TileConfig(drift_compensation_mode="oracle", **IDEAL_IO), w)
    assert torch.equal(again.drift_factor(DAY, generator=torch.Generator().manual_seed(9)),
                       tile.drift_factor(DAY))  # fmt: skip
    assert tile.counters.calibration_reads == 0 and tile.counters.mvms == 0


def calibration_noise(tile_plain: Tile, t_s: float) -> tuple[float, float]:
    """Noise-free calibration output mean_j |Σ_i W_ij(t)| and the first-order std of its
    noisy read: Var(mean_j |y_j|) = Σ_j Var(y_j) / cols², Var(y_j) = Σ_i Σ_planes σ_ij² in
    weight units (each cell's read noise, independent; |y_j| far from 0)."""
    col_sums = tile_plain.read_weights(t_s).sum(-1)
    cols = col_sums.numel()
    to_weight = float(tile_plain.w_max) / tile_plain.device.g_span_us
    var = tile_plain.device.read_noise_std(tile_plain.state, t_s=t_s).square().sum()
    return float(col_sums.abs().mean()), math.sqrt(float(var)) * to_weight / cols


def test_read_factor_carries_the_read_noise_of_its_calibration_reads():
    w = weights()
    cfg = TileConfig(**IDEAL_IO)  # default mode "read"; ideal converters isolate read noise
    factors = torch.tensor([
        float(programmed(cfg, w).drift_factor(DAY, generator=torch.Generator().manual_seed(k)))
        for k in range(80)
    ])  # fmt: skip
    plain = programmed(TileConfig(drift_compensation=False, **IDEAL_IO), w)
    r0, s0 = calibration_noise(plain, 0.0)
    rt, st = calibration_noise(plain, DAY)
    f_cal = r0 / rt  # the same calibration without read noise
    sd = f_cal * math.sqrt((s0 / r0) ** 2 + (st / rt) ** 2)  # first-order propagation
    assert sd > 1e-3  # the noise is not negligible, so the checks below can fail
    # Sample std of 80 draws: relative standard error 1/sqrt(2·79) ≈ 8 %; allow ±35 % (4 SE).
    assert 0.65 * sd < float(factors.std()) < 1.35 * sd
    # Mean: within 4 standard errors (sd / sqrt(80)) of the noise-free calibration factor.
    assert abs(float(factors.mean()) - f_cal) < 4 * sd / math.sqrt(80)
    # It estimates the drift the oracle knows exactly, to within ~2 % here: the all-ones input
    # weighs each cell by its column, Σ|W| weighs it by |w|, and ν varies across cells.
    oracle = programmed(TileConfig(drift_compensation_mode="oracle", **IDEAL_IO), w)
    assert abs(float(factors.mean()) / float(oracle.drift_factor(DAY)) - 1) < 0.03


def test_read_factor_through_8_bit_converters_varies_with_the_read_noise_generator():
    w = weights()

    def factor(seed: int) -> float:
        tile = programmed(TileConfig(), w)
        return float(tile.drift_factor(DAY, generator=torch.Generator().manual_seed(seed)))

    draws = {factor(k) for k in range(4)}
    assert len(draws) == 4
    assert all(1.2 < f < 2.0 for f in draws)  # PCM loses a third of its conductance in a day


def relative_error(tile: Tile, x: torch.Tensor, w: torch.Tensor, t_s: float, gen) -> float:
    y, exact = tile.mvm(x, t_s=t_s, generator=gen), x @ w.T
    return float(((y - exact).norm(dim=-1) / exact.norm(dim=-1)).mean())


def test_read_compensated_pcm_tile_has_lower_mvm_error_than_uncompensated(gen):
    w = torch.randn(64, 256, generator=gen) / 16
    x = torch.rand(64, 256, generator=gen)
    errors = {}
    for comp in (False, True):
        tile = programmed(TileConfig(drift_compensation=comp), w)
        errors[comp] = relative_error(tile, x, w, DAY, torch.Generator().manual_seed(5))
    # One day of PCM drift costs ~35 % of the signal; the read factor restores most of it.
    assert errors[False] > 0.25
    assert errors[True] < 0.6 * errors[False]


def test_calibration_reads_are_counted_and_priced_but_do_no_useful_work(gen):
    w = weights()
    tile = programmed(TileConfig(), w)
    x = torch.rand(10, 128, generator=gen)
    tile.mvm(x, t_s=0.0, generator=gen)  # the reference time: factor 1, no calibration
    assert tile.counters.calibration_reads == 0 and tile.counters.mvms == 10
    tile.mvm(x, t_s=DAY, generator=gen)  # reference (t = 0) + calibration at t
    assert tile.counters.calibration_reads == 2 and tile.counters.mvms == 22
    tile.mvm(x, t_s=DAY, generator=gen)  # same t: the factor is reused
    tile.mvm(x, t_s=2 * DAY, generator=gen)  # a new t: one more calibration read
    assert tile.counters.calibration_reads == 3 and tile.counters.mvms == 43
    assert tile.counters.cell_reads == 43 * tile.cells
    cost = tile_cost(tile)
    assert cost.macs == 40 * 128 * 64  # calibration reads are overhead, not MACs
    # A device that does not drift has nothing to compensate: no calibration reads.
    flat = programmed(TileConfig(device=TwoDFET()), w)
    flat.mvm(x, t_s=DAY, generator=gen)
    assert flat.counters.calibration_reads == 0 and float(flat.drift_factor(DAY)) == 1.0
    assert not TwoDFET().drifts and PCM().drifts and not PCM(drift_scale=0.0).drifts
