"""The write kernel against a slow, obviously-right loop over rows and cells, and the write
model's physics against NeuroSim V2.1's formulas on a hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ARCH
from xsim.config import load_arch
from xsim.kernels.writes import COUNTERS, SCHEMES, slice_levels, write_cost, write_costs
from xsim.write_model import PRESETS, cell_tables, crossbars_in_parallel, write_figures


def reference_levels(w, weight_bits, cell_bits, encoding):
    """Cell levels by the definition: every slice of every weight, one at a time."""
    magnitude = weight_bits if encoding == "offset" else weight_bits - 1
    slices = math.ceil(magnitude / cell_bits)
    arrays = 1 if encoding == "offset" else 2
    out = np.zeros((w.shape[0], w.shape[1] * slices * arrays), np.uint8)
    for r in range(w.shape[0]):
        for j in range(w.shape[1]):
            v = int(w[r, j])
            values = [v + 2 ** (weight_bits - 1)] if encoding == "offset" else [max(v, 0), max(-v, 0)]
            for a, value in enumerate(values):
                for s in range(slices):
                    level = (value // 2 ** (s * cell_bits)) % 2**cell_bits
                    out[r, (j * arrays + a) * slices + s] = level
    return out, slices


def reference(old, new, rows, columns, compare, tabs, scheme, pulse_ps, verify_ps, compare_ps,
              drivers, wordline_pj, array_ps):
    """One crossbar, one row, one phase and one group at a time; the energies summed cell by cell
    in row-major order within the crossbar (the order the kernel keeps, bit for bit)."""
    pulses_t, energy_t, line_t, phase_t = tabs
    grid = (math.ceil(old.shape[0] / rows), math.ceil(old.shape[1] / columns))
    out = {k: np.zeros(grid, np.float64 if "energy" in k else np.int64)
           for k in ("time", "pulses", "cells", "energy", "line_energy", "verifies", "wl")}
    written = np.zeros(old.shape, bool)
    step = pulse_ps + verify_ps if scheme == "write_verify" else pulse_ps
    for rb in range(grid[0]):
        for cb in range(grid[1]):
            cols = range(cb * columns, min((cb + 1) * columns, old.shape[1]))
            for r in range(rb * rows, min((rb + 1) * rows, old.shape[0])):
                if compare:
                    out["time"][rb, cb] += compare_ps
                for c in cols:
                    a, b = int(old[r, c]), int(new[r, c])
                    if (a != b or not compare) and pulses_t[a, b] != 0:
                        out["energy"][rb, cb] += energy_t[a, b]
                        out["line_energy"][rb, cb] += line_t[a, b]
                phases = (1, -1) if scheme == "row_parallel" else (None,)
                for ph in phases:
                    todo = []
                    for c in cols:
                        a, b = int(old[r, c]), int(new[r, c])
                        if compare and a == b:
                            continue
                        if ph is not None and (phase_t[a, b] < 0) != (ph < 0):
                            continue
                        p = int(pulses_t[a, b])
                        if p == 0:
                            continue
                        todo.append(p)
                        written[r, c] = True
                    for g in range(0, len(todo), drivers):
                        longest = max(todo[g:g + drivers])
                        out["time"][rb, cb] += longest * step
                        out["wl"][rb, cb] += longest
                    out["pulses"][rb, cb] += sum(todo)
                    out["cells"][rb, cb] += len(todo)
                    if scheme == "write_verify":
                        out["verifies"][rb, cb] += sum(todo)
            if scheme == "array":
                n_rows = min((rb + 1) * rows, old.shape[0]) - rb * rows
                out["time"][rb, cb] = (n_rows * compare_ps if compare else 0) + (
                    array_ps if out["cells"][rb, cb] else 0)
                out["wl"][rb, cb] = 0
            out["line_energy"][rb, cb] += out["wl"][rb, cb] * wordline_pj
    return out, written


def _arch(scheme, preset=None, **write):
    preset = preset or ("pumasim_array" if scheme == "array" else "cimloop_isaac")
    overrides = {"cell": {"preset": preset, "bits": 2, "write": {"scheme": scheme, **write}}}
    return load_arch(ARCH / "isaac128.yaml", overrides)


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 40), c=st.integers(1, 40), rows=st.integers(1, 16), columns=st.integers(1, 16),
    compare=st.booleans(), scheme=st.sampled_from(["row_parallel", "write_verify", "array"]),
    pulse_levels=st.integers(1, 12), drivers=st.integers(1, 9), seed=st.integers(0, 2**32 - 1),
)
def test_matches_reference(k, c, rows, columns, compare, scheme, pulse_levels, drivers, seed):
    arch = _arch(scheme, pulse_levels=pulse_levels, verify={"max_pulses": 3, "tolerance": 0.3})
    t = cell_tables(arch)
    tabs = (t.pulses, t.energy_pj, t.line_pj, t.phase)
    rng = np.random.default_rng(seed)
    old = rng.integers(0, 4, (k, c), dtype=np.uint8)
    new = np.where(rng.random((k, c)) < 0.5, old, rng.integers(0, 4, (k, c))).astype(np.uint8)
    args = dict(rows=rows, columns=columns, compare=compare, pulses=t.pulses, energy_pj=t.energy_pj,
                line_pj=t.line_pj, phase=t.phase, scheme=scheme, pulse_ps=40_000,
                verify_ps=100_000, compare_ps=100_000, drivers=drivers, wordline_pj=0.25,
                array_ps=7_000)
    counts = np.zeros(old.shape, np.int64)
    got = write_cost(old, new, counts=counts, weight=3, **args)
    want, written = reference(old, new, rows, columns, compare, tabs, scheme, 40_000, 100_000,
                              100_000, drivers, 0.25, 7_000)
    np.testing.assert_array_equal(got.time_ps, want["time"])
    np.testing.assert_array_equal(got.pulses, want["pulses"])
    np.testing.assert_array_equal(got.cells, want["cells"])
    np.testing.assert_array_equal(got.verifies, want["verifies"])
    np.testing.assert_array_equal(got.wordline_pulses, want["wl"])
    np.testing.assert_array_equal(got.energy_pj, want["energy"])
    np.testing.assert_array_equal(got.line_energy_pj, want["line_energy"])
    np.testing.assert_array_equal(counts, 3 * written)
    # A window is the same as cutting the matrices first.
    r0, c0 = k // 3, c // 4
    sub = write_cost(old, new, window=(r0, k, c0, c), **args)
    cut = write_cost(old[r0:, c0:].copy(), new[r0:, c0:].copy(), **args)
    for g, w in zip(sub, cut):
        np.testing.assert_array_equal(g, w)


def _random_tables(rng, levels):
    """Tables of any shape the kernel takes: pulses from 0 (unchanged cells driven, or changed
    cells without a pulse), energies over six decades (a changed summation order would show),
    phases SET, RESET and 0."""
    pulses = rng.integers(0, 5, (levels, levels))
    energy = rng.random((levels, levels)) * 10.0 ** rng.uniform(-3, 3, (levels, levels))
    line = rng.random((levels, levels)) * 10.0 ** rng.uniform(-3, 3, (levels, levels))
    phase = rng.integers(-1, 2, (levels, levels)).astype(np.int8)
    return pulses, energy, line, phase


def _disjoint_windows(rng, k, c):
    """A random subset (never empty) of the blocks of a random partition of a k × c matrix."""
    row_cuts = [0, *sorted(rng.choice(np.arange(1, k), rng.integers(0, min(k - 1, 4) + 1),
                                      replace=False)), k] if k > 1 else [0, 1]
    col_cuts = [0, *sorted(rng.choice(np.arange(1, c), rng.integers(0, min(c - 1, 4) + 1),
                                      replace=False)), c] if c > 1 else [0, 1]
    blocks = [(int(r0), int(r1), int(c0), int(c1)) for r0, r1 in zip(row_cuts, row_cuts[1:])
              for c0, c1 in zip(col_cuts, col_cuts[1:])]
    keep = rng.random(len(blocks)) < 0.7
    keep[rng.integers(len(blocks))] = True
    return [b for b, kept in zip(blocks, keep) if kept]


@settings(max_examples=80, deadline=None)
@given(
    k=st.integers(1, 60), c=st.integers(1, 200), rows=st.integers(1, 20), columns=st.integers(1, 70),
    compare=st.booleans(), scheme=st.sampled_from(sorted(SCHEMES)), levels=st.integers(1, 6),
    drivers=st.integers(1, 9), weight=st.integers(1, 5), counter=st.sampled_from(COUNTERS),
    seed=st.integers(0, 2**32 - 1),
)
def test_batched_windows_equal_one_call_per_window(k, c, rows, columns, compare, scheme, levels,
                                                   drivers, weight, counter, seed):
    """``write_costs`` over disjoint windows gives, bit for bit, each window's ``write_cost`` and
    the definition (``reference`` on the window alone), and the same endurance counts in any of
    its counter dtypes."""
    rng = np.random.default_rng(seed)
    tabs = _random_tables(rng, levels)
    old = rng.integers(0, levels, (k, c)).astype(np.uint8)
    new = np.where(rng.random((k, c)) < 0.6, old, rng.integers(0, levels, (k, c))).astype(np.uint8)
    if compare:  # unchanged cells outside the tables are never driven, so never looked up
        stray = rng.random((k, c)) < 0.05
        old[stray] = new[stray] = levels + 3
    windows = _disjoint_windows(rng, k, c)
    args = dict(rows=rows, columns=columns, compare=compare, pulses=tabs[0], energy_pj=tabs[1],
                line_pj=tabs[2], phase=tabs[3], scheme=scheme, pulse_ps=40_000,
                verify_ps=100_000, compare_ps=90_000, drivers=drivers, wordline_pj=0.3,
                array_ps=7_000)
    together = np.zeros(old.shape, counter)
    costs = write_costs(old, new, windows, counts=together, weight=weight, **args)
    alone = np.zeros(old.shape, np.int64)
    for w, (r0, r1, c0, c1) in enumerate(windows):
        got = costs.window(w)
        one = write_cost(old, new, window=(r0, r1, c0, c1), counts=alone, weight=weight, **args)
        want, _ = reference(old[r0:r1, c0:c1], new[r0:r1, c0:c1], rows, columns, compare, tabs,
                            scheme, 40_000, 100_000, 90_000, drivers, 0.3, 7_000)
        for field, key in zip(got._fields, ("time", "pulses", "cells", "energy", "line_energy",
                                            "verifies", "wl")):
            g, o = getattr(got, field), getattr(one, field)
            assert g.dtype == o.dtype == want[key].dtype, field
            np.testing.assert_array_equal(g, o, err_msg=field)
            np.testing.assert_array_equal(g, want[key], err_msg=field)
    np.testing.assert_array_equal(together.astype(np.int64), alone)


def _tables_args(**extra):
    t = cell_tables(load_arch(ARCH / "isaac128.yaml"))
    return {**dict(rows=4, columns=4, compare=True, pulses=t.pulses, energy_pj=t.energy_pj,
                   line_pj=t.line_pj, phase=t.phase, scheme="row_parallel", pulse_ps=1,
                   verify_ps=1, compare_ps=1, drivers=2), **extra}


def test_windows_of_one_call_must_not_overlap():
    levels = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match=r"windows \(0, 4, 0, 4\) and \(2, 8, 3, 8\) overlap"):
        write_costs(levels, levels, [(0, 4, 0, 4), (2, 8, 3, 8)], **_tables_args())
    with pytest.raises(ValueError, match="outside the levels' shape"):
        write_costs(levels, levels, [(0, 4, 0, 4), (4, 9, 0, 8)], **_tables_args())
    costs = write_costs(levels, levels, [(0, 4, 0, 4), (4, 8, 0, 8), (0, 4, 4, 8)], **_tables_args())
    assert costs.first.tolist() == [0, 1, 3, 4] and costs.grids.tolist() == [[1, 1], [1, 2], [1, 1]]


def test_counters_and_tables_the_kernel_refuses():
    levels = np.zeros((4, 4), np.uint8)
    for counts in (np.zeros((4, 4), np.float64), np.zeros((4, 4), np.int32),
                   np.zeros((4, 8), np.int64)[:, ::2], np.zeros((4, 5), np.int64)):
        with pytest.raises(ValueError, match="counts must be"):
            write_cost(levels, levels, counts=counts, **_tables_args())
    args = _tables_args()
    args["pulses"] = -args["pulses"]
    with pytest.raises(ValueError, match="pulses must be non-negative"):
        write_cost(levels, levels, **args)


def test_a_level_outside_the_tables_only_matters_where_the_controller_drives_it():
    inside = np.zeros((4, 4), np.uint8)
    stray = inside.copy()
    stray[1, 2] = 9
    # Unchanged under compare: never driven, never looked up.
    cost = write_cost(stray, stray.copy(), **_tables_args())
    assert cost.cells.sum() == 0
    with pytest.raises(ValueError, match="outside the write tables"):
        write_cost(stray, stray.copy(), **_tables_args(compare=False))
    with pytest.raises(ValueError, match="outside the write tables"):
        write_cost(inside, stray, **_tables_args())


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(2, 16), cell_bits=st.integers(1, 4),
       encoding=st.sampled_from(["offset", "differential"]), seed=st.integers(0, 2**32 - 1),
       k=st.integers(1, 9), n=st.integers(1, 9))
def test_slice_levels_matches_definition(bits, cell_bits, encoding, seed, k, n):
    low = -(2 ** (bits - 1)) + (encoding == "differential")
    w = np.random.default_rng(seed).integers(low, 2 ** (bits - 1), (k, n))
    want, slices = reference_levels(w, bits, cell_bits, encoding)
    got = slice_levels(w, weight_bits=bits, cell_bits=cell_bits, slices=slices, encoding=encoding)
    np.testing.assert_array_equal(got, want)


def test_neurosim_hand_computed_row():
    """NeuroSim V2.1's formulas on one row, computed by hand: its last ReRAM default, 100 kOhm /
    1 MOhm, 32 pulses from G_min to G_max, V_w = sqrt(4^2 + 4^2) V, 50 ns, on a 4-level cell; one
    cell 0 -> 3 (SET), one 3 -> 1 (RESET), one unchanged, no line capacitance."""
    arch = _arch("row_parallel", preset="neurosim_v2_1", line_capacitance_ff_per_cell=0.0)
    t = cell_tables(arch)
    g_min, g_max = 1 / 1e6, 1 / 100e3
    g = [g_min + i * (g_max - g_min) / 3 for i in range(4)]
    d_pulse = (g_max - g_min) / 32
    n_set = math.ceil((g[3] - g[0]) / d_pulse - 1e-9)
    n_reset = math.ceil((g[3] - g[1]) / d_pulse - 1e-9)
    assert (n_set, n_reset) == (32, 22)

    def energy(ga, gb, n):  # V^2 / R_avg * t * n, R_avg = (1/G_old + 1/G_new) / 2
        return 32 / ((1 / ga + 1 / gb) / 2) * 50e-9 * n * 1e12

    old = np.array([[0, 3, 2]], np.uint8)
    new = np.array([[3, 1, 2]], np.uint8)
    cost = write_cost(old, new, rows=1, columns=3, compare=False, pulses=t.pulses,
                      energy_pj=t.energy_pj, line_pj=t.line_pj, phase=t.phase,
                      scheme="row_parallel", pulse_ps=t.pulse_ps, verify_ps=0, compare_ps=0,
                      drivers=128)
    # Latency: the row's slowest SET cell, then its slowest RESET cell.
    assert cost.time_ps[0, 0] == (n_set + n_reset) * 50_000
    want = energy(g[0], g[3], n_set) + energy(g[3], g[1], n_reset)
    assert cost.energy_pj[0, 0] == pytest.approx(want, rel=1e-9)
    assert cost.pulses[0, 0] == n_set + n_reset and cost.cells[0, 0] == 2


def test_write_verify_adds_a_verify_read_per_pulse_and_caps():
    arch = _arch("write_verify", pulse_levels=6, verify={"max_pulses": 4, "tolerance": 0.0})
    t = cell_tables(arch)
    assert t.pulses[0, 3] == 4 and t.pulses[0, 1] == 2 and t.pulses[2, 2] == 0
    old = np.zeros((1, 2), np.uint8)
    new = np.array([[3, 1]], np.uint8)
    cost = write_cost(old, new, rows=1, columns=2, compare=True, pulses=t.pulses,
                      energy_pj=t.energy_pj, line_pj=t.line_pj, phase=t.phase,
                      scheme="write_verify", pulse_ps=40_000, verify_ps=100_000,
                      compare_ps=100_000, drivers=1)
    assert cost.verifies[0, 0] == 6
    assert cost.time_ps[0, 0] == 100_000 + (4 + 2) * 140_000


def test_unchanged_crossbar_costs_only_the_compare_reads():
    t = cell_tables(load_arch(ARCH / "isaac128.yaml"))
    old = np.full((128, 128), 2, np.uint8)
    counts = np.zeros(old.shape, np.int64)
    cost = write_cost(old, old.copy(), counts=counts, rows=128, columns=128, compare=True,
                      pulses=t.pulses, energy_pj=t.energy_pj, line_pj=t.line_pj, phase=t.phase,
                      scheme="row_parallel", pulse_ps=40_000, verify_ps=100_000,
                      compare_ps=100_000, drivers=16)
    assert cost.time_ps.tolist() == [[128 * 100_000]] and cost.pulses.sum() == 0
    assert cost.energy_pj.sum() == 0 and not counts.any()


def test_presets_load_and_parallelism_follows_the_budget():
    for name in PRESETS:
        arch = load_arch(ARCH / "isaac128.yaml", {"cell": {"preset": name, "bits": 2}})
        figures = write_figures(arch)
        assert figures["preset"] == name and figures["cell_write_energy_pj_mean"] > 0
    isaac = load_arch(ARCH / "isaac128.yaml")
    per = write_figures(isaac)["crossbar_write_power_mw"]
    # 16 drivers at 2 V into 1.33 kOhm: 3.0 mW each, plus the lines.
    assert per == pytest.approx(16 * 4 / 1330 * 1e3, rel=0.01)
    assert crossbars_in_parallel(isaac) == math.floor(400 / per)
    double = load_arch(ARCH / "isaac128.yaml", {"reprogramming.write_power_budget_mw": 800})
    assert crossbars_in_parallel(double) == math.floor(800 / per)
    tiny = load_arch(ARCH / "isaac128.yaml", {"reprogramming.write_power_budget_mw": 1})
    assert crossbars_in_parallel(tiny) == 1


def test_unknown_preset_is_a_clear_error():
    from xsim.config import ConfigError

    with pytest.raises(ConfigError, match="cell.preset: unknown cell preset 'magic'"):
        load_arch(ARCH / "isaac128.yaml", {"cell.preset": "magic"})


def test_a_level_outside_the_tables_is_refused():
    t = cell_tables(load_arch(ARCH / "isaac128.yaml"))
    old = np.zeros((2, 2), np.uint8)
    new = np.full((2, 2), 7, np.uint8)
    with pytest.raises(ValueError, match="outside the write tables"):
        write_cost(old, new, rows=2, columns=2, compare=True, pulses=t.pulses,
                   energy_pj=t.energy_pj, line_pj=t.line_pj, phase=t.phase,
                   scheme="row_parallel", pulse_ps=1, verify_ps=1, compare_ps=1, drivers=1)
