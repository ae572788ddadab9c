"""The static datapath plan: what every layer moves and counts per MVM or per row, and where.

Built once from the frozen arch, the mapping and the network; no simpy here. The engine binds the
server keys of the plan to its bandwidth servers and replays the plan in time.

Nodes. The network becomes a list of nodes: node 0 is the network input (streamed in over the
off-chip link), then every conv/linear layer (its PEs, per replica) and every digital layer
(maxpool, avgpool, residual add) in network order. ``flatten`` is a view, not a node: its consumer
reads its producer directly and needs all of its rows. A consumer's output row ``r`` needs the
producer's rows up to ``min(H_in - 1, r·stride - padding + kernel - 1)`` (conv, pool), row ``r``
(add) or all rows (linear) — ISAAC's row-level inter-layer pipelining.

Placement of data. A layer's output row is written into the eDRAM of every tile that reads it
(every tile of a weight consumer's PEs, whose replicas compute pixels of every row; the tile of
each row of a digital consumer whose window covers it), so every read is local. A replica
assembles its outputs at its *home tile* (the tile of its first PE). A digital layer's rows are
dealt over tiles (:meth:`_Builder._digital_tiles`): one tile when that keeps pace with the
crossbars (unreplicated networks: the home tile of its first producer), more for a layer a
replicated producer feeds faster than one tile's units can serve, since every tile has its own
pooling, shift-and-add and activation units. The off-chip link attaches at router 0; it brings
the image in row by row and takes the logits out, full duplex (inputs and results on separate
channels) unless the link says ``duplex: half``.

Network on chip: a concentrated mesh of ``ceil(tiles / tiles_per_router)`` routers, router ``r``
at column ``r mod w`` and row ``r div w`` of a ``w = ceil(sqrt(routers))``-wide grid, tile ``t``
on router ``t div tiles_per_router``. Messages follow dimension-order (XY) routes, columns first;
a message to several tiles is one multicast along the union of its routes.

Counting model, per MVM of one layer replica (one output pixel), with ``cyc = ceil(input_bits /
dac_bits)`` read cycles, ``cpw`` columns per weight, ``u`` unit columns (offset encoding, else 0),
``in_b = ceil(input_bits / 8)`` bytes per activation and ``ps_b = ceil((input_bits + weight_bits)
/ 8)`` bytes per partial sum (the full product width), summed over the replica's arrays, each
with ``r_b`` used rows and ``c`` used columns (:meth:`xsim.mapping.Mapping.pe_arrays`: for a
dense layer ``r_b`` ≤ rows of K and ``c = w_c·cpw + u`` for ``w_c`` weights; an array holding
``g`` groups block-diagonally drives ``g`` groups' rows and senses ``g`` unit columns; the
off-diagonal cells sit on driven rows and sensed columns, so they count as read):

- ``dac.row_drive = cyc·Σ r_b``; over a dense layer's grid that is ``cyc·K·col_blocks``;
- ``crossbar.cell_read = cyc·Σ r_b·c``, dense: ``cyc·K·(N·cpw + col_blocks·u)``;
- ``sample_hold.sample = adc.conversion = pe_shift_add.add = cyc·Σ c``,
  dense: ``cyc·row_blocks·(N·cpw + col_blocks·u)``;
- ``input_register.byte = in_b·Σ_PE inputs_PE`` (each PE gets its rows of every group its columns
  belong to; dense: ``in_b·K·cb_groups``);
- ``edram.byte`` (read) and ``bus.byte`` (broadcast to the tile's PEs): ``in_b`` × the distinct
  inputs used on each tile, i.e. ``in_b·K·groups`` for a replica on one tile — every MVM reads its whole input
  vector (no sliding-window reuse in the input registers: an upper bound on eDRAM traffic);
- ``pe_output_register.byte = bus.byte (out) = tile_output_register.byte = ps_b·N·rb_groups``:
  every PE writes its columns' partial sums, which cross its tile's bus into its tile's output
  register;
- ``tile_shift_add.op = (rb_groups - 1)·N``, the reduction across row-block groups: each tile
  adds up its own PEs' sums of the same columns, a remote tile sends its ``ps_b`` per column to
  the home tile over the NoC, and the home adds up the tiles' sums (``_reduction``);
  ``sigmoid.op = N`` when the layer has an activation;
- ``tier2_scale.op = weight_columns`` and ``tier2_register.byte = ceil(weight_columns·scale_bits
  / 8)`` per MVM of every PE in ``scaled_pes`` (XMA2 tier 2);
- NoC: a message of ``B`` bytes is ``F = ceil(8·B / flit_bits)`` flits and costs ``F·H``
  ``router.flit`` over the ``H`` routers of its route or multicast tree: each remote tile's
  summed partial sums (``ps_b`` per column it holds) to home, and the ``N·in_b`` output bytes to
  the tiles that read the row, where they cost ``edram.byte`` (write) once per tile;
- off-chip: ``offchip.byte`` = the image (``C·H·W·in_b``) in and the logits out.

A digital layer counts per output row: ``edram.byte`` for every input element it reads (each once),
one ``maxpool.op`` (maxpool) or ``tile_shift_add.op`` (avgpool, residual add) per output element
(none for a concatenation, which only places its inputs side by side), one ``sigmoid.op`` per
output element when it has an activation, and the delivery of its row.

Timing model, per item (one MVM, or one row of a digital layer / of the input), as a chain of
stages. A *server* stage holds a shared bandwidth server for ``bytes / rate`` (rounded up to whole
clocks): the tile's eDRAM port at ``min(edram, bus) width`` per digital clock, every router on a
message's route (or multicast tree) at ``ports`` flits per router clock, all held from the same
time (wormhole routing), then ``F + H`` router clocks of serialisation and hop latency for the
longest route of ``H`` routers, the off-chip links at their summed bandwidth (one such server per
direction under full duplex), and the tile's digital units at
``count`` ops per digital clock. A *latency* stage is private to the item: the crossbar phase of
``cyc`` read cycles (``arch.read_cycle_ps`` each, the larger of the read pulse and columns-per-ADC
/ ADC rate), one more read cycle for the last conversion and shift-and-add, the PE output
register's drain onto the bus, the tier-2 scaling of the PE's columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from xsim.config import ConfigError
from xsim.deployment import Deployment
from xsim.mapping import LayerMapping, Mapping, PePlacement
from xsim.models.graph import Layer

INPUT = "input"
OFFCHIP = -1
"""Tile id standing for the off-chip link (attached at router 0)."""

DIGITAL_HEADROOM = 3
"""A digital layer spreads over enough tiles to keep its units at most 1/3 busy at the crossbars'
interval."""

Key = tuple[str, int]
"""A bandwidth server: ("edram", tile), ("router", r), ("offchip", 0), ("maxpool", tile), ..."""
Counts = dict[tuple[str, str], int]


@dataclass(frozen=True)
class Stage:
    """One step of an item's path: ``server`` held for ``item_ps`` per item, or a fixed latency."""

    server: Key | None
    item_ps: int


