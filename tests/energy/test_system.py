"""Chiplet pipelines and monolithic-3D density: closed-form checks computed by hand."""

import dataclasses
import json
import math

import pytest

from memcim import ConfigError
from memcim.bayes import SamplingScheme
from memcim.devices import FilamentaryRRAM
from memcim.energy.cim import CIMEnergyModel
from memcim.energy.system import (
    BAYESIAN_CIM,
    BNN_LAYERS,
    DEFAULT_STAGES,
    DEVICES_PER_PARAMETER,
    INTEGRATION_LINKS,
    PRESETS,
    ROLES,
    Chiplet,
    Pipeline,
    bayesian_cim_chiplet,
    bayesian_cim_cost,
    build,
    devices_per_parameter,
    largest_bayesian_model,
    memory_density_per_mm2,
    neurosim_bayesian_cim_pj,
    pipeline_cost,
)
from memcim.energy.tables import (
    HOROWITZ_45NM,
    HYBRID_BONDING_3D,
    INTERPOSER_2_5D,
    OFF_PACKAGE,
    ON_DIE,
    Link,
)


def chip(name: str, e_pj: float, latency_s: float, output_bits: float = 0.0) -> Chiplet:
    return Chiplet(name=name, role="bayesian_cim", e_pj=e_pj, latency_s=latency_s,
                   output_bits=output_bits, area_mm2=1.0)  # fmt: skip


TEST_LINK = Link(name="test", e_pj_per_bit=0.5, latency_s=10e-9, bandwidth_bits_per_s=1e9)


def test_two_stages_one_link_by_hand():
    a = chip("a", 100.0, 1e-6, output_bits=1000)
    b = chip("b", 50.0, 2e-6)
    cost = pipeline_cost(Pipeline(stages=(a, b), links=(TEST_LINK,)))
    # Energy: 100 + 50 pJ of stages + 1000 bit × 0.5 pJ/bit = 500 pJ of link = 650 pJ.
    assert cost.stage_energy_pj == pytest.approx(150.0)
    assert cost.link_energy_pj == pytest.approx(500.0)
    assert cost.energy_pj == pytest.approx(650.0)
    assert cost.link_share == pytest.approx(500.0 / 650.0)
    # Latency: 1 µs + 2 µs of stages + (10 ns fixed + 1000 bit / 1 Gbit/s = 1 µs) = 4.01 µs.
    assert cost.latency_s == pytest.approx(4.01e-6)
    # Throughput: occupancies 1 µs (a), 1 µs (link serialisation), 2 µs (b): b limits, 500k/s.
    assert cost.throughput_per_s == pytest.approx(5e5)
    assert cost.bottleneck == "b"
    assert cost.silicon_area_mm2 == pytest.approx(2.0)
    assert cost.energy_breakdown_pj == pytest.approx({"a": 100.0, "a->b": 500.0, "b": 50.0})
    assert list(cost.energy_breakdown_pj) == ["a", "a->b", "b"]  # pipeline order
    assert cost.latency_breakdown_s == pytest.approx({"a": 1e-6, "a->b": 1.01e-6, "b": 2e-6})
    d = cost.as_dict()
    json.dumps(d)
    assert d["energy_pj"] == pytest.approx(650.0) and d["bottleneck"] == "b"
    assert d["link_share"] == pytest.approx(500.0 / 650.0)
    assert d["energy_breakdown_pj"]["a->b"] == pytest.approx(500.0)


def test_a_slow_link_is_the_bottleneck():
    # 10,000 bits at 1 Gbit/s occupy the link 10 µs, longer than either stage (1 µs, 2 µs).
    a, b = chip("a", 0.0, 1e-6, output_bits=10_000), chip("b", 0.0, 2e-6)
    cost = pipeline_cost(Pipeline(stages=(a, b), links=(TEST_LINK,)))
    assert cost.bottleneck == "a->b"
    assert cost.throughput_per_s == pytest.approx(1e5)


