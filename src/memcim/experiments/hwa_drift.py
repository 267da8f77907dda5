"""Hardware-aware training against device noise and drift: Fashion-MNIST on PCM and RRAM.

For each model (an MLP 784-256-128-10 by default; a small CNN with
``models=("mlp", "cnn")``) the experiment measures the test accuracy (Fashion-MNIST by
default, MNIST with ``dataset="mnist"``) of

a. ``software``: the float network, trained with Adam;
b. ``converted``: the software weights put on crossbars with :func:`memcim.nn.convert`, no
   retraining, evaluated in eval mode (programmed once, read at each time with
   :func:`memcim.nn.drift_to`);
c. ``hwa``: the same conversion, then fine-tuned in train mode (device noise of
   ``CIMConfig.train_t_s`` injected at every step, DAC/ADC quantisation, clipping), evaluated
   like (b);

on PCM (:class:`~memcim.devices.PCM`) and filamentary RRAM
(:class:`~memcim.devices.FilamentaryRRAM`) at 1 s, 1 h, 1 day and 1 year after programming,
with :class:`~memcim.crossbar.TileConfig`'s default periphery (global drift compensation on).

The default setting is chosen so that plain conversion visibly fails: the PCM cells have
``pcm_prog_noise_scale`` = 6 times the published programming noise (a cell programmed with
fewer program-and-verify iterations than the fitted one), and Fashion-MNIST leaves the
networks less margin than MNIST. On published PCM/RRAM and MNIST plain conversion already
comes within a point of software, so there is little for hardware-aware training to show
(``--set dataset=mnist --set pcm_prog_noise_scale=1``).

Metrics are flat names ``accuracy_<model>_software`` and
``accuracy_<model>_<device>_<converted|hwa>_<time>`` (mean over ``eval_repeats`` chips, with
``..._std`` beside it) with times labelled ``1s``, ``1h``, ``1day``, ``1year`` (other times:
e.g. ``30s``). ``results.json`` and ``accuracy_vs_time.png``
are rewritten after every model/device pair, so a run that is stopped keeps what it finished.

Randomness: every stage (training a model, shuffling, programming, read noise) draws from its
own ``torch.Generator`` seeded from ``seed`` and the stage's name, so a model's numbers do not
depend on which other models or devices the config lists. Same seed, same numbers on CPU.

Command line: ``memcim run hwa-drift --out runs/hwa [--set epochs=3 ...] [--seed 0]``, or
``python -m memcim.experiments.hwa_drift --out runs/hwa [--quick] [--seed 0]`` for the preset
quick run and the Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from memcim._errors import ConfigError, require
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.data import default_data_dir, load_fashion_mnist, load_mnist
from memcim.devices import PCM, Device, FilamentaryRRAM
from memcim.experiments.registry import Result, register, stage_generator, stage_seed, time_label
from memcim.experiments.runner import versions, write_json_atomic
from memcim.nn import CIMConfig, convert, drift_to, program
from memcim.nn import seed as seed_layers
from memcim.training import accuracy, init_default_, train

EXPERIMENT = "hwa-drift"
ModelName = Literal["mlp", "cnn"]
DeviceName = Literal["pcm", "rram"]
DatasetName = Literal["mnist", "fashion_mnist"]
DATASETS = {"mnist": load_mnist, "fashion_mnist": load_fashion_mnist}
DATASET_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
MODELS: tuple[ModelName, ...] = ("mlp", "cnn")
DEVICES: dict[DeviceName, Callable[[], Device]] = {"pcm": PCM, "rram": FilamentaryRRAM}
VARIANTS = ("converted", "hwa")


@dataclass(frozen=True, kw_only=True)
class HwaDriftConfig:
    """What the ``hwa-drift`` experiment trains and evaluates.

    Attributes:
        models: any of ``"mlp"`` (784-256-128-10, ReLU) and ``"cnn"`` (conv 1→16 3×3, ReLU,
            max-pool 2, conv 16→32 3×3, ReLU, max-pool 2, linear 800→10).
        devices: any of ``"pcm"`` (:class:`~memcim.devices.PCM`, with
            ``pcm_prog_noise_scale``) and ``"rram"`` (:class:`~memcim.devices.FilamentaryRRAM`,
            as published), with default tiles (differential pairs, global drift compensation
            from calibration reads) and ``dac_bits``/``adc_bits`` converters.
        dataset: ``"fashion_mnist"`` (default) or ``"mnist"``.
        pcm_prog_noise_scale: :attr:`PCM.prog_noise_scale <memcim.devices.PCM>`, the
            multiplier on PCM's published programming noise σ_prog (1 = as published).
        dac_bits, adc_bits: converter resolutions (``None``: ideal converters).
        times_s: read times after programming (s), each > 0.
        epochs: software training epochs (Adam).
        batch_size: training mini-batch size.
        lr: software learning rate.
        hwa_epochs: hardware-aware fine-tuning epochs, starting from the software weights.
        hwa_lr: fine-tuning learning rate.
        clip_sigma: ``CIMConfig.clip_sigma``: weights are clipped to ± clip_sigma · std(W) per
            layer for the converted and the HWA models alike; ``None`` disables clipping.
        train_t_s: ``CIMConfig.train_t_s``: read time whose device noise HWA training injects.
        train_subset: train on this many images drawn at random (``None``: all 60 000).
        test_subset: test on the first this many test images (``None``: all 10 000).
        eval_batch_size: images per inference batch; the first batch a layer sees after
            programming also calibrates its ADC range.
        eval_repeats: independent chips (fresh devices, programmed once, read at every time)
            per converted/HWA model; accuracies are their mean, ``..._std`` metrics their sample
            std (when > 1). The converted and the HWA model of a pair share the chips' seeds.
        data_dir: folder holding ``fashion_mnist.npz`` / ``mnist.npz`` (or the file itself);
            ``None``: :func:`memcim.data.default_data_dir`.
    """

    # The CNN is not in the default: on two cores it costs most of the run time.
    models: tuple[ModelName, ...] = ("mlp",)
    devices: tuple[DeviceName, ...] = ("pcm", "rram")
    dataset: DatasetName = "fashion_mnist"
    pcm_prog_noise_scale: float = 6.0
    dac_bits: int | None = 8
    adc_bits: int | None = 8
    times_s: tuple[float, ...] = (1.0, 3600.0, 86_400.0, 3.15e7)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    hwa_epochs: int = 2
    hwa_lr: float = 1e-3
    clip_sigma: float | None = 2.5
    train_t_s: float = 0.0
    train_subset: int | None = None
    test_subset: int | None = None
    eval_batch_size: int = 1000
    eval_repeats: int = 3
    data_dir: str | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("models", MODELS), ("devices", tuple(DEVICES))):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            require(
                len(value) > 0 and len(set(value)) == len(value) and set(value) <= set(allowed),
                f"HwaDriftConfig.{name}",
                value,
                f"must be a non-empty tuple of distinct names from {allowed}",
            )
        times = tuple(float(t) for t in self.times_s)
        object.__setattr__(self, "times_s", times)
        require(
            len(times) > 0 and all(math.isfinite(t) and t > 0 for t in times),
            "HwaDriftConfig.times_s",
            self.times_s,
            "must be a non-empty tuple of finite times > 0 s",
        )
        require(
            len({time_label(t) for t in times}) == len(times),
            "HwaDriftConfig.times_s",
            self.times_s,
            "must not repeat a time",
        )
        for name, low in (("epochs", 1), ("hwa_epochs", 0), ("batch_size", 1)):
            value = getattr(self, name)
            require(
                isinstance(value, int) and not isinstance(value, bool) and value >= low,
                f"HwaDriftConfig.{name}",
                value,
                f"must be an int >= {low}",
            )
        for name in ("eval_batch_size", "eval_repeats"):
            value = getattr(self, name)
            require(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"HwaDriftConfig.{name}",
                value,
                "must be an int >= 1",
            )
        for name in ("lr", "hwa_lr"):
            value = getattr(self, name)
            require(
                isinstance(value, int | float) and math.isfinite(value) and value > 0,
                f"HwaDriftConfig.{name}",
                value,
                "must be finite and > 0",
            )
        for name in ("train_subset", "test_subset"):
            value = getattr(self, name)
            if value is not None:
                require(
                    isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                    f"HwaDriftConfig.{name}",
                    value,
                    "must be None (the whole split) or an int >= 1",
                )
        scale = self.pcm_prog_noise_scale
        require(
            isinstance(scale, int | float) and math.isfinite(scale) and scale >= 0,
            "HwaDriftConfig.pcm_prog_noise_scale",
            scale,
            "must be finite and >= 0 (1 = the published PCM programming noise)",
        )
        for name in ("dac_bits", "adc_bits"):
            value = getattr(self, name)
            require(
                value is None
                or (isinstance(value, int) and not isinstance(value, bool) and value >= 2),
                f"HwaDriftConfig.{name}",
                value,
                "must be None (ideal converter) or an int >= 2",
            )
        require(
            self.dataset in DATASETS,
            "HwaDriftConfig.dataset",
            self.dataset,
            f"must be one of {tuple(DATASETS)}",
        )
        # PCM, ConverterConfig and CIMConfig validate the noise scale, the converter bits,
        # clip_sigma and train_t_s; build them here so a bad value fails before any training.
        try:
            self.cim_config(self.device("pcm"))
        except ConfigError as err:
            raise ConfigError(f"HwaDriftConfig: {err}") from err

    def device(self, name: DeviceName) -> Device:
        """The cell model of device ``name`` in this setting."""
        device = DEVICES[name]()
        if isinstance(device, PCM):
            device = replace(device, prog_noise_scale=self.pcm_prog_noise_scale)
        return device

    def cim_config(self, device: Device, *, seed: int = 0) -> CIMConfig:
        """The crossbar configuration of the converted and HWA models on ``device``."""
        tile = TileConfig(
            device=device,
            dac=ConverterConfig(bits=self.dac_bits),
            adc=ConverterConfig(bits=self.adc_bits),
        )
        return CIMConfig(
            tile=tile,
            clip_sigma=self.clip_sigma,
            train_t_s=self.train_t_s,
            seed=seed,
        )

    @classmethod
    def quick(cls, **overrides) -> HwaDriftConfig:
        """A run of under a minute: 6000 training and 1000 test images, 3 + 1 epochs."""
        fields = {
            "epochs": 3,
            "hwa_epochs": 1,
            "train_subset": 6000,
            "test_subset": 1000,
            "eval_repeats": 1,
        }
        return cls(**{**fields, **overrides})


# --- models ----------------------------------------------------------------------------------
def build_model(name: str, generator: torch.Generator) -> nn.Sequential:
    """A freshly initialised ``"mlp"`` or ``"cnn"`` taking [N, 28, 28] images.

    Weights and biases are drawn U(±1/√fan_in) from ``generator`` (PyTorch's default init).
    """
    if name == "mlp":
        model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    elif name == "cnn":
        model = nn.Sequential(
            nn.Unflatten(1, (1, 28)),  # [N, 28, 28] -> [N, 1, 28, 28]
            nn.Conv2d(1, 16, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 26 -> 13
            nn.Conv2d(16, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 11 -> 5
            nn.Flatten(),
            nn.Linear(32 * 5 * 5, 10),
        )
    else:
        raise ConfigError(f"model={name!r} is invalid: must be one of {MODELS}")
    return init_default_(model, generator)


# --- training and evaluation ------------------------------------------------------------------
def accuracy_vs_time(
    model: nn.Module, x: Tensor, y: Tensor, times_s: Sequence[float], *, seed: int, batch_size: int
) -> list[float]:
    """Program the model's crossbars once, then test accuracy at each read time."""
    model.eval()
    seed_layers(model, seed)
    program(model)
    out = []
    for t_s in times_s:
        drift_to(model, t_s)
        out.append(accuracy(model, x, y, batch_size=batch_size))
    return out


# --- results ----------------------------------------------------------------------------------
def device_title(config: HwaDriftConfig, name: DeviceName) -> str:
    """``"PCM (6× σ_prog)"``-style panel title of device ``name``."""
    title = DEVICES[name]().__class__.__name__
    if name == "pcm" and config.pcm_prog_noise_scale != 1:
        title += f" ({config.pcm_prog_noise_scale:g}× σ_prog)"
    return title


def plot_accuracy_vs_time(
    metrics: dict[str, float], config: HwaDriftConfig, path: Path
) -> Path | None:
    """PNG of accuracy vs read time (log x): one panel per model and device, three variants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [
        (m, d)
        for m in config.models
        for d in config.devices
        if f"accuracy_{m}_{d}_hwa_{time_label(config.times_s[-1])}" in metrics
    ]
    if not pairs:
        return None
    cols = len(config.devices)
    rows = math.ceil(len(pairs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    times = list(config.times_s)
    for ax, (m, d) in zip(axes.flat, pairs, strict=False):
        software = 100 * metrics[f"accuracy_{m}_software"]
        ax.axhline(software, color="black", ls="--", lw=1, label="software (float)")
        for variant, color, marker in (("converted", "tab:red", "o"), ("hwa", "tab:blue", "s")):
            keys = [f"accuracy_{m}_{d}_{variant}_{time_label(t)}" for t in times]
            acc = [100 * metrics[k] for k in keys]
            std = [100 * metrics.get(f"{k}_std", 0.0) for k in keys]
            label = "converted, no HWA" if variant == "converted" else "HWA-trained"
            ax.errorbar(times, acc, yerr=std, color=color, marker=marker, capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_xticks(times, [time_label(t) for t in times])
        ax.set_title(f"{m.upper()} on {device_title(config, d)}", fontsize=10)
        ax.set_xlabel("time since programming")
        ax.set_ylabel(f"{DATASET_TITLES[config.dataset]} test accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(
    config: HwaDriftConfig,
    *,
    seed: int,
    out_dir: str | os.PathLike[str] | None,
    progress: bool = True,
) -> dict[str, float]:
    """Train, convert, fine-tune and evaluate every model on every device; return the metrics.

    Args:
        config: what to run.
        seed: seed of every generator (stages get seeds derived from it and their name).
        out_dir: folder for ``results.json`` and ``accuracy_vs_time.png`` (created); ``None``
            writes nothing.
        progress: tqdm bars (shown on a terminal only) and one status line per stage.

    Returns:
        Flat metrics, accuracies in [0, 1] (see the module docstring for the names).
    """
    start = time.perf_counter()
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    def say(message: str) -> None:
        if progress:
            print(message, flush=True)

    load = DATASETS[config.dataset]
    data = load(config.data_dir if config.data_dir is not None else default_data_dir())
    x_train, y_train, x_test, y_test = data
    if config.train_subset is not None and config.train_subset < len(y_train):
        subset_gen = stage_generator(seed, "train_subset")
        pick = torch.randperm(len(y_train), generator=subset_gen)
        pick = pick[: config.train_subset]
        x_train, y_train = x_train[pick], y_train[pick]
    if config.test_subset is not None:
        x_test, y_test = x_test[: config.test_subset], y_test[: config.test_subset]

    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}
    config_json = {**asdict(config), "data_dir": str(config.data_dir) if config.data_dir else None}

    def save(complete: bool) -> None:
        if out is None:
            return
        figure = plot_accuracy_vs_time(metrics, config, out / "accuracy_vs_time.png")
        payload = {
            "experiment": EXPERIMENT,
            "config": config_json,
            "seed": seed,
            "versions": versions(),
            "metrics": metrics,
            "timings_s": timings,
            "wall_s": time.perf_counter() - start,
            "complete": complete,
            "figure": None if figure is None else figure.name,
            "train_images": len(y_train),
            "test_images": len(y_test),
        }
        write_json_atomic(out / "results.json", payload)

    def fit(model: nn.Module, *, epochs: int, lr: float, gen_seed: int, desc: str) -> None:
        train(
            model,
            x_train,
            y_train,
            epochs=epochs,
            lr=lr,
            batch_size=config.batch_size,
            generator=torch.Generator().manual_seed(gen_seed),
            desc=desc,
            progress=progress,
        )

    for m in config.models:
        t0 = time.perf_counter()
        software = build_model(m, stage_generator(seed, m, "init"))
        fit(
            software,
            epochs=config.epochs,
            lr=config.lr,
            gen_seed=stage_seed(seed, m, "sw"),
            desc=f"{m} software",
        )
        metrics[f"accuracy_{m}_software"] = accuracy(
            software, x_test, y_test, batch_size=config.eval_batch_size
        )
        timings[f"{m}_software"] = time.perf_counter() - t0
        say(
            f"[{EXPERIMENT}] {m} software: {metrics[f'accuracy_{m}_software']:.2%} "
            f"({timings[f'{m}_software']:.0f} s)"
        )
        for d in config.devices:
            cim_seed = stage_seed(seed, m, d, "cim") % 2**31
            eval_seeds = [
                stage_seed(seed, m, d, "eval", str(r)) % 2**31 for r in range(config.eval_repeats)
            ]
            cim = config.cim_config(config.device(d), seed=cim_seed)
            for variant in VARIANTS:
                model = convert(copy.deepcopy(software), cim)
                if variant == "hwa" and config.hwa_epochs > 0:
                    t0 = time.perf_counter()
                    fit(
                        model,
                        epochs=config.hwa_epochs,
                        lr=config.hwa_lr,
                        gen_seed=stage_seed(seed, m, d, "hwa"),
                        desc=f"{m} {d} HWA",
                    )
                    timings[f"{m}_{d}_hwa_train"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                runs = torch.tensor(
                    [
                        accuracy_vs_time(
                            copy.deepcopy(model),  # a fresh chip per repeat (own D2D spread)
                            x_test,
                            y_test,
                            config.times_s,
                            seed=eval_seed,
                            batch_size=config.eval_batch_size,
                        )
                        for eval_seed in eval_seeds
                    ],
                    dtype=torch.float64,
                )  # [repeats, times]
                timings[f"{m}_{d}_{variant}_eval"] = time.perf_counter() - t0
                for i, t_s in enumerate(config.times_s):
                    key = f"accuracy_{m}_{d}_{variant}_{time_label(t_s)}"
                    metrics[key] = runs[:, i].mean().item()
                    if config.eval_repeats > 1:
                        metrics[f"{key}_std"] = runs[:, i].std().item()
                row = ", ".join(
                    f"{time_label(t)} {a:.2%}"
                    for t, a in zip(config.times_s, runs.mean(0).tolist(), strict=True)
                )
                say(
                    f"[{EXPERIMENT}] {m} {d} {variant}: {row} "
                    f"({time.perf_counter() - start:.0f} s since start)"
                )
            save(complete=False)
    save(complete=True)
    return metrics


@register(
    EXPERIMENT,
    HwaDriftConfig,
    "Fashion-MNIST accuracy vs time on PCM/RRAM: software, converted, HWA-trained",
)
def run_registered(config: HwaDriftConfig, *, seed: int, out_dir: Path, progress: bool) -> Result:
    """:func:`run` for the experiment runner, keeping the run's bookkeeping in results.json."""
    metrics = run(config, seed=seed, out_dir=out_dir, progress=progress)
    saved = json.loads((Path(out_dir) / "results.json").read_text())
    extra = {k: saved[k] for k in ("complete", "timings_s", "train_images", "test_images")}
    figures = [saved["figure"]] if saved.get("figure") else []
    return Result(metrics=metrics, artifacts=figures, extra=extra)


def markdown_table(metrics: dict[str, float], config: HwaDriftConfig) -> str:
    """The metrics as a Markdown table: one row per model/device/variant, one column per time.

    Accuracies in %; ``± s`` is the std over the ``eval_repeats`` chips.
    """
    labels = [time_label(t) for t in config.times_s]
    lines = [
        "| model | device | variant | " + " | ".join(labels) + " |",
        "|---|---|---|" + "---:|" * len(labels),
    ]
    for m in config.models:
        key = f"accuracy_{m}_software"
        if key not in metrics:
            continue
        sw = f"{100 * metrics[key]:.2f}"
        lines.append(f"| {m} | — | software | " + " | ".join([sw] * len(labels)) + " |")
        for d in config.devices:
            for v in VARIANTS:
                keys = [f"accuracy_{m}_{d}_{v}_{lab}" for lab in labels]
                if all(k in metrics for k in keys):
                    cells = " | ".join(
                        f"{100 * metrics[k]:.2f}"
                        + (f" ± {100 * metrics[k + '_std']:.2f}" if k + "_std" in metrics else "")
                        for k in keys
                    )
                    lines.append(f"| {m} | {d} | {v} | {cells} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m memcim.experiments.hwa_drift --out DIR [--quick] [--seed N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m memcim.experiments.hwa_drift",
        description="Accuracy vs time on PCM and RRAM: software, converted, HWA-trained.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for results and plot")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--quick", action="store_true", help="6000 train / 1000 test images, few epochs"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder or file of the data set (default: MEMCIM_DATA_DIR or ../shared/data)",
    )
    args = parser.parse_args(argv)
    config = HwaDriftConfig.quick() if args.quick else HwaDriftConfig()
    if args.data_dir is not None:
        config = replace(config, data_dir=args.data_dir)
    metrics = run(config, seed=args.seed, out_dir=args.out)
    print(markdown_table(metrics, config))
    print(f"results written to {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
