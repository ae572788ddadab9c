"""The compiled server calendars (``xsim.kernels.calendar``) against the list reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_reference import ReferenceCalendar, reference_compute, reference_walk

from xsim.engine.servers import Calendars, Environment, Server
from xsim.kernels.calendar import walk_code

SERVERS = 4

hops = st.tuples(st.integers(-1, SERVERS - 1), st.integers(0, 9))
paths = st.lists(hops, min_size=0, max_size=4)
forks = st.lists(st.lists(paths, min_size=0, max_size=3), min_size=0, max_size=3)
walks = st.lists(st.tuples(forks, st.integers(0, 3), st.integers(0, 20), st.integers(0, 40),
                           st.integers(1, 4)), max_size=60)


def _calendars(capacity: int) -> tuple[Calendars, Environment]:
    env = Environment()
    cal = Calendars(capacity=capacity)
    for k in range(SERVERS):
        cal.add(f"s[{k}]")
    cal.reset(env)
    return cal, env


@settings(max_examples=300, deadline=None)
@given(walks, st.sampled_from([2, 8, 128]))
def test_walks_book_what_the_reference_books(steps, capacity):
    """Random walks at a clock that moves on (bookings never before it): the same arrivals, the
    same busy time, and every interval still ahead of the clock the same; with a small capacity
    the arrays grow on the way."""
    cal, env = _calendars(capacity)
    ref = [ReferenceCalendar() for _ in range(SERVERS)]
    for fork_list, advance, t_ahead, spread, n in steps:
        env._now += advance  # the clock: what pruning may drop behind
        t = env.now + t_ahead
        last = t + spread
        code = walk_code(fork_list)
        assert cal.walk(code, t, last, n, env.now) == reference_walk(ref, fork_list, t, last, n)
    _same_calendars(cal, ref, env.now)
    for k in range(SERVERS):
        server = Server(None, f"s[{k}]", cal, k)
        kept = list(zip(server.starts, server.ends))
        assert all(a < b for a, b in kept)
        assert all(kept[i][1] < kept[i + 1][0] for i in range(len(kept) - 1))


def _same_calendars(cal: Calendars, ref: list[ReferenceCalendar], now: int) -> None:
    for k in range(SERVERS):
        server = Server(None, f"s[{k}]", cal, k)
        assert server.busy_ps == ref[k].busy_ps
        # What is booked from the clock on (the kernel drops what ended by then, so an interval
        # running over the clock starts there).
        kept = [(max(a, now), b) for a, b in zip(server.starts, server.ends) if b > now]
        assert kept == [(max(a, now), b) for a, b in ref[k].busy if b > now]


steps_of_rows = st.lists(st.tuples(
    st.sampled_from(["chain", "compute"]), st.lists(forks, min_size=3, max_size=3),
    st.integers(0, 3), st.integers(0, 20), st.integers(0, 40), st.integers(1, 4),
    st.tuples(st.integers(1, 9), st.integers(0, 60), st.integers(0, 9), st.integers(0, 90))),
    max_size=40)


@settings(max_examples=200, deadline=None)
@given(steps_of_rows, st.sampled_from([2, 8, 128]))
def test_rows_book_what_the_reference_books(steps, capacity):
    """A digital row's three walks in one call (``chain``) and a replica's block of MVMs
    (``compute``), mixed at a moving clock: what the reference's walks give, one after the
    other; with a small capacity the arrays grow on the way."""
    cal, env = _calendars(capacity)
    ref = [ReferenceCalendar() for _ in range(SERVERS)]
    for kind, (a, b, c), advance, t_ahead, spread, n, (mvm, free, tail, floor) in steps:
        env._now += advance
        now = env.now
        if kind == "chain":
            t, last = now + t_ahead, now + t_ahead + spread
            want = []
            for fork_list in (a, b, c):
                t, last = reference_walk(ref, fork_list, t, last, n)
                want += [t, last]
            got = cal.chain(walk_code(a), walk_code(b), walk_code(c), now + t_ahead,
                            now + t_ahead + spread, n, now)
            assert list(got) == want
        else:
            args = (now, n, mvm, now + free, tail, now + floor)
            assert cal.compute(walk_code(a), walk_code(b), *args) == reference_compute(ref, a, b, *args)
    _same_calendars(cal, ref, env.now)


def test_a_long_calendar_ahead_of_the_clock_grows_and_keeps_every_interval():
    cal, env = _calendars(2)
    ref = ReferenceCalendar()
    server = Server(None, "s[0]", cal, 0)
    for k in range(300):  # gaps of 1 ps, booked far ahead of time 0: nothing may be pruned
        start = 3 * (300 - k)
        assert server.book(start, 2) == ref.book(start, 2)
    assert cal.starts.shape[1] >= 300
    assert list(zip(server.starts, server.ends)) == ref.busy
    # [3k, 3k + 2) for k = 1..300: 1 and 2 ps fit before the first, 3 ps only after the last.
    assert server.book(0, 1) == ref.book(0, 1) == 0
    assert server.book(0, 2) == ref.book(0, 2) == 1
    assert server.book(0, 3) == ref.book(0, 3) == 902
    assert list(zip(server.starts, server.ends)) == ref.busy


def test_reset_empties_every_calendar():
    cal, env = _calendars(8)
    code = walk_code([[[(0, 5), (1, 3)], [(2, 4)]]])
    first = cal.walk(code, 0, 0, 2, 0)
    cal.reset(Environment())
    assert not cal.meta[:, 0].any() and not cal.meta[:, 1].any()
    assert cal.walk(code, 0, 0, 2, 0) == first


def test_walk_code_layout_and_errors():
    code = walk_code([[[(1, 5), (-1, 2)]], [[(0, 3)], []]])
    assert code.dtype == np.int64
    assert code.tolist() == [3, 2, 1, -1, 0, 1, 2, 1, 5, -1, 2, 2, 1, 0, 3, 0]
    with pytest.raises(ValueError, match="index or -1"):
        walk_code([[[(-2, 1)]]])
