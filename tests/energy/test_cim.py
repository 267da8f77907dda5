"""CIM macro cost: the tiles' array-energy counter and every component of the energy model,
checked against hand computations."""

import math

import pytest
import torch

from memcim import ConfigError
from memcim.crossbar import (
    ConverterConfig,
    MappingConfig,
    Tile,
    TileConfig,
    TileCounters,
    TiledMatrix,
)
from memcim.devices import PCM, IdealDevice, SRAMCell
from memcim.energy.cim import (
    ArrayAssumptions,
    CIMCost,
    CIMEnergyModel,
    TileGeometry,
    counters_cost,
    counters_difference,
    estimate_cost,
    matrix_cost,
    tile_cost,
    tile_counters,
)

IDEAL_IO = {"dac": ConverterConfig(bits=None), "adc": ConverterConfig(bits=None)}
IO_8BIT = {"dac": ConverterConfig(bits=8), "adc": ConverterConfig(bits=8)}

# 2 outputs × 3 inputs, PyTorch [out, in]; max |w| = 1, so w̃ = w.
W23 = torch.tensor([[1.0, -0.5, 0.0], [0.25, 1.0, -1.0]])


def ideal_tile(scheme: str = "differential", g_min_us: float = 0.0, **io) -> Tile:
    device = IdealDevice(g_min_us=g_min_us, g_max_us=g_min_us + 10.0)
    config = TileConfig(device=device, mapping=MappingConfig(scheme=scheme), **(io or IDEAL_IO))
    return Tile(3, 2, config).program(W23)


# --- (1) the tile's array-energy counter ------------------------------------------------------


def test_differential_mapping_of_the_small_tile():
    # G⁺ = 10·max(w̃, 0), G⁻ = 10·max(−w̃, 0) (g_min = 0, span = 10 µS); stored [plane, in, out].
    t = ideal_tile()
    expected = torch.tensor(
        [
            [[10.0, 2.5], [0.0, 10.0], [0.0, 0.0]],  # G⁺ of W.T = [[1, .25], [-.5, 1], [0, -1]]
            [[0.0, 0.0], [5.0, 0.0], [0.0, 10.0]],  # G⁻
        ]
    )
    torch.testing.assert_close(t.state.g_us, expected)
    assert t.ref_state is None


def test_array_energy_of_an_ideal_differential_tile():
    t = ideal_tile()
    # Word-line sums Σ_j G_ij over both planes (µS): row 0: 10 + 2.5 = 12.5;
    # row 1: 10 + 5 = 15; row 2: 10.
    # Ideal DAC: V_i = x_i · 0.2 V; t_read = 100 ns; 1 µW × 100 ns = 0.1 pJ.
    t.mvm(torch.tensor([[1.0, 0.5, -1.0]]))
    # Σ x² G = 1·12.5 + 0.25·15 + 1·10 = 26.25 µS; × 0.04 V² = 1.05 µW; × 100 ns = 0.105 pJ
    assert t.counters.array_energy_pj == pytest.approx(0.105, rel=1e-5)
    t.mvm(torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]))
    # + 4·15 = 60 µS × 0.04 V² = 2.4 µW × 100 ns = 0.24 pJ (the zero vector adds nothing)
    assert t.counters.array_energy_pj == pytest.approx(0.105 + 0.24, rel=1e-5)
    assert t.counters.mvms == 3


def test_array_energy_includes_g_min_of_every_cell():
    t = ideal_tile(g_min_us=1.0)
    # Every one of the 4 cells on a word line gains 1 µS: sums 16.5, 19, 14.
    t.mvm(torch.tensor([1.0, 0.5, -1.0]))
    # Σ x² G = 16.5 + 0.25·19 + 14 = 35.25 µS × 0.04 V² × 100 ns = 0.141 pJ
    assert t.counters.array_energy_pj == pytest.approx(0.141, rel=1e-5)


