"""Population count of a 64-bit word for numba kernels.

Numba has no CPU popcount, so :func:`popcount64` is an ``@intrinsic`` that emits
LLVM's ``ctpop``; LLVM lowers it to ``popcnt`` on scalars and, when it vectorises
a loop, to the widest vector popcount the host has (``vpopcntq`` with AVX-512
VPOPCNTDQ, a ``vpshufb`` nibble table with AVX2).
"""

from numba import types
from numba.extending import intrinsic


@intrinsic
def popcount64(typingctx, word):
    """Number of set bits of a ``uint64`` word, returned as ``int64``."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.int64(types.uint64), codegen
