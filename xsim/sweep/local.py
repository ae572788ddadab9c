"""Sweep points on a pool of local worker processes."""

from __future__ import annotations

import multiprocessing
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from xsim.sweep.point import failed, warm_kernels
from xsim.sweep.spec import Point


def run_points(todo: list[tuple[Point, str]], compute: Callable[[Point], dict], workers: int,
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
        pool = ProcessPoolExecutor(max_workers=workers, initializer=warm_kernels,
                                   mp_context=multiprocessing.get_context("spawn"))
        try:
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
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM, the consumer gone): the workers must not outlive
            # the sweep, finishing points nobody will read.
            _kill(pool)
            raise
        pool.shutdown(wait=True)
        if len(lost) > 1:
            alone.extend((point, key) for point, key, _ in lost)
        elif lost:
            point, key, error = lost[0]
            tries[key] += 1
            if tries[key] > retries:
                yield key, failed(error, tries[key])
            else:
                alone.append((point, key))


def _kill(pool: ProcessPoolExecutor) -> None:
    """Terminate every worker of ``pool`` now and drop its queued points."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
