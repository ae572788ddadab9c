"""Design-space sweeps: a grid of arch/workload variations, run in parallel, resumable.

A sweep file (YAML) names a base arch and workload and a ``grid`` of dimensions; the points are
the cartesian product of the dimensions' values, in file order::

    name: crossbar_size
    arch: ../arch/isaac128.yaml          # paths resolve beside the sweep file
    workload: ../workloads/resnet50_mta.json
    grid:
      arch: [../arch/isaac64.yaml, ../arch/isaac128.yaml]   # whole files
      arch.components.adc.bits: [7, 8]                      # arch overrides (dotted keys)
      workload.tasks.1.tier1.pe_budget: [0.05, 0.1]         # workload overrides (list indices)
      workload.seed: [1, 2]                                 # the seed is a workload key too

Each point is a pure function of (arch document, workload document, overrides): the point carries
the parsed documents, so a worker on another machine needs no copy of the files, and its result
is keyed by a hash of the documents, the overrides and xsim's version. Results are cached as
``points/<hash>.json`` in the output folder, written atomically: a second run reuses every
finished point and never a half-written one (an interrupted write leaves only a ``.part`` file,
which is ignored).

Points run in a pool of local processes (all cores by default) or, given a Dask scheduler
address, on that cluster (:mod:`xsim.distributed`, an optional extra). Either way each worker
process loads the numba kernels once (:func:`warm_kernels`), not once per point. A point that
raises is retried up to ``retries`` times (a lost worker process counts as a try), except for an
input error (a :class:`~xsim.config.XsimInputError`, e.g. an override the model does not fit),
which the next try would repeat; a point that still fails becomes one ``kind="failed"`` row of
the table carrying its error, is never cached as finished, and the rest of the sweep completes.
The results are gathered in grid order, whatever order they finish in, into ``sweep.csv`` (one
row per point, strategy and, for inference, component) and plots against the first grid
dimension.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from xsim.config.arch import Frozen
from xsim.config.errors import ConfigError, XsimInputError
from xsim.config.loader import build, read_document

DEFAULT_RETRIES = 2


class SchedulerError(XsimInputError):
    """A ``--scheduler`` that cannot be used: Dask is not installed, or the address is unreachable."""


class SweepSpec(Frozen):
    name: str
    arch: str
    workload: str
    grid: dict[str, list[Any]] = Field(min_length=1)
    source: str | None = Field(default=None, exclude=True)


@dataclass(frozen=True)
class Point:
    """One point of a sweep: the documents and overrides it runs, and its grid coordinates.

    ``arch`` and ``workload`` are the files' paths, used in error messages and to resolve files
    that a workload names relative to itself; ``arch_doc`` and ``workload_doc`` are their parsed
    contents, which is what the point computes from.
    """

    arch: str
    workload: str
    arch_overrides: tuple[tuple[str, Any], ...]
    workload_overrides: tuple[tuple[str, Any], ...]
    coords: tuple[tuple[str, Any], ...]
    arch_doc: Mapping[str, Any] = field(repr=False, hash=False)
    workload_doc: Mapping[str, Any] = field(repr=False, hash=False)

    def key(self) -> str:
        """Hash of everything the result depends on: documents, overrides, xsim's version."""
        from xsim import __version__

        data = [self.arch_doc, self.workload_doc, self.arch_overrides, self.workload_overrides,
                __version__]
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def load_sweep(path: str | Path) -> tuple[SweepSpec, list[Point]]:
    """Read a sweep file and expand its grid into points (validated: files exist and parse,
    keys are known)."""
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
    documents: dict[str, Mapping[str, Any]] = {}
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
            if f not in documents:
                documents[f] = read_document(f)
        coords = tuple((name, value) for (name, _), value in zip(dims, combo))
        points.append(Point(a, w, tuple(ao), tuple(wo), coords, documents[a], documents[w]))
    return spec, points


