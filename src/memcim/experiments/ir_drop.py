"""Experiment ``ir-drop``: what wire resistance costs a converted MNIST MLP, and what
pre-distortion recovers.

An MLP 784-256-128-10 is trained in software (the same model and schedule as ``hwa-drift``),
converted with :func:`memcim.nn.convert` onto tiles of at most T × T cells of the chosen device
(differential pairs, 8-bit DAC/ADC, programming and read noise), and evaluated on the MNIST test
set for every word-/bit-line segment resistance r_wire and tile size T:

* ``none``: the array read through its wires (``TileConfig.ir_drop``, exact nodal solve by
  default), no compensation;
* ``predistortion``: each plane programmed with conductances chosen so that the *wired* array's
  transfer matrix matches the intended one (``TileConfig.ir_drop_compensation``), computed from
  the same circuit model;
* ``column_scaling``: a digital gain per bit line undoing each column's average attenuation.

r_wire = 0 is the ideal-wire reference of each tile size (same programming noise). Metrics:
``accuracy_software``, ``accuracy_t<T>_r<r>_<none|predistortion>`` (r in Ω, e.g. ``r2.5``), and
``loss_points_t<T>_r<r>_<...>`` = accuracy at r = 0 minus accuracy at r (percentage points).
Figure ``accuracy_vs_r_wire.png``: accuracy vs r_wire per tile size, with and without
compensation. ``partial_results.json`` is rewritten after every tile size, so a stopped run
keeps what it finished (``results.json`` is written by the runner at the end).

Randomness: training, programming and read noise draw from generators seeded from ``seed`` and
the stage's name; every (T, r, compensation) point is programmed from the same seed.

Command line: ``memcim run ir-drop --out runs/ir [--set tile_sizes=64,128 ...] [--seed 0]``.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from memcim._errors import is_int, is_real, require
from memcim.crossbar import TileConfig
from memcim.crossbar.circuit import CrossbarCircuit
from memcim.data import load_mnist
from memcim.devices import PCM, FilamentaryRRAM
from memcim.experiments.hwa_drift import build_model
from memcim.experiments.registry import Result, register, stage_generator, stage_seed
from memcim.experiments.runner import write_json_atomic
from memcim.nn import CIMConfig, convert, program
from memcim.nn import seed as seed_layers
from memcim.training import accuracy, train

EXPERIMENT = "ir-drop"
DEVICES = {"rram": FilamentaryRRAM, "pcm": PCM}
COMPENSATIONS = ("none", "predistortion", "column_scaling")


@dataclass(frozen=True, kw_only=True)
class IrDropConfig:
    """What the ``ir-drop`` experiment trains and evaluates.

    Attributes:
        epochs, lr, batch_size: software training of the MLP (Adam, cosine decay).
        device: ``"rram"`` (:class:`~memcim.devices.FilamentaryRRAM`, 5–120 µS, i.e.
            8–200 kΩ cells) or ``"pcm"``.
        tile_sizes: largest tile T (T word lines × T output columns per plane).
        r_wire_ohm: word- and bit-line segment resistances between adjacent cells (Ω); 0 is
            the ideal-wire reference and is always evaluated. ~1–3 Ω per cell pitch is typical
            of Cu lines at advanced nodes (illustrative, not a fitted value).
        r_driver_ohm, r_on_ohm: row driver resistance and 1T1R access-transistor on-resistance
            (Ω), as :class:`~memcim.crossbar.circuit.CrossbarCircuit`.
        ir_drop: ``"exact"`` (nodal solve) or ``"first_order"`` (the fast approximation).
        compensations: evaluated variants, from ``("none", "predistortion",
            "column_scaling")`` (``TileConfig.ir_drop_compensation``).
        train_subset, test_subset: use this many images (``None``: all).
        data_dir: folder of ``mnist.npz``; ``None``: the default.
    """

    epochs: int = 5
    lr: float = 1e-3
    batch_size: int = 128
    device: Literal["rram", "pcm"] = "rram"
    tile_sizes: tuple[int, ...] = (64, 128, 256)
    r_wire_ohm: tuple[float, ...] = (1.0, 2.5, 5.0)
    r_driver_ohm: float = 0.0
    r_on_ohm: float = 0.0
    ir_drop: Literal["exact", "first_order"] = "exact"
    compensations: tuple[str, ...] = COMPENSATIONS
    train_subset: int | None = None
    test_subset: int | None = 2000
    data_dir: str | None = None

    def __post_init__(self) -> None:
        name = "IrDropConfig"
        for field in ("epochs", "batch_size"):
            value = getattr(self, field)
            require(is_int(value) and value >= 1, f"{name}.{field}", value, "must be an int >= 1")
        require(is_real(self.lr) and self.lr > 0, f"{name}.lr", self.lr, "must be > 0")
        require(self.device in DEVICES, f"{name}.device", self.device,
                f"must be one of {tuple(DEVICES)}")  # fmt: skip
        require(self.ir_drop in ("exact", "first_order"), f"{name}.ir_drop", self.ir_drop,
                "must be 'exact' or 'first_order'")  # fmt: skip
        sizes = _as_tuple(self.tile_sizes)
        require(len(sizes) > 0 and all(is_int(t) and t >= 2 for t in sizes),
                f"{name}.tile_sizes", self.tile_sizes, "must be ints >= 2")  # fmt: skip
        object.__setattr__(self, "tile_sizes", sizes)
        rs = _as_tuple(self.r_wire_ohm)
        require(len(rs) > 0 and all(is_real(r) and r > 0 for r in rs), f"{name}.r_wire_ohm",
                self.r_wire_ohm, "must be resistances > 0 Ω (0 is always included)")  # fmt: skip
        object.__setattr__(self, "r_wire_ohm", tuple(float(r) for r in rs))
        for field in ("r_driver_ohm", "r_on_ohm"):
            value = getattr(self, field)
            require(is_real(value) and value >= 0, f"{name}.{field}", value, "must be >= 0 Ω")
        comps = _as_tuple(self.compensations)
        require(len(comps) > 0 and all(c in COMPENSATIONS for c in comps),
                f"{name}.compensations", self.compensations,
                f"must be a non-empty subset of {COMPENSATIONS}")  # fmt: skip
        object.__setattr__(self, "compensations", comps)
        for field in ("train_subset", "test_subset"):
            value = getattr(self, field)
            require(value is None or (is_int(value) and value >= 1), f"{name}.{field}", value,
                    "must be None (all) or an int >= 1")  # fmt: skip

    def tile(self, r_wire_ohm: float, compensation: str) -> TileConfig:
        """The tile of one point: device defaults, wires of ``r_wire_ohm``."""
        circuit = CrossbarCircuit(
            r_wire_row_ohm=r_wire_ohm,
            r_wire_col_ohm=r_wire_ohm,
            r_driver_ohm=self.r_driver_ohm,
            r_on_ohm=self.r_on_ohm,
        )
        if r_wire_ohm == 0:
            return TileConfig(device=DEVICES[self.device]())
        return TileConfig(device=DEVICES[self.device](), ir_drop=self.ir_drop, circuit=circuit,
                          ir_drop_compensation=compensation)  # fmt: skip


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


def r_label(r_ohm: float) -> str:
    """Metric fragment of a resistance: ``r0``, ``r0.5``, ``r2.5``."""
    return f"r{r_ohm:g}"


def analog_accuracy(model: nn.Module, tile: TileConfig, size: int, x: Tensor, y: Tensor,
                    seed: int) -> float:  # fmt: skip
    """Test accuracy of ``model`` converted onto tiles of at most size × size cells."""
    cim = convert(copy.deepcopy(model), CIMConfig(tile=tile, max_rows=size, max_cols=size))
    cim.eval()
    seed_layers(cim, seed)
    program(cim)
    with torch.no_grad():
        return accuracy(cim, x, y)


def plot_accuracy_vs_r(metrics: dict[str, float], config: IrDropConfig, path: Path) -> None:
    """Accuracy vs r_wire, one colour per tile size; dashed: pre-distortion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    rs = (0.0, *config.r_wire_ohm)
    for size, color in zip(config.tile_sizes, plt.rcParams["axes.prop_cycle"].by_key()["color"],
                           strict=False):  # fmt: skip
        for comp, style in (("none", "-"), ("predistortion", "--"), ("column_scaling", ":")):
            keys = [f"accuracy_t{size}_{r_label(r)}_{comp if r else 'none'}" for r in rs]
            if comp not in config.compensations or not all(k in metrics for k in keys):
                continue
            label = f"{size}×{size}" + ("" if comp == "none" else f", {comp}")
            ax.plot(rs, [100 * metrics[k] for k in keys], style, marker="o", color=color,
                    label=label)  # fmt: skip
    ax.axhline(100 * metrics["accuracy_software"], color="black", lw=1, ls=":",
               label="software")  # fmt: skip
    ax.set_xlabel("wire segment resistance r_wire (Ω)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_title(f"MLP on {config.device} tiles ({config.ir_drop} circuit solve)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_DESCRIPTION = "MNIST MLP accuracy vs wire resistance and tile size, with pre-distortion"


@register(EXPERIMENT, IrDropConfig, _DESCRIPTION)
def run(config: IrDropConfig, *, seed: int, out_dir: str | os.PathLike[str],
        progress: bool = True) -> Result:  # fmt: skip
    """Train the MLP, then evaluate it on wired tiles for every (T, r_wire, compensation)."""
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = load_mnist(config.data_dir)
    x_train, x_test = x_train.float(), x_test.float()
    if config.train_subset is not None:
        pick = torch.randperm(len(y_train), generator=stage_generator(seed, "train_subset"))
        x_train, y_train = (
            x_train[pick[: config.train_subset]],
            y_train[pick[: config.train_subset]],
        )
    if config.test_subset is not None:
        x_test, y_test = x_test[: config.test_subset], y_test[: config.test_subset]
    model = build_model("mlp", stage_generator(seed, "init"))
    train(model, x_train, y_train.long(), epochs=config.epochs, lr=config.lr,
          batch_size=config.batch_size, generator=stage_generator(seed, "train"), desc="software",
          progress=progress)  # fmt: skip
    with torch.no_grad():
        metrics: dict[str, float] = {"accuracy_software": accuracy(model, x_test, y_test)}
    cim_seed = stage_seed(seed, "program") % 2**31
    timings: dict[str, float] = {}
    for size in config.tile_sizes:
        t0 = time.perf_counter()
        ideal = analog_accuracy(model, config.tile(0.0, "none"), size, x_test, y_test, cim_seed)
        metrics[f"accuracy_t{size}_r0_none"] = ideal
        for r in config.r_wire_ohm:
            for comp in config.compensations:
                key = f"t{size}_{r_label(r)}_{comp}"
                acc = analog_accuracy(model, config.tile(r, comp), size, x_test, y_test,
                                      cim_seed)  # fmt: skip
                metrics[f"accuracy_{key}"] = acc
                metrics[f"loss_points_{key}"] = 100 * (ideal - acc)
                if progress:
                    print(f"[{EXPERIMENT}] T={size} r_wire={r:g} Ω {comp}: {acc:.2%} "
                          f"(ideal wires {ideal:.2%}, {time.perf_counter() - start:.0f} s)",
                          flush=True)  # fmt: skip
        timings[f"t{size}"] = time.perf_counter() - t0
        write_json_atomic(out / "partial_results.json", {"metrics": metrics, "timings_s": timings})
    plot_accuracy_vs_r(metrics, config, out / "accuracy_vs_r_wire.png")
    return Result(metrics=metrics, artifacts=["accuracy_vs_r_wire.png"],
                  extra={"timings_s": timings, "test_images": len(y_test)})  # fmt: skip
