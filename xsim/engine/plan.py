"""The static datapath plan: what every layer moves and counts per MVM or per row, and where.

Built once from the frozen arch, the mapping and the network; no simpy here. The engine binds the
server keys of the plan to its bandwidth servers and replays the plan in time.

Nodes. The network becomes a list of nodes: node 0 is the network input (streamed in over the
off-chip link), then every conv/linear layer (its PEs, per replica) and every digital layer
(maxpool, avgpool, residual add) in network order. ``flatten`` is a view, not a node: its consumer
reads its producer directly and needs all of its rows. A consumer's output row ``r`` needs the
producer's rows up to ``min(H_in - 1, r·stride - padding + kernel - 1)`` (conv, pool), row ``r``
(add) or all rows (linear) — ISAAC's row-level inter-layer pipelining.

Placement of data. A layer's output rows are written into the eDRAM of every tile that consumes
them (the tiles of the consumer's PEs, or the consumer's home tile for a digital layer), so every
read is local. A replica assembles its outputs at its *home tile* (the tile of its first PE);
a digital layer runs in the home tile of its first producer (tile 0 for the network input). The
off-chip link attaches at router 0; it brings the image in row by row and takes the logits out.

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
  every PE writes its columns' partial sums, which cross its tile's bus into the home tile's
  output register (over the NoC from other tiles);
- ``tile_shift_add.op = (rb_groups - 1)·N`` (the reduction across row-block groups at home);
  ``sigmoid.op = N`` when the layer has an activation;
- ``tier2_scale.op = weight_columns`` and ``tier2_register.byte = ceil(weight_columns·scale_bits
  / 8)`` per MVM of every PE in ``scaled_pes`` (XMA2 tier 2);
- NoC: a message of ``B`` bytes is ``F = ceil(8·B / flit_bits)`` flits and costs ``F·H``
  ``router.flit`` over a path of ``H`` routers (mesh hops + 1): partial sums from each remote
  tile to home, and the ``N·in_b`` output bytes to each consuming tile, where they cost
  ``edram.byte`` (write) once more;
- off-chip: ``offchip.byte`` = the image (``C·H·W·in_b``) in and the logits out.

A digital layer counts per output row: ``edram.byte`` for every input element it reads (each once),
one ``maxpool.op`` (maxpool) or ``tile_shift_add.op`` (avgpool, residual add) per output element,
one ``sigmoid.op`` per output element when it has an activation, and the delivery of its row.

Timing model, per item (one MVM, or one row of a digital layer / of the input), as a chain of
stages. A *server* stage holds a shared bandwidth server for ``bytes / rate`` (rounded up to whole
clocks): the tile's eDRAM port at ``min(edram, bus) width`` per digital clock, a router at
``ports`` flits per router clock (contention is modelled at the routers where traffic enters and
leaves the concentrated mesh; the links in between add ``F + H`` router clocks of serialisation
and hop latency), the off-chip links at their summed bandwidth, and the tile's digital units at
``count`` ops per digital clock. A *latency* stage is private to the item: the crossbar phase of
``cyc`` read cycles (``arch.read_cycle_ps`` each, the larger of the read pulse and columns-per-ADC
/ ADC rate), one more read cycle for the last conversion and shift-and-add, the PE output
register's drain onto the bus, the tier-2 scaling of the PE's columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from xsim.deployment import Deployment
from xsim.mapping import LayerMapping, Mapping, PePlacement
from xsim.models.graph import Layer

INPUT = "input"
OFFCHIP = -1
"""Tile id standing for the off-chip link (attached at router 0)."""

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
    drain: tuple[Fork, ...]
    counts: Counts
    tier2_columns: dict[int, int]
    """weight columns per PE, for tier-2 scaling of any subset of the PEs"""


@dataclass(frozen=True)
class RowPlan:
    """One output row of a digital layer or of the input: read, compute, deliver."""

    read: Fork
    unit: Path
    deliver: Fork
    busy_ps: int
    counts: Counts


@dataclass(frozen=True)
class Node:
    index: int
    name: str
    kind: str
    rows: int
    producers: tuple[tuple[int, tuple[int, ...]], ...]
    """(producer node, last producer row needed by each output row)"""
    home: int
    tiles: tuple[int, ...]
    pes: tuple[int, ...] = ()
    replicas: tuple[ReplicaPlan, ...] = ()
    row_plans: tuple[RowPlan, ...] = ()
    consumers: tuple[int, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Plan:
    nodes: tuple[Node, ...]
    output: int
    mvm_cycles: int
    read_cycle_ps: int
    pe_tier2_ps: dict[int, int]
    """extra drain latency of a PE when its columns are scaled"""
    tier2_scale_bits: int


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

    def clocks_ps(self, cycles: int, ghz: float | None = None) -> int:
        ghz = ghz or self.arch.chip.digital_clock_ghz
        return math.ceil(cycles * 1000 / ghz - 1e-9)

    def edram_ps(self, nbytes: int) -> int:
        return self.clocks_ps(math.ceil(8 * nbytes / self.edram_bits))

    def ops_ps(self, ops: int, units: int) -> int:
        return self.clocks_ps(math.ceil(ops / units))

    def router(self, tile: int) -> int:
        return 0 if tile == OFFCHIP else tile // self.arch.tiles_per_router

    def routers_on_path(self, src: int, dst: int) -> int:
        a, b = self.router(src), self.router(dst)
        w = self.mesh_width
        return abs(a % w - b % w) + abs(a // w - b // w) + 1

    def noc(self, src: int, dst: int, nbytes: int, counts: Counts) -> Path:
        """Stages and counts of a ``nbytes`` message between two tiles (OFFCHIP = router 0)."""
        r = self.router_spec
        flits = math.ceil(8 * nbytes / r.flit_bits)
        hops = self.routers_on_path(src, dst)
        _add(counts, "router", "flit", flits * hops)
        hold = self.clocks_ps(math.ceil(flits / r.ports), r.clock_ghz)
        stages = [Stage(("router", self.router(src)), hold)]
        if self.router(dst) != self.router(src):
            stages.append(Stage(("router", self.router(dst)), hold))
        stages.append(Stage(None, self.clocks_ps(flits + hops, r.clock_ghz)))
        return tuple(stages)

    def deliver(self, src: int, dst: int, nbytes: int, counts: Counts) -> Path:
        """A message from ``src`` into ``dst``'s eDRAM, or out through the off-chip link."""
        if dst == OFFCHIP:
            _add(counts, "offchip", "byte", nbytes)
            return (*self.noc(src, OFFCHIP, nbytes, counts), Stage(("offchip", 0), self.offchip_ps(nbytes)))
        _add(counts, "edram", "byte", nbytes)
        write = Stage(("edram", dst), self.edram_ps(nbytes))
        if dst == src:
            return (write,)
        return (*self.noc(src, dst, nbytes, counts), write)

    def offchip_ps(self, nbytes: int) -> int:
        return math.ceil(nbytes * 1000 / (self.links * self.link.bandwidth_gb_per_s) - 1e-9)