def run_point(point: Point) -> dict:
    """Simulate one point and return its rows (plain JSON data, without the grid coordinates)."""
    from xsim.api import simulate
    from xsim.config import Arch, Workload
    from xsim.config.loader import deep_update
    from xsim.report.tables import sweep_rows

    arch_doc = deep_update(point.arch_doc, dict(point.arch_overrides), point.arch)
    workload_doc = deep_update(point.workload_doc, dict(point.workload_overrides), point.workload)
    arch = build(Arch, arch_doc, point.arch)
    workload = build(Workload, workload_doc, point.workload)
    return {"status": "ok", "rows": sweep_rows(simulate(arch, workload))}


# Kernel warm-up, once per worker process. Counted so that a result can show it happened once in
# the process that computed it and that the point itself compiled nothing.
_warmups = 0


def _kernel_dispatchers() -> list:
    """Every numba kernel loaded so far in this process."""
    import sys

    from numba.core.dispatcher import Dispatcher

    modules = [m for name, m in list(sys.modules.items()) if name.startswith("xsim.kernels.")]
    found = {id(obj): obj for m in modules for obj in vars(m).values() if isinstance(obj, Dispatcher)}
    return list(found.values())


def _compiled_signatures() -> int:
    return sum(len(d.signatures) for d in _kernel_dispatchers())


def warm_kernels() -> int:
    """Load (or, on a cold numba cache, compile) the kernels a sweep point uses, with the argument
    types a point passes, once per process; return how many times this process has done so."""
    global _warmups
    if _warmups:
        return _warmups
    import numpy as np

    import xsim.api  # noqa: F401  (the simulator's imports, also paid once per process)
    from xsim.kernels.writes import slice_levels, write_cost

    levels = np.zeros((2, 2), dtype=np.uint8)
    write_cost(levels, levels, rows=2, columns=2, compare=True, base_pulses=1,
               pulses_per_level=1.0, max_pulses=2, write_ps=1, verify_ps=1, compare_ps=1,
               parallel_columns=1)
    slice_levels(np.zeros((2, 2), dtype=np.int32), weight_bits=8, cell_bits=2, slices=4,
                 encoding="offset")
    _warmups += 1
    return _warmups


def compute_point(point: Point) -> dict:
    """What a worker runs for a point: :func:`run_point`, an input error as a failed result (the
    point is pure, so a retry would repeat it), and which process computed it. Any other exception
    propagates, for the backend to retry."""
    before = _compiled_signatures()
    try:
        result = run_point(point)
    except XsimInputError as exc:
        result = {"status": "failed", "error": str(exc), "attempts": 1}
    result["worker"] = {"pid": os.getpid(), "warmups": _warmups,
                        "compiled": _compiled_signatures() - before}
    return result


def failed(error: BaseException, attempts: int) -> dict:
    """The result of a point that raised on every one of its ``attempts``."""
    text = str(error).strip()
    return {"status": "failed", "error": f"{type(error).__name__}: {text}" if text
            else type(error).__name__, "attempts": attempts}


