"""What a worker runs for one sweep point, and the kernel warm-up once per worker process."""

from __future__ import annotations

import os

from xsim.config.errors import XsimInputError
from xsim.config.loader import build
from xsim.sweep.spec import Point


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
    images = point.functional_images
    # The sweep already runs a point per core: the point's engine runs stay in its process.
    result = simulate(arch, workload, functional=images > 0, images=max(1, images), workers=1)
    return {"status": "ok", "rows": sweep_rows(result)}


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
    from xsim.kernels import calendar
    from xsim.kernels._settings import threads_may_share_kernels
    from xsim.kernels.changes import weight_changes
    from xsim.kernels.writes import slice_levels, write_cost
    from xsim.processes import keep_freed_memory

    keep_freed_memory()  # as the xsim command does
    levels = np.zeros((2, 2), dtype=np.uint8)
    table = np.zeros((2, 2))
    # The scenario's endurance counters are uint16 (int64 past 65,535 switches).
    for counter in (np.int64, np.uint16):
        write_cost(levels, levels, rows=2, columns=2, compare=True, pulses=table.astype(np.int64),
                   energy_pj=table, line_pj=table, phase=table.astype(np.int8),
                   scheme="row_parallel", pulse_ps=1, verify_ps=1, compare_ps=1, drivers=1,
                   counts=np.zeros((2, 2), dtype=counter))
    slice_levels(np.zeros((2, 2), dtype=np.int32), weight_bits=8, cell_bits=2, slices=4,
                 encoding="offset")
    # The tasks' weight changes (xsim.mta.tasks.build_tasks).
    weight_changes(np.zeros((2, 2), dtype=bool), np.zeros((2, 2), dtype=np.float32),
                   np.float32(1.0), np.zeros((2, 2), dtype=np.int32), 127,
                   np.zeros((1, 4), dtype=np.int64))
    threads_may_share_kernels()  # the threading layer's first launch
    calendar.load()  # the engine's booking
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
