"""Experiment ``system-chiplets``: the same heterogeneous pipeline as 2D, 2.5D, 3D or one die, and
how many Bayesian parameters monolithic 3D memory layers hold.

Part 1 (:mod:`memcim.energy.system`): the chain sensor → spiking front end → Bayesian CIM →
learning module → digital host (the presets of :data:`memcim.energy.system.DEFAULT_STAGES`, with
the Bayesian CIM chiplet's energy and latency computed by memcim's tile model for the config's
scheme, samples, device and ADC, :func:`memcim.energy.system.bayesian_cim_cost`, unless the config
overrides them) is built four ways: chiplets in
separate packages (``2d``, off-package SerDes), side by side on an interposer (``2_5d``), hybrid-
bonded stack (``3d``) and one die with on-die wires of ``monolithic_link_mm`` (``monolithic``).
Metrics per build ``<b>``: ``energy_<b>_pj`` (per inference), ``link_energy_<b>_pj``,
``link_share_<b>`` (fraction of the energy spent on links), ``latency_<b>_s`` and
``throughput_<b>_per_s``; ``stage_energy_pj`` is the chiplets' part, the same for every build.
The Bayesian CIM chiplet from the tile model: ``bayes_cim_pj`` per inference (its components
``bayes_cim_<component>_pj``), ``bayes_cim_latency_s``, ``bayes_cim_tops_per_w`` and
``bayes_cim_program_pj`` (one-off programming); for comparison, ``bayes_cim_neurosim_pj``, the
same network at NeuroSim 1.4's 11.25 TOPS/W, and ``bayes_cim_model_to_neurosim``, their ratio
(results.json ``bayes_cim_table`` lists both).

Part 2: devices per mm² of ``device`` cells at ``feature_nm`` with 1, 2, 4, 8 … monolithic
layers (``density_devices_per_mm2_<L>l``) and the largest Bayesian model that fits on
``area_mm2`` with each sampling scheme's devices per parameter
(``largest_model_params_<scheme>_<L>l``).

Figures: ``energy_breakdown.png`` (stacked energy per build: chiplets and links) and
``largest_model_vs_layers.png`` (parameters vs layers per scheme). Deterministic (no randomness;
``seed`` is recorded only) and instantaneous apart from drawing the figures.

Command line: ``memcim run system-chiplets --out runs/sc [--set area_mm2=20 layers=1,4,16]``.
All chiplet figures are order-of-magnitude assumptions documented in
:mod:`memcim.energy.system`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from memcim._errors import is_int, is_real, require
from memcim.devices import PCM, FilamentaryRRAM
from memcim.energy.bayes import SCHEMES
from memcim.energy.cim import CIMCost
from memcim.energy.system import (
    BNN_LAYERS,
    BNN_SAMPLES,
    BNN_SCHEME,
    DEFAULT_STAGES,
    DEVICES_PER_PARAMETER,
    INTEGRATION_LINKS,
    NEUROSIM_TOPS_PER_W,
    SystemCost,
    bayesian_cim_chiplet,
    bayesian_cim_cost,
    build,
    devices_per_parameter,
    largest_bayesian_model,
    memory_density_per_mm2,
    neurosim_bayesian_cim_pj,
    pipeline_cost,
)
from memcim.energy.tables import CELL_AREA_F2
from memcim.experiments.registry import Result, register

EXPERIMENT = "system-chiplets"
#: Integration style -> metric label.
BUILDS: dict[str, str] = {"2d": "2d", "2.5d": "2_5d", "3d": "3d", "monolithic": "monolithic"}
#: Cells the Bayesian CIM chiplet can be built from (presets).
BAYES_DEVICES = {"rram": FilamentaryRRAM, "pcm": PCM}


@dataclass(frozen=True, kw_only=True)
class SystemChipletsConfig:
    """What the ``system-chiplets`` experiment compares.

    Attributes:
        bayes_scheme: sampling scheme of the Bayesian CIM chiplet (a 128-64-10 MLP), one of
            :data:`memcim.energy.bayes.SCHEMES`.
        bayes_samples: its Monte-Carlo samples per inference.
        bayes_device: its cells, ``"rram"`` (filamentary RRAM) or ``"pcm"``.
        bayes_adc_bits: its ADC resolution (bits, >= 1; the DAC stays 8-bit).
        bayes_e_pj: energy per inference of the Bayesian CIM chiplet (pJ); ``None`` (default):
            computed by the tile model from the four fields above.
        bayes_latency_s: its latency per inference (s); ``None``: from the tile model.
        monolithic_link_mm: on-die wire between neighbouring blocks of the monolithic build (mm).
        area_mm2: footprint given to memory arrays in part 2 (mm²).
        device: cell type, a key of :data:`memcim.energy.tables.CELL_AREA_F2` (default
            ``"FilamentaryRRAM"``, 25 F² 1T1R).
        feature_nm: feature size F (nm); default 22 nm, NeuroSim's RRAM node (references).
        layers: numbers of monolithic memory layers to evaluate.
        array_efficiency: fraction of the footprint that is cells rather than periphery.
        population: K rows of differential pairs per weight for ``device_population``.
    """

    bayes_scheme: str = BNN_SCHEME
    bayes_samples: int = BNN_SAMPLES
    bayes_device: Literal["rram", "pcm"] = "rram"
    bayes_adc_bits: int = 8
    bayes_e_pj: float | None = None
    bayes_latency_s: float | None = None
    monolithic_link_mm: float = 1.0
    area_mm2: float = 10.0
    device: str = "FilamentaryRRAM"
    feature_nm: float = 22.0
    layers: tuple[int, ...] = (1, 2, 4, 8)
    array_efficiency: float = 0.5
    population: int = 100

    def __post_init__(self) -> None:
        name = "SystemChipletsConfig"
        require(self.bayes_scheme in SCHEMES, f"{name}.bayes_scheme", self.bayes_scheme,
                f"must be one of {SCHEMES}")  # fmt: skip
        require(self.bayes_device in BAYES_DEVICES, f"{name}.bayes_device", self.bayes_device,
                f"must be one of {sorted(BAYES_DEVICES)}")  # fmt: skip
        for field in ("bayes_samples", "bayes_adc_bits"):
            value = getattr(self, field)
            require(is_int(value) and value >= 1, f"{name}.{field}", value, "must be an int >= 1")
        require(self.bayes_e_pj is None or (is_real(self.bayes_e_pj) and self.bayes_e_pj >= 0),
                f"{name}.bayes_e_pj", self.bayes_e_pj,
                "must be None (tile model) or a finite energy >= 0 pJ")  # fmt: skip
        require(self.bayes_latency_s is None
                or (is_real(self.bayes_latency_s) and self.bayes_latency_s > 0),
                f"{name}.bayes_latency_s", self.bayes_latency_s,
                "must be None (tile model) or a finite time > 0 s")  # fmt: skip
        for field, unit in (("monolithic_link_mm", "mm"), ("area_mm2", "mm²"),
                            ("feature_nm", "nm")):  # fmt: skip
            value = getattr(self, field)
            require(is_real(value) and value > 0, f"{name}.{field}", value,
                    f"must be finite and > 0 {unit}")  # fmt: skip
        require(self.device in CELL_AREA_F2, f"{name}.device", self.device,
                f"must be one of {sorted(CELL_AREA_F2)}")  # fmt: skip
        layers = tuple(self.layers) if isinstance(self.layers, list | tuple) else (self.layers,)
        require(len(layers) > 0 and all(is_int(n) and n >= 1 for n in layers),
                f"{name}.layers", self.layers, "must be ints >= 1")  # fmt: skip
        object.__setattr__(self, "layers", tuple(sorted(set(layers))))
        require(is_real(self.array_efficiency) and 0 < self.array_efficiency <= 1,
                f"{name}.array_efficiency", self.array_efficiency, "must be in (0, 1]")  # fmt: skip
        require(is_int(self.population) and self.population >= 1, f"{name}.population",
                self.population, "must be an int >= 1")  # fmt: skip


def bayes_cost(config: SystemChipletsConfig) -> CIMCost:
    """One inference of the config's Bayesian CIM chiplet, from memcim's tile model."""
    return bayesian_cim_cost(samples=config.bayes_samples, scheme=config.bayes_scheme,
                             device=BAYES_DEVICES[config.bayes_device](),
                             population=config.population,
                             adc_bits=config.bayes_adc_bits)  # fmt: skip


def stages_for(config: SystemChipletsConfig):
    """The default chain with the config's Bayesian CIM chiplet (tile model or overrides)."""
    chiplet = bayesian_cim_chiplet(bayes_cost(config))
    if config.bayes_e_pj is not None:
        chiplet = replace(chiplet, e_pj=config.bayes_e_pj)
    if config.bayes_latency_s is not None:
        chiplet = replace(chiplet, latency_s=config.bayes_latency_s)
    return tuple(chiplet if s.role == "bayesian_cim" else s for s in DEFAULT_STAGES)


