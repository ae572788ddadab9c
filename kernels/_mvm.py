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
* packed inputs ``xp``: ``uint64[b, Q, R, W]`` per batch tile (Q input planes); the
  specialised kernel reads input bytes and packs ``uint64[b, R, 8, 2]`` (bit-plane ``j`` of
  the byte; with 1-bit DACs phase ``p`` is plane ``p``).

For every (sample, row block, phase, array, slice, column) the kernels form the
column sum ``P = sum_j sum_c 2**(j+c) popcount(xplane_j & wplane_c)`` in
registers, add read noise if asked, convert it with the ADC, map the code to its
integer value and shift-and-add it into a per-row-block accumulator; nothing is
allocated inside the row-block loops.

Every parallel kernel is built twice, as ``MVM_*[256]`` and ``MVM_*[512]``: the same code,
vectorised for 256- or 512-bit registers (``_target.py`` picks one per host).
"""

import math

import numpy as np
from numba import njit, prange

from ._noise import gaussian
from ._popcount import popcount64
from ._settings import INLINE, JIT, PARALLEL_JIT
from ._target import WIDTHS, prefer_vector_width

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
    in array 0.  Row ``k`` of ``w`` sets one bit of every column's word in each
    plane: the loops over columns run innermost, over contiguous words, so LLVM
    vectorises them.
    """
    wp[:] = 0
    n_arrays, n_slices, n_cells = wp.shape[1], wp.shape[2], wp.shape[3]
    n_cols = w.shape[1]
    mag = np.empty(n_cols, np.int64)
    for k in range(w.shape[0]):
        r = k // rows
        i = k - r * rows
        wd = i >> 6
        shift = np.uint64(i & 63)
        for a in range(n_arrays):
            for n in range(n_cols):
                v = np.int64(w[k, n])
                if bias != 0:
                    mag[n] = v + bias
                elif a == 0:
                    mag[n] = max(v, 0)
                else:
                    mag[n] = max(-v, 0)
            for s in range(n_slices):
                for c in range(n_cells):
                    # Cell bit c of slice s is bit s*cell_bits + c of the stored magnitude.
                    b = s * cell_bits + c
                    dst = wp[r, a, s, c, wd]
                    for n in range(n_cols):
                        dst[n] |= np.uint64((mag[n] >> b) & 1) << shift


def _build_mvm_generic(width):
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
            prefer_vector_width(width)
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

    return mvm_generic


@njit(**INLINE)
def _phase_value(v, kind, shift, nplanes):
    """Non-negative value row input ``v`` drives in a phase (see the module docstring)."""
    if kind == CHUNK:
        return (v >> shift) & ((np.int64(1) << nplanes) - 1)
    if kind == TOP_POS:
        return max(v >> shift, 0)
    return max(-(v >> shift), 0)


