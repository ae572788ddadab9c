"""Sweep throughput: points per second on local processes and through a Dask LocalCluster with
the same number of worker processes (one thread each), in the same run, on the same points.

Run from the repository root: ``python bench/bench_sweep.py [--workers N]`` (default: all
cores; needs the dask extra, ``pip install -e '.[dask]'``). The points are 48 variations of the
LeNet-5 scenario, each a few tenths of a second, computed afresh in a temporary folder for each
backend. Each figure is the wall time of ``run_sweep``, so it includes loading the kernels in
each worker process; the cluster's start-up is timed apart.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import yaml

from xsim.sweep import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parent.parent


def _points(folder: Path):
    grid = {"arch": [str(ROOT / "arch" / f"isaac{n}.yaml") for n in (64, 128, 256, 512)],
            "arch.components.adc.bits": [6, 7, 8, 9],
            "workload.tasks.1.tier1.pe_budget": [0.1, 0.25, 0.5]}
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump({"name": "bench", "arch": grid["arch"][1],
                                    "workload": str(ROOT / "workloads" / "lenet5_mta.json"),
                                    "grid": grid}))
    return load_sweep(path)


def main() -> None:
    try:
        from distributed import LocalCluster
    except ImportError:
        raise SystemExit("bench_sweep needs the dask extra: pip install -e '.[dask]'") from None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    workers = parser.parse_args().workers
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec, points = _points(folder)
        t0 = time.perf_counter()
        local, _ = run_sweep(spec, points, folder / "local", workers=workers)
        local_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None,
                          silence_logs=logging.CRITICAL) as cluster:
            start_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            dask, _ = run_sweep(spec, points, folder / "dask", scheduler=cluster.scheduler_address)
            dask_s = time.perf_counter() - t0
    if dask != local:
        raise SystemExit("the LocalCluster's table differs from the local one")
    n = len(points)
    print(f"{n} points of the LeNet-5 scenario, {workers} worker processes")
    print(f"local processes:   {n / local_s:7.2f} points/s  ({local_s:6.2f} s)")
    print(f"Dask LocalCluster: {n / dask_s:7.2f} points/s  ({dask_s:6.2f} s; "
          f"cluster start-up {start_s:.2f} s apart)")


if __name__ == "__main__":
    main()
