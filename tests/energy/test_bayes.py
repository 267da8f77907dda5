"""Cost of Monte-Carlo sampling: Bayesian CIM schemes and the digital baseline, by hand."""

import dataclasses

import pytest

from memcim import ConfigError
from memcim.devices import STTMRAM, IdealDevice, LaplaceRRAM
from memcim.energy.bayes import (
    E_GAUSSIAN_PJ,
    SCHEMES,
    SchemeCost,
    bayes_cim_cost,
    bayes_digital_cost,
    combine_energy_pj,
    reference_level_us,
    scheme_cost,
)
from memcim.energy.cim import ArrayAssumptions, estimate_cost
from memcim.energy.digital import MCU
from memcim.energy.tables import HOROWITZ_45NM

# 2 pJ and 100 ns per pulse; mid-window 5 µS.
DEVICE = IdealDevice(g_min_us=0.0, g_max_us=10.0, e_write_pj=2.0, t_write_s=1e-7)
# A 4-input × 3-output layer: W = 12 weights; one vector with Σ (x/max|x|)² = 2.
LAYER = {"rows": 4, "cols": 3, "vectors": 1, "v_sq_sum": 2.0, "device": DEVICE}
READ = ("array", "dac", "adc", "accumulate", "buffer")


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        # cells, arrays, fixed references per word line, writes per sample, writes once,
        # random bits and digital combinations per output
        ("cycle_to_cycle", (1, 1, 1, 1, 0, 0, 0)),
        ("differential", (2, 1, 0, 2, 0, 0, 0)),
        ("device_population", (2, 1, 0, 0, 2 * 7, 0, 0)),  # 2K writes, K = 7
        ("read_noise", (3, 1, 3, 0, 3, 0, 0)),
        ("separate_mu_sigma", (4, 2, 0, 0, 4, 5, 1)),  # μ pair + σ² pair, n = 5 random bits
    ],
)
def test_scheme_table(scheme, expected):
    s = scheme_cost(scheme, population=7, random_bits=5)
    assert s == SchemeCost(cells_per_weight=expected[0], arrays=expected[1],
                           reference_per_row=expected[2], writes_per_sample=expected[3],
                           writes_once=expected[4], random_bits_per_output=expected[5],
                           digital_ops_per_output=expected[6],
                           reads_shared=scheme == "separate_mu_sigma")  # fmt: skip
    assert s.conversions_per_output == expected[1]  # one ADC per array
    assert scheme in SCHEMES


def test_scheme_defaults():
    assert scheme_cost("device_population").writes_once == 200  # 2 × K = 2 × 100
    assert scheme_cost("separate_mu_sigma").random_bits_per_output == 16


def test_combine_energy_is_a_square_root_and_a_multiply_add_from_horowitz():
    # sqrt: 7 fp32 multiplies (3.7 pJ) + 2 fp32 adds (0.9 pJ) = 27.7 pJ; + one MAC 4.6 pJ.
    assert combine_energy_pj() == pytest.approx(32.3)
    cheap = dataclasses.replace(HOROWITZ_45NM, fp32_mult_pj=1.0, fp32_add_pj=0.0)
    assert combine_energy_pj(cheap) == pytest.approx(8.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"scheme": "gibbs"}, "scheme"), ({"population": 0}, "population"),
     ({"random_bits": 0}, "random_bits")],
)  # fmt: skip
def test_scheme_validation(kwargs, field):
    args = {"scheme": "differential", **kwargs}
    with pytest.raises(ConfigError, match=field):
        scheme_cost(args.pop("scheme"), **args)


@pytest.mark.parametrize(
    ("scheme", "batch", "writes_pj", "program_s"),
    [
        # 1 pulse × 12 weights × 5 samples / B × 2 pJ; 60/B pulses over 3 cells per word line
        # (× 100 ns each) = 20/B word-line writes × 100 ns.
        ("cycle_to_cycle", 1, 120.0, 2e-6),
        ("cycle_to_cycle", 4, 30.0, 0.5e-6),
        # 2 pulses × 12 × 5 / B × 2 pJ; 120/B pulses over 3 × 2 = 6 cells per word line.
        ("differential", 1, 240.0, 2e-6),
        ("differential", 4, 60.0, 0.5e-6),
    ],
)
def test_per_sample_writes(scheme, batch, writes_pj, program_s):
    c = bayes_cim_cost(**LAYER, samples=5, scheme=scheme, batch=batch)
    assert c.energy_pj["sample_writes"] == pytest.approx(writes_pj)
    assert c.energy_pj["write"] == 0.0  # nothing programmed once
    assert c.energy_pj["rng"] == 0.0
    assert c.program_latency_s == pytest.approx(program_s)
    # Reads: 5 samples × (1 ns DAC + 100 ns + 1 ns ADC), then the re-programming is in the path.
    assert c.latency_s == pytest.approx(5 * 102e-9 + program_s)
    # Per-sample writes are part of the inference; the reads are the rest.
    assert c.inference_pj == pytest.approx(sum(c.energy_pj[k] for k in READ) + writes_pj)


