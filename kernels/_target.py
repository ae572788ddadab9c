"""Vector width of the compiled kernels, chosen at run time from the host's CPU features.

LLVM's tuning for the Intel cores that have AVX-512 (Skylake-X to Emerald Rapids, Rocket Lake)
includes ``prefer-256-bit``: its loop vectoriser emits 256-bit code even where the host has
512-bit registers and ``vpopcntq``.  For the popcount kernels 512-bit code is what the host can
do, so each hot kernel exists in two variants built from the same source (``_mvm.py``):

* ``256``: what numba emits by default; the only variant an AVX2-only host ever compiles or runs;
* ``512``: the same code with the LLVM function attributes ``"prefer-vector-width"="512"`` and
  ``"min-legal-vector-width"="512"`` on the parallel loop body (what clang's
  ``-mprefer-vector-width=512`` sets), chosen when the host has AVX512F, AVX512BW and
  AVX512-VPOPCNTDQ.

``XSIM_VECTOR_WIDTH=256`` (or ``512``) overrides the choice; 512 on a host without AVX-512 is
refused, as it could not run.

Compiled caches (``cache=True``) cannot be confused between hosts or variants.  Numba keys every
cached overload on ``(signature, codegen.magic_tuple(), hash of the bytecode, hash of the closure
variables)``; ``magic_tuple()`` is ``(LLVM triple, host CPU name, host CPU feature string)``
(``numba.core.codegen.CPUCodegen.magic_tuple``, the same string the target machine is built with,
or ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` where set).  A kernel cached on an AVX-512 host
therefore has another key on an AVX2 host (another CPU name and ``-avx512f``) and is recompiled
there, never loaded.  The two variants are closures over their vector width, so the closure hash
keeps their entries apart in one index file.
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Iterable
from pathlib import Path

from numba import types
from numba.core import config
from numba.extending import intrinsic

WIDTHS = (256, 512)
# What the 512-bit variant needs: 512-bit integer ops on 64-bit lanes, byte/word ops, and the
# vector popcount (without VPOPCNTDQ LLVM would emulate it on 512-bit registers, no gain).
AVX512_FEATURES = frozenset({"avx512f", "avx512bw", "avx512vpopcntdq"})
ENV = "XSIM_VECTOR_WIDTH"


@functools.cache
def host_features() -> frozenset[str]:
    """The CPU features numba compiles for: ``NUMBA_CPU_FEATURES`` where set, else the host's."""
    if config.CPU_FEATURES is not None:
        text = config.CPU_FEATURES
    else:
        import llvmlite.binding as ll

        text = ll.get_host_cpu_features().flatten()
    return frozenset(f[1:] for f in text.split(",") if f.startswith("+"))


def host_cpu_name() -> str:
    """The CPU name numba compiles for (``NUMBA_CPU_NAME`` where set, else LLVM's host name)."""
    if config.CPU_NAME is not None:
        return config.CPU_NAME
    import llvmlite.binding as ll

    return ll.get_host_cpu_name()


def host_cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), for benchmark reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def runnable_widths(features: Iterable[str]) -> list[int]:
    """The vector widths whose code a host with ``features`` can run (256; 512 with AVX-512)."""
    return [w for w in WIDTHS if w == 256 or frozenset(features) >= AVX512_FEATURES]


def select_width(features: Iterable[str], override: str | None = None) -> int:
    """The kernel vector width for a host with ``features`` (names without ``+``).

    ``override`` is the value of ``XSIM_VECTOR_WIDTH`` (``None`` or empty: choose).
    """
    has_512 = 512 in runnable_widths(features)
    if override:
        try:
            width = int(override)
        except ValueError:
            width = 0
        if width not in WIDTHS:
            raise ValueError(f"{ENV} must be one of {WIDTHS}, got {override!r}")
        if width == 512 and not has_512:
            raise ValueError(f"{ENV}=512 needs {', '.join(sorted(AVX512_FEATURES))}, "
                             "which this host lacks")
        return width
    return 512 if has_512 else 256


def vector_width() -> int:
    """The vector width the kernels run with on this host (see the module docstring)."""
    return select_width(host_features(), os.environ.get(ENV))


@intrinsic(prefer_literal=True)
def prefer_vector_width(typingctx, width):
    """Ask LLVM to vectorise the calling function with ``width``-bit registers (a literal int).

    Call it inside a ``prange`` body: numba outlines that body into its own LLVM function,
    which is where the loops are vectorised.  256 adds nothing (numba's default).
    """
    if not isinstance(width, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        bits = signature.args[0].literal_value
        if bits > 256:
            # llvmlite only admits enum attributes by name; string attributes are written
            # verbatim into the function's attribute list, which is valid LLVM IR.
            for name in ("prefer-vector-width", "min-legal-vector-width"):
                set.add(builder.function.attributes, f'"{name}"="{bits}"')
        return context.get_dummy_value()

    return types.none(width), codegen
