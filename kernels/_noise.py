"""Counter-based Gaussian read noise, reproducible regardless of threading.

Every ADC conversion has a global index (see ``crossbar.py``); its noise sample is
a pure function of ``(seed, index)``:

* ``key = splitmix64(seed)``,
* ``u1 = ((splitmix64(key + 2*index) >> 11) + 1) * 2**-53`` in (0, 1],
* ``u2 = (splitmix64(key + 2*index + 1) >> 11) * 2**-53`` in [0, 1),
* ``g = sqrt(-2 ln u1) * cos(2 pi u2)`` (Box-Muller), a standard normal sample,

all arithmetic on ``uint64`` wrapping modulo 2**64.  The same stream is therefore
produced whatever the batch tiling or thread count.
"""

import math

import numpy as np
from numba import njit

from ._settings import JIT

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_PI = 2.0 * math.pi
_INV_2_53 = 1.0 / 9007199254740992.0


@njit(**JIT)
def splitmix64(z):
    """One splitmix64 step of the ``uint64`` state ``z`` (wrapping arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(**JIT)
def noise_key(seed):
    """Stream key (``uint64``) of an integer ``seed`` in ``[0, 2**64)``."""
    return splitmix64(np.uint64(seed))


@njit(**JIT)
def gaussian(key, index):
    """Standard normal sample number ``index`` of the stream ``key``."""
    start = np.uint64(key) + np.uint64(index) * np.uint64(2)
    h1 = splitmix64(start)
    h2 = splitmix64(start + np.uint64(1))
    u1 = (np.float64(h1 >> np.uint64(11)) + 1.0) * _INV_2_53
    u2 = np.float64(h2 >> np.uint64(11)) * _INV_2_53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)
