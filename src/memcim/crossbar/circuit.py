"""Exact DC solve of a crossbar with wire, driver, access-transistor and sense resistances.

Geometry of an m × n array with conductances ``g_us`` [m, n] (rows = word lines = inputs,
columns = bit lines = outputs)::

    V_0 ─R_drv─ w(0,0) ─r_row─ w(0,1) ─ … ─ w(0,n-1)        word line 0
                  │cell          │cell          │cell
                b(0,0)         b(0,1)         b(0,n-1)
                  │r_col         │r_col         │r_col
                  ⋮              ⋮              ⋮
                b(m-1,0)       b(m-1,1)       b(m-1,n-1)    sensed here (bottom end)
                  ▼              ▼              ▼
              virtual ground (0 V) or R_load to ground

- Word line i is driven from its column-0 end by a source V_i behind ``r_driver_ohm``; the
  segment between cells (i, j) and (i, j+1) is ``r_wire_row_ohm``.
- Bit line j is sensed at its row-(m−1) end, either at a virtual ground (0 V, its current is the
  output) or through ``r_load_ohm`` to ground (the output is the load current); the segment
  between cells (i, j) and (i+1, j) is ``r_wire_col_ohm``.
- Cell (i, j) joins word-line node w(i, j) and bit-line node b(i, j). A 1T1R cell has the access
  transistor's ``r_on_ohm`` in series (on the word-line side).
- ``rows_driven[i] = False``: word line i has no driver and floats; for 1T1R its transistors are
  off, so its cells are open. ``cols_sensed[j] = False``: bit line j floats (no sense node). A
  passive (0T1R) array then carries sneak currents through the floating lines.

Units: conductances µS, voltages V, currents µA (V × µS = µA), resistances Ω (a resistance of
r Ω is a conductance of 1e6 / r µS).

Method: nodal analysis. Zero resistances merge nodes; the drivers' source nodes and the
virtual grounds are fixed potentials; nodes without a DC path to any fixed potential (a floating
1T1R word line) are dropped and reported as NaN volts. The remaining symmetric positive-definite
system K x = −K_f x_f is ordered by geometric nested dissection (separators are word- or
bit-line cuts of the grid) and factorised once with SuperLU without pivoting. Measured at 256 ×
256 and 512 × 512, this ordering has 1.5–1.7× less fill and factorises ~3× faster than SuperLU's
best own ordering (MMD on Aᵀ + A), and its back-solves are 1.5–2× faster. A batch of input
vectors is one multi-right-hand-side back-solve; when the batch is larger than min(m, n) the
exact transfer matrix (min(m, n) back-solves) is used instead. Non-linear cells
(I = g·V0·sinh(V/V0)) are solved by Newton's method per input vector, re-factorising the
Jacobian (same sparsity pattern) at each iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from memcim._errors import ConfigError, is_int, is_real, require

# SciPy is imported where a circuit is built or solved: importing it with memcim.crossbar
# would add about 30 MB to the resident memory of every process that never solves one.
if TYPE_CHECKING:
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

CellType = Literal["1T1R", "0T1R"]
SenseMode = Literal["virtual_ground", "load"]
CellIV = Literal["linear", "sinh"]

# µS per 1/Ω: a resistance of r Ω is a conductance of _MICRO / r µS, and r Ω × i µA = r·i·1e-6 V.
_MICRO = 1e6

# Cells per leaf block of the nested-dissection recursion. Measured at 256 × 256: 16–256 give
# factor times within 10 %; 64 is at the minimum.
_ND_LEAF_CELLS = 64

# Right-hand sides per SuperLU back-solve call: 16–32 columns run ~25 % faster than 128 at
# once (measured at 256 × 256; the block stays in cache), and 4× faster than one at a time.
_SOLVE_CHUNK = 32


class CircuitConvergenceError(RuntimeError):
    """Newton's method did not converge for a non-linear crossbar."""


