"""Numba settings shared by every xsim kernel (the one place that holds them).

Every kernel is compiled ahead of use with ``cache=True`` so the JIT cost is paid
once per machine; ``error_model="numpy"`` removes Python's division checks from
the hot loops; ``nogil`` lets callers run kernels from threads.  Parallel kernels
split the batch with ``prange``.
"""

JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
PARALLEL_JIT = {**JIT, "parallel": True}