def _build_mvm_nonideal(width):
    @njit(**PARALLEL_JIT)
    def mvm_nonideal(x, wp, dev, gsq, out, rows, cell_bits, blocks_per_group, ph_kind, ph_shift,
                     ph_nplanes, ph_plane0, ph_sign, arr_sign, adc_mode, code_max, ratio, step,
                     noise_sigma, read_sigma, key, bias, tile_b):
        """:func:`mvm_generic` with per-cell deviations ``dev`` (float32 ``[R, A, S, rows, N]``).

        Each conversion's column sum is the popcount sum plus ``sum_k x_k * dev[k, n]`` (float32,
        summed over the driven rows in row order) plus read noise: ``noise_sigma`` (fixed) or, with
        ``read_sigma`` > 0, ``read_sigma * sqrt(sum_k x_k**2 * gsq[k, n])``; then it is rounded
        half up and converted as in :func:`mvm_generic`, with the same noise indices.  Every inner
        loop runs over all N columns of one row (contiguous), so LLVM vectorises it; buffers are
        cleared by explicit loops (a slice assignment inside ``prange`` becomes a nested parfor,
        which costs far more than the work here).
        """
        n_batch = x.shape[0]
        k_total = x.shape[1]
        n_blocks, n_arrays, n_slices, n_cells, n_words, n_cols = wp.shape
        n_phases = ph_kind.shape[0]
        n_planes = ph_plane0[n_phases - 1] + ph_nplanes[n_phases - 1]
        n_tiles = (n_batch + tile_b - 1) // tile_b
        state_noise = read_sigma > 0.0
        noisy = state_noise or noise_sigma > 0.0
        for it in prange(n_tiles):
            prefer_vector_width(width)
            b0 = it * tile_b
            nb = min(n_batch, b0 + tile_b) - b0
            xp = np.empty((nb, n_planes, n_blocks, n_words), np.uint64)
            sumx = np.empty((nb, n_blocks), np.int64)
            pack_inputs_tile(x, b0, rows, ph_kind, ph_shift, ph_nplanes, ph_plane0, xp, sumx)
            driven = np.empty((nb, n_phases, rows), np.int64)
            drive = np.empty((nb, n_phases, rows), np.float32)
            n_driven = np.empty((nb, n_phases), np.int64)
            acc = np.empty(n_cols, np.int64)
            err = np.empty(n_cols, np.float32)
            var = np.empty(n_cols, np.float32)
            cols = np.empty(n_cols, np.int64)
            for r in range(n_blocks):
                g = r // blocks_per_group
                k0 = r * rows
                cnt = max(0, min(rows, k_total - k0))
                for bl in range(nb):
                    for p in range(n_phases):
                        m = 0
                        for i in range(cnt):
                            v = _phase_value(np.int64(x[b0 + bl, k0 + i]), ph_kind[p],
                                             ph_shift[p], ph_nplanes[p])
                            if v != 0:
                                driven[bl, p, m] = i
                                drive[bl, p, m] = np.float32(v)
                                m += 1
                        n_driven[bl, p] = m
                for bl in range(nb):
                    for n in range(n_cols):
                        acc[n] = 0
                    for p in range(n_phases):
                        q0 = ph_plane0[p]
                        for a in range(n_arrays):
                            sign = ph_sign[p] * arr_sign[a]
                            for s in range(n_slices):
                                shift = ph_shift[p] + s * cell_bits
                                base = (((((b0 + bl) * n_blocks + r) * n_phases + p)
                                         * n_arrays + a) * n_slices + s) * n_cols
                                d = dev[r, a, s]
                                for n in range(n_cols):
                                    err[n] = 0.0
                                    cols[n] = 0
                                for m in range(n_driven[bl, p]):
                                    di = d[driven[bl, p, m]]
                                    v = drive[bl, p, m]
                                    for n in range(n_cols):
                                        err[n] += v * di[n]
                                if state_noise:
                                    for n in range(n_cols):
                                        var[n] = 0.0
                                    gs = gsq[r, a, s]
                                    for m in range(n_driven[bl, p]):
                                        gi = gs[driven[bl, p, m]]
                                        v2 = drive[bl, p, m] * drive[bl, p, m]
                                        for n in range(n_cols):
                                            var[n] += v2 * gi[n]
                                for j in range(ph_nplanes[p]):
                                    for c in range(n_cells):
                                        for wd in range(n_words):
                                            xw = xp[bl, q0 + j, r, wd]
                                            if xw == 0:
                                                continue
                                            wrow = wp[r, a, s, c, wd]
                                            sh = j + c
                                            for n in range(n_cols):
                                                cols[n] += popcount64(xw & wrow[n]) << sh
                                # Two loops: with the noise draw in a branch, LLVM would
                                # if-convert it and draw for every column.
                                if noisy:
                                    for n in range(n_cols):
                                        f = np.float64(cols[n]) + np.float64(err[n])
                                        if state_noise:
                                            sigma = read_sigma * math.sqrt(np.float64(var[n]))
                                        else:
                                            sigma = noise_sigma
                                        if sigma > 0.0:
                                            f += sigma * gaussian(key, np.uint64(base + n))
                                        val = _adc_value(np.int64(math.floor(f + 0.5)), adc_mode,
                                                         code_max, ratio, step)
                                        acc[n] += sign * (val << shift)
                                else:
                                    for n in range(n_cols):
                                        f = np.float64(cols[n]) + np.float64(err[n])
                                        val = _adc_value(np.int64(math.floor(f + 0.5)), adc_mode,
                                                         code_max, ratio, step)
                                        acc[n] += sign * (val << shift)
                    corr = bias * sumx[bl, r]
                    dst = out[b0 + bl, g]
                    for n in range(n_cols):
                        dst[n] += acc[n] - corr

    return mvm_nonideal


