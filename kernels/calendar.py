"""Busy calendars of the engine's bandwidth servers, booked by compiled code.

A server (a tile's eDRAM port, a router, a link, a tile's digital unit) keeps a calendar of busy
intervals ``[start, end)`` in integer picoseconds; booking ``duration`` at ``earliest`` takes the
first free gap at or after it (``xsim.engine.servers`` says why the engine books ahead). Every
row an engine process moves books a chain of them, so the calendars of all servers live in
three arrays and one call books a row's whole walk:

* ``starts``, ``ends`` (servers × capacity): each server's intervals, sorted and disjoint, in
  its first ``meta[s, COUNT]`` places;
* ``meta`` (servers × 3): ``COUNT``, ``BUSY`` (the booked picoseconds) and ``PRUNE_AT`` (the
  count past which intervals that ended by the clock are dropped: 64, or after a drop that
  leaves many, twice what is left).

A walk (:func:`walk_code`) is a sequence of forks, each fork a set of paths that start together
(the row goes down all of them; it has arrived when the last does), each path a chain of hops,
each hop a server or a fixed delay. ``n`` items move as a block: a hop of ``d`` ps per item holds
its server for ``n·d``; the first item leaves a hop ``d`` after the block's start, the last at
the block's end or ``d`` after it reached the hop, whichever is later.

The engine's rows book through two compositions of walks, one call each: :func:`chain` (a
digital row's read, unit and delivery, or the image stream's link and delivery) and
:func:`compute` (a layer replica's input fetch, its block of MVMs on the crossbars and the
drain of their results), so a row costs the engine one call from Python.

Each returns -1s and books nothing when a server's calendar could overflow its capacity; the
caller grows the arrays and calls again. The tests check the kernels against the
interval-list reference in ``tests/kernel_reference.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numba
import numpy as np

from ._settings import JIT

COUNT, BUSY, PRUNE_AT = 0, 1, 2
FIRST_PRUNE = 64
"""intervals a server keeps before the past ones are dropped"""


@numba.njit(**JIT)
def _prune(starts, ends, meta, s, now):
    n = meta[s, COUNT]
    done = np.searchsorted(ends[s, :n], now, side="right")
    if done:
        left = n - done
        starts[s, :left] = starts[s, done:n].copy()
        ends[s, :left] = ends[s, done:n].copy()
        n = left
        meta[s, COUNT] = n
    meta[s, PRUNE_AT] = max(FIRST_PRUNE, 2 * n)


@numba.njit(**JIT)
def _book(starts, ends, meta, s, earliest, duration, now):
    """Hold server ``s`` for ``duration`` from the first free time ≥ ``earliest``; the start.
    The caller made room for one more interval."""
    if duration <= 0:
        return earliest
    meta[s, BUSY] += duration
    n = meta[s, COUNT]
    if n:
        last = ends[s, n - 1]
        if earliest == last:
            ends[s, n - 1] = earliest + duration
            return earliest
        if earliest < last:
            return _book_gap(starts, ends, meta, s, earliest, duration, now)
    starts[s, n] = earliest
    ends[s, n] = earliest + duration
    meta[s, COUNT] = n + 1
    if n + 1 > meta[s, PRUNE_AT]:
        _prune(starts, ends, meta, s, now)
    return earliest


@numba.njit(**JIT)
def _book_gap(starts, ends, meta, s, earliest, duration, now):
    if meta[s, COUNT] > meta[s, PRUNE_AT]:
        _prune(starts, ends, meta, s, now)
    n = meta[s, COUNT]
    i = np.searchsorted(ends[s, :n], earliest, side="right")
    start = earliest
    stop = start + duration
    # Intervals i.. end after ``earliest``: each leaves room before it or pushes the start to
    # its end.
    while i < n and stop > starts[s, i]:
        start = ends[s, i]
        stop = start + duration
        i += 1
    joins_left = i > 0 and ends[s, i - 1] == start
    joins_right = i < n and starts[s, i] == stop
    if joins_left:
        if joins_right:
            ends[s, i - 1] = ends[s, i]
            starts[s, i : n - 1] = starts[s, i + 1 : n].copy()
            ends[s, i : n - 1] = ends[s, i + 1 : n].copy()
            meta[s, COUNT] = n - 1
        else:
            ends[s, i - 1] = stop
    elif joins_right:
        starts[s, i] = start
    else:
        starts[s, i + 1 : n + 1] = starts[s, i:n].copy()
        ends[s, i + 1 : n + 1] = ends[s, i:n].copy()
        starts[s, i] = start
        ends[s, i] = stop
        meta[s, COUNT] = n + 1
    return start


@numba.njit(**JIT)
def book(starts, ends, meta, s, earliest, duration, now):
    """One booking of server ``s`` (see :func:`_book`); -1 (nothing booked) when it is full."""
    if meta[s, COUNT] + 1 > starts.shape[1]:
        _prune(starts, ends, meta, s, now)
        if meta[s, COUNT] + 1 > starts.shape[1]:
            return -1
    return _book(starts, ends, meta, s, earliest, duration, now)


@numba.njit(**JIT)
def _fits(starts, ends, meta, code, need, now):
    """Whether every server of ``code`` has room for ``need`` more intervals (past ones dropped
    where that makes room)."""
    for j in range(2, 2 + code[0]):
        s = code[j]
        if s >= 0 and meta[s, COUNT] + need > starts.shape[1]:
            _prune(starts, ends, meta, s, now)
            if meta[s, COUNT] + need > starts.shape[1]:
                return False
    return True


@numba.njit(**JIT)
def _walk(starts, ends, meta, code, t, last, n, now):
    """:func:`walk` once the room is known to be there."""
    forks = code[1]
    i = 2 + code[0]
    for _ in range(forks):
        paths = code[i]
        i += 1
        first = t
        final = t
        for _ in range(paths):
            hop_count = code[i]
            i += 1
            a = t
            b = last
            for _ in range(hop_count):
                s = code[i]
                d = code[i + 1]
                i += 2
                if s < 0:
                    a += d
                    b += d
                else:
                    start = _book(starts, ends, meta, s, a, n * d, now)
                    a = start + d
                    end = start + n * d
                    b = b + d if b + d > end else end
            if paths == 1:
                first, final = a, b
            else:
                if a > first:
                    first = a
                if b > final:
                    final = b
        t, last = first, final
    return t, last


@numba.njit(**JIT)
def walk(starts, ends, meta, code, t, last, n, now):
    """Move ``n`` items (the first ready at ``t``, the last at ``last``) along the walk ``code``
    (:func:`walk_code`): when the first and the last have arrived. ``(-1, -1)`` and nothing
    booked when a calendar could overflow."""
    # Room first: each hop adds at most one interval to its server.
    if not _fits(starts, ends, meta, code, code[0], now):
        return -1, -1
    return _walk(starts, ends, meta, code, t, last, n, now)


@numba.njit(**JIT)
def chain(starts, ends, meta, a, b, c, t, last, n, now):
    """Walks ``a``, ``b`` and ``c`` one after the other (each from where the one before left
    the items): ``(first, last)`` after each, six numbers; all -1 and nothing booked when a
    calendar could overflow. A digital row's read, unit and delivery; an empty walk
    (``walk_code([])``) leaves the items where they are."""
    need = a[0] + b[0] + c[0]
    if not (_fits(starts, ends, meta, a, need, now) and _fits(starts, ends, meta, b, need, now)
            and _fits(starts, ends, meta, c, need, now)):
        return -1, -1, -1, -1, -1, -1
    ta, la = _walk(starts, ends, meta, a, t, last, n, now)
    tb, lb = _walk(starts, ends, meta, b, ta, la, n, now)
    tc, lc = _walk(starts, ends, meta, c, tb, lb, n, now)
    return ta, la, tb, lb, tc, lc


@numba.njit(**JIT)
def compute(starts, ends, meta, fetch, drain, now, n, mvm, free, tail, floor):
    """A layer replica's block of ``n`` MVMs of ``mvm`` ps each, at the clock's time ``now``:
    the inputs go along ``fetch`` from now; the crossbars start once the first has arrived and
    they are ``free``, run the block back to back, and end no earlier than ``mvm`` after the
    last input and than ``floor``; each result goes along ``drain`` ``tail`` after its MVM.
    Returns the crossbars' start and end and when the first and the last result have arrived;
    all -1 and nothing booked when a calendar could overflow."""
    need = fetch[0] + drain[0]
    if not (_fits(starts, ends, meta, fetch, need, now)
            and _fits(starts, ends, meta, drain, need, now)):
        return -1, -1, -1, -1
    first, last = _walk(starts, ends, meta, fetch, now, now, n, now)
    x0 = first if first > free else free
    x1 = x0 + n * mvm
    if last + mvm > x1:
        x1 = last + mvm
    if floor > x1:
        x1 = floor
    t, end = _walk(starts, ends, meta, drain, x0 + mvm + tail, x1 + tail, n, now)
    return x0, x1, t, end


def walk_code(forks: Iterable[Iterable[Iterable[tuple[int, int]]]]) -> np.ndarray:
    """The int64 layout :func:`walk` reads, of ``forks``: each an iterable of paths, each path
    of ``(server, ps)`` hops (server -1: a fixed delay of ``ps``).

    Layout: ``[hops, forks, server of every hop..., then per fork: paths, per path: hop count
    and its (server, ps) pairs]``; the hops' servers up front are what the room check reads."""
    body: list[int] = []
    servers: list[int] = []
    count = 0
    for fork in forks:
        fork = [list(path) for path in fork]
        count += 1
        body.append(len(fork))
        for path in fork:
            body.append(len(path))
            for server, ps in path:
                if server < -1:
                    raise ValueError(f"a hop's server is an index or -1, got {server}")
                body.extend((server, ps))
                servers.append(server)
    return np.array([len(servers), count, *servers, *body], dtype=np.int64)


def load() -> None:
    """Load (or, on a cold cache, compile) the kernels the engine calls now: a process about to
    fork workers that book calls this once, so they inherit the compiled code instead of each
    loading it."""
    starts = np.zeros((1, 2), dtype=np.int64)
    meta = np.zeros((1, 3), dtype=np.int64)
    empty = walk_code([])
    chain(starts, starts.copy(), meta, empty, empty, empty, 0, 0, 1, 0)
    compute(starts, starts.copy(), meta, empty, empty, 0, 1, 1, 0, 0, 0)
