"""Slow, obviously-right numpy references for the stored-value non-idealities (tests only).

:func:`reference_cell_deviation` follows :mod:`xsim.kernels.nonideal` cell by cell with Python
floats; :func:`reference_nonideal_mvm` follows the non-ideal kernel per (row block, phase, array,
slice) with float64 matrix products for the deviation sums and Python loops for the read noise.
"""

import math

import numpy as np
from kernel_reference import (
    reference_adc,
    reference_arrays,
    reference_gaussian,
    reference_groups,
    reference_phases,
)


def reference_cell_deviation(levels, *, cell_bits, g_min=0.0, program=None, variation=None,
                             drift=None, stuck=None, read_sigma=0.0):
    """(deviation, conductance_sq or None) as float32 arrays, one cell at a time."""
    levels = np.asarray(levels)
    top = (1 << cell_bits) - 1
    dev = np.zeros(levels.shape, np.float32)
    gsq = np.zeros(levels.shape, np.float32)
    for idx in np.ndindex(levels.shape):
        nominal = g_min + float(levels[idx])
        g = nominal
        if program is not None:
            g = max(g + float(program[idx]), 0.0)
        if variation is not None:
            g = max(g * (1.0 + float(variation[idx])), 0.0)
        if drift is not None:
            g = g * float(drift[idx])
        if stuck is not None and stuck[idx] == 1:
            g = g_min
        elif stuck is not None and stuck[idx] == 2:
            g = g_min + top
        dev[idx] = g - nominal
        gsq[idx] = g * g
    return dev, (gsq if read_sigma > 0 else None)


def reference_nonideal_mvm(x, w, deviation, *, rows, cell_bits, dac_bits, input_bits, weight_bits,
                           adc_bits, adc_mode="clip", adc_range=None, encoding="differential",
                           signed_inputs=False, noise_sigma=0.0, seed=0, conductance_sq=None,
                           read_sigma=0.0, group_rows=None):
    """Reference of ``crossbar_mvm(..., cells=CellDeviation(deviation, conductance_sq,
    read_sigma))``; exact when the deviations are dyadic (their float32 sums then do not depend
    on the order of summation)."""
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
        cnt = ks.stop - ks.start
        for p, (xv, xsign, xshift) in enumerate(phases):
            for a, (stored, wsign) in enumerate(arrays):
                for s in range(n_slices):
                    ideal = xv[:, ks] @ ((stored[ks] >> (s * cell_bits)) & mask)
                    err = xv[:, ks].astype(np.float64) @ deviation[r, a, s, :cnt].astype(np.float64)
                    var = None
                    if read_sigma > 0:
                        var = (xv[:, ks].astype(np.float64) ** 2
                               @ conductance_sq[r, a, s, :cnt].astype(np.float64))
                    col = np.zeros((batch, n), np.int64)
                    for b in range(batch):
                        for j in range(n):
                            f = float(ideal[b, j]) + float(np.float32(err[b, j]))
                            if read_sigma > 0:
                                sigma = read_sigma * math.sqrt(float(np.float32(var[b, j])))
                            else:
                                sigma = noise_sigma
                            if sigma > 0:
                                index = ((((b * n_blocks + r) * len(phases) + p)
                                          * len(arrays) + a) * n_slices + s) * n + j
                                f += sigma * reference_gaussian(seed, index)
                            col[b, j] = math.floor(f + 0.5)
                    value = reference_adc(col, adc_mode, levels, full)
                    per_block[:, r] += xsign * wsign * value * (1 << (xshift + s * cell_bits))
        per_block[:, r] -= bias * x[:, ks].sum(axis=1)[:, None]
    return reference_groups(per_block, rows, group_rows)
