"""Experiment ``hybrid-mnist``: on-chip learning with hybrid synapses ([12]–[15]).

A 3-layer MLP (784-128-64-10) is trained on chip (:mod:`memcim.learning.hybrid`): its weights
are differential pairs of multi-level RRAM (4 bits per device, 31 levels per weight) and every
mini-batch's update accumulates in a training memory, transferred to the RRAM every
``transfer_every`` samples, re-programming only the devices whose level changed. Compared on
MNIST (and Fashion-MNIST, ``datasets``):

* float SGD in software (same model, initialisation, batches, learning rate, epochs);
* direct on-chip SGD on RRAM: every update read, added and programmed (write noise on every
  write), and the same with low-endurance devices (``low_endurance``) that wear out;
* FeCAP/RRAM (the main hybrid) at every ``transfer_every`` in ``k_values``, SRAM/RRAM (a
  digital accumulator, i.e. mixed-precision training) and gain-cell/RRAM; gain cells over
  ``retention_s`` (their charge decays between transfers).

Accuracy is read through the tiles (read noise, 8-bit DAC/ADC). Energy counts 1 pJ per RRAM
write and 100 fJ per FeCAP write ([13, 14]), Horowitz's SRAM word write and the gain cell's
write energy. ``partial_results.json`` is rewritten after every variant.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from memcim._errors import is_int, is_real, require
from memcim.data import load_fashion_mnist, load_mnist
from memcim.devices import FilamentaryRRAM, GainCell
from memcim.experiments.registry import Result, register, stage_generator
from memcim.experiments.runner import write_json_atomic
from memcim.learning import network
from memcim.learning.hybrid import HybridConfig, HybridTrainer, software_sgd
from memcim.metrics import accuracy

LOADERS = {"mnist": load_mnist, "fashion_mnist": load_fashion_mnist}


@dataclass(frozen=True, kw_only=True)
class HybridMnistConfig:
    """Attributes:
    datasets: ``"mnist"`` and/or ``"fashion_mnist"``; the first gets every variant, the others
        software, direct and the main FeCAP/RRAM run.
    epochs, lr, batch_size: the training schedule of every variant.
    transfer_every: samples between transfers of the main hybrid runs.
    k_values: further transfer periods of the FeCAP/RRAM hybrid (accuracy vs k).
    retention_s: gain-cell retention times τ to run (s); the main gain-cell run uses the
        device's default τ = 1 s.
    sample_period_s: time per training sample (s), over which gain cells decay.
    low_endurance: endurance (cycles) of the worn-out direct-RRAM variant; 0 skips it.
    train_images: training images used (<= 60 000).
    data_dir: where the .npz files are (default: the shared data folder).
    """

    datasets: tuple[str, ...] = ("mnist", "fashion_mnist")
    epochs: int = 3
    lr: float = 0.05
    batch_size: int = 32
    transfer_every: int = 512
    k_values: tuple[int, ...] = (128, 2048, 8192)
    retention_s: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
    sample_period_s: float = 1e-4
    low_endurance: int = 1000
    train_images: int = 60000
    data_dir: str | None = None

    def __post_init__(self) -> None:
        name = "HybridMnistConfig"
        require(len(self.datasets) >= 1 and all(d in LOADERS for d in self.datasets),
                f"{name}.datasets", self.datasets, f"must be in {sorted(LOADERS)}")  # fmt: skip
        for f in ("epochs", "batch_size", "transfer_every", "train_images"):
            value = getattr(self, f)
            require(is_int(value) and value >= 1, f"{name}.{f}", value, "must be an int >= 1")
        require(is_int(self.low_endurance) and self.low_endurance >= 0, f"{name}.low_endurance",
                self.low_endurance, "must be an int >= 0 (0: skip)")  # fmt: skip
        ks = self.k_values
        periods = [("transfer_every", self.transfer_every), *(("k_values", k) for k in ks)]
        for f, k in periods:
            require(is_int(k) and k >= 1 and k % self.batch_size == 0, f"{name}.{f}", k,
                    f"must be a multiple of batch_size {self.batch_size}")  # fmt: skip
        for t in self.retention_s:
            require(is_real(t) and t > 0, f"{name}.retention_s", t, "must be > 0 s")
        self.hybrid("fecap")  # validates the shared fields

    def hybrid(self, memory: str, **changes) -> HybridConfig:
        base = HybridConfig(memory=memory, epochs=self.epochs, lr=self.lr,
                            batch_size=self.batch_size, transfer_every=self.transfer_every,
                            sample_period_s=self.sample_period_s)  # fmt: skip
        return replace(base, **changes)


def plot_tradeoff(points: list[tuple[str, float, float]], software: float,
                  retention: list[tuple[float, float]], path: Path) -> None:  # fmt: skip
    """Accuracy vs RRAM writes per device (left); gain-cell accuracy vs retention (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.0))
    for label, writes, acc in points:
        marker = "s" if label.startswith("direct") else "o"
        ax1.scatter(writes, 100 * acc, marker=marker, label=label, zorder=3)
    ax1.axhline(100 * software, color="k", ls="--", lw=0.8, label="software SGD")
    ax1.axhline(100 * software - 1.5, color="tab:red", ls=":", lw=0.8, label="software − 1.5")
    ax1.set_xscale("log")
    ax1.set_xlabel("RRAM writes per device during training (mean)")
    ax1.set_ylabel("MNIST test accuracy (%)")
    ax1.legend(fontsize=7, loc="lower left", ncol=2)
    ax1.grid(alpha=0.3, which="both")
    if retention:
        taus, accs = zip(*retention, strict=True)
        ax2.plot(taus, [100 * a for a in accs], "o-")
        ax2.axhline(100 * software, color="k", ls="--", lw=0.8)
    ax2.set_xscale("log")
    ax2.set_xlabel("gain-cell retention τ (s)")
    ax2.set_ylabel("test accuracy (%)")
    ax2.set_title("gain-cell/RRAM hybrid", fontsize=9)
    ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_DESCRIPTION = "on-chip MNIST training with FeCAP/SRAM/gain-cell + RRAM hybrid synapses vs direct"


