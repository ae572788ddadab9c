"""Shared bandwidth servers and the event-counting simulation clock.

A :class:`Server` is a component that moves one thing at a time at a fixed rate (a tile's eDRAM
port, a router, the off-chip links, a tile's pooling or activation unit). It keeps a calendar of
busy intervals in integer picoseconds; :meth:`Server.book` places a transfer of a given duration
at the earliest free gap at or after the time it can start, which is what a FIFO resource gives
when requests arrive in time order, but also lets a process book the later stages of an item's
path ahead of time without a simpy event per transfer (simpy manages ~0.2 M events/s here).
Booking never starts before the simulation clock, so the intervals already past are dropped.
A chip's servers share one :class:`Calendars`, whose compiled walk books a row's whole chain of
servers in one call (:mod:`xsim.kernels.calendar`).
"""

from __future__ import annotations

from heapq import heappush

import numpy as np
import simpy

from xsim.kernels import calendar


class Environment(simpy.Environment):
    """A simpy environment that counts the events it schedules (for the events/s figure)."""

    def __init__(self, initial_time: int = 0) -> None:
        super().__init__(initial_time)
        self.scheduled = 0

    def schedule(self, event, priority=simpy.core.NORMAL, delay=0) -> None:
        # simpy 4.1's own schedule (setup.cfg holds simpy below 4.2), counted, without a super()
        # call on the engine's hottest path.
        self.scheduled += 1
        heappush(self._queue, (self._now + delay, priority, next(self._eid), event))


class Wake(simpy.Event):
    """An event its trigger schedules for a given later time: a waiter on data that will exist
    then is woken once, at that time, instead of being woken now to sleep again. Its
    environment is an :class:`Environment` (the wake counts itself in)."""

    def succeed_at(self, time: int, value: object = None) -> None:
        """Wake the waiter at ``time`` (not before now) with ``value``, what its yield returns."""
        # The fields Event.succeed sets, scheduled with a delay as simpy's Timeout does. These are
        # simpy 4.1 internals: setup.cfg holds simpy below 4.2 for that reason.
        self._ok = True
        self._value = value
        env = self.env  # Environment.schedule, inlined: one call less per row in the engine
        env.scheduled += 1
        heappush(env._queue, (time, simpy.core.NORMAL, next(env._eid), self))


class Calendars:
    """The busy calendars of a set of servers, in the arrays the compiled booking reads
    (:mod:`xsim.kernels.calendar`), with the simulation clock that bookings never start before.
    Servers are added before the first :meth:`reset`; the arrays grow when a calendar would
    overflow them."""

    __slots__ = ("env", "names", "starts", "ends", "meta", "capacity")

    def __init__(self, env: simpy.Environment | None = None, capacity: int = 128) -> None:
        self.env = env
        self.capacity = capacity
        """intervals per server the arrays hold at first (they double when one would overflow)"""
        self.names: list[str] = []
        self.starts = self.ends = self.meta = np.zeros((0, 0), dtype=np.int64)

    def add(self, name: str) -> Server:
        """A new server of these calendars (before the first :meth:`reset`)."""
        self.names.append(name)
        return Server(None, name, self, len(self.names) - 1)

    def reset(self, env: simpy.Environment) -> None:
        """Every calendar empty, in ``env``: the servers as new, for another simulation."""
        self.env = env
        count = len(self.names)
        if self.meta.shape[0] != count:
            self.starts = np.zeros((count, self.capacity), dtype=np.int64)
            self.ends = np.zeros((count, self.capacity), dtype=np.int64)
            self.meta = np.zeros((count, 3), dtype=np.int64)
        self.meta[:, calendar.COUNT] = 0
        self.meta[:, calendar.BUSY] = 0
        self.meta[:, calendar.PRUNE_AT] = calendar.FIRST_PRUNE

    def walk(self, code: np.ndarray, t: int, last: int, n: int, now: int) -> tuple[int, int]:
        """``n`` items, the first ready at ``t`` and the last at ``last``, along the walk ``code``
        (:func:`xsim.kernels.calendar.walk_code`) at the clock's time ``now`` (passed in: the
        engine's processes hold it): when the first and the last have arrived."""
        first, final = calendar.walk(self.starts, self.ends, self.meta, code, t, last, n, now)
        if first < 0:
            self._grow()
            return self.walk(code, t, last, n, now)
        return first, final

    def chain(self, a: np.ndarray, b: np.ndarray, c: np.ndarray, t: int, last: int, n: int,
              now: int) -> tuple[int, int, int, int, int, int]:
        """The walks ``a``, ``b``, ``c`` one after the other (:func:`xsim.kernels.calendar.chain`):
        the first and the last item's arrival after each."""
        marks = calendar.chain(self.starts, self.ends, self.meta, a, b, c, t, last, n, now)
        if marks[0] < 0:
            self._grow()
            return self.chain(a, b, c, t, last, n, now)
        return marks

    def compute(self, fetch: np.ndarray, drain: np.ndarray, now: int, n: int, mvm: int,
                free: int, tail: int, floor: int) -> tuple[int, int, int, int]:
        """A replica's block of ``n`` MVMs (:func:`xsim.kernels.calendar.compute`): the crossbars'
        start and end, the first and the last result's arrival."""
        times = calendar.compute(self.starts, self.ends, self.meta, fetch, drain, now, n, mvm,
                                 free, tail, floor)
        if times[0] < 0:
            self._grow()
            return self.compute(fetch, drain, now, n, mvm, free, tail, floor)
        return times

    def book(self, index: int, earliest: int, duration: int) -> int:
        start = calendar.book(self.starts, self.ends, self.meta, index, earliest, duration,
                              self.env.now)
        if start < 0:
            self._grow()
            return self.book(index, earliest, duration)
        return start

    def _grow(self) -> None:
        count, capacity = self.starts.shape
        for name in ("starts", "ends"):
            grown = np.zeros((count, 2 * capacity), dtype=np.int64)
            grown[:, :capacity] = getattr(self, name)
            setattr(self, name, grown)


class Server:
    """A bandwidth server: one calendar of a :class:`Calendars` (its own one when ``calendars``
    is not given). ``starts``, ``ends`` and ``busy_ps`` are read off the calendar."""

    __slots__ = ("name", "calendars", "index")

    def __init__(self, env: simpy.Environment | None, name: str,
                 calendars: Calendars | None = None, index: int = 0) -> None:
        self.name = name
        if calendars is None:
            calendars = Calendars(env)
            calendars.names.append(name)
            calendars.reset(env)
        self.calendars = calendars
        self.index = index

    @property
    def env(self) -> simpy.Environment | None:
        return self.calendars.env

    @property
    def busy_ps(self) -> int:
        return int(self.calendars.meta[self.index, calendar.BUSY])

    @property
    def starts(self) -> list[int]:
        n = self.calendars.meta[self.index, calendar.COUNT]
        return self.calendars.starts[self.index, :n].tolist()

    @property
    def ends(self) -> list[int]:
        n = self.calendars.meta[self.index, calendar.COUNT]
        return self.calendars.ends[self.index, :n].tolist()

    def book(self, earliest: int, duration: int) -> int:
        """Hold the server for ``duration`` ps from the first free time ≥ ``earliest``; the start."""
        return self.calendars.book(self.index, earliest, duration)
