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

``write_cost`` returns, per crossbar (row block × column block of the level matrix), the write
time in picoseconds, the number of program pulses (= verify reads) and of cells written, and
marks every written cell in ``written`` so the caller can keep per-cell endurance counters.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._settings import JIT


@njit(**JIT)
def _write_cost(old, new, rows, columns, compare, base, per_level, max_pulses, write_ps,
                verify_ps, compare_ps, parallel, time_ps, pulses, cells, written):
    n_rows, n_cols = old.shape
    row_blocks = time_ps.shape[0]
    col_blocks = time_ps.shape[1]
    for rb in range(row_blocks):
        r0 = rb * rows
        r1 = min(r0 + rows, n_rows)
        for cb in range(col_blocks):
            c0 = cb * columns
            c1 = min(c0 + columns, n_cols)
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
                    p = base + math.ceil(per_level * d)
                    if p > max_pulses:
                        p = max_pulses
                    if p == 0:
                        continue
                    written[r, c] = True
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
               written: np.ndarray | None = None):
    """Cost of rewriting a level matrix ``old`` → ``new`` laid out on ``rows``×``columns`` crossbars.

    ``old`` and ``new`` are (K, C) integer cell levels of one layer's crossbar grid (row block
    ``rb`` holds rows ``[rb*rows, (rb+1)*rows)``, column block ``cb`` columns
    ``[cb*columns, (cb+1)*columns)``). Returns ``(time_ps, pulses, cells)``, each an int64 array
    of shape (row blocks, column blocks), and sets ``written[r, c] = True`` for every cell
    written (``written`` is allocated, all False, when not given).
    """
    old = np.ascontiguousarray(old)
    new = np.ascontiguousarray(new)
    if old.shape != new.shape or old.ndim != 2:
        raise ValueError(f"old and new levels must be equal 2-D shapes, got {old.shape} and {new.shape}")
    if rows < 1 or columns < 1 or parallel_columns < 1 or max_pulses < 1:
        raise ValueError("rows, columns, parallel_columns and max_pulses must be positive")
    if written is None:
        written = np.zeros(old.shape, dtype=np.bool_)
    elif written.shape != old.shape or written.dtype != np.bool_:
        raise ValueError("written must be a bool array of the levels' shape")
    grid = (-(-old.shape[0] // rows), -(-old.shape[1] // columns))
    time_ps = np.zeros(grid, dtype=np.int64)
    pulses = np.zeros(grid, dtype=np.int64)
    cells = np.zeros(grid, dtype=np.int64)
    _write_cost(old, new, rows, columns, bool(compare), int(base_pulses), float(pulses_per_level),
                int(max_pulses), int(write_ps), int(verify_ps), int(compare_ps),
                int(parallel_columns), time_ps, pulses, cells, written)
    return time_ps, pulses, cells, written