def test_array_energy_counts_the_offset_reference_column():
    t = ideal_tile(scheme="offset")
    # G = 5 + 5·w̃ (g_mid = 5, span/2 = 5) and one reference cell at 5 µS per word line.
    torch.testing.assert_close(
        t.state.g_us, torch.tensor([[[10.0, 6.25], [2.5, 10.0], [5.0, 0.0]]])
    )
    torch.testing.assert_close(t.ref_state.g_us, torch.full((1, 3, 1), 5.0))
    # Sums: row 0: 10 + 6.25 + 5 = 21.25; row 1: 2.5 + 10 + 5 = 17.5; row 2: 5 + 0 + 5 = 10.
    t.mvm(torch.tensor([[1.0, 0.5, -1.0]]))
    # Σ x² G = 21.25 + 0.25·17.5 + 10 = 35.625 µS × 0.04 × 100 ns = 0.1425 pJ
    assert t.counters.array_energy_pj == pytest.approx(0.1425, rel=1e-5)


def test_array_energy_uses_the_quantised_dac_voltages():
    t = ideal_tile(**IO_8BIT)
    # 8-bit DAC: L = 127, per-vector scale max|x| = 2, codes round(x/2·127) = [127, 64, -127]
    # (63.5 rounds half to even), V = code · 0.2 / 127.
    t.mvm(torch.tensor([[2.0, 1.0, -2.0]]))
    # Σ code² G = 127²·12.5 + 64²·15 + 127²·10 = 201612.5 + 61440 + 161290 = 424342.5
    # × (0.2/127)² V² × 100 ns × 1e6 pJ/(µW·s)
    expected = 424342.5 * (0.2 / 127) ** 2 * 100e-9 * 1e6
    assert t.counters.array_energy_pj == pytest.approx(expected, rel=1e-5)  # ≈ 0.10524 pJ
    assert t.counters.dac_conversions == 3
    assert t.counters.adc_conversions == 2


def test_calibration_reads_are_not_counted():
    t = ideal_tile(**IO_8BIT)
    t.calibrate(torch.ones(4, 3))
    assert t.counters.array_energy_pj == 0.0
    assert t.counters.mvms == 0


# --- (2) counters_cost on hand-made counters ----------------------------------------------------

GEOMETRY = TileGeometry(
    rows=64,
    cols=32,
    sensed_columns=32,
    cells=4096,  # 64 × 32 × 2 (differential)
    adcs=8,
    dac_bits=4,
    adc_bits=6,
    e_write_pj=2.0,
    t_write_s=1e-6,
    mvm_latency_s=200e-9,
    device_name="PCM",
)
COUNTERS = TileCounters(mvms=10, array_energy_pj=123.0, cell_writes=4096)


def test_counters_cost_components():
    c = counters_cost(COUNTERS, GEOMETRY)  # default model: ADC 10 fJ/step, DAC 1 fJ/step
    e = c.energy_pj
    assert e["array"] == 123.0  # the measured counter, as is
    # DAC: 10 vectors × 64 word lines × 1 fJ × 2^4 = 640 × 0.016 pJ = 10.24 pJ
    assert e["dac"] == pytest.approx(10.24)
    # ADC: 10 × 32 columns × 10 fJ × 2^6 = 320 × 0.64 pJ = 204.8 pJ
    assert e["adc"] == pytest.approx(204.8)
    # Accumulate: 320 outputs × 0.1 pJ (int32 add) = 32 pJ
    assert e["accumulate"] == pytest.approx(32.0)
    # Buffer: 10 × (64 in + 32 out) × 8 bit = 7680 bit × 5/32 pJ = 1200 pJ
    assert e["buffer"] == pytest.approx(1200.0)
    # Write: 4096 pulses × 2 pJ = 8192 pJ
    assert e["write"] == pytest.approx(8192.0)
    # inference = 123 + 10.24 + 204.8 + 32 + 1200 = 1570.04; total = + 8192 = 9762.04
    assert c.inference_pj == pytest.approx(1570.04)
    assert c.total_pj == pytest.approx(9762.04)
    assert c.macs == 20480  # 10 × 64 × 32
    # TOPS/W = 2 × 20480 / 1570.04 = 26.0885 (1 op/pJ = 1 TOPS/W)
    assert c.tops_per_w == pytest.approx(40960 / 1570.04)
    assert c.tops_per_w == pytest.approx(26.0885, abs=1e-4)


