"""Exact crossbar circuit solve: ngspice agreement, hand-derived closed forms, superposition,
the first-order IR-drop approximation's convergence order, and errors on bad input."""

import numpy as np
import pytest
import torch

from memcim import ConfigError
from memcim.crossbar.circuit import (
    CircuitConvergenceError,
    CrossbarCircuit,
    CrossbarSolver,
    first_order_currents,
    first_order_transfer,
    solve_crossbar,
)
from memcim.crossbar.spice import (
    NgspiceError,
    ngspice_available,
    ngspice_currents,
    run_ngspice,
    write_netlist,
)

needs_ngspice = pytest.mark.skipif(
    not ngspice_available(), reason="ngspice is not installed (apt-get install ngspice)"
)

# Non-trivial parasitics: segments of a few Ω, a 20 Ω driver, an 800 Ω transistor, 50 Ω load.
PARASITICS = {
    "r_wire_row_ohm": 2.5,
    "r_wire_col_ohm": 1.5,
    "r_driver_ohm": 20.0,
    "r_on_ohm": 800.0,
    "r_load_ohm": 50.0,
}
CELLS = ["1T1R", "0T1R"]
SENSES = ["virtual_ground", "load"]


def random_array(gen, m, n, batch=3):
    """Conductances uniform in 1–100 µS and inputs uniform in 0–0.2 V, float64."""
    g = 1.0 + 99.0 * torch.rand(m, n, generator=gen, dtype=torch.float64)
    v = 0.2 * torch.rand(batch, m, generator=gen, dtype=torch.float64)
    return g, v


def max_rel_error(out, ref):
    """Largest |out − ref| / |ref| over the sensed (non-zero) reference currents."""
    out, ref = torch.as_tensor(out), torch.as_tensor(ref)
    live = ref != 0
    assert live.any()
    assert torch.all(out[~live] == 0)
    return float(((out - ref).abs()[live] / ref.abs()[live]).max())


def g_effective(g, circuit):
    """Cell conductance with the 1T1R transistor in series (µS)."""
    if circuit.cell == "0T1R":
        return g
    return g / (1.0 + g * circuit.r_on_ohm * 1e-6)


# --- ngspice agreement ----------------------------------------------------------------------------
@needs_ngspice
@pytest.mark.parametrize("shape", [(4, 4), (8, 16), (16, 8), (32, 32)])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("sense", SENSES)
def test_linear_array_matches_ngspice(shape, cell, sense, gen):
    g, v = random_array(gen, *shape)
    circuit = CrossbarCircuit(cell=cell, sense=sense, **PARASITICS)
    ref = ngspice_currents(g, v, circuit)
    assert max_rel_error(solve_crossbar(g, v, circuit), ref) <= 1e-6


@needs_ngspice
@pytest.mark.parametrize("shape", [(8, 16), (16, 8)])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("sense", SENSES)
def test_floating_lines_match_ngspice(shape, cell, sense, gen):
    m, n = shape
    g, v = random_array(gen, m, n)
    rows = torch.rand(m, generator=gen) > 0.4
    cols = torch.rand(n, generator=gen) > 0.4
    rows[0] = cols[0] = True
    rows[-1] = cols[-1] = False
    circuit = CrossbarCircuit(cell=cell, sense=sense, **PARASITICS)
    ref = ngspice_currents(g, v, circuit, rows_driven=rows, cols_sensed=cols)
    out = solve_crossbar(g, v, circuit, rows_driven=rows, cols_sensed=cols)
    assert max_rel_error(out, ref) <= 1e-6
    if cell == "0T1R":
        # The floating lines carry sneak current: removing their cells changes the result.
        g_cut = g * rows[:, None] * cols[None, :]
        cut = solve_crossbar(g_cut, v, circuit, rows_driven=rows, cols_sensed=cols)
        assert max_rel_error(cut, ref) > 1e-3