def test_single_stage_has_no_links_and_ignores_its_output():
    cost = pipeline_cost(Pipeline(stages=(chip("only", 7.0, 3e-6, output_bits=99),)))
    assert cost.energy_pj == 7.0 and cost.link_energy_pj == 0.0 and cost.link_share == 0.0
    assert cost.latency_s == pytest.approx(3e-6)
    assert cost.throughput_per_s == pytest.approx(1 / 3e-6)


def test_per_mm_link_scales_with_length():
    a, b = chip("a", 0.0, 1e-6, output_bits=1000), chip("b", 0.0, 1e-6)
    # ON_DIE is 0.1 pJ/bit/mm: 1000 bit over 3 mm = 300 pJ; over 6 mm twice that.
    three = pipeline_cost(Pipeline(stages=(a, b), links=(ON_DIE,), link_lengths_mm=(3.0,)))
    six = pipeline_cost(Pipeline(stages=(a, b), links=(ON_DIE,), link_lengths_mm=(6.0,)))
    assert three.link_energy_pj == pytest.approx(300.0)
    assert six.link_energy_pj == pytest.approx(600.0)
    # A per-transfer link ignores the length.
    far = pipeline_cost(Pipeline(stages=(a, b), links=(TEST_LINK,), link_lengths_mm=(50.0,)))
    assert far.link_energy_pj == pytest.approx(500.0)
    # build("monolithic") uses on-die wires of length_mm between every pair.
    mono = pipeline_cost(build((a, b), "monolithic", length_mm=2.5))
    assert mono.link_energy_pj == pytest.approx(1000 * 0.1 * 2.5)


def test_integration_order_for_the_same_traffic():
    costs = {i: pipeline_cost(build(DEFAULT_STAGES, i)) for i in INTEGRATION_LINKS}
    traffic_bits = sum(s.output_bits for s in DEFAULT_STAGES[:-1])
    assert traffic_bits == 6272 + 1600 + 96 + 32  # frame, events, probabilities, decision
    for name, link in (("2d", OFF_PACKAGE), ("2.5d", INTERPOSER_2_5D),
                       ("3d", HYBRID_BONDING_3D)):  # fmt: skip
        assert costs[name].link_energy_pj == pytest.approx(traffic_bits * link.e_pj_per_bit)
    assert costs["3d"].link_energy_pj < costs["2.5d"].link_energy_pj < costs["2d"].link_energy_pj
    assert costs["3d"].energy_pj < costs["2.5d"].energy_pj < costs["2d"].energy_pj
    assert costs["3d"].latency_s < costs["2.5d"].latency_s < costs["2d"].latency_s
    # The chiplets cost the same whatever joins them.
    assert len({round(c.stage_energy_pj, 9) for c in costs.values()}) == 1


def test_build_accepts_a_replacement_link_and_keeps_stages():
    cheap = dataclasses.replace(OFF_PACKAGE, e_pj_per_bit=1.0)
    p = build(list(DEFAULT_STAGES), "2d", link=cheap)
    assert p.stages == DEFAULT_STAGES and p.links == (cheap,) * 4
    assert pipeline_cost(p).link_energy_pj == pytest.approx(8000.0)


def test_presets_cover_every_role_and_document_their_arithmetic():
    assert tuple(PRESETS) == ROLES
    assert tuple(s.role for s in DEFAULT_STAGES) == ROLES
    # Sensor: 784 × (5 pJ readout + 10 fJ/step × 2⁸ = 2.56 pJ ADC) = 5,927.04 pJ; 6,272 bits.
    assert PRESETS["sensor"].e_pj == pytest.approx(784 * 7.56)
    assert PRESETS["sensor"].output_bits == 28 * 28 * 8
    # Learning: 640 × (0.1 FeCAP + 1 pJ / 100 + 0.2 + 0.03 int8 MAC) = 217.6 pJ.
    assert PRESETS["learning"].e_pj == pytest.approx(217.6)
    # Bayesian CIM: computed by the tile model (see the tests below), not a preset figure.
    assert PRESETS["bayesian_cim"] == bayesian_cim_chiplet(bayesian_cim_cost())
    assert PRESETS["digital_host"].output_bits == 0
    # Variants via dataclasses.replace are validated too.
    with pytest.raises(ConfigError, match="e_pj"):
        dataclasses.replace(PRESETS["sensor"], e_pj=-1.0)


