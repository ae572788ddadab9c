"""Throughput of the bit-sliced crossbar MVM kernel against the machine's ceiling (``make bench``).

One 128x128 crossbar of 2-bit cells, 8-bit unsigned inputs through 1-bit DACs, 8-bit signed
weights (differential), 8-bit clip ADC, batch 4096.  Throughput is in cell-MAC/s: one input bit
times one cell (weight slice), i.e. batch * K * N * input_bits * slices per MVM.

Measured in one run, at 1 and at 2 threads and in every vector width the host can run:

* the fused kernel (``crossbar_mvm_packed``: weights packed once, input packing, ADC and
  shift-and-add included);
* the **roofline probe**: a plain AND+popcount stream over the same packed bytes (the packed
  inputs times every packed weight word, summed), i.e. the same number of 64-bit AND+popcounts
  the kernel does with nothing else around them -- the ceiling of this machine for this work.
  The kernel's throughput is printed as a fraction of it.

* the **exact product** (``crossbar_mvm_packed``'s default ``shortcut``): the random weights here
  leave every column's largest possible sum within the ADC, so the default call computes the
  exact integer product on BLAS instead (``kernels/lossless.py``); its rate is printed as
  equivalent cell-MAC/s, against the kernel at the same thread count;

* the **non-ideal path** (``cells=``: per-cell programming error and variation, and then with
  state-dependent read noise too), interleaved with the ideal kernel on the same inputs, printed
  as the ratio of the ideal throughput to the non-ideal one (the cost of non-idealities).

Kernel and probe run interleaved, ``--pairs`` times, and the medians are printed (the host may
be shared).  The kernel's result is checked against the numpy reference of the tests (on a slice
of the batch), whose throughput is printed too.  JIT compilation is kept out of every figure by a
warm-up call.

The code an AVX2-only host runs can be measured on an AVX-512 host by compiling for an AVX2 CPU
(numba's own settings; the compiled cache keys on them, so nothing is mixed up):
``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,
+lzcnt,+mmx,+movbe,+pclmul,+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3`` (one string, no
spaces): the header then says ``LLVM CPU haswell; avx2`` and the 256-bit variant only.  That is the
AVX2 instruction stream on this host's cores, not an AVX2 host's cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kernel_reference import reference_mvm  # noqa: E402
from nonideal_reference import reference_nonideal_mvm  # noqa: E402

from xsim.kernels import (  # noqa: E402
    CellDeviation,
    _target,
    cell_deviation,
    crossbar_mvm_packed,
    n_slices,
    pack_weights,
    stored_levels,
)
from xsim.kernels._popcount import popcount64  # noqa: E402
from xsim.kernels._settings import PARALLEL_JIT  # noqa: E402

ROWS, COLS, CELL_BITS, INPUT_BITS, WEIGHT_BITS, ADC_BITS, DAC_BITS = 128, 128, 2, 8, 8, 8, 1
BATCH, REFERENCE_BATCH = 4096, 256
SLICES = n_slices(WEIGHT_BITS, CELL_BITS, "differential")
CONFIG = dict(dac_bits=DAC_BITS, input_bits=INPUT_BITS, adc_bits=ADC_BITS)
# The bit-sliced kernels on every column: this crossbar's columns cannot clip (see the docstring).
KERNEL = dict(CONFIG, shortcut=False)


def _build_probe(width):
    @numba.njit(**PARALLEL_JIT)
    def probe(xq, wp, out):
        """``out[b] = sum popcount(x & w)`` over every (row block, plane, array, slice, cell
        bit, word, column) of sample ``b``: the kernel's popcounts and nothing else.  The four
        popcounts of a column sum go in one loop over the columns (the fastest of the loop
        orders tried), summed into one register-held total."""
        n_blocks, n_arrays, n_slices_, _, _, n_cols = wp.shape
        for b in numba.prange(xq.shape[0]):
            _target.prefer_vector_width(width)
            total = 0
            for r in range(n_blocks):
                for p in range(xq.shape[2]):
                    x0 = xq[b, r, p, 0]
                    x1 = xq[b, r, p, 1]
                    for a in range(n_arrays):
                        for s in range(n_slices_):
                            ws = wp[r, a, s]
                            for n in range(n_cols):
                                total += (popcount64(x0 & ws[0, 0, n]) + popcount64(x1 & ws[0, 1, n])
                                          + popcount64(x0 & ws[1, 0, n])
                                          + popcount64(x1 & ws[1, 1, n]))
            out[b] = total

    return probe


PROBE = {w: _build_probe(w) for w in _target.WIDTHS}


def pack_input_planes(x):
    """``uint64[B, R, planes, 2]``: the kernel's packed input layout (bit i of word wd is row
    ``64*wd + i`` of the row block)."""
    bits = ((x[:, None, :] >> np.arange(INPUT_BITS)[None, :, None]) & 1).astype(np.uint8)
    words = np.packbits(bits, axis=-1, bitorder="little").view(np.uint64)  # (B, planes, 2)
    return np.ascontiguousarray(words[:, None])


def elapsed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=15, help="interleaved kernel/probe runs")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.integers(0, 1 << INPUT_BITS, (BATCH, ROWS)).astype(np.uint8)
    half = 1 << (WEIGHT_BITS - 1)
    w = rng.integers(-(half - 1), half, (ROWS, COLS))
    packed = pack_weights(w, rows=ROWS, cell_bits=CELL_BITS, weight_bits=WEIGHT_BITS)
    xq = pack_input_planes(x)
    probe_out = np.zeros(BATCH, np.int64)
    cell_macs = BATCH * ROWS * COLS * INPUT_BITS * SLICES

    features = _target.host_features()
    widths = _target.runnable_widths(features)
    chosen = _target.vector_width()
    vec = [f for f in ("avx2", "avx512f", "avx512bw", "avx512vpopcntdq") if f in features]
    print(f"host: {_target.host_cpu_model()}; LLVM CPU {_target.host_cpu_name()}; {', '.join(vec)}; "
          f"kernels run {chosen}-bit code here (variants measured: {widths})")
    print(f"{ROWS}x{COLS} crossbar, {CELL_BITS}-bit cells, {INPUT_BITS}-bit inputs, "
          f"{DAC_BITS}-bit DAC, {ADC_BITS}-bit clip ADC, differential, batch {BATCH}; "
          f"median of {args.pairs} interleaved runs")

    saved_env = os.environ.get(_target.ENV)
    saved_threads = numba.get_num_threads()
    results = {}
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            for width in widths:
                os.environ[_target.ENV] = str(width)

                def kernel():
                    return crossbar_mvm_packed(x, packed, **KERNEL)

                def probe(width=width):
                    PROBE[width](xq, packed.planes, probe_out)

                y = kernel()  # warm-up: JIT out of the figures
                probe()
                ref = reference_mvm(x[:REFERENCE_BATCH], w, rows=ROWS, cell_bits=CELL_BITS,
                                    weight_bits=WEIGHT_BITS, **CONFIG)
                assert np.array_equal(y[:REFERENCE_BATCH], ref), "kernel differs from reference"
                pairs = [(elapsed(kernel), elapsed(probe)) for _ in range(args.pairs)]
                tk = statistics.median(t for t, _ in pairs)
                tp = statistics.median(t for _, t in pairs)
                frac = statistics.median(p / k for k, p in pairs)
                results[threads, width] = cell_macs / tk
                print(f"  {threads} thread{'s' if threads > 1 else ' '} {width}-bit: kernel "
                      f"{cell_macs / tk / 1e9:7.1f} G cell-MAC/s, probe {cell_macs / tp / 1e9:7.1f}"
                      f" G; kernel/probe {100 * frac:5.1f} %")
    finally:
        numba.set_num_threads(saved_threads)
        if saved_env is None:
            os.environ.pop(_target.ENV, None)
        else:
            os.environ[_target.ENV] = saved_env

    assert packed.columns_for((1 << ADC_BITS) - 1).rest.size == 0, "a column may clip"
    for threads in sorted({t for t, _ in results}):
        numba.set_num_threads(threads)
        try:
            assert np.array_equal(crossbar_mvm_packed(x, packed, **CONFIG),
                                  crossbar_mvm_packed(x, packed, **KERNEL))
            runs = [(elapsed(lambda: crossbar_mvm_packed(x, packed, **KERNEL)),
                     elapsed(lambda: crossbar_mvm_packed(x, packed, **CONFIG)))
                    for _ in range(args.pairs)]
        finally:
            numba.set_num_threads(saved_threads)
        te = statistics.median(e for _, e in runs)
        speedup = statistics.median(k / e for k, e in runs)
        print(f"  {threads} thread{'s' if threads > 1 else ' '} exact product (every column "
              f"lossless, BLAS): {cell_macs / te / 1e9:7.1f} G cell-MAC/s equivalent; "
              f"{speedup:.1f}x the {chosen}-bit kernel")
    xr = x[:REFERENCE_BATCH]
    t_ref = elapsed(lambda: reference_mvm(xr, w, rows=ROWS, cell_bits=CELL_BITS,
                                          weight_bits=WEIGHT_BITS, **CONFIG))
    ref_rate = REFERENCE_BATCH * ROWS * COLS * INPUT_BITS * SLICES / t_ref
    best = results[max(k for k in results if k[1] == chosen)]
    print(f"  numpy reference (batch {REFERENCE_BATCH}): {ref_rate / 1e9:.2f} G cell-MAC/s; "
          f"kernel ({chosen}-bit, most threads) / reference {best / ref_rate:.0f}x")
    if 512 in widths:
        for threads in sorted({t for t, _ in results}):
            print(f"  512-bit / 256-bit kernel at {threads} thread(s): "
                  f"{results[threads, 512] / results[threads, 256]:.2f}x")
    nonideal(x, w, packed, cell_macs, args.pairs, sorted({t for t, _ in results}), chosen)


def nonideal(x, w, packed, cell_macs, pairs, threads_list, width) -> None:
    """The non-ideal path against the ideal kernel, interleaved, in this run."""
    rng = np.random.default_rng(1)
    levels = stored_levels(w, rows=ROWS, cell_bits=CELL_BITS, weight_bits=WEIGHT_BITS)
    g = levels.astype(np.float64)
    cases = {
        "programming error + variation": cell_deviation(
            levels, cell_bits=CELL_BITS, program=0.1 * np.sqrt(g) * rng.standard_normal(g.shape),
            variation=0.05 * rng.standard_normal(g.shape)),
        "+ state-dependent read noise": cell_deviation(
            levels, cell_bits=CELL_BITS, program=0.1 * np.sqrt(g) * rng.standard_normal(g.shape),
            variation=0.05 * rng.standard_normal(g.shape), read_sigma=0.02),
    }
    # exactness of the non-ideal kernel against its numpy reference (dyadic deviations)
    dyadic = (np.round(rng.normal(0, 0.3, levels.shape) * 64) / 64).astype(np.float32)
    check = crossbar_mvm_packed(x[:8], packed, cells=CellDeviation(dyadic, None, 0.0), **CONFIG)
    ref = reference_nonideal_mvm(x[:8], w, dyadic, rows=ROWS, cell_bits=CELL_BITS,
                                 weight_bits=WEIGHT_BITS, **CONFIG)
    assert np.array_equal(check, ref), "non-ideal kernel differs from its reference"
    saved = numba.get_num_threads()
    print(f"non-ideal path ({width}-bit code; same inputs, interleaved with the ideal kernel):")
    try:
        for threads in threads_list:
            numba.set_num_threads(threads)
            for label, cells in cases.items():
                crossbar_mvm_packed(x, packed, cells=cells, **CONFIG)  # warm-up
                runs = [(elapsed(lambda: crossbar_mvm_packed(x, packed, **KERNEL)),
                         elapsed(lambda cells=cells: crossbar_mvm_packed(x, packed, cells=cells,
                                                                         **CONFIG)))
                        for _ in range(max(3, pairs // 3))]
                ti = statistics.median(t for t, _ in runs)
                tn = statistics.median(t for _, t in runs)
                ratio = statistics.median(n / i for i, n in runs)
                print(f"  {threads} thread{'s' if threads > 1 else ' '} {label}: "
                      f"{cell_macs / tn / 1e9:6.1f} G cell-MAC/s against ideal "
                      f"{cell_macs / ti / 1e9:6.1f} G: {ratio:.1f}x slower")
    finally:
        numba.set_num_threads(saved)


if __name__ == "__main__":
    main()