@needs_ngspice
@pytest.mark.parametrize("shape", [(8, 16), (32, 32)])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("sense", SENSES)
def test_sinh_cells_match_ngspice(shape, cell, sense, gen):
    m, n = shape
    g, v = random_array(gen, m, n)
    circuit = CrossbarCircuit(cell=cell, sense=sense, iv="sinh", v0_v=0.1, **PARASITICS)
    ref = ngspice_currents(g, v, circuit)
    assert max_rel_error(solve_crossbar(g, v, circuit), ref) <= 1e-4
    # Not a vacuous check: at V/V0 up to 2 the linear model is far off.
    linear = solve_crossbar(g, v, CrossbarCircuit(cell=cell, sense=sense, **PARASITICS))
    assert max_rel_error(linear, ref) > 1e-2
    # Floating lines (sneak paths through sinh cells for 0T1R).
    rows, cols = torch.arange(m) % 3 != 1, torch.arange(n) % 4 != 2
    ref = ngspice_currents(g, v, circuit, rows_driven=rows, cols_sensed=cols)
    out = solve_crossbar(g, v, circuit, rows_driven=rows, cols_sensed=cols)
    assert max_rel_error(out, ref) <= 1e-4


@needs_ngspice
@pytest.mark.parametrize(
    "zero", ["r_wire_row_ohm", "r_wire_col_ohm", "r_driver_ohm", "r_on_ohm", "all_wires"]
)
@pytest.mark.parametrize("sense", SENSES)
@pytest.mark.parametrize("iv", ["linear", "sinh"])
def test_zero_resistances_match_ngspice(zero, sense, iv, gen):
    """Zero resistances merge nodes in our solve and are 0-V sources (shorts) in SPICE."""
    g, v = random_array(gen, 12, 10)
    rows = torch.ones(12, dtype=torch.bool)
    rows[5] = False
    zeros = ["r_wire_row_ohm", "r_wire_col_ohm", "r_driver_ohm"] if zero == "all_wires" else [zero]
    circuit = CrossbarCircuit(
        cell="1T1R", sense=sense, iv=iv, v0_v=0.1, **{**PARASITICS, **dict.fromkeys(zeros, 0.0)}
    )
    ref = ngspice_currents(g, v, circuit, rows_driven=rows)
    tol = 1e-6 if iv == "linear" else 1e-4
    assert max_rel_error(solve_crossbar(g, v, circuit, rows_driven=rows), ref) <= tol


@needs_ngspice
def test_ngspice_failures_are_reported(tmp_path, gen):
    g, v = random_array(gen, 3, 3)
    path = write_netlist(tmp_path / "x.cir", g, v[0], CrossbarCircuit())
    with pytest.raises(NgspiceError, match="not found"):
        run_ngspice(path, executable="no-such-ngspice-binary")
    broken = tmp_path / "broken.cir"
    broken.write_text(path.read_text().replace(".control", "rbad lonely_a lonely_b 1\n.control"))
    with pytest.raises(NgspiceError, match="ngspice"):
        run_ngspice(broken)