def test_density_by_hand():
    # 25 F² at F = 20 nm: 25 · 400 nm² = 10⁴ nm² = 10⁻⁸ mm² per cell -> 10⁸ cells/mm² per layer
    # at 100 % array efficiency; 50 % -> 5·10⁷; 4 layers -> 2·10⁸.
    assert memory_density_per_mm2(25.0, 20.0, 1, 1.0) == pytest.approx(1e8)
    assert memory_density_per_mm2(25.0, 20.0, 1, 0.5) == pytest.approx(5e7)
    assert memory_density_per_mm2(25.0, 20.0, 4, 0.5) == pytest.approx(2e8)
    assert memory_density_per_mm2(25.0, 20.0, layers=3, array_efficiency=0.5) == pytest.approx(
        3 * memory_density_per_mm2(25.0, 20.0, 1, 0.5)
    )


def test_largest_model_by_hand():
    kw = {"cell_area_f2": 25.0, "feature_nm": 20.0, "array_efficiency": 0.5}
    # 10 mm² × 5·10⁷ /mm² = 5·10⁸ devices per layer.
    assert largest_bayesian_model(10.0, 1, **kw) == 500_000_000
    # 3 devices per parameter: ⌊5·10⁸ / 3⌋ = 166,666,666 per layer; 4 layers: 666,666,664
    # (each layer holds whole parameters, so exactly 4× one layer, not ⌊2·10⁹ / 3⌋).
    assert largest_bayesian_model(10.0, 3, **kw) == 166_666_666
    assert largest_bayesian_model(10.0, 3, layers=4, **kw) == 666_666_664
    # Device population, K = 100: 200 devices per parameter -> 2.5·10⁶ per layer.
    assert largest_bayesian_model(10.0, devices_per_parameter("device_population"), **kw) == (
        2_500_000
    )
    # Too small an area for one parameter.
    assert largest_bayesian_model(1e-8, 2, **kw) == 0


def test_devices_per_parameter_matches_the_sampling_schemes():
    assert set(DEVICES_PER_PARAMETER) == {s.value for s in SamplingScheme}
    assert DEVICES_PER_PARAMETER == {"cycle_to_cycle": 1, "differential": 2, "read_noise": 3,
                                     "separate_mu_sigma": 4, "device_population": 200}  # fmt: skip
    # The cells the tiles of memcim.bayes really use per weight (one copy; K rows of pairs).
    from memcim.bayes import HardwareSampling, SampledMatrix

    for scheme in SamplingScheme:
        sampler = SampledMatrix(4, 5, HardwareSampling(scheme=scheme))
        cells = sum(t.cells for m in sampler.matrices for row in m.tiles for t in row)
        expected = (
            2 if scheme is SamplingScheme.DEVICE_POPULATION else DEVICES_PER_PARAMETER[scheme]
        )
        assert cells == 20 * expected, scheme
    assert devices_per_parameter(SamplingScheme.DIFFERENTIAL) == 2
    assert devices_per_parameter("device_population", population=7) == 14
    assert devices_per_parameter("read_noise", population=7) == 3
    with pytest.raises(ConfigError, match="scheme"):
        devices_per_parameter("gibbs")
    with pytest.raises(ConfigError, match="population"):
        devices_per_parameter("device_population", population=0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("role", "router"),
        ("e_pj", -1.0),
        ("e_pj", math.nan),
        ("latency_s", 0.0),
        ("output_bits", -8),
        ("area_mm2", 0.0),
        ("process", 22),
    ],
)
def test_chiplet_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        dataclasses.replace(PRESETS["sensor"], **{field: value})


