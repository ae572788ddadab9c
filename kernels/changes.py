"""A task's synthetic weight change applied to the backbone's integer weights, in one pass.

:func:`xsim.mta.tasks.build_tasks` draws, per task and layer, which weights change (``changed``)
and a standard normal ``z`` per weight (float32, numpy's generators: the draws stay there); this
kernel turns them into the task's int8 weight deltas and every first-instance PE's change score,
which numpy computed in seven passes over the layer (``tests/kernel_reference.py``,
``reference_changes``, is that code and the property tests hold the two equal):

* ``step = rint(z · σ)`` in float32, ``σ`` the layer's float32 sigma (one value, or one per weight);
* ``delta = step clipped to [-127, 127]`` where ``changed``, else 0, as int8;
* the task's weights ``clip(w0 + delta, -limit, limit)`` and, per PE box ``[r0, r1) × [c0, c1)``,
  the sum of ``|task - w0|`` over the box (exact in int64).

Serial code without the GIL: ``build_tasks`` calls it from several threads at once (a layer per
thread), which numba's parallel kernels allow only under some threading layers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._settings import JIT


@njit(**JIT)
def _deltas(changed, z, sigma, out):
    rows, cols = z.shape
    per_weight = sigma.shape[0] > 1 or sigma.shape[1] > 1
    s0 = sigma[0, 0]
    for r in range(rows):
        for c in range(cols):
            if not changed[r, c]:
                out[r, c] = 0
                continue
            s = sigma[r, c] if per_weight else s0
            step = np.float32(np.rint(np.float32(z[r, c] * s)))
            if step > np.float32(127.0):
                step = np.float32(127.0)
            elif step < np.float32(-127.0):
                step = np.float32(-127.0)
            out[r, c] = np.int8(step)


@njit(**JIT)
def _scores(w0, delta, limit, boxes, out):
    for b in range(boxes.shape[0]):
        total = 0
        for r in range(boxes[b, 0], boxes[b, 1]):
            for c in range(boxes[b, 2], boxes[b, 3]):
                w = w0[r, c]
                t = w + delta[r, c]
                if t > limit:
                    t = limit
                elif t < -limit:
                    t = -limit
                total += abs(t - w)
        out[b] = total


def weight_changes(changed: np.ndarray, z: np.ndarray, sigma: np.ndarray | np.floating,
                   w0: np.ndarray, limit: int, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(delta, scores)``: the int8 deltas (K, N) and, per row of ``boxes`` (B, 4) int64
    ``(r0, r1, c0, c1)``, the int64 sum of the task's change over that box (see the module
    docstring). ``changed`` bool, ``z`` float32 and ``w0`` int32, all (K, N); ``sigma`` a float32
    scalar or a (K, N) float32 array."""
    changed = np.ascontiguousarray(changed, dtype=np.bool_)
    z = np.ascontiguousarray(z, dtype=np.float32)
    w0 = np.ascontiguousarray(w0, dtype=np.int32)
    if changed.shape != z.shape or w0.shape != z.shape or z.ndim != 2:
        raise ValueError(f"changed, z and w0 must be one (K, N) shape, got {changed.shape}, "
                         f"{z.shape} and {w0.shape}")
    sig = np.asarray(sigma, dtype=np.float32)
    if sig.ndim == 0:
        sig = sig.reshape(1, 1)
    elif sig.shape != z.shape:
        raise ValueError(f"sigma must be a scalar or of shape {z.shape}, got {sig.shape}")
    sig = np.ascontiguousarray(sig)
    boxes = np.ascontiguousarray(boxes, dtype=np.int64).reshape(-1, 4)
    k, n = z.shape
    if boxes.size and (boxes.min() < 0 or boxes[:, 1].max() > k or boxes[:, 3].max() > n
                       or np.any(boxes[:, 0] > boxes[:, 1]) or np.any(boxes[:, 2] > boxes[:, 3])):
        raise ValueError(f"boxes must lie inside the ({k}, {n}) matrix")
    delta = np.empty(z.shape, dtype=np.int8)
    _deltas(changed, z, sig, delta)
    scores = np.empty(boxes.shape[0], dtype=np.int64)
    _scores(w0, delta, np.int32(limit), boxes, scores)
    return delta, scores
