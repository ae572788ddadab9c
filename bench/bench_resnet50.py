"""Benchmark: bit-accurate ResNet-50 inference of one 224x224 image on the crossbar kernels.

Setup: arch/isaac128.yaml (128x128 crossbars, 2-bit cells, 1-bit DACs, 8-bit clipping ADCs;
``offset`` encoding as the file has it, or ``--encoding differential``), workloads/resnet50_mta.json
(8-bit weights and inputs, synthetic seeded weights), activation scales calibrated on two synthetic
images.  Prints, after one warm-up inference (JIT compilation, first-touch allocations):

* the wall time per image of :meth:`xsim.functional.CrossbarNetwork.run` (best and mean of
  ``--repeats``), split into time inside ``xsim.kernels.crossbar_mvm_packed`` and the rest
  (quantisation, im2col, tier-2/dequantisation, digital layers);
* the wall time of a float32 NumPy forward pass of the same network on the same image, and the ratio;
* the process's peak resident memory (``ru_maxrss``, which includes numba's allocations);
* the logits' relative error and top-1 agreement against the float64 reference.

Run: ``.venv/bin/python bench/bench_resnet50.py [--encoding differential] [--repeats 3]``.
It prints figures and never fails on time.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from xsim.config import build_network, load_arch, load_workload
from xsim.functional import CrossbarNetwork, forward_float, synthetic_inputs, synthetic_weights
from xsim.functional import network as functional_network
from xsim.mapping import map_network

ROOT = Path(__file__).resolve().parent.parent


class KernelTimer:
    """Wraps the kernel entry point the functional model calls, summing its wall time."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._inner = functional_network.kernels.crossbar_mvm_packed

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._inner(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoding", choices=("offset", "differential"), default=None,
                        help="crossbar encoding (default: the arch file's, offset)")
    parser.add_argument("--repeats", type=int, default=3, help="timed inferences after the warm-up")
    args = parser.parse_args()

    overrides = {"crossbar.encoding": args.encoding} if args.encoding else None
    arch = load_arch(ROOT / "arch" / "isaac128.yaml", overrides)
    workload = load_workload(ROOT / "workloads" / "resnet50_mta.json")
    network = build_network(workload)
    mapping = map_network(arch, network, weight_bits=workload.weight_bits(arch.precision.weight_bits),
                          input_bits=workload.input_bits(arch.precision.input_bits))
    weights = synthetic_weights(network, workload.model.weights.seed)
    image = synthetic_inputs(network, 1, workload.seed)

    start = time.perf_counter()
    model = CrossbarNetwork(arch, mapping, weights, synthetic_inputs(network, 2, workload.seed + 1))
    setup_s = time.perf_counter() - start
    timer = KernelTimer()
    functional_network.kernels.crossbar_mvm_packed = timer
    try:
        model.run(image)  # warm-up
        times, kernel = [], []
        for _ in range(args.repeats):
            timer.seconds = 0.0
            start = time.perf_counter()
            logits = model.run(image)
            times.append(time.perf_counter() - start)
            kernel.append(timer.seconds)
    finally:
        functional_network.kernels.crossbar_mvm_packed = timer._inner

    forward_float(network, weights, image, dtype=np.float32)  # warm-up
    float_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        forward_float(network, weights, image, dtype=np.float32)
        float_times.append(time.perf_counter() - start)
    reference = forward_float(network, weights, image)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    best, mean, k = min(times), float(np.mean(times)), float(np.mean(kernel))
    fbest = min(float_times)
    rel = float(np.linalg.norm(logits - reference) / np.linalg.norm(reference))
    print(f"ResNet-50, one 3x224x224 image, {mapping.weight_bits}-bit weights/inputs, "
          f"{arch.crossbar.rows}x{arch.crossbar.columns} crossbars, {arch.cell.bits}-bit cells, "
          f"{arch.dac_bits}-bit DAC, {arch.adc_bits}-bit ADC (clip), "
          f"{arch.crossbar.encoding} encoding; {mapping.crossbars} crossbars, {mapping.pe_count} PEs")
    print(f"setup (quantise, calibrate on 2 images, pack): {setup_s:.2f} s")
    print(f"bit-accurate inference: {best:.3f} s best, {mean:.3f} s mean of {args.repeats} "
          f"(kernel {k:.3f} s over {timer.calls // (args.repeats + 1)} calls, rest {mean - k:.3f} s)")
    print(f"float32 numpy forward: {fbest:.3f} s best; ratio crossbar/float32 = {best / fbest:.1f}x")
    print(f"peak memory (max RSS): {peak_gib:.2f} GiB")
    print(f"logits vs float64 reference: rel error {rel:.4f}, top-1 "
          f"{'agrees' if int(np.argmax(logits)) == int(np.argmax(reference)) else 'differs'}")


if __name__ == "__main__":
    main()
