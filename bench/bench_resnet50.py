"""Benchmark: bit-accurate ResNet-50 inference of 224x224 images on the crossbar kernels.

Setup: arch/isaac128.yaml (128x128 crossbars, 2-bit cells, 1-bit DACs, 8-bit clipping ADCs;
``offset`` encoding as the file has it, or ``--encoding differential``), workloads/resnet50_mta.json
(8-bit weights and inputs, synthetic seeded weights), activation scales calibrated on two synthetic
images.  Prints, after one warm-up inference (JIT compilation, first-touch allocations), for one
image and for a batch of ``--batch`` images (16) run by one :meth:`CrossbarNetwork.run` call (as
``xsim run --lifetime`` does per task and checkpoint, and ``xsim learn`` when it evaluates; ``xsim
run --functional --images N`` runs image by image, keeping every layer's output to compare):

* the wall time per image (median of ``--repeats``, of ``--batch-repeats`` for the batch), split
  into time inside ``xsim.kernels.crossbar_mvm_packed`` and the rest (quantisation, im2col,
  tier-2/dequantisation, digital layers);
* the wall time per image of a float32 NumPy forward pass of the same network on the same images,
  interleaved with the crossbar runs, and the median ratio of the pairs;
* the process's peak resident memory (``ru_maxrss``, which includes numba's allocations);
* the logits' relative error and top-1 agreement against the float64 reference;
* the host (CPU model) and the kernels' vector width;
* how many of the network's crossbar columns cannot clip (their largest possible column sums fit
  the ADC: ``kernels/lossless.py``), which ``crossbar_mvm_packed`` computes as an exact integer
  product on BLAS, and one image with every column through the bit-sliced kernels instead
  (``shortcut=False``), interleaved with the default: the same logits, bit for bit;
* with programming error and device variation on (``cell.nonideal``: the arch's one-shot
  ``row_parallel`` programming error, ``variation.sigma`` of ``--variation``, 0.05), the setup
  time (drawing every cell's deviation), the wall time of one image (median of ``--repeats``,
  interleaved with the ideal model), its ratio to the ideal image, and the top-1 agreement and
  relative error of its logits against the ideal crossbar model's.

Run: ``.venv/bin/python bench/bench_resnet50.py [--encoding differential] [--repeats 3]``.
It prints figures and never fails on time.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from xsim.config import build_network, load_arch, load_workload
from xsim.functional import CrossbarNetwork, forward_float, synthetic_inputs, synthetic_weights
from xsim.functional import network as functional_network
from xsim.functional.nonideal import DeviceModel
from xsim.kernels import _target, vector_width
from xsim.mapping import map_network

ROOT = Path(__file__).resolve().parent.parent


class KernelTimer:
    """Wraps the kernel entry point the functional model calls, summing its wall time."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.shortcut = True
        self._inner = functional_network.kernels.crossbar_mvm_packed

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._inner(*args, shortcut=self.shortcut, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoding", choices=("offset", "differential"), default=None,
                        help="crossbar encoding (default: the arch file's, offset)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument("--batch", type=int, default=16, help="images of the batched run")
    parser.add_argument("--batch-repeats", type=int, default=1, help="timed batched runs")
    parser.add_argument("--variation", type=float, default=0.05,
                        help="cell.nonideal.variation.sigma of the non-ideal run")
    args = parser.parse_args()

    overrides = {"crossbar.encoding": args.encoding} if args.encoding else None
    arch = load_arch(ROOT / "arch" / "isaac128.yaml", overrides)
    workload = load_workload(ROOT / "workloads" / "resnet50_mta.json")
    network = build_network(workload)
    mapping = map_network(arch, network, weight_bits=workload.weight_bits(arch.precision.weight_bits),
                          input_bits=workload.input_bits(arch.precision.input_bits))
    weights = synthetic_weights(network, workload.model.weights.seed)

    start = time.perf_counter()
    model = CrossbarNetwork(mapping, weights, synthetic_inputs(network, 2, workload.seed + 1))
    setup_s = time.perf_counter() - start
    print(f"ResNet-50, 3x224x224 images, {mapping.weight_bits}-bit weights/inputs, "
          f"{arch.crossbar.rows}x{arch.crossbar.columns} crossbars, {arch.cell.bits}-bit cells, "
          f"{arch.dac_bits}-bit DAC, {arch.adc_bits}-bit ADC (clip), "
          f"{arch.crossbar.encoding} encoding; {mapping.crossbars} crossbars, {mapping.pe_count} PEs")
    print(f"host: {_target.host_cpu_model()}; kernels run {vector_width()}-bit code")
    print(f"setup (quantise, calibrate on 2 images, pack): {setup_s:.2f} s")
    code_max = (1 << arch.adc_bits) - 1
    packs = [p for prog in model.program(None).values() for p in prog.packed]
    lossless = sum(p.columns_for(code_max // ((1 << arch.dac_bits) - 1)).lossless.size for p in packs)
    print(f"crossbar columns that cannot clip (an exact product on BLAS): {lossless:,} of "
          f"{sum(p.n for p in packs):,}")
    timer = KernelTimer()
    functional_network.kernels.crossbar_mvm_packed = timer
    try:
        model.run(synthetic_inputs(network, 1, workload.seed))  # warm-up
        forward_float(network, weights, synthetic_inputs(network, 1, workload.seed),
                      dtype=np.float32)  # warm-up
        for batch, repeats in ((1, args.repeats), (args.batch, args.batch_repeats)):
            images = synthetic_inputs(network, batch, workload.seed)
            # Crossbar and float32 runs interleaved: the host may be shared.
            runs = []
            for _ in range(repeats):
                timer.seconds = 0.0
                start = time.perf_counter()
                logits = model.run(images)
                crossbar_s = time.perf_counter() - start
                kernel_s = timer.seconds
                start = time.perf_counter()
                forward_float(network, weights, images, dtype=np.float32)
                runs.append((crossbar_s, kernel_s, time.perf_counter() - start))
            per_image = statistics.median(r[0] for r in runs) / batch
            k = statistics.median(r[1] for r in runs) / batch
            fper = statistics.median(r[2] for r in runs) / batch
            ratio = statistics.median(r[0] / r[2] for r in runs)
            reference = forward_float(network, weights, images)
            rel, agree = compare(logits, reference)
            print(f"{batch:3d} image(s), median of {repeats}: bit-accurate {per_image:.3f} s/image "
                  f"(kernel {k:.3f} s, rest {per_image - k:.3f} s); float32 numpy {fper:.3f} "
                  f"s/image; crossbar/float32 {ratio:.2f}x; logits rel error {rel:.4f}, top-1 "
                  f"agreement {agree:.2f}")
        kernels_only(model, network, workload, timer, args.repeats)
    finally:
        functional_network.kernels.crossbar_mvm_packed = timer._inner
    nonideal_run(arch, mapping, weights, network, model, workload, args)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory (max RSS, whole run): {peak_gib:.2f} GiB")


def kernels_only(model, network, workload, timer, repeats) -> None:
    """One image with every column through the bit-sliced kernels, against the default."""
    image = synthetic_inputs(network, 1, workload.seed)
    runs = []
    for _ in range(repeats):
        out = []
        for shortcut in (True, False):
            timer.shortcut, timer.seconds = shortcut, 0.0
            start = time.perf_counter()
            logits = model.run(image)
            out.append((time.perf_counter() - start, timer.seconds, logits))
        runs.append(out)
    timer.shortcut = True
    same = all(np.array_equal(a[2], b[2]) for a, b in runs)
    t_default = statistics.median(a[0] for a, _ in runs)
    t_kernels = statistics.median(b[0] for _, b in runs)
    k_kernels = statistics.median(b[1] for _, b in runs)
    print(f"  1 image, every column through the bit-sliced kernels (shortcut=False), median of "
          f"{repeats}: {t_kernels:.3f} s/image (kernel {k_kernels:.3f} s); the default "
          f"{t_default:.3f} s is {statistics.median(b[0] / a[0] for a, b in runs):.2f}x faster; "
          f"logits {'bit for bit the same' if same else 'DIFFER'}")


def compare(logits, reference) -> tuple[float, float]:
    """Relative error and top-1 agreement of ``logits`` against ``reference``."""
    rel = float(np.linalg.norm(logits - reference) / np.linalg.norm(reference))
    return rel, float(np.mean(np.argmax(logits, axis=1) == np.argmax(reference, axis=1)))


def nonideal_run(arch, mapping, weights, network, ideal, workload, args) -> None:
    """One image with programming error and variation on, against the ideal crossbar model."""
    overrides = {"cell.nonideal.programming.enabled": True,
                 "cell.nonideal.variation.sigma": args.variation}
    if args.encoding:
        overrides["crossbar.encoding"] = args.encoding
    device = DeviceModel.from_arch(load_arch(ROOT / "arch" / "isaac128.yaml", overrides), workload.seed)
    start = time.perf_counter()
    model = CrossbarNetwork(mapping, weights, synthetic_inputs(network, 2, workload.seed + 1),
                            device=device)
    setup_s = time.perf_counter() - start
    image = synthetic_inputs(network, 1, workload.seed)
    model.run(image)  # warm-up
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ideal_logits = ideal.run(image)
        t_ideal = time.perf_counter() - start
        start = time.perf_counter()
        logits = model.run(image)
        runs.append((t_ideal, time.perf_counter() - start))
    t_ni = statistics.median(t for _, t in runs)
    ratio = statistics.median(n / i for i, n in runs)
    rel, agree = compare(logits, ideal_logits)
    print(f"programming error ({arch.cell.write.scheme}) + variation sigma {args.variation}: setup "
          f"{setup_s:.2f} s (draw and pack every cell); 1 image, median of {args.repeats}: "
          f"{t_ni:.3f} s/image, {ratio:.1f}x the ideal image; logits against the ideal crossbar "
          f"model: rel error {rel:.4f}, top-1 agreement {agree:.2f}")


if __name__ == "__main__":
    main()
