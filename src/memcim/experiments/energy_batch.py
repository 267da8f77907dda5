"""Experiment ``energy-batch``: energy per inference vs batch size, digital vs CIM.

An MNIST MLP (784-256-128-10) and a small CNN are trained briefly, converted to RRAM tiles
(``memcim.nn.convert``, 8-bit DAC/ADC, tiles of at most 256 × 256) and profiled on test images:
the CIM energy per inference comes from the tiles' counters and does not depend on the batch
(the weights stay in the array). The same models on digital processors
(:data:`memcim.energy.PROCESSORS`) fetch their weights once per batch, so their energy per
inference falls as 1/B toward the cost of the arithmetic and activations. The crossover batch is
the smallest B at which the digital processor is no more expensive than CIM:
B* = E_weights(B=1) / (E_CIM − E_compute − E_activations), when E_CIM exceeds the digital floor;
otherwise the processor never catches up.

Also reported: the TOPS/W of one 256 × 256 RRAM tile with 8-bit converters (weights
N(0, 1/256), inputs U[0, 1], as ``mvm-error``), the figure docs/energy/tops-per-watt.md
compares with NeuroSim and the STT-MRAM macro [11].
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch

from memcim._errors import require
from memcim.crossbar import ConverterConfig, Tile, TileConfig
from memcim.data import load_mnist
from memcim.devices import PCM, FilamentaryRRAM
from memcim.energy import PROCESSORS, CIMEnergyModel, EnergyReport, profile, tile_cost
from memcim.experiments.hwa_drift import build_model
from memcim.experiments.registry import Result, register, stage_generator
from memcim.nn import CIMConfig, convert
from memcim.training import accuracy, train

DEVICES = {"rram": FilamentaryRRAM, "pcm": PCM}
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True, kw_only=True)
class EnergyBatchConfig:
    """Attributes:
    models: ``"mlp"`` and/or ``"cnn"`` (the architectures of ``hwa-drift``).
    processors: digital baselines, keys of :data:`memcim.energy.PROCESSORS`.
    batches: batch sizes of the digital curves.
    device: cell of the CIM tiles.
    bits: DAC and ADC resolution.
    tile_size: largest tile (rows = columns).
    adc_fom_fj_per_step: ADC figure of merit (fJ/step).
    train_images, epochs, lr, batch_size: the short training (accuracy is a sanity check only;
        energy depends on the shapes, the conductances and the inputs).
    profile_images: test images of the profiled pass.
    data_dir: MNIST location (default: ``$MEMCIM_DATA_DIR`` or ../shared/data).
    """

    models: tuple[str, ...] = ("mlp", "cnn")
    processors: tuple[str, ...] = ("edge_cpu", "gpu", "mcu", "edge_npu")
    batches: tuple[int, ...] = BATCHES
    device: Literal["rram", "pcm"] = "rram"
    bits: int = 8
    tile_size: int = 256
    adc_fom_fj_per_step: float = 10.0
    train_images: int = 10000
    epochs: int = 3
    lr: float = 2e-3
    batch_size: int = 128
    profile_images: int = 256
    data_dir: str | None = None

    def __post_init__(self) -> None:
        for m in self.models:
            require(m in ("mlp", "cnn"), "EnergyBatchConfig.models", m, "must be 'mlp' or 'cnn'")
        for p in self.processors:
            require(p in PROCESSORS, "EnergyBatchConfig.processors", p,
                    f"must be one of {sorted(PROCESSORS)}")  # fmt: skip
        require(len(self.batches) >= 1 and all(isinstance(b, int) and b >= 1 for b in self.batches),
                "EnergyBatchConfig.batches", self.batches, "must be ints >= 1")  # fmt: skip
        require(self.device in DEVICES, "EnergyBatchConfig.device", self.device,
                f"must be one of {sorted(DEVICES)}")  # fmt: skip
        require(self.bits >= 2, "EnergyBatchConfig.bits", self.bits, "must be >= 2")
        for name in ("adc_fom_fj_per_step", "lr"):
            require(0 < getattr(self, name) < math.inf, f"EnergyBatchConfig.{name}",
                    getattr(self, name), "must be finite and > 0")  # fmt: skip
        for name in ("tile_size", "train_images", "epochs", "batch_size", "profile_images"):
            require(getattr(self, name) >= 1, f"EnergyBatchConfig.{name}", getattr(self, name),
                    "must be >= 1")  # fmt: skip

    def cim_config(self, seed: int) -> CIMConfig:
        converter = ConverterConfig(bits=self.bits)
        tile = TileConfig(device=DEVICES[self.device](), dac=converter, adc=converter)
        return CIMConfig(tile=tile, max_rows=self.tile_size, max_cols=self.tile_size,
                         seed=seed)  # fmt: skip


def trained_model(name: str, config: EnergyBatchConfig, seed: int, progress: bool):
    """A briefly trained MNIST model and the test images [N, 28, 28] and labels."""
    x_train, y_train, x_test, y_test = load_mnist(config.data_dir)
    pick = torch.randperm(len(y_train), generator=stage_generator(seed, "subset"))
    pick = pick[: config.train_images]
    model = build_model(name, stage_generator(seed, "init", name))
    train(model, x_train[pick].float(), y_train[pick].long(), epochs=config.epochs,
          lr=config.lr, batch_size=config.batch_size,
          generator=stage_generator(seed, "train", name), desc=name,
          progress=progress)  # fmt: skip
    return model.eval(), x_test.float(), y_test.long()


def digital_floor(report: EnergyReport) -> tuple[float, float]:
    """(compute + activations, weights at B = 1) of a digital report (pJ per inference)."""
    b = report.breakdown_pj
    return b["compute"] + b["activations"], b["weights"] * report.batch


def crossover_batch(cim_pj: float, floor_pj: float, weights_b1_pj: float) -> float | None:
    """Smallest integer B with floor + weights/B <= cim, or ``None`` if none exists."""
    if cim_pj <= floor_pj:
        return None
    return float(max(1, math.ceil(weights_b1_pj / (cim_pj - floor_pj) - 1e-12)))


def tile_tops_per_w(config: EnergyBatchConfig, seed: int, size: int = 256) -> dict[str, float]:
    """TOPS/W and energy shares of one size × size tile (weights N(0, 1/size), inputs U[0, 1]),
    and the TOPS/W of variants that show what sets it: a 10 ns read, a 4-bit ADC, an ADC of
    1 or 50 fJ/step."""
    base = config.cim_config(seed).tile
    variants = {
        "": (base, config.adc_fom_fj_per_step),
        "_t_read_10ns": (replace(base, t_read_s=10e-9), config.adc_fom_fj_per_step),
        "_adc_4bit": (replace(base, adc=ConverterConfig(bits=4)), config.adc_fom_fj_per_step),
        "_adc_fom_1fj": (base, 1.0),
        "_adc_fom_50fj": (base, 50.0),
    }
    out: dict[str, float] = {}
    for suffix, (tile_config, fom) in variants.items():
        gen = stage_generator(seed, "tile")  # the same weights, inputs and noise for every variant
        tile = Tile(size, size, tile_config)
        tile.program(torch.randn(size, size, generator=gen) / size**0.5, generator=gen)
        tile.counters.reset()
        tile.mvm(torch.rand(256, size, generator=gen), generator=gen)
        cost = tile_cost(tile, CIMEnergyModel(adc_fom_fj_per_step=fom))
        out[f"tile_tops_per_w{suffix}"] = cost.tops_per_w
        if not suffix:
            out["tile_pj_per_mvm"] = cost.inference_pj / 256
            for k, v in cost.energy_pj.items():
                if k != "write":
                    out[f"tile_share_{k}"] = v / cost.inference_pj
    return out


def plot_energy_vs_batch(metrics: dict[str, float], config: EnergyBatchConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(config.models), figsize=(5.2 * len(config.models), 4.0),
                             squeeze=False)  # fmt: skip
    for ax, model in zip(axes[0], config.models, strict=True):
        cim = metrics[f"cim_pj_{model}"] * 1e-3
        ax.axhline(cim, color="k", lw=2, label=f"CIM ({config.device}, {config.bits}-bit)")
        for proc in config.processors:
            e = [metrics[f"digital_pj_{model}_{proc}_b{b}"] * 1e-3 for b in config.batches]
            (line,) = ax.plot(config.batches, e, "o-", ms=3, label=PROCESSORS[proc].name)
            b_star = metrics.get(f"crossover_batch_{model}_{proc}")
            if b_star is not None and b_star <= max(config.batches):
                ax.axvline(b_star, color=line.get_color(), ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("energy per inference (nJ)")
        ax.set_title(f"MNIST {model.upper()}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_rows(metrics: dict[str, float], config: EnergyBatchConfig) -> list[list[str]]:
    rows = []
    for model in config.models:
        cim = metrics[f"cim_pj_{model}"]
        rows.append([model, f"CIM ({config.device})", f"{cim / 1e3:.2f}", f"{cim / 1e3:.2f}", "–"])
        for proc in config.processors:
            b1 = metrics[f"digital_pj_{model}_{proc}_b{config.batches[0]}"]
            bn = metrics[f"digital_pj_{model}_{proc}_b{config.batches[-1]}"]
            b_star = metrics.get(f"crossover_batch_{model}_{proc}")
            rows.append([model, PROCESSORS[proc].name, f"{b1 / 1e3:.2f}", f"{bn / 1e3:.2f}",
                         "never" if b_star is None else f"{b_star:.0f}"])  # fmt: skip
    return rows


_DESCRIPTION = "energy per inference vs batch size, digital processors vs CIM, and the crossover"


@register("energy-batch", EnergyBatchConfig, _DESCRIPTION)
def run(config: EnergyBatchConfig, *, seed: int, out_dir: str | os.PathLike[str],
        progress: bool = True) -> Result:  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cim_model = CIMEnergyModel(adc_fom_fj_per_step=config.adc_fom_fj_per_step)
    metrics: dict[str, float] = tile_tops_per_w(config, seed)
    for name in config.models:
        model, x_test, y_test = trained_model(name, config, seed, progress)
        x = x_test[: config.profile_images]
        metrics[f"accuracy_software_{name}"] = accuracy(model, x_test[:2000], y_test[:2000])
        analog = convert(copy.deepcopy(model), config.cim_config(seed)).eval()
        cim = profile(analog, x, cim=cim_model)
        metrics[f"accuracy_cim_{name}"] = accuracy(analog, x_test[:2000], y_test[:2000])
        metrics[f"cim_pj_{name}"] = cim.energy_pj
        metrics[f"cim_latency_s_{name}"] = cim.latency_s
        metrics[f"cim_tops_per_w_{name}"] = cim.tops_per_w
        metrics[f"cim_program_pj_{name}"] = cim.program_pj
        for k, v in cim.breakdown_pj.items():
            metrics[f"cim_{k}_pj_{name}"] = v
        for proc in config.processors:
            # B = 1 is always profiled: the crossover's closed form needs its weight term.
            reports = {b: profile(model, x, processor=PROCESSORS[proc], batch=b)
                       for b in sorted({1, *config.batches})}  # fmt: skip
            for b in config.batches:
                metrics[f"digital_pj_{name}_{proc}_b{b}"] = reports[b].energy_pj
                metrics[f"digital_latency_s_{name}_{proc}_b{b}"] = reports[b].latency_s
            floor, weights_b1 = digital_floor(reports[1])
            metrics[f"digital_floor_pj_{name}_{proc}"] = floor
            b_star = crossover_batch(cim.energy_pj, floor, weights_b1)
            if b_star is not None:
                metrics[f"crossover_batch_{name}_{proc}"] = b_star
            if progress:
                crossing = "never" if b_star is None else f"at B = {b_star:.0f}"
                print(f"[energy-batch] {name} on {proc}: {weights_b1 / 1e3 + floor / 1e3:.1f} nJ "
                      f"at B=1, floor {floor / 1e3:.1f} nJ; CIM {cim.energy_pj / 1e3:.1f} nJ; "
                      f"digital catches up {crossing}", flush=True)  # fmt: skip
    plot_energy_vs_batch(metrics, config, out / "energy_vs_batch.png")
    table = {"header": ["model", "hardware", f"nJ/inference B={config.batches[0]}",
                        f"nJ/inference B={config.batches[-1]}", "crossover batch"],
             "rows": summary_rows(metrics, config)}  # fmt: skip
    return Result(
        metrics=metrics, artifacts=["energy_vs_batch.png"], extra={"summary_table": table}
    )
