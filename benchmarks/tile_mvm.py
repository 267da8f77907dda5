"""Benchmark: ``Tile.mvm`` against ``torch.nn.functional.linear`` on the same shapes.

784 × 256 weights, batch 1024, PCM with read noise at t = 1 h, 8-bit DAC and ADC, differential
pair. Both run in this process, interleaved, and the ratio of median times is printed.

Run: ``python benchmarks/tile_mvm.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from memcim.crossbar import ConverterConfig, MappingConfig, Tile, TileConfig
from memcim.devices import PCM


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    weights = torch.randn(256, 784, generator=gen) * 0.05
    x = torch.rand(args.batch, 784, generator=gen)
    config = TileConfig(
        device=PCM(),
        mapping=MappingConfig(scheme="differential"),
        dac=ConverterConfig(bits=8),
        adc=ConverterConfig(bits=8),
    )
    tile = Tile(784, 256, config).program(weights, generator=gen)
    tile.calibrate(x, t_s=3600.0, generator=gen)

    def analog():
        return tile.mvm(x, t_s=3600.0, generator=gen)

    def digital():
        return F.linear(x, weights)

    for _ in range(10):  # warm-up, including the drift cache for t = 1 h
        analog()
        digital()
    # Interleave the two so that machine load affects both alike.
    t_tile, t_lin = [], []
    for _ in range(5):
        t_tile.append(_median_ms(analog, args.repeats // 5))
        t_lin.append(_median_ms(digital, args.repeats // 5))
    ms_tile, ms_lin = statistics.median(t_tile), statistics.median(t_lin)
    print(f"torch threads: {torch.get_num_threads()}  batch: {args.batch}")
    print(f"F.linear          : {ms_lin:8.3f} ms")
    print(f"Tile.mvm (PCM, 8b): {ms_tile:8.3f} ms")
    print(f"ratio Tile.mvm / F.linear = {ms_tile / ms_lin:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
