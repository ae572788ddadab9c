"""A whole sweep: cached points reused, the others run on a back-end, rows in grid order."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from xsim.sweep.cache import load_cached, store
from xsim.sweep.point import compute_point
from xsim.sweep.spec import DEFAULT_RETRIES, Point, SchedulerError, SweepSpec


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
    if retries < 0:
        raise ValueError(f"retries must be at least 0, got {retries}")
    out = Path(out)
    cache = out / "points"
    keys = [p.key() for p in points]
    results: dict[str, dict] = {}
    rejected = 0
    todo: list[tuple[Point, str]] = []
    for point, key in zip(points, keys):
        hit, stale = load_cached(cache / f"{key}.json", key)
        rejected += stale and hit is None
        if hit is not None:
            results[key] = hit
        elif key not in results and all(k != key for _, k in todo):
            todo.append((point, key))
    if todo:
        if scheduler is not None:
            try:
                from xsim.sweep.dask_cluster import run_points
            except ImportError as exc:
                if exc.name not in ("dask", "distributed"):
                    raise
                raise SchedulerError(None, "--scheduler", "running on a Dask scheduler needs the "
                                     "dask extra: pip install 'xsim[dask]' (in a checkout: "
                                     "pip install -e '.[dask]')") from None
            stream = run_points(todo, scheduler, compute=compute, retries=retries)
        else:
            workers = workers or os.cpu_count() or 1
            from xsim.sweep.local import run_points as run_local

            stream = run_local(todo, compute, min(workers, len(todo)), retries)
        finished = _Stream(stream, len(todo))
        for key, result in (progress(finished, "sweep points") if progress else finished):
            results[key] = result
            store(cache / f"{key}.json", key, result)
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
                  "rejected_cache_files": rejected, "failed": n_failed}


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
