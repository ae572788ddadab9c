"""Bit counts of a 64-bit word for numba kernels.

Numba has no CPU popcount or trailing-zero count, so :func:`popcount64` and
:func:`trailing_zeros64` are ``@intrinsic`` functions that emit LLVM's ``ctpop`` and
``cttz``; LLVM lowers them to ``popcnt`` and ``tzcnt`` (``bsf`` on hosts without BMI) on
scalars and, when it vectorises a loop, ``ctpop`` to the widest vector popcount the host has
(``vpopcntq`` with AVX-512 VPOPCNTDQ, a ``vpshufb`` nibble table with AVX2).
"""

from llvmlite import ir
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


@intrinsic
def trailing_zeros64(typingctx, word):
    """Index of the lowest set bit of a non-zero ``uint64`` word, returned as ``int64`` (a zero
    word gives an undefined value: callers test for zero first)."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return types.int64(types.uint64), codegen