def bayes_metrics(config: SystemChipletsConfig) -> tuple[dict[str, float], dict[str, list]]:
    """The tile model's Bayesian CIM chiplet beside NeuroSim's figure: metrics and a table."""
    cost = bayes_cost(config)
    neurosim = neurosim_bayesian_cim_pj(BNN_LAYERS, config.bayes_samples)
    metrics = {"bayes_cim_pj": cost.inference_pj, "bayes_cim_latency_s": cost.latency_s,
               "bayes_cim_tops_per_w": cost.tops_per_w,
               "bayes_cim_program_pj": cost.energy_pj["write"],
               "bayes_cim_neurosim_pj": neurosim,
               "bayes_cim_model_to_neurosim": cost.inference_pj / neurosim}  # fmt: skip
    for part, e in cost.energy_pj.items():
        if part != "write":
            metrics[f"bayes_cim_{part}_pj"] = e
    label = (f"memcim tile model ({config.bayes_scheme}, {config.bayes_device}, "
             f"{config.bayes_adc_bits}-bit ADC)")  # fmt: skip
    rows = [[label, f"{cost.inference_pj / 1e3:.2f}", f"{cost.tops_per_w:.2f}",
             f"{cost.latency_s * 1e6:.3f}"],
            [f"NeuroSim 1.4 ({NEUROSIM_TOPS_PER_W} TOPS/W, comparison only)",
             f"{neurosim / 1e3:.2f}", f"{NEUROSIM_TOPS_PER_W:.2f}", "–"]]  # fmt: skip
    header = ["Bayesian CIM chiplet", "energy (nJ)", "TOPS/W", "latency (µs)"]
    return metrics, {"header": header, "rows": rows}


