"""Per-layer and per-model energy reports from one forward pass.

:func:`profile` runs one forward pass of ``x`` with hooks on the model's matrix layers and
prices every layer:

* converted layers (:class:`memcim.nn.CIMLinear`, :class:`memcim.nn.CIMConv2d`): from the
  counters their tiles kept during the pass (measured Σ V² G t, conversions), plus the writes
  that programmed them (``"write"``, kept out of the energy per inference);
* hardware Bayesian layers (:func:`memcim.bayes.to_hardware`): from the counters of their
  sampler's tiles over the pass, which then runs S Monte-Carlo samples
  (:func:`memcim.bayes.forward_samples`): each :class:`~memcim.crossbar.TiledMatrix` priced by
  :func:`~memcim.energy.cim.matrix_cost` (the μ and σ² arrays of ``separate_mu_sigma`` read in
  parallel), the random bits (``"rng"``) and digital combinations (``"combine"``) the sampler
  counted, and the programming: per-sample re-programming (``"sample_writes"``, in the
  inference and its latency) or a one-off ``"write"`` (see :func:`profile`);
* other Bayesian layers (:mod:`memcim.bayes`): S samples under a sampling scheme
  (:func:`memcim.energy.bayes.bayes_cim_cost`), from the layer's shape and the inputs it saw
  with every Bayesian layer at its mean weights (deterministic; S passes of sampled weights
  would see nearly the same activity);
* other ``nn.Linear`` / ``nn.Conv2d``: estimated as a CIM macro would run them
  (:func:`memcim.energy.cim.estimate_cost`);

or, with ``processor=`` a :class:`~memcim.energy.digital.DigitalProcessor`, every matrix layer on
that processor instead (the digital baseline of the same model). Energies are per inference
(the pass's batch divided out); latencies add over layers (one inference through the network).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memcim._errors import ConfigError, require
from memcim.bayes import (
    BayesianLayer,
    HardwareBayesianConv2d,
    HardwareBayesianLinear,
    forward_samples,
)
from memcim.devices import Device, FilamentaryRRAM
from memcim.energy.bayes import bayes_cim_cost, bayes_digital_cost, combine_energy_pj
from memcim.energy.cim import (
    ArrayAssumptions,
    CIMCost,
    CIMEnergyModel,
    combine,
    cost_since,
    estimate_cost,
    tile_counters,
)
from memcim.energy.digital import DigitalCost, DigitalProcessor
from memcim.nn import CIMLayer


@dataclass
class LayerEnergy:
    """One layer's cost per inference.

    Attributes:
        name: module name in the model.
        kind: ``"cim"`` (measured on tiles), ``"cim-bayes-<scheme>"`` (a hardware Bayesian
            layer measured on its tiles), ``"cim-estimate"``, ``"bayes-<scheme>"`` (estimated)
            or ``"digital"``.
        cost: the cost (energies in pJ per inference).
        rows, cols: matrix inputs × outputs (a hardware Bayesian layer's tiles: the bias word
            line included in ``rows``).
    """

    name: str
    kind: str
    cost: CIMCost | DigitalCost
    rows: int
    cols: int

    @property
    def energy_pj(self) -> float:
        """Energy per inference of this layer (pJ), programming excluded."""
        return self.cost.inference_pj

    @property
    def latency_s(self) -> float:
        """Latency of this layer for one inference (s)."""
        return self.cost.latency_s


@dataclass
class EnergyReport:
    """Costs per inference of every matrix layer of a model.

    Attributes:
        layers: in forward order.
        batch: inferences in the profiled pass.
    """

    layers: list[LayerEnergy] = field(default_factory=list)
    batch: int = 1

    @property
    def energy_pj(self) -> float:
        """Energy per inference (pJ), programming excluded."""
        return sum(layer.energy_pj for layer in self.layers)

    @property
    def latency_s(self) -> float:
        """Latency of one inference through all layers in sequence (s)."""
        return sum(layer.latency_s for layer in self.layers)

    @property
    def macs(self) -> float:
        """Multiply-accumulates per inference over all layers."""
        return sum(layer.cost.macs for layer in self.layers)

    @property
    def tops_per_w(self) -> float:
        """2 · MACs per pJ of inference energy; ``nan`` at zero energy."""
        return 2 * self.macs / self.energy_pj if self.energy_pj > 0 else math.nan

    @property
    def breakdown_pj(self) -> dict[str, float]:
        """Energy per inference by component, summed over layers (pJ); programming excluded."""
        out: dict[str, float] = {}
        for layer in self.layers:
            for k, v in layer.cost.energy_pj.items():
                if k != "write":  # programming; digital costs have no such entry
                    out[k] = out.get(k, 0.0) + v
        return out

    @property
    def program_pj(self) -> float:
        """One-off programming energy of the CIM layers (pJ)."""
        return sum(layer.cost.energy_pj.get("write", 0.0) for layer in self.layers)

    def as_dict(self) -> dict:
        """The report as a JSON-ready dict: totals, breakdown and one entry per layer."""
        return {
            "energy_pj": self.energy_pj,
            "latency_s": self.latency_s,
            "macs": self.macs,
            "tops_per_w": self.tops_per_w,
            "program_pj": self.program_pj,
            "breakdown_pj": self.breakdown_pj,
            "layers": [
                {"name": la.name, "kind": la.kind, "rows": la.rows, "cols": la.cols,
                 "energy_pj": la.energy_pj, "latency_s": la.latency_s, **la.cost.as_dict()}
                for la in self.layers
            ],
        }  # fmt: skip

    def table(self) -> str:
        """A plain-text table: one line per layer and a total."""
        lines = [f"{'layer':<16}{'kind':<28}{'MACs':>12}{'energy pJ':>14}{'latency s':>12}"]
        for la in self.layers:
            lines.append(f"{la.name:<16}{la.kind:<28}{la.cost.macs:>12.4g}{la.energy_pj:>14.4g}"
                         f"{la.latency_s:>12.3g}")  # fmt: skip
        lines.append(f"{'total':<44}{self.macs:>12.4g}{self.energy_pj:>14.4g}"
                     f"{self.latency_s:>12.3g}   {self.tops_per_w:.3g} TOPS/W")  # fmt: skip
        return "\n".join(lines)


@dataclass
class _Seen:
    """What a hook recorded about one layer's input in the pass."""

    rows: int
    cols: int
    vectors: int  # input vectors (rows-long) over the whole batch
    v_sq_sum: float  # Σ (x_i / max|x|)² over those vectors
    activations: int  # input plus output values over the batch
    before: list | None = None  # tile counters before the pass (per matrix for a sampler)
    sampler: dict | None = None  # a hardware Bayesian layer's SamplerCounters before the pass
    per_row: int = 0  # input values per row of the layer's input (one image of one sample)
    outputs: int = 0  # output values over the pass