def _cached(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("status") == "ok" else None


def _run_local(todo: list[tuple[Point, str]], compute: Callable[[Point], dict], workers: int,
               retries: int) -> Iterator[tuple[str, dict]]:
    """Yield ``(key, result)`` as points finish on a pool of ``workers`` local processes.

    A worker process that dies breaks the whole pool and loses every point in flight, so at most
    ``workers`` points are submitted at a time and a lost point is charged a try only when it was
    alone in flight: points lost together are rerun one at a time, which finds a point that kills
    its worker and lets the others complete."""
    queue = deque(todo)
    alone: deque[tuple[Point, str]] = deque()
    tries: Counter[str] = Counter()
    while queue or alone:
        lost: list[tuple[Point, str, BaseException]] = []
        # Spawned, not forked: a process that has run numba's parallel kernels (OpenMP threads)
        # or torch cannot be forked safely; its children die at their first parallel region.
        with ProcessPoolExecutor(max_workers=workers, initializer=warm_kernels,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            running: dict = {}
            while True:
                if not lost and alone and not running:
                    point, key = alone.popleft()
                    running[pool.submit(compute, point)] = (point, key)
                while not lost and not alone and queue and len(running) < workers:
                    point, key = queue.popleft()
                    running[pool.submit(compute, point)] = (point, key)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    point, key = running.pop(future)
                    error = future.exception()
                    if error is None:
                        yield key, future.result()
                    elif isinstance(error, BrokenProcessPool):
                        lost.append((point, key, error))
                    else:
                        tries[key] += 1
                        if tries[key] > retries:
                            yield key, failed(error, tries[key])
                        else:
                            queue.append((point, key))
        if len(lost) > 1:
            alone.extend((point, key) for point, key, _ in lost)
        elif lost:
            point, key, error = lost[0]
            tries[key] += 1
            if tries[key] > retries:
                yield key, failed(error, tries[key])
            else:
                alone.append((point, key))


class _Stream:
    """Finished points as they arrive, with the number expected (for a progress bar's total)."""

    def __init__(self, items: Iterator, total: int) -> None:
        self._items, self._total = items, total

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> Iterator:
        return self._items


def run_sweep(spec: SweepSpec, points: list[Point], out: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, retries: int = DEFAULT_RETRIES,
              compute: Callable[[Point], dict] = compute_point,
              progress: Callable[[Iterable, str], Iterable] | None = None) -> tuple[list[dict], dict]:
    """Run every point not already cached under ``out/points``; return (rows, counts).

    ``scheduler`` (a Dask scheduler address such as ``tcp://host:8786``) runs the points on that
    cluster instead of ``workers`` local processes (default: all cores). ``compute`` is the
    picklable function a worker runs for a point (:func:`compute_point`). ``progress`` wraps the
    stream of finished points lazily: each point is cached as it arrives, so an interrupted
    sweep keeps what finished. Rows come in grid order, each prefixed with its point's grid
    coordinates; a failed point gives one ``kind="failed"`` row whose ``item`` is the error and
    whose ``value`` is the number of tries.
    """
    from xsim.report.files import write_json

    if retries < 0:
        raise ValueError(f"retries must be at least 0, got {retries}")
    out = Path(out)
    cache = out / "points"
    keys = [p.key() for p in points]
    results: dict[str, dict] = {}
    todo: list[tuple[Point, str]] = []
    for point, key in zip(points, keys):
        hit = _cached(cache / f"{key}.json")
        if hit is not None:
            results[key] = hit
        elif key not in results and all(k != key for _, k in todo):
            todo.append((point, key))
    if todo:
        if scheduler is not None:
            try:
                from xsim.distributed import run_points
            except ImportError as exc:
                if exc.name not in ("dask", "distributed"):
                    raise
                raise SchedulerError(None, "--scheduler", "running on a Dask scheduler needs the "
                                     "dask extra: pip install 'xsim[dask]' (in a checkout: "
                                     "pip install -e '.[dask]')") from None
            stream = run_points(todo, scheduler, compute=compute, retries=retries)
        else:
            workers = workers or os.cpu_count() or 1
            stream = _run_local(todo, compute, min(workers, len(todo)), retries)
        finished = _Stream(stream, len(todo))
        for key, result in (progress(finished, "sweep points") if progress else finished):
            results[key] = result
            write_json(cache / f"{key}.json", result)
    rows = []
    for point, key in zip(points, keys):
        result = results[key]
        if result["status"] == "ok":
            rows += [{**dict(point.coords), **row} for row in result["rows"]]
        else:
            rows.append({**dict(point.coords), "kind": "failed", "strategy": "",
                         "item": result["error"], "value": result["attempts"], "unit": "tries"})
    n_failed = sum(1 for key in keys if results[key]["status"] != "ok")
    return rows, {"points": len(points), "computed": len(todo), "reused": len(points) - len(todo),
                  "failed": n_failed}


def write_sweep(spec: SweepSpec, rows: list[dict], out: str | Path) -> list[Path]:
    """``sweep.csv`` and, from the points that finished, the sweep plots against the first grid
    dimension."""
    from xsim.report.files import write_csv
    from xsim.report.sweep_plots import write_sweep_plots

    out = Path(out)
    written = [write_csv(out / "sweep.csv", rows)]
    finished = [row for row in rows if row["kind"] != "failed"]
    if finished:
        written += write_sweep_plots(finished, out, x=next(iter(spec.grid)), title=spec.name)
    return written
