"""Write-verify cost of reprogramming crossbars from one set of cell levels to another.

What is modelled (the reprogramming controller of one crossbar):

* A crossbar is written row by row. With ``compare`` the controller first reads the row (one
  read of ``compare_ps``) and writes only the cells whose level changes; without it, it writes
  every cell of the row (an unchanged cell still gets ``base_pulses``).
* A written cell with level change ``d`` takes ``p = min(max_pulses, base_pulses +
  pulses_per_level * d)`` program pulses (rounded up), each followed by one verify read.
* The cells to write in a row are taken in column order in groups of ``parallel_columns`` (the
  write drivers); a group lasts as long as its slowest cell, ``max(p) * (write_ps + verify_ps)``,
  and groups follow one another.

``write_cost`` returns, per crossbar (row block × column block of a window of the level matrix),
the write time in picoseconds, the number of program pulses (= verify reads) and of cells written,
and adds ``weight`` to the per-cell endurance counter of every cell written.

``slice_levels`` turns signed integer weights into the cell levels they occupy (the layout of
:mod:`xsim.mta.cells`, whose numpy version is the reference in the tests).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._settings import JIT, PARALLEL_JIT


@njit(**JIT)
def _write_cost(old, new, w_r0, w_r1, w_c0, w_c1, rows, columns, compare, pulse_table, write_ps,
                verify_ps, compare_ps, parallel, time_ps, pulses, cells, counts, weight):
    row_blocks = time_ps.shape[0]
    col_blocks = time_ps.shape[1]
    for xb in range(row_blocks * col_blocks):
        rb = xb // col_blocks
        cb = xb % col_blocks
        r0 = w_r0 + rb * rows
        r1 = min(r0 + rows, w_r1)
        c0 = w_c0 + cb * columns
        c1 = min(c0 + columns, w_c1)
        t = np.int64(0)
        p_total = np.int64(0)
        c_total = np.int64(0)
        for r in range(r0, r1):
            if compare:
                t += compare_ps
            in_group = 0
            group_max = 0
            for c in range(c0, c1):
                d = abs(np.int64(new[r, c]) - np.int64(old[r, c]))
                if compare and d == 0:
                    continue
                p = pulse_table[d]
                if p == 0:
                    continue
                counts[r, c] += weight
                p_total += p
                c_total += 1
                if p > group_max:
                    group_max = p
                in_group += 1
                if in_group == parallel:
                    t += group_max * (write_ps + verify_ps)
                    in_group = 0
                    group_max = 0
            if in_group:
                t += group_max * (write_ps + verify_ps)
        time_ps[rb, cb] = t
        pulses[rb, cb] = p_total
        cells[rb, cb] = c_total


def write_cost(old: np.ndarray, new: np.ndarray, *, rows: int, columns: int, compare: bool,
               base_pulses: int, pulses_per_level: float, max_pulses: int, write_ps: int,
               verify_ps: int, compare_ps: int, parallel_columns: int,
               window: tuple[int, int, int, int] | None = None, counts: np.ndarray | None = None,
               weight: int = 1):
    """Cost of rewriting a level matrix ``old`` → ``new`` laid out on ``rows``×``columns`` crossbars.

    ``old`` and ``new`` are (K, C) uint8 cell levels of one layer's crossbar grid. Only the
    ``window = (r0, r1, c0, c1)`` (default: everything) is rewritten; its row block ``rb`` holds
    rows ``[r0 + rb*rows, ...)`` and its column block ``cb`` columns ``[c0 + cb*columns, ...)``.
    Returns ``(time_ps, pulses, cells)``, int64 arrays of shape (row blocks, column blocks) of the
    window, and adds ``weight`` to ``counts[r, c]`` (an int64 array of the levels' shape, when
    given) for every cell written.
    """
    if old.shape != new.shape or old.ndim != 2:
        raise ValueError(f"old and new levels must be equal 2-D shapes, got {old.shape} and {new.shape}")
    if old.dtype != np.uint8 or new.dtype != np.uint8:
        raise ValueError(f"cell levels must be uint8, got {old.dtype} and {new.dtype}")
    if rows < 1 or columns < 1 or parallel_columns < 1 or max_pulses < 1:
        raise ValueError("rows, columns, parallel_columns and max_pulses must be positive")
    r0, r1, c0, c1 = window if window is not None else (0, old.shape[0], 0, old.shape[1])
    if not (0 <= r0 < r1 <= old.shape[0] and 0 <= c0 < c1 <= old.shape[1]):
        raise ValueError(f"window {window} is outside the levels' shape {old.shape}")
    if counts is None:
        counts = np.zeros(old.shape, dtype=np.int64)
    elif counts.shape != old.shape or counts.dtype != np.int64:
        raise ValueError("counts must be an int64 array of the levels' shape")
    # Pulses per level change, once: the hot loop only looks them up.
    pulse_table = np.minimum(
        max_pulses, base_pulses + np.ceil(pulses_per_level * np.arange(256))).astype(np.int64)
    grid = (-(-(r1 - r0) // rows), -(-(c1 - c0) // columns))
    time_ps = np.zeros(grid, dtype=np.int64)
    pulses = np.zeros(grid, dtype=np.int64)
    cells = np.zeros(grid, dtype=np.int64)
    _write_cost(old, new, r0, r1, c0, c1, rows, columns, bool(compare), pulse_table, int(write_ps),
                int(verify_ps), int(compare_ps), int(parallel_columns), time_ps, pulses, cells,
                counts, int(weight))
    return time_ps, pulses, cells


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
