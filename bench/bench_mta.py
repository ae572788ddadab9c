"""Wall time of the bundled multi-task scenario (ResNet-50, six tasks, five strategies, the
bundled schedule) without and with bit-accurate inference, and cells written per second.

Run from the repository root: ``python bench/bench_mta.py``. JIT compilation is kept out of the
figures by a warm-up run of the small LeNet-5 scenario (with --functional) first; the numba cache
makes later processes skip it.
"""

from __future__ import annotations

import time
from pathlib import Path

from xsim.api import simulate

ROOT = Path(__file__).resolve().parent.parent
ARCH = ROOT / "arch" / "isaac128.yaml"
WORKLOAD = ROOT / "workloads" / "resnet50_mta.json"


def main() -> None:
    simulate(ARCH, ROOT / "workloads" / "lenet5_mta.json", functional=True)
    t0 = time.perf_counter()
    result = simulate(ARCH, WORKLOAD)
    plain = time.perf_counter() - t0
    cells = sum(row["cells_written"] for row in result.tables["switches"])
    t0 = time.perf_counter()
    simulate(ARCH, WORKLOAD, functional=True, images=1)
    full = time.perf_counter() - t0
    print(f"scenario: {result.workload.name} on {result.arch.name}, "
          f"{len(result.workload.tasks)} tasks, {len(result.workload.strategies)} strategies, "
          f"{result.summary['multi_task']['switches']} switches")
    print(f"without functional inference: {plain:8.2f} s   (target <= 60 s)")
    print(f"with functional inference:    {full:8.2f} s   (target <= 90 s, as `make run`)")
    print(f"distinct switches costed: {len(result.tables['switches'])}, cells written in them: "
          f"{cells:,}, i.e. {cells / plain / 1e6:.2f} M cells written per second of wall time")


if __name__ == "__main__":
    main()
