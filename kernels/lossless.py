"""Columns whose ADC cannot clip: the crossbar result as an exact integer product.

With a clip ADC (or a scale ADC whose step is 1, ``adc_range == 2**adc_bits - 1``) and no read
noise nor cell deviation, a conversion differs from its column sum only when the sum exceeds
the ADC's largest code ``L`` (a column sum is never negative).  Every column sum of a (row
block, array, slice) is ``P = sum_rows x_phase * level <= (2**dac_bits - 1) * sum_rows level``,
a bound that depends on the stored levels alone.  :func:`weight_bounds` takes it from the
weights as they are packed, per column, as ``peak`` (the largest level sum of any row block,
array and slice of the column).  A column with ``peak * (2**dac_bits - 1) <= L`` never clips,
whatever the input, so its shift-and-add returns the column's exact integer dot product: the
bits of the bit-sliced kernels, which ``crossbar.py`` then computes as ``x @ w`` on BLAS
(:func:`exact_product`).

The product is exact in floating point, not approximately right: every partial sum BLAS forms
is a sum of a subset of the terms ``x_k * w_kn``, so its magnitude is at most
``max|x| * sum_k |w_kn|``.  Rows are taken in chunks of whole row blocks whose bound stays
below ``2**24`` (float32's integer range; the chunks' results are then added in float64, exact
below ``2**53``); a row block too heavy for float32 on its own runs in float64.  Where even
float64 cannot hold the bound the caller keeps the bit-sliced kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ._settings import JIT

_F32_EXACT = float(1 << 24)
_F64_EXACT = float(1 << 53)


@njit(**JIT)
def weight_bounds(w, rows, cell_bits, n_slices, bias, n_arrays, peaks, block_l1):
    """The column peaks and row blocks' column L1 norms of integer weights ``w`` (K x N).

    The stored magnitudes are those :func:`~._mvm.pack_weight_planes` writes: with
    ``n_arrays == 2`` (differential) ``max(w, 0)`` and ``max(-w, 0)``, else ``w + bias``; slice
    ``s`` of a magnitude is its bits ``s*cell_bits ..``.  Writes ``peaks[n]`` (int64, the largest
    ``sum_rows level`` of any row block, array and slice of column ``n``) and ``block_l1[r, n]``
    (float64, ``sum |w|`` over the rows of block ``r``).
    """
    k_total, n_cols = w.shape
    n_blocks = block_l1.shape[0]
    mask = (np.int64(1) << cell_bits) - 1
    levels = np.empty((n_arrays, n_slices, n_cols), np.int64)
    peaks[:] = 0
    for r in range(n_blocks):
        levels[:] = 0
        l1 = block_l1[r]
        l1[:] = 0.0
        for k in range(r * rows, min(k_total, (r + 1) * rows)):
            row = w[k]
            # Loops over the columns innermost, over contiguous rows: LLVM vectorises them.
            for n in range(n_cols):
                l1[n] += abs(np.int64(row[n]))
            for a in range(n_arrays):
                for s in range(n_slices):
                    lv = levels[a, s]
                    shift = s * cell_bits
                    if n_arrays == 1:
                        for n in range(n_cols):
                            lv[n] += ((np.int64(row[n]) + bias) >> shift) & mask
                    elif a == 0:
                        for n in range(n_cols):
                            lv[n] += (max(np.int64(row[n]), 0) >> shift) & mask
                    else:
                        for n in range(n_cols):
                            lv[n] += (max(-np.int64(row[n]), 0) >> shift) & mask
        for a in range(n_arrays):
            for s in range(n_slices):
                lv = levels[a, s]
                for n in range(n_cols):
                    if lv[n] > peaks[n]:
                        peaks[n] = lv[n]


@dataclass(frozen=True)
class StoredWeights:
    """What the planes of one :class:`~.crossbar.PackedWeights` hold, for the exact product.

    ``weights`` ``(K, N)``, the weights themselves (float32, or float64 where a weight reaches
    ``2**24``); ``peaks`` int64 ``(N,)`` and ``block_l1`` float64 ``(R, N)`` (see
    :func:`weight_bounds`).  Read-only.
    """

    weights: np.ndarray
    peaks: np.ndarray
    block_l1: np.ndarray


def stored_weights(w: np.ndarray, rows: int, cell_bits: int, n_slices: int, bias: int,
                   n_arrays: int) -> StoredWeights:
    """The :class:`StoredWeights` of integer weights ``w`` (K x N) as packed."""
    k, n = w.shape
    peaks = np.empty(n, np.int64)
    block_l1 = np.empty((-(-k // rows), n), np.float64)
    weight_bounds(w, rows, cell_bits, n_slices, bias, n_arrays, peaks, block_l1)
    # float32 holds every integer below 2**24 exactly; wider weights are kept in float64.
    limit = max(-int(w.min()), int(w.max())) if w.size else 0
    weights = w.astype(np.float32 if limit < (1 << 24) else np.float64)
    for arr in (weights, peaks, block_l1):
        arr.flags.writeable = False
    return StoredWeights(weights, peaks, block_l1)


def chunks(block_l1: np.ndarray, first: int, stop: int, x_max: int, rows: int, k: int):
    """Row ranges ``(k0, k1, dtype)`` covering row blocks ``[first, stop)`` whose products are
    exact in ``dtype``: whole row blocks, float32 while ``x_max * sum |w|`` of every column stays
    below ``2**24``, float64 for a block that is heavier on its own; ``None`` if some column
    exceeds ``2**53`` (no floating-point product is exact)."""
    if stop > first and float(x_max) * float(block_l1[first:stop].sum(axis=0).max()) >= _F64_EXACT:
        return None
    out = []
    r = first
    while r < stop:
        load = block_l1[r].copy()
        if float(x_max) * float(load.max()) >= _F32_EXACT:
            out.append((r * rows, min(k, (r + 1) * rows), np.float64))
            r += 1
            continue
        end = r + 1
        while end < stop:
            nxt = load + block_l1[end]
            if float(x_max) * float(nxt.max()) >= _F32_EXACT:
                break
            load = nxt
            end += 1
        out.append((r * rows, min(k, end * rows), np.float32))
        r = end
    return out


def exact_product(x: np.ndarray, weights: np.ndarray, parts) -> np.ndarray:
    """``x @ weights`` over the row ranges ``parts`` (from :func:`chunks`), exact: in the one
    part's float type, or float64 summed over several."""
    if len(parts) == 1:
        k0, k1, dtype = parts[0]
        return np.matmul(x[:, k0:k1].astype(dtype), weights[k0:k1].astype(dtype, copy=False),
                         dtype=dtype)
    lo = parts[0][0]
    total = np.zeros((x.shape[0], weights.shape[1]), np.float64)
    xf = {}
    for k0, k1, dtype in parts:
        if dtype not in xf:  # the inputs of these rows, converted once per float type
            xf[dtype] = x[:, lo : parts[-1][1]].astype(dtype)
        total += np.matmul(xf[dtype][:, k0 - lo : k1 - lo], weights[k0:k1].astype(dtype, copy=False),
                           dtype=dtype)
    return total