def _vectors(module: nn.Module, x: Tensor) -> Tensor:
    """The rows-long input vectors a matrix layer multiplies: [vectors, rows]."""
    if isinstance(module, nn.Conv2d) or getattr(module, "kernel_size", None) is not None:
        cols = F.unfold(x, module.kernel_size, dilation=module.dilation,
                        padding=module.padding, stride=module.stride)  # fmt: skip
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return x.reshape(-1, x.shape[-1])


def _shape(module: nn.Module) -> tuple[int, int]:
    """(rows, cols): inputs and outputs of one vector-matrix product of the layer."""
    if isinstance(module, CIMLayer):
        return module.in_flat, module.out_features_flat
    weight = module.weight_mu if isinstance(module, BayesianLayer) else module.weight
    return int(weight[0].numel()), int(weight.shape[0])


def _matrix_layers(model: nn.Module) -> dict[str, nn.Module]:
    found = {}
    for name, m in model.named_modules():
        if isinstance(m, CIMLayer | BayesianLayer | nn.Linear | nn.Conv2d):
            found[name or type(m).__name__] = m
    return found


_TILED = (HardwareBayesianLinear, HardwareBayesianConv2d)


def _check_hardware(layers: dict[str, nn.Module], samples: int) -> bool:
    """Whether the model has hardware Bayesian layers; checks S against their copies."""
    tiled = {n: m for n, m in layers.items() if isinstance(m, _TILED)}
    if not tiled:
        return False
    software = [n for n, m in layers.items() if isinstance(m, BayesianLayer) and n not in tiled]
    if software:
        raise ConfigError(
            f"the model mixes hardware Bayesian layers with software ones ({software}): put "
            "every Bayesian layer on tiles with memcim.bayes.to_hardware"
        )
    for name, m in tiled.items():
        k = m.sampled.copies
        if k is not None and samples % k:
            raise ConfigError(
                f"samples={samples} is invalid for layer {name!r}: its tiles hold {k} "
                f"device-realised weight sets (copy s mod {k} serves sample s); profile with "
                f"samples = {k} or a multiple of {k}, or program it with to_hardware(samples=)"
            )
    return True


