"""profile() of a Bayesian network on crossbar tiles: its energy is what the tiles counted during
the pass, and on the same activity it is the analytic bayes_cim_cost, for every sampling scheme.

The network is one BayesianLinear 64 → 32 on RRAM tiles with the default 8-bit converters; the
bias is one more word line driven by 1, so the tiles hold a 65 × 32 matrix. Every input is 1,
so every word line is driven at full scale (V = v_read on all 65 rows): Σ V² G is then
v_read² × the cells' total conductance, which the analytic model reproduces from their mean.
"""

import functools

import pytest
import torch
from torch import nn

import memcim.bayes as mb
from memcim import ConfigError
from memcim.crossbar import TileCounters
from memcim.energy import MCU, ArrayAssumptions, bayes_cim_cost, profile, scheme_cost
from memcim.energy.cim import CIMEnergyModel

SCHEMES = list(mb.SamplingScheme)
REPROGRAMMED = (mb.SamplingScheme.CYCLE_TO_CYCLE, mb.SamplingScheme.DIFFERENTIAL)
IN, OUT = 64, 32
ROWS = IN + 1  # the bias word line
K, N, POPULATION, BITS = 4, 3, 7, 16
X = torch.ones(N, IN)
READS = ("array", "dac", "adc", "accumulate", "buffer")
ADC_PJ = CIMEnergyModel().adc_pj(8)  # 10 fJ/step × 256 = 2.56 pJ


def bnn() -> nn.Module:
    net = nn.Linear(IN, OUT)
    with torch.no_grad():
        net.weight.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(1))
    return mb.to_bayesian(nn.Sequential(net)).eval()


