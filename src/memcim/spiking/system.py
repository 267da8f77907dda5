"""The sensor-fusion pipeline as chiplets, each priced from what memcim counted.

event sensor → spiking chiplet → fusion chiplet → learning chiplet, for
:func:`memcim.energy.system.build` and :func:`~memcim.energy.system.pipeline_cost`:

- :func:`event_sensor`: the events of the spike trains it sent (counted), at an assumed energy
  per event; address-event output (pixel address + time step).
- :func:`spiking_chiplet`: the spiking network's synapse tiles over the pass
  (:func:`memcim.spiking.spike_energy`, from their counters), for every spike-train draw of
  one prediction; it sends class probabilities and an uncertainty.
- :func:`fusion_chiplet`: the Bayesian network's tiles (:func:`memcim.energy.profile`, from
  their counters) plus the digital arithmetic of the uncertainties and the pooling
  (:func:`fusion_operations`, priced on a :class:`~memcim.energy.DigitalProcessor`).
- :func:`learning_chiplet`: on-chip learning with hybrid synapses
  (:class:`memcim.learning.hybrid.HybridTrainer`): the RRAM and training-memory writes its
  counters recorded per labelled sample, plus the gradient arithmetic (forward, backward and
  update products, 3 MACs per weight, priced digitally: the trainer computes them from the
  weights it reads back, not on the tiles).

Assumptions (order of magnitude, not measurements): :data:`EVENT_PJ`, :data:`STEP_S`,
:data:`TRANSCENDENTAL_MACS`, :data:`DIGITAL_AREA_MM2`; probabilities travel as 8-bit values.
"""

from __future__ import annotations

import math

from torch import Tensor

from memcim._errors import check_count, is_real, require
from memcim.energy import CIMCost, DigitalProcessor, EnergyReport
from memcim.energy.digital import DigitalCost
from memcim.energy.system import Chiplet
from memcim.spiking.energy import SpikeEnergy

#: Energy of one event of the sensor: pixel comparator, arbitration and address encoding
#: (pJ). Assumption, order of magnitude.
EVENT_PJ = 10.0
#: Duration of one time step of the spike trains (s). Assumption.
STEP_S = 1e-6
#: Bits of one probability or uncertainty sent between chiplets.
VALUE_BITS = 8
#: A logarithm or exponential counted as this many fp32 multiply-accumulates (a polynomial
#: approximation). Assumption.
TRANSCENDENTAL_MACS = 10
#: Area of a chiplet's digital logic beside its tiles (mm²). Assumption.
DIGITAL_AREA_MM2 = 0.1


def _mm2(cost: CIMCost) -> float:
    return cost.area_um2 * 1e-6


def event_sensor(spikes: Tensor, *, e_event_pj: float = EVENT_PJ,
                 step_s: float = STEP_S) -> Chiplet:  # fmt: skip
    """The event sensor that sent ``spikes`` [T, N, pixels] (0/1): energy = mean events per
    inference × ``e_event_pj``; latency T × ``step_s``; each event an address of
    ⌈log2 pixels⌉ + ⌈log2 T⌉ bits."""
    require(isinstance(spikes, Tensor) and spikes.dim() == 3, "spikes",
            tuple(getattr(spikes, "shape", ())), "[T, N, pixels] of 0/1")  # fmt: skip
    require(is_real(e_event_pj) and e_event_pj >= 0, "e_event_pj", e_event_pj, ">= 0 pJ")
    require(is_real(step_s) and step_s > 0, "step_s", step_s, "> 0 s")
    steps, n, pixels = spikes.shape
    events = float(spikes.abs().sum()) / n
    address_bits = math.ceil(math.log2(pixels)) + math.ceil(math.log2(max(steps, 2)))
    return Chiplet(name="event_sensor", role="sensor", e_pj=events * e_event_pj,
                   latency_s=steps * step_s, output_bits=events * address_bits,
                   area_mm2=1.0, process="event sensor (assumed 1 mm²)")  # fmt: skip


