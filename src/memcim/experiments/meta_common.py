"""Pieces the meta-learning experiments share: resumable meta-training, the adaptation
variants (software, 4-bit software, devices on tiles), confidence intervals and figures."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from memcim._errors import is_int, is_real, require
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.devices import PCM, FilamentaryRRAM, IdealDevice
from memcim.energy.digital import PROCESSORS
from memcim.learning.meta import Evaluation, MetaLearner
from memcim.learning.meta.onchip import Adaptation, OnChipAdapter, OnChipConfig

DEVICES = {"pcm": PCM, "rram": FilamentaryRRAM}
#: 4-bit signed weights: 15 levels, ±7 steps of w_max / 7.
QUANTISED_STEP = 1 / 7


def ci95(values: Tensor) -> tuple[float, float]:
    """Mean and the half-width of its normal 95 % confidence interval (1.96 · SE)."""
    v = values.double().flatten()
    half = 1.96 * float(v.std(unbiased=True)) / math.sqrt(v.numel()) if v.numel() > 1 else math.nan
    return float(v.mean()), half


def check_config(config, counts: tuple[str, ...]) -> None:
    """Validate what the meta-learning experiments' configs share: ``shots``, the int fields
    ``counts`` (>= 1), ``outer_lr``, ``devices``, ``times_s``, ``processor``, and the inner
    loop and on-chip settings their ``meta()`` / ``on_chip()`` build. Errors name
    ``<Config>.<field>``."""
    name = type(config).__name__
    shots = config.shots
    require(len(shots) >= 1 and all(is_int(k) and k >= 1 for k in shots), f"{name}.shots",
            shots, "ints >= 1")  # fmt: skip
    for f in counts:
        value = getattr(config, f)
        require(is_int(value) and value >= 1, f"{name}.{f}", value, "an int >= 1")
    require(is_real(config.outer_lr) and config.outer_lr > 0, f"{name}.outer_lr",
            config.outer_lr, "a finite number > 0")  # fmt: skip
    require(all(d in DEVICES for d in config.devices), f"{name}.devices", config.devices,
            f"each in {sorted(DEVICES)}")  # fmt: skip
    require(all(is_real(t) and t >= 0 for t in config.times_s), f"{name}.times_s",
            config.times_s, "times >= 0 s")  # fmt: skip
    require(config.processor in PROCESSORS, f"{name}.processor", config.processor,
            f"one of {sorted(PROCESSORS)}")  # fmt: skip
    config.meta()
    config.on_chip()


def record_adaptation(m: dict[str, float], key: str, adaptation: Adaptation) -> None:
    """Writes, clipped updates, energy (nJ) and latency (µs) of one adaptation, CIM and
    digital, as metrics named ``<quantity>_<key>``."""
    m[f"writes_per_adaptation_{key}"] = float(adaptation.writes.float().mean())
    m[f"changed_weights_per_adaptation_{key}"] = float(adaptation.changed_weights.mean())
    m[f"clipped_updates_{key}"] = float(adaptation.clipped)
    for side, cost in (("cim", adaptation.cim), ("digital", adaptation.digital)):
        m[f"adaptation_energy_nj_{key}_{side}"] = cost["energy_pj"] * 1e-3
        m[f"adaptation_latency_us_{key}_{side}"] = cost["latency_s"] * 1e6
    for part in ("read", "write", "gradient"):
        m[f"adaptation_{part}_energy_nj_{key}_cim"] = adaptation.cim[f"{part}_pj"] * 1e-3


def quantised_config(base: OnChipConfig) -> OnChipConfig:
    """Software adaptation with 4-bit adapted weights: ideal devices and converters, the
    deployed weights rounded to the 4-bit grid, updates stochastically rounded to its step."""
    ideal = TileConfig(device=IdealDevice(), dac=ConverterConfig(bits=None),
                       adc=ConverterConfig(bits=None))  # fmt: skip
    return replace(base, tile=ideal, step_fraction=QUANTISED_STEP, quantise_deployed=True)


def device_config(base: OnChipConfig, device: str) -> OnChipConfig:
    """``base`` on tiles of ``device`` (``"pcm"`` or ``"rram"``), 8-bit DAC and ADC."""
    return replace(base, tile=TileConfig(device=DEVICES[device]()))


def meta_train_resumable(
    learner: MetaLearner,
    sample: Callable[[], tuple[Tensor, Tensor, Tensor, Tensor]],
    iterations: int,
    *,
    path: Path,
    key: dict,
    generator: torch.Generator,
    lr: float,
    every: int = 100,
    progress: bool = False,
) -> list[float]:
    """Meta-train, checkpointing model, optimiser, sampler generator and loss history to
    ``path`` every ``every`` iterations; a checkpoint of the same ``key`` (the settings that
    shape the run) is resumed, one of another key is ignored and overwritten."""
    opt = torch.optim.Adam(learner.model.parameters(), lr)
    history: list[float] = []
    if path.exists():
        saved = torch.load(path, weights_only=False)
        if saved.get("key") == key:
            learner.model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"])
            history = list(saved["history"])

    def save() -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"key": key, "model": learner.model.state_dict(), "optimizer": opt.state_dict(),
                    "generator": generator.get_state(), "history": history}, tmp)  # fmt: skip
        tmp.replace(path)

    while len(history) < iterations:
        block = min(every, iterations - len(history))
        history += learner.meta_train(sample, block, optimizer=opt, progress=progress)
        save()
    return history


def _axes():
    """One figure and axes of the meta-learning plots (non-interactive backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(5.6, 3.8))


