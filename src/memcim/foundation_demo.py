"""``memcim demo --foundation``: what device and periphery non-idealities do to a matrix and a
network.

Two parts, both computed on the spot (nothing cached):

1. Mean relative error of a 784 × 256 analog MVM on PCM and filamentary RRAM at 1 s, 1 h,
   1 day and 1 year after programming: without global drift compensation, with it measured
   by calibration reads as a chip does (the tile default, ``drift_compensation_mode="read"``)
   and with the noise-free oracle factor (``"oracle"``), for comparison.
2. A small MLP trained in software on scikit-learn's 8 × 8 digits, programmed onto simulated
   arrays; test accuracy as each non-ideality is switched on in turn.

``memcim demo`` itself runs the Bayesian demo (:mod:`memcim.demo`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from memcim.crossbar import ConverterConfig, TileConfig, TiledMatrix
from memcim.data import load_digits
from memcim.devices import PCM, Device, FilamentaryRRAM, IdealDevice
from memcim.experiments.mvm_error import relative_mvm_error
from memcim.training import init_default_, train

TIMES_S = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86_400.0, "1 year": 3.15e7}
IDEAL_IO = {"dac": ConverterConfig(bits=None), "adc": ConverterConfig(bits=None)}


def plot_error_vs_time(devices: dict[str, Device], seed: int, path: Path) -> Path:
    """PNG of the relative MVM error from 1 s to 1 year, with and without compensation (the
    tile default: factor from calibration reads)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [10.0**k for k in range(8)] + [3.15e7]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (name, device), color in zip(devices.items(), ("tab:red", "tab:blue"), strict=False):
        for comp, style in ((False, "--"), (True, "-")):
            errors = [relative_mvm_error(device, t, compensation=comp, seed=seed) for t in times]
            label = (
                f"{name}, {'drift compensated (calibration reads)' if comp else 'no compensation'}"
            )
            ax.plot(times, [100 * e for e in errors], style, color=color, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("time since programming (s)")
    ax.set_ylabel("mean relative MVM error (%)")
    ax.set_title("784 x 256 matrix, 8-bit DAC/ADC, differential pairs")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _train_mlp(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    init_default_(model, generator)
    train(model, x, y, epochs=20, lr=1e-2, batch_size=64, generator=generator, progress=False)
    return model.eval()


def analog_accuracy(
    model: nn.Sequential,
    config: TileConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    t_s: float,
    generator: torch.Generator,
) -> float:
    """Test accuracy with every Linear layer's weights on a TiledMatrix (biases digital)."""
    h = x
    for layer in model:
        if isinstance(layer, nn.Linear):
            w = layer.weight.detach()
            matrix = TiledMatrix(*w.shape, config).program(w, generator=generator)
            h = matrix.mvm(h, t_s=t_s, generator=generator) + layer.bias.detach()
        else:
            h = layer(h)
    return (h.argmax(-1) == y).float().mean().item()


def run(
    out: Path | None = None,
    *,
    seed: int = 0,
    quick: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, float]:
    """Run the demo, print its tables, return the metrics (and write ``out/results.json``)."""
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    metrics: dict[str, float] = {}
    devices = {"PCM": PCM(), "FilamentaryRRAM": FilamentaryRRAM()}
    times = dict(list(TIMES_S.items())[:3]) if quick else TIMES_S

    echo("1) Mean relative MVM error, 784 x 256 matrix, 8-bit DAC/ADC, differential pairs")
    echo("   global drift compensation: none; from calibration reads (the tile default, noisy")
    echo("   like any read); oracle (noise-free factor, not measurable on a chip)")
    echo(f"   {'device':<16}{'time':>8}{'none':>10}{'calibration read':>18}{'oracle':>10}")
    for name, device in devices.items():
        for label, t_s in times.items():
            raw = relative_mvm_error(device, t_s, compensation=False, seed=seed)
            comp, oracle = (
                relative_mvm_error(device, t_s, compensation=True, seed=seed, compensation_mode=m)
                for m in ("read", "oracle")
            )
            key = f"{name}_{label.replace(' ', '')}"
            metrics[f"mvm_error_{key}"] = raw
            metrics[f"mvm_error_{key}_compensated"] = comp
            metrics[f"mvm_error_{key}_oracle"] = oracle
            echo(f"   {name:<16}{label:>8}{raw:>10.2%}{comp:>18.2%}{oracle:>10.2%}")

    x_tr, y_tr, x_te, y_te = load_digits(seed=seed)  # stratified 70/30 split
    model = _train_mlp(x_tr, y_tr, gen)
    with torch.no_grad():
        software = (model(x_te).argmax(-1) == y_te).float().mean().item()
    metrics["accuracy_software"] = software
    echo("\n2) 64-64-10 MLP on scikit-learn digits (540 test images), weights on arrays")
    echo(f"   {'what is on':<52}{'accuracy':>10}")
    echo(f"   {'software (float32)':<52}{software:>10.2%}")
    pcm = PCM()
    # (label, metric key, tile configuration, read time): keys are explicit so that no two
    # rows share one.
    steps = [
        ("ideal devices, 8-bit DAC/ADC", "ideal_devices", TileConfig(device=IdealDevice()), 0.0),
        (
            "PCM programming noise only",
            "PCM_programming_noise_only",
            TileConfig(device=replace(pcm, read_noise_scale=0.0, drift_scale=0.0), **IDEAL_IO),
            0.0,
        ),
        ("PCM + read noise + 8-bit DAC/ADC, t = 1 s", "PCM_and_read_noise_and_8-bit_DAC/ADC",
         TileConfig(device=pcm), 1.0),
        ("PCM at 1 day, no drift compensation", "PCM_at_1_day_uncompensated",
         TileConfig(device=pcm, drift_compensation=False), 86_400.0),
        ("PCM at 1 day, drift compensated (calibration reads)", "PCM_at_1_day",
         TileConfig(device=pcm), 86_400.0),
        ("FilamentaryRRAM at 1 day", "FilamentaryRRAM_at_1_day",
         TileConfig(device=FilamentaryRRAM()), 86_400.0),
    ]  # fmt: skip
    with torch.no_grad():
        for label, key, config, t_s in steps:
            acc = analog_accuracy(model, config, x_te, y_te, t_s, gen)
            metrics[f"accuracy_{key}"] = acc
            echo(f"   {label:<52}{acc:>10.2%}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        figure = plot_error_vs_time(devices, seed, out / "mvm_error_vs_time.png")
        echo(f"figure written to {figure}")
    metrics["wall_s"] = time.perf_counter() - start
    echo(f"\n(done in {metrics['wall_s']:.1f} s; seed {seed})")
    if out is not None:
        (out / "results.json").write_text(
            json.dumps({"experiment": "demo", "seed": seed, "metrics": metrics}, indent=2)
        )
        echo(f"results written to {out / 'results.json'}")
    return metrics
