"""Numba settings shared by every xsim kernel (the one place that holds them).

Every kernel is compiled ahead of use with ``cache=True`` so the JIT cost is paid
once per machine; ``error_model="numpy"`` removes Python's division checks from
the hot loops; ``nogil`` lets callers run kernels from threads.  Parallel kernels
split the batch with ``prange``.  Helpers of the hot loops are inlined in numba's IR
(``INLINE``), so their loops are vectorised inside the kernel's parallel body, with its
vector width (``_target.py``).

Idle kernel threads sleep instead of spinning: ``OMP_WAIT_POLICY=PASSIVE`` unless the user set
it, read by the OpenMP runtime when numba first starts its threads. ``xsim run`` keeps the
engine's worker processes busy on the same cores as the kernels' threads, and a thread spinning
at a barrier takes a core from a worker.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402  (after the OpenMP setting)

JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
PARALLEL_JIT = {**JIT, "parallel": True}
INLINE = {"inline": "always"}


def threads_may_share_kernels() -> bool:
    """Whether two Python threads may run parallel kernels at the same time: numba's ``omp`` and
    ``tbb`` threading layers allow it, its ``workqueue`` layer aborts the process on concurrent
    use. Numba picks the layer at the first parallel launch, so this makes one if none was made."""
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        _start_threads(2)
        layer = numba.threading_layer()
    return layer in ("omp", "tbb")


@numba.njit(**PARALLEL_JIT)
def _start_threads(n):
    total = 0
    for i in numba.prange(n):
        total += i
    return total
