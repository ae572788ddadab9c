"""Slow, obviously-right numpy references for the crossbar kernels (tests only).

Follows the model in ``xsim/kernels/crossbar.py`` step by step with integer
matrix products per (row block, input phase, array, slice); the read noise is
drawn with Python integers and the ``math`` module.
"""

import math

import numpy as np

_M64 = (1 << 64) - 1


def _splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def reference_gaussian(seed, index):
    """Standard normal sample ``index`` of the read-noise stream ``seed``."""
    key = _splitmix64(seed & _M64)
    h1 = _splitmix64((key + 2 * index) & _M64)
    h2 = _splitmix64((key + 2 * index + 1) & _M64)
    u1 = ((h1 >> 11) + 1) * 2.0**-53
    u2 = (h2 >> 11) * 2.0**-53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def reference_phases(x, input_bits, dac_bits, signed_inputs):
    """List of (non-negative per-row values, sign, shift) per analogue phase."""
    n_chunks = -(-input_bits // dac_bits)
    phases = []
    for t in range(n_chunks):
        shift = t * dac_bits
        width = min(dac_bits, input_bits - shift)
        if signed_inputs and t == n_chunks - 1:
            top = x >> shift  # arithmetic shift: the signed top chunk
            if width > 1:
                phases.append((np.maximum(top, 0), 1, shift))
            phases.append((np.maximum(-top, 0), -1, shift))
        else:
            phases.append(((x >> shift) & ((1 << width) - 1), 1, shift))
    return phases


def reference_mvm(x, w, *, rows, cell_bits, dac_bits, input_bits, weight_bits, adc_bits,
                  adc_mode="clip", adc_range=None, encoding="differential",
                  signed_inputs=False, noise_sigma=0.0, seed=0, group_rows=None):
    """Per-row-block reference of ``crossbar_mvm`` (same arguments, same result)."""
    x = np.asarray(x, np.int64)
    w = np.asarray(w, np.int64)
    batch, k = x.shape
    n = w.shape[1]
    phases = reference_phases(x, input_bits, dac_bits, signed_inputs)
    arrays, n_slices, bias = reference_arrays(w, weight_bits, cell_bits, encoding)
    mask = (1 << cell_bits) - 1
    levels = (1 << adc_bits) - 1
    full = rows * mask * ((1 << dac_bits) - 1) if adc_range is None else adc_range
    n_blocks = -(-k // rows)
    per_block = np.zeros((batch, n_blocks, n), np.int64)
    for r in range(n_blocks):
        ks = slice(r * rows, min(k, (r + 1) * rows))
        for p, (xv, xsign, xshift) in enumerate(phases):
            for a, (stored, wsign) in enumerate(arrays):
                for s in range(n_slices):
                    col = xv[:, ks] @ ((stored[ks] >> (s * cell_bits)) & mask)
                    if noise_sigma > 0:
                        col = col.astype(np.float64)
                        for b in range(batch):
                            for j in range(n):
                                index = ((((b * n_blocks + r) * len(phases) + p)
                                          * len(arrays) + a) * n_slices + s) * n + j
                                g = reference_gaussian(seed, index)
                                col[b, j] = math.floor(col[b, j] + noise_sigma * g + 0.5)
                        col = col.astype(np.int64)
                    value = reference_adc(col, adc_mode, levels, full)
                    per_block[:, r] += xsign * wsign * value * (1 << (xshift + s * cell_bits))
        per_block[:, r] -= bias * x[:, ks].sum(axis=1)[:, None]
    return reference_groups(per_block, rows, group_rows)


def reference_arrays(w, weight_bits, cell_bits, encoding):
    """([(stored magnitudes, sign) per array], slices, offset bias) of integer weights ``w``."""
    if encoding == "differential":
        return ([(np.maximum(w, 0), 1), (np.maximum(-w, 0), -1)],
                -(-(weight_bits - 1) // cell_bits), 0)
    bias = 1 << (weight_bits - 1)
    return [(w + bias, 1)], -(-weight_bits // cell_bits), bias


def reference_adc(col, adc_mode, levels, full):
    """Integer value of the rounded column sums ``col`` after the ADC."""
    if adc_mode == "clip":
        return np.clip(col, 0, levels)
    code = np.clip(np.floor(col * (levels / full) + 0.5), 0, levels)
    return np.floor(code * (full / levels) + 0.5).astype(np.int64)


def reference_groups(per_block, rows, group_rows):
    """Per-row-block results summed over all row blocks, or per group of ``group_rows``."""
    if group_rows is None:
        return per_block.sum(axis=1)
    n_blocks = per_block.shape[1]
    per_group = group_rows // rows
    n_groups = -(-n_blocks // per_group)
    return np.stack([per_block[:, g * per_group:(g + 1) * per_group].sum(axis=1)
                     for g in range(n_groups)], axis=1)


def reference_changes(changed, z, sigma, w0, limit, boxes):
    """A task's int8 deltas and per-box summed change, as ``build_tasks`` computed them in numpy
    (``xsim/kernels/changes.py``): rint(z·σ) in float32, clipped to ±127 where changed."""
    step = np.rint(z * sigma)
    delta = np.where(changed, np.clip(step, -127, 127), 0).astype(np.int8)
    moved = np.abs(np.clip(w0 + delta.astype(np.int32), -limit, limit) - w0)
    return delta, np.array([moved[r0:r1, c0:c1].sum() for r0, r1, c0, c1 in boxes], dtype=np.int64)


def reference_dequantise(y, scale, bias):
    """Crossbar results (P, N) as a (N, P) map: y.T times the scale, then plus the bias, in
    float64 (``xsim/kernels/layout.py``)."""
    out = np.multiply(y.T, np.asarray(scale, dtype=np.float64)[:, None])
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64)[:, None]
    return out


def reference_bounds(w, *, rows, cell_bits, weight_bits, encoding):
    """``(peaks, block_l1)`` of ``xsim.kernels.lossless.weight_bounds``: per column the largest
    sum over a row block's rows of one array's one slice's levels, and per (row block, column)
    the sum of ``|w|``."""
    w = np.asarray(w, np.int64)
    k, n = w.shape
    arrays, n_slices, _ = reference_arrays(w, weight_bits, cell_bits, encoding)
    mask = (1 << cell_bits) - 1
    n_blocks = -(-k // rows)
    peaks = np.zeros(n, np.int64)
    block_l1 = np.zeros((n_blocks, n))
    for r in range(n_blocks):
        ks = slice(r * rows, min(k, (r + 1) * rows))
        block_l1[r] = np.abs(w[ks]).sum(axis=0)
        for stored, _ in arrays:
            for s in range(n_slices):
                peaks = np.maximum(peaks, ((stored[ks] >> (s * cell_bits)) & mask).sum(axis=0))
    return peaks, block_l1


def reference_quantise(x, inv_scale, low, high, dtype):
    """A layer's input codes: ``clip(rint(x * inv_scale), low, high)`` in ``dtype``
    (``xsim/kernels/layout.py``, ``quantise_codes``)."""
    q = np.multiply(x, inv_scale, dtype=np.float64)
    np.rint(q, out=q)
    np.clip(q, low, high, out=q)
    return q.astype(dtype)


class ReferenceCalendar:
    """A server's busy intervals as a plain list, booked first-fit (the calendar kernels'
    reference): ``book`` takes the first gap at or after ``earliest`` that holds ``duration``."""

    def __init__(self):
        self.busy = []  # sorted, disjoint, adjacent ones merged
        self.busy_ps = 0

    def book(self, earliest, duration):
        if duration <= 0:
            return earliest
        start = earliest
        for a, b in self.busy:
            if start + duration <= a:
                break
            start = max(start, b)
        self.busy_ps += duration
        merged = sorted(self.busy + [(start, start + duration)])
        self.busy = []
        for a, b in merged:
            if self.busy and self.busy[-1][1] == a:
                self.busy[-1] = (self.busy[-1][0], b)
            else:
                self.busy.append((a, b))
        return start


def reference_walk(calendars, forks, t, last, n):
    """``n`` items along ``forks`` (paths of ``(server index or -1, ps)`` hops) over a list of
    :class:`ReferenceCalendar`: the first's and the last's arrival, as the engine defines them
    (a fork's paths start together; it ends when its slowest path does)."""
    for fork in forks:
        first = final = t
        for path in fork:
            a, b = t, last
            for server, d in path:
                if server < 0:
                    a, b = a + d, b + d
                else:
                    start = calendars[server].book(a, n * d)
                    a, b = start + d, max(b + d, start + n * d)
            if len(fork) == 1:
                first, final = a, b
            else:
                first, final = max(first, a), max(final, b)
        t, last = first, final
    return t, last


def reference_compute(calendars, fetch, drain, now, n, mvm, free, tail, floor):
    """A replica's block of ``n`` MVMs over :class:`ReferenceCalendar` lists, as the engine
    defines it: inputs along ``fetch`` from ``now``; the crossbars start when the first input
    is in and they are ``free``, and end after ``n`` MVMs, ``mvm`` after the last input and no
    earlier than ``floor``; results along ``drain`` ``tail`` after their MVM."""
    first, last = reference_walk(calendars, fetch, now, now, n)
    x0 = max(first, free)
    x1 = max(x0 + n * mvm, last + mvm, floor)
    t, end = reference_walk(calendars, drain, x0 + mvm + tail, x1 + tail, n)
    return x0, x1, t, end
