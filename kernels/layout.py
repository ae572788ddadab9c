"""Crossbar results into feature maps: scale, bias and transpose in one cache-friendly pass.

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
