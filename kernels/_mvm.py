"""Fused bit-sliced crossbar MVM kernels (numba); see ``crossbar.py`` for the model.

Layouts (all C-contiguous):

* packed weights ``wp``: ``uint64[R, A, S, C, W, N]`` -- row block, array (the
  positive and negative arrays of the differential encoding, or the one biased
  array of the offset encoding), slice, cell bit, 64-row word of the row block,
  column.  Bit ``i % 64`` of word ``i // 64`` is cell bit ``c`` of the cell in
  row ``i`` of the row block.
* input phases ``ph_*``: one entry per analogue input phase ``p`` (a DAC chunk,
  or one sign part of the signed top chunk).  Its non-negative per-row value is
  ``CHUNK: (x >> shift) & (2**nplanes - 1)``, ``TOP_POS: max(x >> shift, 0)`` or
  ``TOP_NEG: max(-(x >> shift), 0)``; bit ``j`` of it is input plane
  ``plane0 + j``, driven with weight ``2**j`` (the DAC level) in the same phase.
* packed inputs ``xp``: ``uint64[b, Q, R, W]`` per batch tile (Q input planes).

For every (sample, row block, phase, array, slice, column) the kernels form the
column sum ``P = sum_j sum_c 2**(j+c) popcount(xplane_j & wplane_c)`` in
registers, add read noise if asked, convert it with the ADC, map the code to its
integer value and shift-and-add it into a per-row-block accumulator; nothing is
allocated inside the row-block loops.
"""

import math

import numpy as np
from numba import njit, prange

from ._noise import gaussian
from ._popcount import popcount64
from ._settings import JIT, PARALLEL_JIT

CHUNK = 0
TOP_POS = 1
TOP_NEG = 2

CLIP = 0
SCALE = 1


@njit(**JIT)
def _adc_value(p, adc_mode, code_max, ratio, step):
    """Integer value the shift-and-add sees for the (noisy) column sum ``p``."""
    if adc_mode == CLIP:
        return min(max(p, 0), code_max)
    code = np.int64(math.floor(p * ratio + 0.5))
    code = min(max(code, 0), code_max)
    return np.int64(math.floor(code * step + 0.5))


@njit(**JIT)
def _with_noise(p, sigma, key, index):
    """Column sum ``p`` plus N(0, sigma**2) read noise, rounded half up."""
    return np.int64(math.floor(p + sigma * gaussian(key, np.uint64(index)) + 0.5))


@njit(**JIT)
def pack_inputs_tile(x, b0, rows, ph_kind, ph_shift, ph_nplanes, ph_plane0, xp, sumx):
    """Pack rows ``b0 .. b0 + xp.shape[0]`` of ``x`` into the input planes ``xp``.

    ``sumx[b, r]`` receives the exact sum of the inputs of row block ``r``.  Each
    64-row word is built by OR-reducing shifted bits, a loop LLVM vectorises.
    """
    n_phases = ph_kind.shape[0]
    k_total = x.shape[1]
    n_blocks, n_words = xp.shape[2], xp.shape[3]
    vals = np.empty(64, np.int64)
    for bl in range(xp.shape[0]):
        xrow = x[b0 + bl]
        for r in range(n_blocks):
            total = 0
            for wd in range(n_words):
                k0 = r * rows + wd * 64
                cnt = max(0, min(64, rows - wd * 64, k_total - k0))
                xs = xrow[k0:k0 + cnt]
                for i in range(cnt):
                    total += np.int64(xs[i])
                for p in range(n_phases):
                    kind = ph_kind[p]
                    shift = ph_shift[p]
                    if kind == CHUNK:
                        mask = (np.int64(1) << ph_nplanes[p]) - 1
                        for i in range(cnt):
                            vals[i] = (np.int64(xs[i]) >> shift) & mask
                    elif kind == TOP_POS:
                        for i in range(cnt):
                            vals[i] = max(np.int64(xs[i]) >> shift, 0)
                    else:
                        for i in range(cnt):
                            vals[i] = max(-(np.int64(xs[i]) >> shift), 0)
                    for j in range(ph_nplanes[p]):
                        word = np.int64(0)
                        for i in range(cnt):
                            word |= ((vals[i] >> j) & 1) << i
                        xp[bl, ph_plane0[p] + j, r, wd] = np.uint64(word)
            sumx[bl, r] = total


