"""The reprogramming controller as a simpy process: crossbar writes on a limited number of lanes.

A task switch hands the controller the crossbars to rewrite, PE by PE in PE order, each with its
write time from :func:`xsim.kernels.writes.write_cost`. The controller writes at most
``lanes`` crossbars at once (what the chip's write-power budget allows), first come first
served; a PE is being rewritten from the start of its first crossbar's write to the end of its
last one and cannot serve inferences in between. The result gives each PE's rewrite interval and
the switch latency (the end of the last write).

:func:`run_controller` is that controller as a simpy process (one process per lane), the
reference; :func:`schedule_switch` computes the same schedule without an event per crossbar:
first come first served on identical lanes, crossbar ``k`` starts when the earliest lane is free
after crossbars ``0..k-1`` have been placed (a heap of the lanes' free times), which is when a
simpy lane picks it up. The tests check both give the same intervals.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import simpy


@dataclass(frozen=True)
class Rewrite:
    """One PE's rewrite during a switch: its interval in ps, relative to the switch start."""

    pe: int
    start_ps: int
    end_ps: int


def run_controller(env: simpy.Environment, lanes: int, jobs: Sequence[tuple[int, np.ndarray]],
                   out: list[Rewrite]):
    """A simpy process writing ``jobs`` = [(pe, crossbar write times in ps), ...] on ``lanes``
    write-driver lanes, each taking the next crossbar in order as soon as it is free.

    Appends one :class:`Rewrite` per PE (times relative to the process start) to ``out``.
    """
    origin = env.now
    queue = deque((pe, int(t)) for pe, times in jobs for t in times)
    spans: dict[int, list[int]] = {}

    def lane():
        while queue:
            pe, duration = queue.popleft()
            span = spans.setdefault(pe, [env.now, env.now])
            span[0] = min(span[0], env.now)
            yield env.timeout(duration)
            span[1] = max(span[1], env.now)

    workers = [env.process(lane()) for _ in range(min(lanes, len(queue)))]
    if workers:
        yield env.all_of(workers)
    out.extend(Rewrite(pe, s - origin, e - origin) for pe, (s, e) in sorted(spans.items()))


def schedule_switch(jobs: Sequence[tuple[int, np.ndarray]], lanes: int) -> tuple[int, list[Rewrite]]:
    """One switch's writes on their own, as :func:`run_controller` schedules them; returns
    (latency in ps, per-PE rewrites in PE order)."""
    total = sum(len(times) for _, times in jobs)
    free = [0] * min(lanes, total)  # the lanes' free times, a heap
    spans: dict[int, tuple[int, int]] = {}
    if free:
        for pe, times in jobs:
            for t in times.tolist() if isinstance(times, np.ndarray) else times:
                start = free[0]
                end = start + int(t)
                heapq.heapreplace(free, end)
                span = spans.get(pe)
                spans[pe] = (start, end) if span is None else (min(span[0], start), max(span[1], end))
    rewrites = [Rewrite(pe, s, e) for pe, (s, e) in sorted(spans.items())]
    return max((r.end_ps for r in rewrites), default=0), rewrites