@pytest.mark.parametrize(
    ("scheme", "once_pj"),
    [
        ("device_population", 2 * 100 * 12 * 2.0),  # 2K pulses × 12 weights × 2 pJ = 4800 pJ
        ("read_noise", 3 * 12 * 2.0),  # 72 pJ
        ("separate_mu_sigma", 4 * 12 * 2.0),  # 96 pJ: a μ pair and a σ² pair per weight
    ],
)
def test_one_off_programming_is_kept_out_of_the_inference(scheme, once_pj):
    c = bayes_cim_cost(**LAYER, samples=5, scheme=scheme, e_random_bit_pj=0.0, e_combine_pj=0.0)
    assert c.energy_pj["write"] == pytest.approx(once_pj)
    assert c.energy_pj["sample_writes"] == 0.0
    assert c.program_latency_s == 0.0
    assert c.total_pj - c.inference_pj == pytest.approx(once_pj)
    assert c.inference_pj == pytest.approx(sum(c.energy_pj[k] for k in READ))


def test_separate_mu_sigma_random_bits_combinations_and_two_arrays():
    c = bayes_cim_cost(**LAYER, samples=5, scheme="separate_mu_sigma", random_bits=16,
                       e_random_bit_pj=0.1)  # fmt: skip
    # ε per output, sample and vector: 16 bits × 3 outputs × 1 vector × 5 samples × 0.1 pJ
    assert c.energy_pj["rng"] == pytest.approx(24.0)
    # One combination per output and sample: 3 × 5 × 32.3 pJ = 484.5 pJ
    assert c.energy_pj["combine"] == pytest.approx(484.5)
    # μ and σ² sensed apart: 5 samples × 3 columns × 2 arrays × 2.56 pJ = 76.8 pJ; each array
    # has its DACs: 2 × 5 × 4 rows × 0.256 pJ = 10.24 pJ
    assert c.energy_pj["adc"] == pytest.approx(76.8)
    assert c.energy_pj["dac"] == pytest.approx(10.24)
    # Array: 2 arrays × 2 cells per weight: 10 × 0.04 V² × 3 cols × 4 × 5 µS × 100 ns × 1e6
    assert c.energy_pj["array"] == pytest.approx(2.4)
    # The two arrays are read side by side: 5 × (1 + 100 + 1) ns.
    assert c.latency_s == pytest.approx(5 * 102e-9)
    assert c.macs == 5 * 12
    # Default random source: one STT-MRAM write per bit.
    d = bayes_cim_cost(**LAYER, samples=5, scheme="separate_mu_sigma", random_bits=16)
    assert d.energy_pj["rng"] == pytest.approx(16 * 3 * 5 * STTMRAM().e_write_pj)
    # A fresh ε for every input: a batch shares none of the random bits.
    e = bayes_cim_cost(**{**LAYER, "batch": 4}, samples=5, scheme="separate_mu_sigma",
                       random_bits=16, e_random_bit_pj=0.1)  # fmt: skip
    assert e.energy_pj["rng"] == pytest.approx(24.0)


def test_a_shared_input_is_read_once_by_separate_mu_sigma_only():
    c = bayes_cim_cost(**LAYER, samples=5, scheme="separate_mu_sigma", input_shared=True)
    free = bayes_cim_cost(**LAYER, samples=5, scheme="separate_mu_sigma")
    # The arrays read the one input once for all 5 samples; ε and the combination stay per
    # sample, and so do the MACs of the S sampled products.
    for k in READ:
        assert c.energy_pj[k] == pytest.approx(free.energy_pj[k] / 5), k
    for k in ("rng", "combine"):
        assert c.energy_pj[k] == pytest.approx(free.energy_pj[k]), k
    assert c.latency_s == pytest.approx(102e-9)
    assert c.macs == free.macs == 5 * 12
    # The other schemes draw their samples in the array: S reads either way.
    for scheme in ("cycle_to_cycle", "read_noise", "device_population"):
        shared = bayes_cim_cost(**LAYER, samples=5, scheme=scheme, input_shared=True)
        assert shared.energy_pj == bayes_cim_cost(**LAYER, samples=5, scheme=scheme).energy_pj


