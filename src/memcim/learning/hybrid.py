"""On-chip learning with hybrid synapses: a training memory beside multi-level RRAM.

No single memory suits both training (frequent, cheap writes) and inference (non-volatile,
non-destructive reads). A hybrid synapse ([12]–[15], docs/references.md; FeRAM/RRAM in [13, 14])
splits the roles:

* **Inference memory:** each weight is a differential RRAM pair on multi-level conductances,
  w = level / (2^b − 1) · w_max with level ∈ {−(2^b − 1), …, 2^b − 1} (``rram_bits`` = b).
  The forward pass of training reads the programmed pairs, write noise included, and
  test-time inference runs the tiles' MVMs (read noise, DAC/ADC).
* **Training memory** (:mod:`memcim.learning.memories`): a FeCAP, SRAM word or gain-cell
  pair per weight, in *training units* of 1 / ``threshold`` RRAM level. After every
  mini-batch the update u = −lr · ∂L/∂w is converted to training units and rounded (``update``):
  ``"stochastic"`` rounding (unbiased), ``"round"`` (deterministic) or ``"sign"`` (at most
  one unit). It is then added to the training memory.
* **Transfer,** every ``transfer_every`` samples: each synapse whose |value| reached
  ``threshold`` moves its RRAM level by trunc(value / threshold) and gives that much back.
  Only the devices whose target conductance changed are RESET+SET (a fresh cycle-to-cycle
  draw, optionally program-and-verify).

``memory="direct"`` is the baseline without a training memory: every mini-batch's rounded
update, in RRAM levels, is programmed at once (each change a RESET+SET with its write noise,
devices past their endurance stuck). Updates are per mini-batch of ``batch_size`` samples
(the mean gradient); ``batch_size=1`` gives the per-sample rule of [13]. Overflow of either
memory is counted, never dropped silently.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from memcim._errors import ConfigError, check_count, is_real, require
from memcim.crossbar import Tile, TileConfig
from memcim.devices import FeCap, FilamentaryRRAM, GainCell, SRAMCell
from memcim.learning import network
from memcim.learning.memories import (
    FeCapMemory,
    GainCellMemory,
    SRAMMemory,
    TrainingMemory,
)
from memcim.metrics import accuracy

MemoryKind = Literal["fecap", "sram", "gain_cell", "direct"]
UpdateRule = Literal["stochastic", "round", "sign"]


@dataclass(frozen=True, kw_only=True)
class HybridConfig:
    """A hybrid-synapse training run (model in the module docstring).

    Attributes:
        layers: MLP widths (inputs, hidden..., classes), ReLU between layers.
        memory: ``"fecap"``, ``"sram"``, ``"gain_cell"`` or ``"direct"`` (RRAM only).
        transfer_every: samples between transfers to the RRAM (a multiple of ``batch_size``).
        threshold: training units per RRAM level; a synapse transfers once |value| reaches it.
        update: rounding of the updates to training units.
        lr: SGD learning rate (on the mean gradient of a mini-batch).
        batch_size: samples per update.
        epochs: passes over the training set.
        rram_bits: magnitude bits per RRAM device: 2^b − 1 levels each side of zero.
        w_max_scale: w_max = w_max_scale / √fan_in per layer (the weight of a full-window pair).
        rram: the inference memory (its write noise, endurance, optional verify).
        fecap: FeCAP of ``memory="fecap"`` (9 levels: values −4 … 4).
        sram: SRAM word of ``memory="sram"``.
        gain_cell: gain cell of ``memory="gain_cell"`` (retention τ).
        gain_cell_limit: charge window of a gain-cell pair (training units).
        sample_period_s: time per training sample (s); gain cells decay over it.
        dac_bits, adc_bits, read_noise: the tiles at inference.
    """

    layers: tuple[int, ...] = (784, 128, 64, 10)
    memory: MemoryKind = "fecap"
    transfer_every: int = 512
    threshold: int = 8
    update: UpdateRule = "stochastic"
    lr: float = 0.05
    batch_size: int = 32
    epochs: int = 3
    rram_bits: int = 4
    w_max_scale: float = 4.0
    rram: FilamentaryRRAM = field(default_factory=FilamentaryRRAM)
    fecap: FeCap = field(default_factory=lambda: FeCap(n_levels=17))
    sram: SRAMCell = field(default_factory=lambda: SRAMCell(bits=8))
    gain_cell: GainCell = field(default_factory=GainCell)
    gain_cell_limit: float = 16.0
    sample_period_s: float = 1e-4
    dac_bits: int | None = 8
    adc_bits: int | None = 8
    read_noise: bool = True

    def __post_init__(self) -> None:
        name = "HybridConfig"
        network.check_layers(self.layers, f"{name}.layers")
        require(self.memory in ("fecap", "sram", "gain_cell", "direct"), f"{name}.memory",
                self.memory, "must be 'fecap', 'sram', 'gain_cell' or 'direct'")  # fmt: skip
        require(self.update in ("stochastic", "round", "sign"), f"{name}.update", self.update,
                "must be 'stochastic', 'round' or 'sign'")  # fmt: skip
        for f in ("transfer_every", "threshold", "batch_size", "epochs", "rram_bits"):
            check_count(getattr(self, f), f"{name}.{f}", 1)
        require(self.transfer_every % self.batch_size == 0, f"{name}.transfer_every",
                self.transfer_every, f"a multiple of batch_size {self.batch_size}")  # fmt: skip
        for f in ("lr", "w_max_scale", "gain_cell_limit", "sample_period_s"):
            value = getattr(self, f)
            require(is_real(value) and value > 0, f"{name}.{f}", value, "must be > 0")
        require(isinstance(self.rram, FilamentaryRRAM), f"{name}.rram", self.rram,
                "must be a FilamentaryRRAM")  # fmt: skip

    @property
    def levels(self) -> int:
        """RRAM levels on each side of zero, 2^b − 1."""
        return 2**self.rram_bits - 1

    def training_memory(self) -> TrainingMemory | None:
        """The training memory ``memory`` names (``None`` for direct RRAM training)."""
        if self.memory == "fecap":
            return FeCapMemory(self.fecap)
        if self.memory == "sram":
            return SRAMMemory(self.sram)
        if self.memory == "gain_cell":
            return GainCellMemory(self.gain_cell, self.gain_cell_limit)
        return None

    def tile_config(self, w_max: float) -> TileConfig:
        """Tiles of a layer whose full-window pair is ``w_max``: ``rram_bits`` levels per
        device, or analog targets for direct training."""
        bits = None if self.memory == "direct" else self.rram_bits  # direct: analog targets
        return network.tile_config(self.rram, w_max, weight_bits=bits, dac_bits=self.dac_bits,
                                   adc_bits=self.adc_bits, read_noise=self.read_noise)  # fmt: skip


@dataclass
class HybridStats:
    """Counts of a training run (programming of the initial weights excluded).

    Attributes:
        rram_writes: RESET+SET pulses on the RRAM during training.
        rram_writes_per_device_max: most pulses one RRAM device received (initial included).
        rram_writes_per_device_mean: rram_writes / RRAM devices.
        memory_writes: writes of the training memory (pulses, word or cell writes).
        memory_overflow: |training units| that did not fit the training memory, summed over
            updates.
        rram_overflow: |RRAM levels| that did not fit the level range (direct: weight
            beyond ±w_max, in levels), summed over transfers or updates.
        stuck_devices: RRAM devices worn out (endurance) at the end.
        transfers: transfer events.
        energy_pj: ``{"rram_write": …, "memory_write": …}`` (pJ), plus ``"memory_leakage"``
            for a memory that leaks (SRAM): leakage power × synapses × training time
            (samples × ``sample_period_s``).
        wall_s: wall time (s).
    """

    rram_writes: int
    rram_writes_per_device_max: int
    rram_writes_per_device_mean: float
    memory_writes: int
    memory_overflow: float
    rram_overflow: float
    stuck_devices: int
    transfers: int
    energy_pj: dict[str, float]
    wall_s: float

    @property
    def energy_total_pj(self) -> float:
        """Sum of ``energy_pj`` over its components (pJ)."""
        return sum(self.energy_pj.values())


def rounded(u: Tensor, rule: str, generator: torch.Generator | None) -> Tensor:
    """Updates ``u`` (training units) rounded to integers by ``rule``."""
    if rule == "round":
        return torch.round(u)
    if rule == "sign":
        return torch.round(u).clamp(-1, 1)
    return network.stochastic_round(u, generator)


def init_weights(layers: tuple[int, ...], generator: torch.Generator) -> list[Tensor]:
    """PyTorch's default Linear init, U(±1/√fan_in) for weights and bias, [out, in + 1], on the
    generator's device."""
    return [
        (torch.rand(o, n, generator=generator, device=generator.device) * 2 - 1) / math.sqrt(n - 1)
        for o, n in network.shapes(layers)
    ]