def _finish(fig, ax, title: str, path: Path) -> None:
    """Title, grid and legend of a meta-learning plot, saved to ``path`` and closed."""
    import matplotlib.pyplot as plt

    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_steps(curves: dict[str, Tensor], ylabel: str, title: str, path: Path,
               log_y: bool = False) -> None:  # fmt: skip
    """Mean query metric (with its 95 % interval) against inner steps, one line per variant;
    each value of ``curves`` is [tasks, steps + 1]."""
    fig, ax = _axes()
    for label, values in curves.items():
        stats = [ci95(values[:, s]) for s in range(values.shape[1])]
        mean = [m for m, _ in stats]
        half = [h for _, h in stats]
        steps = range(len(mean))
        ax.errorbar(steps, mean, yerr=half, marker="o", ms=3, capsize=2, label=label)
    ax.set_xlabel("inner-loop steps")
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    _finish(fig, ax, title, path)


def plot_writes(per_device: dict[str, Tensor], title: str, path: Path) -> None:
    """Histogram of programming pulses per adapted device during one adaptation."""
    fig, ax = _axes()
    top = max(int(v.max()) for v in per_device.values()) if per_device else 1
    bins = torch.arange(-0.5, top + 1.5).tolist()
    for label, writes in per_device.items():
        ax.hist(writes.flatten().tolist(), bins=bins, histtype="step", lw=1.5, label=label,
                density=True)  # fmt: skip
    ax.set_xlabel("programming pulses per device in one adaptation")
    ax.set_ylabel("fraction of devices")
    ax.set_yscale("log")
    _finish(fig, ax, title, path)


def run_variants(
    model: torch.nn.Module,
    learner: MetaLearner,
    base: OnChipConfig,
    *,
    devices: tuple[str, ...],
    times_s: tuple[float, ...],
    tasks: tuple[Tensor, Tensor, Tensor, Tensor],
    steps: int,
    generator: Callable[[str], torch.Generator],
    log: Callable[[str], None],
) -> dict[str, tuple[Evaluation, Adaptation | None]]:
    """Adapt the meta-trained ``model`` to the same ``tasks`` in every variant.

    Returns ``{name: (evaluation, adaptation)}`` for ``software`` (float32), ``software_4bit``
    and ``<device>_<time>`` for every device and deployment age (adaptation ``None`` for
    float software). ``generator(name)`` gives each variant its own generator.
    """
    from memcim.experiments.registry import time_label

    out: dict[str, tuple[Evaluation, Adaptation | None]] = {}
    out["software"] = (learner.evaluate(*tasks, steps=steps), None)
    log("software adapted")
    quantised = OnChipAdapter(model, learner.config, quantised_config(base))
    deployed = [("software_4bit", quantised, 0.0)]
    for d in devices:  # one deployment per device: its features are programmed once, then age
        adapter = OnChipAdapter(model, learner.config, device_config(base, d))
        deployed += [(f"{d}_{time_label(t)}", adapter, t) for t in times_s]
    for name, adapter, t_s in deployed:
        result = adapter.adapt(*tasks, t_s=t_s, steps=steps, generator=generator(name))
        out[name] = (result.evaluation, result)
        log(f"{name} adapted: {result.writes.float().mean():.0f} pulses per adaptation")
    return out
