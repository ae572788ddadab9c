"""Cost of reprogramming crossbars from one set of cell levels to another.

The physics of one cell write comes in as tables over (old level, new level) pairs, built by
:mod:`xsim.write_model` from the arch file's cell: ``pulses[a, b]`` program pulses, their energy
in the cell ``energy_pj[a, b]`` and in its bit line ``line_pj[a, b]``, and ``phase[a, b]`` (+1
SET, -1 RESET, 0 unchanged). This kernel does the bookkeeping of a crossbar's rows and write drivers:

* A crossbar is written row by row. With ``compare`` the controller first reads the row (one read
  of ``compare_ps``) and writes only the cells whose level changes; without it, every cell of the
  row is driven (an unchanged cell's pulses and energy are those of its table entry, normally 0).
The energy of a written cell is ``energy_pj[a, b]`` and its bit line's ``line_pj[a, b]``.

* ``scheme = 0`` (``row_parallel``, NeuroSim V2.1): a row's SET cells, then its RESET cells, each
  phase in groups of ``drivers`` columns (the write drivers) in column order; a group lasts as
  many pulses as its slowest cell, ``max(p) * pulse_ps``, and drives its word line that long.
* ``scheme = 1`` (``write_verify``): the row's changed cells in groups of ``drivers``; every pulse
  is followed by a verify read, so a group lasts ``max(p) * (pulse_ps + verify_ps)``; one verify
  read per pulse of every cell.
* ``scheme = 2`` (``array``, PUMAsim's whole-array figure): a crossbar with any cell to write is
  written in ``array_ps``, whatever its rows; each written cell costs its table energy.

Per crossbar (row block × column block of a window of the level matrix) ``write_cost`` returns the
write time in ps, program pulses, cells written, the cells' write energy and the line energy in pJ
(bit lines from ``line_pj``, plus ``wordline_pj`` for every pulse a row's word line is driven),
verify reads and word-line pulses, and adds ``weight`` to the per-cell endurance counter of every
cell written.

``slice_levels`` turns signed integer weights into the cell levels they occupy (the layout of
:mod:`xsim.mta.cells`, whose numpy version is the reference in the tests).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ._settings import JIT, PARALLEL_JIT

ROW_PARALLEL, WRITE_VERIFY, ARRAY = 0, 1, 2
SCHEMES = {"row_parallel": ROW_PARALLEL, "write_verify": WRITE_VERIFY, "array": ARRAY}


class WriteCost(NamedTuple):
    """Per crossbar of the window: arrays of shape (row blocks, column blocks)."""

    time_ps: np.ndarray
    pulses: np.ndarray
    cells: np.ndarray
    energy_pj: np.ndarray
    """the cells' write energy"""
    line_energy_pj: np.ndarray
    """word- and bit-line charging"""
    verifies: np.ndarray
    wordline_pulses: np.ndarray


@njit(**JIT)
def _write_cost(old, new, w_r0, w_r1, w_c0, w_c1, rows, columns, compare, pulse_tab, energy_tab,
                line_tab, phase_tab, scheme, pulse_ps, verify_ps, compare_ps, array_ps, drivers,
                wordline_pj, time_ps, pulses, cells, energy, line_energy, verifies, wl_pulses,
                counts, weight):
    levels = pulse_tab.shape[0]
    row_blocks = time_ps.shape[0]
    col_blocks = time_ps.shape[1]
    step_ps = pulse_ps + verify_ps if scheme == 1 else pulse_ps
    # Serial: a call costs one PE's window (about a millisecond), too little to pay for a
    # parallel region's fork and join, which also spins against other work on a busy host.
    for xb in range(row_blocks * col_blocks):
        # Write-driver groups in one pass over a row: row_parallel keeps a SET group (slot 0)
        # and a RESET group (slot 1), taken in column order each; other schemes use slot 0.
        in_group = np.zeros(2, np.int64)
        group_max = np.zeros(2, np.int64)
        rb = xb // col_blocks
        cb = xb % col_blocks
        r0 = w_r0 + rb * rows
        r1 = min(r0 + rows, w_r1)
        c0 = w_c0 + cb * columns
        c1 = min(c0 + columns, w_c1)
        t = np.int64(0)
        p_total = np.int64(0)
        c_total = np.int64(0)
        e_total = 0.0
        l_total = 0.0
        v_total = np.int64(0)
        wl_total = np.int64(0)
        for r in range(r0, r1):
            if compare:
                t += compare_ps
            in_group[:] = 0
            group_max[:] = 0
            for c in range(c0, c1):
                a = old[r, c]
                b = new[r, c]
                if compare and a == b:
                    continue
                if a >= levels or b >= levels:
                    raise ValueError("a cell level is outside the write tables")
                p = pulse_tab[a, b]
                if p == 0:
                    continue
                slot = 1 if scheme == 0 and phase_tab[a, b] < 0 else 0
                counts[r, c] += weight
                p_total += p
                c_total += 1
                e_total += energy_tab[a, b]
                l_total += line_tab[a, b]
                if scheme == 1:
                    v_total += p
                in_group[slot] += 1
                if p > group_max[slot]:
                    group_max[slot] = p
                if in_group[slot] == drivers:
                    t += group_max[slot] * step_ps
                    wl_total += group_max[slot]
                    in_group[slot] = 0
                    group_max[slot] = 0
            for slot in range(2):
                if in_group[slot]:
                    t += group_max[slot] * step_ps
                    wl_total += group_max[slot]
        if scheme == 2:
            t = (r1 - r0) * compare_ps if compare else 0
            if c_total:
                t += array_ps
            wl_total = 0
        time_ps[rb, cb] = t
        pulses[rb, cb] = p_total
        cells[rb, cb] = c_total
        energy[rb, cb] = e_total
        line_energy[rb, cb] = l_total + wl_total * wordline_pj
        verifies[rb, cb] = v_total
        wl_pulses[rb, cb] = wl_total


