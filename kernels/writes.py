"""Cost of reprogramming crossbars from one set of cell levels to another.

The physics of one cell write comes in as tables over (old level, new level) pairs, built by
:mod:`xsim.write_model` from the arch file's cell: ``pulses[a, b]`` program pulses, their energy
in the cell ``energy_pj[a, b]`` and in its bit line ``line_pj[a, b]``, and ``phase[a, b]`` (+1
SET, -1 RESET, 0 unchanged). This kernel does the bookkeeping of a crossbar's rows and write drivers:

* A crossbar is written row by row. With ``compare`` the controller first reads the row (one read
  of ``compare_ps``) and writes only the cells whose level changes; without it, every cell of the
  row is driven (an unchanged cell's pulses and energy are those of its table entry, normally 0).
  A cell is written when it is driven and its table gives it at least one pulse; its energy is
  ``energy_pj[a, b]`` and its bit line's ``line_pj[a, b]``.

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
cell written. ``write_costs`` does the same for many windows of one pair of level matrices in one
call (a layer's PEs), its crossbars in parallel.

How the kernel counts. A row's time is its compare read plus, per driver group, the group's
slowest cell, so a crossbar's time is ``rows · compare_ps + step · Σ group maxima``, its word-line
pulses ``Σ group maxima``: integers, which may be summed in any order, as may pulses, cells and
the endurance counters. The energies are float64 sums taken cell by cell in row-major order within
the crossbar, the order of a plain row-by-row loop over the cells, so they are bit for bit that
loop's. Where the time goes:

* Bands. The crossbars of a call are taken in bands of up to ``_BAND`` crossbars side by side
  over the same rows, and a band row by row across its crossbars: the cells of a level row are
  contiguous in memory, a crossbar's rows are not. The bands run in parallel (``prange``); the
  windows of a call must not overlap, so no two bands touch one cell of ``counts``.
* Words. A crossbar row is taken 64 columns at a time. A vectorised pass over the word marks the
  cells that may be written (level changed, or every cell when the tables give an unchanged cell
  pulses) as the bits of a 64-bit word; only those cells are then visited, lowest column first
  (``tzcnt``), for their table entries, energies and counters, and the SET and RESET driver
  groups are formed over the bits of the cells written in each phase. A vectorised byte maximum
  over the word finds levels outside the tables, which are an error when the controller drives
  their cell (``counts`` is then left partly updated).
* Counters. ``counts`` is read and written at every cell written: where the caller knows the
  counts stay below its maximum it may be a narrow unsigned array (less memory to touch; the
  multi-task scenario's are ``uint16`` while its schedule has fewer than 65,536 switches).

``slice_levels`` turns signed integer weights into the cell levels they occupy (the layout of
:mod:`xsim.mta.cells`, whose numpy version is the reference in the tests).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ._popcount import popcount64, trailing_zeros64
from ._settings import JIT, PARALLEL_JIT

ROW_PARALLEL, WRITE_VERIFY, ARRAY = 0, 1, 2
SCHEMES = {"row_parallel": ROW_PARALLEL, "write_verify": WRITE_VERIFY, "array": ARRAY}
COUNTERS = (np.dtype(np.int64), np.dtype(np.uint32), np.dtype(np.uint16), np.dtype(np.uint8))
"""dtypes of the endurance counters ``counts`` (the caller keeps them wide enough)"""
_ZERO, _ONE = np.uint64(0), np.uint64(1)
_WORD = 64
_BAND = 8
"""crossbars per band at most (a band's rows are ``_BAND`` crossbars wide)"""


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


class WriteCosts(NamedTuple):
    """Per crossbar of many windows: ``flat``, the fields of :class:`WriteCost` as flat arrays in
    which window ``w``'s crossbars are ``[first[w], first[w+1])``, row-major over its (row blocks,
    column blocks) = ``grids[w]``."""

    flat: WriteCost
    first: np.ndarray
    grids: np.ndarray

    def window(self, w: int) -> WriteCost:
        """Window ``w``'s costs as (row blocks, column blocks) views of the flat arrays."""
        lo, hi = self.first[w], self.first[w + 1]
        grid = tuple(self.grids[w])
        return WriteCost(*(a[lo:hi].reshape(grid) for a in self.flat))


@njit(**JIT)
def _driver_groups(bits, pulses, drivers, in_group, group_max, wl):
    """Driver groups over the written cells ``bits`` of one phase of a 64-column word, in column
    order (``pulses[j]``: column j's pulses), carrying the open group (``in_group`` cells,
    slowest ``group_max``) from the word before; adds each closed group's slowest cell to ``wl``."""
    while bits != _ZERO:
        p = pulses[trailing_zeros64(bits)]
        bits &= bits - _ONE
        if p > group_max:
            group_max = p
        in_group += 1
        if in_group == drivers:
            wl += group_max
            in_group = 0
            group_max = 0
    return in_group, group_max, wl


@njit(**JIT)
def _write_row(old, new, counts, base, width, k, sums, energies, cell_tab, energy_tab, levels, top,
               driven, every_cell, scheme, drivers, weight, word_pulses):
    """One row of crossbar ``k`` of a band: the ``width`` cells from flat index ``base`` (uint64)
    of the flat levels ``old`` → ``new`` and endurance counters ``counts``.

    Adds the row's pulses, cells written and word-line pulses to ``sums[k]`` and its cells'
    energies, in column order, to ``energies[k]``; returns False, having looked nothing up in the
    tables for the current word, at a level outside the tables. The indices are unsigned and no
    array is sliced: numba adds no negative-index fix-up to unsigned indices, and a slice would
    bring reference counting (atomic updates of the arrays' shared counters) into the loop."""
    p_total = 0
    c_total = 0
    wl = 0
    e_total = energies[k, 0]
    l_total = energies[k, 1]
    # Open driver groups of the row: SET (and write_verify's only) phase, RESET phase.
    set_in = 0
    set_max = 0
    reset_in = 0
    reset_max = 0
    for w0 in range(0, width, _WORD):
        span = min(_WORD, width - w0)
        at = base + np.uint64(w0)
        # A level outside the tables, in a cell the controller drives, is an error: the word's
        # highest level first (bytes, cheap), its cells one by one only when that is outside.
        highest = np.uint8(0)
        for j in range(span):
            highest = max(highest, old[at + np.uint64(j)], new[at + np.uint64(j)])
        if highest > top:
            for j in range(span):
                a = old[at + np.uint64(j)]
                b = new[at + np.uint64(j)]
                if max(a, b) > top and (a != b or driven):
                    return False
        todo = _ZERO
        for j in range(span):
            drive = (old[at + np.uint64(j)] != new[at + np.uint64(j)]) | driven
            todo |= np.uint64(drive | every_cell) << np.uint64(j)
        written = _ZERO
        resets = _ZERO
        while todo != _ZERO:
            j = trailing_zeros64(todo)
            bit = todo & (_ZERO - todo)
            todo ^= bit
            i = np.uint64(old[at + np.uint64(j)]) * levels + np.uint64(new[at + np.uint64(j)])
            code = cell_tab[i]
            if code == 0:
                continue
            counts[at + np.uint64(j)] += weight
            e_total += energy_tab[i + i]
            l_total += energy_tab[i + i + _ONE]
            written |= bit
            resets |= bit & np.uint64(code >> 63)
            p = abs(code)
            p_total += p
            word_pulses[j] = p
        c_total += popcount64(written)
        if scheme != ARRAY:
            set_in, set_max, wl = _driver_groups(written & ~resets, word_pulses, drivers, set_in,
                                                 set_max, wl)
            reset_in, reset_max, wl = _driver_groups(resets, word_pulses, drivers, reset_in,
                                                     reset_max, wl)
    sums[k, 0] += p_total
    sums[k, 1] += c_total
    sums[k, 2] += wl + set_max + reset_max
    energies[k, 0] = e_total
    energies[k, 1] = l_total
    return True


@njit(**PARALLEL_JIT)
def _write_costs(old, new, spans, order, band_first, compare, every_cell, levels, top, cell_tab,
                 energy_tab, scheme, step_ps, compare_ps, array_ps, drivers, wordline_pj,
                 time_ps, pulses, cells, energy, line_energy, verifies, wl_pulses, counts, weight,
                 bad):
    driven = not compare
    stride = np.uint64(old.shape[1])
    old_flat = old.reshape(old.size)
    new_flat = new.reshape(new.size)
    counts_flat = counts.reshape(counts.size)
    # Bands in parallel: a band's crossbars lie in their own windows, and the windows of one call
    # do not overlap (checked by the caller), so no two bands write one cell of ``counts``.
    for band in prange(band_first.shape[0] - 1):
        lo = band_first[band]
        size = band_first[band + 1] - lo
        r0 = spans[order[lo], 0]
        r1 = spans[order[lo], 1]
        sums = np.zeros((size, 3), np.int64)
        energies = np.zeros((size, 2), np.float64)
        word_pulses = np.empty(_WORD, np.int64)
        # Row by row across the band's crossbars; each crossbar sees its cells in row-major order.
        for r in range(r0, r1):
            for k in range(size):
                x = order[lo + k]
                c0 = spans[x, 2]
                if not _write_row(old_flat, new_flat, counts_flat,
                                  np.uint64(r) * stride + np.uint64(c0), spans[x, 3] - c0, k,
                                  sums, energies, cell_tab, energy_tab, levels, top, driven,
                                  every_cell, scheme, drivers, weight, word_pulses):
                    bad[band] = True
            if bad[band]:
                break
        for k in range(size):
            x = order[lo + k]
            p_total = sums[k, 0]
            wl_total = sums[k, 2]
            t = (r1 - r0) * compare_ps if compare else 0
            if scheme == ARRAY:
                if sums[k, 1]:
                    t += array_ps
            else:
                t += wl_total * step_ps
            time_ps[x] = t
            pulses[x] = p_total
            cells[x] = sums[k, 1]
            energy[x] = energies[k, 0]
            line_energy[x] = energies[k, 1] + wl_total * wordline_pj
            verifies[x] = p_total if scheme == WRITE_VERIFY else 0
            wl_pulses[x] = wl_total


def _bands(spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's parallel tasks: crossbars over the same rows, side by side in column order, at
    most ``_BAND`` of them. Returns ``order`` (crossbar indices, band after band) and
    ``band_first`` (where each band starts in ``order``, then its length)."""
    order = np.lexsort((spans[:, 2], spans[:, 1], spans[:, 0]))
    rows_of = spans[order, :2]
    new_rows = np.flatnonzero(np.r_[True, (rows_of[1:] != rows_of[:-1]).any(axis=1)])
    ends = np.r_[new_rows[1:], len(order)]
    starts = np.concatenate([np.arange(a, b, _BAND) for a, b in zip(new_rows, ends)])
    return order, np.r_[starts, len(order)].astype(np.int64)


def _check_windows(windows: np.ndarray, shape: tuple[int, int]) -> None:
    """Every window inside ``shape`` and no two sharing a cell (the kernel's bands write
    ``counts`` in parallel)."""
    r0, r1, c0, c1 = windows.T
    inside = (r0 >= 0) & (r0 < r1) & (r1 <= shape[0]) & (c0 >= 0) & (c0 < c1) & (c1 <= shape[1])
    if not inside.all():
        bad = tuple(int(v) for v in windows[np.argmin(inside)])
        raise ValueError(f"window {bad} is outside the levels' shape {shape}")
    meet = ((r0[:, None] < r1[None, :]) & (r0[None, :] < r1[:, None])
            & (c0[:, None] < c1[None, :]) & (c0[None, :] < c1[:, None]))
    np.fill_diagonal(meet, False)
    if meet.any():
        a, b = np.argwhere(meet)[0]
        raise ValueError(f"windows {tuple(int(v) for v in windows[a])} and "
                         f"{tuple(int(v) for v in windows[b])} overlap")


def write_costs(old: np.ndarray, new: np.ndarray, windows, *, rows: int, columns: int,
                compare: bool, pulses: np.ndarray, energy_pj: np.ndarray, line_pj: np.ndarray,
                phase: np.ndarray, scheme: str, pulse_ps: int, verify_ps: int, compare_ps: int,
                drivers: int, wordline_pj: float = 0.0, array_ps: int = 0,
                counts: np.ndarray | None = None, weight: int = 1) -> WriteCosts:
    """:func:`write_cost` of every window of ``windows`` (rows of ``(r0, r1, c0, c1)``; no two may
    overlap) in one call, their crossbars in parallel: the result is each window's, bit for bit,
    and ``counts`` gets ``weight`` for every cell written, as from one :func:`write_cost` call
    per window. ``counts`` (C-contiguous, the levels' shape) may be int64 or, where the caller
    knows the counts stay below its maximum, ``uint32``, ``uint16`` or ``uint8``."""
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
    if (np.asarray(pulses) < 0).any():
        raise ValueError("pulses must be non-negative")
    windows = np.array(windows, dtype=np.int64).reshape(-1, 4)
    _check_windows(windows, old.shape)
    if counts is None:
        counts = np.zeros(old.shape, dtype=np.int64)
    elif (counts.shape != old.shape or counts.dtype not in COUNTERS
          or not counts.flags.c_contiguous):
        raise ValueError("counts must be a C-contiguous array of the levels' shape, of dtype "
                         "int64, uint32, uint16 or uint8")
    code = SCHEMES[scheme]
    # The tables as the kernel reads them, flat at a * levels + b. A cell the controller does not
    # drive (unchanged, under compare) gets no pulse, so "written" is "pulses != 0"; a RESET
    # cell of row_parallel has its pulses negated (the sign picks its driver group); the cell and
    # line energies sit side by side.
    cell_tab = np.array(pulses, dtype=np.int64)
    if compare:
        np.fill_diagonal(cell_tab, 0)
    every_cell = bool(np.diagonal(cell_tab).any())
    if code == ROW_PARALLEL:
        cell_tab = np.where(np.asarray(phase) < 0, -cell_tab, cell_tab)
    energy_tab = np.stack([np.asarray(energy_pj, dtype=np.float64),
                           np.asarray(line_pj, dtype=np.float64)], axis=-1)
    # The crossbars (row span, column span), window by window and row-major over each window's
    # grid: the order of the result.
    r0, r1, c0, c1 = windows.T
    grids = np.stack([-(-(r1 - r0) // rows), -(-(c1 - c0) // columns)], axis=1)
    per_window = grids[:, 0] * grids[:, 1]
    first = np.zeros(len(windows) + 1, dtype=np.int64)
    np.cumsum(per_window, out=first[1:])
    total = int(first[-1])
    owner = np.repeat(np.arange(len(windows)), per_window)
    local = np.arange(total) - first[owner]
    x_r0 = r0[owner] + local // grids[owner, 1] * rows
    x_c0 = c0[owner] + local % grids[owner, 1] * columns
    spans = np.stack([x_r0, np.minimum(x_r0 + rows, r1[owner]),
                      x_c0, np.minimum(x_c0 + columns, c1[owner])], axis=1)
    order, band_first = _bands(spans)
    out = [np.zeros(total, dtype=np.int64) for _ in range(3)]
    out += [np.zeros(total, dtype=np.float64) for _ in range(2)]
    out += [np.zeros(total, dtype=np.int64) for _ in range(2)]
    bad = np.zeros(len(band_first) - 1, dtype=np.bool_)
    step_ps = pulse_ps + verify_ps if code == WRITE_VERIFY else pulse_ps
    _write_costs(np.ascontiguousarray(old), np.ascontiguousarray(new), spans, order, band_first,
                 bool(compare), every_cell, np.uint64(levels), np.uint8(min(levels - 1, 255)),
                 cell_tab.ravel(), energy_tab.ravel(), code, int(step_ps), int(compare_ps),
                 int(array_ps), int(drivers), float(wordline_pj), *out, counts, int(weight), bad)
    if bad.any():
        raise ValueError("a cell level is outside the write tables")
    return WriteCosts(WriteCost(*out), first, grids)


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
    ``weight`` to ``counts[r, c]`` (an int64 array of the levels' shape, when given, or a narrower
    one as :func:`write_costs` takes) for every cell written.
    """
    if old.ndim != 2:
        raise ValueError(f"old and new levels must be equal 2-D shapes, got {old.shape} and {new.shape}")
    window = window if window is not None else (0, old.shape[0], 0, old.shape[1])
    costs = write_costs(old, new, [window], rows=rows, columns=columns, compare=compare,
                        pulses=pulses, energy_pj=energy_pj, line_pj=line_pj, phase=phase,
                        scheme=scheme, pulse_ps=pulse_ps, verify_ps=verify_ps,
                        compare_ps=compare_ps, drivers=drivers, wordline_pj=wordline_pj,
                        array_ps=array_ps, counts=counts, weight=weight)
    return costs.window(0)


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
