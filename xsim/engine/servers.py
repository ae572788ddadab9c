"""Shared bandwidth servers and the event-counting simulation clock.

A :class:`Server` is a component that moves one thing at a time at a fixed rate (a tile's eDRAM
port, a router, the off-chip links, a tile's pooling or activation unit). It keeps a calendar of
busy intervals in integer picoseconds; :meth:`Server.book` places a transfer of a given duration
at the earliest free gap at or after the time it can start, which is what a FIFO resource gives
when requests arrive in time order, but also lets a process book the later stages of an item's
path ahead of time without a simpy event per transfer (simpy manages ~0.2 M events/s here).
Booking never starts before the simulation clock, so the intervals already past are dropped.
"""

from __future__ import annotations

from bisect import bisect_right

import simpy


class Environment(simpy.Environment):
    """A simpy environment that counts the events it schedules (for the events/s figure)."""

    def __init__(self, initial_time: int = 0) -> None:
        super().__init__(initial_time)
        self.scheduled = 0

    def schedule(self, event, priority=simpy.core.NORMAL, delay=0) -> None:
        self.scheduled += 1
        super().schedule(event, priority, delay)


class Wake(simpy.Event):
    """An event its trigger schedules for a given later time: a waiter on data that will exist
    then is woken once, at that time, instead of being woken now to sleep again."""

    def succeed_at(self, time: int) -> None:
        # The fields Event.succeed sets, scheduled with a delay as simpy's Timeout does. These are
        # simpy 4.1 internals: setup.cfg holds simpy below 4.2 for that reason.
        self._ok = True
        self._value = None
        self.env.schedule(self, simpy.core.NORMAL, time - self.env.now)


class Server:
    """A bandwidth server with a calendar of busy intervals ``[start, end)`` in picoseconds."""

    __slots__ = ("name", "env", "starts", "ends", "busy_ps", "_prune_at")

    _PRUNE_AT = 64
    """intervals kept before the past ones are dropped; after a drop that leaves many (work booked
    far ahead), twice what is left, so a long calendar is not searched for the past at every call"""

    def __init__(self, env: simpy.Environment | None, name: str) -> None:
        self.name = name
        self.env = env
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.busy_ps = 0
        self._prune_at = self._PRUNE_AT

    def reset(self, env: simpy.Environment) -> None:
        """An empty calendar in ``env``: the server as new, for another simulation."""
        self.env = env
        self.starts, self.ends = [], []
        self.busy_ps = 0
        self._prune_at = self._PRUNE_AT

    def book(self, earliest: int, duration: int) -> int:
        """Hold the server for ``duration`` ps from the first free time ≥ ``earliest``; the start."""
        if duration <= 0:
            return earliest
        self.busy_ps += duration
        ends = self.ends
        if ends:
            last = ends[-1]
            if earliest == last:
                ends[-1] = earliest + duration
                return earliest
            if earliest < last:
                return self._book_gap(earliest, duration)
        self.starts.append(earliest)
        ends.append(earliest + duration)
        if len(ends) > self._prune_at:
            self._prune()
        return earliest

    def _prune(self) -> None:
        done = bisect_right(self.ends, self.env.now)
        del self.starts[:done], self.ends[:done]
        self._prune_at = max(self._PRUNE_AT, 2 * len(self.ends))

    def _book_gap(self, earliest: int, duration: int) -> int:
        starts, ends = self.starts, self.ends
        n = len(ends)
        if n > self._prune_at:
            self._prune()
            n = len(ends)
        i = bisect_right(ends, earliest)
        start = earliest
        stop = start + duration
        # The first gap at or after ``earliest`` that holds ``duration``: intervals i.. start
        # after ``earliest`` ends (bisect), so each one either leaves room before it or pushes
        # the start to its end.
        while i < n and stop > starts[i]:
            start = ends[i]
            stop = start + duration
            i += 1
        joins_left = i > 0 and ends[i - 1] == start
        joins_right = i < n and starts[i] == stop
        if joins_left:
            if joins_right:
                ends[i - 1] = ends[i]
                del starts[i], ends[i]
            else:
                ends[i - 1] = stop
        elif joins_right:
            starts[i] = start
        else:
            starts.insert(i, start)
            ends.insert(i, stop)
        return start