_M7 = np.uint64(0x00AA00AA00AA00AA)
_M14 = np.uint64(0x0000CCCC0000CCCC)
_M28 = np.uint64(0x00000000F0F0F0F0)
_BYTE = np.uint64(0xFF)


@njit(**INLINE)
def _transpose8(v):
    """Transpose the 8x8 bit matrix ``v`` (byte ``i``, bit ``j`` -> byte ``j``, bit ``i``)."""
    t = (v ^ (v >> np.uint64(7))) & _M7
    v = v ^ t ^ (t << np.uint64(7))
    t = (v ^ (v >> np.uint64(14))) & _M14
    v = v ^ t ^ (t << np.uint64(14))
    t = (v ^ (v >> np.uint64(28))) & _M28
    return v ^ t ^ (t << np.uint64(28))


@njit(**INLINE)
def _pack_bytes(xrow, n_planes, xq):
    """Pack the bit-planes ``0 .. n_planes-1`` of one sample's input bytes ``xrow`` into ``xq``.

    ``xq`` is ``uint64[R, 8, 2]`` (row block, plane, 64-row word); rows past ``K`` are 0.  A
    full word takes eight 8x8 bit transposes of 8 input bytes each, which yield a byte of every
    plane at once; a partial word (the end of ``K``) is built bit by bit.
    """
    k_total = xrow.shape[0]
    for r in range(xq.shape[0]):
        for wd in range(2):
            k0 = r * 128 + wd * 64
            cnt = max(0, min(64, k_total - k0))
            if cnt == 64:
                # Eight locals, not an array: they stay in registers.
                p0 = p1 = p2 = p3 = p4 = p5 = p6 = p7 = np.uint64(0)
                for g in range(8):
                    v = np.uint64(0)
                    for i in range(8):
                        v |= np.uint64(xrow[k0 + 8 * g + i]) << np.uint64(8 * i)
                    v = _transpose8(v)
                    at = np.uint64(8 * g)
                    p0 |= (v & _BYTE) << at
                    p1 |= ((v >> np.uint64(8)) & _BYTE) << at
                    p2 |= ((v >> np.uint64(16)) & _BYTE) << at
                    p3 |= ((v >> np.uint64(24)) & _BYTE) << at
                    p4 |= ((v >> np.uint64(32)) & _BYTE) << at
                    p5 |= ((v >> np.uint64(40)) & _BYTE) << at
                    p6 |= ((v >> np.uint64(48)) & _BYTE) << at
                    p7 |= (v >> np.uint64(56)) << at
                xw = xq[r, :, wd]
                xw[0], xw[1], xw[2], xw[3] = p0, p1, p2, p3
                xw[4], xw[5], xw[6], xw[7] = p4, p5, p6, p7
            else:
                for j in range(n_planes):
                    word = np.uint64(0)
                    for i in range(cnt):
                        word |= ((np.uint64(xrow[k0 + i]) >> np.uint64(j)) & np.uint64(1)) \
                            << np.uint64(i)
                    xq[r, j, wd] = word


