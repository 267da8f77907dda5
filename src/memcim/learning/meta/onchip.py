"""On-chip adaptation of a meta-trained network: inner-loop steps on crossbar tiles.

The meta-trained network is deployed once: its feature layers through :func:`memcim.nn.convert`
(programmed once, read at the deployment's age ``t_s``), and every layer the inner loop adapts
on tiles that hold one copy per task being adapted (the tasks are vectorised; each copy stands
for the adapted layers of one chip). An inner step, as Ortner et al. run it on PCM:

1. the support set goes through the *hardware* forward (DAC, array, read noise, drift, ADC);
2. the gradient is computed digitally from the hardware's activations and outputs, with the
   weights the learning rule intends to hold (a straight-through estimate: hardware values
   forward, the intended weights backward);
3. the update −α·g is stochastically rounded to a multiple of the programming step
   (``step_fraction`` · ``w_max``; Ortner et al.: 1/16 of a weight range of ±1);
4. only the devices whose target conductance changes are re-programmed
   (:meth:`Device.program_where`, with the device's programming noise); biases, where the
   adapted layers have them, are digital and updated in float.

Writes, pulses, the tiles' reads and conversions, and the digital gradient work are counted
per adaptation and priced with :mod:`memcim.energy`.

Limitation: a tile keeps one programming time for all its cells, so cells re-programmed while
adapting at age ``t_s`` are read as if they had drifted for ``t_s`` too (with global drift
compensation, which the tiles apply by default, they then read about as programmed; fresh cells
on a real chip would read slightly stronger than their drifted neighbours).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch
from torch import Tensor, nn

from memcim._errors import ConfigError, check_count, check_generator, is_real, require
from memcim._modules import replace_modules
from memcim.crossbar import TileConfig, TiledMatrix
from memcim.crossbar.tile import TileCounters
from memcim.devices.base import check_time
from memcim.energy.cim import (
    CIMCost,
    CIMEnergyModel,
    combine,
    counters_difference,
    matrix_cost,
    tile_counters,
)
from memcim.energy.digital import EDGE_NPU, DigitalProcessor
from memcim.learning.meta.maml import Evaluation, MetaConfig, check_task_batch, task_loss
from memcim.learning.network import stochastic_round
from memcim.nn import CIMConfig, CIMLayer, convert
from memcim.nn.convert import cim_layers


@dataclass(frozen=True, kw_only=True)
class OnChipConfig:
    """How a meta-trained network is deployed and adapted on tiles.

    Attributes:
        tile: technology and periphery of every tile (features and adapted layers).
        step_fraction: programming step of an adapted weight as a fraction of ``w_max``
            (Ortner et al.: 1/16 for weights in [−1, 1]).
        w_max: largest |weight| of the adapted layers (mapped to the full conductance
            window; Ortner et al.: weights in [−1, 1]); ``None``: ``headroom`` × the largest
            |weight| of each adapted layer at deployment. Updates that would pass it are
            clipped to it and counted.
        headroom: see ``w_max``.
        quantise_deployed: round the deployed adapted weights to the step grid (a quantised
            memory); otherwise they are programmed as analog targets.
        max_rows, max_cols: largest tile.
        seed: seed of the feature layers' generators (as :class:`~memcim.nn.CIMConfig`).
        processor: the digital logic that computes gradients beside the arrays, and the
            processor the whole adaptation is compared with.
    """

    tile: TileConfig = field(default_factory=TileConfig)
    step_fraction: float = 1 / 16
    w_max: float | None = 1.0
    headroom: float = 2.0
    quantise_deployed: bool = False
    max_rows: int = 512
    max_cols: int = 512
    seed: int = 0
    processor: DigitalProcessor = EDGE_NPU

    def __post_init__(self) -> None:
        require(isinstance(self.tile, TileConfig), "OnChipConfig.tile", self.tile, "a TileConfig")
        require(is_real(self.step_fraction) and 0 < self.step_fraction <= 1,
                "OnChipConfig.step_fraction", self.step_fraction, "a number in (0, 1]")  # fmt: skip
        if self.w_max is not None:
            require(is_real(self.w_max) and self.w_max > 0, "OnChipConfig.w_max", self.w_max,
                    "a finite number > 0, or None")  # fmt: skip
        require(is_real(self.headroom) and self.headroom >= 1, "OnChipConfig.headroom",
                self.headroom, "a finite number >= 1")  # fmt: skip
        check_count(self.max_rows, "OnChipConfig.max_rows", 1)
        check_count(self.max_cols, "OnChipConfig.max_cols", 1)


class _TaskLinear(nn.Module):
    """An adapted ``nn.Linear`` on tiles holding one copy per task: hardware forward,
    straight-through backward to the intended weights, sparse re-programming."""

    def __init__(self, linear: nn.Linear, config: OnChipConfig) -> None:
        super().__init__()
        self.init_weight = linear.weight.detach().clone()
        self.init_bias = None if linear.bias is None else linear.bias.detach().clone()
        peak = float(self.init_weight.abs().max())
        self.w_max = config.w_max if config.w_max is not None else config.headroom * peak
        if self.w_max <= 0:
            raise ConfigError("an adapted layer has only zero weights: set OnChipConfig.w_max")
        self.step = config.step_fraction * self.w_max
        mapping = replace(config.tile.mapping, w_max=self.w_max)
        self.matrix = TiledMatrix(linear.out_features, linear.in_features,
                                  replace(config.tile, mapping=mapping),
                                  max_rows=config.max_rows, max_cols=config.max_cols)  # fmt: skip
        self.quantise = config.quantise_deployed
        self.weight: Tensor | None = None  # [T, out, in], the weights the rule intends
        self.bias: Tensor | None = None  # [T, 1, out], digital
        self.t_s = 0.0
        self.generator: torch.Generator | None = None

    def deploy(self, tasks: int, generator: torch.Generator) -> None:
        w = self.init_weight
        if self.quantise:
            w = (torch.round(w / self.step) * self.step).clamp(-self.w_max, self.w_max)
        if float(w.abs().max()) > self.w_max:
            raise ConfigError(
                f"deployed weights reach {float(w.abs().max()):.4g} > OnChipConfig.w_max="
                f"{self.w_max:.4g}: raise w_max"
            )
        self.weight = w.expand(tasks, *w.shape).clone()
        b = self.init_bias
        self.bias = None if b is None else b.expand(tasks, 1, *b.shape).clone()
        self.generator = generator
        self.matrix.program(self.weight, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        hardware = self.matrix.mvm(x.detach(), t_s=self.t_s, generator=self.generator)
        software = torch.matmul(x, self.weight.transpose(-1, -2))
        y = software + (hardware - software).detach()
        return y if self.bias is None else y + self.bias

    def update(self, grad_w: Tensor, grad_b: Tensor | None, lr: float,
               generator: torch.Generator) -> int:  # fmt: skip
        """One SGD step: weights rounded to the step and re-programmed where their devices'
        targets change, biases in float. Returns the weights clipped at ±w_max."""
        levels = stochastic_round(-lr * grad_w / self.step, generator)
        wanted = self.weight + levels * self.step
        new = wanted.clamp(-self.w_max, self.w_max)
        clipped = int(torch.count_nonzero(new != wanted))
        self.matrix.reprogram(self.weight, new, generator=generator)
        self.weight = new
        if grad_b is not None:
            self.bias = self.bias - lr * grad_b
        return clipped


class Adaptation(NamedTuple):
    """What adapting ``T`` tasks on chip did.

    Attributes:
        evaluation: query loss (and accuracy) of every task after 0..steps hardware steps.
        writes: [T] programming pulses of the adaptation per task (all adapted layers).
        changed_weights: [T] weight updates that were non-zero after rounding, summed over
            steps.
        writes_per_device: [cells] pulses of each adapted device, over all tasks (for a
            histogram).
        clipped: updates clipped at ±w_max, all tasks.
        cim: energy (pJ) and latency (s) of one adaptation on the tiles: the support set's
            reads and conversions, the writes, and the gradient work on ``processor``.
        digital: the same adaptation (forward passes, gradients, weight traffic) on
            ``processor`` alone.
    """

    evaluation: Evaluation
    writes: Tensor
    changed_weights: Tensor
    writes_per_device: Tensor
    clipped: int
    cim: dict[str, float]
    digital: dict[str, float]


class OnChipAdapter:
    """A meta-trained network deployed on tiles, adapted to new tasks on chip.

    Args:
        model: the meta-trained network (``features(x)`` and a ``head``); not modified.
        meta: the inner loop (steps, learning rate, loss, ``adapt``). With ``adapt="all"``
            the model's features must have no parameters (e.g. :class:`SinusoidMLP`).
        config: deployment and programming (:class:`OnChipConfig`).
    """

    def __init__(self, model: nn.Module, meta: MetaConfig, config: OnChipConfig | None = None,
                 ) -> None:  # fmt: skip
        self.meta = meta
        self.config = cfg = config if config is not None else OnChipConfig()
        self.model = copy.deepcopy(model).eval()
        head_names = {n for n, _ in self.model.named_modules() if n == "head" or
                      n.startswith("head.")}  # fmt: skip
        feature_names = [
            n
            for n, m in self.model.named_modules()
            if isinstance(m, nn.Linear | nn.Conv2d) and n not in head_names
        ]
        if meta.adapt == "all" and feature_names:
            raise ConfigError("on-chip adaptation of every layer needs features without "
                              f"parameters; this model has {feature_names}")  # fmt: skip
        if feature_names:
            convert(self.model, CIMConfig(tile=cfg.tile, clip_sigma=None, max_rows=cfg.max_rows,
                                          max_cols=cfg.max_cols, seed=cfg.seed),
                    layers=feature_names)  # fmt: skip
        self.features_tiles: list[CIMLayer] = cim_layers(self.model)
        adapted: dict[str, _TaskLinear] = {}
        for name, module in self.model.head.named_modules(prefix="head"):
            if isinstance(module, nn.Linear):
                adapted[name] = _TaskLinear(module, cfg)
            elif any(True for _ in module.parameters(recurse=False)):
                raise ConfigError(f"head layer {name!r} ({type(module).__name__}) has "
                                  "parameters but is not an nn.Linear")  # fmt: skip
        if not adapted:
            raise ConfigError("the model's head has no nn.Linear layer to adapt")
        replace_modules(self.model, adapted)
        self.adapted: list[_TaskLinear] = list(adapted.values())

    def _matrices(self) -> list[TiledMatrix]:
        return [m.matrix for m in self.features_tiles] + [m.matrix for m in self.adapted]

    def _snapshot(self) -> list[list[TileCounters]]:
        return [tile_counters(m) for m in self._matrices()]

    def _spent(self, before: list[list[TileCounters]]) -> CIMCost:
        """Cost of the tile operations since ``before``; layers run one after another."""
        costs = []
        for matrix, then in zip(self._matrices(), before, strict=True):
            now = tile_counters(matrix)
            diff = [counters_difference(a, b) for a, b in zip(now, then, strict=True)]
            costs.append(matrix_cost(matrix, counters=diff))
        return combine(costs, parallel=False)

    def _set_time(self, t_s: float) -> None:
        for m in self.features_tiles:
            m.t_s = t_s
        for m in self.adapted:
            m.t_s = t_s

    def adapt(
        self,
        support_x: Tensor,
        support_y: Tensor,
        query_x: Tensor,
        query_y: Tensor,
        *,
        t_s: float = 0.0,
        steps: int | None = None,
        generator: torch.Generator,
    ) -> Adaptation:
        """Deploy the meta-initialisation on one tile copy per task, adapt every task on its
        support set on chip and score its query set after every step.

        Args:
            support_x, support_y, query_x, query_y: ``T`` tasks (leading dimension).
            t_s: age of the deployed network when the tasks arrive (s): every read is taken
                at this age (drift, read noise).
            steps: inner steps (default ``meta.inner_steps``).
            generator: programming, read noise and rounding.

        Returns:
            :class:`Adaptation`.
        """
        gen = check_generator(generator)
        check_time(t_s)
        check_task_batch(support_x, support_y, query_x, query_y)
        steps = self.meta.inner_steps if steps is None else check_count(steps, "steps", 0)
        tasks = support_x.shape[0]
        self._set_time(t_s)
        for layer in self.adapted:
            layer.deploy(tasks, gen)
        for m in self.features_tiles:  # every batch is read with this generator
            m.generator = gen
        writes_before = [self._cell_writes(layer) for layer in self.adapted]
        before = self._snapshot()
        with torch.no_grad():
            support = self.model.features(support_x)
        feature_cost, steps_cost = self._spent(before), None
        with torch.no_grad():  # the query set's features are buffered, as the support set's
            query = self.model.features(query_x)
        losses, hits, changed, clipped = [], [], torch.zeros(tasks, device=query.device), 0
        for step in range(steps + 1):
            loss, hit = self._score(query, query_y)
            losses.append(loss)
            hits.append(hit)
            if step == steps:
                break
            before = self._snapshot()
            step_changed, step_clipped = self._step(support, support_y, gen)
            spent = self._spent(before)
            steps_cost = (
                spent if steps_cost is None else combine([steps_cost, spent], parallel=False)
            )
            changed += step_changed
            clipped += step_clipped
        pulses = [self._cell_writes(layer) - w0
                  for layer, w0 in zip(self.adapted, writes_before, strict=True)]  # fmt: skip
        accuracy = torch.stack(hits, 1) if self.meta.loss == "cross_entropy" else None
        if steps_cost is None:
            steps_cost = CIMCost(energy_pj={"buffer": 0.0})
        cim, digital = self._energy(feature_cost, steps_cost, support_x, steps)
        return Adaptation(
            evaluation=Evaluation(torch.stack(losses, 1), accuracy),
            writes=sum(p.sum(1) for p in pulses),
            changed_weights=changed,
            writes_per_device=torch.cat([p.flatten() for p in pulses]),
            clipped=clipped,
            cim=cim,
            digital=digital,
        )

    @staticmethod
    def _cell_writes(layer: _TaskLinear) -> Tensor:
        """Pulses each device of ``layer`` has taken, [T, cells of every tile]."""
        tiles = [t for row in layer.matrix.tiles for t in row]
        return torch.cat([t.state.writes.flatten(1) for t in tiles], dim=1)

    def _score(self, query: Tensor, query_y: Tensor) -> tuple[Tensor, Tensor]:
        """Query loss and accuracy [T] from the query set's features."""
        with torch.no_grad():
            out = self.model.head(query)
        kind = self.meta.loss
        loss = torch.stack([task_loss(kind, o, y) for o, y in zip(out, query_y, strict=True)])
        hit = (out.argmax(-1) == query_y).float().mean(-1) if kind == "cross_entropy" else loss
        return loss, hit

    def _step(self, support: Tensor, support_y: Tensor, gen: torch.Generator,
              ) -> tuple[Tensor, int]:  # fmt: skip
        """One hardware inner step of every task; returns (changed weights per task, clipped)."""
        params = []
        for layer in self.adapted:
            layer.weight.requires_grad_(True)
            params.append(layer.weight)
            if layer.bias is not None:
                layer.bias.requires_grad_(True)
                params.append(layer.bias)
        out = self.model.head(support)
        kind = self.meta.loss
        # Each task's mean loss; summed, so that each task's gradient is its own.
        loss = sum(task_loss(kind, o, y) for o, y in zip(out, support_y, strict=True))
        grads = iter(torch.autograd.grad(loss, params))
        changed, clipped = torch.zeros(support.shape[0], device=support.device), 0
        with torch.no_grad():
            for layer in self.adapted:
                before = layer.weight.detach()
                g_w = next(grads)
                g_b = next(grads) if layer.bias is not None else None
                layer.weight, layer.bias = before, None if g_b is None else layer.bias.detach()
                n_clipped = layer.update(g_w, g_b, self.meta.inner_lr, gen)
                changed += (layer.weight != before).flatten(1).sum(1).float()
                clipped += n_clipped
        return changed, clipped

    # --- energy ---------------------------------------------------------------------------
    def _energy(self, features: CIMCost, steps_cost: CIMCost, support_x: Tensor,
                steps: int) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
        """Energy and latency of one adaptation on the tiles and on the digital processor.

        ``features``: the tiles' cost of the support set's features (all tasks);
        ``steps_cost``: of the adapted layers' forwards and writes (all tasks).
        """
        tasks, n = support_x.shape[0], support_x.shape[1]
        f, h = features.scaled(1 / tasks), steps_cost.scaled(1 / tasks)
        shapes = [layer.init_weight.shape for layer in self.adapted]
        forward = sum(s.numel() for s in shapes)
        # Weight gradients of every adapted layer, input gradients of all but the first.
        grad_macs = steps * n * (2 * forward - shapes[0].numel())
        params = forward + sum(0 if layer.init_bias is None else layer.init_bias.numel()
                               for layer in self.adapted)  # fmt: skip
        proc = self.config.processor
        gradient = proc.cost(macs=grad_macs, weights=0.0, activations=steps * params)
        cim = {
            "energy_pj": f.total_pj + h.total_pj + gradient.total_pj,
            "read_pj": f.inference_pj + h.inference_pj,
            "write_pj": h.energy_pj.get("write", 0.0),
            "gradient_pj": gradient.total_pj,
            "latency_s": f.latency_s + h.latency_s + h.program_latency_s + gradient.batch_latency_s,
        }
        # The digital processor fetches every weight once from its weight memory and writes
        # the adapted ones back; in between, the adapted weights and their gradients live in
        # its SRAM (read, gradient, write per step), as do the activations the tiles buffered.
        model = CIMEnergyModel()
        moved = (f.energy_pj["buffer"] + h.energy_pj["buffer"]) / (
            model.activation_bits * model.ops.sram_bit_pj
        )
        feature_weights = sum(m.weight.numel() for m in self.features_tiles)
        digital = proc.cost(
            macs=f.macs + h.macs + grad_macs,
            weights=feature_weights + 2 * params,
            activations=moved + 3 * steps * params,
        )
        return cim, {"energy_pj": digital.total_pj, "latency_s": digital.batch_latency_s}
