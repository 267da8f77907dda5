"""Benchmark: memcim against plain torch and the peer simulators, in one process.

Each row times the same shapes on torch (the baseline, always), memcim, and the peers that are
importable:

- ``aihwkit`` (IBM's C++ tiles; ``pip install aihwkit``, which builds from source): an
  ``AnalogLinear`` / ``AnalogConv2d`` with ``InferenceRPUConfig`` (PCM noise model, 7-bit DAC,
  9-bit ADC, output noise).
- ``aihwkit_lightning`` (``pip install aihwkit-lightning``; the torch variant on CPU): its
  ``AnalogLinear`` / ``AnalogConv2d`` with 8-bit input and output quantisation
  (``inp_res = out_res = 254``, an input range per layer, output bound 10), output noise
  0.04 and, in training, fresh Gaussian weight noise at every forward (``ADD_NORMAL``,
  std 0.05 of max |W|: the size of PCM's programming noise on a differential pair, which
  memcim's training draws per weight from the device's noise table; 0.01-0.057 of w_max).
  It has no device model, drift or read noise at inference and does not clip weights in the
  forward pass (memcim clips at 2.5 std), so it does less physics than memcim and aihwkit.

memcim runs its default ``CIMConfig`` with PCM devices read at t = 1 h (8-bit DAC and ADC,
differential pairs, drift compensation), with ``per_time`` read noise (the default: one noise
realisation per read time) and, for the linear rows, ``per_read`` (fresh noise every read) and
``convert(model)`` with nothing set ("memcim default": read at t = 0). The training rows also
time ``CIMConfig(compile=True)`` ("memcim compiled": the per-weight training noise through
``torch.compile``) where a C++ compiler is found.

Rows: Linear 784 → 256 in eval at batch 1, 64 and 1024; Conv2d 16 → 32, 3 × 3, batch 64 of
16 × 16, eval; one training step (forward + backward) of the Linear at batch 128 and 1024. Each
at one and at two torch threads. Times are medians of interleaved rounds; the spread is the
range of the round medians. Then, for the MLP 784-256-128-10 on 60 000 MNIST-sized images
(random pixels; only the time matters): one hardware-aware training epoch (Adam, batch 128)
and an evaluation of 10 000 images (batch 1000), each run once per framework in interleaved
parts (a tenth of the epoch, one evaluation batch). Between the two, memcim deploys the
trained weights: it programs the 235 000 weights onto 470 000 PCM devices and takes the
drift-calibration reads at t = 1 h, timed as a row of its own (as aihwkit users call
``program_analog_weights`` / ``drift_analog_weights`` before evaluating; aihwkit-lightning
has nothing to program), so the evaluation row times reading. Then the peak
resident memory (``VmHWM``) of a fresh process per framework that builds the MLP and runs
that evaluation (imports included, alike for all).

On a GPU (``--device cuda``) every model and input lives on the device and every timed call
ends with a synchronisation; the thread counts and the peak-memory line are CPU-only.

Run: ``python benchmarks/peers.py [--repeats N] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import textwrap
import time

import torch
from torch import nn

from memcim._compile import compiler_available
from memcim.crossbar import TileConfig
from memcim.devices import PCM
from memcim.nn import CIMConfig, cim_layers, convert, drift_to, program
from timing import median_ms

#: Where the models and inputs live (``--device``).
_DEVICE = torch.device("cpu")


def _sync() -> None:
    """Wait for the device's queued work, so that a timed call includes it."""
    if _DEVICE.type == "cuda":
        torch.cuda.synchronize(_DEVICE)
    elif _DEVICE.type == "mps":
        torch.mps.synchronize()


def _memcim(module: nn.Module, read_noise: str = "per_time", compile: bool = False) -> nn.Module:
    tile = TileConfig(device=PCM(), read_noise=read_noise)
    chip = convert(copy.deepcopy(module), CIMConfig(tile=tile, seed=0, compile=compile))
    drift_to(chip, 3600.0)
    return chip


def _lightning(module: nn.Module) -> nn.Module | None:
    try:
        from aihwkit_lightning.nn.conversion import convert_to_analog
        from aihwkit_lightning.simulator.configs import (
            TorchInferenceRPUConfig,
            WeightNoiseInjectionType,
        )
    except ImportError:
        return None
    config = TorchInferenceRPUConfig()
    config.modifier.noise_type = WeightNoiseInjectionType.ADD_NORMAL  # training forwards only
    config.modifier.std_dev = 0.05
    config.forward.inp_res = config.forward.out_res = 254
    config.forward.out_noise = 0.04
    config.forward.out_bound = 10.0  # ADC range (in units of the input range x |w|max)
    config.pre_post.input_range.enable = True  # the DAC's range, learned and held per layer
    return convert_to_analog(copy.deepcopy(module), config)