def test_pipeline_validation():
    a, b = chip("a", 1.0, 1e-6, 10), chip("b", 1.0, 1e-6)
    with pytest.raises(ConfigError, match=r"Pipeline\.links"):
        Pipeline(stages=(a, b), links=())
    with pytest.raises(ConfigError, match=r"Pipeline\.links"):
        Pipeline(stages=(a, b), links=(TEST_LINK, TEST_LINK))
    with pytest.raises(ConfigError, match=r"Pipeline\.stages"):
        Pipeline(stages=())
    with pytest.raises(ConfigError, match=r"Pipeline\.stages"):
        Pipeline(stages=(a, a), links=(TEST_LINK,))  # duplicate names
    with pytest.raises(ConfigError, match=r"Pipeline\.link_lengths_mm"):
        Pipeline(stages=(a, b), links=(ON_DIE,))  # a per-mm link needs its length
    with pytest.raises(ConfigError, match=r"Pipeline\.link_lengths_mm"):
        Pipeline(stages=(a, b), links=(ON_DIE,), link_lengths_mm=(1.0, 2.0))
    with pytest.raises(ConfigError, match=r"Pipeline\.link_lengths_mm"):
        Pipeline(stages=(a, b), links=(ON_DIE,), link_lengths_mm=(-1.0,))
    with pytest.raises(ConfigError, match="integration"):
        build((a, b), "4d")
    with pytest.raises(ConfigError, match="length_mm"):
        build((a, b), "monolithic", length_mm=-2.0)
    with pytest.raises(ConfigError, match="pipeline"):
        pipeline_cost((a, b))
    # Lists are accepted and stored as tuples; lengths default to 1 mm for per-transfer links.
    p = Pipeline(stages=[a, b], links=[TEST_LINK])
    assert p.stages == (a, b) and p.links == (TEST_LINK,) and p.link_lengths_mm == (1.0,)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cell_area_f2": 0.0}, "cell_area_f2"),
        ({"feature_nm": -5.0}, "feature_nm"),
        ({"layers": 0}, "layers"),
        ({"layers": 2.0}, "layers"),
        ({"array_efficiency": 1.5}, "array_efficiency"),
        ({"array_efficiency": 0.0}, "array_efficiency"),
    ],
)
def test_density_rejects_bad_arguments(kwargs, field):
    args = {"cell_area_f2": 25.0, "feature_nm": 22.0, "layers": 1, "array_efficiency": 0.5}
    with pytest.raises(ConfigError, match=field):
        memory_density_per_mm2(**{**args, **kwargs})
    with pytest.raises(ConfigError, match=field):
        largest_bayesian_model(10.0, 2, **{**args, **kwargs})


def test_largest_model_rejects_bad_area_and_devices():
    kw = {"cell_area_f2": 25.0, "feature_nm": 22.0}
    with pytest.raises(ConfigError, match="area_mm2"):
        largest_bayesian_model(0.0, 2, **kw)
    with pytest.raises(ConfigError, match="devices_per_parameter"):
        largest_bayesian_model(10.0, 0, **kw)
    with pytest.raises(ConfigError, match="devices_per_parameter"):
        largest_bayesian_model(10.0, 1.5, **kw)


def _bnn_by_hand(*, adc_bits: int = 8, adc_fom_fj: float = 10.0, g_max_us: float = 120.0):
    """The Bayesian CIM chiplet's inference energy (pJ) and latency (s), from the formulas.

    MLP 128-64-10, S = 10 samples, device population (2 cells per weight read per sample, one
    conversion per output, no writes per inference), filamentary RRAM window 5..g_max µS, the
    cim defaults: 0.2 V at full scale, 100 ns read, 1 ns per conversion, 8-bit DAC at 1 fJ/step,
    ADC at ``adc_fom_fj`` fJ/step, int32 accumulation per output, 8-bit activations from SRAM,
    and inputs with mean (x/max)² = 1/3. Both layers fit in one 512 × 512 tile each.
    """
    s, g_mean_us = 10, (5.0 + g_max_us) / 2
    sram_bit_pj = HOROWITZ_45NM.sram_read_32b_pj / 32
    energy = latency = 0.0
    for rows, cols in ((128, 64), (64, 10)):
        array = s * (rows / 3) * 0.2**2 * cols * 2 * g_mean_us * 100e-9 * 1e6  # V²·µS·s -> pJ
        dac = s * rows * 1e-3 * 2**8
        adc = s * cols * adc_fom_fj * 1e-3 * 2**adc_bits
        accumulate = s * cols * HOROWITZ_45NM.int32_add_pj
        buffer = s * (rows + cols) * 8 * sram_bit_pj
        energy += array + dac + adc + accumulate + buffer
        latency += s * (1e-9 + 100e-9 + 1e-9)  # DAC, read, ADC; the layers run in sequence
    return energy, latency