@register("hybrid-mnist", HybridMnistConfig, _DESCRIPTION)
def run(config: HybridMnistConfig, *, seed: int, out_dir: str | os.PathLike[str],
        progress: bool = True) -> Result:  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m: dict[str, float] = {}
    timings: dict[str, float] = {}
    points: list[tuple[str, float, float]] = []
    retention: list[tuple[float, float]] = []

    def log(text: str) -> None:
        if progress:
            print(f"[hybrid-mnist] {text}", flush=True)

    for d, dataset in enumerate(config.datasets):
        data = LOADERS[dataset](config.data_dir)
        n = min(config.train_images, len(data.y_train))
        x, y = data.x_train[:n].reshape(n, -1), data.y_train[:n]
        xt, yt = data.x_test.reshape(len(data.y_test), -1), data.y_test
        tag = "" if d == 0 else f"_{dataset}"

        def train(name: str, cfg: HybridConfig, tag=tag, dataset=dataset, x=x, y=y, xt=xt,
                  yt=yt) -> None:  # fmt: skip
            start = time.perf_counter()
            trainer = HybridTrainer(cfg)
            stats = trainer.fit(x, y, generator=stage_generator(seed, dataset, "train"),
                                progress=progress)  # fmt: skip
            acc = trainer.accuracy(xt, yt, generator=stage_generator(seed, dataset, "read"))
            key = f"{name}{tag}"
            m[f"accuracy_{key}"] = acc
            m[f"rram_writes_{key}"] = stats.rram_writes
            m[f"rram_writes_per_device_mean_{key}"] = stats.rram_writes_per_device_mean
            m[f"rram_writes_per_device_max_{key}"] = stats.rram_writes_per_device_max
            m[f"memory_writes_{key}"] = stats.memory_writes
            m[f"memory_overflow_{key}"] = stats.memory_overflow
            m[f"stuck_devices_{key}"] = stats.stuck_devices
            m[f"energy_uj_{key}"] = stats.energy_total_pj * 1e-6
            timings[key] = time.perf_counter() - start
            if not tag and "_tau" not in name:  # retention runs have their own panel
                label = name.replace("hybrid_", "").replace("_k", ", k = ")
                if label in ("feram", "sram", "gain_cell"):
                    label += f", k = {cfg.transfer_every}"
                points.append((label, stats.rram_writes_per_device_mean, acc))
            log(f"{key}: {100 * acc:.2f} %, RRAM writes {stats.rram_writes} (max "
                f"{stats.rram_writes_per_device_max}/device), training-memory writes "
                f"{stats.memory_writes}, {stats.energy_total_pj * 1e-6:.2f} µJ")  # fmt: skip
            write_json_atomic(out / "partial_results.json", {"metrics": m, "timings_s": timings})

        start = time.perf_counter()
        weights = software_sgd(config.hybrid("direct"), x, y,
                               generator=stage_generator(seed, dataset, "train"))  # fmt: skip
        probs = torch.softmax(network.forward(weights, xt, "relu"), dim=-1)
        m[f"accuracy_software{tag}"] = accuracy(probs, yt)
        timings[f"software{tag}"] = time.perf_counter() - start
        log(f"software{tag}: {100 * m[f'accuracy_software{tag}']:.2f} %")
        train("direct_rram", config.hybrid("direct"))
        train("hybrid_feram", config.hybrid("fecap"))
        m[f"rram_write_ratio_direct_to_feram{tag}"] = m[f"rram_writes_direct_rram{tag}"] / max(
            1, m[f"rram_writes_hybrid_feram{tag}"]
        )
        m[f"accuracy_gap_feram_to_software{tag}"] = (
            m[f"accuracy_software{tag}"] - m[f"accuracy_hybrid_feram{tag}"]
        )
        if tag:
            continue
        for k in config.k_values:
            train(f"hybrid_feram_k{k}", config.hybrid("fecap", transfer_every=k))
        train("hybrid_sram", config.hybrid("sram"))
        train("hybrid_gain_cell", config.hybrid("gain_cell"))
        default_tau = GainCell().retention_s
        for tau in config.retention_s:
            if tau == default_tau:  # the run above
                m[f"accuracy_hybrid_gain_cell_tau{tau:g}"] = m["accuracy_hybrid_gain_cell"]
            else:
                train(f"hybrid_gain_cell_tau{tau:g}",
                      config.hybrid("gain_cell", gain_cell=GainCell(retention_s=tau)))  # fmt: skip
            retention.append((tau, m[f"accuracy_hybrid_gain_cell_tau{tau:g}"]))
        if config.low_endurance:
            worn = FilamentaryRRAM(endurance_cycles=config.low_endurance)
            train("direct_rram_low_endurance", config.hybrid("direct", rram=worn))
            devices = 2 * network.parameter_count(HybridConfig().layers)
            m["stuck_fraction_direct_rram_low_endurance"] = (
                m["stuck_devices_direct_rram_low_endurance"] / devices
            )

    m["accuracy_hybrid_feram_k" + str(config.transfer_every)] = m["accuracy_hybrid_feram"]
    plot_tradeoff(points, m["accuracy_software"], retention, out / "hybrid_mnist.png")
    rows = [
        [name, f"{100 * acc:.2f}", f"{writes:.3g}"]
        for name, writes, acc in [("software SGD", 0.0, m["accuracy_software"]), *points]
    ]
    header = ["training", "MNIST accuracy (%)", "RRAM writes per device (mean)"]
    return Result(metrics=m, artifacts=["hybrid_mnist.png"],
                  extra={"summary_table": {"header": header, "rows": rows},
                         "timings_s": timings})  # fmt: skip
