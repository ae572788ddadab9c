"""Independent engine runs of one deployment, in worker processes where the host has cores.

A scenario runs the engine many times on one deployment: the pipelined batch of backbone images,
one image per distinct set of tier-2-scaled PEs, and every strategy's first switch. The engine is
pure Python (simpy), so each run holds one core; the runs share nothing but the deployment, so
:class:`EngineRuns` forks worker processes (:mod:`xsim.processes`, which says where that is
done) that inherit the deployment (its datapath plan built once, before the fork) and sends them
only each run's small arguments. The main process goes on with the work that needs no engine
result (the write model, bit-accurate inference) meanwhile, ahead of the workers for the cores
(:data:`WORKER_NICENESS`).

Every run is a deterministic function of the deployment and its arguments, so where it ran
changes no figure: the serial path (``workers=1``) and the parallel one give identical results,
which the tests check. Serial runs go in the calling process when their result is asked for, in
the order they were submitted.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from xsim.deployment import Deployment
from xsim.processes import ForkPool, workers_for

_DEPLOYMENT: Deployment | None = None
"""The deployment a worker process serves (inherited through the fork)."""


WORKER_NICENESS = 10
"""How much lower the workers' CPU priority is than the main process's. Their results are read
last (the report), while the main process's work (the write model, bit-accurate inference) is
on the way to it; where the cores are all busy, the main process goes first. On a host with
idle cores it changes nothing, and no figure depends on it. ``make run`` on 2 cores: 20.0 and
22.1 s without, 18.5 and 17.3 s with (alternated runs)."""


def _init(deployment: Deployment) -> None:
    global _DEPLOYMENT
    _DEPLOYMENT = deployment
    with contextlib.suppress(OSError):  # not permitted here: the main process's priority
        os.nice(WORKER_NICENESS)


def _call(fn: Callable[..., Any], args: tuple) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(_DEPLOYMENT, *args), time.perf_counter() - start


class _Deferred:
    """A run of the serial path: it runs when its result is first asked for."""

    def __init__(self, runs: EngineRuns, fn: Callable[..., Any], args: tuple) -> None:
        self._runs, self._fn, self._args = runs, fn, args
        self._done = False
        self._value: Any = None

    def result(self) -> Any:
        if not self._done:
            start = time.perf_counter()
            self._value = self._fn(self._runs.deployment, *self._args)
            self._runs.engine_s += time.perf_counter() - start
            self._done = True
        return self._value


class _Remote:
    def __init__(self, runs: EngineRuns, future: Future) -> None:
        self._runs, self._future = runs, future
        self._done = False
        self._value: Any = None

    def result(self) -> Any:
        if not self._done:
            self._value, seconds = self._future.result()
            self._runs.engine_s += seconds
            self._done = True
        return self._value


class EngineRuns:
    """Submit ``fn(deployment, *args)`` runs; each returns a handle whose ``result()`` waits.

    ``fn`` must be a module-level function (a worker finds it by name); its arguments and result
    cross between processes by pickling. Use as a context manager: leaving it stops the workers.
    ``engine_s`` sums the seconds the runs took where they ran (as the results are read)."""

    def __init__(self, deployment: Deployment, workers: int | None = None,
                 prepare: Callable[[Deployment], Any] | None = None) -> None:
        self.deployment = deployment
        self.workers = workers_for(workers)
        self.engine_s = 0.0
        self._pool: ForkPool | None = None
        if self.workers > 1:
            if prepare is not None:
                prepare(deployment)  # built once here, inherited by every worker
            self._pool = ForkPool(self.workers, _init, (deployment,))

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Deferred | _Remote:
        if self._pool is None:
            return _Deferred(self, fn, args)
        return _Remote(self, self._pool.submit(_call, fn, args))

    def close(self, abort: bool = False) -> None:
        if self._pool is not None:
            self._pool.close(abort)
            self._pool = None

    def __enter__(self) -> EngineRuns:
        return self

    def __exit__(self, kind: type | None, *exc: object) -> None:
        self.close(abort=kind is not None)
