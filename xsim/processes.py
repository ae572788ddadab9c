"""Worker processes and threads for independent pieces of one run, where the host has cores.

Processes take pure-Python work (engine runs, plots); :func:`in_threads` takes work that runs
outside the GIL (numpy's generators, nogil kernels), such as drawing a network's layers.

One rule for all of them, here: work goes to forked workers only where that is safe and useful:
the ``fork`` start method (Linux), more than one usable core, and not inside a daemon process
(a sweep's worker, which may not have children). A forked worker inherits what the caller built
(a deployment, a result's tables) and receives only small arguments. Workers ignore Ctrl-C (the
main process handles it and stops them) and end at SIGTERM without unwinding (so does one signalled
before its initializer ran: the ``xsim`` command's inherited handler sees it is not in the main
process); a caller that fails stops them at once. Nothing a worker computes depends on which
process computes it, so the serial path gives the same bytes.

Forked workers must not run numba's parallel kernels: the main process may have started their
OpenMP threads, which a fork does not copy. The pieces sent here are pure Python (simpy,
matplotlib).

BLAS threads follow the same rule of one place: :func:`one_blas_thread` holds numpy's BLAS to
the calling thread for a block (threadpoolctl), for work whose bits must not depend on the
host's core count and for work that runs while the run's other pieces hold the cores.

Memory has one rule too: :func:`keep_freed_memory` (called by the ``xsim`` command at start and by
a sweep's workers) has glibc's allocator keep the memory a process frees for its next arrays
instead of handing it back to the kernel.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import platform
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Worker processes a run may use here: the usable cores (1 where forking is not safe)."""
    if not sys.platform.startswith("linux") or multiprocessing.current_process().daemon:
        return 1
    return usable_cores()


def workers_for(requested: int | None, jobs: int | None = None) -> int:
    """``requested`` workers (default: :func:`default_workers`), within what is safe here and
    no more than ``jobs``."""
    n = default_workers() if requested is None else max(1, min(requested, default_workers()))
    return n if jobs is None else max(1, min(n, jobs))


def in_threads(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[fn(item) for item in items]``, in order, on up to one thread per usable core. For work
    that runs mostly outside the GIL and whose result does not depend on the thread running it
    (each item draws from its own generator, say): the same results as the loop."""
    items = list(items)
    threads = min(usable_cores(), len(items))
    if threads < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
# The largest mmap threshold glibc accepts on 64-bit hosts (half its 64 MiB arena heap): every
# array up to it comes from the heap, which is far more than the largest a run frees and remakes
# (a ResNet-50 layer's float64 weights, 19 MB; its largest im2col matrix, 15 MB).
_MMAP_THRESHOLD = 32 << 20
_kept = False


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory in the process, for its next arrays; True where it
    did (glibc), False elsewhere (a no-op). Idempotent; results do not depend on it.

    Why: a run makes and frees arrays of tens of MB again and again (a task's effective weights,
    every layer's outputs in the reference and crossbar runs). By default glibc returns them to
    the kernel (``munmap`` above its adaptive mmap threshold, an arena heap dropped once empty,
    the top of the heap trimmed), so each new array starts on fresh pages. On a virtual machine
    whose kernel reports free pages to its host (Linux ``page_reporting``, as on xsim's
    development hosts) each such page then costs a fault in the host too. Measured on the
    bundled ResNet-50 scenario's bit-accurate stage (2-core AMD EPYC VM, 4 alternated runs each):
    8.2-9.8 s of CPU against 9.4-11.8 s. The price is that the process's resident memory stays at
    its peak.

    The three settings: one arena for all threads (a thread's arena heap is unmapped once empty),
    a fixed mmap threshold of 32 MiB (the adaptive one starts at 128 KiB), and a trim threshold
    of 2 GiB (the largest mallopt takes) for the free memory at the top of the heap.
    """
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    trim = (1 << 31) - 1  # mallopt takes an int
    _kept = all(mallopt(param, value) == 1 for param, value in (
        (_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, trim)))
    return _kept


@contextmanager
def one_blas_thread(when: bool = True) -> Iterator[None]:
    """Run numpy's BLAS on one thread inside the block (a no-op where ``when`` is false).

    Two reasons to, both measured on xsim's runs:

    * **Bits.** A multi-threaded OpenBLAS splits some float64 products (the reference's
      convolutions from ResNet-50's ``layer3`` on) differently by thread count, so their last
      bits depend on the host's cores; on one thread they do not.
    * **Cores.** OpenBLAS's threads spin while they wait for work. Beside the engine's worker
      processes and the write model's thread they take the cores that work needs.

    BLAS's thread count is process-wide; threadpoolctl lets one Python thread at a time set it
    (the others' limits do nothing while it holds it), and blocks nest. xsim sets it from the
    thread that runs :func:`xsim.api.simulate` or the float reference."""
    if not when:
        yield
        return
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


_controller: Any = None


def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded thread pools, made once numpy (its BLAS) is loaded."""
    global _controller
    if _controller is None:
        import numpy  # noqa: F401  (BLAS is loaded with numpy)
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


def _start(initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The handlers the fork copied are the main process's: a worker ends at SIGTERM at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if initializer is not None:
        initializer(*initargs)


class ForkPool:
    """``workers`` forked processes (at least 2; callers with one worker stay serial)."""

    def __init__(self, workers: int, initializer: Callable[..., Any] | None = None,
                 initargs: tuple = ()) -> None:
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("fork"), initializer=_start,
            initargs=(initializer, initargs))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        assert self._pool is not None, "the pool is closed"
        return self._pool.submit(fn, *args)

    def close(self, abort: bool = False) -> None:
        """Stop the workers: after their work, or at once (``abort``: the caller is failing)."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if abort:
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                if process.is_alive():
                    process.terminate()
        pool.shutdown(wait=not abort, cancel_futures=True)

    def __enter__(self) -> ForkPool:
        return self

    def __exit__(self, kind: type | None, *exc: object) -> None:
        self.close(abort=kind is not None)