@dataclass(frozen=True, kw_only=True)
class CrossbarCircuit:
    """Parasitics and periphery of a crossbar (everything but the cell conductances).

    The default values are illustrative, not fitted values: a 1 Ω segment is the order of a
    copper wire of a few-nm technology node over one 100–200 nm cell pitch; 10 Ω is a strong
    row driver; 1 kΩ is a wide access transistor in its linear region.

    Attributes:
        r_wire_row_ohm: word-line segment between horizontally adjacent cells (Ω, >= 0).
        r_wire_col_ohm: bit-line segment between vertically adjacent cells (Ω, >= 0).
        r_driver_ohm: source resistance of every row driver (Ω, >= 0).
        sense: ``"virtual_ground"`` (bit lines end at 0 V; output = current into the node) or
            ``"load"`` (bit lines end in ``r_load_ohm`` to ground; output = load current).
        r_load_ohm: sense resistor (Ω); must be > 0 when ``sense="load"``, unused otherwise.
        cell: ``"1T1R"`` (access transistor in series, off on undriven rows) or ``"0T1R"``
            (passive array: undriven rows float and carry sneak currents).
        r_on_ohm: on-resistance of the 1T1R access transistor (Ω, >= 0; unused for 0T1R).
        iv: cell I–V: ``"linear"`` (I = g·V) or ``"sinh"`` (I = g·V0·sinh(V/V0), so that g is
            the small-signal conductance at 0 V).
        v0_v: the sinh characteristic voltage V0 (V, > 0; unused for linear cells).
    """

    r_wire_row_ohm: float = 1.0
    r_wire_col_ohm: float = 1.0
    r_driver_ohm: float = 10.0
    sense: SenseMode = "virtual_ground"
    r_load_ohm: float = 100.0
    cell: CellType = "1T1R"
    r_on_ohm: float = 1000.0
    iv: CellIV = "linear"
    v0_v: float = 0.25

    def __post_init__(self) -> None:
        for name in ("r_wire_row_ohm", "r_wire_col_ohm", "r_driver_ohm", "r_on_ohm"):
            value = getattr(self, name)
            require(
                is_real(value) and value >= 0,
                f"CrossbarCircuit.{name}",
                value,
                "must be a finite number >= 0 Ω",
            )
        require(
            self.sense in ("virtual_ground", "load"),
            "CrossbarCircuit.sense",
            self.sense,
            "must be 'virtual_ground' or 'load'",
        )
        require(
            is_real(self.r_load_ohm) and self.r_load_ohm >= 0,
            "CrossbarCircuit.r_load_ohm",
            self.r_load_ohm,
            "must be a finite number >= 0 Ω",
        )
        if self.sense == "load":
            require(
                self.r_load_ohm > 0,
                "CrossbarCircuit.r_load_ohm",
                self.r_load_ohm,
                "must be > 0 Ω when sense='load'",
            )
        require(
            self.cell in ("1T1R", "0T1R"),
            "CrossbarCircuit.cell",
            self.cell,
            "must be '1T1R' or '0T1R'",
        )
        require(
            self.iv in ("linear", "sinh"),
            "CrossbarCircuit.iv",
            self.iv,
            "must be 'linear' or 'sinh'",
        )
        require(
            is_real(self.v0_v) and self.v0_v > 0,
            "CrossbarCircuit.v0_v",
            self.v0_v,
            "must be a finite number > 0 V",
        )


class CrossbarSolution(NamedTuple):
    """Column currents and node voltages of a solved crossbar.

    Attributes:
        i_col_ua: column (sense) currents, [B, n] µA (0 for unsensed columns).
        v_wl_v: word-line node voltages w(i, j), [B, m, n] V; NaN on a floating 1T1R word line,
            whose potential is undefined (no DC path).
        v_bl_v: bit-line node voltages b(i, j), [B, m, n] V.
    """

    i_col_ua: Tensor
    v_wl_v: Tensor
    v_bl_v: Tensor


# --- input checks ---------------------------------------------------------------------------------
def _to_numpy(value: object, field: str) -> np.ndarray:
    try:
        if isinstance(value, Tensor):
            return value.detach().cpu().to(torch.float64).numpy()
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{field}={value!r} is invalid: must be a real array ({exc})") from None


def check_conductances(g_us: object, field: str = "g_us") -> np.ndarray:
    """Return ``g_us`` as a float64 [m, n] array; raise :class:`ConfigError` unless it is a
    non-empty 2-D array of finite conductances >= 0 µS (0 = an open cell)."""
    g = _to_numpy(g_us, field)
    _require_conductances(g, field)
    return g


def _require_conductances(g: np.ndarray | Tensor, field: str) -> None:
    """The checks of :func:`check_conductances` on a float64 array or tensor ``g``."""
    tensor = isinstance(g, Tensor)
    size = g.numel() if tensor else g.size
    require(g.ndim == 2 and size > 0, f"{field}.shape", tuple(g.shape),
            "must be [rows, cols] >= 1×1")  # fmt: skip
    finite = torch.isfinite(g).all() if tensor else np.isfinite(g).all()
    require(bool(finite), field, "non-finite values", "must be finite")
    require(bool((g >= 0).all()), field, f"min {float(g.min()):.3g}",
            "must be >= 0 µS (0 = open cell)")  # fmt: skip


def check_inputs(v_in: object, rows: int, field: str = "v_in") -> tuple[np.ndarray, bool]:
    """Return (voltages as float64 [B, rows], whether a single [rows] vector was given)."""
    v = _to_numpy(v_in, field)
    single = v.ndim == 1
    v2 = v.reshape(1, -1) if single else v
    require(
        v2.ndim == 2 and v2.shape[1] == rows and v2.shape[0] >= 1,
        f"{field}.shape",
        tuple(v.shape),
        f"must be [batch, {rows}] or [{rows}] (one voltage per row)",
    )
    require(bool(np.isfinite(v2).all()), field, "non-finite values", "must be finite volts")
    return v2, single