@njit(**JIT)
def pack_weight_planes(w, rows, cell_bits, bias, wp):
    """Fill ``wp`` (zeroed here) with the cell bit-planes of integer weights ``w``.

    ``bias == 0`` selects the differential encoding (array 0 holds ``max(w, 0)``,
    array 1 ``max(-w, 0)``); otherwise the offset encoding stores ``w + bias``
    in array 0.
    """
    wp[:] = 0
    n_arrays, n_slices, n_cells = wp.shape[1], wp.shape[2], wp.shape[3]
    cell_mask = (np.int64(1) << cell_bits) - 1
    for k in range(w.shape[0]):
        r = k // rows
        i = k - r * rows
        wd = i >> 6
        bit = np.uint64(1) << np.uint64(i & 63)
        for n in range(w.shape[1]):
            v = np.int64(w[k, n])
            for a in range(n_arrays):
                if bias != 0:
                    mag = v + bias
                elif a == 0:
                    mag = max(v, 0)
                else:
                    mag = max(-v, 0)
                for s in range(n_slices):
                    cell = (mag >> (s * cell_bits)) & cell_mask
                    for c in range(n_cells):
                        if (cell >> c) & 1:
                            wp[r, a, s, c, wd, n] |= bit


@njit(**PARALLEL_JIT)
def mvm_generic(x, wp, out, rows, cell_bits, blocks_per_group, ph_kind, ph_shift,
                ph_nplanes, ph_plane0, ph_sign, arr_sign, adc_mode, code_max, ratio,
                step, noise_sigma, key, bias, tile_b, tile_n):
    """Add every row block's digital partial sums of ``x`` into ``out[b, group, n]``.

    Any rows, cell bits, DAC bits, ADC mode and noise.  Conversion ``(b, r, p, a,
    s, n)`` has noise index ``((((b*R + r)*NP + p)*A + a)*S + s)*N + n``.
    """
    n_batch = x.shape[0]
    n_blocks, n_arrays, n_slices, n_cells, n_words, n_cols = wp.shape
    n_phases = ph_kind.shape[0]
    n_planes = ph_plane0[n_phases - 1] + ph_nplanes[n_phases - 1]
    n_tiles = (n_batch + tile_b - 1) // tile_b
    for it in prange(n_tiles):
        b0 = it * tile_b
        nb = min(n_batch, b0 + tile_b) - b0
        xp = np.empty((nb, n_planes, n_blocks, n_words), np.uint64)
        sumx = np.empty((nb, n_blocks), np.int64)
        pack_inputs_tile(x, b0, rows, ph_kind, ph_shift, ph_nplanes, ph_plane0, xp, sumx)
        acc = np.empty(tile_n, np.int64)
        for r in range(n_blocks):
            g = r // blocks_per_group
            for n0 in range(0, n_cols, tile_n):
                n1 = min(n_cols, n0 + tile_n)
                for bl in range(nb):
                    acc[:] = 0
                    for p in range(n_phases):
                        q0 = ph_plane0[p]
                        for a in range(n_arrays):
                            sign = ph_sign[p] * arr_sign[a]
                            for s in range(n_slices):
                                shift = ph_shift[p] + s * cell_bits
                                base = (((((b0 + bl) * n_blocks + r) * n_phases + p)
                                         * n_arrays + a) * n_slices + s) * n_cols
                                for n in range(n0, n1):
                                    col = 0
                                    for j in range(ph_nplanes[p]):
                                        for c in range(n_cells):
                                            cnt = 0
                                            for wd in range(n_words):
                                                cnt += popcount64(xp[bl, q0 + j, r, wd]
                                                                  & wp[r, a, s, c, wd, n])
                                            col += cnt << (j + c)
                                    if noise_sigma > 0.0:
                                        col = _with_noise(col, noise_sigma, key, base + n)
                                    val = _adc_value(col, adc_mode, code_max, ratio, step)
                                    acc[n - n0] += sign * (val << shift)
                    corr = bias * sumx[bl, r]
                    for n in range(n0, n1):
                        out[b0 + bl, g, n] += acc[n - n0] - corr


