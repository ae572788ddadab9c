"""Cell levels of a layer's weights as they sit in its crossbar grid.

A layer's integer weight matrix W (K × N, signed ``weight_bits``) becomes a level matrix of
K × (N · columns_per_weight) cells, weight ``n`` in columns ``[n·cpw, (n+1)·cpw)``:

* ``offset``: the unsigned value ``W + 2^(weight_bits−1)`` sliced into ``cpw`` cells, least
  significant slice first;
* ``differential``: the slices of ``max(W, 0)`` (positive array) then those of ``max(−W, 0)``
  (negative array), ``cpw / 2`` each.

Column block ``cb`` of the mapping holds weights ``[cb·wpr, (cb+1)·wpr)``, so it is the level
matrix's columns ``[cb·wpr·cpw, (cb+1)·wpr·cpw)`` — the layout
:func:`xsim.kernels.writes.write_cost` is called with.
"""

from __future__ import annotations

import numpy as np

from xsim.config.arch import Arch
from xsim.kernels.writes import slice_levels


def cell_levels(w: np.ndarray, arch: Arch, weight_bits: int) -> np.ndarray:
    """(K, N) signed integer weights → (K, N·cpw) uint8 cell levels, as laid out on crossbars."""
    return slice_levels(w, weight_bits=weight_bits, cell_bits=arch.cell.bits,
                        slices=arch.slices_per_weight(weight_bits),
                        encoding=arch.crossbar.encoding)
