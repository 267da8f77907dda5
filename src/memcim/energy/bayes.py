"""What Monte-Carlo sampling costs: Bayesian CIM schemes against a digital processor.

A Bayesian layer is read S times per inference (one weight sample each). What a sample costs
depends on how the tiles draw it (:mod:`memcim.bayes.schemes`, :class:`memcim.bayes.
SampledMatrix`); per weight of a rows × cols layer (the bias is one more row, driven by 1):

=================  ===================  =======================  ==========================
scheme             cells per weight     per sample               once (programming)
=================  ===================  =======================  ==========================
cycle_to_cycle     1 + fixed reference  read + 1 RESET+SET/w     —
differential       2                    read + 2 RESET+SET/w     —
device_population  2 per row, K rows    read of one row          2K writes per weight
read_noise         3 + fixed reference  read                     3 writes per weight
separate_mu_sigma  4 (μ pair, σ² pair)  n random bits and one    4 writes per weight
                   on two arrays        combine per output
=================  ===================  =======================  ==========================

* The *fixed reference* of the offset schemes is one noise-free conductance per word line and
  device of a weight (1 for cycle-to-cycle, 3 for read noise) at the mapping's reference level
  (mid-window, or the device's ``reference_us``, e.g. Lin et al.'s 7.2 µA / 3): never written,
  but it conducts, so every read dissipates V²·g_ref·t on it as well.
* ``separate_mu_sigma`` reads a μ array of differential pairs with x and a σ² array of pairs
  (G⁻ idle at g_min) with x², each with its own DAC and ADC (2 conversions per output), in
  parallel. The samples differ only after the ADCs: per output, sample and input vector the
  periphery draws ε from n stochastic MTJ bits and forms y_μ + √y_σ²·ε digitally (one square
  root and one multiply-add, :func:`combine_energy_pj`). A layer whose input is the same for
  every sample (the network's first Bayesian layer) is therefore read once per input vector,
  not S times (``input_shared``).

Re-programmed samples (cycle-to-cycle, differential) are shared by every input of a batch (a
sample is programmed once, then the batch is read), so their energy per inference is
S · writes / B, and the programming is in the latency path. Programming that happens once is
reported apart (``"write"``), not per inference. Random bits and digital combinations are per
input vector (a fresh ε for every output of every input), so they are not shared by a batch.

The digital processor stores μ and σ, fetches both once per batch, draws one Gaussian per weight
and sample, forms w = μ + σ·ε (one multiply-add) and runs the forward pass S times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from memcim._errors import require
from memcim.bayes import HardwareSampling, SamplingScheme
from memcim.bayes.schemes import scheme_mapping
from memcim.devices import STTMRAM
from memcim.energy.cim import (
    ArrayAssumptions,
    CIMCost,
    CIMEnergyModel,
    combine,
    estimate_cost,
)
from memcim.energy.digital import DigitalCost, DigitalProcessor
from memcim.energy.tables import HOROWITZ_45NM, OperationEnergies

SCHEMES = (
    "cycle_to_cycle",
    "differential",
    "device_population",
    "read_noise",
    "separate_mu_sigma",
)

#: An fp32 square root as Horowitz's [1] operations (an assumption: no square root is in the
#: table): Newton–Raphson on 1/√x from a small table seed, two iterations of
#: y ← y·(1.5 − 0.5·x·y²) (3 multiplies and 1 add each) and a final multiply √x = x·y.
SQRT_FP32_MULTS, SQRT_FP32_ADDS = 7, 2


def combine_energy_pj(ops: OperationEnergies = HOROWITZ_45NM) -> float:
    """Energy of one digital combination y_μ + √y_σ²·ε of ``separate_mu_sigma`` (pJ).

    One fp32 square root (:data:`SQRT_FP32_MULTS` multiplies and :data:`SQRT_FP32_ADDS` adds,
    an assumption) and one fp32 multiply-add, priced with ``ops``: 7 × 3.7 + 2 × 0.9 + 4.6 =
    32.3 pJ with Horowitz's 45 nm table [1]. fp32 is conservative for the 8-bit ADC codes it
    combines (an int16 datapath would cost several times less).
    """
    require(isinstance(ops, OperationEnergies), "ops", ops, "must be an OperationEnergies table")
    sqrt = SQRT_FP32_MULTS * ops.fp32_mult_pj + SQRT_FP32_ADDS * ops.fp32_add_pj
    return sqrt + ops.mac_pj("fp32")


@dataclass(frozen=True, kw_only=True)
class SchemeCost:
    """Per-weight structure of a sampling scheme (see the module table).

    Attributes:
        cells_per_weight: cells read per weight and sample, over all arrays.
        arrays: arrays read in parallel per product, each with its own DAC and ADC (2 for
            ``separate_mu_sigma``: μ and σ²); the cells are split equally between them.
        reference_per_row: fixed (noise-free, never written) reference conductances per word
            line, at the mapping's reference level; they dissipate on every read.
        writes_per_sample: programming pulses per weight for every new sample.
        writes_once: programming pulses per weight to set the layer up.
        random_bits_per_output: stochastic MTJ writes per output, sample and input vector.
        digital_ops_per_output: digital combinations per output, sample and input vector.
        reads_shared: the arrays are read once for all samples when the input is the same
            for every sample (the samples are formed after the ADCs).
    """

    cells_per_weight: float
    arrays: int = 1
    reference_per_row: float = 0
    writes_per_sample: float = 0
    writes_once: float = 0
    random_bits_per_output: float = 0
    digital_ops_per_output: float = 0
    reads_shared: bool = False

    @property
    def conversions_per_output(self) -> int:
        """ADC conversions per output and read: one per array."""
        return self.arrays


def scheme_cost(scheme: str, *, population: int = 100, random_bits: int = 16) -> SchemeCost:
    """The structure of ``scheme`` (K = ``population`` rows; n = ``random_bits`` per ε)."""
    require(scheme in SCHEMES, "scheme", scheme, f"must be one of {SCHEMES}")
    require(isinstance(population, int) and population >= 1, "population", population, ">= 1")
    require(isinstance(random_bits, int) and random_bits >= 1, "random_bits", random_bits, ">= 1")
    return {
        "cycle_to_cycle": SchemeCost(cells_per_weight=1, reference_per_row=1,
                                     writes_per_sample=1),
        "differential": SchemeCost(cells_per_weight=2, writes_per_sample=2),
        "device_population": SchemeCost(cells_per_weight=2, writes_once=2 * population),
        "read_noise": SchemeCost(cells_per_weight=3, reference_per_row=3, writes_once=3),
        "separate_mu_sigma": SchemeCost(cells_per_weight=4, arrays=2, writes_once=4,
                                        random_bits_per_output=random_bits,
                                        digital_ops_per_output=1, reads_shared=True),
    }[scheme]  # fmt: skip


def reference_level_us(device, scheme: str) -> float:
    """The fixed reference conductance per device (µS) of ``scheme``'s offset mapping on
    ``device``, as the tiles place it (:func:`memcim.bayes.schemes.scheme_mapping`): Lin et
    al.'s 7.2 µA / 3 for read noise on :class:`~memcim.devices.LaplaceRRAM`, else
    mid-window."""
    sampling = HardwareSampling(scheme=SamplingScheme(scheme), device=device)
    return scheme_mapping(sampling).reference_level_us(device.g_min_us, device.g_max_us)


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
    input_shared: bool = False,
    e_random_bit_pj: float | None = None,
    e_combine_pj: float | None = None,
    population: int = 100,
    random_bits: int = 16,
    dac_bits: int | None = 8,
    adc_bits: int | None = 8,
    assumptions: ArrayAssumptions | None = None,
    model: CIMEnergyModel | None = None,
) -> CIMCost:
    """Cost per inference of S samples of one Bayesian layer on CIM.

    Each array is priced as :func:`~memcim.energy.cim.estimate_cost` prices a matrix read
    (cells at ``assumptions.g_mean_us``), plus the fixed reference's V²·g_ref·t on every read
    (ohmic cells; g_ref from :func:`reference_level_us`). Given the activity a tile pass
    measured (vectors, Σ(x/max|x|)², the cells' mean conductance, the bias word line counted in
    ``rows``), this is the cost :func:`memcim.energy.profile` measures on the tiles.

    Args:
        rows, cols: layer inputs × outputs (a bias on the tiles is one more row).
        vectors: input vectors per inference (1 for a linear layer, output positions for a
            convolution).
        v_sq_sum: Σ over those vectors and rows of (x_i / max|x|)² (one inference). The σ²
            array of ``separate_mu_sigma`` is driven by x², whose Σ (x_i² / max x²)² is taken
            as the same (exact for inputs of equal magnitude, an overestimate otherwise).
        samples: S, Monte-Carlo samples.
        scheme: one of :data:`SCHEMES`.
        device: the memory cell (write energy per pulse, conductance window, cell area).
        batch: inferences that share each re-programmed sample.
        input_shared: the layer's input is the same for all S samples (the first Bayesian
            layer of a network): a scheme that forms its samples after the ADCs
            (``separate_mu_sigma``) reads its arrays once per vector; the others read S times.
        e_random_bit_pj: energy of one stochastic bit (``separate_mu_sigma``; pJ); default the
            write energy of :class:`~memcim.devices.STTMRAM`, the random source memcim's
            scheme switches.
        e_combine_pj: energy of one digital combination y_μ + √y_σ²·ε (pJ); default
            :func:`combine_energy_pj` of ``model.ops``.
        population, random_bits: K and n of the schemes that use them.
        dac_bits, adc_bits, assumptions, model: as :func:`~memcim.energy.cim.estimate_cost`.

    Returns:
        Energies per inference: the read components, ``"sample_writes"`` (per-sample
        re-programming), ``"rng"`` (random bits) and ``"combine"`` (digital combinations);
        ``"write"`` holds the one-off programming of the layer, which like all programming is
        kept out of ``inference_pj``. ``macs`` counts the S sampled products (vectors × S ×
        rows × cols) whether or not the arrays are read S times.
    """
    require(isinstance(samples, int) and samples >= 1, "samples", samples, "must be an int >= 1")
    require(isinstance(batch, int) and batch >= 1, "batch", batch, "must be an int >= 1")
    s = scheme_cost(scheme, population=population, random_bits=random_bits)
    a = assumptions if assumptions is not None else ArrayAssumptions()
    model = model if model is not None else CIMEnergyModel()
    if e_random_bit_pj is None:
        e_random_bit_pj = STTMRAM().e_write_pj
    if e_combine_pj is None:
        e_combine_pj = combine_energy_pj(model.ops)
    reads = 1 if (input_shared and s.reads_shared) else samples  # array reads per vector
    array = estimate_cost(
        rows=rows, cols=cols, vectors=vectors * reads, v_sq_sum=v_sq_sum * reads,
        device=device, devices_per_weight=s.cells_per_weight / s.arrays, dac_bits=dac_bits,
        adc_bits=adc_bits, assumptions=a, model=model,
    )  # fmt: skip
    read = combine([array] * s.arrays, parallel=True)  # μ and σ² arrays work side by side
    if s.reference_per_row and type(device).ohmic_read:
        # The fixed reference on every word line conducts like a cell (V²·g_ref·t per read).
        g_ref = reference_level_us(device, scheme)
        read.energy_pj["array"] += (v_sq_sum * reads * a.v_read_v**2 * s.reference_per_row
                                    * g_ref * a.t_read_s * 1e6)  # fmt: skip
    weights = rows * cols
    per_sample_writes = s.writes_per_sample * weights * samples / batch
    read.energy_pj["sample_writes"] = per_sample_writes * device.e_write_pj
    # ε is drawn per output, sample and input vector: a batch shares nothing of it.
    draws = cols * vectors * samples
    read.energy_pj["rng"] = s.random_bits_per_output * draws * e_random_bit_pj
    read.energy_pj["combine"] = s.digital_ops_per_output * draws * e_combine_pj
    read.program_latency_s = per_sample_writes * device.t_write_s / (cols * s.cells_per_weight)
    # Samples must be programmed before they are read; with re-programming this is in the path.
    read.latency_s += read.program_latency_s
    read.energy_pj["write"] = s.writes_once * weights * device.e_write_pj
    read.macs = float(vectors * samples * weights)
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