def _aihwkit(module: nn.Module) -> nn.Module | None:
    try:
        from aihwkit.inference import PCMLikeNoiseModel
        from aihwkit.nn.conversion import convert_to_analog
        from aihwkit.simulator.configs import InferenceRPUConfig
    except ImportError:
        return None
    config = InferenceRPUConfig()
    config.noise_model = PCMLikeNoiseModel(g_max=25.0)
    return convert_to_analog(copy.deepcopy(module), config)


def _models(module: nn.Module, with_per_read: bool, training: bool = False) -> dict[str, nn.Module]:
    models = {"torch": module, "memcim": _memcim(module)}
    if with_per_read:
        models["memcim per_read"] = _memcim(module, "per_read")
        models["memcim default"] = convert(copy.deepcopy(module))  # convert's own defaults
    if training and compiler_available():
        models["memcim compiled"] = _memcim(module, compile=True)  # CIMConfig(compile=True)
    for name, build in (("aihwkit", _aihwkit), ("lightning", _lightning)):
        peer = build(module)
        if peer is not None:
            models[name] = peer
    return {name: model.to(_DEVICE) for name, model in models.items()}


def _inference(model: nn.Module, x: torch.Tensor):
    model.eval()

    def run() -> None:
        with torch.no_grad():
            model(x)
        _sync()

    return run


def _train_step(model: nn.Module, x: torch.Tensor):
    model.train()

    def run() -> None:
        model.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        _sync()

    return run


def _time(runs: dict, repeats: int, rounds: int = 5) -> dict[str, tuple[float, float, float]]:
    """(median, lowest, highest round median) in ms for every run, rounds interleaved."""
    for fn in runs.values():
        for _ in range(3):
            fn()
    per_round: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            per_round[name].append(median_ms(fn, max(1, repeats // rounds)))
    return {name: (statistics.median(v), min(v), max(v)) for name, v in per_round.items()}


def _row(label: str, times: dict[str, tuple[float, float, float]]) -> None:
    base = times["torch"][0]
    cells = [f"{name} {t:.3f} ms [{lo:.3f}-{hi:.3f}] {t / base:5.1f}x"
             for name, (t, lo, hi) in times.items()]  # fmt: skip
    peers = [p for p in ("aihwkit", "lightning") if p in times]
    ours = [m for m in ("memcim", "memcim compiled") if m in times]
    ratios = [f"{m}/{p} {times[m][0] / times[p][0]:.2f}" for m in ours for p in peers]
    print(f"{label:<34} " + " | ".join(cells + ratios))


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))  # fmt: skip


def _epoch_parts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, parts: int) -> list:
    """One training epoch at batch 128 (Adam) as ``parts`` callables, each training on its
    consecutive share of the batches (run in order, they are the epoch)."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    starts = torch.arange(0, len(x), 128).tensor_split(parts)

    def part(share: torch.Tensor):
        def run() -> None:
            for i in share.tolist():
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(x[i : i + 128]), y[i : i + 128]).backward()
                opt.step()
            _sync()

        return run

    return [part(share) for share in starts]


def _evaluation_parts(model: nn.Module, x: torch.Tensor) -> list:
    """The evaluation of ``x`` at batch 1000 as one callable per batch."""

    def batch(i: int):
        def run() -> None:
            model.eval()
            with torch.no_grad():
                model(x[i : i + 1000])
            _sync()

        return run

    return [batch(i) for i in range(0, len(x), 1000)]


def _deploy(model: nn.Module) -> float:
    """Seconds to program a converted model's current weights and take the read caches at its
    read time (noise realisation, drift-calibration reads), column block by column block and
    row block by row block as its first forward would (the same random draws)."""
    start = time.perf_counter()
    program(model)
    for layer in cim_layers(model):
        tiles = layer.matrix.tiles
        for c in range(len(tiles[0])):
            for row in tiles:
                row[c].drift_factor(layer.t_s, generator=layer.generator)
    _sync()
    return time.perf_counter() - start


def _interleaved_seconds(parts: dict[str, list]) -> dict[str, float]:
    """Each framework's total time over its parts, run in rounds (part k of every framework
    before part k + 1), so that a slow spell of the machine falls on all of them alike."""
    totals = dict.fromkeys(parts, 0.0)
    for k in range(len(next(iter(parts.values())))):
        for name, runs in parts.items():
            start = time.perf_counter()
            runs[k]()
            totals[name] += time.perf_counter() - start
    return totals


def _evaluation(model: nn.Module, x: torch.Tensor) -> float:
    """Seconds to evaluate ``x`` at batch 1000 (its parts in one go)."""
    start = time.perf_counter()
    for run in _evaluation_parts(model, x):
        run()
    return time.perf_counter() - start


_RSS_SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {here!r})
    import peers
    mlp = peers._mlp()
    build = {{"torch": lambda m: m, "memcim": peers._memcim, "aihwkit": peers._aihwkit,
              "lightning": peers._lightning}}[{name!r}]
    model = build(mlp)
    x = torch.rand(10_000, 784, generator=torch.Generator().manual_seed(0))
    peers._evaluation(model, x)
    print(peers._own_peak_mb())
""")


