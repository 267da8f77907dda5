"""Experiment ``energy-bayes``: what Monte-Carlo sampling costs, per scheme, vs a digital BNN.

The MNIST MLP of ``energy-batch`` (briefly trained) becomes a Bayesian network
(:func:`memcim.bayes.to_bayesian`, μ = the trained weights) and is profiled on test images with S
Monte-Carlo samples per inference (:func:`memcim.energy.profile`): on CIM under each sampling
scheme (:mod:`memcim.energy.bayes`: reads, per-sample re-programming, random bits; the array
energy from the inputs the layers see), and on digital processors that fetch μ and σ, draw one
Gaussian per weight and sample (``e_gaussian_pj``) and run S forward passes. ``batch`` inputs
share each sample (1: an edge device classifying one input at a time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from memcim._errors import require
from memcim.bayes import to_bayesian
from memcim.energy import PROCESSORS, SCHEMES, profile
from memcim.energy.bayes import E_GAUSSIAN_PJ
from memcim.experiments.energy_batch import DEVICES, EnergyBatchConfig, trained_model
from memcim.experiments.registry import Result, register

SAMPLES = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True, kw_only=True)
class EnergyBayesConfig:
    """Attributes:
    schemes: sampling schemes (:data:`memcim.energy.SCHEMES`).
    samples: Monte-Carlo sample counts S.
    processors: digital baselines (keys of :data:`memcim.energy.PROCESSORS`).
    device: the memory cell of the CIM schemes.
    batch: inputs that share one weight sample (and one weight fetch on the digital side).
    e_gaussian_pj: energy of one Gaussian random number on the digital processor (pJ).
    train_images, epochs: the short training of the MLP whose activations are profiled.
    profile_images: test images of the profiled pass.
    data_dir: MNIST location.
    """

    schemes: tuple[str, ...] = SCHEMES
    samples: tuple[int, ...] = SAMPLES
    processors: tuple[str, ...] = ("mcu", "edge_npu")
    device: Literal["rram", "pcm"] = "rram"
    batch: int = 1
    e_gaussian_pj: float = E_GAUSSIAN_PJ
    train_images: int = 10000
    epochs: int = 3
    profile_images: int = 256
    data_dir: str | None = None

    def __post_init__(self) -> None:
        for s in self.schemes:
            require(s in SCHEMES, "EnergyBayesConfig.schemes", s, f"must be one of {SCHEMES}")
        for p in self.processors:
            require(p in PROCESSORS, "EnergyBayesConfig.processors", p,
                    f"must be one of {sorted(PROCESSORS)}")  # fmt: skip
        require(len(self.samples) >= 1 and all(isinstance(s, int) and s >= 1 for s in self.samples),
                "EnergyBayesConfig.samples", self.samples, "must be ints >= 1")  # fmt: skip
        require(self.device in DEVICES, "EnergyBayesConfig.device", self.device,
                f"must be one of {sorted(DEVICES)}")  # fmt: skip
        require(self.e_gaussian_pj >= 0, "EnergyBayesConfig.e_gaussian_pj", self.e_gaussian_pj,
                "must be >= 0 pJ")  # fmt: skip
        for name in ("batch", "train_images", "epochs", "profile_images"):
            require(getattr(self, name) >= 1, f"EnergyBayesConfig.{name}", getattr(self, name),
                    "must be >= 1")  # fmt: skip


def plot_energy_vs_samples(metrics: dict[str, float], config: EnergyBayesConfig,
                           path: Path) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    s = config.samples
    for scheme in config.schemes:
        ax.plot(s, [metrics[f"cim_pj_{scheme}_s{k}"] * 1e-3 for k in s], "o-", ms=3,
                label=f"CIM, {scheme}")  # fmt: skip
    for proc in config.processors:
        ax.plot(s, [metrics[f"digital_pj_{proc}_s{k}"] * 1e-3 for k in s], "s--", ms=3,
                label=PROCESSORS[proc].name)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("Monte-Carlo samples S")
    ax.set_ylabel("energy per inference (nJ)")
    ax.set_title(f"Bayesian MNIST MLP, batch {config.batch}, {config.device}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_DESCRIPTION = "energy per inference vs Monte-Carlo samples, per sampling scheme and digital"


@register("energy-bayes", EnergyBayesConfig, _DESCRIPTION)
def run(config: EnergyBayesConfig, *, seed: int, out_dir: str | os.PathLike[str],
        progress: bool = True) -> Result:  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = EnergyBatchConfig(models=("mlp",), train_images=config.train_images,
                             epochs=config.epochs, data_dir=config.data_dir)  # fmt: skip
    model, x_test, _ = trained_model("mlp", base, seed, progress)
    bnn = to_bayesian(model).eval()
    x = x_test[: config.profile_images]
    device = DEVICES[config.device]()
    metrics: dict[str, float] = {}
    for scheme in config.schemes:
        for k in config.samples:
            r = profile(bnn, x, samples=k, scheme=scheme, device=device, batch=config.batch)
            metrics[f"cim_pj_{scheme}_s{k}"] = r.energy_pj
            metrics[f"cim_latency_s_{scheme}_s{k}"] = r.latency_s
            if k == config.samples[0]:
                metrics[f"program_pj_{scheme}"] = r.program_pj
        s_lo, s_hi = config.samples[0], config.samples[-1]
        if s_hi > s_lo:
            slope = metrics[f"cim_pj_{scheme}_s{s_hi}"] - metrics[f"cim_pj_{scheme}_s{s_lo}"]
            metrics[f"cim_pj_per_sample_{scheme}"] = slope / (s_hi - s_lo)
    for proc in config.processors:
        for k in config.samples:
            r = profile(bnn, x, samples=k, processor=PROCESSORS[proc], batch=config.batch)
            metrics[f"digital_pj_{proc}_s{k}"] = r.energy_pj
            metrics[f"digital_rng_pj_{proc}_s{k}"] = r.breakdown_pj["rng"]
    s_ref = config.samples[-1]
    rows = []
    for scheme in config.schemes:
        e = metrics[f"cim_pj_{scheme}_s{s_ref}"]
        cells = [f"CIM, {scheme}", f"{e / 1e3:.1f}", f"{metrics[f'program_pj_{scheme}'] / 1e3:.0f}"]
        for proc in config.processors:
            ratio = metrics[f"digital_pj_{proc}_s{s_ref}"] / e
            metrics[f"ratio_digital_{proc}_to_{scheme}_s{s_ref}"] = ratio
            cells.append(f"{ratio:.2g}x")
        rows.append(cells)
        if progress:
            print(f"[energy-bayes] {scheme}: {e / 1e3:.1f} nJ per inference at S = {s_ref}",
                  flush=True)  # fmt: skip
    for proc in config.processors:
        e = metrics[f"digital_pj_{proc}_s{s_ref}"]
        rows.append(
            [PROCESSORS[proc].name, f"{e / 1e3:.1f}", "–", *("–" for _ in config.processors)]
        )
    plot_energy_vs_samples(metrics, config, out / "energy_vs_samples.png")
    header = ["hardware", f"nJ/inference, S={s_ref}", "programming once (nJ)",
              *(f"{PROCESSORS[p].name} / this" for p in config.processors)]  # fmt: skip
    return Result(metrics=metrics, artifacts=["energy_vs_samples.png"],
                  extra={"summary_table": {"header": header, "rows": rows}})  # fmt: skip