@njit(**INLINE)
def _add_one_array(acc, w, x0, x1, code_max, shift):
    """``acc[n] += min(P[n], code_max) << shift`` for one array's slice ``w`` (``[c, wd, n]``).

    A 64-row word that drives no row adds nothing, so its popcounts are skipped.
    """
    if x1 == 0:
        for n in range(acc.shape[0]):
            col = popcount64(x0 & w[0, 0, n]) + (popcount64(x0 & w[1, 0, n]) << 1)
            acc[n] += min(col, code_max) << shift
    elif x0 == 0:
        for n in range(acc.shape[0]):
            col = popcount64(x1 & w[0, 1, n]) + (popcount64(x1 & w[1, 1, n]) << 1)
            acc[n] += min(col, code_max) << shift
    else:
        for n in range(acc.shape[0]):
            col = (popcount64(x0 & w[0, 0, n]) + popcount64(x1 & w[0, 1, n])
                   + ((popcount64(x0 & w[1, 0, n]) + popcount64(x1 & w[1, 1, n])) << 1))
            acc[n] += min(col, code_max) << shift


@njit(**INLINE)
def _column_sum(x0, x1, w, s, n):
    """Column sum of slice ``s``, column ``n`` of ``w`` (``[s, c, wd, n]``) for input words
    ``x0, x1``."""
    return (popcount64(x0 & w[s, 0, 0, n]) + popcount64(x1 & w[s, 0, 1, n])
            + ((popcount64(x0 & w[s, 1, 0, n]) + popcount64(x1 & w[s, 1, 1, n])) << 1))


@njit(**INLINE)
def _word_sum(x, w, s, wd, n):
    """Column sum of slice ``s``, column ``n`` of ``w`` when only word ``wd`` (input ``x``)
    drives rows."""
    return popcount64(x & w[s, 0, wd, n]) + (popcount64(x & w[s, 1, wd, n]) << 1)


@njit(**INLINE)
def _add_four_slices(acc, w, x0, x1, code_max, shift):
    """:func:`_add_one_array` for all four slices of ``w`` (``[s, c, wd, n]``) in one pass over
    ``acc``: a quarter of the accumulator traffic and loop overhead (8-bit offset weights)."""
    if x1 == 0:
        for n in range(acc.shape[0]):
            acc[n] += ((min(_word_sum(x0, w, 0, 0, n), code_max)
                        + (min(_word_sum(x0, w, 1, 0, n), code_max) << 2)
                        + (min(_word_sum(x0, w, 2, 0, n), code_max) << 4)
                        + (min(_word_sum(x0, w, 3, 0, n), code_max) << 6)) << shift)
    elif x0 == 0:
        for n in range(acc.shape[0]):
            acc[n] += ((min(_word_sum(x1, w, 0, 1, n), code_max)
                        + (min(_word_sum(x1, w, 1, 1, n), code_max) << 2)
                        + (min(_word_sum(x1, w, 2, 1, n), code_max) << 4)
                        + (min(_word_sum(x1, w, 3, 1, n), code_max) << 6)) << shift)
    else:
        for n in range(acc.shape[0]):
            acc[n] += ((min(_column_sum(x0, x1, w, 0, n), code_max)
                        + (min(_column_sum(x0, x1, w, 1, n), code_max) << 2)
                        + (min(_column_sum(x0, x1, w, 2, n), code_max) << 4)
                        + (min(_column_sum(x0, x1, w, 3, n), code_max) << 6)) << shift)


@njit(**INLINE)
def _add_two_arrays(acc, wpos, wneg, x0, x1, code_max, shift):
    """``acc[n] += (min(P+[n], code_max) - min(P-[n], code_max)) << shift``: both arrays of
    the differential encoding in one pass over ``acc``."""
    if x1 == 0:
        for n in range(acc.shape[0]):
            cp = popcount64(x0 & wpos[0, 0, n]) + (popcount64(x0 & wpos[1, 0, n]) << 1)
            cn = popcount64(x0 & wneg[0, 0, n]) + (popcount64(x0 & wneg[1, 0, n]) << 1)
            acc[n] += (min(cp, code_max) - min(cn, code_max)) << shift
    elif x0 == 0:
        for n in range(acc.shape[0]):
            cp = popcount64(x1 & wpos[0, 1, n]) + (popcount64(x1 & wpos[1, 1, n]) << 1)
            cn = popcount64(x1 & wneg[0, 1, n]) + (popcount64(x1 & wneg[1, 1, n]) << 1)
            acc[n] += (min(cp, code_max) - min(cn, code_max)) << shift
    else:
        for n in range(acc.shape[0]):
            cp = (popcount64(x0 & wpos[0, 0, n]) + popcount64(x1 & wpos[0, 1, n])
                  + ((popcount64(x0 & wpos[1, 0, n]) + popcount64(x1 & wpos[1, 1, n])) << 1))
            cn = (popcount64(x0 & wneg[0, 0, n]) + popcount64(x1 & wneg[0, 1, n])
                  + ((popcount64(x0 & wneg[1, 0, n]) + popcount64(x1 & wneg[1, 1, n])) << 1))
            acc[n] += (min(cp, code_max) - min(cn, code_max)) << shift


