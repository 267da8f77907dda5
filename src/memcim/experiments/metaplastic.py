"""Experiments ``metaplastic-mnist-fmnist`` and ``metaplastic-pmnist``: metaplastic binarized
networks against catastrophic forgetting (Laborieux et al. [22]), in software and with their
quantised weights on multi-level RRAM (D'Agostino et al. [21]).

Every variant trains the same network on the tasks in order (a fresh optimiser per task, the
BatchNorm affine state kept per task) and fills the GEM accuracy matrix R[i, j] (task j after
task i), with ACC and BWT from :mod:`memcim.metrics`:

* ``metaplastic``: binarized MLP, :class:`~memcim.learning.metaplastic.AdamMeta` with ``meta``;
* ``non_metaplastic``: the same with m = 0 (plain Adam);
* ``ewc``: m = 0 plus elastic weight consolidation (λ = ``ewc_strength``);
* ``float``: a float network of the same widths, fine-tuned task after task;
* ``memristor``: the metaplastic network whose quantised weights (``memristor_levels``) are
  differential multi-level RRAM pairs, re-programmed after every step where a level changed;
  tested through the tiles (read noise, 8-bit DAC/ADC). Its writes per device are reported.

Reduced defaults (2 cores, <= 15 min): width 512, 3 epochs per task, and a learning rate of
0.02 instead of the paper's 0.005, so that the hidden weights grow in 3 epochs about as far as
in the paper's 50 (m acts on |W_h|); the paper's setting is ``--set lr=0.005 --set epochs=50``
(MNIST/FMNIST) or ``--set hidden=4096 --set epochs=40 --set lr=0.005`` (pMNIST).
A figure shows every task's test accuracy after every epoch, one panel per variant.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from memcim._errors import is_int, is_real, require
from memcim.data import load_fashion_mnist, load_mnist, permuted_tasks
from memcim.devices import FilamentaryRRAM
from memcim.experiments.registry import Result, register, stage_generator
from memcim.experiments.runner import write_json_atomic
from memcim.learning.metaplastic import (
    EWC,
    AdamMeta,
    FloatMLP,
    MemristorMetaplastic,
    MetaplasticMLP,
    SequenceResult,
    Task,
    run_sequence,
)
from memcim.learning.metaplastic.memristor import default_tile_config
from memcim.metrics import acc, bwt

VARIANTS = ("metaplastic", "non_metaplastic", "ewc", "float", "memristor")


@dataclass(frozen=True, kw_only=True)
class MetaplasticConfig:
    """Attributes:
    hidden, layers: width and number of hidden layers.
    epochs, lr, batch_size, weight_decay: training of every task (Adam-based).
    meta: m of the metaplastic variants.
    ewc_strength: λ of the EWC baseline (Laborieux et al.: 5000).
    memristor_levels: quantisation levels of the memristor variant (2 to 16).
    verify_tolerance_us: program-and-verify tolerance of the memristor variant's RRAM (µS);
        ``None`` programs with one pulse (no verify).
    variants: which of ``metaplastic``, ``non_metaplastic``, ``ewc``, ``float``,
        ``memristor`` to run.
    train_images: training images per task (<= 60 000).
    test_batch: images per test batch (batch statistics).
    data_dir: where the .npz files are (default: the shared data folder).
    """

    hidden: int = 512
    layers: int = 2
    epochs: int = 3
    lr: float = 0.02
    batch_size: int = 100
    weight_decay: float = 1e-7
    meta: float = 1.5
    ewc_strength: float = 5000.0
    memristor_levels: int = 2
    verify_tolerance_us: float | None = None
    variants: tuple[str, ...] = VARIANTS
    train_images: int = 60000
    test_batch: int = 100
    data_dir: str | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        for f in ("hidden", "layers", "epochs", "batch_size", "train_images", "test_batch"):
            require(is_int(getattr(self, f)) and getattr(self, f) >= 1, f"{name}.{f}",
                    getattr(self, f), "an int >= 1")  # fmt: skip
        require(self.batch_size >= 2, f"{name}.batch_size", self.batch_size,
                ">= 2 (batch statistics)")  # fmt: skip
        for f in ("lr", "weight_decay", "meta", "ewc_strength"):
            value = getattr(self, f)
            require(is_real(value) and value >= 0, f"{name}.{f}", value, "a finite number >= 0")
        require(self.lr > 0, f"{name}.lr", self.lr, "> 0")
        levels = self.memristor_levels
        require(is_int(levels) and 2 <= levels <= 16, f"{name}.memristor_levels", levels,
                "an int from 2 to 16")  # fmt: skip
        if self.verify_tolerance_us is not None:
            require(is_real(self.verify_tolerance_us) and self.verify_tolerance_us > 0,
                    f"{name}.verify_tolerance_us", self.verify_tolerance_us,
                    "a finite number > 0 µS, or None")  # fmt: skip
        require(len(self.variants) >= 1 and all(v in VARIANTS for v in self.variants),
                f"{name}.variants", self.variants, f"each in {VARIANTS}")  # fmt: skip

    def sizes(self, inputs: int = 784, outputs: int = 10) -> tuple[int, ...]:
        return (inputs, *([self.hidden] * self.layers), outputs)


@dataclass(frozen=True, kw_only=True)
class MnistFmnistConfig(MetaplasticConfig):
    """MNIST then Fashion-MNIST (m = 1.5, as Laborieux et al.'s Fig. 1)."""


@dataclass(frozen=True, kw_only=True)
class PmnistConfig(MetaplasticConfig):
    """Permuted MNIST. Attributes: tasks: number of permutations (the first is MNIST)."""

    meta: float = 1.35
    tasks: int = 6
    epochs: int = 2
    test_batch: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        require(is_int(self.tasks) and self.tasks >= 2, "PmnistConfig.tasks", self.tasks,
                "an int >= 2")  # fmt: skip


def _variant(config: MetaplasticConfig, variant: str, tasks: list[Task], seed: int,
             progress: bool) -> tuple[SequenceResult, dict[str, float]]:  # fmt: skip
    """Train one variant on ``tasks``; returns its result and extra metrics."""
    init = stage_generator(seed, variant, "init")
    meta = config.meta if variant in ("metaplastic", "memristor") else 0.0
    levels = config.memristor_levels if variant == "memristor" else 2
    if variant == "float":
        model = FloatMLP(config.sizes(), generator=init)
    else:
        model = MetaplasticMLP(config.sizes(), levels=levels, generator=init)

    def optimizer(m):
        return AdamMeta(m.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                        meta=meta, levels=levels)  # fmt: skip

    extra: dict[str, float] = {}
    chip, after_step = None, None
    if variant == "memristor":
        tiles = default_tile_config()
        if config.verify_tolerance_us is not None:
            device = FilamentaryRRAM(verify_tolerance_us=config.verify_tolerance_us)
            tiles = replace(tiles, device=device)
        chip = MemristorMetaplastic(model, tiles)
        chip.program(generator=stage_generator(seed, variant, "devices"))
        after_step = chip.sync
    result = run_sequence(
        model, tasks, optimizer, epochs=config.epochs, batch_size=config.batch_size,
        generator=stage_generator(seed, "batches"), test_batch=config.test_batch,
        ewc=EWC(config.ewc_strength) if variant == "ewc" else None, after_step=after_step,
        forward=chip.forward if chip is not None else None, progress=progress,
    )  # fmt: skip
    if chip is not None:
        writes = chip.writes_per_device().float()
        e_write = chip.matrices[0].tiles[0][0].device.e_write_pj
        extra = {"writes_per_device_mean": float(writes.mean()),
                 "writes_per_device_max": float(writes.max()),
                 "write_energy_uj": float(writes.sum()) * e_write * 1e-6}  # fmt: skip
    return result, extra


def plot_curves(curves: dict[str, list[tuple[int, dict[int, float]]]], labels: list[str],
                epochs: int, path: Path) -> None:  # fmt: skip
    """Each task's test accuracy after every epoch, one panel per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 3.2), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, (variant, points) in zip(axes[0], curves.items(), strict=True):
        for task, label in enumerate(labels):
            xs = [e for e, s in points if task in s]
            ax.plot(xs, [100 * s[task] for e, s in points if task in s], label=label)
        for boundary in range(epochs, points[-1][0], epochs):
            ax.axvline(boundary + 0.5, color="grey", lw=0.6, ls=":")
        ax.set_title(variant, fontsize=9)
        ax.set_xlabel("epochs")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _run(name: str, config: MetaplasticConfig, tasks: list[Task], labels: list[str], seed: int,
         out_dir, progress: bool) -> Result:  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m: dict[str, float] = {}
    curves, matrices = {}, {}
    for variant in config.variants:
        result, extra = _variant(config, variant, tasks, seed, progress)
        curves[variant], matrices[variant] = result.curves, result.matrix.tolist()
        r = result.matrix
        m[f"acc_{variant}"], m[f"bwt_{variant}"] = acc(r), bwt(r)
        for j, label in enumerate(labels):
            m[f"final_accuracy_{label}_{variant}"] = float(r[-1, j])
        m[f"first_task_after_training_{variant}"] = float(r[0, 0])
        m.update({f"{k}_{variant}": v for k, v in extra.items()})
        if progress:
            print(f"[{name}] {variant}: final {[round(100 * float(v), 2) for v in r[-1]]} %")
        write_json_atomic(out / "partial_results.json", {"metrics": m, "matrices": matrices})
    if {"metaplastic", "memristor"} <= set(config.variants):
        for label in labels:
            m[f"memristor_gap_{label}"] = (m[f"final_accuracy_{label}_metaplastic"]
                                           - m[f"final_accuracy_{label}_memristor"])  # fmt: skip
    figure = f"{name}_accuracy.png"
    plot_curves(curves, labels, config.epochs, out / figure)
    rows = [
        [
            v,
            *(f"{100 * m[f'final_accuracy_{lab}_{v}']:.2f}" for lab in labels),
            f"{100 * m[f'acc_{v}']:.2f}",
            f"{100 * m[f'bwt_{v}']:.2f}",
        ]
        for v in config.variants
    ]
    header = ["variant", *(f"{lab} after the last task (%)" for lab in labels), "ACC (%)",
              "BWT (points)"]  # fmt: skip
    return Result(metrics=m, artifacts=[figure],
                  extra={"accuracy_matrices": matrices,
                         "summary_table": {"header": header, "rows": rows}})  # fmt: skip


def _flat(data, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return data.x_train[:n].reshape(min(n, len(data.y_train)), -1), data.y_train[:n]


@register("metaplastic-mnist-fmnist", MnistFmnistConfig,
          "metaplastic binarized network: MNIST then Fashion-MNIST, software and RRAM")  # fmt: skip
def run_mnist_fmnist(config: MnistFmnistConfig, *, seed: int, out_dir: str | os.PathLike[str],
                     progress: bool = True) -> Result:  # fmt: skip
    tasks = []
    for loader in (load_mnist, load_fashion_mnist):
        data = loader(config.data_dir)
        x, y = _flat(data, config.train_images)
        tasks.append(Task(x, y, data.x_test.reshape(len(data.y_test), -1), data.y_test))
    return _run("metaplastic-mnist-fmnist", config, tasks, ["mnist", "fmnist"], seed, out_dir,
                progress)  # fmt: skip


@register("metaplastic-pmnist", PmnistConfig,
          "metaplastic binarized network on permuted MNIST, software and RRAM")  # fmt: skip
def run_pmnist(config: PmnistConfig, *, seed: int, out_dir: str | os.PathLike[str],
               progress: bool = True) -> Result:  # fmt: skip
    data = load_mnist(config.data_dir)
    x, y = _flat(data, config.train_images)
    xt = data.x_test.reshape(len(data.y_test), -1)
    perms = permuted_tasks(x, config.tasks, generator=stage_generator(seed, "permutations"))
    tasks = [Task(perms.apply(x, t), y, perms.apply(xt, t), data.y_test)
             for t in range(config.tasks)]  # fmt: skip
    labels = [f"task{t + 1}" for t in range(config.tasks)]
    return _run("metaplastic-pmnist", config, tasks, labels, seed, out_dir, progress)