def check_mask(mask: object, size: int, field: str) -> np.ndarray:
    """Return a bool [size] mask (all True when ``mask`` is None)."""
    if mask is None:
        return np.ones(size, dtype=bool)
    arr = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    require(
        arr.dtype == np.bool_ and arr.shape == (size,),
        field,
        f"dtype {arr.dtype}, shape {arr.shape}",
        f"must be a bool array of shape ({size},)",
    )
    return arr.astype(bool, copy=True)


# --- assembly -------------------------------------------------------------------------------------
class _Pattern:
    """A fixed sparse pattern: COO entries (duplicates summed) -> CSC values in one bincount."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, size: int) -> None:
        key = cols.astype(np.int64) * size + rows
        unique, self.slot = np.unique(key, return_inverse=True)
        self.indices = (unique % size).astype(np.int32)
        counts = np.bincount(unique // size, minlength=size)
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        self.size = size

    def matrix(self, values: np.ndarray) -> sp.csc_matrix:
        import scipy.sparse as sp

        data = np.bincount(self.slot, weights=values, minlength=self.indices.size)
        return sp.csc_matrix((data, self.indices, self.indptr), shape=(self.size, self.size))


def _stamp(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, cols and signs of the four conductance-stamp entries of two-terminal elements."""
    rows = np.concatenate([a, b, a, b])
    cols = np.concatenate([a, b, b, a])
    sign = np.concatenate([np.ones(a.size * 2), -np.ones(a.size * 2)])
    return rows, cols, sign


def _nested_dissection(m: int, n: int, with_x: bool) -> np.ndarray:
    """Elimination order of the raw word-line, internal and bit-line node ids of an m × n grid.

    Raw ids: w(i, j) = i·n + j, b(i, j) = m·n + i·n + j, x(i, j) = 2·m·n + i·n + j. Removing the
    word-line nodes of one column cuts the grid left | right (the bit line of that column is
    left on its own); removing the bit-line nodes of one row cuts it top | bottom. Each
    rectangle is split across its longer side and the separator is eliminated last.
    """
    cells = np.arange(m * n).reshape(m, n)
    mn = m * n
    order: list[np.ndarray] = []

    def emit(block: np.ndarray, kinds: str) -> None:
        flat = block.ravel()
        offsets = {"w": 0, "x": 2 * mn, "b": mn}
        for kind in kinds:
            if kind != "x" or with_x:
                order.append(flat + offsets[kind])

    stack = [(0, m, 0, n)]
    # Iterative post-order: push the separator marker first so that it is emitted after both
    # halves (a stack pops the last pushed first).
    while stack:
        item = stack.pop()
        if len(item) == 2:
            emit(*item)
            continue
        i0, i1, j0, j1 = item
        if i1 <= i0 or j1 <= j0:
            continue
        if (i1 - i0) * (j1 - j0) <= _ND_LEAF_CELLS:
            emit(cells[i0:i1, j0:j1], "wxb")
        elif j1 - j0 >= i1 - i0:
            c = (j0 + j1) // 2
            stack.append((cells[i0:i1, c], "bxw"))
            stack.append((i0, i1, c + 1, j1))
            stack.append((i0, i1, j0, c))
        else:
            r = (i0 + i1) // 2
            stack.append((cells[r, j0:j1], "wxb"))
            stack.append((r + 1, i1, j0, j1))
            stack.append((i0, r, j0, j1))
    return np.concatenate(order)