def test_counters_cost_latency_and_area():
    c = counters_cost(COUNTERS, GEOMETRY)
    assert c.latency_s == pytest.approx(2e-6)  # 10 vectors × 200 ns, one after another
    # 4096 cells / 64 rows = 64 cells per word line, written in parallel: 4096/64 = 64 word-line
    # writes × 1 µs = 64 µs
    assert c.program_latency_s == pytest.approx(64e-6)
    # Cells: 4096 × 30 F² (PCM) × (22 nm)² = 4096 × 30 × 0.000484 µm² = 59.47392 µm²
    # ADCs: 8 × 8 µm² × 2^6 = 4096 µm²; DACs: 64 × 50 = 3200; accumulators: 32 × 100 = 3200
    assert c.area_um2 == pytest.approx(59.47392 + 4096 + 3200 + 3200)


def test_counters_cost_with_ideal_converters_and_a_custom_model():
    geometry = TileGeometry(rows=4, cols=2, sensed_columns=2, cells=16, adcs=2, dac_bits=None,
                            adc_bits=None, e_write_pj=0.0, t_write_s=0.0, mvm_latency_s=1e-7,
                            device_name="Unlisted")  # fmt: skip
    model = CIMEnergyModel(activation_bits=16, feature_nm=100.0)
    c = counters_cost(TileCounters(mvms=3), geometry, model)
    assert c.energy_pj["dac"] == 0.0 and c.energy_pj["adc"] == 0.0
    # Buffer: 3 × (4 + 2) × 16 bit = 288 bit × 5/32 pJ = 45 pJ
    assert c.energy_pj["buffer"] == pytest.approx(45.0)
    # 1-bit inputs (spikes): 3 × (4 × 1 + 2 × 16) bit = 108 bit × 5/32 pJ = 16.875 pJ
    spikes = CIMEnergyModel(activation_bits=16, input_bits=1, feature_nm=100.0)
    assert counters_cost(TileCounters(mvms=3), geometry, spikes).energy_pj["buffer"] == (
        pytest.approx(16.875)
    )
    # Unlisted device: 25 F²; 16 cells × 25 × (0.1 µm)² = 4 µm²; no ADC area (ideal);
    # DACs 4 × 50 = 200; accumulators 2 × 100 = 200
    assert c.area_um2 == pytest.approx(404.0)
    custom = CIMEnergyModel(cell_area_f2=100.0, feature_nm=100.0)
    # 16 × 100 × 0.01 = 16 µm²
    assert counters_cost(TileCounters(), geometry, custom).area_um2 == pytest.approx(416.0)


def test_cost_without_reads():
    c = counters_cost(TileCounters(cell_writes=10), GEOMETRY)
    assert c.inference_pj == 0.0
    assert c.total_pj == pytest.approx(20.0)  # 10 pulses × 2 pJ
    assert math.isnan(c.tops_per_w)


def test_cost_scaled_and_as_dict():
    c = counters_cost(COUNTERS, GEOMETRY)
    half = c.scaled(0.5)
    assert half.energy_pj["adc"] == pytest.approx(102.4)  # 204.8 / 2
    assert half.macs == 10240
    assert half.latency_s == pytest.approx(1e-6)
    assert half.area_um2 == c.area_um2  # area does not scale
    d = c.as_dict()
    assert d["adc_pj"] == pytest.approx(204.8)
    assert d["inference_pj"] == pytest.approx(1570.04)
    assert d["macs"] == 20480
    assert set(d) >= {"array_pj", "write_pj", "latency_s", "area_um2", "tops_per_w"}


def test_energy_model_validation():
    with pytest.raises(ConfigError, match=r"CIMEnergyModel\.adc_fom_fj_per_step"):
        CIMEnergyModel(adc_fom_fj_per_step=-1.0)
    with pytest.raises(ConfigError, match=r"CIMEnergyModel\.activation_bits"):
        CIMEnergyModel(activation_bits=0)
    with pytest.raises(ConfigError, match=r"CIMEnergyModel\.feature_nm"):
        CIMEnergyModel(feature_nm=0.0)
    with pytest.raises(ConfigError, match=r"CIMEnergyModel\.ops"):
        CIMEnergyModel(ops="horowitz")
    with pytest.raises(ConfigError, match=r"ArrayAssumptions\.max_rows"):
        ArrayAssumptions(max_rows=0)
    with pytest.raises(ConfigError, match=r"ArrayAssumptions\.v_read_v"):
        ArrayAssumptions(v_read_v=-0.2)


