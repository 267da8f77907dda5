"""Benchmark: memcim against plain torch and the peer simulators, in one process.

Each row times the same shapes on torch (the baseline, always), memcim, and the peers that are
importable:

- ``aihwkit`` (IBM's C++ tiles; ``pip install aihwkit``, which builds from source): an
  ``AnalogLinear`` / ``AnalogConv2d`` with ``InferenceRPUConfig`` (PCM noise model, 7-bit DAC,
  9-bit ADC, output noise).
- ``aihwkit_lightning`` (``pip install aihwkit-lightning``; the torch variant on CPU): its
  ``AnalogLinear`` / ``AnalogConv2d`` with 8-bit input and output quantisation
  (``inp_res = out_res = 254``, an input range per layer, output bound 10) and output noise
  0.04. It injects noise for hardware-aware
  training; it has no device model, drift or read noise at inference, so it does less physics
  than memcim and aihwkit.

memcim runs its default ``CIMConfig`` with PCM devices read at t = 1 h (8-bit DAC and ADC,
differential pairs, drift compensation), with ``per_time`` read noise (the default: one noise
realisation per read time) and, for the linear rows, ``per_read`` (fresh noise every read).

Rows: Linear 784 → 256 in eval at batch 1, 64 and 1024; Conv2d 16 → 32, 3 × 3, batch 64 of
16 × 16, eval; one training step (forward + backward) of the Linear at batch 128 and 1024. Each
at one and at two torch threads. Times are medians of interleaved rounds (``timing.compare``);
the spread is the range of the round medians. Not yet here: a hardware-aware training epoch,
a 10 000-image evaluation of an MLP, and peak memory.

Run: ``python benchmarks/peers.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
from torch import nn

from memcim.crossbar import TileConfig
from memcim.devices import PCM
from memcim.nn import CIMConfig, convert, drift_to
from timing import median_ms


def _memcim(module: nn.Module, read_noise: str = "per_time") -> nn.Module:
    tile = TileConfig(device=PCM(), read_noise=read_noise)
    chip = convert(copy.deepcopy(module), CIMConfig(tile=tile, seed=0))
    drift_to(chip, 3600.0)
    return chip


def _lightning(module: nn.Module) -> nn.Module | None:
    try:
        from aihwkit_lightning.nn.conversion import convert_to_analog
        from aihwkit_lightning.simulator.configs import TorchInferenceRPUConfig
    except ImportError:
        return None
    config = TorchInferenceRPUConfig()
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


def _models(module: nn.Module, with_per_read: bool) -> dict[str, nn.Module]:
    models = {"torch": module, "memcim": _memcim(module)}
    if with_per_read:
        models["memcim per_read"] = _memcim(module, "per_read")
    for name, build in (("aihwkit", _aihwkit), ("lightning", _lightning)):
        peer = build(module)
        if peer is not None:
            models[name] = peer
    return models


def _inference(model: nn.Module, x: torch.Tensor):
    model.eval()

    def run() -> None:
        with torch.no_grad():
            model(x)

    return run


def _train_step(model: nn.Module, x: torch.Tensor):
    model.train()

    def run() -> None:
        model.zero_grad(set_to_none=True)
        model(x).square().mean().backward()

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
    ratios = [f"memcim/{p} {times['memcim'][0] / times[p][0]:.2f}" for p in peers]
    print(f"{label:<34} " + " | ".join(cells + ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    linear = nn.Linear(784, 256)
    conv = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1))
    dense = nn.Sequential(linear)
    for name, build in (("aihwkit", _aihwkit), ("lightning", _lightning)):
        if build(dense) is None:
            print(f"{name}: not importable here, skipped (see this script's docstring)")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        print(f"\ntorch threads: {threads}")
        for batch in (1, 64, 1024):
            x = torch.rand(batch, 784, generator=gen)
            runs = {n: _inference(m, x) for n, m in _models(dense, True).items()}
            _row(f"Linear 784->256 eval, batch {batch}", _time(runs, args.repeats))
        x = torch.rand(64, 16, 16, 16, generator=gen)
        runs = {n: _inference(m, x) for n, m in _models(conv, False).items()}
        _row("Conv2d 16->32 3x3 eval, batch 64", _time(runs, args.repeats))
        for batch in (128, 1024):
            x = torch.rand(batch, 784, generator=gen)
            runs = {n: _train_step(m, x) for n, m in _models(dense, False).items()}
            _row(f"Linear train step, batch {batch}", _time(runs, args.repeats))


if __name__ == "__main__":
    main()