# --- closed forms ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_ideal_wires_give_v_at_g(cell, gen):
    g, v = random_array(gen, 7, 11, batch=5)
    circuit = CrossbarCircuit(r_wire_row_ohm=0, r_wire_col_ohm=0, r_driver_ohm=0, cell=cell)
    torch.testing.assert_close(
        solve_crossbar(g, v, circuit), v @ g_effective(g, circuit), rtol=1e-12, atol=0
    )
    if cell == "1T1R":
        no_transistor = CrossbarCircuit(
            r_wire_row_ohm=0, r_wire_col_ohm=0, r_driver_ohm=0, r_on_ohm=0
        )
        torch.testing.assert_close(solve_crossbar(g, v, no_transistor), v @ g, rtol=1e-12, atol=0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("sense", SENSES)
def test_single_cell_is_a_series_circuit(cell, sense):
    circuit = CrossbarCircuit(cell=cell, sense=sense, **PARASITICS)  # wires play no role
    g, v = 37.0, 0.15
    r_total = circuit.r_driver_ohm + 1e6 / g
    r_total += circuit.r_on_ohm if cell == "1T1R" else 0.0
    r_total += circuit.r_load_ohm if sense == "load" else 0.0
    f64 = torch.float64
    out = solve_crossbar(torch.tensor([[g]], dtype=f64), torch.tensor([v], dtype=f64), circuit)
    assert out.shape == (1,)
    assert abs(out.item() - v / r_total * 1e6) <= 1e-12 * abs(out.item())


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("sense", SENSES)
def test_one_row_is_a_ladder(cell, sense, gen):
    """1 × n: driver, then word-line segments, each node to ground through its cell branch."""
    n = 9
    g, v = random_array(gen, 1, n, batch=1)
    c = CrossbarCircuit(cell=cell, sense=sense, **PARASITICS)
    branch = [1e6 / gj + (c.r_on_ohm if cell == "1T1R" else 0.0) for gj in g[0].tolist()]
    branch = [r + (c.r_load_ohm if sense == "load" else 0.0) for r in branch]
    # Resistance seen into node j looking right: Z_j = branch_j || (r_row + Z_{j+1}).
    z = [0.0] * n
    z[-1] = branch[-1]
    for j in range(n - 2, -1, -1):
        onward = c.r_wire_row_ohm + z[j + 1]
        z[j] = branch[j] * onward / (branch[j] + onward)
    node = v[0, 0].item() * z[0] / (c.r_driver_ohm + z[0])
    expected = []
    for j in range(n):
        expected.append(node / branch[j] * 1e6)
        if j + 1 < n:
            node *= z[j + 1] / (c.r_wire_row_ohm + z[j + 1])  # divider along the segment
    out = solve_crossbar(g, v, c)
    torch.testing.assert_close(out[0], torch.tensor(expected, dtype=out.dtype), rtol=1e-12, atol=0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("sense", SENSES)
def test_one_column_is_a_thevenin_chain(cell, sense, gen):
    """m × 1: each row a source behind (driver + cell); fold Thevenin equivalents down the
    bit line, through each segment, into the sense end."""
    m = 8
    g, v = random_array(gen, m, 1, batch=1)
    c = CrossbarCircuit(cell=cell, sense=sense, **PARASITICS)
    source_r = [
        c.r_driver_ohm + 1e6 / gi + (c.r_on_ohm if cell == "1T1R" else 0.0)
        for gi in g[:, 0].tolist()
    ]
    e, z = v[0, 0].item(), source_r[0]
    for i in range(1, m):
        z += c.r_wire_col_ohm
        vi, ri = v[0, i].item(), source_r[i]
        e = (e / z + vi / ri) / (1 / z + 1 / ri)
        z = z * ri / (z + ri)
    expected = e / (z + (c.r_load_ohm if sense == "load" else 0.0)) * 1e6
    out = solve_crossbar(g, v, c)
    assert abs(out[0, 0].item() - expected) <= 1e-12 * expected


@pytest.mark.parametrize("shape", [(6, 13), (13, 6)])  # direct and adjoint superposition
@pytest.mark.parametrize("cell", CELLS)
def test_transfer_matrix_is_the_solve_of_the_identity(shape, cell, gen):
    m, n = shape
    g, _ = random_array(gen, m, n)
    rows = torch.ones(m, dtype=torch.bool)
    rows[2] = False
    solver = CrossbarSolver(g, CrossbarCircuit(cell=cell, **PARASITICS), rows_driven=rows)
    a = solver.transfer_matrix()
    assert a.shape == (m, n)
    eye = torch.eye(m, dtype=torch.float64)
    direct = solver.solve(eye, return_voltages=True).i_col_ua  # always back-solves
    torch.testing.assert_close(a, direct, rtol=1e-10, atol=1e-12)
    assert torch.all(a[2] == 0)  # an undriven row's input is ignored


@pytest.mark.parametrize("batch", [3, 40])  # 40 > min(m, n): solved through the transfer matrix
def test_batch_solve_equals_per_vector_solves(batch, gen):
    g, v = random_array(gen, 10, 12, batch=batch)
    solver = CrossbarSolver(g, CrossbarCircuit(cell="0T1R", **PARASITICS))
    out = solver.solve(v)
    assert out.shape == (batch, 12) and out.dtype == torch.float64
    each = torch.stack([solver.solve(row) for row in v])
    torch.testing.assert_close(out, each, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out, solver.solve(v.numpy()), rtol=0, atol=0)  # numpy in


@pytest.mark.parametrize("cell", CELLS)
def test_node_voltages_obey_ohm_and_kirchhoff(cell, gen):
    m, n = 6, 7
    g, v = random_array(gen, m, n, batch=2)
    rows = torch.ones(m, dtype=torch.bool)
    rows[3] = False
    c = CrossbarCircuit(cell=cell, **PARASITICS)
    sol = solve_crossbar(g, v, c, rows_driven=rows, return_voltages=True)
    i_cell = g_effective(g, c) * (sol.v_wl_v - sol.v_bl_v)  # [B, m, n] µA
    if cell == "1T1R":
        assert torch.isnan(sol.v_wl_v[:, 3]).all()  # floating word line: no DC path
        i_cell[:, 3] = 0.0
    # Virtual ground: each bit line delivers all its cells' current to the sense node.
    torch.testing.assert_close(sol.i_col_ua, i_cell.sum(1), rtol=1e-10, atol=1e-12)
    # Driver: V_i − V(w_i0) = R_drv × row current, on driven rows.
    drop = (v - sol.v_wl_v[:, :, 0])[:, rows]
    torch.testing.assert_close(
        drop, c.r_driver_ohm * i_cell.sum(2)[:, rows] * 1e-6, rtol=1e-9, atol=1e-15
    )
    assert torch.all(sol.v_bl_v[:, -1, :] == 0)  # the sense end sits at 0 V


def test_newton_gives_up_with_a_clear_error(gen):
    g, v = random_array(gen, 5, 5)
    solver = CrossbarSolver(
        g, CrossbarCircuit(iv="sinh", v0_v=0.05, **PARASITICS), newton_max_iter=1
    )
    with pytest.raises(CircuitConvergenceError, match="newton_max_iter"):
        solver.solve(v)


# --- first-order approximation --------------------------------------------------------------------
def relative_errors(g, v, circuit):
    """Mean relative column-current error of (first order, ideal V @ G) against the exact solve."""
    exact = solve_crossbar(g, v, circuit)
    first = first_order_currents(g, v, circuit)
    ideal = v @ g_effective(g, circuit)
    mean_rel = lambda x: float(((x - exact).abs() / exact.abs()).mean())  # noqa: E731
    return mean_rel(first), mean_rel(ideal)


@pytest.mark.parametrize(
    "circuit",
    [
        CrossbarCircuit(cell="0T1R", r_driver_ohm=0.0),
        CrossbarCircuit(cell="1T1R", sense="load", r_load_ohm=8.0, r_driver_ohm=4.0),
    ],
)
def test_first_order_error_is_second_order_in_the_resistances(circuit, gen):
    """Scaling every parasitic resistance by s: ignoring the wires errs by O(s) (halving s halves
    it), while the first-order node voltages are exact to O(s), so its current error is O(s²)
    (halving s quarters it). Measured on 16 × 24 at s = 0.05 / 0.025 (r/R_cell ~ 1e-6–1e-5),
    the ratios are 2.000 and 4.000 to 4 digits; we allow ±2 %."""
    g, v = random_array(gen, 16, 24, batch=4)

    def scaled(s):
        return CrossbarCircuit(
            cell=circuit.cell,
            sense=circuit.sense,
            r_wire_row_ohm=s,
            r_wire_col_ohm=s,
            r_driver_ohm=s * circuit.r_driver_ohm,
            r_load_ohm=s * circuit.r_load_ohm if circuit.sense == "load" else 1.0,
            r_on_ohm=circuit.r_on_ohm,  # folded into the cell exactly, not a perturbation
        )

    first_1, ideal_1 = relative_errors(g, v, scaled(0.05))
    first_2, ideal_2 = relative_errors(g, v, scaled(0.025))
    assert ideal_1 / ideal_2 == pytest.approx(2.0, rel=0.02)
    assert first_1 / first_2 == pytest.approx(4.0, rel=0.02)
    assert first_1 < 1e-2 * ideal_1


@pytest.mark.parametrize("sense", SENSES)
def test_first_order_beats_ignoring_wires_at_moderate_resistance(sense, gen):
    g, v = random_array(gen, 32, 32, batch=4)
    circuit = CrossbarCircuit(
        cell="0T1R",
        sense=sense,
        r_wire_row_ohm=2.0,
        r_wire_col_ohm=2.0,
        r_driver_ohm=2.0,
        r_load_ohm=10.0,
    )
    first, ideal = relative_errors(g, v, circuit)
    # Measured: ideal 6.8 % / first order 0.52 % (virtual ground), 8.4 % / 0.77 % (load).
    assert ideal > 0.05  # the parasitics matter: ignoring them errs by > 5 %
    assert first < 0.2 * ideal


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("sense", SENSES)
def test_first_order_transfer_closed_form_matches_the_cumsum_pass(cell, sense, gen):
    g, v = random_array(gen, 9, 14, batch=6)
    circuit = CrossbarCircuit(cell=cell, sense=sense, **PARASITICS)
    a = first_order_transfer(g, circuit)
    eye = torch.eye(9, dtype=torch.float64)
    torch.testing.assert_close(a, first_order_currents(g, eye, circuit), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(first_order_currents(g, v, circuit), v @ a, rtol=1e-12, atol=1e-12)
    assert first_order_currents(g, v[0], circuit).shape == (14,)


# --- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"r_wire_row_ohm": -1.0}, "r_wire_row_ohm"),
        ({"r_wire_col_ohm": float("nan")}, "r_wire_col_ohm"),
        ({"r_driver_ohm": float("inf")}, "r_driver_ohm"),
        ({"r_on_ohm": -5.0}, "r_on_ohm"),
        ({"sense": "current_mirror"}, "sense"),
        ({"sense": "load", "r_load_ohm": 0.0}, "r_load_ohm"),
        ({"cell": "2T2R"}, "cell"),
        ({"iv": "exp"}, "iv"),
        ({"v0_v": 0.0}, "v0_v"),
    ],
)
def test_bad_circuit_fields_are_named(kwargs, field):
    with pytest.raises(ConfigError, match=f"CrossbarCircuit.{field}"):
        CrossbarCircuit(**kwargs)


def test_bad_arrays_and_masks_are_named():
    g = torch.full((3, 4), 10.0)
    v = torch.full((2, 3), 0.1)
    cases = [
        (lambda: CrossbarSolver(torch.full((3,), 10.0)), "g_us.shape"),
        (lambda: CrossbarSolver(-g), "g_us"),
        (lambda: CrossbarSolver(g.clone().fill_(float("nan"))), "g_us"),
        (lambda: CrossbarSolver(g, rows_driven=torch.ones(4, dtype=torch.bool)), "rows_driven"),
        (lambda: CrossbarSolver(g, cols_sensed=torch.ones(4)), "cols_sensed"),
        (lambda: CrossbarSolver(g, circuit="fast"), "circuit"),
        (lambda: CrossbarSolver(g, newton_tol_v=0.0), "newton_tol_v"),
        (lambda: CrossbarSolver(g).solve(torch.zeros(2, 4)), "v_in.shape"),
        (lambda: CrossbarSolver(g).solve(v.clone().fill_(float("inf"))), "v_in"),
        (
            lambda: CrossbarSolver(g, CrossbarCircuit(iv="sinh")).transfer_matrix(),
            "CrossbarCircuit.iv",
        ),
        (lambda: first_order_currents(g, v, CrossbarCircuit(iv="sinh")), "CrossbarCircuit.iv"),
        (lambda: first_order_transfer(-g), "g_us"),
    ]
    for call, field in cases:
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            call()


def test_open_cells_and_floating_words_are_solvable():
    """Zero conductances are open cells; a 1T1R row without driver is wholly disconnected."""
    g = torch.tensor([[10.0, 0.0], [0.0, 20.0]], dtype=torch.float64)
    ideal = CrossbarCircuit(r_wire_row_ohm=0, r_wire_col_ohm=0, r_driver_ohm=0, r_on_ohm=0)
    out = solve_crossbar(g, torch.tensor([0.1, 0.2]), ideal)
    torch.testing.assert_close(out, torch.tensor([1.0, 4.0], dtype=torch.float64))
    rows = torch.tensor([True, False])
    solver = CrossbarSolver(g, CrossbarCircuit(), rows_driven=rows)
    sol = solver.solve(torch.tensor([0.1, 0.2]), return_voltages=True)
    assert sol.i_col_ua[1] == 0 and sol.i_col_ua[0] > 0
    assert torch.isnan(sol.v_wl_v[1]).all()
    assert np.isfinite(sol.v_bl_v.numpy()).all()
