"""Mapping of a network's weight layers onto crossbars, PEs and tiles.

A conv/linear layer is a weight matrix of K = (Cin/groups)·kh·kw rows and N = Cout columns: column
``n`` holds output channel ``n``'s weights over the K inputs of its own group ``n // (N/groups)``.
Each weight occupies ``columns_per_weight`` adjacent array columns (its cell slices, twice under
differential encoding) and a weight never straddles two arrays, so an array row holds
``wpr = array_columns // columns_per_weight`` weights.

Packing rule. A dense layer (one group) is a grid of ``row_blocks = ceil(K / rows)`` ×
``col_blocks = ceil(N / wpr)`` arrays. A grouped (or depthwise) convolution's groups never share
an array row or an array column: each group's Kg = K rows are its own inputs. Groups that fit one
array (Kg ≤ rows and Ng = N/groups ≤ wpr) share arrays *block-diagonally*: an array holds ``gpa``
groups, group ``i`` of the array on rows ``[i·Kg, (i+1)·Kg)`` and its own columns, with
``gpa = min(groups, rows // Kg, (array_columns + u) // (Ng·cpw + u))`` where ``u`` is the array's
unit columns under offset encoding (each group needs its own unit column, the sum of its own
inputs; the first is the array's, the others take weight columns) and 0 under differential; the
layer is ``ceil(groups / gpa)`` column blocks of one row block. A group that does not fit one array
gets arrays of its own: ``ceil(Kg / rows)`` row blocks × ``ceil(Ng / wpr)`` column blocks per
group, so ``groups · ceil(Ng / wpr)`` column blocks. Column blocks are contiguous ranges of the
N columns (:attr:`LayerMapping.col_bounds`); an array of column block ``b`` and row block ``r``
uses ``rows_in(r) · groups_in(b)`` rows and ``cols_in(b)·cpw + u·groups_in(b)`` columns
(:meth:`Mapping.pe_arrays`), and every output pixel drives every array of the layer once.

Arrays. The unit of this grid is an *array*: the crossbars that share one set of DACs and so see
the same inputs (:attr:`xsim.config.arch.Arch.crossbars_per_array`): one crossbar in ISAAC, a
bit-sliced MVMU of 8 in PUMA, whose weights' slices sit in different crossbars side by side. An
array has ``rows`` rows and ``crossbars_per_array × columns`` columns; counts of physical
crossbars are arrays × crossbars per array.

PE grouping (the unit of tier 1): a PE stacks up to ``arrays_per_pe`` row blocks of one column
block, so it accumulates a longer dot product internally; a layer with fewer row blocks than a PE
has arrays packs ``arrays_per_pe // row_blocks`` column blocks into each PE instead. A layer never
shares a PE with another layer. PEs are numbered in layer order, then replica, then column-block
group, then row-block group; PE ``i`` sits in tile ``i // tile.pes``, slot ``i % tile.pes``.

Tier-2 columns (the unit of tier 2): each PE outputs the partial sums of its weight columns
``[col_start, col_stop)`` over its rows ``[row_start, row_stop)`` of each column's group (the K×N
matrix's block, which is what tier-1 masks and the functional model read); the tier-2 column index
of (PE ``p``, weight column ``n``) is ``pe.tier2_offset + (n - pe.col_start)``. Replicas are copies
of the first instance and carry no tier-2 columns of their own (they use the first instance's
scales).

Replication (optional, as ISAAC does) gives spare PEs to the layers that bound the pipeline: a
layer's time per image is ``ceil(output_pixels / replicas)`` MVMs, and replicas are added greedily
to the slowest layer while its next copy fits in the PEs left after the reserved ones (resident
heads). The digital units serving a replicated layer follow in the engine
(:mod:`xsim.engine.plan`): a digital layer's rows spread over as many tiles as keep pace.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace

from xsim.config.arch import Arch
from xsim.config.errors import MappingError
from xsim.models.graph import Layer, Network


@dataclass(frozen=True)
class PePlacement:
    """One PE of the mapping."""

    index: int
    layer: str
    layer_index: int
    replica: int
    tile: int
    slot: int
    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    arrays: int
    tier2_offset: int

    @property
    def weight_columns(self) -> int:
        return self.col_stop - self.col_start


@dataclass(frozen=True)
class LayerMapping:
    """The crossbar grid and PEs of one weight layer."""

    layer: Layer
    layer_index: int
    K: int
    N: int
    row_blocks: int
    col_blocks: int
    weights_per_row: int
    row_blocks_per_pe: int
    col_blocks_per_pe: int
    replicas: int
    pes: tuple[int, ...]
    groups: int = 1
    groups_per_array: int = 1
    col_bounds: tuple[int, ...] = ()
    """column-block boundaries: block ``b`` holds weight columns ``[col_bounds[b], col_bounds[b+1])``"""

    def groups_in(self, col_start: int, col_stop: int) -> range:
        """The convolution groups whose columns meet ``[col_start, col_stop)``."""
        per_group = self.N // self.groups
        return range(col_start // per_group, (col_stop - 1) // per_group + 1)

    @property
    def arrays_per_replica(self) -> int:
        return self.row_blocks * self.col_blocks

    @property
    def arrays(self) -> int:
        return self.arrays_per_replica * self.replicas

    @property
    def pes_per_replica(self) -> int:
        return len(self.pes) // self.replicas


@dataclass(frozen=True)
class Mapping:
    """A network placed on an architecture at a precision. Built by :func:`map_network`."""

    arch: Arch
    network: Network
    weight_bits: int
    input_bits: int
    layers: tuple[LayerMapping, ...]
    pes: tuple[PePlacement, ...]

    @property
    def arrays(self) -> int:
        return sum(lm.arrays for lm in self.layers)

    @property
    def crossbars(self) -> int:
        """Physical crossbars: arrays × the crossbars of one array."""
        return self.arrays * self.arch.crossbars_per_array

    @property
    def pe_count(self) -> int:
        return len(self.pes)

    @property
    def tiles(self) -> int:
        return math.ceil(self.pe_count / self.arch.pes_per_tile)

    @property
    def columns_per_weight(self) -> int:
        return self.arch.columns_per_weight(self.weight_bits)

    @property
    def tier2_columns(self) -> int:
        """Number of tier-2 scales of one task: one per (first-instance PE, weight column)."""
        return sum(p.weight_columns for p in self.pes if p.replica == 0)

    def first_instance(self, pe_index: int) -> int:
        """The first-instance PE whose weights (and tier-2 scales) a replica PE copies."""
        pe = self.pes[pe_index]
        if pe.replica == 0:
            return pe_index
        lm = self.layers[pe.layer_index]
        return lm.pes[lm.pes.index(pe_index) % lm.pes_per_replica]

    def pe_arrays(self, pe: PePlacement) -> tuple[tuple[int, int], ...]:
        """(used rows, used columns) of each array of ``pe``: its row blocks × column blocks, each
        array driving the rows of every group it holds and sensing their weight and unit columns."""
        lm, arch = self.layers[pe.layer_index], self.arch
        rows, cpw = arch.crossbar.rows, self.columns_per_weight
        unit = arch.array_unit_columns if arch.crossbar.encoding == "offset" else 0
        bounds = lm.col_bounds
        out = []
        for b in range(bounds.index(pe.col_start), bounds.index(pe.col_stop)):
            c0, c1 = bounds[b], bounds[b + 1]
            groups = len(lm.groups_in(c0, c1))
            for r in range(pe.row_start, pe.row_stop, rows):
                out.append(((min(r + rows, pe.row_stop) - r) * groups, (c1 - c0) * cpw + unit * groups))
        return tuple(out)

    def pe_group_blocks(self, pe: PePlacement) -> tuple[tuple[tuple[int, int, int, int], ...], ...]:
        """The arrays of ``pe`` row-major over its (row blocks, column blocks), each as the blocks
        ``(row_start, row_stop, col_start, col_stop)`` of the K × N matrix its groups occupy: one
        per group it holds (block-diagonally, on rows of its own), one for a dense layer."""
        lm, rows = self.layers[pe.layer_index], self.arch.crossbar.rows
        bounds, per_group = lm.col_bounds, lm.N // lm.groups
        blocks = range(bounds.index(pe.col_start), bounds.index(pe.col_stop))
        return tuple(
            tuple((r, min(r + rows, pe.row_stop), max(bounds[b], g * per_group),
                   min(bounds[b + 1], (g + 1) * per_group))
                  for g in lm.groups_in(bounds[b], bounds[b + 1]))
            for r in range(pe.row_start, pe.row_stop, rows) for b in blocks)

    def pe_inputs(self, pe: PePlacement) -> tuple[tuple[int, int, int], ...]:
        """The input spans ``pe`` reads, as (group, row_start, row_stop): its rows of each group
        its columns belong to (groups' inputs are disjoint)."""
        lm = self.layers[pe.layer_index]
        return tuple((g, pe.row_start, pe.row_stop) for g in lm.groups_in(pe.col_start, pe.col_stop))

    def layer(self, name: str) -> LayerMapping:
        for lm in self.layers:
            if lm.layer.name == name:
                return lm
        raise KeyError(name)

    def used_cells(self, lm: LayerMapping | None = None) -> int:
        layers = (lm,) if lm is not None else self.layers
        return sum(m.K * m.N * self.columns_per_weight * m.replicas for m in layers)

    def allocated_cells(self, lm: LayerMapping | None = None) -> int:
        cells = self.arch.crossbar.rows * self.arch.crossbar.columns * self.arch.crossbars_under("pe")
        return (len(lm.pes) if lm is not None else self.pe_count) * cells

    def utilisation(self, lm: LayerMapping | None = None) -> float:
        """Cells holding weight bits / cells of the PEs allocated (unit columns excluded)."""
        return self.used_cells(lm) / self.allocated_cells(lm)

    def summary_rows(self) -> list[dict]:
        """Per layer: K, N, grid, crossbars, PEs, replicas, first/last tile and cell utilisation."""
        rows = []
        for lm in self.layers:
            first = self.pes[lm.pes[0]]
            last = self.pes[lm.pes[-1]]
            rows.append({
                "layer": lm.layer.name,
                "kind": lm.layer.kind,
                "K": lm.K,
                "N": lm.N,
                "row_blocks": lm.row_blocks,
                "col_blocks": lm.col_blocks,
                "replicas": lm.replicas,
                "crossbars": lm.arrays * self.arch.crossbars_per_array,
                "pes": len(lm.pes),
                "tile_first": first.tile,
                "tile_last": last.tile,
                "utilisation": self.utilisation(lm),
            })
        return rows

    def totals(self) -> dict:
        return {
            "network": self.network.name,
            "weight_bits": self.weight_bits,
            "input_bits": self.input_bits,
            "encoding": self.arch.crossbar.encoding,
            "columns_per_weight": self.columns_per_weight,
            "crossbars": self.crossbars,
            "pes": self.pe_count,
            "tiles": self.tiles,
            "chip_crossbars": self.arch.crossbars_per_chip,
            "crossbars_per_array": self.arch.crossbars_per_array,
            "chip_pes": self.arch.pes_per_chip,
            "chip_tiles": self.arch.tiles,
            "utilisation": self.utilisation(),
            "tier2_columns": self.tier2_columns,
        }


@dataclass(frozen=True)
class _Grid:
    """A layer's array grid by the packing rule of the module docstring."""

    K: int
    N: int
    wpr: int
    groups: int
    groups_per_array: int
    row_blocks: int
    col_bounds: tuple[int, ...]
    rb_per_pe: int
    cb_per_pe: int

    @property
    def col_blocks(self) -> int:
        return len(self.col_bounds) - 1

    @property
    def pes_per_replica(self) -> int:
        return math.ceil(self.row_blocks / self.rb_per_pe) * math.ceil(self.col_blocks / self.cb_per_pe)


def _grid(arch: Arch, layer: Layer, weight_bits: int) -> _Grid:
    K, N = layer.matrix_shape
    groups, rows = layer.groups, arch.crossbar.rows
    wpr = arch.weights_per_array_row(weight_bits)
    per_group = N // groups
    if rows >= K and per_group <= wpr:
        unit = arch.array_unit_columns if arch.crossbar.encoding == "offset" else 0
        cpw = arch.columns_per_weight(weight_bits)
        gpa = min(groups, rows // K, (arch.array_columns + unit) // (per_group * cpw + unit))
        row_blocks = 1
        bounds = [min(N, b * gpa * per_group) for b in range(math.ceil(groups / gpa) + 1)]
    else:
        gpa = 1
        row_blocks = math.ceil(K / rows)
        bounds = [g * per_group + j * wpr for g in range(groups)
                  for j in range(math.ceil(per_group / wpr))] + [N]
    per_pe = arch.arrays_per_pe
    rb_per_pe = min(row_blocks, per_pe)
    cb_per_pe = per_pe // row_blocks if row_blocks < per_pe else 1
    return _Grid(K, N, wpr, groups, gpa, row_blocks, tuple(bounds), rb_per_pe, cb_per_pe)


def layer_pes(arch: Arch, layer: Layer, weight_bits: int, columns: int | None = None) -> int:
    """PEs one copy of ``layer`` takes by the packing rule, keeping only its first ``columns``
    output columns when given (a task's head of ``num_classes`` classes on the head layer)."""
    if columns is not None:
        layer = replace(layer, out_shape=(columns, *layer.out_shape[1:]), groups=1)
    return _grid(arch, layer, weight_bits).pes_per_replica


def _replicas(arch: Arch, network: Network, grids: list, replication: bool, reserved: int) -> list[int]:
    replicas = [1] * len(grids)
    if not replication:
        return replicas
    spare = arch.pes_per_chip - reserved - sum(g.pes_per_replica for g in grids)
    layers = network.weight_layers
    heap = [(-layers[i].output_pixels, i) for i in range(len(grids))]
    heapq.heapify(heap)
    while heap:
        _, i = heapq.heappop(heap)
        cost = grids[i].pes_per_replica
        if cost > spare or replicas[i] >= layers[i].output_pixels:
            continue  # this layer cannot grow; the next-slowest may still
        replicas[i] += 1
        spare -= cost
        heapq.heappush(heap, (-math.ceil(layers[i].output_pixels / replicas[i]), i))
    return replicas


def map_network(arch: Arch, network: Network, *, weight_bits: int | None = None,
                input_bits: int | None = None, replication: bool = False, reserved_pes: int = 0,
                source: str | None = None) -> Mapping:
    """Place ``network`` on ``arch``, replicas (with ``replication``) only in the PEs left after
    ``reserved_pes`` (resident heads). Raises MappingError (naming ``source``) when it does not fit."""
    weight_bits = weight_bits or arch.precision.weight_bits
    input_bits = input_bits or arch.precision.input_bits
    if arch.weights_per_array_row(weight_bits) < 1:
        raise MappingError(source, "precision.weight_bits",
                           f"a {weight_bits}-bit weight needs {arch.columns_per_weight(weight_bits)}"
                           f" crossbar columns but an array of {arch.name} has {arch.array_columns}")
    weight_layers = network.weight_layers
    grids = [_grid(arch, layer, weight_bits) for layer in weight_layers]
    needed = sum(g.pes_per_replica for g in grids)
    if needed > arch.pes_per_chip:
        crossbars = sum(g.row_blocks * g.col_blocks for g in grids) * arch.crossbars_per_array
        raise MappingError(
            source, "model",
            f"{network.name} at {weight_bits}-bit weights ({arch.crossbar.encoding} encoding) needs "
            f"{needed} PEs ({crossbars} crossbars of {arch.crossbar.rows}x{arch.crossbar.columns}) "
            f"but arch {arch.name} has {arch.pes_per_chip} PEs ({arch.crossbars_per_chip} crossbars)",
        )
    replicas = _replicas(arch, network, grids, replication, reserved_pes)

    pes: list[PePlacement] = []
    layers: list[LayerMapping] = []
    tier2_offset = 0
    rows, per_tile = arch.crossbar.rows, arch.pes_per_tile
    for li, (layer, g, copies) in enumerate(zip(weight_layers, grids, replicas)):
        ids = []
        for replica in range(copies):
            for cb0 in range(0, g.col_blocks, g.cb_per_pe):
                cb1 = min(cb0 + g.cb_per_pe, g.col_blocks)
                for rb0 in range(0, g.row_blocks, g.rb_per_pe):
                    rb1 = min(rb0 + g.rb_per_pe, g.row_blocks)
                    index = len(pes)
                    col_start, col_stop = g.col_bounds[cb0], g.col_bounds[cb1]
                    pes.append(PePlacement(
                        index=index, layer=layer.name, layer_index=li, replica=replica,
                        tile=index // per_tile, slot=index % per_tile,
                        row_start=rb0 * rows, row_stop=min(rb1 * rows, g.K),
                        col_start=col_start, col_stop=col_stop,
                        arrays=(rb1 - rb0) * (cb1 - cb0),
                        tier2_offset=tier2_offset if replica == 0 else -1,
                    ))
                    if replica == 0:
                        tier2_offset += col_stop - col_start
                    ids.append(index)
        layers.append(LayerMapping(
            layer=layer, layer_index=li, K=g.K, N=g.N, row_blocks=g.row_blocks,
            col_blocks=g.col_blocks, weights_per_row=g.wpr, row_blocks_per_pe=g.rb_per_pe,
            col_blocks_per_pe=g.cb_per_pe, replicas=copies, pes=tuple(ids), groups=g.groups,
            groups_per_array=g.groups_per_array, col_bounds=g.col_bounds,
        ))
    return Mapping(arch=arch, network=network, weight_bits=weight_bits, input_bits=input_bits,
                   layers=tuple(layers), pes=tuple(pes))
