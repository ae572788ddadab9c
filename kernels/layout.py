"""Feature maps into crossbar inputs and crossbar results into feature maps, one pass each.

:func:`quantise_codes` turns a float64 tensor into a layer's integer input codes,
``code = clip(rint(x * (1/scale)), low, high)`` in the codes' narrow dtype, exactly what the numpy
expression gives (``tests/kernel_reference.py``, ``reference_quantise``), in one pass instead of
four (product, rounding, clip, cast).

A conv layer's crossbar call returns one row per output pixel, ``y`` (P, N), but the network's
tensors are channel maps (N, P). :func:`dequantise_into` writes ``out[n, p] = y[p, n] * scale[n]``
(``+ bias[n]``), each a float64 product and then a float64 sum, exactly what
``np.multiply(y.T, scale[:, None], out=out); out += bias[:, None]`` gives
(``tests/kernel_reference.py``, ``reference_dequantise``); the transpose runs in tiles of
pixels so that both arrays are read and written along cache lines. Serial and without the GIL.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._settings import JIT

_CODE_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32)

_TILE = 32
"""pixels per tile: a tile's rows of ``y`` stay in the L1 cache while its columns are written"""


@njit(**JIT)
def _dequantise(y, scale, bias, with_bias, out):
    pixels, columns = y.shape
    for p0 in range(0, pixels, _TILE):
        p1 = min(pixels, p0 + _TILE)
        for n in range(columns):
            s = scale[n]
            if with_bias:
                b = bias[n]
                for p in range(p0, p1):
                    out[n, p] = y[p, n] * s + b
            else:
                for p in range(p0, p1):
                    out[n, p] = y[p, n] * s


def dequantise_into(y: np.ndarray, scale: np.ndarray, bias: np.ndarray | None,
                    out: np.ndarray) -> None:
    """``out`` (N, P) float64 ← ``y.T`` (``y`` (P, N), int64 or float64) times ``scale`` (N,)
    plus ``bias`` (N,) when given; see the module docstring."""
    if y.ndim != 2 or out.shape != (y.shape[1], y.shape[0]):
        raise ValueError(f"out must be the transpose of y's shape {y.shape[::-1]}, got {out.shape}")
    if out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float64 array")
    if y.dtype not in (np.int64, np.float64):
        raise ValueError(f"y must be int64 or float64, got {y.dtype}")
    scale = np.ascontiguousarray(scale, dtype=np.float64).reshape(-1)
    if scale.shape != (y.shape[1],) or (bias is not None and np.shape(bias) != scale.shape):
        raise ValueError(f"scale and bias must have {y.shape[1]} entries")
    b = scale if bias is None else np.ascontiguousarray(bias, dtype=np.float64)
    _dequantise(np.ascontiguousarray(y), scale, b, bias is not None, out)


@njit(**JIT)
def _quantise(x, inv, low, high, out):
    for i in range(x.size):
        v = np.rint(x[i] * inv)
        if v < low:
            v = low
        elif v > high:
            v = high
        out[i] = v


def quantise_codes(x: np.ndarray, inv_scale: float, low: int, high: int,
                   dtype: np.dtype) -> np.ndarray:
    """``clip(rint(x * inv_scale), low, high)`` as ``dtype`` (an integer type of at most 32 bits
    holding ``[low, high]``), ``x`` any shape (read as contiguous float64); see the module
    docstring."""
    dtype = np.dtype(dtype)
    if dtype not in _CODE_DTYPES:
        raise ValueError(f"codes must be one of {[np.dtype(d).name for d in _CODE_DTYPES]}, got {dtype}")
    info = np.iinfo(dtype)
    if not info.min <= low <= high <= info.max:
        raise ValueError(f"[{low}, {high}] does not fit {dtype}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty(x.shape, dtype)
    _quantise(x.reshape(-1), float(inv_scale), float(low), float(high), out.reshape(-1))
    return out
