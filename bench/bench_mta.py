"""Wall time of the bundled multi-task scenario (ResNet-50, six tasks, five strategies, the
bundled schedule) without and with bit-accurate inference, and cells written per second; then the
switches' costing alone (:func:`xsim.mta.scenario.run_scenario` with the engine's per-image
figures stubbed out) and the part of it spent in the write-cost kernel.

Run from the repository root: ``python bench/bench_mta.py``. JIT compilation is kept out of the
figures by a warm-up run of the small LeNet-5 scenario (with --functional) first; the numba cache
makes later processes skip it. Freed memory stays in the process, as the ``xsim`` command has it
(:func:`xsim.processes.keep_freed_memory`).
"""

from __future__ import annotations

import time
from pathlib import Path

import xsim.mta.scenario as scenario
from xsim.api import model_weights, prepare, simulate
from xsim.kernels import _target, vector_width
from xsim.mta.tasks import build_tasks
from xsim.processes import keep_freed_memory

ROOT = Path(__file__).resolve().parent.parent
ARCH = ROOT / "arch" / "isaac128.yaml"
WORKLOAD = ROOT / "workloads" / "resnet50_mta.json"


def main() -> None:
    keep_freed_memory()
    print(f"host: {_target.host_cpu_model()}; LLVM CPU {_target.host_cpu_name()}; kernels run "
          f"{vector_width()}-bit code")
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
    print(f"without functional inference: {plain:8.2f} s   (target <= 10 s)")
    print(f"with functional inference:    {full:8.2f} s   (target <= 20 s, as `make run`)")
    print(f"distinct switches costed: {len(result.tables['switches'])}, cells written in them: "
          f"{cells:,}, i.e. {cells / plain / 1e6:.2f} M cells written per second of wall time")
    costing, kernel = switch_costing()
    print(f"switch costing alone:         {costing:8.2f} s, of which the write-cost kernel "
          f"{kernel:.2f} s")


def switch_costing() -> tuple[float, float]:
    """Wall seconds of run_scenario on the bundled scenario, inference stubbed, and of its calls
    of the write-cost kernel."""
    dep = prepare(ARCH, WORKLOAD)
    tasks = build_tasks(dep, model_weights(dep.workload, dep.network))
    kernel = [0.0]
    costs = scenario.write_costs

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return costs(*args, **kwargs)
        finally:
            kernel[0] += time.perf_counter() - t0

    scenario.write_costs = timed
    try:
        t0 = time.perf_counter()
        scenario.run_scenario(dep, tasks, lambda scaled: {"energy_pj": 0.0, "latency_ps": 0,
                                                          "tier2_pj": 0.0, "components": {}})
        return time.perf_counter() - t0, kernel[0]
    finally:
        scenario.write_costs = costs


if __name__ == "__main__":
    main()
