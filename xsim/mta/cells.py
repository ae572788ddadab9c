"""Cell levels of a layer's weights as they sit in its crossbar grid.

A layer's integer weight matrix W (K × N, signed ``weight_bits``) becomes a level matrix of
K × (N · columns_per_weight) cells, weight ``n`` in columns ``[n·cpw, (n+1)·cpw)``:

* ``offset``: the unsigned value ``W + 2^(weight_bits−1)`` sliced into ``cpw`` cells, least
  significant slice first;
* ``differential``: the slices of ``max(W, 0)`` (positive array) then those of ``max(−W, 0)``
  (negative array), ``cpw / 2`` each.

Column block ``cb`` of the mapping holds weights ``[cb·wpr, (cb+1)·wpr)``, so it is the level
matrix's columns ``[cb·wpr·cpw, (cb+1)·wpr·cpw)`` — the layout :func:`xsim.kernels.writes.write_cost`
is called with.
"""

from __future__ import annotations

import numpy as np

from xsim.config.arch import Arch


def cell_levels(w: np.ndarray, arch: Arch, weight_bits: int) -> np.ndarray:
    """(K, N) signed integer weights → (K, N·cpw) uint8 cell levels, as laid out on crossbars."""
    w = np.asarray(w, dtype=np.int64)
    cell_bits = arch.cell.bits
    slices = arch.slices_per_weight(weight_bits)
    mask = (1 << cell_bits) - 1
    if arch.crossbar.encoding == "offset":
        arrays = [w + (1 << (weight_bits - 1))]
    else:
        arrays = [np.maximum(w, 0), np.maximum(-w, 0)]
    k, n = w.shape
    out = np.empty((k, n, len(arrays) * slices), dtype=np.uint8)
    for a, values in enumerate(arrays):
        for s in range(slices):
            out[:, :, a * slices + s] = (values >> (s * cell_bits)) & mask
    return out.reshape(k, n * len(arrays) * slices)
