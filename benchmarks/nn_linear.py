"""Benchmark: ``CIMLinear`` against ``nn.Linear`` (and aihwkit's analog layer when installed).

784 → 256, batch 1024, PCM (read noise, drift compensation), 8-bit DAC and ADC, differential
pairs — all defaults of :class:`memcim.nn.CIMConfig` except the device. Two timings, each
against ``nn.Linear`` run alternately in the same process:

* inference forward (``eval()``: weights programmed once, devices read at t = 1 h);
* one training step (``train()``: hardware-aware forward with device noise and quantisers,
  backward through the ideal weights) against ``nn.Linear`` forward + backward.

When ``aihwkit`` is importable, its ``AnalogLinear`` with ``InferenceRPUConfig`` is timed on
the same shapes (forward only); otherwise the script says it was skipped.

Run: ``python benchmarks/nn_linear.py [--repeats N]``.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from memcim.crossbar import TileConfig
from memcim.devices import PCM
from memcim.nn import CIMConfig, CIMLinear, drift_to
from timing import compare


def _aihwkit_forward(x: torch.Tensor, weight: torch.Tensor):
    try:
        from aihwkit.nn import AnalogLinear
        from aihwkit.simulator.configs import InferenceRPUConfig
    except ImportError:
        return None
    layer = AnalogLinear(784, 256, bias=True, rpu_config=InferenceRPUConfig())
    layer.set_weights(weight, torch.zeros(256))
    layer.eval()
    return lambda: layer(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1024, 784, generator=gen)
    digital = nn.Linear(784, 256)
    analog = CIMLinear(784, 256, config=CIMConfig(tile=TileConfig(device=PCM())))
    with torch.no_grad():
        analog.weight.copy_(digital.weight)
        analog.bias.copy_(digital.bias)

    # Inference forward.
    digital.eval()
    analog.eval()
    drift_to(analog, 3600.0)
    with torch.no_grad():
        fwd = compare({"nn.Linear": lambda: digital(x), "CIMLinear": lambda: analog(x)},
                       args.repeats)  # fmt: skip

    # One training step: forward, backward (no optimiser update, identical for both).
    digital.train()
    analog.train()
    x_grad = x.clone().requires_grad_(True)

    def step(layer):
        def run():
            layer.zero_grad(set_to_none=True)
            layer(x_grad).square().mean().backward()

        return run

    train = compare({"nn.Linear": step(digital), "CIMLinear": step(analog)}, args.repeats)

    print(f"torch threads: {torch.get_num_threads()}  batch: 1024  784 -> 256, PCM, 8-bit DAC/ADC")
    ratio_f = fwd["CIMLinear"] / fwd["nn.Linear"]
    ratio_t = train["CIMLinear"] / train["nn.Linear"]
    print(f"forward   nn.Linear {fwd['nn.Linear']:7.3f} ms   CIMLinear {fwd['CIMLinear']:7.3f} ms"
          f"   ratio {ratio_f:5.2f}  (target <= 1.5)")  # fmt: skip
    print(f"train     nn.Linear {train['nn.Linear']:7.3f} ms   CIMLinear "
          f"{train['CIMLinear']:7.3f} ms   ratio {ratio_t:5.2f}  (target <= 2.0)")  # fmt: skip

    aihw = _aihwkit_forward(x, digital.weight.detach())
    if aihw is None:
        print("aihwkit: not importable here, skipped (pip install aihwkit to compare)")
    else:
        with torch.no_grad():
            res = compare({"nn.Linear": lambda: digital(x), "aihwkit": aihw}, args.repeats)
        print(f"aihwkit AnalogLinear (InferenceRPUConfig) forward {res['aihwkit']:7.3f} ms   "
              f"ratio {res['aihwkit'] / res['nn.Linear']:5.2f} vs nn.Linear")  # fmt: skip


if __name__ == "__main__":
    main()