# --- (3) estimate_cost over several tiles ---------------------------------------------------------

DEVICE = IdealDevice(g_min_us=0.0, g_max_us=10.0, e_write_pj=2.0, t_write_s=1e-7)


def test_estimate_splits_into_tiles():
    # 1000 × 600 with 512 × 512 tiles: ceil(1000/512) = 2 × ceil(600/512) = 2 tiles of 500 × 300.
    c = estimate_cost(rows=1000, cols=600, vectors=3, v_sq_sum=1500.0, device=DEVICE)
    e = c.energy_pj
    # Array: 1500 × 0.04 V² × 600 cols × 2 cells × 5 µS (mid-window) × 100 ns × 1e6
    #      = 1500 × 24 µW·... = 1500 × 0.04 × 6000 × 0.1 = 36000 pJ
    assert e["array"] == pytest.approx(36000.0)
    # DAC: 4 tiles × 3 vectors × 500 rows × 0.256 pJ (1 fJ × 2^8) = 4 × 384 = 1536 pJ
    assert e["dac"] == pytest.approx(1536.0)
    # ADC: 4 × 3 × 300 columns × 2.56 pJ = 4 × 2304 = 9216 pJ
    assert e["adc"] == pytest.approx(9216.0)
    # Accumulate: 4 × 3 × 300 × 0.1 pJ = 360 pJ
    assert e["accumulate"] == pytest.approx(360.0)
    # Buffer: 4 × 3 × (500 + 300) × 8 bit × 5/32 pJ = 4 × 3000 = 12000 pJ
    assert e["buffer"] == pytest.approx(12000.0)
    assert e["write"] == 0.0
    # Tiles in parallel: 3 vectors × (1 ns DAC + 100 ns read + 1 ns × 1 ADC pass) = 306 ns
    assert c.latency_s == pytest.approx(306e-9)
    # One tile: 500·300·2 = 300000 cells × 4 F² × (22 nm)² = 580.8 µm²; ADCs 300 × 8 × 256 =
    # 614400; DACs 500 × 50 = 25000; accumulators 300 × 100 = 30000 → 669980.8 µm²; × 4 tiles.
    assert c.area_um2 == pytest.approx(4 * 669980.8)
    assert c.macs == 3 * 1000 * 600


def test_estimate_tile_size_adcs_and_g_mean():
    a = ArrayAssumptions(g_mean_us=2.0, max_rows=2, max_cols=3, adcs_per_tile=2,
                         t_conversion_s=10e-9)  # fmt: skip
    # 4 × 3 matrix → 2 × 1 tiles of 2 × 3; 3 sensed columns on 2 ADCs → 2 passes.
    c = estimate_cost(rows=4, cols=3, vectors=1, v_sq_sum=2.0, device=DEVICE, assumptions=a)
    # Array: 2 × 0.04 × 3 × 2 × 2 µS × 100 ns × 1e6 = 0.096 pJ
    assert c.energy_pj["array"] == pytest.approx(0.096)
    # Latency: 10 ns DAC + 100 ns + 2 passes × 10 ns = 130 ns
    assert c.latency_s == pytest.approx(130e-9)
    # ADC: 2 tiles × 3 columns × 2.56 pJ
    assert c.energy_pj["adc"] == pytest.approx(15.36)
    # Area per tile: 12 cells × 4 F² × 0.000484 = 0.023232; 2 ADCs × 2048; 2 DACs × 50;
    # 3 accumulators × 100 → 4496.023232 µm², × 2 tiles
    assert c.area_um2 == pytest.approx(2 * 4496.023232)


def test_estimate_conversions_per_output_and_ideal_converters():
    c = estimate_cost(rows=4, cols=3, vectors=2, v_sq_sum=1.0, device=DEVICE,
                      devices_per_weight=3, conversions_per_output=2, dac_bits=None)  # fmt: skip
    assert c.energy_pj["dac"] == 0.0
    # 2 vectors × 3 columns × 2 conversions × 2.56 pJ = 30.72 pJ
    assert c.energy_pj["adc"] == pytest.approx(30.72)
    # Array: 1 × 0.04 × 3 cols × 3 cells × 5 µS × 0.1 = 0.18 pJ
    assert c.energy_pj["array"] == pytest.approx(0.18)
    # 2 × (100 ns + 1 ns × ceil(6 / 6)) : no DAC conversion time
    assert c.latency_s == pytest.approx(202e-9)


