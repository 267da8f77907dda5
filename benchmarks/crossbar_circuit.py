"""Benchmark: exact crossbar solve (factorise once, batch back-solve) against ngspice and spsolve.

Part 1, 256 × 256 passive (0T1R) array, 128 input vectors, default wires (1 Ω segments, 10 Ω
drivers, virtual-ground sensing):
- ours: ``CrossbarSolver`` construction (assembly + nested-dissection ordering + one SuperLU
  factorisation) plus one batched back-solve of all vectors;
- ``scipy.sparse.linalg.spsolve`` once per vector on the same nodal matrix (factorises every
  time) — timed on a subset of vectors and extrapolated linearly;
- ngspice -b on the netlist of :func:`memcim.crossbar.spice.write_netlist` (same circuit, one
  ``alter`` + ``op`` per vector). ngspice 39 re-orders its matrix (Markowitz search) at every
  ``op``, which takes minutes at this size, so a subset of vectors is timed and extrapolated
  linearly to 128 (the netlist parse is well under 1 % of one ``op``).

Part 2: time against array size (square, 128 vectors) for ours at 64…1024 and ngspice at
64…256 (extrapolated from a subset as above), with the least-squares scaling exponent of
log time against log size.

Run: ``python benchmarks/crossbar_circuit.py [--sizes 64 128 256 512 1024] [--no-spice]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla
import torch

from memcim.crossbar.circuit import CrossbarCircuit, CrossbarSolver
from memcim.crossbar.spice import ngspice_available, run_ngspice, write_netlist
from timing import median_ms

CIRCUIT = CrossbarCircuit(cell="0T1R")  # same node count (2·m·n) in ngspice and in ours
BATCH = 128
# Vectors run through ngspice per size (the rest is extrapolated): one op takes a few s at 64,
# ~1 min at 128 and ~20 min at 256 on our 2-core machine.
SPICE_VECTORS = {64: 8, 128: 1, 256: 1}
SPSOLVE_VECTORS = 8


def problem(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    g = 1.0 + 99.0 * torch.rand(size, size, generator=gen, dtype=torch.float64)  # µS
    v = 0.2 * torch.rand(BATCH, size, generator=gen, dtype=torch.float64)  # V
    return g, v


def ours(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return CrossbarSolver(g, CIRCUIT).solve(v)


def time_ours(size: int, repeats: int) -> tuple[float, torch.Tensor]:
    """(median seconds of solver construction + batch solve, currents of the last run)."""
    g, v = problem(size)
    out: list[torch.Tensor] = []
    seconds = median_ms(lambda: out.append(ours(g, v)), repeats) / 1e3
    return seconds, out[-1]


def time_spice(size: int, vectors: int, folder: Path) -> tuple[float, torch.Tensor]:
    """(seconds extrapolated to BATCH vectors, currents of the timed vectors)."""
    g, v = problem(size)
    path = write_netlist(folder / f"crossbar_{size}.cir", g, v[:vectors], CIRCUIT)
    start = time.perf_counter()
    out = run_ngspice(path)
    return (time.perf_counter() - start) * BATCH / vectors, out


def time_spsolve(size: int, vectors: int) -> float:
    g, v = problem(size)
    k, k_s = CrossbarSolver(g, CIRCUIT).nodal_system()
    rhs = -(k_s @ v[:vectors].numpy().T)
    start = time.perf_counter()
    for j in range(vectors):
        spla.spsolve(k, rhs[:, j])
    return (time.perf_counter() - start) * BATCH / vectors


def exponent(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(time) against log(size)."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="array size of part 1")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--no-spice", action="store_true", help="skip ngspice")
    args = parser.parse_args()
    spice = ngspice_available() and not args.no_spice

    print(f"torch threads: {torch.get_num_threads()}  circuit: {CIRCUIT}")
    size = args.size
    print(f"part 1: {size} x {size}, {BATCH} input vectors")
    t_ours, i_ours = time_ours(size, repeats=5)
    g, _ = problem(size)
    solver = CrossbarSolver(g, CIRCUIT)
    t_setup = median_ms(lambda: CrossbarSolver(g, CIRCUIT), 5) / 1e3
    print(
        f"  ours (assemble + factorise + batch back-solve) : {t_ours:9.3f} s"
        f"   [assemble + factorise {t_setup:.3f} s, back-solve {t_ours - t_setup:.3f} s,"
        f" {solver.unknowns} unknowns]"
    )
    t_sp = time_spsolve(size, SPSOLVE_VECTORS)
    print(
        f"  scipy spsolve per vector                        : {t_sp:9.3f} s"
        f"   ratio {t_sp / t_ours:8.1f}x   (timed {SPSOLVE_VECTORS} vectors, extrapolated)"
    )
    spice_times: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if spice:
            k = SPICE_VECTORS.get(size, 1)
            t_ng, i_ng = time_spice(size, k, Path(tmp))
            spice_times[size] = t_ng
            err = float(((i_ours[:k] - i_ng).abs() / i_ng.abs()).max())
            print(
                f"  ngspice -b (alter + op per vector)              : {t_ng:9.1f} s"
                f"   ratio {t_ng / t_ours:8.0f}x   (target >= 50x; timed {k} vector(s),"
                " extrapolated)"
            )
            print(f"  max relative difference ours vs ngspice        : {err:9.2e}")
        else:
            print("  ngspice: skipped (not installed or --no-spice)")

        print(f"part 2: time vs size (square, {BATCH} vectors)")
        print("   size  unknowns    ours [s]  ngspice [s]  ratio")
        sizes, times = [], []
        for n in args.sizes:
            repeats = 5 if n <= 256 else 1
            t = t_ours if n == size else time_ours(n, repeats)[0]
            sizes.append(n)
            times.append(t)
            cell = "           -       -"
            if spice and n in SPICE_VECTORS:
                if n not in spice_times:
                    spice_times[n], _ = time_spice(n, SPICE_VECTORS[n], Path(tmp))
                ts = spice_times[n]
                cell = f"  {ts:10.1f}  {ts / t:6.0f}x"
            print(f"  {n:5d}  {2 * n * n:8d}  {t:10.3f}{cell}", flush=True)
    slope = exponent(sizes, times)
    print(
        f"  ours: time ~ size^{slope:.2f} (unknowns^{slope / 2:.2f}), least squares over"
        f" sizes {sizes}"
    )
    if len(spice_times) >= 2:
        ss = sorted(spice_times)
        s_slope = exponent(ss, [spice_times[s] for s in ss])
        at_512 = spice_times[ss[-1]] * (512 / ss[-1]) ** s_slope
        print(
            f"  ngspice: time ~ size^{s_slope:.2f} over sizes {ss} (extrapolated from the timed"
            f" vectors); 512 x 512 would take ~{at_512 / 3600:.0f} h for {BATCH} vectors,"
            " so it is not run"
        )


if __name__ == "__main__":
    main()
