"""Tile and TiledMatrix: closed forms with ideal parts, noise statistics, errors, determinism."""

import math

import pytest
import torch

from memcim import ConfigError
from memcim.crossbar import ConverterConfig, MappingConfig, Tile, TileConfig, TiledMatrix
from memcim.devices import PCM, FilamentaryRRAM, IdealDevice, TwoDFET

IDEAL_IO = {"dac": ConverterConfig(bits=None), "adc": ConverterConfig(bits=None)}


def ideal_config(**mapping) -> TileConfig:
    return TileConfig(device=IdealDevice(), mapping=MappingConfig(**mapping), **IDEAL_IO)


def quantised(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Reference magnitude quantisation to 2^bits − 1 levels of max |w|."""
    w_max = w.abs().max()
    levels = 2**bits - 1
    return torch.round(w / w_max * levels) / levels * w_max


@pytest.mark.parametrize("scheme", ["differential", "offset"])
@pytest.mark.parametrize("devices_per_weight", [1, 3])
def test_ideal_tile_is_exactly_x_at_w_transpose(scheme, devices_per_weight, gen):
    w = torch.randn(20, 30, generator=gen)
    x = torch.randn(7, 30, generator=gen)
    tile = Tile(30, 20, ideal_config(scheme=scheme, devices_per_weight=devices_per_weight))
    tile.program(w)
    torch.testing.assert_close(tile.mvm(x), x @ w.T, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tile.read_weights(), w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("bits", "slices"), [(4, 1), (8, 2), (8, 4), (6, 3)])
@pytest.mark.parametrize("scheme", ["differential", "offset"])
def test_bit_sliced_weights_recombine_to_the_quantised_matrix(bits, slices, scheme, gen):
    w = torch.randn(16, 24, generator=gen)
    x = torch.randn(5, 24, generator=gen)
    tile = Tile(24, 16, ideal_config(scheme=scheme, weight_bits=bits, slices=slices))
    tile.program(w)
    wq = quantised(w, bits)
    torch.testing.assert_close(tile.read_weights(), wq, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tile.mvm(x), x @ wq.T, rtol=1e-5, atol=1e-5)


def test_mapping_targets_and_inverse():
    cfg = MappingConfig(scheme="differential")
    w = torch.tensor([[1.0, -0.5], [0.0, 0.25]])
    planes, ref = cfg.targets(w, 0.0, 20.0)
    assert ref is None
    assert torch.equal(planes[0], torch.tensor([[20.0, 0.0], [0.0, 5.0]]))  # G+
    assert torch.equal(planes[1], torch.tensor([[0.0, 10.0], [0.0, 0.0]]))  # G-
    offset = MappingConfig(scheme="offset")
    planes, ref = offset.targets(w, 0.0, 20.0)
    assert torch.equal(planes[0], torch.tensor([[20.0, 5.0], [10.0, 12.5]]))
    assert torch.equal(ref, torch.full((1, 2, 1), 10.0))
    back = offset.decode(offset.slice_conductance(planes, ref), 1.0, 0.0, 20.0)
    torch.testing.assert_close(back, w)


def test_tiled_matrix_splits_and_matches_x_at_w_transpose(gen):
    w = torch.randn(70, 130, generator=gen)
    x = torch.randn(9, 130, generator=gen)
    tm = TiledMatrix(70, 130, ideal_config(), max_rows=50, max_cols=32)
    assert tm.grid == (3, 3)
    tm.program(w)
    torch.testing.assert_close(tm.mvm(x), x @ w.T, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(tm.read_weights(), w, rtol=1e-5, atol=1e-6)
    assert tm.counters.mvms == 9 * 9  # 9 vectors through each of 9 tiles


def test_ideal_periphery_quantisation_error_is_bounded(gen):
    """8-bit DAC and ADC on an ideal array: error within the two quantisation steps."""
    w = torch.randn(32, 64, generator=gen) / 8
    x = torch.rand(200, 64, generator=gen)
    tile = Tile(64, 32, TileConfig(device=IdealDevice()))
    tile.program(w)
    y = tile.mvm(x)
    exact = x @ w.T
    # DAC: each input is off by <= half a step of its vector's own max, so output j by
    # <= step/2 · Σ_i |w_ji|. ADC: its range is the max |output| of the inputs scaled to unit max
    # (1 % slack for the DAC error inside it); half its step, scaled back by each vector's max.
    s = x.amax(-1, keepdim=True)
    dac_bound = (s / 127 / 2) * w.abs().sum(-1)
    adc_bound = s * ((x / s) @ w.T).abs().max() * 1.01 / 127 / 2
    assert ((y - exact).abs() <= dac_bound + adc_bound + 1e-6).all()
    # and it is not trivially loose: the error is a sizeable part of the bound somewhere.
    assert ((y - exact).abs() / (dac_bound + adc_bound)).max() > 0.2
    assert tile.counters.adc_clipped == 0 and tile.counters.dac_clipped == 0


def test_output_domain_read_noise_has_the_exact_variance(gen):
    """Var of the output = Σ_i x_i² (σ⁺² + σ⁻²) (weight units), checked over 20k reads."""
    pcm = PCM(prog_noise_scale=0.0)
    w = torch.randn(4, 32, generator=gen)
    tile = Tile(
        32, 4, TileConfig(device=pcm, drift_compensation=False, read_noise="per_read", **IDEAL_IO)
    )
    tile.program(w, generator=gen)
    x = torch.rand(1, 32, generator=gen)
    y = tile.mvm(x.expand(20_000, 32), t_s=10.0, generator=gen)
    sigma = pcm.read_noise_std(tile.state, t_s=10.0)  # [2, rows, cols]
    to_weight = tile.w_max / pcm.g_max_us
    expected_var = (x.square() @ sigma.square().sum(0)) * to_weight**2
    var = y.double().var(0)
    # SE of a sample variance: var·sqrt(2/(n−1)); 5 SE.
    assert ((var - expected_var).abs() <= 5 * expected_var * math.sqrt(2 / 19_999)).all()
    mean = tile.read_weights(10.0) @ x.squeeze(0)
    assert ((y.mean(0) - mean).abs() <= 5 * expected_var.sqrt() / math.sqrt(20_000)).all()


def test_drift_compensation_restores_the_mean_output(gen):
    w = torch.randn(64, 128, generator=gen).abs() * 0.1
    x = torch.rand(256, 128, generator=gen)
    day = 86_400.0
    outputs = {}
    for comp in (False, True):
        cfg = TileConfig(device=PCM(read_noise_scale=0.0), drift_compensation=comp, **IDEAL_IO)
        tile = Tile(128, 64, cfg).program(w, generator=torch.Generator().manual_seed(3))
        outputs[comp] = (tile.mvm(x, t_s=0.0).mean(), tile.mvm(x, t_s=day).mean())
    raw_ratio = (outputs[False][1] / outputs[False][0]).item()
    comp_ratio = (outputs[True][1] / outputs[True][0]).item()
    # Drift with ν ≈ 0.05–0.1 over (86420/20) loses ~35–55 %; compensation brings it back to
    # within 1 % (what remains is the spread of ν across devices, which a global factor cannot fix).
    assert raw_ratio < 0.75
    assert abs(comp_ratio - 1.0) < 0.01


def test_monte_carlo_samples_program_independent_arrays(gen):
    w = torch.randn(8, 16, generator=gen)
    cfg = TileConfig(
        device=PCM(read_noise_scale=0.0, drift_scale=0.0), drift_compensation=False, **IDEAL_IO
    )
    tile = Tile(16, 8, cfg).program(w, generator=gen, samples=2000)
    assert tile.state.g_us.shape == (2000, 2, 16, 8)
    x = torch.randn(3, 16, generator=gen)
    y = tile.mvm(x)
    assert y.shape == (2000, 3, 8)
    # The mean over samples is the target product; the spread is programming noise only.
    torch.testing.assert_close(y.mean(0), x @ w.T, atol=0.15, rtol=0.05)
    assert (y.std(0) > 0).all()


def test_same_seed_gives_bit_identical_outputs():
    def run():
        gen = torch.Generator().manual_seed(11)
        tile = Tile(40, 10, TileConfig()).program(torch.randn(10, 40, generator=gen), generator=gen)
        return tile.mvm(torch.rand(6, 40, generator=gen), t_s=3600.0, generator=gen)

    assert torch.equal(run(), run())


@pytest.mark.parametrize(
    "config",
    [
        TileConfig(device=FilamentaryRRAM()),  # per-read noise: the x² @ σ² product too
        TileConfig(device=PCM(), read_noise="per_time"),
        TileConfig(device=PCM(), dac=ConverterConfig(bits=6, mode="fixed", full_scale=0.5)),
    ],
    ids=["per_read", "per_time", "clipping_dac"],
)
def test_a_batch_shared_by_the_copies_reads_as_its_repeat(config):
    """A batch expanded over the Monte-Carlo copies (stride 0) is converted once: outputs bit
    for bit and every counter as for the same batch repeated in memory."""

    def run(shared: bool):
        gen = torch.Generator().manual_seed(5)
        tile = Tile(24, 7, config).program(torch.randn(4, 7, 24, generator=gen), generator=gen)
        x = torch.rand(9, 24, generator=gen)
        xs = x.expand(4, 9, 24) if shared else x.repeat(4, 1, 1)
        ys = [tile.mvm(xs, t_s=t_s, generator=gen) for t_s in (0.0, 0.0, 60.0)]
        return ys, tile.counters.as_dict()

    (shared, shared_counts), (repeated, repeated_counts) = run(True), run(False)
    assert all(torch.equal(a, b) for a, b in zip(shared, repeated, strict=True))
    assert shared_counts == repeated_counts  # conversions, saturations, energy: per copy


def test_counters_and_latency(gen):
    cfg = TileConfig(device=IdealDevice(), mapping=MappingConfig(weight_bits=8, slices=2), adcs=4)
    tile = Tile(10, 6, cfg).program(torch.randn(6, 10, generator=gen))
    assert tile.counters.cell_writes == 2 * 2 * 10 * 6  # 2 slices × (G+, G−)
    tile.mvm(torch.rand(5, 10, generator=gen))
    c = tile.counters
    assert (c.mvms, c.dac_conversions, c.adc_conversions) == (5, 50, 5 * 12)
    assert c.cell_reads == 5 * tile.cells
    # 12 sensed columns over 4 ADCs: 3 conversion passes.
    t_conv = cfg.adc.t_conversion_s
    assert tile.mvm_latency_s == pytest.approx(cfg.dac.t_conversion_s + cfg.t_read_s + 3 * t_conv)
    shared = Tile(10, 6, TileConfig(device=IdealDevice(), adcs=None))
    assert shared.mvm_latency_s < tile.mvm_latency_s


def test_bad_inputs_raise_clear_errors(gen):
    tile = Tile(8, 4, TileConfig())
    with pytest.raises(ConfigError, match="program"):
        tile.mvm(torch.rand(2, 8))
    with pytest.raises(ConfigError, match=r"\[\.\.\., 4, 8\]"):
        tile.program(torch.randn(8, 4))
    with pytest.raises(ConfigError, match="NaN"):
        tile.program(torch.tensor([[float("nan")] * 8] * 4))
    tile.program(torch.randn(4, 8, generator=gen), generator=gen)
    with pytest.raises(ConfigError, match="last dimension"):
        tile.mvm(torch.rand(2, 7))
    with pytest.raises(ConfigError, match="NaN"):
        tile.mvm(torch.full((2, 8), float("nan")))
    with pytest.raises(ConfigError, match="t_s"):
        tile.mvm(torch.rand(2, 8), t_s=float("nan"))
    with pytest.raises(ConfigError, match="w_max"):
        Tile(8, 4, TileConfig(mapping=MappingConfig(w_max=0.1))).program(torch.ones(4, 8))
    with pytest.raises(ConfigError, match="MappingConfig.slices"):
        MappingConfig(slices=2)
    with pytest.raises(ConfigError, match="TileConfig.adcs"):
        TileConfig(adcs=0)
    with pytest.raises(ConfigError, match="in_features"):
        TiledMatrix(4, 8).mvm(torch.rand(2, 9))


def test_per_time_read_noise_is_one_realisation_per_read_time(gen):
    """Same marginal variance as per-read noise, but shared by reads at the same time."""
    pcm = PCM(prog_noise_scale=0.0)
    w = torch.randn(4, 32, generator=gen)
    cfg = TileConfig(device=pcm, drift_compensation=False, read_noise="per_time", **IDEAL_IO)
    tile = Tile(32, 4, cfg).program(w, generator=gen)
    x = torch.rand(3, 32, generator=gen)
    first = tile.mvm(x, t_s=10.0, generator=gen)
    assert torch.equal(first, tile.mvm(x, t_s=10.0, generator=gen))  # same instant, same noise
    # Across read times (1 µs apart: drift and σ unchanged to 1e-7) the noise is redrawn, with
    # the per-read variance Σ_i x_i² (σ⁺² + σ⁻²); 5 SE of a sample variance over n = 4000.
    n = 4000
    y = torch.stack([tile.mvm(x[0], t_s=10.0 + k * 1e-6, generator=gen) for k in range(n)])
    sigma = pcm.read_noise_std(tile.state, t_s=10.0)
    expected_var = (x[0].square() @ sigma.square().sum(0)) * (tile.w_max.squeeze() / 25.0) ** 2
    assert ((y.double().var(0) - expected_var).abs() <= 5 * expected_var * (2 / n) ** 0.5).all()


def test_read_noise_modes_validated_and_auto_follows_the_noise_spectrum():
    with pytest.raises(ConfigError, match="TileConfig.read_noise"):
        TileConfig(read_noise=True)
    assert Tile(2, 2, TileConfig(device=PCM())).read_noise_mode == "per_time"  # 1/f noise
    assert Tile(2, 2, TileConfig(device=FilamentaryRRAM())).read_noise_mode == "per_read"
    forced = TileConfig(device=PCM(), read_noise="per_read")
    assert Tile(2, 2, forced).read_noise_mode == "per_read"


def test_non_gaussian_read_noise_is_read_cell_by_cell(gen):
    """TwoDFET (Gaussian + telegraph noise): every vector reads every cell anew, so the output
    mean and variance are Σ x·E[G] and Σ x²·Var[G] from the device's closed-form moments."""
    dev = TwoDFET(prog_noise_std_us=0.0)
    w = torch.randn(3, 16, generator=gen)
    cfg = TileConfig(device=dev, drift_compensation=False, **IDEAL_IO)
    tile = Tile(16, 3, cfg).program(w, generator=gen)
    x = torch.rand(16, generator=gen)
    n = 20_000
    y = tile.mvm(x.expand(n, 16), generator=gen).double()
    mean, var = dev.read_moments(tile.state)  # per plane [2, rows, cols]
    signs = torch.tensor([1.0, -1.0]).view(2, 1, 1)
    to_weight = tile.w_max.squeeze() / dev.g_max_us
    expected_mean = x @ (signs * mean).sum(0) * to_weight
    expected_var = x.square() @ var.sum(0) * to_weight**2
    # 5 SE for the mean (σ/√n) and for the variance (≈ var·√(2/n); telegraph noise has a
    # kurtosis above 3, so 8 SE there).
    assert ((y.mean(0) - expected_mean).abs() <= 5 * (expected_var / n).sqrt()).all()
    assert ((y.var(0) - expected_var).abs() <= 8 * expected_var * (2 / n) ** 0.5).all()