class HybridTrainer:
    """An MLP trained on chip with hybrid synapses (or straight on RRAM).

    Args:
        config: the run (default :class:`HybridConfig`).
    """

    def __init__(self, config: HybridConfig | None = None) -> None:
        self.config = config if config is not None else HybridConfig()
        cfg = self.config
        self.w_max = [cfg.w_max_scale / math.sqrt(n - 1) for _, n in network.shapes(cfg.layers)]
        self.tiles = [Tile(n, o, cfg.tile_config(w)) for (o, n), w in
                      zip(network.shapes(cfg.layers), self.w_max, strict=True)]  # fmt: skip
        self.memory = cfg.training_memory()
        self.levels: list[Tensor] | None = None
        self.stats: HybridStats | None = None
        self._counts: dict[str, float] = {"memory_writes": 0, "transfers": 0,
                                          "memory_overflow": 0.0, "rram_overflow": 0.0}  # fmt: skip

    # --- RRAM levels <-> tiles ------------------------------------------------------------------
    def _unit(self, i: int) -> float:
        """Weight of one RRAM level in layer ``i``."""
        return self.w_max[i] / self.config.levels

    def _program_levels(self, i: int, levels: Tensor, generator) -> None:
        """Program layer ``i`` to ``levels``: all devices at first, then only changed ones."""
        w = levels.float() * self._unit(i)
        if self.levels is None:  # initial programming (also of a trainer fitted again)
            self.tiles[i].program(w, generator=generator)
        else:
            self._reprogram(i, self.levels[i].float() * self._unit(i), w, generator)

    def _reprogram(self, i: int, now: Tensor, new: Tensor, generator) -> None:
        """RESET+SET the devices of layer ``i`` whose target for the weights ``new`` differs
        from their target for ``now`` (both [out, in + 1], within ±w_max)."""
        self.tiles[i].reprogram(now, new, generator=generator)

    def _read_weights(self) -> list[Tensor]:
        """The weights the programmed pairs hold (write noise, no read noise), [out, in + 1]."""
        return [tile.read_weights(0.0) for tile in self.tiles]

    # --- training -------------------------------------------------------------------------------
    def fit(
        self,
        x: Tensor,
        y: Tensor,
        *,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> HybridStats:
        """Train on ``x`` [N, inputs] (flattened) and labels ``y`` [N].

        Args:
            x, y: training images (any shape per image, flattened) and class labels.
            generator: every random draw: initialisation, batch order, rounding, programming
                (``None``: torch's global generator).
            progress: progress bars (on a terminal only).

        Returns:
            :class:`HybridStats`, also kept as :attr:`stats`.
        """
        cfg = self.config
        x, y = network.check_data(x.reshape(len(x), -1), y, cfg.layers)
        gen = generator
        start = time.perf_counter()
        self._initialise(gen)
        initial_writes = sum(t.counters.cell_writes for t in self.tiles)
        mem = self.memory
        held = [mem.fresh(lv.shape, lv.device) for lv in self.levels] if mem is not None else None
        weights = self._read_weights()
        self._counts = dict.fromkeys(self._counts, 0)  # this run's counts
        batches_per_transfer = cfg.transfer_every // cfg.batch_size
        steps = 0
        for epoch in range(cfg.epochs):
            order = torch.randperm(len(y), generator=gen, device=gen.device)
            bar = tqdm(range(0, len(y), cfg.batch_size), desc=f"hybrid {epoch + 1}/{cfg.epochs}",
                       disable=None if progress else True, leave=False)  # fmt: skip
            for s in bar:
                idx = order[s : s + cfg.batch_size]
                grads = self._gradients(weights, x[idx], y[idx])
                steps += 1
                if mem is None:
                    self._write_directly(weights, grads, gen)
                    weights = self._read_weights()
                    continue
                for i, g in enumerate(grads):
                    held[i] = self._accumulate(held[i], g, i, len(idx), gen)
                if steps % batches_per_transfer == 0:
                    held = self._transfer(held, gen)
                    weights = self._read_weights()
        rram_writes = sum(t.counters.cell_writes for t in self.tiles) - initial_writes
        devices = sum(t.state.writes.numel() for t in self.tiles)
        c = self._counts
        e_mem = mem.e_write_pj if mem is not None else 0.0
        self.stats = HybridStats(
            rram_writes=rram_writes,
            rram_writes_per_device_max=max(int(t.state.writes.max()) for t in self.tiles),
            rram_writes_per_device_mean=rram_writes / devices,
            memory_writes=c["memory_writes"],
            memory_overflow=c["memory_overflow"],
            rram_overflow=c["rram_overflow"],
            stuck_devices=sum(int(t.state.stuck.sum()) for t in self.tiles),
            transfers=c["transfers"],
            energy_pj={
                "rram_write": rram_writes * cfg.rram.e_write_pj,
                "memory_write": c["memory_writes"] * e_mem,
                **self._leakage(cfg.epochs * len(y) * cfg.sample_period_s),
            },
            wall_s=time.perf_counter() - start,
        )
        return self.stats

    def _leakage(self, t_s: float) -> dict[str, float]:
        """``{"memory_leakage": pJ}`` over ``t_s`` of training for a memory that leaks."""
        mem = self.memory
        if mem is None or mem.leakage_pw == 0:
            return {}
        return {"memory_leakage": mem.leakage_energy_pj(sum(lv.numel() for lv in self.levels), t_s)}

    def _initialise(self, generator: torch.Generator) -> None:
        """Program the initial weights: on RRAM levels (hybrid) or analog (direct)."""
        self.levels = None
        weights = init_weights(self.config.layers, generator)
        if self.memory is None:
            for tile, w in zip(self.tiles, weights, strict=True):
                tile.program(w, generator=generator)
            self.levels = []
            return
        levels = [self._to_levels(w / self._unit(i), generator) for i, w in enumerate(weights)]
        for i, lv in enumerate(levels):
            self._program_levels(i, lv, generator)
        self.levels = levels

    def _accumulate(self, held, grad: Tensor, i: int, samples: int, generator):
        """Add one mini-batch's update of layer ``i`` to its training memory."""
        cfg, mem = self.config, self.memory
        held = mem.elapse(held, samples * cfg.sample_period_s)
        u = -cfg.lr * grad / self._unit(i) * cfg.threshold
        u = rounded(u, cfg.update, generator) if mem.integer else u
        held, upd = mem.add(held, u, generator=generator)
        self._counts["memory_writes"] += upd.writes
        self._counts["memory_overflow"] += float(upd.overflow.abs().sum())
        return held

    def _transfer(self, held: list, generator) -> list:
        """Move every synapse whose |value| reached the threshold by whole RRAM levels."""
        cfg, mem = self.config, self.memory
        self._counts["transfers"] += 1
        out = []
        for i, h in enumerate(held):
            h, reads = mem.read_for_transfer(h)
            self._counts["memory_writes"] += reads
            carry = torch.trunc(mem.value(h) / cfg.threshold)
            if bool(carry.any()):
                self._move_levels(i, carry, generator)
                # The memory gives the whole carry back; what did not fit the RRAM's level
                # range is counted in rram_overflow.
                h, upd = mem.add(h, -carry * cfg.threshold, generator=generator)
                self._counts["memory_writes"] += upd.writes
            out.append(h)
        return out

    def _write_directly(self, weights: list[Tensor], grads: list[Tensor], generator) -> None:
        """Direct RRAM SGD: read each weight, add its update and program the result.

        Every weight with a non-zero update gets a RESET+SET of the device whose target moved
        (a fresh cycle-to-cycle draw); weights are kept within ±w_max, the excess counted.
        """
        for i, (w, g) in enumerate(zip(weights, grads, strict=True)):
            wanted = w - self.config.lr * g
            new = wanted.clamp(-self.w_max[i], self.w_max[i])
            self._counts["rram_overflow"] += float((wanted - new).abs().sum()) / self._unit(i)
            # Noise can put a read weight just past ±w_max; its targets are the window's edge.
            self._reprogram(i, w.clamp(-self.w_max[i], self.w_max[i]), new, generator)

    def _to_levels(self, w_levels: Tensor, generator) -> Tensor:
        """Initial weights (in RRAM levels) stochastically rounded into the level range."""
        lv = rounded(w_levels, "stochastic", generator)
        return lv.clamp(-self.config.levels, self.config.levels).to(torch.int64)

    def _move_levels(self, i: int, step: Tensor, generator) -> None:
        """Add ``step`` to layer ``i``'s levels within range and program the changed devices."""
        cfg, old = self.config, self.levels[i]
        wanted = old + step.to(torch.int64)
        new = wanted.clamp(-cfg.levels, cfg.levels)
        self._program_levels(i, new, generator)
        self.levels[i] = new
        self._counts["rram_overflow"] += float((wanted - new).abs().sum())

    def _gradients(self, weights: list[Tensor], x: Tensor, y: Tensor) -> list[Tensor]:
        params = [w.detach().clone().requires_grad_(True) for w in weights]
        logits = network.forward(params, x, "relu")
        loss = F.cross_entropy(logits, y)
        return list(torch.autograd.grad(loss, params))

    # --- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Class scores [N, classes] through the tiles' MVMs (read noise, DAC/ADC)."""
        if self.levels is None:
            raise ConfigError("HybridTrainer holds no weights yet: call fit(x, y) first")
        mvms = [partial(tile.mvm, generator=generator) for tile in self.tiles]
        return network.run_layers(mvms, x.reshape(len(x), -1).float(), "relu")

    def accuracy(self, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None) -> float:
        """Test accuracy through the tiles."""
        return accuracy(torch.softmax(self.predict(x, generator=generator), dim=-1), y)


def software_sgd(
    config: HybridConfig, x: Tensor, y: Tensor, *, generator: torch.Generator
) -> list[Tensor]:
    """The float reference: the same MLP, initialisation, batches, learning rate and epochs."""
    x, y = network.check_data(x.reshape(len(x), -1), y, config.layers)
    weights = [w.requires_grad_(True) for w in init_weights(config.layers, generator)]
    for _ in range(config.epochs):
        order = torch.randperm(len(y), generator=generator, device=generator.device)
        for s in range(0, len(y), config.batch_size):
            idx = order[s : s + config.batch_size]
            loss = F.cross_entropy(network.forward(weights, x[idx], "relu"), y[idx])
            grads = torch.autograd.grad(loss, weights)
            with torch.no_grad():
                for w, g in zip(weights, grads, strict=True):
                    w -= config.lr * g
    return [w.detach() for w in weights]