@functools.cache
def on_tiles(scheme: mb.SamplingScheme) -> nn.Module:
    """The network on tiles holding K = 4 samples (programmed once per scheme, for the module:
    profile reads counter differences, and only programming changes the write counts)."""
    sampling = mb.HardwareSampling(scheme=scheme, population=POPULATION, random_bits=BITS)
    hw, _ = mb.to_hardware(bnn(), sampling, samples=K,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    return hw


def mean_conductance_us(sampled: mb.SampledMatrix) -> float:
    """Mean conductance (µS) of every cell of every array and copy, as read at the sampler's
    t_s: the one device quantity in the array energy (fixed references excluded)."""
    total, cells = 0.0, 0
    for matrix in sampled.matrices:
        for tile in (t for row in matrix.tiles for t in row):
            g = tile.device.drift(tile.state, sampled.sampling.t_s)
            total, cells = total + float(g.double().sum()), cells + g.numel()
    return total / cells


def totals(sampled: mb.SampledMatrix) -> TileCounters:
    """The counters of every tile of every array of the sampler, summed."""
    out = TileCounters()
    for matrix in sampled.matrices:
        for name, value in matrix.counters.as_dict().items():
            setattr(out, name, getattr(out, name) + value)
    return out


def analytic(scheme: mb.SamplingScheme, g_mean_us: float, samples: int = K, batch: int = N):
    sampling = on_tiles(scheme)[0].sampled.sampling
    return bayes_cim_cost(rows=ROWS, cols=OUT, vectors=1, v_sq_sum=float(ROWS),
                          samples=samples, scheme=scheme.value, device=sampling.device,
                          batch=batch, input_shared=True, population=POPULATION,
                          random_bits=BITS,
                          assumptions=ArrayAssumptions(g_mean_us=g_mean_us))  # fmt: skip


@pytest.mark.parametrize("scheme", SCHEMES)
def test_measured_cost_is_the_analytic_model_on_the_same_activity(scheme):
    """Measured (tile counters) against analytic (bayes_cim_cost), per component.

    Given the same activity both count the same operations: vectors × (S, or 1 for the shared
    input of separate μ/σ²) reads of 65 word lines and 32 columns per array, the writes of the
    scheme, n bits and one combination per output, sample and vector. The array energy is
    v_read² × t_read × (Σ G of the cells read + the fixed references) in both, with the cells'
    mean conductance taken from the tiles. What remains is rounding: the tile sums
    codes² × G in float32 (relative error ~1e-7 per operation, ≤ 1e-6 over a 65-term row sum
    and 32 columns), the analytic model works in float64, so 1e-5 holds where the acceptance
    asks for 5 %."""
    hw = on_tiles(scheme)
    report = profile(hw, X, samples=K)
    (layer,) = report.layers
    assert layer.kind == f"cim-bayes-{scheme.value}"
    assert (layer.rows, layer.cols) == (ROWS, OUT)
    expected = analytic(scheme, mean_conductance_us(hw[0].sampled))
    measured = layer.cost
    assert set(measured.energy_pj) == set(expected.energy_pj)
    for name, value in expected.energy_pj.items():
        assert measured.energy_pj[name] == pytest.approx(value, rel=1e-5, abs=1e-9), name
    assert measured.inference_pj == pytest.approx(expected.inference_pj, rel=1e-5)
    assert measured.energy_pj["array"] > 0 and measured.inference_pj > 0
    assert measured.latency_s == pytest.approx(expected.latency_s, rel=1e-9)
    assert measured.macs == expected.macs == K * ROWS * OUT


@pytest.mark.parametrize("scheme", SCHEMES)
def test_counts_equal_the_scheme_table_exactly(scheme):
    """ADC conversions, writes, random bits and combinations the tiles counted are the
    analytic model's counts (scheme_cost) for N = 3 inputs, S = K = 4, 65 × 32 weights."""
    hw = on_tiles(scheme)
    sampled = hw[0].sampled
    s = scheme_cost(scheme.value, population=POPULATION, random_bits=BITS)
    before, sampler = totals(sampled), sampled.counters.as_dict()
    report = profile(hw, X, samples=K)
    after = totals(sampled)
    reads = 1 if s.reads_shared else K  # separate μ/σ² reads the shared input once
    conversions = after.adc_conversions - before.adc_conversions
    assert conversions == N * reads * OUT * s.conversions_per_output
    assert report.layers[0].cost.energy_pj["adc"] == pytest.approx(conversions * ADC_PJ / N)
    assert after.cell_writes == (s.writes_once + K * s.writes_per_sample) * ROWS * OUT
    bits = sampled.counters.random_bits - sampler["random_bits"]
    ops = sampled.counters.digital_ops - sampler["digital_ops"]
    assert bits == N * K * OUT * s.random_bits_per_output
    assert ops == N * K * OUT * s.digital_ops_per_output


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_measured_energy_comes_from_the_tiles_counters(scheme):
    """The array energy is the tiles' Σ V² G t counted during the pass (a difference, not the
    running total), and doubling S doubles what the tiles did: the reads (once per vector
    for separate μ/σ², whose bits and combinations double instead) and the re-programming."""
    hw = on_tiles(scheme)
    sampled = hw[0].sampled
    before = totals(sampled).array_energy_pj
    one = profile(hw, X, samples=K).layers[0].cost
    counted = totals(sampled).array_energy_pj - before
    assert one.energy_pj["array"] == pytest.approx(counted / N, rel=1e-9)
    two = profile(hw, X, samples=2 * K).layers[0].cost  # copy s mod K serves sample s
    again = profile(hw, X, samples=K).layers[0].cost
    assert again.energy_pj == pytest.approx(one.energy_pj, rel=1e-9)  # nothing accumulates
    separate = scheme is mb.SamplingScheme.SEPARATE_MU_SIGMA
    for name in READS:
        factor = 1 if separate else 2
        assert two.energy_pj[name] == pytest.approx(factor * one.energy_pj[name], rel=1e-6), name
    for name in ("rng", "combine", "sample_writes"):
        assert two.energy_pj[name] == pytest.approx(2 * one.energy_pj[name], rel=1e-9), name
    assert two.energy_pj["write"] == one.energy_pj["write"]  # programmed once
    assert two.macs == 2 * one.macs


@pytest.mark.parametrize("scheme", SCHEMES)
def test_programming_is_per_sample_only_for_the_reprogrammed_schemes(scheme):
    """cycle_to_cycle / differential: the tiles' writes × e_write shared by the batch, in the
    inference and (as programming time) in the latency; the others: a one-off "write"."""
    hw = on_tiles(scheme)
    sampled = hw[0].sampled
    writes = totals(sampled).cell_writes
    e_write = sampled.sampling.device.e_write_pj
    cost = profile(hw, X, samples=K).layers[0].cost
    edge = profile(hw, X, samples=K, batch=1).layers[0].cost
    if scheme in REPROGRAMMED:
        assert cost.energy_pj["sample_writes"] == pytest.approx(writes * e_write / N)
        assert edge.energy_pj["sample_writes"] == pytest.approx(writes * e_write)
        assert cost.energy_pj["write"] == 0.0
        # One word line at a time, all its cells in parallel: writes / cells per word line.
        per_line = sampled.matrix.tiles[0][0].cells / ROWS
        program_s = writes / per_line * sampled.sampling.device.t_write_s / N
        assert cost.program_latency_s == pytest.approx(program_s)
        assert cost.latency_s == pytest.approx(K * 102e-9 + program_s)  # 1 + 100 + 1 ns reads
    else:
        assert cost.energy_pj["write"] == pytest.approx(writes * e_write)
        assert cost.energy_pj["sample_writes"] == 0.0
        assert cost.total_pj - cost.inference_pj == pytest.approx(writes * e_write)
        assert edge.energy_pj == pytest.approx(cost.energy_pj)  # nothing shared by a batch


def test_samples_must_fit_the_copies_on_the_tiles():
    hw = on_tiles(mb.SamplingScheme.DIFFERENTIAL)
    with pytest.raises(ConfigError, match=r"samples=6 .*4 device-realised weight sets"):
        profile(hw, X, samples=6)
    with pytest.raises(ConfigError, match="samples=1"):
        profile(hw, X)  # the default S = 1 cannot read 4 copies
    # Drawn per read: any S.
    read_noise = on_tiles(mb.SamplingScheme.READ_NOISE)
    assert profile(read_noise, X, samples=3).layers[0].cost.macs == 3 * ROWS * OUT
    mixed = nn.Sequential(hw[0], nn.ReLU(), mb.to_bayesian(nn.Sequential(nn.Linear(OUT, 2)))[0])
    with pytest.raises(ConfigError, match="mixes hardware Bayesian layers"):
        profile(mixed, X, samples=K)


def test_a_hardware_network_on_a_digital_processor_is_priced_as_its_software_network():
    """processor=: the S-sample pass sees the shapes the software network has."""
    soft = profile(bnn(), X, processor=MCU, samples=K)
    hard = profile(on_tiles(mb.SamplingScheme.DIFFERENTIAL), X, processor=MCU, samples=K)
    assert [la.kind for la in hard.layers] == ["digital"]
    assert hard.layers[0].cost.energy_pj == pytest.approx(soft.layers[0].cost.energy_pj)
    assert hard.macs == soft.macs == K * IN * OUT