def spiking_chiplet(energy: SpikeEnergy, *, draws: int, classes: int) -> Chiplet:
    """The spiking network's tiles, ``draws`` passes per prediction one after another
    (energy and latency per inference from ``energy``, a pass over ``energy.samples``
    inferences); it sends ``classes`` probabilities and one uncertainty."""
    check_count(draws, "draws", 1)
    check_count(classes, "classes", 2)
    per_pass = energy.cost.scaled(1 / energy.samples)
    return Chiplet(name="spiking", role="spiking_front_end", e_pj=draws * per_pass.inference_pj,
                   latency_s=draws * per_pass.latency_s, output_bits=(classes + 1) * VALUE_BITS,
                   area_mm2=_mm2(energy.cost) + DIGITAL_AREA_MM2,
                   process="spiking CIM tiles")  # fmt: skip


def fusion_operations(*, classes: int, samples: tuple[int, ...]) -> tuple[float, float]:
    """(multiply-accumulates, logarithms and exponentials) of one fused prediction from
    modalities with ``samples`` Monte-Carlo samples each: every modality's predictive mean
    and mutual information (S·C logs and MACs for the samples' entropies, C for the mean's),
    the log of its windowed uncertainty, the softmax over modalities, the weighted sum of
    log-probabilities (M·C MACs) and the softmax over classes (C exponentials and divides)."""
    check_count(classes, "classes", 2)
    require(len(samples) >= 1 and all(isinstance(s, int) and s >= 1 for s in samples),
            "samples", samples, "one int >= 1 per modality")  # fmt: skip
    m, c = len(samples), classes
    decomposition = sum((s + 1) * c for s in samples)
    macs = 2 * decomposition + m * c + c + 2 * m
    transcendentals = decomposition + 2 * m + c
    return float(macs), float(transcendentals)


def fusion_chiplet(report: EnergyReport, processor: DigitalProcessor, *, classes: int,
                   samples: tuple[int, ...]) -> tuple[Chiplet, DigitalCost]:  # fmt: skip
    """The Bayesian network on tiles (``report``, per inference) and the fusion arithmetic
    on ``processor``; it sends the fused probabilities. Returns the chiplet and the digital
    part's cost."""
    macs, transcendentals = fusion_operations(classes=classes, samples=samples)
    digital = processor.cost(macs=macs + TRANSCENDENTAL_MACS * transcendentals, weights=0,
                             activations=2 * classes * (len(samples) + 1))  # fmt: skip
    area = sum(_mm2(layer.cost) for layer in report.layers if isinstance(layer.cost, CIMCost))
    chiplet = Chiplet(name="fusion", role="bayesian_cim", e_pj=report.energy_pj + digital.total_pj,
                      latency_s=report.latency_s + digital.latency_s,
                      output_bits=classes * VALUE_BITS, area_mm2=area + DIGITAL_AREA_MM2,
                      process="Bayesian CIM tiles + logic")  # fmt: skip
    return chiplet, digital


def learning_chiplet(write_pj: float, samples: int, weights: int,
                     processor: DigitalProcessor) -> tuple[Chiplet, DigitalCost]:  # fmt: skip
    """On-chip learning of ``weights`` weights: ``write_pj`` of counted writes over ``samples``
    labelled samples, plus 3 MACs per weight and sample on ``processor``; it sends the
    decision (32 bits). Returns the chiplet and the digital part's cost."""
    require(is_real(write_pj) and write_pj >= 0, "write_pj", write_pj, ">= 0 pJ")
    check_count(samples, "samples", 1)
    check_count(weights, "weights", 1)
    digital = processor.cost(macs=3 * weights, weights=0, activations=2 * weights)
    return Chiplet(name="learning", role="learning", e_pj=write_pj / samples + digital.total_pj,
                   latency_s=digital.latency_s, output_bits=32, area_mm2=DIGITAL_AREA_MM2 * 2,
                   process="hybrid FeCAP/RRAM synapses"), digital  # fmt: skip
