"""What Monte-Carlo sampling costs: Bayesian CIM schemes against a digital processor.

A Bayesian layer is read S times per inference (one weight sample each). What a sample costs
depends on how the hardware draws it (:mod:`memcim.bayes.schemes`):

=====================  ==================  =======================  ==========================
scheme                 cells per weight     per sample               once (programming)
=====================  ==================  =======================  ==========================
cycle_to_cycle         1 (+ digital ref.)   read + 1 RESET+SET/w     —
differential           2                    read + 2 RESET+SET/w     —
device_population      2 per row, K rows    read of one row          2K writes per weight
read_noise             3                    read                     3 writes per weight
separate_mu_sigma      3 (μ pair + σ)       2 reads (μ and σ arrays) 3 writes per weight
                                            + n random MTJ bits/w
=====================  ==================  =======================  ==========================

Re-programmed samples and random bits are shared by every input of a batch (drawn once per
sample, then the batch is read), so their energy per inference is S · writes / B.
Programming that happens once is reported apart (``"write"``), not per inference.

The digital processor stores μ and σ, fetches both once per batch, draws one Gaussian per weight
and sample, forms w = μ + σ·ε (one multiply-add) and runs the forward pass S times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from memcim._errors import require
from memcim.devices import STTMRAM
from memcim.energy.cim import ArrayAssumptions, CIMCost, CIMEnergyModel, estimate_cost
from memcim.energy.digital import DigitalCost, DigitalProcessor

SCHEMES = (
    "cycle_to_cycle",
    "differential",
    "device_population",
    "read_noise",
    "separate_mu_sigma",
)


@dataclass(frozen=True, kw_only=True)
class SchemeCost:
    """Per-weight structure of a sampling scheme (see the module table).

    Attributes:
        cells_per_weight: cells read per weight and sample.
        conversions_per_output: ADC conversions per output and sample.
        writes_per_sample: programming pulses per weight for every new sample.
        writes_once: programming pulses per weight to set the layer up.
        random_bits_per_sample: stochastic MTJ writes per weight and sample.
    """

    cells_per_weight: float
    conversions_per_output: float
    writes_per_sample: float
    writes_once: float
    random_bits_per_sample: float


def scheme_cost(scheme: str, *, population: int = 100, random_bits: int = 16) -> SchemeCost:
    """The structure of ``scheme`` (K = ``population`` rows; n = ``random_bits`` per ε)."""
    require(scheme in SCHEMES, "scheme", scheme, f"must be one of {SCHEMES}")
    require(isinstance(population, int) and population >= 1, "population", population, ">= 1")
    require(isinstance(random_bits, int) and random_bits >= 1, "random_bits", random_bits, ">= 1")
    return {
        "cycle_to_cycle": SchemeCost(cells_per_weight=1, conversions_per_output=1,
                                     writes_per_sample=1, writes_once=0,
                                     random_bits_per_sample=0),
        "differential": SchemeCost(cells_per_weight=2, conversions_per_output=1,
                                   writes_per_sample=2, writes_once=0, random_bits_per_sample=0),
        "device_population": SchemeCost(cells_per_weight=2, conversions_per_output=1,
                                        writes_per_sample=0, writes_once=2 * population,
                                        random_bits_per_sample=0),
        "read_noise": SchemeCost(cells_per_weight=3, conversions_per_output=1,
                                 writes_per_sample=0, writes_once=3, random_bits_per_sample=0),
        "separate_mu_sigma": SchemeCost(cells_per_weight=3, conversions_per_output=2,
                                        writes_per_sample=0, writes_once=3,
                                        random_bits_per_sample=random_bits),
    }[scheme]  # fmt: skip


def bayes_cim_cost(
    *,
    rows: int,
    cols: int,
    vectors: float,
    v_sq_sum: float,
    samples: int,
    scheme: str,
    device,
    batch: int = 1,
    e_random_bit_pj: float | None = None,
    population: int = 100,
    random_bits: int = 16,
    dac_bits: int | None = 8,
    adc_bits: int | None = 8,
    assumptions: ArrayAssumptions | None = None,
    model: CIMEnergyModel | None = None,
) -> CIMCost:
    """Cost per inference of S samples of one Bayesian layer on CIM.

    Args:
        rows, cols: layer inputs × outputs.
        vectors: input vectors per inference (1 for a linear layer, output positions for a
            convolution).
        v_sq_sum: Σ over those vectors and rows of (x_i / max|x|)² (one inference).
        samples: S, Monte-Carlo samples.
        scheme: one of :data:`SCHEMES`.
        device: the memory cell (write energy per pulse, conductance window, cell area).
        batch: inferences that share each re-programmed sample.
        e_random_bit_pj: energy of one stochastic bit (``separate_mu_sigma``; pJ); default the
            write energy of :class:`~memcim.devices.STTMRAM`, the random source memcim's
            scheme switches.
        population, random_bits: K and n of the schemes that use them.
        dac_bits, adc_bits, assumptions, model: as :func:`~memcim.energy.cim.estimate_cost`.

    Returns:
        Energies per inference: the read components, ``"sample_writes"`` (per-sample
        re-programming) and ``"rng"`` (random bits); ``"write"`` holds the one-off programming
        of the layer, which like all programming is kept out of ``inference_pj``.
    """
    require(isinstance(samples, int) and samples >= 1, "samples", samples, "must be an int >= 1")
    require(isinstance(batch, int) and batch >= 1, "batch", batch, "must be an int >= 1")
    s = scheme_cost(scheme, population=population, random_bits=random_bits)
    if e_random_bit_pj is None:
        e_random_bit_pj = STTMRAM().e_write_pj
    read = estimate_cost(
        rows=rows, cols=cols, vectors=vectors * samples, v_sq_sum=v_sq_sum * samples,
        device=device, devices_per_weight=s.cells_per_weight, dac_bits=dac_bits,
        adc_bits=adc_bits, conversions_per_output=s.conversions_per_output,
        assumptions=assumptions, model=model,
    )  # fmt: skip
    weights = rows * cols
    per_sample_writes = s.writes_per_sample * weights * samples / batch
    read.energy_pj["sample_writes"] = per_sample_writes * device.e_write_pj
    # ε is drawn once per weight and sample and shared by the batch, like a re-programmed sample.
    read.energy_pj["rng"] = s.random_bits_per_sample * weights * samples / batch * e_random_bit_pj
    read.program_latency_s = per_sample_writes * device.t_write_s / (cols * s.cells_per_weight)
    # Samples must be programmed before they are read; with re-programming this is in the path.
    read.latency_s += read.program_latency_s
    read.energy_pj["write"] = s.writes_once * weights * device.e_write_pj
    return read


#: Energy of one Gaussian random number on a digital processor (pJ), an order-of-magnitude
#: estimate from Horowitz's [1] op energies (unverified): a 32-bit uniform from xorshift (6 int32
#: shifts and xors, ~0.6 pJ) and half a Box–Muller transform (log, sqrt, sin/cos: ~10 fp32
#: operations at 0.9–3.7 pJ, ~10 pJ per pair, ~5 pJ per number), rounded up for control to 10 pJ.
E_GAUSSIAN_PJ = 10.0


def bayes_digital_cost(
    processor: DigitalProcessor,
    *,
    macs: float,
    weights: float,
    activations: float,
    samples: int,
    batch: int = 1,
    e_gaussian_pj: float = E_GAUSSIAN_PJ,
) -> DigitalCost:
    """Energy per inference of an S-sample Bayesian network on a digital processor.

    μ and σ (2 × ``weights`` values) are fetched once per batch; every sample draws one Gaussian
    per weight (``e_gaussian_pj``) and forms w = μ + σ·ε (one MAC per weight), shared by the
    batch; then the forward pass runs: S × (``macs`` + ``activations``).
    """
    require(isinstance(samples, int) and samples >= 1, "samples", samples, "must be an int >= 1")
    require(math.isfinite(e_gaussian_pj) and e_gaussian_pj >= 0, "e_gaussian_pj", e_gaussian_pj,
            "must be finite and >= 0 pJ")  # fmt: skip
    base = processor.cost(macs=samples * macs, weights=2 * weights,
                          activations=samples * activations, batch=batch)  # fmt: skip
    draws = samples * weights / batch
    base.energy_pj["rng"] = draws * e_gaussian_pj
    base.energy_pj["sample_weights"] = draws * processor.e_mac_pj
    base.batch_latency_s += samples * weights / processor.macs_per_s
    return base
