"""Fidelity: first-order IR-drop estimate and ignoring the wires, against the exact solve.

Passive (0T1R) square arrays with conductances uniform in 1–100 µS and inputs uniform in
0–0.2 V; both wire segments set to (r_wire / R_cell) · R_cell with R_cell = 1 / mean(g);
ideal drivers and virtual-ground sensing, so the wire ratio is the only parameter. The figure is
the mean over columns and input vectors of |I_approx − I_exact| / |I_exact|.

Run: ``python benchmarks/ir_drop_approx.py [--sizes 32 64 128 256] [--vectors 16]``.
"""

from __future__ import annotations

import argparse

import torch

from memcim.crossbar.circuit import CrossbarCircuit, first_order_currents, solve_crossbar

RATIOS = [1e-5, 1e-4, 1e-3, 1e-2]


def errors(size: int, ratio: float, vectors: int) -> tuple[float, float]:
    """(first-order, ignore-wires) mean relative column-current errors."""
    gen = torch.Generator().manual_seed(size)
    g = 1.0 + 99.0 * torch.rand(size, size, generator=gen, dtype=torch.float64)  # µS
    v = 0.2 * torch.rand(vectors, size, generator=gen, dtype=torch.float64)  # V
    r_wire = ratio * 1e6 / float(g.mean())  # Ω
    circuit = CrossbarCircuit(
        cell="0T1R", r_wire_row_ohm=r_wire, r_wire_col_ohm=r_wire, r_driver_ohm=0.0
    )
    exact = solve_crossbar(g, v, circuit)

    def mean_rel(approx: torch.Tensor) -> float:
        return float(((approx - exact).abs() / exact.abs()).mean())

    return mean_rel(first_order_currents(g, v, circuit)), mean_rel(v @ g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--vectors", type=int, default=16)
    args = parser.parse_args()
    print("mean relative column-current error vs the exact solve (first order / ignore wires)")
    print("  size " + "".join(f"   r/R = {r:7.0e}       " for r in RATIOS))
    better, worse = [], []  # r/R · size² where the first-order estimate wins / loses
    for size in args.sizes:
        row = [errors(size, ratio, args.vectors) for ratio in RATIOS]
        cells = "".join(f"  {first:8.2e} / {ideal:8.2e}  " for first, ideal in row)
        print(f"  {size:4d} {cells}", flush=True)
        for ratio, (first, ideal) in zip(RATIOS, row, strict=True):
            (better if first < ideal else worse).append(ratio * size**2)
    # Ignoring the wires errs by O(r/R · n²); the first-order estimate by O((r/R · n²)²).
    if better:
        print(f"  first order is the better estimate wherever r/R·n² <= {max(better):.2g}", end="")
        print(f"; worse from r/R·n² = {min(worse):.2g}" if worse else "")


if __name__ == "__main__":
    main()
