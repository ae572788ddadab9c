"""Bit-sliced crossbar kernels (numba): pure functions over numpy arrays.

``crossbar_mvm`` / ``crossbar_mvm_packed`` give the bit-accurate result of an
ISAAC-class crossbar matrix-vector product (see ``crossbar.py`` for the model; columns whose
ADC cannot clip come from an exact integer product, ``lossless.py``);
``vector_width`` says which compiled variant (256- or 512-bit) this host runs
(``_target.py``).
"""

from . import _settings  # noqa: F401  (numba settings first)
from ._target import vector_width
from .crossbar import (
    PackedWeights,
    crossbar_mvm,
    crossbar_mvm_packed,
    input_phases,
    n_slices,
    pack_weights,
)
from .layout import dequantise_into, quantise_codes
from .nonideal import CellDeviation, cell_deviation, stored_levels

__all__ = [
    "CellDeviation",
    "cell_deviation",
    "dequantise_into",
    "stored_levels",
    "PackedWeights",
    "crossbar_mvm",
    "crossbar_mvm_packed",
    "input_phases",
    "n_slices",
    "pack_weights",
    "quantise_codes",
    "vector_width",
]
