"""Stacked reads of a column of tiles (the small-batch path of TiledMatrix) against the
tile-by-tile read: the same outputs and the same counters, tile by tile."""

import copy

import pytest
import torch

from memcim.crossbar import ConverterConfig, TileConfig, TiledMatrix
from memcim.crossbar._stacked import MAX_BATCH
from memcim.devices import PCM, FilamentaryRRAM, IdealDevice

T_S = 3600.0


def pair(config: TileConfig, out_features=40, in_features=150, samples=None, seed=0,
         calib=None):  # fmt: skip
    """The same programmed matrix twice (4 row blocks of 38 or 37 word lines, 2 column
    blocks), one reading stacked and one tile by tile, ADCs calibrated on ``calib``."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(out_features, in_features, generator=gen) * 0.1
    stacked = TiledMatrix(out_features, in_features, config, max_rows=40, max_cols=32)
    stacked.program(w, generator=gen, samples=samples)
    if calib is None:
        calib = torch.rand(64, in_features, generator=gen)
    stacked.calibrate(calib, t_s=T_S, generator=gen)
    by_tile = copy.deepcopy(stacked)
    by_tile.stacked_reads = False
    return stacked, by_tile


def counters(m: TiledMatrix) -> list[dict]:
    return [tile.counters.as_dict() for row in m.tiles for tile in row]


def read_both(a: TiledMatrix, b: TiledMatrix, x: torch.Tensor, seed: int = 1):
    ga, gb = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    return a.mvm(x, t_s=T_S, generator=ga), b.mvm(x, t_s=T_S, generator=gb)


def assert_same_counters(a: TiledMatrix, b: TiledMatrix) -> None:
    for ca, cb in zip(counters(a), counters(b), strict=True):
        energy_a, energy_b = ca.pop("array_energy_pj"), cb.pop("array_energy_pj")
        assert ca == cb
        assert energy_a == pytest.approx(energy_b, rel=1e-6)  # a batched dot product


IDEAL = ConverterConfig(bits=None)
CONFIGS = {
    "pcm_per_time_8bit": TileConfig(device=PCM(), read_noise="per_time"),
    "ideal_converters": TileConfig(device=PCM(), read_noise="per_time", dac=IDEAL, adc=IDEAL),
    "ideal_device_no_noise": TileConfig(device=IdealDevice(), read_noise="off"),
    "fixed_adc": TileConfig(
        device=PCM(),
        read_noise="per_time",
        adc=ConverterConfig(bits=6, mode="fixed", full_scale=3.0),
    ),
}


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("batch", [1, 7, MAX_BATCH])
def test_stacked_reads_equal_the_tile_by_tile_read(name, batch):
    a, b = pair(CONFIGS[name])
    x = torch.rand(batch, 150, generator=torch.Generator().manual_seed(2)) * 2 - 0.5
    for _ in range(2):  # the second read reuses the stacked conductances
        ya, yb = read_both(a, b, x)
        torch.testing.assert_close(ya, yb, rtol=1e-6, atol=1e-6)
    assert a._stacked, "the stacked path was not taken"
    assert not b._stacked
    assert_same_counters(a, b)


def test_adc_saturation_is_counted_per_tile():
    a, b = pair(CONFIGS["pcm_per_time_8bit"], calib=torch.eye(150))  # single word lines
    x = torch.zeros(9, 150)
    x[:, :38] = torch.rand(9, 38, generator=torch.Generator().manual_seed(3)) + 0.5
    x[:, 140] = 1.0  # the last row block: one word line, within its calibrated range
    ya, yb = read_both(a, b, x)
    torch.testing.assert_close(ya, yb, rtol=1e-6, atol=1e-6)
    clipped = [c["adc_clipped"] for c in counters(a)]
    assert clipped[0] > 0 and clipped[-1] == 0
    assert_same_counters(a, b)


def test_re_programming_and_a_new_read_time_restack():
    a, b = pair(CONFIGS["pcm_per_time_8bit"])
    x = torch.rand(5, 150, generator=torch.Generator().manual_seed(4))
    read_both(a, b, x)
    w = torch.randn(40, 150, generator=torch.Generator().manual_seed(5)) * 0.2
    for m in (a, b):
        m.program(w, generator=torch.Generator().manual_seed(6))
        m.calibrate(x, t_s=T_S, generator=torch.Generator().manual_seed(7))
    ya, yb = read_both(a, b, x)
    torch.testing.assert_close(ya, yb, rtol=1e-6, atol=1e-6)
    ga, gb = torch.Generator().manual_seed(8), torch.Generator().manual_seed(8)
    ya, yb = a.mvm(x, t_s=86_400.0, generator=ga), b.mvm(x, t_s=86_400.0, generator=gb)
    torch.testing.assert_close(ya, yb, rtol=1e-6, atol=1e-6)
    assert_same_counters(a, b)


@pytest.mark.parametrize(
    "case", ["per_read_noise", "monte_carlo_copies", "large_batch", "single_vector"]
)
def test_reads_the_stacked_path_cannot_serve_go_tile_by_tile(case):
    config = TileConfig(device=FilamentaryRRAM()) if case == "per_read_noise" else CONFIGS[
        "pcm_per_time_8bit"]  # fmt: skip
    samples = 3 if case == "monte_carlo_copies" else None
    a, b = pair(config, samples=samples)
    shape = {"large_batch": (MAX_BATCH + 1, 150), "single_vector": (150,)}.get(case, (4, 150))
    x = torch.rand(shape, generator=torch.Generator().manual_seed(9))
    ya, yb = read_both(a, b, x)
    assert torch.equal(ya, yb)
    assert not a._stacked
    assert counters(a) == counters(b)


def test_bad_inputs_get_the_tiles_errors():
    a, _ = pair(CONFIGS["pcm_per_time_8bit"])
    x = torch.rand(3, 150)
    x[1, 100] = float("nan")
    with pytest.raises(Exception, match="NaN or infinite"):
        a.mvm(x, t_s=T_S)
