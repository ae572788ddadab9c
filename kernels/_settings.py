"""Numba settings shared by every xsim kernel (the one place that holds them).

Every kernel is compiled ahead of use with ``cache=True`` so the JIT cost is paid
once per machine; ``error_model="numpy"`` removes Python's division checks from
the hot loops; ``nogil`` lets callers run kernels from threads.  Parallel kernels
split the batch with ``prange``.  Helpers of the hot loops are inlined in numba's IR
(``INLINE``), so their loops are vectorised inside the kernel's parallel body, with its
vector width (``_target.py``).
"""

JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
PARALLEL_JIT = {**JIT, "parallel": True}
INLINE = {"inline": "always"}
