"""Design-space sweeps: a grid of arch/workload variations, run in parallel, resumable.

A sweep file (YAML) names a base arch and workload and a ``grid`` of dimensions; the points are
the cartesian product of the dimensions' values, in file order::

    name: crossbar_size
    arch: ../arch/isaac128.yaml          # paths resolve beside the sweep file
    workload: ../workloads/resnet50_mta.json
    grid:
      arch: [../arch/isaac64.yaml, ../arch/isaac128.yaml]   # whole files
      arch.pe.adc.bits: [7, 8]                              # arch overrides (dotted keys)
      workload.tasks.1.tier1.pe_budget: [0.05, 0.1]         # workload overrides (list indices)

Each point is a pure function of (arch file, workload file, overrides): its result is keyed by a
hash of the files' contents and the overrides, and cached as ``points/<hash>.json`` in the output
folder, written atomically. A second run reuses every finished point and never a half-written
one (an interrupted write leaves only a ``.part`` file, which is ignored). Points run in a pool of
local processes (all cores by default); the results are gathered into ``sweep.csv`` (one row per
point, strategy and, for inference, component) and plots against the first grid dimension.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from xsim.config.arch import Frozen
from xsim.config.errors import ConfigError
from xsim.config.loader import build, read_document


class SweepSpec(Frozen):
    name: str
    arch: str
    workload: str
    grid: dict[str, list[Any]] = Field(min_length=1)
    source: str | None = Field(default=None, exclude=True)


@dataclass(frozen=True)
class Point:
    """One point of a sweep: the files and overrides it runs, and its grid coordinates."""

    arch: str
    workload: str
    arch_overrides: tuple[tuple[str, Any], ...]
    workload_overrides: tuple[tuple[str, Any], ...]
    coords: tuple[tuple[str, Any], ...]

    def key(self) -> str:
        """Hash of everything the result depends on: file contents, overrides, xsim's version."""
        from xsim import __version__

        digest = hashlib.sha256()
        for path in (self.arch, self.workload):
            digest.update(Path(path).read_bytes())
        digest.update(json.dumps([self.arch_overrides, self.workload_overrides, __version__],
                                 sort_keys=True, default=str).encode())
        return digest.hexdigest()[:20]


def load_sweep(path: str | Path) -> tuple[SweepSpec, list[Point]]:
    """Read a sweep file and expand its grid into points (validated: files exist, keys known)."""
    spec = build(SweepSpec, read_document(path), str(path))
    base = Path(path).resolve().parent
    arch = str((base / spec.arch).resolve())
    workload = str((base / spec.workload).resolve())
    dims = list(spec.grid.items())
    for name, values in dims:
        if not values:
            raise ConfigError(str(path), f"grid.{name}", "a grid dimension needs at least one value")
        if name not in ("arch", "workload") and not name.startswith(("arch.", "workload.")):
            raise ConfigError(str(path), f"grid.{name}", "expected 'arch', 'workload', "
                              "'arch.<key>' or 'workload.<key>'")
    points = []
    for combo in itertools.product(*(values for _, values in dims)):
        a, w, ao, wo = arch, workload, [], []
        for (name, _), value in zip(dims, combo):
            if name == "arch":
                a = str((base / str(value)).resolve())
            elif name == "workload":
                w = str((base / str(value)).resolve())
            elif name.startswith("arch."):
                ao.append((name[len("arch."):], value))
            else:
                wo.append((name[len("workload."):], value))
        for f, key in ((a, "arch"), (w, "workload")):
            if not Path(f).is_file():
                raise ConfigError(str(path), key, f"no such file: {f}")
        coords = tuple((name, value) for (name, _), value in zip(dims, combo))
        points.append(Point(a, w, tuple(ao), tuple(wo), coords))
    return spec, points


def run_point(point: Point) -> dict:
    """Simulate one point and return its rows (plain JSON data)."""
    from xsim.api import simulate
    from xsim.config import load_arch, load_workload

    arch = load_arch(point.arch, dict(point.arch_overrides))
    workload = load_workload(point.workload, dict(point.workload_overrides))
    result = simulate(arch, workload)
    coords = {name: value for name, value in point.coords}
    base = {**coords, "arch_name": arch.name, "crossbar_rows": arch.crossbar.rows,
            "adc_bits": arch.pe.adc.bits}
    inference = result.summary["inference"]
    rows = []
    for row in result.tables["components"]:
        rows.append({**base, "kind": "inference_component", "strategy": "", "item": row["component"],
                     "value": row["energy_per_image_pj"] * 1e-6, "unit": "uJ/image"})
    for row in result.tables["strategy_totals"]:
        for item in ("schedule_switch_energy_uj", "max_writes", "lifetime_periods", "extra_area_mm2"):
            rows.append({**base, "kind": "strategy", "strategy": row["strategy"], "item": item,
                         "value": row[item], "unit": item.rsplit("_", 1)[-1]})
    for row in result.tables["strategies"]:
        if row["switches_into"]:
            for item in ("switch_energy_uj", "switch_latency_us", "cells_written"):
                rows.append({**base, "kind": "strategy_task", "strategy": row["strategy"],
                             "task": row["task"], "item": item, "value": row[item],
                             "unit": item.rsplit("_", 1)[-1]})
    rows.append({**base, "kind": "inference", "strategy": "", "item": "latency_us",
                 "value": inference["latency_us"], "unit": "us"})
    rows.append({**base, "kind": "inference", "strategy": "", "item": "energy_per_image_uj",
                 "value": inference["energy_per_image_uj"], "unit": "uJ"})
    return {"status": "ok", "rows": rows}


def _cached(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("status") == "ok" else None


def run_sweep(spec: SweepSpec, points: list[Point], out: str | Path, *, workers: int | None = None,
              progress: Callable[[Iterable, str], Iterable] | None = None) -> tuple[list[dict], dict]:
    """Run every point not already cached under ``out/points``; return (rows, counts)."""
    from xsim.report.files import write_json

    out = Path(out)
    cache = out / "points"
    keys = [p.key() for p in points]
    results: dict[str, dict] = {}
    todo = []
    for point, key in zip(points, keys):
        hit = _cached(cache / f"{key}.json")
        if hit is not None:
            results[key] = hit
        elif key not in (k for _, k in todo):
            todo.append((point, key))
    workers = workers or os.cpu_count() or 1
    if todo:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            futures = {pool.submit(run_point, point): key for point, key in todo}
            done = as_completed(futures)
            for future in (progress(done, "sweep points") if progress else done):
                key = futures[future]
                results[key] = future.result()
                write_json(cache / f"{key}.json", results[key])
    rows = [row for key in dict.fromkeys(keys) for row in results[key]["rows"]]
    return rows, {"points": len(points), "computed": len(todo), "reused": len(points) - len(todo)}


def write_sweep(spec: SweepSpec, rows: list[dict], out: str | Path) -> list[Path]:
    """``sweep.csv`` and the sweep plots, against the first grid dimension."""
    from xsim.report.files import write_csv
    from xsim.report.sweep_plots import write_sweep_plots

    out = Path(out)
    written = [write_csv(out / "sweep.csv", rows)]
    written += write_sweep_plots(rows, out, x=next(iter(spec.grid)), title=spec.name)
    return written