class _Network:
    """The assembled nodal equations of one crossbar (see the module docstring).

    Index space of the full node vector: U unknowns (in elimination order), then the m source
    nodes (fixed at V_i), then the n sense nodes (fixed at 0 V), then one slot that stands for
    dropped (floating) nodes when voltages are reported.
    """

    def __init__(
        self, g: np.ndarray, c: CrossbarCircuit, driven: np.ndarray, sensed: np.ndarray
    ) -> None:
        m, n = g.shape
        mn = m * n
        self.m, self.n = m, n
        cell_rows = np.repeat(np.arange(m), n)
        src = 3 * mn + np.arange(m)  # raw ids of the fixed nodes
        sense = 3 * mn + m + np.arange(n)
        raw_size = 3 * mn + m + n

        # Representatives after merging zero-resistance connections.
        wl = (
            np.arange(mn).reshape(m, n)
            if c.r_wire_row_ohm > 0
            else np.repeat((np.arange(m) * n)[:, None], n, axis=1)
        )
        if c.r_driver_ohm == 0:
            tied = driven[:, None] & ((np.arange(n) == 0)[None, :] | (c.r_wire_row_ohm == 0))
            wl = np.where(tied, src[:, None], wl)
        bl = mn + (
            np.arange(mn).reshape(m, n)
            if c.r_wire_col_ohm > 0
            else np.repeat(((m - 1) * n + np.arange(n))[None, :], m, axis=0)
        )
        if c.sense == "virtual_ground":
            tied = sensed[None, :] & ((np.arange(m) == m - 1)[:, None] | (c.r_wire_col_ohm == 0))
            bl = np.where(tied, sense[None, :], bl)

        # Linear elements (a, b, conductance µS) and non-linear cells (a, b, g µS).
        la: list[np.ndarray] = []
        lb: list[np.ndarray] = []
        lg: list[np.ndarray] = []

        def add(a: np.ndarray, b: np.ndarray, cond: np.ndarray | float) -> None:
            a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
            la.append(a)
            lb.append(b)
            lg.append(np.broadcast_to(np.asarray(cond, dtype=np.float64), a.shape).ravel())

        if c.r_driver_ohm > 0:
            add(src[driven], wl[driven, 0], _MICRO / c.r_driver_ohm)
        if c.r_wire_row_ohm > 0 and n > 1:
            add(wl[:, :-1], wl[:, 1:], _MICRO / c.r_wire_row_ohm)
        if c.r_wire_col_ohm > 0 and m > 1:
            add(bl[:-1, :], bl[1:, :], _MICRO / c.r_wire_col_ohm)
        if c.sense == "load":
            add(bl[m - 1, sensed], sense[sensed], _MICRO / c.r_load_ohm)

        gflat = g.ravel()
        active = gflat > 0
        if c.cell == "1T1R":
            active &= driven[cell_rows]
        wl_cell, bl_cell = wl.ravel()[active], bl.ravel()[active]
        if c.iv == "linear":
            g_cell = gflat[active]
            if c.cell == "1T1R":
                g_cell = g_cell / (1.0 + g_cell * c.r_on_ohm / _MICRO)  # series transistor
            add(wl_cell, bl_cell, g_cell)
            nl_a = nl_b = np.zeros(0, dtype=np.int64)
            nl_g = np.zeros(0)
        else:
            if c.cell == "1T1R" and c.r_on_ohm > 0:
                x = 2 * mn + np.flatnonzero(active)
                add(wl_cell, x, _MICRO / c.r_on_ohm)
                nl_a = x
            else:
                nl_a = wl_cell
            nl_b, nl_g = bl_cell, gflat[active]

        a_raw = np.concatenate(la) if la else np.zeros(0, dtype=np.int64)
        b_raw = np.concatenate(lb) if lb else np.zeros(0, dtype=np.int64)
        g_lin = np.concatenate(lg) if lg else np.zeros(0)
        keep = a_raw != b_raw
        a_raw, b_raw, g_lin = a_raw[keep], b_raw[keep], g_lin[keep]

        # Nodes with a DC path to a fixed potential: chain the fixed nodes into one component.
        fixed = np.concatenate([src, sense])
        ea = np.concatenate([a_raw, nl_a, fixed[:-1]])
        eb = np.concatenate([b_raw, nl_b, fixed[1:]])
        import scipy.sparse as sp
        from scipy.sparse.csgraph import connected_components

        graph = sp.coo_matrix((np.ones(ea.size), (ea, eb)), shape=(raw_size, raw_size))
        _, comp = connected_components(graph, directed=False)
        touched = np.zeros(raw_size, dtype=bool)
        touched[ea] = touched[eb] = True
        live = touched & (comp == comp[fixed[0]])
        live[fixed] = False

        # Elimination order: geometric nested dissection unless merged lines break the grid.
        self.geometric = c.r_wire_row_ohm > 0 and c.r_wire_col_ohm > 0
        if self.geometric:
            has_x = c.iv == "sinh" and c.cell == "1T1R" and c.r_on_ohm > 0
            candidates = _nested_dissection(m, n, with_x=has_x)
            unknown_raw = candidates[live[candidates]]
        else:
            unknown_raw = np.flatnonzero(live)
        u = unknown_raw.size
        index = np.full(raw_size, u + m + n, dtype=np.int64)  # dropped -> the NaN slot
        index[unknown_raw] = np.arange(u)
        index[src] = u + np.arange(m)
        index[sense] = u + m + np.arange(n)
        self.u = u
        self.wl_index = index[wl]
        self.bl_index = index[bl]

        # Linear elements in full index space (floating components have no fixed node: drop).
        a, b = index[a_raw], index[b_raw]
        ok = (a < u + m + n) & (b < u + m + n)
        a, b, g_lin = a[ok], b[ok], g_lin[ok]
        rows, cols, sign = _stamp(a, b)
        vals = sign * np.tile(g_lin, 4)
        full = u + m + n
        k_full = sp.coo_matrix((vals, (rows, cols)), shape=(full, full)).tocsr()
        self.k_us = k_full[:u, u : u + m].tocsc()
        self.k_tu = k_full[u + m :, :u].tocsr()
        self.k_ts = k_full[u + m :, u : u + m].toarray()

        self.nl_a, self.nl_b = index[nl_a], index[nl_b]
        ok = (self.nl_a < full) & (self.nl_b < full)
        self.nl_a, self.nl_b, self.nl_g = self.nl_a[ok], self.nl_b[ok], nl_g[ok]

        # One pattern for K_uu and the non-linear cells' Jacobian entries.
        in_uu = (rows < u) & (cols < u)
        nrows, ncols, nsign = _stamp(self.nl_a, self.nl_b)
        nl_uu = (nrows < u) & (ncols < u)
        self._lin_uu_vals = vals[in_uu]
        self._nl_uu_sign = nsign[nl_uu]
        self._nl_uu_cell = np.tile(np.arange(self.nl_g.size), 4)[nl_uu]
        self.pattern = _Pattern(
            np.concatenate([rows[in_uu], nrows[nl_uu]]),
            np.concatenate([cols[in_uu], ncols[nl_uu]]),
            u,
        )
        # The linear part's effect on unknown rows of the full residual, for Newton.
        self.k_u_full = k_full[:u, :].tocsr()
        self.k_t_full = k_full[u + m :, :].tocsr()

    def jacobian(self, g_diff: np.ndarray) -> sp.csc_matrix:
        """K_uu plus the non-linear cells' differential conductances g_diff (µS) per cell."""
        return self.pattern.matrix(
            np.concatenate([self._lin_uu_vals, self._nl_uu_sign * g_diff[self._nl_uu_cell]])
        )


