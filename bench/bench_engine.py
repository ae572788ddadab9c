"""Engine speed and pipeline balance: pipelined ResNet-50 images on ISAAC-CE (8-bit weights and
inputs, offset encoding), the bundled scenario's mapping with and without replication.

Prints the host (CPU model, LLVM CPU name) first: the engine is scalar Python and compiled
booking, so the CPU's clock and caches matter, not its vector width. The booking kernels are
loaded from the numba cache before anything is timed (the load is printed on its own: a process
pays it once, as the first call of any numba kernel).

For each mapping prints the wall time of ``simulate_inference`` (building the plan and the chip
model included; loading the files and mapping excluded), the simpy events it scheduled and the
events per second, and the simulated figures: latency, the steady-state interval and images/s,
and the bound the crossbars allow for the PEs used (the slowest layer replica's MVM time per image,
:func:`xsim.engine.plan.crossbar_interval_ps`) with the share of it reached, so a change in the
model shows up beside the timing, and the three busiest shared units (a tile's eDRAM port or
digital unit, a router, a link) as their busy time per image over that bound: a unit near 100 %
holds the pipeline below the crossbars' pace. Both mappings keep the resident heads' PEs free.
Run: ``.venv/bin/python bench/bench_engine.py [images]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from xsim.config.loader import load_arch, load_workload
from xsim.deployment import Deployment
from xsim.engine import simulate_inference
from xsim.engine.plan import crossbar_interval_ps
from xsim.kernels import _target, calendar

ROOT = Path(__file__).resolve().parent.parent


def _run(deployment: Deployment, label: str, images: int) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    result = simulate_inference(deployment, images=images, mode="coarse", record_timeline=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    bound = crossbar_interval_ps(deployment)
    mapping = deployment.mapping
    print(f"-- {label}: {mapping.pe_count} PEs + {deployment.resident_head_pes} for heads "
          f"of {deployment.arch.pes_per_chip}")
    print(f"wall time            {wall:8.2f} s  (cpu {cpu:.2f} s: other load on the cores shows here)")
    print(f"simpy events         {result.events:8d}  ({result.events / wall / 1e6:.3f} M events/s)")
    print(f"latency (1st image)  {result.latency_ps / 1e9:8.3f} ms")
    print(f"steady-state interval{result.interval_ps / 1e9:8.3f} ms "
          f"({result.throughput_per_s:.1f} images/s, {result.interval_source})")
    print(f"crossbar bound       {bound / 1e9:8.3f} ms ({1e12 / bound:.1f} images/s; "
          f"{bound / result.interval_ps:.1%} of it reached)")
    print(f"energy per image     {result.energy_per_image_pj / 1e6:8.1f} uJ")
    print(f"average power        {result.average_power_mw / 1e3:8.2f} W")
    busiest = sorted(result.server_busy_ps.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    print("busiest shared units " + ", ".join(
        f"{name} {busy / images / bound:.1%}" for name, busy in busiest) + " of the bound per image")


def main(images: int = 32) -> None:
    print(f"host: {_target.host_cpu_model()}; LLVM CPU {_target.host_cpu_name()}")
    start = time.perf_counter()
    calendar.load()
    print(f"booking kernels loaded in {time.perf_counter() - start:.2f} s (numba cache; not in "
          "the timings below)")
    arch = load_arch(ROOT / "arch" / "isaac128.yaml")
    workload = load_workload(ROOT / "workloads" / "resnet50_mta.json")
    print(f"resnet50 on {arch.name}, {workload.precision.weight_bits}-bit weights/inputs, "
          f"{arch.crossbar.encoding} encoding, {images} pipelined images (coarse)")
    plain = workload.model_copy(update={"mapping": workload.mapping.model_copy(
        update={"replication": False})})
    for label, wl in (("replication off", plain), ("replication auto", workload)):
        _run(Deployment.build(arch, wl), label, images)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 32)
