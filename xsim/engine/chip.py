"""The chip as simpy processes over the datapath plan: PE groups, servers, inference batches.

:class:`ChipModel` is built once from the frozen arch, the mapping and the hardware figures. It
owns the shared bandwidth servers (:mod:`xsim.engine.servers`) of every tile (eDRAM port, pooling,
activation and shift-and-add units), router and the off-chip link; one :class:`PeGroup` per layer
replica (the PEs that compute one MVM together; their crossbars, DACs, ADCs and shift-and-add
units are private to them, so their only contention is the group itself); the action
:class:`~xsim.engine.counters.Counters` and the timeline.

:meth:`ChipModel.infer` starts a :class:`Batch` of images at a given time in the chip's
environment: one process streams the images in over the off-chip link (row after row, as far
ahead of the layers reading them as their tiles' eDRAM holds, so the eDRAM bounds the images in
flight), one process per layer replica and per digital layer works through
its output rows image after image. A layer replica
starts an output row when the rows of its inputs it needs exist (ISAAC's inter-layer pipeline),
books the row's input fetch on its tiles' eDRAM ports, computes its MVMs back to back on its
crossbars and books the drain of each MVM — the last ADC conversion, the partial sums to the home
tile, the reduction and activation there, the outputs into every consuming tile — on the servers
on the way. The row exists for its consumers when its last item is delivered.

Start of a row. With the arch's ``chip.pipeline_start: window`` (the default, as ISAAC) a layer
replica starts an output row once the first window of its inputs exists (the input rows it reads
above the last one, and the first item of that one), and its MVM of pixel ``x`` cannot end
before the share ``(x+1)/width`` of that last row has arrived (a row's items arrive evenly
between its first and its last; a replica's pixels are every ``R``-th of the row); digital
layers start per whole row, and their units stream its pixels out, the first a pixel's share
of the row's time after the row starts. With ``row``, every layer waits for
whole input rows. A reader waits for the rows it reads only, not for every row above them.

Room to write (:class:`~xsim.engine.plan.Buffer`). A node's output row ``g`` (counted over the
batch's images) goes into the slot of row ``g - depth`` of every reader's buffer, which is free
once the reader's last row reading it has read it (:attr:`Batch.read`: from a row's first MVM to
its last, or a digital row's read and units). With a window-level start the new row may begin
once that reading has begun, and its MVM of pixel ``x`` cannot end before the share
``(x+1)/width`` of the slot is free (the reader slides its window over the old row pixel by
pixel); with a row-level start it waits for the whole read. The image stream always waits for
room; every other node only with ``chip.backpressure: all``.

Granularity. ``coarse``: one booking per (replica, output row), its ``n`` MVMs counted
analytically — every server on the path is held for ``n`` items' time in one block, the crossbars
for ``n·cyc`` read cycles, and the row's last item leaves a stage at ``max(last arrival + item
time, block end)``. ``fine``: one booking and one simpy event per MVM. Without contention both give
the same times; with contention they differ by how a block of ``n`` items interleaves with other
layers' traffic. Digital layers and the input are per row in both modes. ``fine`` needs the
row-level start: its rows become known to readers only as the clock reaches their last MVM.

A process later added to the same environment (the reprogramming controller) blocks a PE group
with :meth:`PeGroup.take` / :meth:`PeGroup.give_back` (or :meth:`ChipModel.hold_pes`): the group
finishes the row it is computing, then serves nothing until given back; every other group keeps
serving. It counts its own actions into :attr:`ChipModel.counters`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import simpy

from xsim.deployment import Deployment
from xsim.engine.counters import Counters
from xsim.engine.plan import INPUT, Node, Plan, ReplicaPlan, build_plan, tier2_counts
from xsim.engine.servers import Calendars, Environment, Server, Wake
from xsim.kernels import calendar
from xsim.kernels.calendar import walk_code

MODES = ("coarse", "fine")
EMPTY_WALK = walk_code([])
"""a walk of no hops: it leaves items where they are"""


class TimelineEvent(NamedTuple):
    """One span of work: ``kind`` is ``mvm`` (a replica's crossbars computing a row or an MVM),
    the digital layer's kind (``maxpool``, ``avgpool``, ``add``) or ``offchip_in`` (tile -1)."""

    start_ps: int
    end_ps: int
    layer: str
    tile: int
    kind: str


class PeGroup:
    """The PEs of one layer replica: they compute every MVM of the replica together.

    ``xbar_free_ps`` is when the crossbars finish the work already booked on them. A process that
    needs the PEs (to rewrite them) calls ``yield from group.take()``, which returns once the
    booked work is done; the serving process then waits at its next row until ``give_back()``.
    """

    def __init__(self, env: simpy.Environment, layer: str, plan: ReplicaPlan) -> None:
        self.env = env
        self.layer = layer
        self.replica = plan.replica
        self.pes = plan.pes
        self.xbar_free_ps = 0
        self.busy_ps = 0
        self._taken: simpy.Event | None = None

    @property
    def taken(self) -> bool:
        return self._taken is not None

    def take(self):
        """Generator: wait for any other holder and for the booked MVMs, then hold the group."""
        while self._taken is not None:
            yield self._taken
        self._taken = self.env.event()
        if self.xbar_free_ps > self.env.now:
            yield self.env.timeout(self.xbar_free_ps - self.env.now)

    def give_back(self) -> None:
        if self._taken is None:
            raise RuntimeError(f"PE group {self.layer}[{self.replica}] is not taken")
        event, self._taken = self._taken, None
        event.succeed()

    def wait_free(self):
        """Generator for the serving process: return once nobody holds the group."""
        while self._taken is not None:
            yield self._taken


class _Bound:
    """A plan's server walks as the compiled booking reads them (:func:`walk_code`, with the
    servers' indices in the wiring's calendars): ``fetch`` (one fork), ``drain`` (its forks in
    order), ``read`` (one fork), ``unit`` (one path), ``deliver`` (forks)."""

    __slots__ = ("fetch", "drain", "unit", "read", "deliver")

    def __init__(self, wiring: _Wiring, fetch=(), drain=(), read=(), unit=(), deliver=()) -> None:
        self.fetch = wiring.code([fetch] if fetch else [])
        self.drain = wiring.code(drain)
        self.read = wiring.code([read] if read else [])
        self.unit = wiring.code([[unit]] if unit else [])
        self.deliver = wiring.code(deliver)


class _Wiring:
    """A plan bound to one set of bandwidth servers: what a chip's processes walk.

    Binding the plan of a large network takes as long as simulating an image, so a deployment
    keeps one wiring (:func:`_wiring_for`) and lends it to one chip at a time: the chip resets its
    servers into its own environment, and :meth:`ChipModel.close` gives it back. A chip built
    while the wiring is lent binds one of its own."""

    def __init__(self, plan: Plan) -> None:
        self.calendars = Calendars()
        self.servers: dict[tuple[str, int], Server] = {}
        self.lent = False
        self.replicas: list[tuple[_Bound, ...]] = []
        """per replica of every weight node in plan order, its bound drains"""
        self.rows: dict[int, list[tuple[_Bound, int]]] = {}
        """per digital node (and the input), each row's bound plan and its distinct plan's index"""
        for node in plan.nodes:
            if node.replicas:
                for rp in node.replicas:
                    self.replicas.append(tuple(_Bound(self, fetch=rp.fetch, drain=d) for d in rp.drains))
            else:
                distinct: dict[int, tuple[_Bound, int]] = {}
                for row in node.row_plans:
                    if id(row) not in distinct:
                        distinct[id(row)] = (_Bound(self, read=row.read, unit=row.unit,
                                                    deliver=row.deliver), len(distinct))
                self.rows[node.index] = [distinct[id(row)] for row in node.row_plans]

    def server(self, key: tuple[str, int]) -> Server:
        server = self.servers.get(key)
        if server is None:
            server = self.servers[key] = self.calendars.add(f"{key[0]}[{key[1]}]")
        return server

    def code(self, forks) -> np.ndarray:
        """The walk of ``forks`` (each a sequence of paths of plan stages) over these servers."""
        return walk_code([[[(-1 if stage.server is None else self.server(stage.server).index,
                              stage.item_ps) for stage in path] for path in fork] for fork in forks])

    def reset(self, env: simpy.Environment) -> None:
        self.calendars.reset(env)


def deployment_wiring(deployment: Deployment) -> _Wiring:
    """The deployment's own wiring (its plan built and bound once): what :func:`_wiring_for`
    lends. Building it before worker processes fork saves each of them the binding, and the
    loading of the booking kernels."""
    return deployment.derived("engine.wiring", _bind)


def _bind(deployment: Deployment) -> _Wiring:
    calendar.load()
    return _Wiring(deployment.derived("engine.plan", build_plan))


def _wiring_for(deployment: Deployment, plan: Plan) -> _Wiring:
    """The deployment's wiring if no chip holds it, else a new one; lent to the caller."""
    wiring = deployment_wiring(deployment)
    if wiring.lent:
        wiring = _Wiring(plan)
    wiring.lent = True
    return wiring


def _room(batch: Batch, buffers, rows: int, g: int, window: bool):
    """What a node's output row ``g`` (counted over the batch's images) waits for before it is
    written: None when every consumer's buffer has room, else the event that makes room for it
    in the slot of row ``g - depth``. With a row-level start the slot is free once the
    consumer's last row reading it exists; with a window-level start the consumer slides its
    window over that row pixel by pixel, so the new row may begin once that consumer row has its
    first window out, and it overwrites the slot as the consumer frees it (:func:`_freed`)."""
    for buf in buffers:
        old = g - buf.depth
        if old >= 0:
            image, k = divmod(old, rows)
            event = batch.read[buf.consumer][image].wait_for(buf.release[k], window)
            if event is not None:
                return event
    return None


def _freed(batch: Batch, buffers, rows: int, g: int) -> tuple[int, int]:
    """When the slot of row ``g`` starts and ends being freed (the consumer rows releasing it
    begin and finish); (0, 0) when it was never taken. Call once :func:`_room` returned None."""
    opened = full = 0
    for buf in buffers:
        old = g - buf.depth
        if old >= 0:
            image, k = divmod(old, rows)
            st = batch.read[buf.consumer][image]
            m = buf.release[k]
            opened = max(opened, st.at(m, m, True))
            full = max(full, st.ready[m])
    return opened, full


class _Progress:
    """The rows of one node for one image: when each exists, when its first window exists (the
    rows above it and the first item of it: ``early``), and who waits for them."""

    __slots__ = ("env", "ready", "first", "parts", "known", "waiters")

    def __init__(self, env: simpy.Environment, parts: list[int]) -> None:
        self.env = env
        self.ready = [0] * len(parts)
        self.first = [0] * len(parts)
        self.parts = parts
        self.known = 0
        self.waiters: list[tuple[int, Wake, bool, int]] = []

    def at(self, lo: int, m: int, window: bool) -> int:
        """When rows ``lo..m`` exist (with ``window``: rows ``lo..m-1`` and the first item of
        ``m``, the first window of a reader whose rows are ``lo..m``); rows ``0..m`` are known."""
        return self.span(lo, m)[0 if window else 1]

    def span(self, lo: int, m: int) -> tuple[int, int]:
        """``(at(lo, m, True), at(lo, m, False))`` in one pass: when a reader of rows ``lo..m``
        has its first window, and when it has all of them."""
        ready = self.ready
        t = max(ready[lo:m], default=0)
        whole = ready[m]
        first = self.first[m]
        early = whole if whole < first else first
        return (early if early > t else t), (whole if whole > t else t)

    def wait_for(self, m: int, window: bool = False, lo: int | None = None) -> simpy.Event | None:
        """What a reader of rows ``lo..m`` (default ``m`` alone; with ``window``, of its first
        window) yields: nothing (they exist), a timeout until they do, or an event woken when
        they become known. Rows complete out of order (a digital layer deals them over tiles),
        so a reader waits only for the rows it reads."""
        env = self.env
        lo = m if lo is None else lo
        if self.known > m:
            t = self.at(lo, m, window)
            return env.timeout(t - env.now) if t > env.now else None
        event = Wake(env)
        self.waiters.append((m, event, window, lo))
        return event


class Batch:
    """Images run through the chip, starting at ``start_ps``; ``done`` fires after the last one."""

    def __init__(self, chip: ChipModel, images: int, start_ps: int) -> None:
        if images < 1:
            raise ValueError(f"images must be at least 1, got {images}")
        self.chip = chip
        self.env = chip.env
        self.images = images
        self.start_ps = start_ps
        self.image_start_ps: list[int | None] = [None] * images
        self.image_done_ps: list[int | None] = [None] * images
        self.done = chip.env.event()
        self._left = images
        self.progress = [[_Progress(chip.env, list(chip._row_parts[node.index])) for _ in range(images)]
                         for node in chip.plan.nodes]
        self.read = [[_Progress(chip.env, list(chip._row_parts[node.index])) for _ in range(images)]
                     if chip.tracks_reads[node.index] else None for node in chip.plan.nodes]
        """per node and image, when each output row's inputs have been read (from its first
        fetch to its last): what frees its producers' buffer slots; kept only for the nodes whose
        producers wait for room (:attr:`ChipModel.tracks_reads`)"""

    def row_read(self, node: int, image: int, row: int, end: int, start: int) -> None:
        """One part of ``row`` reads its inputs from ``start`` to ``end``."""
        self.row_done(node, image, row, end, start, self.read)

    def row_done(self, node: int, image: int, row: int, ready: int, first: int | None = None,
                 track: list | None = None) -> None:
        """One part (a replica's share) of ``row`` will have been delivered at ``ready``, its first
        item at ``first`` (default ``ready``)."""
        st = (self.progress if track is None else track)[node][image]
        ready_at = st.ready
        if ready > ready_at[row]:
            ready_at[row] = ready
        if first is None:
            first = ready
        if first > st.first[row]:
            st.first[row] = first
        parts = st.parts
        left = parts[row] - 1
        parts[row] = left
        if left or row != st.known:
            return
        rows, known = len(parts), row + 1
        while known < rows and not parts[known]:
            known += 1
        # Rows 0..known-1 are known now: wake the readers waiting for them.
        st.known = known
        if st.waiters:
            still = []
            now = self.env.now
            firsts = st.first
            for waiter in st.waiters:
                need, event, window, lo = waiter
                if need < known:
                    # The rows are known, so their times are final: the waiter gets their span
                    # (_Progress.span's rule, inlined on the engine's hottest path:
                    # calling it cost 0.3-0.6 s of CPU in 100 ResNet-50 images, two alternated pairs).
                    above = max(ready_at[lo:need], default=0)
                    whole = ready_at[need]
                    early = firsts[need]
                    if whole < early:
                        early = whole
                    if above > early:
                        early = above
                    if above > whole:
                        whole = above
                    t = early if window else whole
                    event.succeed_at(t if t > now else now, (early, whole))
                else:
                    still.append(waiter)
            st.waiters = still
        if track is None and known == rows and node == self.chip.plan.output:
            self._image_done(image, max(ready_at))

    def _image_done(self, image: int, t: int) -> None:
        self.image_done_ps[image] = t
        self._left -= 1
        if not self._left:
            last = max(self.image_done_ps)
            self.env.timeout(last - self.env.now).callbacks.append(lambda _: self.done.succeed(last))


@dataclass
class NodeActivity:
    """What a node did: busy time of its PEs (or unit) and the span of its work."""

    busy_ps: int = 0
    first_ps: int | None = None
    last_ps: int = 0

    def span(self, start: int, end: int) -> None:
        if self.first_ps is None or start < self.first_ps:
            self.first_ps = start
        if end > self.last_ps:
            self.last_ps = end


def tier2_latency(plan: Plan, rp: ReplicaPlan, pes: frozenset[int]) -> int | None:
    """The tier-2 scaling a replica's drains wait for with ``pes`` scaled: its slowest scaled
    PE's (None: none of its PEs is scaled)."""
    return max((plan.pe_tier2_ps[p] for p in rp.pes if p in pes), default=None)


def tier2_timing(plan: Plan, pes: frozenset[int]) -> tuple[int | None, ...]:
    """Per replica in plan order, its :func:`tier2_latency`: all of the timing that tier-2
    scaling of ``pes`` changes."""
    return tuple(tier2_latency(plan, rp, pes) for node in plan.nodes for rp in node.replicas)


class ChipModel:
    """Components, counters and timeline of one mapped network on one chip, in ``env``."""

    def __init__(self, env: Environment, deployment: Deployment, *,
                 mode: str = "coarse", scaled_pes: Iterable[int] = frozenset(),
                 counters: Counters | None = None, record_timeline: bool = True) -> None:
        if not isinstance(env, Environment):
            raise TypeError("a ChipModel runs in xsim.engine.servers.Environment (it counts the "
                            f"events its wakes schedule), got {type(env).__name__}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "fine" and deployment.arch.chip.pipeline_start == "window":
            raise ValueError("mode 'fine' books one MVM at a time as the clock reaches it, so a "
                             "row is known to its readers only once it is done: it needs the arch's "
                             "chip.pipeline_start: row (window-level start is a coarse-mode model)")
        self.env = env
        self.deployment = deployment
        self.arch = deployment.arch
        self.mapping = deployment.mapping
        self.hw = deployment.hardware
        self.mode = mode
        self.window_start = self.arch.chip.pipeline_start == "window"
        self.stall = self.arch.chip.backpressure == "all"
        self.counters = counters if counters is not None else Counters()
        self.timeline: list[tuple[int, int, str, int, str]] | None = [] if record_timeline else None
        self.plan: Plan = deployment.derived("engine.plan", build_plan)
        self._wiring = _wiring_for(deployment, self.plan)
        self._wiring.reset(env)
        self.servers: dict[tuple[str, int], Server] = self._wiring.servers
        self.activity = [NodeActivity() for _ in self.plan.nodes]
        self.groups: list[PeGroup] = []
        self.group_of_pe: dict[int, PeGroup] = {}
        self._replicas: list[tuple[Node, ReplicaPlan, PeGroup, tuple[_Bound, ...], tuple[int, ...]]] = []
        self._rows: dict[int, list[tuple[_Bound, int]]] = {}
        self._row_parts: list[list[int]] = []
        self._tier2: dict[int, tuple[int, int]] = {}
        wired = iter(self._wiring.replicas)
        for node in self.plan.nodes:
            if node.replicas:
                parts = [0] * node.rows
                for rp in node.replicas:
                    group = PeGroup(env, node.name, rp)
                    self.groups.append(group)
                    for pe in rp.pes:
                        self.group_of_pe[pe] = group
                    sources = tuple(self.counters.register(node.name, c) for c in rp.counts)
                    self._replicas.append((node, rp, group, next(wired), sources))
                    for r, n in enumerate(rp.share):
                        parts[r] += n > 0
                self._row_parts.append(parts)
            else:
                wired_rows = self._wiring.rows[node.index]
                sources: dict[int, int] = {}
                for (_, k), row in zip(wired_rows, node.row_plans):
                    if k not in sources:
                        sources[k] = self.counters.register(node.name, row.counts)
                self._rows[node.index] = [(bound, sources[k]) for bound, k in wired_rows]
                self._row_parts.append([1] * node.rows)
        # Whose reads free buffer slots a producer waits for: the image stream's readers, and
        # every reader with chip.backpressure: all. Only theirs are tracked.
        readers = {b.consumer for bufs in (self.plan.buffers if self.stall else self.plan.buffers[:1])
                   for b in bufs}
        self.tracks_reads = [node.index in readers for node in self.plan.nodes]
        self.scaled_pes: frozenset[int] = frozenset()
        try:
            self.set_scaled_pes(scaled_pes)
        except ValueError:
            self.close()
            raise

    def close(self) -> None:
        """Give the servers back to the deployment for the next chip (after reading the results:
        the next chip resets them)."""
        if self._wiring.lent:
            self._wiring.lent = False

    def set_scaled_pes(self, pes: Iterable[int]) -> None:
        """Route the columns of ``pes`` through tier-2 scaling from now on (a task switch)."""
        pes = self._known(pes)
        self.scaled_pes = pes
        self._tier2 = {}
        for node, rp, _, _, _ in self._replicas:
            scaled = [p for p in rp.pes if p in pes]
            if scaled:
                columns = sum(rp.tier2_columns[p] for p in scaled)
                source = self.counters.register(node.name, tier2_counts(self.plan, columns))
                self._tier2[id(rp)] = (source, tier2_latency(self.plan, rp, pes))

    def recount_scaled_pes(self, pes: Iterable[int]) -> None:
        """After a run: count its tier-2 actions as if ``pes`` had been scaled instead. Exact
        where every replica gets the same tier-2 latency under both sets (the same
        :func:`tier2_timing`: then every booking, and so every time, is the same and only the
        scaled columns per MVM differ); a ValueError otherwise."""
        pes = self._known(pes)
        if tier2_timing(self.plan, pes) != tier2_timing(self.plan, self.scaled_pes):
            raise ValueError("the scaled PEs give other tier-2 latencies: the run would differ")
        for _, rp, _, _, _ in self._replicas:
            if id(rp) in self._tier2:
                columns = sum(rp.tier2_columns[p] for p in rp.pes if p in pes)
                self.counters.replace(self._tier2[id(rp)][0], tier2_counts(self.plan, columns))
        self.scaled_pes = pes

    def _known(self, pes: Iterable[int]) -> frozenset[int]:
        pes = frozenset(pes)
        unknown = sorted(p for p in pes if p not in self.group_of_pe)
        if unknown:
            raise ValueError(f"scaled_pes names PEs the mapping does not have: {unknown[:5]}")
        return pes

    def pes_of(self, layer: str) -> tuple[int, ...]:
        for node in self.plan.nodes:
            if node.name == layer:
                return node.pes
        raise KeyError(layer)

    def hold_pes(self, pes: Iterable[int], duration_ps: int):
        """Generator: take every PE group containing one of ``pes`` for ``duration_ps``."""
        groups = sorted({id(g): g for g in (self.group_of_pe[p] for p in pes)}.values(),
                        key=lambda g: g.pes[0])
        for group in groups:
            yield from group.take()
        yield self.env.timeout(duration_ps)
        for group in groups:
            group.give_back()

    def infer(self, images: int = 1, start_ps: int | None = None) -> Batch:
        """Start ``images`` pipelined inferences at ``start_ps`` (default: now); the batch."""
        env = self.env
        start = env.now if start_ps is None else start_ps
        if start < env.now:
            raise ValueError(f"start_ps {start} is before the current time {env.now}")
        batch = Batch(self, images, start)
        env.process(self._start(batch))
        return batch

    def _start(self, batch: Batch):
        if batch.start_ps > self.env.now:
            yield self.env.timeout(batch.start_ps - self.env.now)
        env = self.env
        for node in self.plan.nodes:
            if node.index == 0:
                env.process(self._source(batch, node))
            elif node.replicas:
                continue
            else:
                env.process(self._digital(batch, node))
        for item in self._replicas:
            env.process(self._replica(batch, *item))

    def _source(self, batch: Batch, node: Node):
        """The images over the off-chip link, row after row, as far ahead of the layers reading
        them as the input buffer allows (:attr:`Plan.input_depth_rows`): global input row ``g``
        is sent once every consumer has released row ``g - depth``. Rows sent without a wait go
        as one block, row ``r`` of it delivered at ``first + r·(last - first)/(n - 1)``."""
        env, (row, source) = self.env, self._rows[0][0]
        chain = self._wiring.calendars.chain
        activity, timeline, rows = self.activity[0], self.timeline, node.rows
        buffers, window = self.plan.buffers[0], self.window_start

        def wait(g: int):
            """What row ``g`` of the stream waits for: None when its slot is free now."""
            return _room(batch, buffers, rows, g, window)

        for image in range(batch.images):
            q = 0
            while q < rows:
                event = wait(image * rows + q)
                if event is not None:
                    yield event
                    continue
                n = 1
                while q + n < rows and wait(image * rows + q + n) is None:
                    n += 1
                now = env.now
                if q == 0:
                    batch.image_start_ps[image] = now
                _, link_end, _, _, first, last = chain(row.unit, row.deliver, EMPTY_WALK, now, now,
                                                       n, now)
                step = (last - first) / (n - 1) if n > 1 else 0
                for r in range(n):
                    ready = last if r == n - 1 else first + int(r * step)
                    if window:  # a row's last pixels land as the reader frees their slot
                        ready = max(ready, _freed(batch, buffers, rows, image * rows + q + r)[1])
                    batch.row_done(0, image, q + r, ready)
                self.counters.tally(source, n)
                activity.busy_ps += n * node.row_plans[0].busy_ps
                activity.span(now, link_end)
                if timeline is not None:
                    timeline.append((now, link_end, INPUT, -1, "offchip_in"))
                q += n

    def _digital(self, batch: Batch, node: Node):
        env, rows, timeline = self.env, self._rows[node.index], self.timeline
        chain = self._wiring.calendars.chain
        activity, name, kind = self.activity[node.index], node.name, node.kind
        unit_free = dict.fromkeys(node.tiles, 0)
        buffers = self.plan.buffers[node.index] if self.stall else ()
        track_reads = self.tracks_reads[node.index]
        for image in range(batch.images):
            inputs = [(batch.progress[p][image], need, lo)
                      for (p, need), lo in zip(node.producers, node.firsts)]
            for r, ((row, source), plan) in enumerate(zip(rows, node.row_plans)):
                g = image * node.rows + r
                while (room := _room(batch, buffers, node.rows, g, self.window_start)) is not None:
                    yield room
                for st, need, lo in inputs:
                    wait = st.wait_for(need[r], False, lo[r])
                    if wait is not None:
                        yield wait
                home = plan.tile
                if unit_free[home] > env.now:  # rows leave a tile's units in order
                    yield env.timeout(unit_free[home] - env.now)
                now = env.now
                # The units stream the row's pixels: its inputs are read until the last pixel is
                # done, and its first pixel is out a pixel's share of the row's time early.
                start, _, t, _, _, ready = chain(row.read, row.unit, row.deliver, now, now, 1, now)
                if track_reads:
                    batch.row_read(node.index, image, r, t, now)
                first = now + (ready - now) // node.width
                unit_free[home] = t
                self.counters.tally(source)
                activity.busy_ps += plan.busy_ps
                activity.span(start, t)
                if timeline is not None:
                    timeline.append((start, t, name, home, kind))
                if self.window_start:  # its last pixels land as the reader frees their slot
                    ready = max(ready, _freed(batch, buffers, node.rows, g)[1])
                batch.row_done(node.index, image, r, ready, min(first, ready))

    def _replica(self, batch: Batch, node: Node, rp: ReplicaPlan, group: PeGroup,
                 bound: tuple[_Bound, ...], sources: tuple[int, ...]):
        env, counters, timeline = self.env, self.counters, self.timeline
        activity = self.activity[node.index]
        mvm, fetch, name, home, index = rp.mvm_ps, bound[0].fetch, node.name, rp.home, node.index
        drains = [b.drain for b in bound]
        compute = self._wiring.calendars.compute
        per_image = sum(rp.share) * mvm
        fine = self.mode == "fine"
        window = self.window_start
        buffers, rows = self.plan.buffers[index] if self.stall else (), node.rows
        width, n_reps = node.width, len(node.replicas)
        track_reads = self.tracks_reads[index]
        units = counters._units
        for image in range(batch.images):
            inputs = [(batch.progress[p][image], need, lo)
                      for (p, need), lo in zip(node.producers, node.firsts)]
            group.busy_ps += per_image
            activity.busy_ps += per_image
            for r, n in enumerate(rp.share):
                if not n:
                    continue
                # The row is written into its consumers' eDRAM: it waits for room there.
                g = image * rows + r
                freed_open = freed_full = 0
                if buffers:
                    while (room := _room(batch, buffers, rows, g, window)) is not None:
                        yield room
                    # With a window-level start, an MVM cannot end before the share of the slot
                    # its pixel overwrites has been freed.
                    if window:
                        freed_open, freed_full = _freed(batch, buffers, rows, g)
                # With a window-level start the row begins once its first window exists; the MVM
                # of its pixel x cannot end before the share (x+1)/width of its last input row
                # has arrived (``opened``: every input's first window; ``full``: its rows).
                opened = full = 0
                for st, need, lo in inputs:
                    m = need[r]
                    if st.known <= m:  # woken once the rows exist, with their span
                        a, b = yield st.wait_for(m, window, lo[r])
                    else:
                        a, b = st.span(lo[r], m)
                    t = a if window else b
                    if t > env.now:
                        yield env.timeout(t - env.now)
                    if a > opened:
                        opened = a
                    if b > full:
                        full = b
                first_px = (rp.replica - r * width) % n_reps
                if group._taken is not None:
                    yield from group.wait_free()
                tier2 = self._tier2.get(id(rp))
                tail = rp.tail_ps + (tier2[1] if tier2 else 0)
                drain = drains[rp.row_drain[r]]
                units[sources[rp.row_drain[r]]] += n
                if tier2:
                    units[tier2[0]] += n
                items, count = (n, 1) if fine else (1, n)
                ready, first_ready, read_from = 0, None, None
                for item in range(items):
                    # The next inputs are fetched while the last MVM booked on the crossbars runs.
                    pace = group.xbar_free_ps - mvm
                    if pace > env.now:
                        yield env.timeout(pace - env.now)
                    floor = 0
                    if window:
                        # The replica's pixels of the row are x0 + i·R: the last one this booking
                        # computes needs the share (x + 1)/width of the row it reads (or frees).
                        pos = first_px + (item if fine else n - 1) * n_reps + 1
                        floor = opened + pos * (full - opened) // width + mvm
                        if freed_full:
                            freed = freed_open + pos * (freed_full - freed_open) // width
                            if freed > floor:
                                floor = freed
                    x0, x1, t, end = compute(fetch, drain, env.now, count, mvm, group.xbar_free_ps,
                                             tail, floor)
                    group.xbar_free_ps = x1
                    if read_from is None:
                        read_from = x0
                    if end > ready:
                        ready = end
                    if first_ready is None:
                        first_ready = t
                    if activity.first_ps is None:
                        activity.first_ps = x0
                    if x1 > activity.last_ps:
                        activity.last_ps = x1
                    if timeline is not None:
                        timeline.append((x0, x1, name, home, "mvm"))
                # Its inputs were read from the first MVM's start to the last one's.
                if track_reads:
                    batch.row_read(index, image, r, x1 - mvm, read_from)
                batch.row_done(index, image, r, ready, first_ready)
