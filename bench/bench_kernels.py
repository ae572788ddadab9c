"""Throughput of the bit-sliced crossbar MVM kernels (run by ``make bench``).

One 128x128 crossbar of 2-bit cells, 8-bit unsigned inputs through 1-bit DACs,
8-bit signed weights (differential), 8-bit clip ADC, batch 4096.  Throughput is in
cell-MAC/s: one input bit times one cell (weight slice), i.e. batch * K * N *
input_bits * slices per MVM.  Compared in one run: the fused numba kernel
(weights packed once, input packing included, JIT excluded by a warm-up), a
float32-BLAS bit-plane implementation of the same computation, and the numpy
reference of the tests (on a slice of the batch).
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kernel_reference import reference_mvm  # noqa: E402

from xsim.kernels import crossbar_mvm_packed, n_slices, pack_weights  # noqa: E402

ROWS, COLS, CELL_BITS, INPUT_BITS, WEIGHT_BITS, ADC_BITS, DAC_BITS = 128, 128, 2, 8, 8, 8, 1
BATCH, REFERENCE_BATCH = 4096, 256
SLICES = n_slices(WEIGHT_BITS, CELL_BITS, "differential")
CONFIG = dict(dac_bits=DAC_BITS, input_bits=INPUT_BITS, adc_bits=ADC_BITS)


def blas_bitplanes(x, w):
    """Same computation with float32 BLAS: one GEMM of all input bit-planes by all slices."""
    planes = np.stack([(x >> t) & 1 for t in range(INPUT_BITS)]).astype(np.float32)
    mask = (1 << CELL_BITS) - 1
    slices = [(np.maximum(sign * w, 0) >> (s * CELL_BITS)) & mask
              for sign in (1, -1) for s in range(SLICES)]
    wmat = np.concatenate(slices, axis=1).astype(np.float32)  # K x (2 * S * N)
    sums = planes.reshape(INPUT_BITS * len(x), -1) @ wmat  # every column sum
    codes = np.minimum(sums, (1 << ADC_BITS) - 1).reshape(INPUT_BITS, len(x), 2, SLICES, -1)
    coef = np.array([[[sign * 2.0 ** (t + s * CELL_BITS) for s in range(SLICES)]
                      for sign in (1, -1)] for t in range(INPUT_BITS)])
    return np.rint(np.einsum("tbasn,tas->bn", codes, coef, optimize=True)).astype(np.int64)


def best_time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 1 << INPUT_BITS, (BATCH, ROWS))
    half = 1 << (WEIGHT_BITS - 1)
    w = rng.integers(-(half - 1), half, (ROWS, COLS))
    packed = pack_weights(w, rows=ROWS, cell_bits=CELL_BITS, weight_bits=WEIGHT_BITS)
    fused = crossbar_mvm_packed(x, packed, **CONFIG)  # warm-up: JIT out of the figures
    blas = blas_bitplanes(x, w)
    xr = x[:REFERENCE_BATCH]
    ref = reference_mvm(xr, w, rows=ROWS, cell_bits=CELL_BITS, weight_bits=WEIGHT_BITS, **CONFIG)
    assert np.array_equal(fused, blas) and np.array_equal(fused[:REFERENCE_BATCH], ref)

    def cell_macs(batch):
        return batch * ROWS * COLS * INPUT_BITS * SLICES

    t_fused = best_time(lambda: crossbar_mvm_packed(x, packed, **CONFIG), 10)
    t_blas = best_time(lambda: blas_bitplanes(x, w), 3)
    t_ref = best_time(lambda: reference_mvm(xr, w, rows=ROWS, cell_bits=CELL_BITS,
                                            weight_bits=WEIGHT_BITS, **CONFIG), 1)
    rates = {"fused numba kernel": cell_macs(BATCH) / t_fused,
             "float32 BLAS bit-planes": cell_macs(BATCH) / t_blas,
             f"numpy reference (batch {REFERENCE_BATCH})": cell_macs(REFERENCE_BATCH) / t_ref}
    print(f"{ROWS}x{COLS} crossbar, {CELL_BITS}-bit cells, {INPUT_BITS}-bit inputs, "
          f"{DAC_BITS}-bit DAC, {ADC_BITS}-bit clip ADC, batch {BATCH}")
    for name, rate in rates.items():
        print(f"  {name:34s} {rate / 1e9:9.2f} G cell-MAC/s")
    fused_rate, blas_rate, ref_rate = rates.values()
    print(f"  fused / BLAS      {fused_rate / blas_rate:8.1f}x")
    print(f"  fused / reference {fused_rate / ref_rate:8.1f}x")
    print(f"  BLAS / reference  {blas_rate / ref_rate:8.1f}x")


if __name__ == "__main__":
    main()