def test_estimate_counts_logical_macs_when_tiles_are_rounded_up():
    # 5 rows on tiles of at most 2: 3 tiles of ceil(5/3) = 2 rows (6 word lines, one unused);
    # the work done is still 4 vectors × 5 × 3 = 60 MACs.
    a = ArrayAssumptions(max_rows=2)
    c = estimate_cost(rows=5, cols=3, vectors=4, v_sq_sum=1.0, device=DEVICE, assumptions=a)
    assert c.macs == 60


# --- (4) tile_cost / matrix_cost on programmed tiles with 8-bit converters -----------------------


def programmed_matrix(gen) -> TiledMatrix:
    config = TileConfig(device=DEVICE, **IO_8BIT)
    # 6 out × 10 in on tiles of ≤ 5 rows × ≤ 3 cols: a 2 × 2 grid of 5 × 3 tiles.
    return TiledMatrix(6, 10, config, max_rows=5, max_cols=3).program(
        torch.randn(6, 10, generator=gen)
    )


def test_tile_cost_of_a_programmed_tile(gen):
    m = programmed_matrix(gen)
    m.mvm(torch.randn(4, 10, generator=gen))
    t = m.tiles[0][0]
    c = tile_cost(t)
    # Each tile read 4 vectors: 4 × 3 = 12 ADC and 4 × 5 = 20 DAC conversions.
    assert (t.counters.adc_conversions, t.counters.dac_conversions) == (12, 20)
    assert c.energy_pj["adc"] == pytest.approx(12 * 2.56)  # 30.72 pJ
    assert c.energy_pj["dac"] == pytest.approx(20 * 0.256)  # 5.12 pJ
    assert c.energy_pj["array"] == t.counters.array_energy_pj > 0
    # 15 weights × 2 cells, one pulse each: 30 × 2 pJ = 60 pJ
    assert t.counters.cell_writes == 30
    assert c.energy_pj["write"] == pytest.approx(60.0)
    # 4 × (1 ns + 100 ns + 1 ns) = 408 ns
    assert c.latency_s == pytest.approx(408e-9)
    assert t.mvm_latency_s == pytest.approx(102e-9)
    # 30 writes over 6 cells per word line = 5 word lines × 100 ns
    assert c.program_latency_s == pytest.approx(5e-7)
    assert c.macs == 4 * 5 * 3


def test_matrix_cost_adds_energies_and_runs_tiles_in_parallel(gen):
    m = programmed_matrix(gen)
    m.mvm(torch.randn(4, 10, generator=gen))
    c = matrix_cost(m)
    tiles = [t for row in m.tiles for t in row]
    assert len(tiles) == 4
    assert c.energy_pj["adc"] == pytest.approx(4 * 12 * 2.56)  # 122.88 pJ
    assert c.energy_pj["write"] == pytest.approx(4 * 60.0)
    assert c.energy_pj["array"] == pytest.approx(sum(t.counters.array_energy_pj for t in tiles))
    assert c.latency_s == pytest.approx(408e-9)  # max, not sum
    assert c.program_latency_s == pytest.approx(5e-7)
    assert c.area_um2 == pytest.approx(4 * tile_cost(tiles[0]).area_um2)
    assert c.macs == 4 * 10 * 6  # 240


def test_matrix_cost_of_counter_differences(gen):
    m = programmed_matrix(gen)
    m.mvm(torch.randn(3, 10, generator=gen))
    before = tile_counters(m)
    m.mvm(torch.randn(2, 10, generator=gen))
    diffs = [counters_difference(a, b) for a, b in zip(tile_counters(m), before, strict=True)]
    c = matrix_cost(m, counters=diffs)
    assert c.energy_pj["adc"] == pytest.approx(4 * 2 * 3 * 2.56)  # 4 tiles × 2 vectors × 3
    assert c.energy_pj["write"] == 0.0  # the programming was before both snapshots
    assert c.macs == 2 * 10 * 6
    with pytest.raises(ConfigError, match="counters"):
        matrix_cost(m, counters=diffs[:3])