@pytest.mark.parametrize(
    ("scheme", "array_pj"),
    [
        # 10 × 0.04 V² × 100 ns × 1e6 × (3 cols × 1 cell × 5 µS + 1 reference × 5 µS) = 0.8 pJ
        ("cycle_to_cycle", 0.8),
        # (3 cols × 3 cells × 5 µS + 3 references × 5 µS) × 0.04 = 2.4 pJ
        ("read_noise", 2.4),
    ],
)
def test_the_fixed_reference_dissipates_on_every_read(scheme, array_pj):
    c = bayes_cim_cost(**LAYER, samples=5, scheme=scheme)
    assert c.energy_pj["array"] == pytest.approx(array_pj)
    # At Lin et al.'s reference level (12 µS for LaplaceRRAM) instead of mid-window (11 µS).
    dev = LaplaceRRAM()
    assert reference_level_us(dev, "read_noise") == pytest.approx(12.0)
    assert reference_level_us(DEVICE, scheme) == 5.0
    g = ArrayAssumptions(g_mean_us=10.0)
    lin = bayes_cim_cost(**{**LAYER, "device": dev}, samples=5, scheme="read_noise",
                         assumptions=g)  # fmt: skip
    # 10 × 0.04 × 0.1 × (3 × 3 × 10 + 3 × 12) µS = 5.04 pJ
    assert lin.energy_pj["array"] == pytest.approx(5.04)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_read_energy_is_linear_in_samples(scheme):
    one = bayes_cim_cost(**LAYER, samples=1, scheme=scheme)
    many = bayes_cim_cost(**LAYER, samples=7, scheme=scheme)
    for k in (*READ, "sample_writes", "rng", "combine"):
        assert many.energy_pj[k] == pytest.approx(7 * one.energy_pj[k]), k
    assert many.energy_pj["write"] == one.energy_pj["write"]  # programming once
    assert many.macs == 7 * one.macs == 7 * 12


def test_differential_reads_match_the_estimate():
    c = bayes_cim_cost(**LAYER, samples=5, scheme="differential")
    ref = estimate_cost(rows=4, cols=3, vectors=5, v_sq_sum=10.0, device=DEVICE)
    for k in READ:
        assert c.energy_pj[k] == pytest.approx(ref.energy_pj[k])
    # Array by hand: 10 × 0.04 V² × 3 cols × 2 cells × 5 µS × 100 ns × 1e6 = 1.2 pJ
    assert c.energy_pj["array"] == pytest.approx(1.2)


@pytest.mark.parametrize(("kwargs", "field"), [({"samples": 0}, "samples"),
                                               ({"batch": 0}, "batch"),
                                               ({"scheme": "nope"}, "scheme")])  # fmt: skip
def test_bayes_cim_validation(kwargs, field):
    args = {**LAYER, "samples": 2, "scheme": "differential", **kwargs}
    with pytest.raises(ConfigError, match=field):
        bayes_cim_cost(**args)


def test_bayes_digital_cost():
    c = bayes_digital_cost(MCU, macs=12, weights=12, activations=7, samples=5, batch=2)
    # Forward passes: 5 × 12 = 60 MACs × 0.23 pJ = 13.8 pJ
    assert c.energy_pj["compute"] == pytest.approx(13.8)
    # μ and σ: 2 × 12 values × 8 bit × 5/32 pJ, once per batch of 2 → 15 pJ
    assert c.energy_pj["weights"] == pytest.approx(15.0)
    # Activations: 5 × 7 × 8 bit × 5/32 pJ = 43.75 pJ
    assert c.energy_pj["activations"] == pytest.approx(43.75)
    # Gaussians: 5 samples × 12 weights / 2 × 10 pJ = 300 pJ
    assert E_GAUSSIAN_PJ == 10.0
    assert c.energy_pj["rng"] == pytest.approx(300.0)
    # w = μ + σ·ε: 30 MACs × 0.23 pJ = 6.9 pJ
    assert c.energy_pj["sample_weights"] == pytest.approx(6.9)
    assert c.total_pj == pytest.approx(13.8 + 15 + 43.75 + 300 + 6.9)
    # Latency: 192 bit / 3.2e9 = 60 ns; 2 × 60 MAC / 1e8 = 1.2 µs; 60 sample MACs / 1e8 = 0.6 µs
    assert c.batch_latency_s == pytest.approx(1.86e-6)
    assert c.macs == 60


def test_bayes_digital_amortisation_and_samples():
    b1 = bayes_digital_cost(MCU, macs=12, weights=12, activations=7, samples=5, batch=1)
    b4 = bayes_digital_cost(MCU, macs=12, weights=12, activations=7, samples=5, batch=4)
    for k in ("weights", "rng", "sample_weights"):
        assert b4.energy_pj[k] == pytest.approx(b1.energy_pj[k] / 4), k
    for k in ("compute", "activations"):
        assert b4.energy_pj[k] == pytest.approx(b1.energy_pj[k]), k
    # S = 1 with no Gaussian energy: the deterministic cost with μ and σ fetched, plus 12 MACs.
    s1 = bayes_digital_cost(MCU, macs=12, weights=12, activations=7, samples=1, e_gaussian_pj=0)
    plain = MCU.cost(macs=12, weights=24, activations=7)
    assert s1.total_pj == pytest.approx(plain.total_pj + 12 * 0.23)
    with pytest.raises(ConfigError, match="samples"):
        bayes_digital_cost(MCU, macs=1, weights=1, activations=1, samples=0)
    with pytest.raises(ConfigError, match="e_gaussian_pj"):
        bayes_digital_cost(MCU, macs=1, weights=1, activations=1, samples=1, e_gaussian_pj=-1)