def _add(counts: Counts, component: str, action: str, n: int) -> None:
    if n:
        counts[(component, action)] = counts.get((component, action), 0) + n


def _needs(consumer: Layer, rows: int, producer_rows: int, through_flatten: bool) -> tuple[int, ...]:
    if through_flatten or consumer.kind == "linear":
        return (producer_rows - 1,) * rows
    if consumer.kind == "add":
        return tuple(range(rows))
    kh, sh, ph = consumer.kernel[0], consumer.stride[0], consumer.padding[0]
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

    def build(self) -> Plan:
        net = self.mapping.network
        by_layer = {lm.layer.name: lm for lm in self.mapping.layers}
        alias: dict[str, tuple[int, bool]] = {INPUT: (0, False)}
        layers: list[Layer | None] = [None]
        homes, tiles, rows = [0], [(0,)], [net.input_shape[1]]
        producers: list[tuple] = [()]
        for layer in net.layers:
            if layer.kind == "flatten":
                alias[layer.name] = (alias[layer.inputs[0]][0], True)
                continue
            index = len(layers)
            alias[layer.name] = (index, False)
            ins = [alias[name] for name in layer.inputs]
            out_rows = layer.out_shape[1]
            producers.append(tuple(
                (p, _needs(layer, out_rows, rows[p], flat)) for p, flat in ins))
            if layer.has_weights:
                lm = by_layer[layer.name]
                placed = [self.mapping.pes[i] for i in lm.pes]
                homes.append(placed[0].tile)
                tiles.append(tuple(sorted({p.tile for p in placed})))
            else:
                homes.append(homes[ins[0][0]])
                tiles.append((homes[ins[0][0]],))
            layers.append(layer)
            rows.append(out_rows)
        output = alias[net.output.name][0]
        consumers: list[list[int]] = [[] for _ in layers]
        for index, prods in enumerate(producers):
            for p, _ in prods:
                if index not in consumers[p]:
                    consumers[p].append(index)
        dests = []
        for index in range(len(layers)):
            d = sorted({t for c in consumers[index] for t in tiles[c]})
            dests.append(tuple(d) + ((OFFCHIP,) if index == output else ()))
        nodes = [self._input_node(rows[0], dests[0], tuple(consumers[0]))]
        for index in range(1, len(layers)):
            layer = layers[index]
            common = dict(index=index, name=layer.name, kind=layer.kind, rows=rows[index],
                          producers=producers[index], home=homes[index], tiles=tiles[index],
                          consumers=tuple(consumers[index]))
            if layer.has_weights:
                lm = by_layer[layer.name]
                reps = self._replicas(lm, dests[index])
                nodes.append(Node(**common, pes=lm.pes, replicas=reps))
            else:
                nodes.append(Node(**common, row_plans=self._digital_rows(
                    layer, homes[index], producers[index], layers, dests[index])))
        units = self.arch.unit_count("tier2_scale", "pe")
        pe_tier2 = {p.index: self.geo.ops_ps(p.weight_columns, units) for p in self.mapping.pes}
        return Plan(nodes=tuple(nodes), output=output, mvm_cycles=self.cycles,
                    read_cycle_ps=self.cycle_ps, pe_tier2_ps=pe_tier2,
                    tier2_scale_bits=self.arch.tier2.scale_bits)

    def _input_node(self, rows: int, dests: tuple[int, ...], consumers: tuple[int, ...]) -> Node:
        """The image streams in row after row: one row plan, repeated ``rows`` times."""
        c, _, w = self.mapping.network.input_shape
        nbytes = c * w * self.geo.in_bytes
        counts: Counts = {}
        _add(counts, "offchip", "byte", nbytes)
        deliver = tuple(self.geo.deliver(OFFCHIP, d, nbytes, counts) for d in dests)
        link = self.geo.offchip_ps(nbytes)
        row = RowPlan(read=((),), unit=(Stage(("offchip", 0), link),), deliver=deliver,
                      busy_ps=link, counts=counts)
        return Node(index=0, name=INPUT, kind=INPUT, rows=rows, producers=(), home=OFFCHIP,
                    tiles=(), row_plans=(row,) * rows, consumers=consumers)

    def _digital_rows(self, layer: Layer, home: int, producers: tuple, layers: list,
                      dests: tuple[int, ...]) -> tuple[RowPlan, ...]:
        geo = self.geo
        c, out_rows, w = layer.out_shape
        unit = "maxpool" if layer.kind == "maxpool" else "tile_shift_add"
        units = self.arch.unit_count(unit, "tile")
        sigmoids = self.arch.unit_count("sigmoid", "tile")
        plans = []
        for r in range(out_rows):
            counts: Counts = {}
            read_bytes = 0
            for p, need in producers:
                shape = layers[p].out_shape if p else self.mapping.network.input_shape
                new_rows = need[r] - (need[r - 1] if r else -1)
                read_bytes += max(0, new_rows) * shape[0] * shape[2] * geo.in_bytes
            _add(counts, "edram", "byte", read_bytes)
            ops = c * w
            _add(counts, unit, "op", ops)
            stages = [Stage((unit, home), geo.ops_ps(ops, units))]
            if layer.activation:
                _add(counts, "sigmoid", "op", ops)
                stages.append(Stage(("sigmoid", home), geo.ops_ps(ops, sigmoids)))
            out_bytes = ops * geo.in_bytes
            deliver = tuple(geo.deliver(home, d, out_bytes, counts) for d in dests)
            read = ((Stage(("edram", home), geo.edram_ps(read_bytes)),),) if read_bytes else ((),)
            plans.append(RowPlan(read=read, unit=tuple(stages), deliver=deliver,
                                 busy_ps=sum(s.item_ps for s in stages), counts=counts))
        return tuple(plans)

    def _replicas(self, lm: LayerMapping, dests: tuple[int, ...]) -> tuple[ReplicaPlan, ...]:
        layer = lm.layer
        out_rows, width = layer.out_shape[1], layer.out_shape[2]
        by_replica: dict[int, list[PePlacement]] = {}
        for i in lm.pes:
            p = self.mapping.pes[i]
            by_replica.setdefault(p.replica, []).append(p)
        return tuple(self._replica(lm, pes, _row_share(out_rows, width, lm.replicas, replica), dests)
                     for replica, pes in sorted(by_replica.items()))

    def _replica(self, lm: LayerMapping, pes: list[PePlacement], share: tuple[int, ...],
                 dests: tuple[int, ...]) -> ReplicaPlan:
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
        psum_from: dict[int, int] = {}
        for p in pes:
            if p.tile != home:
                psum_from[p.tile] = psum_from.get(p.tile, 0) + p.weight_columns * geo.psum_bytes
        gather = tuple(geo.noc(t, home, b, counts) for t, b in sorted(psum_from.items()))
        row_groups = len({(p.row_start, p.row_stop) for p in pes})
        reduce_ops = (row_groups - 1) * lm.N
        at_home = []
        if reduce_ops:
            _add(counts, "tile_shift_add", "op", reduce_ops)
            at_home.append(Stage(("tile_shift_add", home),
                                 geo.ops_ps(reduce_ops, arch.unit_count("tile_shift_add", "tile"))))
        if lm.layer.activation:
            _add(counts, "sigmoid", "op", lm.N)
            at_home.append(Stage(("sigmoid", home),
                                 geo.ops_ps(lm.N, arch.unit_count("sigmoid", "tile"))))
        out_bytes = lm.N * geo.in_bytes
        deliver = tuple(geo.deliver(home, d, out_bytes, counts) for d in dests)
        drain_out = max(geo.clocks_ps(math.ceil(8 * p.weight_columns * geo.psum_bytes
                                                / arch.role("pe_output_register").width_bits)) for p in pes)
        drain = tuple(f for f in (gather, (tuple(at_home),), deliver) if f)
        return ReplicaPlan(
            replica=pes[0].replica, pes=tuple(p.index for p in pes), home=home, share=share,
            fetch=tuple(fetch), mvm_ps=self.cycles * self.cycle_ps,
            tail_ps=self.cycle_ps + drain_out, drain=drain, counts=counts,
            tier2_columns={p.index: p.weight_columns for p in pes},
        )


def build_plan(deployment: Deployment) -> Plan:
    """The datapath plan of a deployment."""
    return _Builder(deployment).build()


def tier2_counts(plan: Plan, columns: int) -> Counts:
    """Tier-2 actions of one MVM of a PE with ``columns`` scaled weight columns."""
    return {("tier2_scale", "op"): columns,
            ("tier2_register", "byte"): math.ceil(columns * plan.tier2_scale_bits / 8)}
