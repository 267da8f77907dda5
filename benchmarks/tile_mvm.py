"""Benchmark: ``Tile.mvm`` against ``torch.nn.functional.linear`` on the same shapes.

784 × 256 weights, batch 1024, PCM with read noise at t = 1 h, 8-bit DAC and ADC, differential
pair. Both read-noise modes are timed: ``per_time`` (what the default ``read_noise="auto"``
picks for PCM's 1/f noise: one noise realisation per read time, as aihwkit samples it) and
``per_read`` (an independent draw for every cell at every input vector, added exactly in the
output domain, which costs a second matrix product, Σ x² σ², and one Gaussian per output). All
run in this process, interleaved, and the ratios of median times are printed.

Run: ``python benchmarks/tile_mvm.py [--repeats N]``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from memcim.crossbar import ConverterConfig, MappingConfig, Tile, TileConfig
from memcim.devices import PCM
from timing import compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    weights = torch.randn(256, 784, generator=gen) * 0.05
    x = torch.rand(args.batch, 784, generator=gen)
    tiles = {}
    for mode in ("per_time", "per_read"):
        config = TileConfig(
            device=PCM(),
            mapping=MappingConfig(scheme="differential"),
            dac=ConverterConfig(bits=8),
            adc=ConverterConfig(bits=8),
            read_noise=mode,
        )
        tiles[mode] = Tile(784, 256, config).program(weights, generator=gen)
        tiles[mode].calibrate(x, t_s=3600.0, generator=gen)

    def digital():
        return F.linear(x, weights)

    runs = {"F.linear": digital}
    for mode, tile in tiles.items():
        runs[mode] = lambda tile=tile: tile.mvm(x, t_s=3600.0, generator=gen)
    ms = compare(runs, args.repeats, warmup=10)  # warm-up fills the drift caches for t = 1 h
    print(f"torch threads: {torch.get_num_threads()}  batch: {args.batch}  shape: 784 x 256")
    print(f"F.linear                          : {ms['F.linear']:8.3f} ms")
    labels = {
        "per_time": "Tile.mvm per_time (PCM default)",
        "per_read": "Tile.mvm per_read              ",
    }
    for mode, label in labels.items():
        ratio = ms[mode] / ms["F.linear"]
        print(f"{label}   : {ms[mode]:8.3f} ms   ratio {ratio:5.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
