"""Sweep points on a Dask cluster (the optional ``dask`` extra; :mod:`xsim.sweep.run` imports this
only when a scheduler address is given).

Every point is submitted to the scheduler as one task whose key is the point's hash, so a task
lost with its worker is recomputed by the scheduler on another worker and a point that raises is
retried ``retries`` times. A plugin loads the numba kernels once per worker process as it joins,
before it takes points. Results come back in completion order; :func:`xsim.sweep.run_sweep`
caches each and puts them in grid order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from distributed import Client, as_completed
from distributed.diagnostics.plugin import WorkerPlugin

from xsim.sweep.point import failed, warm_kernels
from xsim.sweep.spec import Point, SchedulerError


class KernelWarmup(WorkerPlugin):
    """Loads the sweep's kernels in each worker process, on the worker's executor so that the
    worker keeps answering the scheduler while a cold numba cache compiles."""

    name = "xsim-kernels"

    async def setup(self, worker) -> None:
        await asyncio.get_running_loop().run_in_executor(None, warm_kernels)


def connect(address: str) -> Client:
    """A client of the scheduler at ``address``, with the kernel warm-up registered."""
    try:
        client = Client(address, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SchedulerError(None, "--scheduler", f"cannot reach the Dask scheduler at {address}: "
                             f"{exc}") from None
    client.register_plugin(KernelWarmup())
    return client


def run_points(todo: list[tuple[Point, str]], address: str, *, compute: Callable[[Point], dict],
               retries: int) -> Iterator[tuple[str, dict]]:
    """Yield ``(key, result)`` as the points finish on the cluster behind ``address``."""
    with connect(address) as client:
        futures = {client.submit(compute, point, key=f"xsim-point-{key}", retries=retries): key
                   for point, key in todo}
        for future in as_completed(futures, loop=client.loop):
            key = futures[future]
            if future.status == "finished":
                result = future.result()
            elif future.status == "error":
                result = failed(future.exception(), retries + 1)
            else:
                raise SchedulerError(None, "--scheduler", f"lost the Dask scheduler at {address} "
                                     "(finished points are cached; run the sweep again to resume)")
            future.release()
            yield key, result