def _build_mvm_128x2(width):
    @njit(**PARALLEL_JIT)
    def mvm_128x2(x, wp, out, blocks_per_group, n_planes, signed, code_max, bias, tile_b):
        """Specialised :func:`mvm_generic`: 128-row crossbars of 2-bit cells, 1-bit DACs, clip
        ADC, no noise, inputs of at most 8 bits given as their bytes ``x`` (``uint8[B, K]``,
        two's complement when ``signed``).

        With 1-bit DACs phase ``p`` drives bit-plane ``p`` of the byte; with signed inputs the
        top plane (the sign bit) is the top chunk's negative part, so it lands in ``acc_neg``.
        A column sum is four popcounts (two 64-row words times two cell bits); the innermost
        loops run over all columns so LLVM vectorises them, and a row block's packed weights
        (``32 * N`` bytes per array and slice) stay in L1/L2 across the samples of a tile.  The
        row block's input sum (offset encoding) comes from the planes' popcounts.
        """
        n_batch = x.shape[0]
        n_blocks, n_arrays, n_slices, _, _, n_cols = wp.shape
        n_tiles = (n_batch + tile_b - 1) // tile_b
        top = n_planes - 1 if signed else n_planes
        for it in prange(n_tiles):
            prefer_vector_width(width)
            b0 = it * tile_b
            nb = min(n_batch, b0 + tile_b) - b0
            xq = np.empty((nb, n_blocks, 8, 2), np.uint64)
            for bl in range(nb):
                _pack_bytes(x[b0 + bl], n_planes, xq[bl])
            acc = np.empty(n_cols, np.int64)
            acc_neg = np.empty(n_cols, np.int64)
            for r in range(n_blocks):
                g = r // blocks_per_group
                wr = wp[r]
                for bl in range(nb):
                    acc[:] = 0
                    sumx = 0
                    for p in range(n_planes):
                        x0 = xq[bl, r, p, 0]
                        x1 = xq[bl, r, p, 1]
                        ones = popcount64(x0) + popcount64(x1)
                        if ones == 0:
                            # No row driven: every column sum is 0, and so is its clip-ADC code.
                            continue
                        if p == top:
                            sumx -= ones << p
                            target = acc_neg
                            target[:] = 0
                        else:
                            sumx += ones << p
                            target = acc
                        if n_arrays == 1 and n_slices == 4:
                            _add_four_slices(target, wr[0], x0, x1, code_max, p)
                        else:
                            for s in range(n_slices):
                                if n_arrays == 2:
                                    _add_two_arrays(target, wr[0, s], wr[1, s], x0, x1, code_max,
                                                    p + 2 * s)
                                else:
                                    _add_one_array(target, wr[0, s], x0, x1, code_max, p + 2 * s)
                        if p == top:
                            for n in range(n_cols):
                                acc[n] -= acc_neg[n]
                    corr = bias * sumx
                    dst = out[b0 + bl, g]
                    for n in range(n_cols):
                        dst[n] += acc[n] - corr

    return mvm_128x2


# Each kernel in both vector widths (see ``_target.py``); compiled on first call, cached on disk.
MVM_GENERIC = {w: _build_mvm_generic(w) for w in WIDTHS}
MVM_128X2 = {w: _build_mvm_128x2(w) for w in WIDTHS}
MVM_NONIDEAL = {w: _build_mvm_nonideal(w) for w in WIDTHS}