@njit(**PARALLEL_JIT)
def mvm_128x2(x, wp, out, blocks_per_group, ph_kind, ph_shift, ph_plane0, ph_sign,
              arr_sign, code_max, bias, tile_b):
    """Specialised :func:`mvm_generic`: 128-row crossbars of 2-bit cells, one input
    plane per phase (1-bit DACs), clip ADC, no noise.

    A column sum is four popcounts (two 64-row words times two cell bits); the
    innermost loop runs over all columns so LLVM vectorises it, and a row block's
    packed weights (``32 * N`` bytes per slice pair) stay in L1/L2 across samples.
    """
    n_batch = x.shape[0]
    n_blocks, n_arrays, n_slices, _, _, n_cols = wp.shape
    n_phases = ph_kind.shape[0]
    ones = np.ones(n_phases, np.int64)
    n_tiles = (n_batch + tile_b - 1) // tile_b
    for it in prange(n_tiles):
        b0 = it * tile_b
        nb = min(n_batch, b0 + tile_b) - b0
        xp = np.empty((nb, n_phases, n_blocks, 2), np.uint64)
        sumx = np.empty((nb, n_blocks), np.int64)
        pack_inputs_tile(x, b0, 128, ph_kind, ph_shift, ones, ph_plane0, xp, sumx)
        acc = np.empty(n_cols, np.int64)
        for r in range(n_blocks):
            g = r // blocks_per_group
            for bl in range(nb):
                acc[:] = 0
                for p in range(n_phases):
                    x0 = xp[bl, p, r, 0]
                    x1 = xp[bl, p, r, 1]
                    if x0 == 0 and x1 == 0:
                        # No row driven: every column sum is 0, and so is its clip-ADC code.
                        continue
                    for a in range(n_arrays):
                        # negate by (v ^ m) - m: m is 0 for +1 and -1 for -1
                        m = (ph_sign[p] * arr_sign[a]) >> 1
                        for s in range(n_slices):
                            shift = ph_shift[p] + 2 * s
                            # A 64-row word that drives no row adds nothing: skip its popcounts.
                            if x1 == 0:
                                for n in range(n_cols):
                                    col = (popcount64(x0 & wp[r, a, s, 0, 0, n])
                                           + (popcount64(x0 & wp[r, a, s, 1, 0, n]) << 1))
                                    acc[n] += ((min(col, code_max) << shift) ^ m) - m
                            elif x0 == 0:
                                for n in range(n_cols):
                                    col = (popcount64(x1 & wp[r, a, s, 0, 1, n])
                                           + (popcount64(x1 & wp[r, a, s, 1, 1, n]) << 1))
                                    acc[n] += ((min(col, code_max) << shift) ^ m) - m
                            else:
                                for n in range(n_cols):
                                    col = (popcount64(x0 & wp[r, a, s, 0, 0, n])
                                           + popcount64(x1 & wp[r, a, s, 0, 1, n])
                                           + ((popcount64(x0 & wp[r, a, s, 1, 0, n])
                                               + popcount64(x1 & wp[r, a, s, 1, 1, n])) << 1))
                                    acc[n] += ((min(col, code_max) << shift) ^ m) - m
                corr = bias * sumx[bl, r]
                for n in range(n_cols):
                    out[b0 + bl, g, n] += acc[n] - corr