def test_bayesian_cim_chiplet_energy_is_the_tile_model_computed_by_hand():
    energy, latency = _bnn_by_hand()
    # 14,720 array + 491.52 DAC + 1,894.4 ADC + 74 accumulation + 3,325 buffer = 20,504.92 pJ.
    assert energy == pytest.approx(20_504.92)
    assert BAYESIAN_CIM.e_pj == pytest.approx(energy, rel=1e-12)
    assert BAYESIAN_CIM.latency_s == pytest.approx(latency, rel=1e-12)  # 2.04 µs
    assert PRESETS["bayesian_cim"] is BAYESIAN_CIM and BAYESIAN_CIM in DEFAULT_STAGES
    cost = bayesian_cim_cost()
    assert cost.macs == 10 * (128 * 64 + 64 * 10)
    # The one-off programming (2 · K = 200 RESET+SET per weight at 1 pJ) stays out of e_pj.
    assert cost.energy_pj["write"] == pytest.approx(200 * 8832 * 1.0)


def test_the_chiplet_follows_the_tile_model():
    base = BAYESIAN_CIM.e_pj
    four_bit = bayesian_cim_chiplet(bayesian_cim_cost(adc_bits=4)).e_pj
    assert four_bit == pytest.approx(_bnn_by_hand(adc_bits=4)[0], rel=1e-12)
    assert base - four_bit == pytest.approx(10 * 74 * 10e-3 * (256 - 16))  # 1,776 pJ of ADC
    dear_adc = bayesian_cim_cost(model=CIMEnergyModel(adc_fom_fj_per_step=50.0)).inference_pj
    assert dear_adc == pytest.approx(_bnn_by_hand(adc_fom_fj=50.0)[0], rel=1e-12)
    wide = dataclasses.replace(FilamentaryRRAM(), g_max_us=240.0)
    assert bayesian_cim_cost(device=wide).inference_pj == pytest.approx(
        _bnn_by_hand(g_max_us=240.0)[0], rel=1e-12
    )
    # Re-programming schemes pay their writes per inference: differential, 2 per weight/sample.
    diff = bayesian_cim_cost(scheme="differential").inference_pj
    assert diff - base == pytest.approx(2 * 8832 * 10 * 1.0)


def test_neurosim_figure_is_a_comparison_only():
    # 2 · (128·64 + 64·10) · 10 ops / 11.25 TOPS/W (1 TOPS/W = 1 op/pJ) = 15,701.3 pJ.
    assert neurosim_bayesian_cim_pj() == pytest.approx(2 * 8832 * 10 / 11.25)
    assert neurosim_bayesian_cim_pj(BNN_LAYERS, 20) == pytest.approx(2 * neurosim_bayesian_cim_pj())
    assert BAYESIAN_CIM.e_pj != pytest.approx(neurosim_bayesian_cim_pj(), rel=0.05)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"scheme": "nope"}, "scheme"), ({"layers": ()}, "layers"), ({"layers": ((0, 3),)}, "layers"),
     ({"input_sq_mean": 0.0}, "input_sq_mean"), ({"samples": 0}, "samples")],
)  # fmt: skip
def test_bayesian_cim_cost_rejects_bad_arguments(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        bayesian_cim_cost(**kwargs)