def _back_solve(lu: spla.SuperLU, rhs: np.ndarray, trans: str = "N") -> np.ndarray:
    """lu.solve over column chunks of ``rhs`` [U, k] (see ``_SOLVE_CHUNK``)."""
    parts = [
        lu.solve(np.asfortranarray(rhs[:, start : start + _SOLVE_CHUNK]), trans=trans)
        for start in range(0, rhs.shape[1], _SOLVE_CHUNK)
    ]
    return np.concatenate(parts, axis=1)


def _factorize(matrix: sp.csc_matrix, geometric: bool) -> spla.SuperLU:
    import scipy.sparse.linalg as spla

    # SPD: diagonal pivots are stable, so SuperLU keeps the nested-dissection order as given.
    return spla.splu(
        matrix,
        permc_spec="NATURAL" if geometric else "MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )


class CrossbarSolver:
    """Exact DC solver for one crossbar: assembles and factorises once, solves many inputs.

    Args:
        g_us: cell conductances [m, n] µS (small-signal g for sinh cells); 0 = open cell.
        circuit: parasitics and periphery (default :class:`CrossbarCircuit`).
        rows_driven: bool [m]; False leaves that word line floating (default all driven).
        cols_sensed: bool [n]; False leaves that bit line floating (default all sensed).
        newton_tol_v: Newton stops once the largest node-voltage update is below this (V);
            convergence is quadratic, so the remaining error is orders of magnitude smaller.
        newton_max_iter: Newton iterations per input vector before
            :class:`CircuitConvergenceError` is raised.

    Example:
        >>> solver = CrossbarSolver(g_us, CrossbarCircuit(r_wire_row_ohm=2.0))
        >>> i_ua = solver.solve(v)            # [B, n] µA for v [B, m] V
        >>> a_us = solver.transfer_matrix()   # I = V @ A exactly (linear cells)
    """

    def __init__(
        self,
        g_us: Tensor | np.ndarray,
        circuit: CrossbarCircuit | None = None,
        *,
        rows_driven: Tensor | np.ndarray | None = None,
        cols_sensed: Tensor | np.ndarray | None = None,
        newton_tol_v: float = 1e-9,
        newton_max_iter: int = 50,
    ) -> None:
        circuit = circuit if circuit is not None else CrossbarCircuit()
        require(
            isinstance(circuit, CrossbarCircuit),
            "circuit",
            circuit,
            "must be a CrossbarCircuit",
        )
        g = check_conductances(g_us)
        m, n = g.shape
        require(
            is_real(newton_tol_v) and newton_tol_v > 0,
            "newton_tol_v",
            newton_tol_v,
            "must be a finite number > 0 V",
        )
        require(
            is_int(newton_max_iter) and newton_max_iter >= 1,
            "newton_max_iter",
            newton_max_iter,
            "must be an integer >= 1",
        )
        self.circuit = circuit
        self.g_us = g
        self.rows_driven = check_mask(rows_driven, m, "rows_driven")
        self.cols_sensed = check_mask(cols_sensed, n, "cols_sensed")
        self.newton_tol_v = float(newton_tol_v)
        self.newton_max_iter = newton_max_iter
        self._net = _Network(g, circuit, self.rows_driven, self.cols_sensed)
        net = self._net
        # For sinh cells this is the Jacobian at 0 V (cells at their small-signal g): its
        # solution is the Newton starting point.
        self._lu = _factorize(net.jacobian(net.nl_g), net.geometric) if net.u > 0 else None
        self._transfer: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the array."""
        return self._net.m, self._net.n

    @property
    def unknowns(self) -> int:
        """Number of node voltages solved for (after merging and dropping floating nodes)."""
        return self._net.u

    def nodal_system(self) -> tuple[sp.csc_matrix, sp.csc_matrix]:
        """The linear nodal equations over the unknown node voltages, for benchmarks and checks.

        Returns:
            (K [U, U] µS, K_s [U, m] µS) with K·x = −K_s·v for inputs v (V). For sinh cells K is
            the Jacobian at 0 V. The unknowns are in the solver's elimination order.
        """
        net = self._net
        return net.jacobian(net.nl_g), net.k_us.copy()

    # --- linear algebra helpers ------------------------------------------------------------
    def _linear_solve(self, v: np.ndarray) -> np.ndarray:
        """Unknown node voltages [U, B] of the linear (or linearised) system for v [B, m]."""
        if self._net.u == 0:
            return np.zeros((0, v.shape[0]))
        rhs = np.asfortranarray(-(self._net.k_us @ v.T))  # contiguous column chunks
        return _back_solve(self._lu, rhs)

    def _full(self, x_u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Full node vectors [U + m + n + 1, B] with the NaN slot for dropped nodes."""
        b = v.shape[0]
        return np.concatenate(
            [
                x_u,
                v.T * self.rows_driven[:, None],
                np.zeros((self._net.n, b)),
                np.full((1, b), np.nan),
            ]
        )

    def _nl_current(self, x_full: np.ndarray) -> np.ndarray:
        """Non-linear cell currents a -> b (µA) for full node vectors [.., B] -> [cells, B]."""
        net, v0 = self._net, self.circuit.v0_v
        v_cell = x_full[net.nl_a] - x_full[net.nl_b]
        return net.nl_g[:, None] * v0 * np.sinh(v_cell / v0)

    def _column_currents(self, x_full: np.ndarray) -> np.ndarray:
        """Sense currents [n, B] (µA) = −(net current leaving each sense node into the array)."""
        net = self._net
        full = x_full[:-1]
        out = -(net.k_t_full @ full)
        if net.nl_g.size:
            i_nl = self._nl_current(x_full)
            t0 = net.u + net.m
            for ends, sign in ((net.nl_b, 1.0), (net.nl_a, -1.0)):
                hit = ends >= t0
                np.add.at(out, ends[hit] - t0, sign * i_nl[hit])
        return np.where(self.cols_sensed[:, None], out, 0.0)

    def _newton(self, x_u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Solve the non-linear system for one input vector from the starting point x_u [U]."""
        net, v0 = self._net, self.circuit.v0_v
        u = net.u
        x_full = self._full(x_u[:, None], v[None, :])[:, 0]
        for _ in range(self.newton_max_iter):
            v_cell = x_full[net.nl_a] - x_full[net.nl_b]
            i_nl = net.nl_g * v0 * np.sinh(v_cell / v0)
            residual = net.k_u_full @ x_full[:-1]
            residual += np.bincount(net.nl_a, weights=i_nl, minlength=x_full.size)[:u]
            residual -= np.bincount(net.nl_b, weights=i_nl, minlength=x_full.size)[:u]
            jac = net.jacobian(net.nl_g * np.cosh(v_cell / v0))
            step = -_factorize(jac, net.geometric).solve(residual)
            if not np.all(np.isfinite(step)):
                break
            # Limit any cell's voltage change to V0 per iteration (sinh grows exponentially).
            step_full = np.concatenate([step, np.zeros(x_full.size - u)])
            dv = np.abs(step_full[net.nl_a] - step_full[net.nl_b])
            largest = float(dv.max()) if dv.size else 0.0
            scale = min(1.0, v0 / largest) if largest > 0 else 1.0
            x_full[:u] += scale * step
            if scale * float(np.abs(step).max(initial=0.0)) <= self.newton_tol_v:
                return x_full[:u]
        raise CircuitConvergenceError(
            f"Newton's method did not reach a node-voltage update <= {self.newton_tol_v:g} V in "
            f"{self.newton_max_iter} iterations (sinh cells, V0 = {v0:g} V); raise "
            "newton_max_iter, or check that the inputs are not many V0"
        )

    # --- public API ----------------------------------------------------------------------------
    def transfer_matrix(self) -> Tensor:
        """The exact linear map A [m, n] (µS) with column currents I = V @ A (linear cells).

        By superposition: min(m, n) back-solves (the adjoint system when n < m). Rows of
        undriven word lines are 0 (their input is ignored).
        """
        require(
            self.circuit.iv == "linear",
            "CrossbarCircuit.iv",
            self.circuit.iv,
            "transfer_matrix() needs linear cells (iv='linear')",
        )
        if self._transfer is None:
            net = self._net
            if net.u == 0:
                coupled = np.zeros((net.n, net.m))
            elif net.m <= net.n:
                coupled = net.k_tu @ _back_solve(self._lu, net.k_us.toarray())
            else:
                adj = _back_solve(self._lu, net.k_tu.T.toarray(), trans="T")
                coupled = (net.k_us.T @ adj).T
            a_t = coupled - net.k_ts  # I = (K_tu K_uu^-1 K_us - K_ts) V
            a_t *= self.rows_driven[None, :] * self.cols_sensed[:, None]
            self._transfer = np.ascontiguousarray(a_t.T)
        return torch.from_numpy(self._transfer.copy())

    def solve(
        self, v_in: Tensor | np.ndarray, *, return_voltages: bool = False
    ) -> Tensor | CrossbarSolution:
        """Column currents (and optionally node voltages) for a batch of input vectors.

        Args:
            v_in: row driver voltages [B, m] or [m] (V); entries of undriven rows are ignored.
            return_voltages: also return the word- and bit-line node voltages.

        Returns:
            Column currents [B, n] µA (float64), or a :class:`CrossbarSolution` with currents
            [B, n] and voltages [B, m, n]; a [m] input gives [n] and [m, n].
        """
        v, single = check_inputs(v_in, self._net.m)
        net = self._net
        if self.circuit.iv == "linear" and not return_voltages and v.shape[0] > min(net.m, net.n):
            i = v @ self._transfer_numpy()
            out = torch.from_numpy(np.ascontiguousarray(i))
            return out[0] if single else out
        x_u = self._linear_solve(v)
        if self.circuit.iv == "sinh" and net.nl_g.size and net.u > 0:
            x_u = np.stack([self._newton(x_u[:, k], v[k]) for k in range(v.shape[0])], axis=1)
        x_full = self._full(x_u, v)
        i = torch.from_numpy(np.ascontiguousarray(self._column_currents(x_full).T))
        if not return_voltages:
            return i[0] if single else i
        shape = (v.shape[0], net.m, net.n)
        v_wl = torch.from_numpy(np.ascontiguousarray(x_full[net.wl_index.ravel()].T).reshape(shape))
        v_bl = torch.from_numpy(np.ascontiguousarray(x_full[net.bl_index.ravel()].T).reshape(shape))
        if single:
            return CrossbarSolution(i[0], v_wl[0], v_bl[0])
        return CrossbarSolution(i, v_wl, v_bl)

    def _transfer_numpy(self) -> np.ndarray:
        self.transfer_matrix()
        return self._transfer


def solve_crossbar(
    g_us: Tensor | np.ndarray,
    v_in: Tensor | np.ndarray,
    circuit: CrossbarCircuit | None = None,
    *,
    rows_driven: Tensor | np.ndarray | None = None,
    cols_sensed: Tensor | np.ndarray | None = None,
    return_voltages: bool = False,
) -> Tensor | CrossbarSolution:
    """One-call exact solve: ``CrossbarSolver(g_us, circuit, ...).solve(v_in, ...)``.

    Args:
        g_us: cell conductances [m, n] µS.
        v_in: row voltages [B, m] or [m] V.
        circuit: parasitics and periphery (default :class:`CrossbarCircuit`).
        rows_driven, cols_sensed: selection masks (see :class:`CrossbarSolver`).
        return_voltages: also return node voltages.

    Returns:
        Column currents [B, n] µA, or a :class:`CrossbarSolution`.
    """
    solver = CrossbarSolver(g_us, circuit, rows_driven=rows_driven, cols_sensed=cols_sensed)
    return solver.solve(v_in, return_voltages=return_voltages)


# --- first-order approximation --------------------------------------------------------------------
def _conductance_tensor(g_us: object, field: str = "g_us") -> Tensor:
    """``g_us`` checked as :func:`check_conductances` checks it, as a float64 tensor: a tensor
    stays on its device (the first-order model is closed-form torch), anything else goes to the
    CPU."""
    if not isinstance(g_us, Tensor):
        return torch.from_numpy(check_conductances(g_us, field))
    g = g_us.detach().to(torch.float64)
    _require_conductances(g, field)
    return g


def _first_order_checks(
    g_us: object, circuit: CrossbarCircuit | None
) -> tuple[Tensor, CrossbarCircuit]:
    circuit = circuit if circuit is not None else CrossbarCircuit()
    require(isinstance(circuit, CrossbarCircuit), "circuit", circuit, "must be a CrossbarCircuit")
    require(
        circuit.iv == "linear",
        "CrossbarCircuit.iv",
        circuit.iv,
        "the first-order approximation needs linear cells (iv='linear')",
    )
    g = _conductance_tensor(g_us)
    if circuit.cell == "1T1R":
        g = g / (1.0 + g * circuit.r_on_ohm / _MICRO)
    return g, circuit


def first_order_currents(
    g_us: Tensor | np.ndarray, v_in: Tensor | np.ndarray, circuit: CrossbarCircuit | None = None
) -> Tensor:
    """One-pass IR-drop estimate of the column currents (linear cells, all lines driven/sensed).

    The ideal cell currents I_ij = V_i·g_ij are accumulated along the wires: the word-line
    segment after cell j carries Σ_{k>j} I_ik (reverse cumulative sum), the driver carries the
    whole row; the bit-line segment below cell i carries Σ_{k<=i} I_kj (cumulative sum), the
    load the whole column. The resulting drops give the node voltages, and the cell currents
    are recomputed as I'_ij = g_ij·(V_wl(i, j) − V_bl(i, j)). The node voltages are exact to
    first order in r/R_cell (r any wire, driver or load resistance), so the current error is of
    second order: halving every r quarters it, where ignoring the wires only halves. The error
    grows like (r/R_cell · n²)² with the line length n; past r/R_cell · n² ~ 1 the estimate is
    worse than ignoring the wires (``benchmarks/ir_drop_approx.py``). Cost O(B·m·n).

    Args:
        g_us: cell conductances [m, n] µS (1T1R: the transistor's r_on is folded in series).
        v_in: row voltages [B, m] or [m] V.
        circuit: parasitics (linear cells; masks are not supported).

    Returns:
        Column currents [B, n] (or [n]) µA, float64.
    """
    g, c = _first_order_checks(g_us, circuit)
    v_np, single = check_inputs(v_in, g.shape[0])
    v = torch.from_numpy(v_np).to(g.device)
    i_cell = v[:, :, None] * g  # [B, m, n] µA
    # Word line: drop at node j = r_drv·(row total) + r_row·Σ_{l=1..j} (current beyond l-1).
    beyond = i_cell.flip(-1).cumsum(-1).flip(-1)  # Σ_{k>=j}
    seg = torch.nn.functional.pad(beyond[..., 1:].cumsum(-1), (1, 0))
    drop_wl = (c.r_driver_ohm * beyond[..., :1] + c.r_wire_row_ohm * seg) / _MICRO
    # Bit line: node i sits above the segments l = i..m-2, each carrying Σ_{k<=l} I_kj.
    above = i_cell.cumsum(-2)
    below = torch.nn.functional.pad(above[..., :-1, :].flip(-2).cumsum(-2).flip(-2), (0, 0, 0, 1))
    r_sense = c.r_load_ohm if c.sense == "load" else 0.0
    v_bl = (r_sense * above[..., -1:, :] + c.r_wire_col_ohm * below) / _MICRO
    i_col = (g * (v[:, :, None] - drop_wl - v_bl)).sum(-2)
    return i_col[0] if single else i_col


def first_order_transfer(
    g_us: Tensor | np.ndarray, circuit: CrossbarCircuit | None = None
) -> Tensor:
    """The linear map A' [m, n] (µS) of :func:`first_order_currents`: I ≈ V @ A'.

    Closed form of the same first-order model, in O(m·n): with d_kj the word-line drop per volt
    at node (k, j) and ρ(i, k) = r_sense + r_col·(m − 1 − max(i, k)) the shared bit-line
    resistance of cells i and k of one column,
    A'_kj = g_kj·(1 − d_kj) − g_kj·Σ_i g_ij·ρ(i, k).
    """
    g, c = _first_order_checks(g_us, circuit)
    m = g.shape[0]
    beyond = g.flip(-1).cumsum(-1).flip(-1)
    seg = torch.nn.functional.pad(beyond[:, 1:].cumsum(-1), (1, 0))
    d = (c.r_driver_ohm * beyond[:, :1] + c.r_wire_row_ohm * seg) / _MICRO
    r_sense = c.r_load_ohm if c.sense == "load" else 0.0
    idx = torch.arange(m, dtype=g.dtype, device=g.device)[:, None]
    # Σ_i g_ij (m−1−max(i,k)) = (m−1−k)·Σ_{i<=k} g_ij + Σ_{i>k} g_ij (m−1−i)
    upto = g.cumsum(0)
    weighted = g * (m - 1 - idx)
    after = torch.nn.functional.pad(weighted.flip(0).cumsum(0).flip(0)[1:], (0, 0, 0, 1))
    shared = r_sense * upto[-1:] + c.r_wire_col_ohm * ((m - 1 - idx) * upto + after)
    return g * (1.0 - d) - g * shared / _MICRO


__all__ = [
    "CircuitConvergenceError",
    "CrossbarCircuit",
    "CrossbarSolution",
    "CrossbarSolver",
    "check_conductances",
    "check_inputs",
    "check_mask",
    "first_order_currents",
    "first_order_transfer",
    "solve_crossbar",
]
