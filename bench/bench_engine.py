"""Engine speed: 100 pipelined ResNet-50 images on ISAAC-CE (8-bit weights and inputs).

Prints the wall time of ``simulate_inference`` (building the chip model included; loading the files
and mapping excluded), the simpy events it scheduled and the events per second, and the simulated
figures, so a change in the model shows up beside the timing.
Run: ``.venv/bin/python bench/bench_engine.py [images]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from xsim.config.loader import build_network, load_arch, load_workload
from xsim.deployment import Deployment
from xsim.energy import hardware
from xsim.engine import simulate_inference
from xsim.mapping import map_network

ROOT = Path(__file__).resolve().parent.parent


def main(images: int = 100) -> None:
    arch = load_arch(ROOT / "arch" / "isaac128.yaml")
    workload = load_workload(ROOT / "workloads" / "resnet50_mta.json")
    weight_bits, input_bits = workload.precision.weight_bits, workload.precision.input_bits
    mapping = map_network(arch, build_network(workload), weight_bits=weight_bits,
                          input_bits=input_bits, replication=workload.mapping.replication)
    hw = hardware(arch, weight_bits, input_bits)
    start, cpu = time.perf_counter(), time.process_time()
    result = simulate_inference(Deployment.of_mapping(mapping, hw), images=images, mode="coarse")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"resnet50 on {arch.name}, {weight_bits}-bit weights/inputs, {images} pipelined images (coarse)")
    print(f"wall time            {wall:8.2f} s  (cpu {cpu:.2f} s: other load on the cores shows here)")
    print(f"simpy events         {result.events:8d}  ({result.events / wall / 1e6:.3f} M events/s)")
    print(f"timeline records     {len(result.timeline):8d}")
    print(f"latency (1st image)  {result.latency_ps / 1e9:8.3f} ms")
    print(f"steady-state interval{result.interval_ps / 1e9:8.3f} ms "
          f"({result.throughput_per_s:.1f} images/s, bottleneck {result.bottleneck_layer})")
    print(f"energy per image     {result.energy_per_image_pj / 1e6:8.1f} uJ")
    print(f"average power        {result.average_power_mw / 1e3:8.2f} W")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