def compare_builds(config: SystemChipletsConfig) -> dict[str, SystemCost]:
    """Integration style -> cost of one inference through the config's pipeline."""
    stages = stages_for(config)
    return {b: pipeline_cost(build(stages, b, length_mm=config.monolithic_link_mm))
            for b in BUILDS}  # fmt: skip


PIPELINE_TITLE = "sensor → spiking front end → Bayesian CIM → learning → host"


def plot_energy_breakdown(costs: dict[str, SystemCost], path: Path, *,
                          title: str = PIPELINE_TITLE) -> None:  # fmt: skip
    """Stacked bars: each chiplet's and the links' energy per inference, per build."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    first = next(iter(costs.values()))
    stage_names = [k for k in first.energy_breakdown_pj if "->" not in k]
    labels = list(costs)
    bottom = [0.0] * len(labels)
    for name in stage_names:
        heights = [costs[b].energy_breakdown_pj[name] / 1e3 for b in labels]
        ax.bar(labels, heights, bottom=bottom, label=name)
        bottom = [x + h for x, h in zip(bottom, heights, strict=True)]
    links = [costs[b].link_energy_pj / 1e3 for b in labels]
    ax.bar(labels, links, bottom=bottom, label="links", color="black", hatch="//", alpha=0.6)
    for i, b in enumerate(labels):
        ax.annotate(f"{costs[b].link_share:.0%} links", (i, bottom[i] + links[i]),
                    ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax.set_ylabel("energy per inference (nJ)")
    ax.set_xlabel("integration")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_largest_model(metrics: dict[str, float], config: SystemChipletsConfig,
                       path: Path) -> None:  # fmt: skip
    """Largest Bayesian model (parameters) vs monolithic layers, one line per scheme."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    # Distinct styles: schemes with the same devices per parameter draw the same line.
    styles = zip(DEVICES_PER_PARAMETER, ("-", "-", "-", "--", "-"), "osD^v", strict=True)
    for scheme, line, marker in styles:
        values = [metrics[f"largest_model_params_{scheme}_{n}l"] for n in config.layers]
        dpp = devices_per_parameter(scheme, population=config.population)
        ax.plot(config.layers, values, line, marker=marker, label=f"{scheme} ({dpp} dev./param.)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(config.layers, [str(n) for n in config.layers])
    ax.set_xlabel("monolithic memory layers")
    ax.set_ylabel("parameters that fit")
    ax.set_title(f"{config.area_mm2:g} mm² of {config.device} at {config.feature_nm:g} nm, "
                 f"{config.array_efficiency:.0%} cells", fontsize=9)  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_table(costs: dict[str, SystemCost]) -> dict[str, list]:
    """One row per build: link, energy, link share, latency, throughput (as text)."""
    rows = [[b, INTEGRATION_LINKS[b].name, f"{c.energy_pj / 1e3:.2f}", f"{c.link_share:.1%}",
             f"{c.latency_s * 1e6:.3f}", f"{c.throughput_per_s / 1e3:.1f}", c.bottleneck]
            for b, c in costs.items()]  # fmt: skip
    header = ["integration", "link", "energy (nJ)", "link share", "latency (µs)",
              "throughput (k/s)", "bottleneck"]  # fmt: skip
    return {"header": header, "rows": rows}


_DESCRIPTION = "chiplet pipeline energy as 2D/2.5D/3D/monolithic; Bayesian model size vs 3D layers"


@register(EXPERIMENT, SystemChipletsConfig, _DESCRIPTION)
def run(config: SystemChipletsConfig, *, seed: int, out_dir: str | os.PathLike[str],
        progress: bool = False) -> Result:  # fmt: skip
    """Cost the four builds and the density sweep; write the two figures."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    costs = compare_builds(config)
    metrics: dict[str, float] = {"stage_energy_pj": next(iter(costs.values())).stage_energy_pj}
    bayes, bayes_table = bayes_metrics(config)
    metrics.update(bayes)
    for b, label in BUILDS.items():
        c = costs[b]
        metrics[f"energy_{label}_pj"] = c.energy_pj
        metrics[f"link_energy_{label}_pj"] = c.link_energy_pj
        metrics[f"link_share_{label}"] = c.link_share
        metrics[f"latency_{label}_s"] = c.latency_s
        metrics[f"throughput_{label}_per_s"] = c.throughput_per_s
    cell_f2 = CELL_AREA_F2[config.device]
    for n in config.layers:
        metrics[f"density_devices_per_mm2_{n}l"] = memory_density_per_mm2(
            cell_f2, config.feature_nm, n, config.array_efficiency
        )
    dpp = {s: devices_per_parameter(s, population=config.population)
           for s in DEVICES_PER_PARAMETER}  # fmt: skip
    for scheme, d in dpp.items():
        for n in config.layers:
            metrics[f"largest_model_params_{scheme}_{n}l"] = float(
                largest_bayesian_model(config.area_mm2, d, cell_area_f2=cell_f2,
                                       feature_nm=config.feature_nm, layers=n,
                                       array_efficiency=config.array_efficiency)
            )  # fmt: skip
    if progress:
        for row in summary_table(costs)["rows"] + bayes_table["rows"]:
            print(f"[{EXPERIMENT}] " + " | ".join(row), flush=True)
    plot_energy_breakdown(costs, out / "energy_breakdown.png")
    plot_largest_model(metrics, config, out / "largest_model_vs_layers.png")
    extra = {
        "summary_table": summary_table(costs),
        "bayes_cim_table": bayes_table,
        "costs": {b: c.as_dict() for b, c in costs.items()},
        "devices_per_parameter": dpp,
        "cell_area_f2": cell_f2,
    }
    artifacts = ["energy_breakdown.png", "largest_model_vs_layers.png"]
    return Result(metrics=metrics, artifacts=artifacts, extra=extra)