# --- (5) the estimate agrees with a measured tile ---------------------------------------------


@pytest.mark.parametrize("weights", ["zero", "plus_minus_one"])
@pytest.mark.parametrize("io", [IDEAL_IO, IO_8BIT], ids=["ideal", "8bit"])
def test_estimate_matches_a_measured_matrix(weights, io, gen):
    device = IdealDevice(g_min_us=4.0, g_max_us=10.0)
    m = TiledMatrix(6, 8, TileConfig(device=device, **io), max_rows=4, max_cols=3)
    if weights == "zero":
        w = torch.zeros(6, 8)  # every cell at g_min = 4 µS
    else:
        # ±1 everywhere: each pair is (10, 4) µS, so every word line carries 3 × 14 = 42 µS
        w = torch.where(torch.rand(6, 8, generator=gen) < 0.5, -1.0, 1.0)
    m.program(w)
    g_mean = float(torch.cat([t.state.g_us.flatten() for row in m.tiles for t in row]).mean())
    assert g_mean == pytest.approx(4.0 if weights == "zero" else 7.0)
    # Inputs in {−1, 0, 1} with |x| = 1 somewhere in each tile's half of every vector: the
    # 8-bit DAC drives exactly ±0.2 V, and (x / max|x|)² = x² whichever tile scales it.
    x = torch.tensor([[1.0, 0.0, -1.0, 1.0, -1.0, 1.0, 0.0, 0.0],
                      [0.0, -1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0]])  # fmt: skip
    m.mvm(x)
    v_sq_sum = float(x.square().sum())  # 5 + 5 = 10
    measured = matrix_cost(m)
    estimate = estimate_cost(
        rows=8, cols=6, vectors=2, v_sq_sum=v_sq_sum, device=device,
        dac_bits=io["dac"].bits, adc_bits=io["adc"].bits,
        assumptions=ArrayAssumptions(g_mean_us=g_mean, max_rows=4, max_cols=3),
    )  # fmt: skip
    # Array energy by hand: 10 × 0.04 V² × 6 cols × 2 cells × g_mean × 100 ns × 1e6
    assert measured.energy_pj["array"] == pytest.approx(10 * 0.04 * 12 * g_mean * 0.1, rel=1e-5)
    for k in ("array", "dac", "adc", "accumulate", "buffer"):
        assert estimate.energy_pj[k] == pytest.approx(measured.energy_pj[k], rel=1e-5), k
    assert estimate.latency_s == pytest.approx(measured.latency_s)
    assert estimate.area_um2 == pytest.approx(measured.area_um2)
    assert estimate.macs == measured.macs


def test_cim_cost_defaults():
    c = CIMCost(energy_pj={"array": 1.0, "write": 5.0})
    assert c.inference_pj == 1.0
    assert c.total_pj == 6.0


def test_non_ohmic_cells_are_charged_e_read_pj_per_cell_read(gen):
    sram = Tile(16, 8, TileConfig(device=SRAMCell(), **IDEAL_IO)).program(torch.randn(8, 16))
    sram.mvm(torch.rand(3, 16, generator=gen))
    cost = tile_cost(sram)
    # A digital word read costs e_read_pj, whatever Σ V² G t its "conductance" would give.
    assert cost.energy_pj["array"] == pytest.approx(
        sram.counters.cell_reads * sram.device.e_read_pj
    )
    assert sram.counters.array_energy_pj != pytest.approx(cost.energy_pj["array"])
    pcm = Tile(16, 8, TileConfig(device=PCM(), **IDEAL_IO)).program(torch.randn(8, 16))
    pcm.mvm(torch.rand(3, 16, generator=gen))
    assert tile_cost(pcm).energy_pj["array"] == pcm.counters.array_energy_pj  # ohmic: measured
    est = estimate_cost(rows=16, cols=8, vectors=3, v_sq_sum=10.0, device=SRAMCell())
    assert est.energy_pj["array"] == pytest.approx(3 * 16 * 8 * 2 * SRAMCell().e_read_pj)