def profile(
    model: nn.Module,
    x: Tensor,
    *,
    processor: DigitalProcessor | None = None,
    cim: CIMEnergyModel | None = None,
    samples: int = 1,
    scheme: str = "differential",
    device: Device | None = None,
    assumptions: ArrayAssumptions | None = None,
    batch: int | None = None,
) -> EnergyReport:
    """Energy, latency and TOPS/W of ``model`` per inference, measured on one pass of ``x``.

    A model with hardware Bayesian layers (:func:`memcim.bayes.to_hardware`) is run for S
    samples (:func:`memcim.bayes.forward_samples`, read noise from the layers' own generators)
    and each such layer is priced from what its tiles counted during that pass:

    * reads: :func:`~memcim.energy.cim.matrix_cost` of every tiled matrix of the sampler on the
      counter differences (measured Σ V² G t, conversions, accumulations, buffer), the μ and
      σ² arrays of ``separate_mu_sigma`` combined as read in parallel;
    * ``"rng"``: the sampler's random bits × its ``rng_device.e_write_pj``;
    * ``"combine"``: its digital combinations × :func:`~memcim.energy.bayes.combine_energy_pj`
      of ``cim.ops`` (one fp32 square root, assumed 7 multiplies and 2 adds, plus one fp32
      multiply-add: 32.3 pJ with Horowitz's 45 nm table);
    * programming: the tiles' ``cell_writes`` × ``e_write_pj``. ``cycle_to_cycle`` and
      ``differential`` re-program the same cells for every sample: the tiles hold K
      programmings, and a pass of S = m·K samples programs each m times, so
      ``"sample_writes"`` = cell_writes · (S / K) · e_write / ``batch`` is part of the energy
      per inference and its programming time is in the latency path. Every other scheme
      programs once: ``"write"``, kept out of the inference energy. ``cell_writes`` is the
      tiles' running count: after :func:`memcim.bayes.resample` it holds every programming.

    Its ``macs`` are the S sampled products: vectors × S × rows × cols, the bias word line in
    ``rows``. ``scheme`` and ``device`` do not apply to such layers (they carry their own).
    With ``processor``, such a layer is priced as its software layer would be
    (:func:`~memcim.energy.bayes.bayes_digital_cost`, shapes from the S-sample pass).

    Args:
        model: any model with ``nn.Linear`` / ``nn.Conv2d``, converted (:mod:`memcim.nn`),
            Bayesian (:mod:`memcim.bayes`) or hardware Bayesian layers (all Bayesian layers on
            tiles, or none). Run in eval mode.
        x: a batch of inputs [N, ...]; energies are divided by N.
        processor: price every layer on this digital processor (weights fetched once per batch
            of N) instead of on CIM.
        cim: periphery energies of the CIM macro.
        samples: S, Monte-Carlo samples of every Bayesian layer; with hardware layers holding
            K copies, K or a multiple of K.
        scheme: sampling scheme of the (software) Bayesian layers
            (:data:`memcim.energy.bayes.SCHEMES`).
        device: cell of the estimated (non-converted) layers; default filamentary RRAM.
        assumptions: array assumptions of the estimated layers.
        batch: inferences that share one weight fetch (digital) or one re-programmed sample
            (Bayesian CIM); default N. Lets a large ``x`` measure the activity of an edge
            device that runs one input at a time (``batch=1``).

    Returns:
        The :class:`EnergyReport`.

    Raises:
        ConfigError: a bad argument, a model without matrix layers, hardware and software
            Bayesian layers mixed, or S not a multiple of a hardware layer's copies.
    """
    require(isinstance(x, Tensor) and x.dim() >= 2, "x", getattr(x, "shape", x),
            "must be a batch tensor [N, ...]")  # fmt: skip
    require(isinstance(samples, int) and samples >= 1, "samples", samples, "must be an int >= 1")
    require(batch is None or (isinstance(batch, int) and batch >= 1), "batch", batch,
            "must be None or an int >= 1")  # fmt: skip
    layers = _matrix_layers(model)
    if not layers:
        raise ConfigError("the model has no Linear, Conv2d, CIM or Bayesian layers to price")
    on_tiles = _check_hardware(layers, samples)
    device = device if device is not None else FilamentaryRRAM()
    seen: dict[str, _Seen] = {}

    def before(name: str, module: nn.Module, args: tuple) -> None:
        rows, cols = _shape(module)
        if isinstance(module, _TILED):
            if name not in seen:  # counted from the first call on (a layer may run twice)
                sampled = module.sampled
                seen[name] = _Seen(rows, cols, 0, 0.0, 0,
                                   [tile_counters(m) for m in sampled.matrices],
                                   sampled.counters.as_dict(), args[0][0].numel())  # fmt: skip
            return
        snapshot = tile_counters(module.matrix) if isinstance(module, CIMLayer) else None
        with torch.no_grad():
            v = _vectors(module, args[0].detach().float())
            peak = v.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30)
            v_sq = float((v / peak).square().sum())
        seen[name] = _Seen(rows, cols, v.shape[0], v_sq, args[0].numel(), snapshot)

    def after(name: str, module: nn.Module, args: tuple, output: Tensor) -> None:
        seen[name].activations += output.numel()
        seen[name].outputs += output.numel()

    handles = []
    for name, module in layers.items():
        handles.append(module.register_forward_pre_hook(
            lambda m, a, name=name: before(name, m, a)))  # fmt: skip
        handles.append(module.register_forward_hook(
            lambda m, a, o, name=name: after(name, m, a, o)))  # fmt: skip
    was_training = model.training
    # Bayesian layers run at their means: the activity the estimate needs, without drawing.
    # Hardware layers draw on their tiles, whose counters are what is priced.
    modes = {} if on_tiles else {m: m.eval_mode for m in layers.values()
                                 if isinstance(m, BayesianLayer)}  # fmt: skip
    try:
        model.eval()
        for m in modes:
            m.eval_mode = "mean"
        with torch.no_grad():
            if on_tiles:
                forward_samples(model, x, samples)
            else:
                model(x)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.eval_mode = mode
        model.train(was_training)
    n = x.shape[0]
    shared = batch if batch is not None else n
    report = EnergyReport(batch=shared)
    for name, module in layers.items():
        if name not in seen:
            continue  # not called in this forward
        s = seen[name]
        vectors = s.vectors / n
        macs = vectors * s.rows * s.cols
        bayes = isinstance(module, BayesianLayer)
        rows, cols = s.rows, s.cols
        if isinstance(module, _TILED) and processor is not None:
            # Output values per inference and sample: S samples are S forward passes.
            out_values = s.outputs / (n * samples)
            cost = bayes_digital_cost(processor, macs=out_values * s.rows,
                                      weights=s.rows * s.cols, activations=s.per_row + out_values,
                                      samples=samples, batch=shared)  # fmt: skip
            kind = "digital"
        elif isinstance(module, _TILED):
            cost = _sampler_cost(module, s, n, shared, samples, cim)
            rows, cols = module.sampled.in_features, module.sampled.out_features
            kind = f"cim-bayes-{module.sampled.sampling.scheme.value}"
        elif processor is not None:
            cost = (
                bayes_digital_cost(processor, macs=macs, weights=s.rows * s.cols,
                                   activations=s.activations / n, samples=samples,
                                   batch=shared)
                if bayes else
                processor.cost(macs=macs, weights=s.rows * s.cols, activations=s.activations / n,
                               batch=shared)
            )  # fmt: skip
            kind = "digital"
        elif isinstance(module, CIMLayer):
            # The reads of this pass, and every write that programmed the tiles (once).
            cost = _per_inference(
                cost_since(module.matrix, s.before, cim, with_programming=True), n
            )
            kind = "cim"
        elif bayes:
            cost = bayes_cim_cost(rows=s.rows, cols=s.cols, vectors=vectors,
                                  v_sq_sum=s.v_sq_sum / n, samples=samples, scheme=scheme,
                                  device=device, batch=shared, assumptions=assumptions,
                                  model=cim)  # fmt: skip
            kind = f"bayes-{scheme}"
        else:
            cost = estimate_cost(rows=s.rows, cols=s.cols, vectors=vectors,
                                 v_sq_sum=s.v_sq_sum / n, device=device,
                                 assumptions=assumptions, model=cim)  # fmt: skip
            kind = "cim-estimate"
        report.layers.append(LayerEnergy(name, kind, cost, rows, cols))
    return report