def write_cost(old: np.ndarray, new: np.ndarray, *, rows: int, columns: int, compare: bool,
               pulses: np.ndarray, energy_pj: np.ndarray, line_pj: np.ndarray, phase: np.ndarray,
               scheme: str,
               pulse_ps: int, verify_ps: int, compare_ps: int, drivers: int,
               wordline_pj: float = 0.0, array_ps: int = 0,
               window: tuple[int, int, int, int] | None = None, counts: np.ndarray | None = None,
               weight: int = 1) -> WriteCost:
    """Cost of rewriting a level matrix ``old`` → ``new`` laid out on ``rows``×``columns`` crossbars.

    ``old`` and ``new`` are (K, C) uint8 cell levels of one layer's crossbar grid. Only the
    ``window = (r0, r1, c0, c1)`` (default: everything) is rewritten; its row block ``rb`` holds
    rows ``[r0 + rb*rows, ...)`` and its column block ``cb`` columns ``[c0 + cb*columns, ...)``.
    ``pulses``, ``energy_pj`` and ``phase`` are the (L, L) tables of one cell's write (see the
    module docstring); ``scheme`` is ``row_parallel``, ``write_verify`` or ``array``. Adds
    ``weight`` to ``counts[r, c]`` (an int64 array of the levels' shape, when given) for every
    cell written.
    """
    if old.shape != new.shape or old.ndim != 2:
        raise ValueError(f"old and new levels must be equal 2-D shapes, got {old.shape} and {new.shape}")
    if old.dtype != np.uint8 or new.dtype != np.uint8:
        raise ValueError(f"cell levels must be uint8, got {old.dtype} and {new.dtype}")
    if rows < 1 or columns < 1 or drivers < 1:
        raise ValueError("rows, columns and drivers must be positive")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {tuple(SCHEMES)}, got {scheme!r}")
    levels = pulses.shape[0]
    if any(t.shape != (levels, levels) for t in (pulses, energy_pj, line_pj, phase)):
        raise ValueError("pulses, energy_pj, line_pj and phase must be square tables of one shape")
    r0, r1, c0, c1 = window if window is not None else (0, old.shape[0], 0, old.shape[1])
    if not (0 <= r0 < r1 <= old.shape[0] and 0 <= c0 < c1 <= old.shape[1]):
        raise ValueError(f"window {window} is outside the levels' shape {old.shape}")
    if counts is None:
        counts = np.zeros(old.shape, dtype=np.int64)
    elif counts.shape != old.shape or counts.dtype != np.int64:
        raise ValueError("counts must be an int64 array of the levels' shape")
    grid = (-(-(r1 - r0) // rows), -(-(c1 - c0) // columns))
    out = WriteCost(*(np.zeros(grid, dtype=np.int64) for _ in range(3)),
                    *(np.zeros(grid, dtype=np.float64) for _ in range(2)),
                    *(np.zeros(grid, dtype=np.int64) for _ in range(2)))
    _write_cost(old, new, r0, r1, c0, c1, rows, columns, bool(compare),
                np.ascontiguousarray(pulses, dtype=np.int64),
                np.ascontiguousarray(energy_pj, dtype=np.float64),
                np.ascontiguousarray(line_pj, dtype=np.float64),
                np.ascontiguousarray(phase, dtype=np.int8), SCHEMES[scheme], int(pulse_ps),
                int(verify_ps), int(compare_ps), int(array_ps), int(drivers), float(wordline_pj),
                *out, counts, int(weight))
    return out


@njit(**PARALLEL_JIT)
def _slice_levels(w, offset, cell_bits, slices, arrays, out):
    mask = (1 << cell_bits) - 1
    k, n = w.shape
    cpw = slices * arrays
    for r in prange(k):
        for j in range(n):
            v = np.int64(w[r, j])
            parts = (v + offset, np.int64(0)) if arrays == 1 else (max(v, 0), max(-v, 0))
            for a in range(arrays):
                value = parts[a]
                for s in range(slices):
                    out[r, j * cpw + a * slices + s] = (value >> (s * cell_bits)) & mask


def slice_levels(w: np.ndarray, *, weight_bits: int, cell_bits: int, slices: int,
                 encoding: str) -> np.ndarray:
    """(K, N) signed integer weights → (K, N·cpw) uint8 cell levels (see xsim.mta.cells)."""
    if encoding not in ("offset", "differential"):
        raise ValueError(f"unknown encoding {encoding!r}")
    w = np.ascontiguousarray(w)
    if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
        raise ValueError("weights must be a 2-D integer array")
    arrays = 1 if encoding == "offset" else 2
    out = np.empty((w.shape[0], w.shape[1] * slices * arrays), dtype=np.uint8)
    _slice_levels(w, 1 << (weight_bits - 1), int(cell_bits), int(slices), arrays, out)
    return out
