"""SPICE netlists of a crossbar and an ngspice runner: the independent check of ``circuit.py``.

The netlist is written from the geometry directly (it shares no code with the nodal assembly
of :mod:`memcim.crossbar.circuit`): node ``w_i_j`` / ``b_i_j`` is the word-/bit-line node of
cell (i, j), ``x_i_j`` the node between a 1T1R cell's transistor and its memristor, ``d_i`` the
ideal source of row driver i and ``s_j`` the sense end of bit line j. Resistors are in Ω
(1e6 / g_us for cells); a zero resistance is written as a 0-V source (a short); sense currents
are read through 0-V sources (ammeters); sinh cells are B-sources ``I = g·V0·sinh(V/V0)``.

Several input vectors are handled in one ngspice process: a ``.control`` loop re-sets the
driver sources with ``alter`` and re-runs ``op`` for each vector. ngspice 39 re-orders its
sparse matrix (Markowitz search) at every ``op``, which dominates its run time on large arrays.

Every node must have a DC path to ground for ngspice: floating 1T1R word lines (transistors
off) are left out, since they carry no current; open (g = 0) cells are omitted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from memcim._errors import require
from memcim.crossbar.circuit import CrossbarCircuit, check_conductances, check_inputs, check_mask

# Tolerances far below the currents (µA) and voltages (mV) of interest. Tighter ones
# (reltol=1e-12 abstol=1e-18 vntol=1e-15) sit under ngspice's round-off: Newton then fails to
# converge on some sinh arrays. With these, Newton's last (quadratic) step leaves ngspice within
# ~1e-11 relative of our solve on sinh arrays and ~1e-13 on linear ones.
SPICE_OPTIONS = ".options reltol=1e-10 abstol=1e-15 vntol=1e-12"

_MARKER = "memcim-vector"
_HEADER = re.compile(r"^\*\s*memcim crossbar rows=(\d+) cols=(\d+) vectors=(\d+)", re.M)
_FAILURE = re.compile(
    r"^\s*error|singular matrix|simulation\(s\) aborted|timestep too small", re.I | re.M
)
_VALUE = re.compile(r"^\s*i\(vsense_(\d+)\)\s*=\s*([-+0-9.eE]+)\s*$")


class NgspiceError(RuntimeError):
    """ngspice is missing, failed, or printed no result."""


def ngspice_available(executable: str = "ngspice") -> bool:
    """True if the ngspice executable is on the PATH."""
    return shutil.which(executable) is not None


def _num(value: float) -> str:
    return f"{value:.17g}"


def _resistor(name: str, a: str, b: str, r_ohm: float) -> str:
    # ngspice silently makes a 0-Ω resistor 1 mΩ; a 0-V source is an exact short.
    return f"vshort{name} {a} {b} dc 0" if r_ohm == 0 else f"r{name} {a} {b} {_num(r_ohm)}"


def write_netlist(
    path: str | Path,
    g_us: Tensor | np.ndarray,
    v_in: Tensor | np.ndarray,
    circuit: CrossbarCircuit | None = None,
    *,
    rows_driven: Tensor | np.ndarray | None = None,
    cols_sensed: Tensor | np.ndarray | None = None,
) -> Path:
    """Write the SPICE netlist of a crossbar with one ``op`` per input vector.

    Args:
        path: netlist file to write.
        g_us: cell conductances [m, n] µS (small-signal g for sinh cells).
        v_in: row voltages [m] or [B, m] V; entries of undriven rows are ignored.
        circuit: parasitics and periphery (default :class:`CrossbarCircuit`).
        rows_driven, cols_sensed: selection masks, as for
            :class:`~memcim.crossbar.circuit.CrossbarSolver`.

    Returns:
        The path written.
    """
    c = circuit if circuit is not None else CrossbarCircuit()
    require(isinstance(c, CrossbarCircuit), "circuit", c, "must be a CrossbarCircuit")
    g = check_conductances(g_us)
    m, n = g.shape
    v, _ = check_inputs(v_in, m)
    driven = check_mask(rows_driven, m, "rows_driven")
    sensed = check_mask(cols_sensed, n, "cols_sensed")
    wired = driven | (c.cell == "0T1R")  # a 1T1R word line without driver carries no current

    lines = [
        f"* memcim crossbar rows={m} cols={n} vectors={v.shape[0]}",
        f"* {c}",
        SPICE_OPTIONS,
    ]
    # Cell by cell, row by row: with this element (hence node) order ngspice's Markowitz
    # re-ordering runs 2.5× faster at 64 × 64 than with lines grouped by kind.
    for i in range(m):
        if driven[i]:
            lines.append(f"vdrv_{i} d_{i} 0 dc {_num(v[0, i])}")
            lines.append(_resistor(f"drv_{i}", f"d_{i}", f"w_{i}_0", c.r_driver_ohm))
        for j in range(n):
            if wired[i] and g[i, j] > 0:
                top = f"w_{i}_{j}"
                if c.cell == "1T1R":
                    lines.append(_resistor(f"on_{i}_{j}", top, f"x_{i}_{j}", c.r_on_ohm))
                    top = f"x_{i}_{j}"
                if c.iv == "linear":
                    lines.append(f"rc_{i}_{j} {top} b_{i}_{j} {_num(1e6 / g[i, j])}")
                else:
                    amp = g[i, j] * 1e-6 * c.v0_v  # A
                    expr = f"{_num(amp)}*sinh(v({top},b_{i}_{j})/{_num(c.v0_v)})"
                    lines.append(f"bc_{i}_{j} {top} b_{i}_{j} i={expr}")
            if wired[i] and j + 1 < n:
                w_seg = (f"w_{i}_{j}", f"w_{i}_{j}", f"w_{i}_{j + 1}")
                lines.append(_resistor(*w_seg, c.r_wire_row_ohm))
            if i + 1 < m:
                b_seg = (f"b_{i}_{j}", f"b_{i}_{j}", f"b_{i + 1}_{j}")
                lines.append(_resistor(*b_seg, c.r_wire_col_ohm))
            elif sensed[j]:
                if c.sense == "load":
                    lines.append(f"rload_{j} b_{m - 1}_{j} s_{j} {_num(c.r_load_ohm)}")
                    lines.append(f"vsense_{j} s_{j} 0 dc 0")
                else:
                    lines.append(f"vsense_{j} b_{m - 1}_{j} 0 dc 0")

    probes = " ".join(f"i(vsense_{j})" for j in np.flatnonzero(sensed))
    lines += [".control", "set numdgt=17"]
    for k in range(v.shape[0]):
        if k > 0:
            lines += [f"alter vdrv_{i} dc = {_num(v[k, i])}" for i in np.flatnonzero(driven)]
        lines += ["op", f"echo {_MARKER} {k}"]
        if probes:
            lines.append(f"print {probes}")
    lines += [".endc", ".end", ""]
    path = Path(path)
    path.write_text("\n".join(lines))
    return path


def run_ngspice(
    netlist_path: str | Path, *, executable: str = "ngspice", timeout_s: float | None = None
) -> Tensor:
    """Run ``ngspice -b`` on a netlist from :func:`write_netlist` and parse the sense currents.

    Returns:
        Column currents [B, n] µA (float64); 0 for unsensed columns.

    Raises:
        NgspiceError: ngspice is missing, fails, times out, or a result is missing (the message
            ends with the tail of its output).
    """
    path = Path(netlist_path)
    header = _HEADER.search(path.read_text()[:4096])
    require(header is not None, "netlist_path", str(path), "must be written by write_netlist")
    _, n, vectors = (int(x) for x in header.groups())
    exe = shutil.which(executable)
    if exe is None:
        raise NgspiceError(f"{executable!r} not found on the PATH (install ngspice)")
    try:
        done = subprocess.run(
            [exe, "-b", str(path)], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        raise NgspiceError(f"ngspice timed out after {timeout_s} s on {path}") from exc
    log = done.stdout + done.stderr
    tail = "\n".join(log.strip().splitlines()[-25:])
    # With only a .control block ngspice exits 1 ("no simulations run"): judge by the output.
    if _FAILURE.search(log):
        raise NgspiceError(f"ngspice failed (exit {done.returncode}) on {path}:\n{tail}")
    i_ua = np.zeros((vectors, n))
    seen = np.zeros(vectors, dtype=bool)
    current = -1
    for line in done.stdout.splitlines():
        if line.startswith(_MARKER):
            current = int(line.split()[1])
            seen[current] = True
            continue
        match = _VALUE.match(line)
        if match and current >= 0:
            i_ua[current, int(match.group(1))] = float(match.group(2)) * 1e6  # A -> µA
    if not seen.all():
        raise NgspiceError(
            f"ngspice printed results for {int(seen.sum())} of {vectors} vectors on {path}:\n{tail}"
        )
    return torch.from_numpy(i_ua)


def ngspice_currents(
    g_us: Tensor | np.ndarray,
    v_in: Tensor | np.ndarray,
    circuit: CrossbarCircuit | None = None,
    *,
    rows_driven: Tensor | np.ndarray | None = None,
    cols_sensed: Tensor | np.ndarray | None = None,
    workdir: str | Path | None = None,
    timeout_s: float | None = None,
) -> Tensor:
    """Column currents from ngspice for one or several input vectors (one process).

    Args:
        g_us, v_in, circuit, rows_driven, cols_sensed: as for :func:`write_netlist`.
        workdir: folder for the netlist (default: a temporary folder, removed afterwards).
        timeout_s: wall-clock limit for ngspice (s).

    Returns:
        Column currents [B, n] µA, or [n] for a [m] input.
    """
    single = np.ndim(v_in) == 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(workdir) if workdir is not None else Path(tmp)
        path = write_netlist(
            folder / "crossbar.cir",
            g_us,
            v_in,
            circuit,
            rows_driven=rows_driven,
            cols_sensed=cols_sensed,
        )
        out = run_ngspice(path, timeout_s=timeout_s)
    return out[0] if single else out


__all__ = [
    "SPICE_OPTIONS",
    "NgspiceError",
    "ngspice_available",
    "ngspice_currents",
    "run_ngspice",
    "write_netlist",
]