Path = tuple[Stage, ...]
Fork = tuple[Path, ...]
"""Paths that an item takes in parallel (e.g. one delivery per consuming tile); it leaves when the
slowest is done."""


@dataclass(frozen=True)
class ReplicaPlan:
    """One replica of a weight layer: its PEs, its share of every output row and its datapath."""

    replica: int
    pes: tuple[int, ...]
    home: int
    share: tuple[int, ...]
    fetch: Fork
    mvm_ps: int
    tail_ps: int
    drains: tuple[tuple[Fork, ...], ...]
    """the distinct drains of an MVM (the deliveries differ by which tiles read a row)"""
    row_drain: tuple[int, ...]
    """per output row, the index of its drain and of its counts"""
    counts: tuple[Counts, ...]
    """actions of one MVM, per drain"""
    tier2_columns: dict[int, int]
    """weight columns per PE, for tier-2 scaling of any subset of the PEs"""


@dataclass(frozen=True)
class RowPlan:
    """One output row of a digital layer or of the input: read, compute, deliver."""

    read: Fork
    unit: Path
    deliver: tuple[Fork, ...]
    busy_ps: int
    counts: Counts
    tile: int = OFFCHIP
    """the tile whose digital units compute the row (OFFCHIP for the input's rows)"""


@dataclass(frozen=True)
class Node:
    index: int
    name: str
    kind: str
    rows: int
    producers: tuple[tuple[int, tuple[int, ...]], ...]
    """(producer node, last producer row needed by each output row)"""
    firsts: tuple[tuple[int, ...], ...]
    """per producer, the first of its rows each output row reads"""
    home: int
    tiles: tuple[int, ...]
    pes: tuple[int, ...] = ()
    replicas: tuple[ReplicaPlan, ...] = ()
    row_plans: tuple[RowPlan, ...] = ()
    consumers: tuple[int, ...] = field(default=(), compare=False)
    width: int = 1
    """pixels in one output row (dealt round-robin over a weight layer's replicas)"""


