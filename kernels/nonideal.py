"""Stored-value non-idealities of the crossbar cells, as per-cell arrays the MVM kernel reads.

Units are *level steps*: a cell of ``cell_bits`` bits stores level ``L`` in ``0 .. 2**cell_bits - 1``
at the nominal conductance ``g = g_min + L`` (in units of ``dG_level = (G_max - G_min) /
(2**cell_bits - 1)``; ``g_min = G_min / dG_level``, 0 for an ideal, infinite on/off ratio).
:func:`cell_deviation` turns per-cell draws into the conductance a cell really has,

* ``g_p = max(g + program, 0)``: the programming error the write left (additive, level steps);
* ``g_v = max(g_p * (1 + variation), 0)``: device-to-device variation (relative, fixed per cell);
* ``g_d = g_v * drift``: conductance drift, a per-cell factor ``(t / t0) ** -nu``;
* a stuck cell (``stuck`` 1: at ``G_min``, 2: at ``G_max``) has ``g_min`` or
  ``g_min + 2**cell_bits - 1`` whatever was written, without variation or drift;

and keeps its deviation ``E = g_d - g`` (float32).  The column sum of a conversion is then the ideal
integer sum ``P = sum_k x_k L_k`` plus ``sum_k x_k E_k``: the ``g_min * sum_k x_k`` current every
cell carries is known from the digital inputs and removed exactly before the ADC, in both
encodings (a reference current driven from the input sum), so ``G_min`` alone changes nothing and
acts only through the errors that scale with a cell's conductance.  With state-dependent read
noise (``read_sigma`` > 0, relative to a cell's conductance, one draw per cell and read) a
conversion's noise is Gaussian with variance ``read_sigma**2 * sum_k x_k**2 * g_d,k**2``: it grows
with the cell's conductance and the number of rows driven; ``conductance_sq`` holds ``g_d**2``.

Layout: every per-cell array is ``[R, A, S, rows, N]`` (row block, array, slice, row of the row
block, column), the order of :class:`~.crossbar.PackedWeights`; rows past ``K`` in the last row
block hold level 0 and are never driven.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .crossbar import ENCODINGS, n_slices


@dataclass(frozen=True)
class CellDeviation:
    """Per-cell deviations of one packed weight matrix (see the module docstring)."""

    deviation: np.ndarray
    """float32 ``[R, A, S, rows, N]``: actual minus nominal conductance, level steps."""
    conductance_sq: np.ndarray | None
    """float32 ``[R, A, S, rows, N]``: squared actual conductance (read noise), or None."""
    read_sigma: float
    """read noise per cell and read, relative to the cell's conductance (0: none)."""


def stored_levels(w, *, rows: int, cell_bits: int, weight_bits: int,
                  encoding: str = "differential") -> np.ndarray:
    """uint8 ``[R, A, S, rows, N]`` cell levels of signed integer weights ``w`` (K x N).

    The cells :func:`~.crossbar.pack_weights` packs: differential, the slices of ``max(w, 0)`` and
    ``max(-w, 0)``; offset, those of ``w + 2**(weight_bits-1)``.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    w = np.asarray(w, np.int64)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"w must be a non-empty 2-D array, got shape {w.shape}")
    k, n = w.shape
    if encoding == "differential":
        arrays = (np.maximum(w, 0), np.maximum(-w, 0))
    else:
        arrays = (w + (1 << (weight_bits - 1)),)
    slices = n_slices(weight_bits, cell_bits, encoding)
    n_blocks = -(-k // rows)
    mask = (1 << cell_bits) - 1
    out = np.zeros((n_blocks * rows, len(arrays), slices, n), np.uint8)
    for a, mag in enumerate(arrays):
        for s in range(slices):
            out[:k, a, s] = (mag >> (s * cell_bits)) & mask
    return np.ascontiguousarray(out.reshape(n_blocks, rows, len(arrays), slices, n)
                                .transpose(0, 2, 3, 1, 4))


def _per_cell(name, arr, shape, dtype=np.float64):
    if arr is None:
        return None
    arr = np.asarray(arr, dtype)
    if arr.shape != shape:
        raise ValueError(f"{name} must have the levels' shape {shape}, got {arr.shape}")
    if dtype != np.int8 and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def cell_deviation(levels, *, cell_bits: int, g_min: float = 0.0, program=None, variation=None,
                   drift=None, stuck=None, read_sigma: float = 0.0) -> CellDeviation:
    """Per-cell deviations of ``levels`` (``[R, A, S, rows, N]``, :func:`stored_levels`).

    ``program`` (level steps), ``variation`` (relative) and ``drift`` (a factor) are per-cell float
    arrays of the levels' shape or None (no such error); ``stuck`` an int8 array (0 healthy, 1 stuck
    at ``G_min``, 2 at ``G_max``) or None.  See the module docstring for the model.
    """
    levels = np.asarray(levels)
    if levels.ndim != 5 or not np.issubdtype(levels.dtype, np.integer):
        raise ValueError(f"levels must be a 5-D integer array, got {levels.ndim}-D {levels.dtype}")
    g_min = float(g_min)
    read_sigma = float(read_sigma)
    for name, value in (("g_min", g_min), ("read_sigma", read_sigma)):
        if not np.isfinite(value) or value < 0.0:
            raise ValueError(f"{name} must be finite and >= 0, got {value}")
    top = (1 << cell_bits) - 1
    if levels.size and (int(levels.min()) < 0 or int(levels.max()) > top):
        raise ValueError(f"levels must be in [0, {top}] for {cell_bits}-bit cells")
    shape = levels.shape
    program = _per_cell("program", program, shape)
    variation = _per_cell("variation", variation, shape)
    drift = _per_cell("drift", drift, shape)
    stuck = _per_cell("stuck", stuck, shape, np.int8)
    if drift is not None and np.any(drift < 0.0):
        raise ValueError("drift factors must be >= 0")
    if stuck is not None and (np.any(stuck < 0) or np.any(stuck > 2)):
        raise ValueError("stuck must hold 0 (healthy), 1 (at G_min) or 2 (at G_max)")
    nominal = g_min + levels.astype(np.float64)
    g = nominal if program is None else np.maximum(nominal + program, 0.0)
    if variation is not None:
        g = np.maximum(g * (1.0 + variation), 0.0)
    if drift is not None:
        g = g * drift
    if stuck is not None:
        g = np.where(stuck == 1, g_min, np.where(stuck == 2, g_min + top, g))
    deviation = np.ascontiguousarray(g - nominal, dtype=np.float32)
    conductance_sq = None
    if read_sigma > 0.0:
        conductance_sq = np.ascontiguousarray(g * g, dtype=np.float32)
    return CellDeviation(deviation, conductance_sq, read_sigma)