def _own_peak_mb() -> float:
    """This process's peak resident memory (MB). Linux: ``VmHWM`` of /proc/self/status, the
    high-water mark of this program's own memory map; ``ru_maxrss`` would also count the
    parent's resident memory, which a child started by vfork/exec inherits as its maximum."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mb(name: str) -> float:
    """Peak resident memory (MB) of a fresh process that evaluates the MLP with ``name``."""
    here = str(__import__("pathlib").Path(__file__).resolve().parent)
    script = _RSS_SCRIPT.format(here=here, name=name)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    return float(out[-1])


def _mlp_rows(gen: torch.Generator) -> None:
    x = torch.rand(60_000, 784, generator=gen).to(_DEVICE)
    y = torch.randint(0, 10, (60_000,), generator=gen).to(_DEVICE)
    models = _models(_mlp(), False, training=True)
    for model in models.values():  # one step each, so that compiling is not timed as training
        _train_step(model, x[:128])()
    epochs = _interleaved_seconds({name: _epoch_parts(m, x, y, 10) for name, m in models.items()})
    deployed = {name: _deploy(m) for name, m in models.items() if name.startswith("memcim")}
    print(f"{'MLP deployment (memcim only)':<34} program 470k PCM devices and calibrate at "
          f"t = 1 h: {deployed['memcim']:.3f} s")  # fmt: skip
    evals = _interleaved_seconds({name: _evaluation_parts(m, x[:10_000])
                                  for name, m in models.items()})  # fmt: skip
    for label, times in (("MLP HWA epoch (60k, batch 128)", epochs),
                         ("MLP evaluation (10k, batch 1000)", evals)):  # fmt: skip
        base = times["torch"]
        cells = [f"{n} {t:.2f} s {t / base:5.1f}x" for n, t in times.items()]
        ratios = [f"{m}/{p} {times[m] / times[p]:.2f}"
                  for m in ("memcim", "memcim compiled") if m in times
                  for p in ("aihwkit", "lightning") if p in times]  # fmt: skip
        print(f"{label:<34} " + " | ".join(cells + ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--device", default="cpu", help="torch device to time on (e.g. cuda)")
    args = parser.parse_args()
    global _DEVICE
    _DEVICE = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    linear = nn.Linear(784, 256)
    conv = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1))
    dense = nn.Sequential(linear)
    for name, build in (("aihwkit", _aihwkit), ("lightning", _lightning)):
        if build(dense) is None:
            print(f"{name}: not importable here, skipped (see this script's docstring)")
    on_cpu = _DEVICE.type == "cpu"
    for threads in (1, 2) if on_cpu else (torch.get_num_threads(),):
        torch.set_num_threads(threads)
        print(f"\ntorch threads: {threads}" if on_cpu else f"\ndevice: {_DEVICE}")
        for batch in (1, 64, 1024):
            x = torch.rand(batch, 784, generator=gen).to(_DEVICE)
            runs = {n: _inference(m, x) for n, m in _models(dense, True).items()}
            _row(f"Linear 784->256 eval, batch {batch}", _time(runs, args.repeats))
        x = torch.rand(64, 16, 16, 16, generator=gen).to(_DEVICE)
        runs = {n: _inference(m, x) for n, m in _models(conv, False).items()}
        _row("Conv2d 16->32 3x3 eval, batch 64", _time(runs, args.repeats))
        for batch in (128, 1024):
            x = torch.rand(batch, 784, generator=gen).to(_DEVICE)
            runs = {n: _train_step(m, x) for n, m in _models(dense, False, training=True).items()}
            _row(f"Linear train step, batch {batch}", _time(runs, args.repeats))
        _mlp_rows(gen)
    if not on_cpu:
        return
    names = list(_models(_mlp(), False))
    rss = {name: _peak_rss_mb(name) for name in names}
    print("\npeak RSS of a process evaluating the MLP on 10k images: "
          + ", ".join(f"{n} {mb:.0f} MB" for n, mb in rss.items()))  # fmt: skip


if __name__ == "__main__":
    main()
