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

JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
PARALLEL_JIT = {**JIT, "parallel": True}
INLINE = {"inline": "always"}


def threads_may_share_kernels() -> bool:
    """Whether two Python threads may run parallel kernels at the same time: numba's ``omp`` and
    ``tbb`` threading layers allow it, its ``workqueue`` layer aborts the process on concurrent
    use. False until a parallel kernel has run in this process (numba picks the layer then)."""
    import numba

    try:
        return numba.threading_layer() in ("omp", "tbb")
    except ValueError:  # no parallel kernel has run yet
        return False