def _sampler_cost(module: nn.Module, s: _Seen, n: int, shared: int, samples: int,
                  cim: CIMEnergyModel | None) -> CIMCost:  # fmt: skip
    """A hardware Bayesian layer's cost per inference from its counters (see :func:`profile`)."""
    sampled = module.sampled
    costs = [cost_since(m, before, cim, with_programming=True)
             for m, before in zip(sampled.matrices, s.before, strict=True)]  # fmt: skip
    measured = combine(costs, parallel=True)  # the μ and σ² arrays are read side by side
    write_pj, program_s = measured.energy_pj["write"], measured.program_latency_s
    cost = measured.scaled(1 / n)
    if sampled.reprogrammed:
        # The tiles hold K programmings of one array; S = m·K samples program it m times, and
        # the inferences of a batch read each programmed sample.
        share = samples / sampled.copies / shared
        cost.energy_pj["write"] = 0.0
        cost.energy_pj["sample_writes"] = write_pj * share
        cost.program_latency_s = program_s * share
        cost.latency_s += cost.program_latency_s  # a sample is programmed before it is read
    else:
        cost.energy_pj["write"] = write_pj
        cost.energy_pj["sample_writes"] = 0.0
        cost.program_latency_s = program_s
    counts = sampled.counters.as_dict()
    bits = counts["random_bits"] - s.sampler["random_bits"]
    ops = counts["digital_ops"] - s.sampler["digital_ops"]
    cost.energy_pj["rng"] = bits / n * sampled.sampling.rng_device.e_write_pj
    model = cim if cim is not None else CIMEnergyModel()
    cost.energy_pj["combine"] = ops / n * combine_energy_pj(model.ops)
    # The S sampled products, whether the arrays were read S times or once (separate μ/σ²).
    cost.macs = s.outputs / n * sampled.in_features
    return cost


def _per_inference(cost: CIMCost, n: int) -> CIMCost:
    """A batch's read cost divided by its size; programming stays whole (it happened once)."""
    per = cost.scaled(1 / n)
    per.energy_pj["write"] = cost.energy_pj["write"]
    per.program_latency_s = cost.program_latency_s
    return per
