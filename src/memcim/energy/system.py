"""Heterogeneous chiplet and 3D systems: a pipeline of function-specific chiplets joined by links.

The seed paper's closing section argues that future neuromorphic systems will be collections of
function-specific chiplets (sensing, spiking front ends, Bayesian CIM, learning, a digital host),
each made in the process that suits it and joined side by side on an interposer (2.5D) or
stacked (3D), and that monolithic 3D integration (memory layers fabricated one above the other
on one substrate) raises on-chip memory density, which Bayesian models need because they store
several conductances per parameter (seed §"heterogeneous integration"; Vianello & Payvand [24]).
This module puts numbers on both claims:

* :class:`Chiplet`, :class:`Pipeline`, :func:`pipeline_cost`: energy and latency per inference
  of a chain of chiplets, stages plus the links between them, and the throughput limit;
  :func:`build` makes the same chain as a board of packages (``"2d"``), on an interposer
  (``"2.5d"``), as a hybrid-bonded stack (``"3d"``) or on one die (``"monolithic"``).
* :func:`memory_density_per_mm2`, :func:`largest_bayesian_model`: devices per mm² with
  monolithic 3D layers, and how many Bayesian parameters fit on an area with each sampling
  scheme's devices per parameter (:data:`DEVICES_PER_PARAMETER`).

The chiplet presets are **order-of-magnitude assumptions**, not measurements; every one is a
frozen dataclass to adapt with ``dataclasses.replace``. Link figures come from
:mod:`memcim.energy.tables` (docs/references.md, "Energy", order of magnitude). The Bayesian CIM
chiplet is the exception: its energy and latency are computed by memcim's own tile model
(:func:`bayesian_cim_cost`, :func:`memcim.energy.bayes.bayes_cim_cost` per layer), and
NeuroSim's published efficiency is kept only as a comparison (:func:`neurosim_bayesian_cim_pj`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from memcim._errors import is_int, is_real, require
from memcim.devices import FilamentaryRRAM
from memcim.energy.bayes import SCHEMES, bayes_cim_cost
from memcim.energy.cim import ArrayAssumptions, CIMCost, CIMEnergyModel, combine
from memcim.energy.tables import (
    HOROWITZ_45NM,
    HYBRID_BONDING_3D,
    INTERPOSER_2_5D,
    OFF_PACKAGE,
    ON_DIE,
    Link,
    adc_energy_pj,
)

Role = Literal["sensor", "spiking_front_end", "bayesian_cim", "learning", "digital_host"]
#: The roles a chiplet can play, in the order of the default pipeline.
ROLES: tuple[str, ...] = ("sensor", "spiking_front_end", "bayesian_cim", "learning", "digital_host")

Integration = Literal["2d", "2.5d", "3d", "monolithic"]
#: The link that joins consecutive chiplets for each integration style (see :func:`build`).
INTEGRATION_LINKS: dict[str, Link] = {
    "2d": OFF_PACKAGE,
    "2.5d": INTERPOSER_2_5D,
    "3d": HYBRID_BONDING_3D,
    "monolithic": ON_DIE,
}


# --- chiplets ---------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Chiplet:
    """One function-specific chip (or die region) of a pipeline.

    Attributes:
        name: label, unique within a pipeline (used as the key of cost breakdowns).
        role: ``"sensor"``, ``"spiking_front_end"``, ``"bayesian_cim"``, ``"learning"`` or
            ``"digital_host"``.
        e_pj: energy per inference (pJ).
        latency_s: time to process one inference (s), > 0. The stage is taken to work on one
            inference at a time, so it also bounds the throughput at 1 / ``latency_s``.
        output_bits: bits sent to the next stage per inference (may be an expected value, e.g.
            a mean number of events × bits per event); ignored for the last stage.
        area_mm2: silicon area (mm²), > 0.
        process: process-node label for reports (e.g. ``"22nm RRAM"``), or ``None``.
    """

    name: str
    role: Role
    e_pj: float
    latency_s: float
    output_bits: float
    area_mm2: float
    process: str | None = None

    def __post_init__(self) -> None:
        require(isinstance(self.name, str) and self.name.strip() != "", "Chiplet.name", self.name,
                "must be a non-empty string")  # fmt: skip
        where = f"Chiplet({self.name}).{{}}"
        require(self.role in ROLES, where.format("role"), self.role, f"must be one of {ROLES}")
        require(is_real(self.e_pj) and self.e_pj >= 0, where.format("e_pj"), self.e_pj,
                "must be a finite energy >= 0 pJ")  # fmt: skip
        require(is_real(self.latency_s) and self.latency_s > 0, where.format("latency_s"),
                self.latency_s, "must be a finite time > 0 s")  # fmt: skip
        require(is_real(self.output_bits) and self.output_bits >= 0, where.format("output_bits"),
                self.output_bits, "must be a finite number of bits >= 0")  # fmt: skip
        require(is_real(self.area_mm2) and self.area_mm2 > 0, where.format("area_mm2"),
                self.area_mm2, "must be a finite area > 0 mm²")  # fmt: skip
        require(self.process is None or isinstance(self.process, str), where.format("process"),
                self.process, "must be a string or None")  # fmt: skip


# Preset derivations. Everything below is an order-of-magnitude assumption unless it cites
# docs/references.md; the arithmetic is kept visible so that a reader can redo it with theirs.
_PIXELS, _PIXEL_BITS = 28 * 28, 8
_PIXEL_READOUT_PJ = 5.0  # pixel, source follower and column readout per pixel (assumption)
_ADC_FOM_FJ_PER_STEP = 10.0  # Murmann survey: a few to tens of fJ/step (references, "Energy")
_FRONT_END_SOPS, _SOP_PJ = 20_000, 0.05  # synaptic events per frame, mixed-signal pJ per event
_EVENTS, _EVENT_BITS = 100, 16  # output events per frame, 7-bit address + 9-bit timestamp
_READOUT_WEIGHTS = 64 * 10  # weights the learning module adapts (the BNN's readout)
_FECAP_WRITE_PJ, _MEMRISTOR_WRITE_PJ = 0.1, 1.0  # hybrid synapse [13, 14] (references, FeRAM)
_REPROGRAM_EVERY = 100  # memristors re-programmed from the hidden FeCAP values every k images

#: Image sensor chiplet: one 28×28, 8-bit frame per inference (6,272 bits out). Energy
#: 784 × (5 pJ pixel readout, assumed + 2.56 pJ for an 8-bit ADC conversion at a Walden FoM of
#: 10 fJ/step, Murmann's survey in references "Energy") ≈ 5.9 nJ; 28 µs rolling readout (28 rows
#: at ~1 µs each); 1 mm² (pixel array plus readout and pads). Assumptions, order of magnitude.
SENSOR = Chiplet(
    name="sensor",
    role="sensor",
    e_pj=_PIXELS * (_PIXEL_READOUT_PJ + adc_energy_pj(_PIXEL_BITS, _ADC_FOM_FJ_PER_STEP)),
    latency_s=28e-6,
    output_bits=_PIXELS * _PIXEL_BITS,
    area_mm2=1.0,
    process="65nm CIS",
)

#: Spiking front end: turns the frame into sparse events with a 784→128 spiking layer. About
#: 2·10⁴ synaptic events per frame (≈ 150 active pixels × 128 fan-out) at ~50 fJ each
#: (mixed-signal neurons and synapses) = 1 nJ; 10 µs (ten 1 µs time steps); it sends 100 events
#: of 16 bits (7-bit neuron address + 9-bit timestamp) = 1,600 bits, ~4× fewer than the frame.
#: Assumptions, order of magnitude.
SPIKING_FRONT_END = Chiplet(
    name="spiking_front_end",
    role="spiking_front_end",
    e_pj=_FRONT_END_SOPS * _SOP_PJ,
    latency_s=10e-6,
    output_bits=_EVENTS * _EVENT_BITS,
    area_mm2=0.5,
    process="28nm",
)

#: The Bayesian CIM chiplet's network: (inputs, outputs) of each layer of an MLP 128-64-10 on the
#: front end's 128 features (8,832 weights).
BNN_LAYERS: tuple[tuple[int, int], ...] = ((128, 64), (64, 10))
#: Monte-Carlo samples per inference of the Bayesian CIM chiplet.
BNN_SAMPLES = 10
#: Its default sampling scheme: each sample reads one row of a K = 100 device population, so an
#: inference re-programs nothing (the cheapest per-inference scheme of :mod:`memcim.energy.bayes`).
BNN_SCHEME = "device_population"
#: Mean of (x_i / max|x|)² over a layer's inputs, the DAC's scaling of each vector: inputs
#: uniform on [0, max] give 1/3 (assumption; the features' distribution is not modelled).
BNN_INPUT_SQ_MEAN = 1 / 3
#: NeuroSim 1.4's RRAM CIM efficiency at 22 nm (references, "Peers"), for comparison only.
NEUROSIM_TOPS_PER_W = 11.25


def bayesian_cim_cost(
    *,
    layers: tuple[tuple[int, int], ...] = BNN_LAYERS,
    samples: int = BNN_SAMPLES,
    scheme: str = BNN_SCHEME,
    device=None,
    input_sq_mean: float = BNN_INPUT_SQ_MEAN,
    population: int = 100,
    dac_bits: int | None = 8,
    adc_bits: int | None = 8,
    assumptions: ArrayAssumptions | None = None,
    model: CIMEnergyModel | None = None,
) -> CIMCost:
    """One inference of the Bayesian CIM chiplet, from memcim's tile model.

    Every layer is costed by :func:`memcim.energy.bayes.bayes_cim_cost` (``samples`` reads of
    the layer's tiles with ``scheme``'s cells, converters and per-sample writes, batch 1, one
    input vector per layer with Σ(x/max|x|)² = inputs × ``input_sq_mean``); the layers run one
    after another, so energies and areas add and so do latencies.

    Args:
        layers: (inputs, outputs) of each layer, in order.
        samples: Monte-Carlo samples per inference.
        scheme: a sampling scheme of :data:`memcim.energy.bayes.SCHEMES`.
        device: the memory cell; default :class:`~memcim.devices.FilamentaryRRAM`.
        input_sq_mean: mean (x_i / max|x|)² of a layer's inputs, in (0, 1].
        population: K of ``device_population``.
        dac_bits, adc_bits, assumptions, model: as :func:`~memcim.energy.cim.estimate_cost`.

    Returns:
        The :class:`~memcim.energy.cim.CIMCost`: ``inference_pj`` and ``latency_s`` per
        inference, ``energy_pj["write"]`` the one-off programming of the layers.
    """
    ok = isinstance(layers, tuple) and len(layers) > 0
    ok = ok and all(isinstance(x, tuple) and len(x) == 2 and all(is_int(n) and n >= 1 for n in x)
                    for x in layers)  # fmt: skip
    require(ok, "layers", layers, "must be a non-empty tuple of (inputs, outputs) int pairs >= 1")
    require(scheme in SCHEMES, "scheme", scheme, f"must be one of {SCHEMES}")
    require(is_real(input_sq_mean) and 0 < input_sq_mean <= 1, "input_sq_mean", input_sq_mean,
            "must be in (0, 1]")  # fmt: skip
    device = device if device is not None else FilamentaryRRAM()
    costs = []
    for rows, cols in layers:
        costs.append(bayes_cim_cost(
            rows=rows, cols=cols, vectors=1, v_sq_sum=rows * input_sq_mean, samples=samples,
            scheme=scheme, device=device, population=population, dac_bits=dac_bits,
            adc_bits=adc_bits, assumptions=assumptions, model=model,
        ))  # fmt: skip
    return combine(costs, parallel=False)


def neurosim_bayesian_cim_pj(
    layers: tuple[tuple[int, int], ...] = BNN_LAYERS, samples: int = BNN_SAMPLES
) -> float:
    """The chiplet's energy per inference at NeuroSim's :data:`NEUROSIM_TOPS_PER_W` (pJ).

    2 operations per multiply-accumulate, 1 TOPS/W = 1 op/pJ: 2 · Σ inputs·outputs · samples
    / 11.25 (15.7 nJ for the default network). A published whole-chip figure for comparison,
    not what the pipeline uses.
    """
    require(is_int(samples) and samples >= 1, "samples", samples, "must be an int >= 1")
    return 2 * sum(r * c for r, c in layers) * samples / NEUROSIM_TOPS_PER_W


def bayesian_cim_chiplet(cost: CIMCost | None = None) -> Chiplet:
    """The Bayesian CIM chiplet with the energy and latency of ``cost`` per inference.

    Args:
        cost: one inference (:func:`bayesian_cim_cost`); default that function's defaults.
    """
    cost = cost if cost is not None else bayesian_cim_cost()
    require(isinstance(cost, CIMCost), "cost", type(cost).__name__, "must be a CIMCost")
    return Chiplet(
        name="bayesian_cim",
        role="bayesian_cim",
        e_pj=cost.inference_pj,
        latency_s=cost.latency_s,
        output_bits=(10 + 2) * 8,
        area_mm2=1.0,
        process="22nm RRAM",
    )


#: Bayesian CIM chiplet: the MLP 128-64-10 (:data:`BNN_LAYERS`) with 10 Monte-Carlo samples on
#: filamentary RRAM tiles (8-bit DAC and ADC, device population K = 100), energy and latency per
#: inference computed by :func:`bayesian_cim_cost` (memcim's tile model; see
#: :func:`neurosim_bayesian_cim_pj` for NeuroSim's figure). It sends 10 class probabilities and
#: two uncertainties (aleatoric, epistemic), 8 bits each: 96 bits. 1 mm² (arrays plus periphery,
#: assumed).
BAYESIAN_CIM = bayesian_cim_chiplet()

#: Learning module: hybrid FeCAP/memristor synapses [13, 14] adapting the 640 readout weights on
#: every image. Per inference: 640 FeCAP hidden-value writes at 100 fJ (references, FeRAM) =
#: 64 pJ, the memristors re-programmed every 100 images at 1 pJ per write = 6.4 pJ, and the
#: error terms as 640 int8 multiply-adds (Horowitz [1], 0.23 pJ) = 147.2 pJ: 217.6 pJ. 2 µs
#: (assumed); sends the decision with its confidence, 32 bits. 1 mm², 130 nm as in [13].
LEARNING = Chiplet(
    name="learning",
    role="learning",
    e_pj=_READOUT_WEIGHTS
    * (_FECAP_WRITE_PJ + _MEMRISTOR_WRITE_PJ / _REPROGRAM_EVERY + HOROWITZ_45NM.mac_pj("int8")),
    latency_s=2e-6,
    output_bits=32,
    area_mm2=1.0,
    process="130nm FeRAM/RRAM",
)

#: Digital host: a microcontroller-class core that logs the decision and acts on it, ~100
#: instructions at ~10 pJ each (fetch, register file and ALU of a 32-bit core; consistent with
#: Horowitz's 5 pJ per 32-bit SRAM read [1]) = 1 nJ; 1 µs (100 instructions at 100 MHz); last
#: stage, sends nothing on. 0.5 mm². Assumptions, order of magnitude.
DIGITAL_HOST = Chiplet(
    name="digital_host",
    role="digital_host",
    e_pj=1_000.0,
    latency_s=1e-6,
    output_bits=0,
    area_mm2=0.5,
    process="22nm",
)

#: The presets by role.
PRESETS: dict[str, Chiplet] = {
    c.role: c for c in (SENSOR, SPIKING_FRONT_END, BAYESIAN_CIM, LEARNING, DIGITAL_HOST)
}
#: sensor → spiking front end → Bayesian CIM → learning module → digital host.
DEFAULT_STAGES: tuple[Chiplet, ...] = tuple(PRESETS[r] for r in ROLES)


# --- pipelines --------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """Chiplets in a chain: stage i sends its ``output_bits`` over link i to stage i + 1.

    Attributes:
        stages: the chiplets, in order (names unique).
        links: ``len(stages) − 1`` links; ``links[i]`` joins ``stages[i]`` and ``stages[i+1]``.
        link_lengths_mm: wire length of each link (mm); counts only for per-mm links
            (``Link.per_mm``, e.g. on-die wires) and must be given when there is one. ``None``
            (no per-mm link) is stored as 1 mm each, which per-transfer links ignore.
    """

    stages: tuple[Chiplet, ...]
    links: tuple[Link, ...] = ()
    link_lengths_mm: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        stages = tuple(self.stages) if isinstance(self.stages, list | tuple) else None
        require(stages is not None and len(stages) >= 1
                and all(isinstance(s, Chiplet) for s in stages), "Pipeline.stages",
                self.stages, "must be a non-empty tuple of Chiplet")  # fmt: skip
        names = [s.name for s in stages]
        require(len(set(names)) == len(names), "Pipeline.stages", names,
                "stage names must be unique (they key the cost breakdown)")  # fmt: skip
        links = tuple(self.links) if isinstance(self.links, list | tuple) else None
        require(links is not None and all(isinstance(k, Link) for k in links), "Pipeline.links",
                self.links, "must be a tuple of Link")  # fmt: skip
        require(len(links) == len(stages) - 1, "Pipeline.links", f"{len(links)} links",
                f"must be len(stages) - 1 = {len(stages) - 1} links")  # fmt: skip
        if self.link_lengths_mm is None:
            per_mm = [k.name for k in links if k.per_mm]
            require(not per_mm, "Pipeline.link_lengths_mm", None,
                    f"must be given: links {per_mm} are priced per mm")  # fmt: skip
            lengths = (1.0,) * len(links)
        else:
            raw = self.link_lengths_mm
            lengths = tuple(raw) if isinstance(raw, list | tuple) else (raw,)
            require(len(lengths) == len(links), "Pipeline.link_lengths_mm", raw,
                    f"must hold one length per link ({len(links)})")  # fmt: skip
            require(all(is_real(x) and x >= 0 for x in lengths), "Pipeline.link_lengths_mm",
                    raw, "must be finite lengths >= 0 mm")  # fmt: skip
            lengths = tuple(float(x) for x in lengths)
        object.__setattr__(self, "stages", stages)
        object.__setattr__(self, "links", links)
        object.__setattr__(self, "link_lengths_mm", lengths)

    def link_names(self) -> tuple[str, ...]:
        """Breakdown key of each link: ``"<from stage>-><to stage>"``."""
        return tuple(
            f"{a.name}->{b.name}" for a, b in zip(self.stages[:-1], self.stages[1:], strict=True)
        )


@dataclass(frozen=True, kw_only=True)
class SystemCost:
    """Cost of one inference through a :class:`Pipeline`.

    Attributes:
        energy_pj: end-to-end energy (pJ): every stage plus every link transfer.
        stage_energy_pj, link_energy_pj: the two parts of ``energy_pj`` (pJ).
        latency_s: end-to-end latency (s): stages and link transfers in sequence.
        throughput_per_s: inferences per second when the pipeline streams, 1 / the longest
            occupancy of any stage (its ``latency_s``) or link (serialisation, bits /
            bandwidth; a link's fixed latency overlaps with the next transfer).
        bottleneck: name of the stage or link that sets ``throughput_per_s``.
        silicon_area_mm2: sum of the chiplets' areas (mm²).
        energy_breakdown_pj: stage name or link name (``"a->b"``) -> energy (pJ), in order.
        latency_breakdown_s: the same keys -> latency (s).
    """

    energy_pj: float
    stage_energy_pj: float
    link_energy_pj: float
    latency_s: float
    throughput_per_s: float
    bottleneck: str
    silicon_area_mm2: float
    energy_breakdown_pj: dict[str, float] = field(default_factory=dict)
    latency_breakdown_s: dict[str, float] = field(default_factory=dict)

    @property
    def link_share(self) -> float:
        """Fraction of the energy spent moving data between chiplets (0 when energy is 0)."""
        return self.link_energy_pj / self.energy_pj if self.energy_pj > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dict of every figure, the breakdowns as nested dicts."""
        return {
            "energy_pj": self.energy_pj,
            "stage_energy_pj": self.stage_energy_pj,
            "link_energy_pj": self.link_energy_pj,
            "link_share": self.link_share,
            "latency_s": self.latency_s,
            "throughput_per_s": self.throughput_per_s,
            "bottleneck": self.bottleneck,
            "silicon_area_mm2": self.silicon_area_mm2,
            "energy_breakdown_pj": dict(self.energy_breakdown_pj),
            "latency_breakdown_s": dict(self.latency_breakdown_s),
        }


def pipeline_cost(pipeline: Pipeline) -> SystemCost:
    """Energy, latency and throughput of one inference through ``pipeline``.

    Link i carries ``stages[i].output_bits`` per inference: energy
    ``Link.energy_pj(bits, length_mm)``, latency ``Link.latency_for_s(bits)``.

    Args:
        pipeline: the chain of chiplets and links.

    Returns:
        The :class:`SystemCost` (pJ, s, inferences/s).
    """
    require(isinstance(pipeline, Pipeline), "pipeline", type(pipeline).__name__,
            "must be a Pipeline")  # fmt: skip
    energy: dict[str, float] = {}
    latency: dict[str, float] = {}
    occupancy: dict[str, float] = {}
    link_keys = (*pipeline.link_names(), None)
    stage_e = link_e = 0.0
    for i, stage in enumerate(pipeline.stages):
        energy[stage.name] = stage.e_pj
        latency[stage.name] = occupancy[stage.name] = stage.latency_s
        stage_e += stage.e_pj
        key = link_keys[i]
        if key is None:
            continue
        link, bits = pipeline.links[i], stage.output_bits
        energy[key] = link.energy_pj(bits, pipeline.link_lengths_mm[i])
        latency[key] = link.latency_for_s(bits)
        occupancy[key] = bits / link.bandwidth_bits_per_s
        link_e += energy[key]
    bottleneck = max(occupancy, key=occupancy.__getitem__)  # first one on a tie
    return SystemCost(
        energy_pj=stage_e + link_e,
        stage_energy_pj=stage_e,
        link_energy_pj=link_e,
        latency_s=math.fsum(latency.values()),
        throughput_per_s=1.0 / occupancy[bottleneck],  # > 0: every stage latency is > 0
        bottleneck=bottleneck,
        silicon_area_mm2=math.fsum(s.area_mm2 for s in pipeline.stages),
        energy_breakdown_pj=energy,
        latency_breakdown_s=latency,
    )


def build(
    stages: tuple[Chiplet, ...] | list[Chiplet] = DEFAULT_STAGES,
    integration: Integration = "2.5d",
    *,
    length_mm: float = 1.0,
    link: Link | None = None,
) -> Pipeline:
    """The same chain of chiplets, joined the way an integration style joins them.

    * ``"2d"``: each chiplet in its own package on a board; off-package SerDes links
      (7.5 pJ/bit, :data:`~memcim.energy.tables.OFF_PACKAGE`).
    * ``"2.5d"``: side by side on a silicon interposer (0.5 pJ/bit,
      :data:`~memcim.energy.tables.INTERPOSER_2_5D`).
    * ``"3d"``: stacked, consecutive stages hybrid-bonded face to face (0.05 pJ/bit,
      :data:`~memcim.energy.tables.HYBRID_BONDING_3D`); a stack of more than two dies needs
      through-silicon vias as well, which this ignores.
    * ``"monolithic"``: every function as a block of one die, joined by on-die wires of
      ``length_mm`` (0.1 pJ/bit/mm, :data:`~memcim.energy.tables.ON_DIE`). An idealisation:
      one die has one process, so the chiplets' ``process`` labels no longer hold.

    The chiplets themselves are unchanged; only the links differ (per-chiplet I/O drivers are
    counted in the link energy per bit).

    Args:
        stages: the chiplets in order (default :data:`DEFAULT_STAGES`).
        integration: ``"2d"``, ``"2.5d"``, ``"3d"`` or ``"monolithic"``.
        length_mm: wire length between neighbouring blocks (mm); used by per-mm links only.
        link: use this link instead of the integration's default (e.g. a
            ``dataclasses.replace`` of it with another energy per bit).

    Returns:
        The :class:`Pipeline`.
    """
    require(integration in INTEGRATION_LINKS, "integration", integration,
            f"must be one of {tuple(INTEGRATION_LINKS)}")  # fmt: skip
    require(link is None or isinstance(link, Link), "link", link, "must be a Link or None")
    require(is_real(length_mm) and length_mm >= 0, "length_mm", length_mm,
            "must be a finite length >= 0 mm")  # fmt: skip
    chosen = INTEGRATION_LINKS[integration] if link is None else link
    stages = tuple(stages) if isinstance(stages, list | tuple) else stages
    n = len(stages) - 1 if isinstance(stages, tuple) else 0
    return Pipeline(stages=stages, links=(chosen,) * max(n, 0),
                    link_lengths_mm=(float(length_mm),) * max(n, 0))  # fmt: skip


# --- monolithic 3D memory density -------------------------------------------------------------
#: Memory devices per Bayesian parameter for each sampling scheme as memcim realises it
#: (:mod:`memcim.bayes.schemes`): cycle-to-cycle re-programming of one device (the reference is
#: a fixed conductance per word line, not a memory device) 1; differential pair 2; read noise
#: of three devices summed (Lin et al. [9]) 3; separate μ and σ² arrays [11], a differential
#: pair each, 4 (the stochastic random-bit source is shared and not counted); device
#: population, K rows of differential pairs [8], 2·K, here with the default K = 100 (see
#: :func:`devices_per_parameter` for another K).
DEVICES_PER_PARAMETER: dict[str, int] = {
    "cycle_to_cycle": 1,
    "differential": 2,
    "read_noise": 3,
    "separate_mu_sigma": 4,
    "device_population": 2 * 100,
}


def devices_per_parameter(scheme: str, *, population: int = 100) -> int:
    """Devices one Bayesian parameter occupies with ``scheme``.

    Args:
        scheme: a key of :data:`DEVICES_PER_PARAMETER` (a ``SamplingScheme`` value).
        population: K, rows of differential pairs per weight for ``"device_population"``.

    Returns:
        Devices per parameter (2·K for the device population).
    """
    scheme = str(getattr(scheme, "value", scheme))
    require(scheme in DEVICES_PER_PARAMETER, "scheme", scheme,
            f"must be one of {tuple(DEVICES_PER_PARAMETER)}")  # fmt: skip
    require(is_int(population) and population >= 1, "population", population,
            "must be an int >= 1")  # fmt: skip
    return 2 * population if scheme == "device_population" else DEVICES_PER_PARAMETER[scheme]


def _check_density_args(cell_area_f2: float, feature_nm: float, layers: int,
                        array_efficiency: float) -> None:  # fmt: skip
    require(is_real(cell_area_f2) and cell_area_f2 > 0, "cell_area_f2", cell_area_f2,
            "must be a finite cell area > 0 F²")  # fmt: skip
    require(is_real(feature_nm) and feature_nm > 0, "feature_nm", feature_nm,
            "must be a finite feature size > 0 nm")  # fmt: skip
    require(is_int(layers) and layers >= 1, "layers", layers, "must be an int >= 1")
    require(is_real(array_efficiency) and 0 < array_efficiency <= 1, "array_efficiency",
            array_efficiency, "must be in (0, 1]")  # fmt: skip


def memory_density_per_mm2(
    cell_area_f2: float, feature_nm: float, layers: int = 1, array_efficiency: float = 0.5
) -> float:
    """Memory devices per mm² of footprint with ``layers`` monolithically stacked layers.

    density = layers · array_efficiency · 10¹² nm²/mm² / (cell_area_f2 · feature_nm²).

    Each added layer is taken to bring its own cells at the same array efficiency (its
    periphery either under the arrays in the CMOS below, or shared between layers), so the
    density is proportional to ``layers``, an upper bound on what sequential integration
    reaches.

    Args:
        cell_area_f2: area of one cell in F² (e.g. ``tables.CELL_AREA_F2["FilamentaryRRAM"]``,
            25 F² for a 1T1R cell).
        feature_nm: feature size F (nm).
        layers: memory layers stacked on one substrate (>= 1).
        array_efficiency: fraction of the footprint that is cells rather than periphery
            (drivers, ADCs, sense amplifiers), in (0, 1]; ~0.5 is a typical CIM macro
            (assumption).

    Returns:
        Devices per mm² (float).
    """
    _check_density_args(cell_area_f2, feature_nm, layers, array_efficiency)
    return layers * array_efficiency * 1e12 / (cell_area_f2 * feature_nm**2)


def largest_bayesian_model(
    area_mm2: float,
    devices_per_parameter: int,
    *,
    cell_area_f2: float,
    feature_nm: float,
    layers: int = 1,
    array_efficiency: float = 0.5,
) -> int:
    """How many Bayesian parameters fit on ``area_mm2`` of memory.

    A parameter's devices sit in one layer (a pair or a population row shares its lines), so
    each layer holds ⌊devices per layer / devices_per_parameter⌋ parameters, devices per layer
    being ⌊area · single-layer density⌋; the total is ``layers`` times that (exactly
    proportional to ``layers``).

    Args:
        area_mm2: footprint given to the memory arrays (mm²), > 0.
        devices_per_parameter: devices one parameter occupies (>= 1; see
            :data:`DEVICES_PER_PARAMETER` and :func:`devices_per_parameter`).
        cell_area_f2, feature_nm, layers, array_efficiency: as
            :func:`memory_density_per_mm2`.

    Returns:
        The number of parameters (int).
    """
    require(is_real(area_mm2) and area_mm2 > 0, "area_mm2", area_mm2,
            "must be a finite area > 0 mm²")  # fmt: skip
    require(is_int(devices_per_parameter) and devices_per_parameter >= 1,
            "devices_per_parameter", devices_per_parameter, "must be an int >= 1")  # fmt: skip
    per_layer = memory_density_per_mm2(cell_area_f2, feature_nm, 1, array_efficiency)
    _check_density_args(cell_area_f2, feature_nm, layers, array_efficiency)
    devices_per_layer = math.floor(per_layer * area_mm2)
    return layers * (devices_per_layer // devices_per_parameter)