@dataclass(frozen=True)
class Plan:
    nodes: tuple[Node, ...]
    output: int
    mvm_cycles: int
    read_cycle_ps: int
    pe_tier2_ps: dict[int, int]
    """extra drain latency of a PE when its columns are scaled"""
    tier2_scale_bits: int
    buffers: tuple[tuple[Buffer, ...], ...] = ()
    """per node, the eDRAM buffer its output rows go into at each of its consumers"""
    edram_windows: dict[int, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    """per tile, the bytes every stream its eDRAM holds needs at least, by consuming layer"""

    @property
    def input_depth_rows(self) -> int:
        """Input rows the image stream may run ahead of its slowest-releasing reader by."""
        return min((b.depth for b in self.buffers[0]), default=1 << 30) if self.buffers else 1 << 30


@dataclass(frozen=True)
class Buffer:
    """Where one node's output rows wait for one consumer: ``depth`` rows of it fit in the
    consumer's eDRAM, and producer row ``k`` is freed once the consumer's output row
    ``release[k]`` exists (the last of its rows that reads ``k``)."""

    consumer: int
    depth: int
    release: tuple[int, ...]


class _Geometry:
    """Clock, bandwidth and route arithmetic shared by every part of the plan."""

    def __init__(self, deployment: Deployment) -> None:
        arch, mapping = deployment.arch, deployment.mapping
        self.arch = arch
        self.in_bytes = math.ceil(mapping.input_bits / 8)
        self.psum_bytes = math.ceil((mapping.input_bits + mapping.weight_bits) / 8)
        self.edram_bits = deployment.edram_port_bits
        self.router_spec = arch.role("router")
        self.link = arch.role("offchip")
        self.links = arch.units(self.link)
        routers = math.ceil(arch.tiles / arch.tiles_per_router)
        self.mesh_width = math.ceil(math.sqrt(routers))
        self.link_out = 1 if self.link.duplex == "full" else 0
        """the off-chip server results leave on: its own direction (full duplex) or the input's"""

    def clocks_ps(self, cycles: int, ghz: float | None = None) -> int:
        ghz = ghz or self.arch.chip.digital_clock_ghz
        return math.ceil(cycles * 1000 / ghz - 1e-9)

    def edram_ps(self, nbytes: int) -> int:
        return self.clocks_ps(math.ceil(8 * nbytes / self.edram_bits))

    def ops_ps(self, ops: int, units: int) -> int:
        return self.clocks_ps(math.ceil(ops / units))

    def router(self, tile: int) -> int:
        return 0 if tile == OFFCHIP else tile // self.arch.tiles_per_router

    def route(self, a: int, b: int) -> list[int]:
        """Routers from router ``a`` to router ``b``, X (columns) first, then Y (rows)."""
        w = self.mesh_width
        (ax, ay), (bx, by) = (a % w, a // w), (b % w, b // w)
        step = 1 if bx >= ax else -1
        path = [ay * w + x for x in range(ax, bx + step, step)]
        step = 1 if by >= ay else -1
        return path + [y * w + bx for y in range(ay + step, by + step, step)]

    def noc(self, messages: list[tuple[int, tuple[int, ...], int]], counts: Counts) -> tuple[Fork, ...]:
        """Router holds and wire latency of ``(src, dests, nbytes)`` messages sent together.

        One message reaches all its destination tiles as a multicast along the union of its XY
        routes: every router on that tree is held once for the message; ``F`` flits cost ``F``
        ``router.flit`` per router of the tree; the wire latency is ``F + H`` router clocks for
        the longest route of ``H`` routers. A tile's message to itself uses no router."""
        r = self.router_spec
        holds, latency = [], 0
        for src, dests, nbytes in messages:
            remote = [d for d in dests if d != src]
            if not remote:
                continue
            flits = math.ceil(8 * nbytes / r.flit_bits)
            routes = [self.route(self.router(src), self.router(d)) for d in remote]
            tree = list(dict.fromkeys(x for route in routes for x in route))
            _add(counts, "router", "flit", flits * len(tree))
            hold = self.clocks_ps(math.ceil(flits / r.ports), r.clock_ghz)
            holds.extend((Stage(("router", x), hold),) for x in tree)
            latency = max(latency, self.clocks_ps(flits + max(map(len, routes)), r.clock_ghz))
        if not holds:
            return ()
        return (tuple(holds), ((Stage(None, latency),),))

    def deliver(self, src: int, dests: tuple[int, ...], nbytes: int, counts: Counts) -> tuple[Fork, ...]:
        """One message from ``src`` into the eDRAM of every tile of ``dests`` (and out through
        the off-chip link for OFFCHIP): the multicast, then the writes in parallel."""
        if not dests:
            return ()
        writes = []
        for d in dests:
            if d == OFFCHIP:
                _add(counts, "offchip", "byte", nbytes)
                writes.append((Stage(("offchip", self.link_out), self.offchip_ps(nbytes)),))
            else:
                _add(counts, "edram", "byte", nbytes)
                writes.append((Stage(("edram", d), self.edram_ps(nbytes)),))
        return (*self.noc([(src, dests, nbytes)], counts), tuple(writes))

    def offchip_ps(self, nbytes: int) -> int:
        return math.ceil(nbytes * 1000 / (self.links * self.link.bandwidth_gb_per_s) - 1e-9)


def _add(counts: Counts, component: str, action: str, n: int) -> None:
    if n:
        counts[(component, action)] = counts.get((component, action), 0) + n


def _replica_pes(lm: LayerMapping) -> list[tuple[int, ...]]:
    """The PEs of each replica of a layer, in replica order."""
    per = lm.pes_per_replica
    return [lm.pes[i : i + per] for i in range(0, len(lm.pes), per)]


def _reduction(pes: list[PePlacement]) -> tuple[dict[int, int], dict[int, int]]:
    """How one replica's partial sums meet, per MVM: every tile first adds up its own PEs' sums of
    the same columns (the PEs of a replica share a column range exactly or not at all), a remote
    tile sends its sums to the home tile, and the home adds up the tiles' sums of each column.
    Returns (``tile_shift_add`` ops per tile, the home's cross-tile ones included; weight
    columns each remote tile sends). The ops add up to ``(rb_groups - 1)·N`` however the PEs
    sit on tiles."""
    home = pes[0].tile
    cover: dict[tuple[int, int], dict[int, int]] = {}
    for p in pes:
        on = cover.setdefault((p.col_start, p.col_stop), {})
        on[p.tile] = on.get(p.tile, 0) + 1
    ops: dict[int, int] = {}
    sent: dict[int, int] = {}
    for (c0, c1), on in cover.items():
        width = c1 - c0
        for t, k in on.items():
            ops[t] = ops.get(t, 0) + (k - 1) * width
            if t != home:
                sent[t] = sent.get(t, 0) + width
        ops[home] = ops.get(home, 0) + (len(on) - 1) * width
    return ops, sent


def _release(first: tuple[int, ...], rows: int) -> tuple[int, ...]:
    """Per producer row ``k``, the consumer's output row after which no row reads ``k`` (the
    last output row whose window starts at or before it)."""
    out, r = [], 0
    for k in range(rows):
        while r + 1 < len(first) and first[r + 1] <= k:
            r += 1
        out.append(r)
    return tuple(out)


def stream_depths(rows: list, producers: list, firsts: list, consumers: list,
                  images: int = 3) -> dict[tuple[int, int], int]:
    """The fewest rows of each stream (producer ``p`` → consumer ``c``) that keep the pipeline
    from deadlocking on full buffers.

    A node writes its output row only when every consumer's buffer has a free row, and frees a
    row of its producer once its own rows reading it exist. Where a node feeds two paths that
    join again (a residual block: the add reads the skip path only after the main path, which
    reads further rows of the same input, has produced its row), too small a skip buffer stops
    the fork, which starves the main path the join waits for. Such a network of processes with
    blocking reads and writes deadlocks or not whatever the timing (it is a bounded Kahn process
    network), so an untimed run decides it: every stream starts at the rows one output row of its
    consumer reads, the rows of ``images`` images are played out, and wherever every node is
    stuck, the streams whose producers wait only for room grow by a row; larger buffers never
    deadlock where smaller ones do not.
    """
    n_nodes = len(rows)
    release: dict[tuple[int, int], tuple[int, ...]] = {}
    depth: dict[tuple[int, int], int] = {}
    for c in range(1, n_nodes):
        for p, (least, first) in stream_reads(c, producers, firsts).items():
            depth[(p, c)] = least
            release[(p, c)] = _release(first, rows[p])
    total = [r * images for r in rows]
    made = [0] * n_nodes

    def waits_for(n: int) -> tuple[int, bool] | None:
        """The node that node ``n`` waits for and whether for room in its buffer; None if free."""
        image, r = divmod(made[n], rows[n])
        for p, need in producers[n]:
            if made[p] <= image * rows[p] + need[r]:
                return p, False
        for c in consumers[n]:
            old = made[n] - depth[(n, c)]
            if old >= 0:
                oi, k = divmod(old, rows[n])
                if made[c] <= oi * rows[c] + release[(n, c)][k]:
                    return c, True
        return None

    pending = set(range(n_nodes))
    while True:
        while pending:
            n = pending.pop()
            moved = False
            while made[n] < total[n] and waits_for(n) is None:
                made[n] += 1
                moved = True
            if moved:
                pending.update(consumers[n])
                pending.update(p for p, _ in producers[n])
        if made == total:
            return depth
        # Every unfinished node waits for another: follow the waits to a cycle and give each
        # stream on it that is full a row more.
        n = next(i for i in range(n_nodes) if made[i] < total[i])
        seen: dict[int, int] = {}
        path: list[tuple[int, int, bool]] = []
        while n not in seen:
            seen[n] = len(path)
            target, room = waits_for(n)
            path.append((n, target, room))
            n = target
        cycle = path[seen[n]:]
        full = [(a, b) for a, b, room in cycle if room]
        if not full:  # cannot happen: a cycle of input waits alone would be a cyclic network
            raise RuntimeError("the pipeline plan waits in a cycle of inputs")
        for edge in full:
            depth[edge] += 1
            pending.add(edge[0])


def stream_reads(c: int, producers: list, firsts: list) -> dict[int, tuple[int, tuple[int, ...]]]:
    """Per producer ``p`` of node ``c``: the rows of ``p`` one output row of ``c`` reads at most,
    and the first row of ``p`` each output row reads (a node read twice: both reads' union)."""
    reads: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for (p, last), first in zip(producers[c], firsts[c]):
        if p in reads:
            seen_last, seen_first = reads[p]
            last = tuple(max(a, b) for a, b in zip(last, seen_last))
            first = tuple(min(a, b) for a, b in zip(first, seen_first))
        reads[p] = (last, first)
    return {p: (max(lr - fr + 1 for lr, fr in zip(last, first)), first)
            for p, (last, first) in reads.items()}


def _first_needs(consumer: Layer, rows: int, through_flatten: bool) -> tuple[int, ...]:
    """The first producer row each output row of ``consumer`` reads."""
    if through_flatten or consumer.kind == "linear":
        return (0,) * rows
    if consumer.kind == "add":
        return tuple(range(rows))
    sh, ph = consumer.stride[0], consumer.padding[0]
    return tuple(max(0, r * sh - ph) for r in range(rows))


def _needs(consumer: Layer, rows: int, producer_rows: int, through_flatten: bool) -> tuple[int, ...]:
    if through_flatten or consumer.kind == "linear":
        return (producer_rows - 1,) * rows
    if consumer.kind in ("add", "concat"):
        return tuple(range(rows))
    kh, sh, ph = consumer.window[0], consumer.stride[0], consumer.padding[0]
    return tuple(max(0, min(producer_rows - 1, r * sh - ph + kh - 1)) for r in range(rows))


def _row_share(rows: int, width: int, replicas: int, replica: int) -> tuple[int, ...]:
    """MVMs of ``replica`` in each output row: pixels are dealt round-robin over the replicas."""
    whole, extra = divmod(width, replicas)
    return tuple(whole + (1 if (replica - r * width) % replicas < extra else 0) for r in range(rows))


def _crossbar_counts(mapping: Mapping, pe: PePlacement, cycles: int) -> Counts:
    arrays = mapping.pe_arrays(pe)
    counts: Counts = {}
    conversions = cycles * sum(c for _, c in arrays)
    _add(counts, "dac", "row_drive", cycles * sum(r for r, _ in arrays))
    _add(counts, "crossbar", "cell_read", cycles * sum(r * c for r, c in arrays))
    _add(counts, "sample_hold", "sample", conversions)
    _add(counts, "adc", "conversion", conversions)
    _add(counts, "pe_shift_add", "add", conversions)
    return counts


class _Builder:
    def __init__(self, deployment: Deployment) -> None:
        self.arch, self.mapping, self.hw = deployment.arch, deployment.mapping, deployment.hardware
        self.geo = _Geometry(deployment)
        self.cycles = self.hw.mvm_cycles
        self.cycle_ps = self.arch.read_cycle_ps
        self.xbar_interval_ps = crossbar_interval_ps(deployment)
        self.digital_load = self._replica_load()

    def build(self) -> Plan:
        net = self.mapping.network
        by_layer = {lm.layer.name: lm for lm in self.mapping.layers}
        alias: dict[str, tuple[int, bool]] = {INPUT: (0, False)}
        layers: list[Layer | None] = [None]
        homes, tiles, rows = [0], [(0,)], [net.input_shape[1]]
        spread: list[tuple[int, ...]] = [(0,)]
        """per node, the tiles a digital layer reading it deals its rows over: the home tiles of a
        weight layer's replicas, a digital layer's own tiles"""
        producers: list[tuple] = [()]
        firsts: list[tuple] = [()]
        row_tiles: dict[int, tuple[int, ...]] = {}
        """per digital node, the tile of each output row"""
        ins_of: list[list[tuple[int, bool]]] = [[]]
        for layer in net.layers:
            if layer.kind == "flatten":
                alias[layer.name] = (alias[layer.inputs[0]][0], True)
                continue
            alias[layer.name] = (len(layers), False)
            ins = [alias[name] for name in layer.inputs]
            out_rows = layer.out_shape[1]
            producers.append(tuple(
                (p, _needs(layer, out_rows, rows[p], flat)) for p, flat in ins))
            firsts.append(tuple(_first_needs(layer, out_rows, flat) for _, flat in ins))
            ins_of.append(ins)
            layers.append(layer)
            rows.append(out_rows)
        output = alias[net.output.name][0]
        consumers: list[list[int]] = [[] for _ in layers]
        for index, prods in enumerate(producers):
            for p, _ in prods:
                if index not in consumers[p]:
                    consumers[p].append(index)
        minimum = stream_depths(rows, producers, firsts, consumers)
        need = {c: self._stream_windows(c, layers, producers, firsts)
                for c in range(1, len(layers))}
        # eDRAM bytes already promised in each tile: the whole rows one output row reads of
        # every stream of the weight layers there (what the engine holds, see _buffers).
        held = {c: sum(max(need[c][p], least * self._row_bytes(layers, p))
                       for p, (least, _) in stream_reads(c, producers, firsts).items())
                for c in range(1, len(layers))}
        promised: dict[int, float] = {}
        for c in range(1, len(layers)):
            if layers[c].has_weights:
                for t in {self.mapping.pes[i].tile for i in by_layer[layers[c].name].pes}:
                    promised[t] = promised.get(t, 0) + held[c]
        for index in range(1, len(layers)):
            layer, ins = layers[index], ins_of[index]
            if layer.has_weights:
                lm = by_layer[layer.name]
                placed = [self.mapping.pes[i] for i in lm.pes]
                homes.append(placed[0].tile)
                tiles.append(tuple(sorted({p.tile for p in placed})))
            else:
                first = ins[0][0]
                homes.append(homes[first])
                row_tiles[index] = self._digital_tiles(layer, spread[first] + tiles[first],
                                                       held[index], promised)
                tiles.append(tuple(sorted(set(row_tiles[index]))))
            spread.append(tiles[-1] if not layer.has_weights else tuple(sorted(
                {self.mapping.pes[pes[0]].tile for pes in _replica_pes(by_layer[layer.name])})))
        # Row q of a node goes to every tile of a weight consumer (its replicas compute pixels of
        # every row) and to the tiles of a digital consumer whose rows read q.
        wanted: list[list[set[int]]] = [[set() for _ in range(n)] for n in rows]
        for c in range(1, len(layers)):
            for (p, last), first in zip(producers[c], firsts[c]):
                for r in range(rows[c]):
                    at = tiles[c] if layers[c].has_weights else (row_tiles[c][r],)
                    for q in range(first[r], last[r] + 1):
                        wanted[p][q].update(at)
        out = (OFFCHIP,)
        dests = [tuple(tuple(sorted(d)) + (out if index == output else ()) for d in wanted[index])
                 for index in range(len(layers))]
        everywhere = tuple(sorted(set().union(*wanted[0])))
        nodes = [self._input_node(rows[0], everywhere, tuple(consumers[0]))]
        for index in range(1, len(layers)):
            layer = layers[index]
            common = dict(index=index, name=layer.name, kind=layer.kind, rows=rows[index],
                          firsts=firsts[index], width=layer.out_shape[2],
                          producers=producers[index], home=homes[index], tiles=tiles[index],
                          consumers=tuple(consumers[index]))
            if layer.has_weights:
                lm = by_layer[layer.name]
                reps = self._replicas(lm, dests[index])
                nodes.append(Node(**common, pes=lm.pes, replicas=reps))
            else:
                nodes.append(Node(**common, row_plans=self._digital_rows(
                    layer, row_tiles[index], producers[index], layers, dests[index])))
        units = self.arch.unit_count("tier2_scale", "pe")
        pe_tier2 = {p.index: self.geo.ops_ps(p.weight_columns, units) for p in self.mapping.pes}
        buffers, windows = self._buffers(layers, rows, producers, firsts, consumers, tiles, row_tiles,
                                         minimum, need)
        return Plan(nodes=tuple(nodes), output=output, mvm_cycles=self.cycles,
                    read_cycle_ps=self.cycle_ps, pe_tier2_ps=pe_tier2,
                    tier2_scale_bits=self.arch.tier2.scale_bits, buffers=buffers,
                    edram_windows=windows)

    def _window_bytes(self, consumer: Layer, shape: tuple[int, int, int]) -> int:
        """Bytes of a producer's output (``shape``) a consumer must hold to compute (ISAAC's
        window-level buffering): ``(kh - 1)`` rows and ``kw`` pixels for a conv or maxpool, the
        whole input vector for a linear layer, one pixel for a residual add or an average pool
        (each reads every input element once, in order, into a running sum)."""
        c, h, w = shape
        if consumer.kind in ("conv", "maxpool"):
            return ((consumer.kernel[0] - 1) * w + consumer.kernel[1]) * c * self.geo.in_bytes
        if consumer.kind == "linear":
            return c * h * w * self.geo.in_bytes
        return c * self.geo.in_bytes

    def _stream_windows(self, c: int, layers: list, producers: list, firsts: list) -> dict[int, int]:
        """Per producer of node ``c``, the bytes of its window in each tile of ``c``
        (:meth:`_window_bytes`)."""
        return {p: self._window_bytes(layers[c], layers[p].out_shape if p else
                                      self.mapping.network.input_shape)
                for p in stream_reads(c, producers, firsts)}

    def _buffers(self, layers: list, rows: list, producers: list, firsts: list, consumers: list,
                 tiles: list, row_tiles: dict, minimum: dict, windows_of: dict):
        """Per node, the buffer of its output rows at each consumer, and per tile the window
        bytes of every stream it holds; raises ConfigError when a tile's eDRAM cannot hold its
        streams' windows, or a skip path cannot get the rows :func:`stream_depths` requires.

        Every stream (producer ``p`` → consumer ``c``) holds its window (ISAAC's pixel-level
        buffering) in every tile of ``c``. The engine moves whole rows, so each stream holds the
        rows one output row of ``c`` reads (less than a row more than its window); the eDRAM a
        tile has left after those is shared by its streams as run-ahead, the same share of an
        image to each, so that every producer may run as far ahead in time (its rows come at
        its rows per image times the image rate): tile ``t`` gives each stream the share
        ``L_t = left_t / Σ image bytes`` of its producer's image, in rows ``L_t · rows``. A weight
        consumer's every tile holds every row (its replicas compute pixels of all rows), so the
        stream runs ahead by the smallest share; a digital consumer whose rows are dealt over
        tiles holds in each only the rows its own rows there read, so its tiles pool their
        shares: ``Σ L_t``. The stream's depth is the rows one output row reads plus that
        run-ahead in whole rows; with ``chip.backpressure: all`` it must reach the minimum that
        keeps the pipeline from deadlocking (:func:`stream_depths`).

        Only streams that wait for room run ahead: with ``chip.backpressure: input`` (the
        default) that is the image stream alone, so it takes the whole share, ``L_t`` being the
        bytes a tile has left over the image's bytes, and every other stream keeps the rows one
        output row reads (its consumer keeps pace without waiting on it)."""
        edram = self.arch.role("edram")
        capacity = edram.size_kb * 1024
        every = self.arch.chip.backpressure == "all"

        def waits(p: int) -> bool:
            return every or p == 0  # node 0 is the image stream

        streams: dict[tuple[int, int], tuple[int, int, tuple[int, ...]]] = {}
        held: dict[int, list[tuple[int, int, int]]] = {}
        for c in range(1, len(layers)):
            at = tiles[c] if layers[c].has_weights else sorted(set(row_tiles[c]))
            for p, (least, first) in stream_reads(c, producers, firsts).items():
                streams[(p, c)] = (self._row_bytes(layers, p), least, first)
                for t in at:
                    held.setdefault(t, []).append((p, c, windows_of[c][p]))
        ahead: dict[tuple[int, int], list[float]] = {}
        over: dict[tuple[int, int], float] = {}
        """per stream, the bytes its fullest tile lacks for the rows one output row reads"""
        for t, here in sorted(held.items()):
            total = sum(need for _, _, need in here)
            if total > capacity:
                worst = ", ".join(f"{layers[c].name} {need / 1024:.1f} KB" for _, c, need in
                                  sorted(here, key=lambda x: -x[2])[:4])
                raise ConfigError(
                    self.arch.source, f"components.{self.arch.role_name('edram')}.size_kb",
                    f"tile {t}'s eDRAM of {edram.size_kb:g} KB cannot hold the input windows of "
                    f"the layers it serves ({total / 1024:.1f} KB at {self.mapping.input_bits}-bit "
                    f"inputs: {worst}); it needs at least {math.ceil(total / 1024)} KB")
            # The engine holds whole rows: the rows one output row reads count in full here.
            whole = sum(max(need, streams[(p, c)][1] * streams[(p, c)][0]) for p, c, need in here)
            # The same share of an image to every stream that waits for room: as far ahead in
            # time as each other.
            image_bytes = sum(streams[(p, c)][0] * rows[p] for p, c, _ in here if waits(p))
            level = max(0.0, capacity - whole) / image_bytes if image_bytes else 0.0
            for p, c, _ in here:
                ahead.setdefault((p, c), []).append(level if waits(p) else 0.0)
                over[(p, c)] = max(over.get((p, c), 0.0), whole - capacity)
        depth: dict[tuple[int, int], int] = {}
        for (p, c), levels in ahead.items():
            row_bytes, least, _ = streams[(p, c)]
            run = (min(levels) if layers[c].has_weights else sum(levels)) * rows[p]
            depth[(p, c)] = least + int(run)
            if depth[(p, c)] < minimum[(p, c)] and self.arch.chip.backpressure == "all":
                short = (minimum[(p, c)] - least - run) * row_bytes + max(0.0, over[(p, c)])
                raise ConfigError(
                    self.arch.source, f"components.{self.arch.role_name('edram')}.size_kb",
                    f"the tiles of layer {layers[c].name!r} cannot buffer the "
                    f"{minimum[(p, c)]} rows of {layers[p].name if p else INPUT!r} its skip path "
                    f"needs ({row_bytes / 1024:.1f} KB each at {self.mapping.input_bits}-bit "
                    f"inputs): about {math.ceil(short / 1024)} KB more eDRAM there")
        buffers = tuple(
            tuple(Buffer(c, depth[(p, c)], _release(streams[(p, c)][2], rows[p]))
                  for c in consumers[p])
            for p in range(len(layers)))
        windows: dict[int, tuple[tuple[str, int], ...]] = {
            t: tuple((layers[c].name, need) for _, c, need in here) for t, here in held.items()}
        return buffers, windows

    def _digital_work(self, layer: Layer) -> dict[str, int]:
        """Time one output row of ``layer`` keeps each kind of a tile's digital units busy."""
        c, _, w = layer.out_shape
        unit = "maxpool" if layer.kind == "maxpool" else "tile_shift_add"
        work = {unit: self.geo.ops_ps(c * w, self.arch.unit_count(unit, "tile"))}
        if layer.activation:
            work["sigmoid"] = self.geo.ops_ps(c * w, self.arch.unit_count("sigmoid", "tile"))
        return work

    def _replica_load(self) -> dict[tuple[str, int], int]:
        """Per (digital unit, tile), the time per image the layer replicas keep it busy: the
        reduction across row-block groups, on the tiles that do it
        (:func:`_reduction`), and the activation (at home) of every MVM. The digital layers'
        placement balances against it (:meth:`_digital_tiles`)."""
        load: dict[tuple[str, int], int] = {}
        adders = self.arch.unit_count("tile_shift_add", "tile")
        sigmoids = self.arch.unit_count("sigmoid", "tile")
        for lm in self.mapping.layers:
            mvms = math.ceil(lm.layer.output_pixels / lm.replicas)
            for pes in _replica_pes(lm):
                placed = [self.mapping.pes[i] for i in pes]
                work = [(("tile_shift_add", t), self.geo.ops_ps(n, adders))
                        for t, n in _reduction(placed)[0].items() if n]
                if lm.layer.activation:
                    work.append((("sigmoid", placed[0].tile), self.geo.ops_ps(lm.N, sigmoids)))
                for key, ps in work:
                    load[key] = load.get(key, 0) + mvms * ps
        return load

    def _row_bytes(self, layers: list, p: int) -> int:
        """Bytes of one output row of node ``p``."""
        c, _, w = layers[p].out_shape if p else self.mapping.network.input_shape
        return c * w * self.geo.in_bytes

    def _digital_tiles(self, layer: Layer, near: tuple[int, ...], need: int,
                       promised: dict[int, float]) -> tuple[int, ...]:
        """The tile of each output row of a digital layer (its units are replicated in every tile).

        The layer needs ``k = ceil(rows · row time · DIGITAL_HEADROOM / crossbar interval)``
        tiles (at least one, at most one per row) to keep pace with the crossbars with units at
        most a third busy (a unit nearer saturation queues the rows of the layers it serves). Its
        candidates are the ``2k`` mapped tiles nearest (in routers) to its first producer's home,
        ``near`` (the producer's replica homes and tiles) first, whose eDRAM still has room for
        the ``need`` bytes of the layer's input streams (``promised`` holds what each tile's
        eDRAM already keeps, and is updated); where fewer than ``2k`` have room, the nearest
        others make up the number (their eDRAM then holds more whole rows than it has, while the
        windows' check in :meth:`_buffers` still applies): with 32 KB per tile on isaac128 one
        tile had room for ``layer1.1.add``, took all its 56 rows and queued them, and the
        replicated ResNet-50 reached 8.6 % of the crossbar bound instead of 63.8 %. Each row
        goes to the candidate whose busiest unit would be least loaded (the replicas' work and
        earlier digital layers' rows count), the nearer on a tie."""
        rows, work = layer.out_shape[1], self._digital_work(layer)
        tiles_needed = min(rows, max(1, math.ceil(rows * max(work.values()) * DIGITAL_HEADROOM
                                                  / self.xbar_interval_ps)))
        home = near[0] if near and near[0] >= 0 else 0
        mapped = range(max(1, self.mapping.tiles))
        hops = {t: len(self.geo.route(self.geo.router(home), self.geo.router(t))) for t in mapped}
        rank = {t: i for i, t in enumerate(dict.fromkeys(t for t in near if t >= 0))}
        order = sorted(mapped, key=lambda t: (t not in rank, rank.get(t, 0), hops[t], t))
        capacity = self.arch.role("edram").size_kb * 1024
        fits = [t for t in order if promised.get(t, 0) + need <= capacity]
        # Too few tiles with room: the nearest others make up the number.
        with_room = set(fits)
        candidates = (fits + [t for t in order if t not in with_room])[:2 * tiles_needed]
        load = self.digital_load
        out: list[int] = []
        for _ in range(rows):
            tile = min(candidates, key=lambda t: (max(load.get((u, t), 0) + ps for u, ps in work.items()),
                                                  hops[t], t))
            for unit, ps in work.items():
                load[(unit, tile)] = load.get((unit, tile), 0) + ps
            out.append(tile)
        for t in set(out):
            promised[t] = promised.get(t, 0) + need
        return tuple(out)

    def _input_node(self, rows: int, dests: tuple[int, ...], consumers: tuple[int, ...]) -> Node:
        """The image streams in row after row: one row plan, repeated ``rows`` times."""
        c, _, w = self.mapping.network.input_shape
        nbytes = c * w * self.geo.in_bytes
        counts: Counts = {}
        _add(counts, "offchip", "byte", nbytes)
        deliver = self.geo.deliver(OFFCHIP, dests, nbytes, counts)
        link = self.geo.offchip_ps(nbytes)
        row = RowPlan(read=((),), unit=(Stage(("offchip", 0), link),), deliver=deliver,
                      busy_ps=link, counts=counts)
        return Node(index=0, name=INPUT, kind=INPUT, rows=rows, producers=(), firsts=(), home=OFFCHIP,
                    tiles=(), row_plans=(row,) * rows, consumers=consumers)

    def _digital_rows(self, layer: Layer, homes: tuple[int, ...], producers: tuple, layers: list,
                      dests: tuple[tuple[int, ...], ...]) -> tuple[RowPlan, ...]:
        geo = self.geo
        c, out_rows, w = layer.out_shape
        unit = "maxpool" if layer.kind == "maxpool" else "tile_shift_add"
        units = self.arch.unit_count(unit, "tile")
        sigmoids = self.arch.unit_count("sigmoid", "tile")
        plans = []
        for r in range(out_rows):
            home = homes[r]
            counts: Counts = {}
            read_bytes = 0
            for p, need in producers:
                shape = layers[p].out_shape if p else self.mapping.network.input_shape
                new_rows = need[r] - (need[r - 1] if r else -1)
                read_bytes += max(0, new_rows) * shape[0] * shape[2] * geo.in_bytes
            _add(counts, "edram", "byte", read_bytes)
            ops = c * w
            stages = []
            # A concatenation only places its inputs side by side in eDRAM: no unit computes.
            if layer.kind != "concat":
                _add(counts, unit, "op", ops)
                stages.append(Stage((unit, home), geo.ops_ps(ops, units)))
            if layer.activation:
                _add(counts, "sigmoid", "op", ops)
                stages.append(Stage(("sigmoid", home), geo.ops_ps(ops, sigmoids)))
            out_bytes = ops * geo.in_bytes
            deliver = geo.deliver(home, dests[r], out_bytes, counts)
            read = ((Stage(("edram", home), geo.edram_ps(read_bytes)),),) if read_bytes else ((),)
            plans.append(RowPlan(read=read, unit=tuple(stages), deliver=deliver,
                                 busy_ps=sum(s.item_ps for s in stages), counts=counts, tile=home))
        return tuple(plans)

    def _replicas(self, lm: LayerMapping, dests: tuple[int, ...]) -> tuple[ReplicaPlan, ...]:
        layer = lm.layer
        out_rows, width = layer.out_shape[1], layer.out_shape[2]
        return tuple(
            self._replica(lm, [self.mapping.pes[i] for i in pes],
                          _row_share(out_rows, width, lm.replicas, replica), dests)
            for replica, pes in enumerate(_replica_pes(lm)))

    def _replica(self, lm: LayerMapping, pes: list[PePlacement], share: tuple[int, ...],
                 dests: tuple[tuple[int, ...], ...]) -> ReplicaPlan:
        arch, geo = self.arch, self.geo
        mapping = self.mapping
        home = pes[0].tile
        counts: Counts = {}
        for p in pes:
            for key, n in _crossbar_counts(mapping, p, self.cycles).items():
                _add(counts, *key, n)
            inputs = sum(b - a for _, a, b in mapping.pe_inputs(p))
            _add(counts, "input_register", "byte", inputs * geo.in_bytes)
            psums = p.weight_columns * geo.psum_bytes
            _add(counts, "pe_output_register", "byte", psums)
            _add(counts, "bus", "byte", psums)
            _add(counts, "tile_output_register", "byte", psums)
        rows_on_tile: dict[int, set[tuple[int, int, int]]] = {}
        for p in pes:
            rows_on_tile.setdefault(p.tile, set()).update(mapping.pe_inputs(p))
        fetch = []
        for tile, spans in sorted(rows_on_tile.items()):
            nbytes = sum(b - a for _, a, b in spans) * geo.in_bytes
            _add(counts, "edram", "byte", nbytes)
            _add(counts, "bus", "byte", nbytes)
            fetch.append((Stage(("edram", tile), geo.edram_ps(nbytes)),))
        reduce_ops, sent = _reduction(pes)
        adders = arch.unit_count("tile_shift_add", "tile")
        _add(counts, "tile_shift_add", "op", sum(reduce_ops.values()))
        local = tuple((Stage(("tile_shift_add", t), geo.ops_ps(n, adders)),)
                      for t, n in sorted(reduce_ops.items()) if n and t != home)
        gather = geo.noc([(t, (home,), n * geo.psum_bytes) for t, n in sorted(sent.items())], counts)
        if local:
            gather = (local, *gather)
        at_home = []
        if reduce_ops.get(home):
            at_home.append(Stage(("tile_shift_add", home), geo.ops_ps(reduce_ops[home], adders)))
        if lm.layer.activation:
            _add(counts, "sigmoid", "op", lm.N)
            at_home.append(Stage(("sigmoid", home),
                                 geo.ops_ps(lm.N, arch.unit_count("sigmoid", "tile"))))
        out_bytes = lm.N * geo.in_bytes
        drains, variants, row_drain = [], [], []
        where: dict[tuple[int, ...], int] = {}
        for d in dests:
            if d not in where:
                where[d] = len(drains)
                row_counts = dict(counts)
                deliver = geo.deliver(home, d, out_bytes, row_counts)
                drains.append((*gather, *(((tuple(at_home),),) if at_home else ()), *deliver))
                variants.append(row_counts)
            row_drain.append(where[d])
        drain_out = max(geo.clocks_ps(math.ceil(8 * p.weight_columns * geo.psum_bytes
                                                / arch.role("pe_output_register").width_bits)) for p in pes)
        return ReplicaPlan(
            replica=pes[0].replica, pes=tuple(p.index for p in pes), home=home, share=share,
            fetch=tuple(fetch), mvm_ps=self.cycles * self.cycle_ps,
            tail_ps=self.cycle_ps + drain_out, drains=tuple(drains), row_drain=tuple(row_drain),
            counts=tuple(variants), tier2_columns={p.index: p.weight_columns for p in pes},
        )


def crossbar_interval_ps(deployment: Deployment) -> int:
    """The interval the crossbars allow: the largest MVM time per image of any layer replica,
    ``ceil(output_pixels / replicas)`` MVMs of ``mvm_cycles`` read cycles."""
    mvm = deployment.hardware.mvm_cycles * deployment.arch.read_cycle_ps
    return max(math.ceil(lm.layer.output_pixels / lm.replicas) * mvm
               for lm in deployment.mapping.layers)


def build_plan(deployment: Deployment) -> Plan:
    """The datapath plan of a deployment."""
    return _Builder(deployment).build()


def tier2_counts(plan: Plan, columns: int) -> Counts:
    """Tier-2 actions of one MVM of a PE with ``columns`` scaled weight columns."""
    return {("tier2_scale", "op"): columns,
            ("tier2_register", "byte"): math.ceil(columns * plan.tier2_scale_bits / 8)}
