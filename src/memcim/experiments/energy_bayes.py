"""Experiment ``energy-bayes``: what Monte-Carlo sampling costs, per scheme, vs a digital BNN.

The MNIST MLP of ``energy-batch`` (briefly trained) becomes a Bayesian network
(:func:`memcim.bayes.to_bayesian`, μ = the trained weights) and is profiled on test images with S
Monte-Carlo samples per inference:

* on CIM, put on crossbar tiles under each sampling scheme (:func:`memcim.bayes.to_hardware`,
  the cell of ``device`` (read noise: Lin et al.'s devices, its default), 8-bit DAC and ADC,
  tiles of at most 512 × 512, the bias one more word line) and measured from what the tiles
  count during an S-sample pass (:func:`memcim.energy.profile`): reads, conversions,
  per-sample re-programming, random bits and digital combinations;
* on digital processors that fetch μ and σ, draw one Gaussian per weight and sample
  (``e_gaussian_pj``) and run S forward passes (:func:`memcim.energy.bayes.bayes_digital_cost`).

``batch`` inputs share each sample (1: an edge device classifying one input at a time).

**Measured at two S, linear in between.** Programming K = 128 copies of the whole MLP for the
re-programmed schemes is heavy, so every scheme is programmed for S_m = ``measured_samples``
samples (K = S_m copies; the population's S_m rows read) and profiled at S_m and 2·S_m (copy
s mod K serves sample s; a re-programmed scheme programs each copy again for its second use).
Every energy component is linear in S — reads, writes, random bits and combinations per sample,
plus the reads of ``separate_mu_sigma``'s shared input once per inference — so each component
(and the latency) is E(S) = a + b·S through the two measured points. With the defaults
(S_m = 64) the largest S, 128, is itself measured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from memcim._errors import require
from memcim.bayes import HardwareSampling, SamplingScheme, to_bayesian, to_hardware
from memcim.crossbar import TileConfig
from memcim.energy import PROCESSORS, SCHEMES, EnergyReport, profile
from memcim.energy.bayes import E_GAUSSIAN_PJ
from memcim.experiments.energy_batch import DEVICES, EnergyBatchConfig, trained_model
from memcim.experiments.registry import Result, register, stage_generator

SAMPLES = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True, kw_only=True)
class EnergyBayesConfig:
    """Attributes:
    schemes: sampling schemes (:data:`memcim.energy.SCHEMES`).
    samples: Monte-Carlo sample counts S reported.
    measured_samples: S_m, the samples the tiles are programmed for; each scheme is profiled at
        S_m and 2·S_m and every S of ``samples`` is read off the line through them (module
        docstring).
    processors: digital baselines (keys of :data:`memcim.energy.PROCESSORS`).
    device: the memory cell of every CIM scheme.
    population: K, rows of ``device_population``.
    batch: inputs that share one weight sample (and one weight fetch on the digital side).
    e_gaussian_pj: energy of one Gaussian random number on the digital processor (pJ).
    train_images, epochs: the short training of the MLP whose activations are profiled.
    profile_images: test images of the profiled pass.
    data_dir: MNIST location.
    """

    schemes: tuple[str, ...] = SCHEMES
    samples: tuple[int, ...] = SAMPLES
    measured_samples: int = 64
    processors: tuple[str, ...] = ("mcu", "edge_npu")
    device: Literal["rram", "pcm"] = "rram"
    population: int = 100
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
        for name in ("measured_samples", "population", "batch", "train_images", "epochs",
                     "profile_images"):  # fmt: skip
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, f"EnergyBayesConfig.{name}", value,
                    "must be an int >= 1")  # fmt: skip


def _parts(report: EnergyReport) -> dict[str, float]:
    """Energy per inference by component and the latency, the quantities fitted in S."""
    return {**report.breakdown_pj, "latency_s": report.latency_s}


def measured_line(reports: tuple[EnergyReport, EnergyReport], s_m: int
                  ) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """Intercept a and slope b of every component through the passes at S_m and 2·S_m."""
    low, high = (_parts(r) for r in reports)
    slope = {k: (high[k] - low[k]) / s_m for k in low}
    return {k: low[k] - slope[k] * s_m for k in low}, slope


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
    s_m = config.measured_samples
    ax.set_xlabel(f"Monte-Carlo samples S (CIM: tile counters at S = {s_m} and {2 * s_m}, "
                  "linear in S)")  # fmt: skip
    ax.set_ylabel("energy per inference (nJ)")
    ax.set_title(f"Bayesian MNIST MLP on {config.device} tiles, batch {config.batch}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_DESCRIPTION = "energy per inference vs Monte-Carlo samples, per sampling scheme and digital"


def _sampling(scheme: str, config: EnergyBayesConfig) -> HardwareSampling:
    """The scheme on the configured device; read noise on Lin et al.'s devices, as its
    default (:class:`~memcim.devices.LaplaceRRAM`)."""
    scheme = SamplingScheme(scheme)
    device = None if scheme is SamplingScheme.READ_NOISE else DEVICES[config.device]()
    return HardwareSampling(scheme=scheme, device=device, population=config.population)


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
    s_m = config.measured_samples
    metrics: dict[str, float] = {"cim_measured_samples": float(s_m)}
    for scheme in config.schemes:
        sampling = _sampling(scheme, config)
        # Laplace reads moment-matched: the same counts and Σ V²G t as cell-by-cell reads.
        tile = TileConfig(non_gaussian_read="moment_matched")
        hw, _ = to_hardware(bnn, sampling, tile_config=tile, samples=s_m,
                            generator=stage_generator(seed, "program", scheme))  # fmt: skip
        reports = tuple(profile(hw, x, samples=k, batch=config.batch) for k in (s_m, 2 * s_m))
        del hw  # the copies on the tiles are the experiment's largest memory
        a, b = measured_line(reports, s_m)
        for k in config.samples:
            metrics[f"cim_pj_{scheme}_s{k}"] = sum(a[c] + b[c] * k for c in a if c != "latency_s")
            metrics[f"cim_latency_s_{scheme}_s{k}"] = a["latency_s"] + b["latency_s"] * k
        s_ref = config.samples[-1]
        for c in a:
            if c != "latency_s":
                metrics[f"cim_part_pj_{scheme}_{c}_s{s_ref}"] = a[c] + b[c] * s_ref
        metrics[f"cim_pj_per_sample_{scheme}"] = sum(v for c, v in b.items() if c != "latency_s")
        metrics[f"program_pj_{scheme}"] = reports[0].program_pj
        # MACs of the S sampled products: S times those of one sample.
        macs = reports[0].macs / s_m * s_ref
        metrics[f"cim_tops_per_w_{scheme}_s{s_ref}"] = (
            2 * macs / metrics[f"cim_pj_{scheme}_s{s_ref}"]
        )
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
            print(f"[energy-bayes] {scheme}: {e / 1e3:.1f} nJ per inference at S = {s_ref} "
                  f"(measured at S = {s_m} and {2 * s_m})", flush=True)  # fmt: skip
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
