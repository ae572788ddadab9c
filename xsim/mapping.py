"""Mapping of a network's weight layers onto crossbars, PEs and tiles.

A conv/linear layer is a weight matrix of K = (Cin/groups)·kh·kw rows and N = Cout columns (one
group's rows per output channel: a grouped convolution's groups sit side by side in the column
direction, each output column reading only its group's K rows). Each weight occupies
``columns_per_weight`` adjacent array columns (its cell slices, twice under differential
encoding) and a weight never straddles two arrays, so an array row holds
``wpr = array_columns // columns_per_weight`` weights. The layer's array grid is
``row_blocks = ceil(K / rows)`` × ``col_blocks = ceil(N / wpr)``.

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
``[col_start, col_stop)`` over its rows ``[row_start, row_stop)``; the tier-2 column index of
(PE ``p``, weight column ``n``) is ``pe.tier2_offset + (n - pe.col_start)``. Replicas are copies of
the first instance and carry no tier-2 columns of their own (they use the first instance's scales).

Replication (optional, as ISAAC does) gives spare PEs to the layers that bound the pipeline: a
layer's time per image is ``ceil(output_pixels / replicas)`` MVMs, and replicas are added greedily
to the slowest layer while its next copy fits in the chip.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

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


def _grid(arch: Arch, layer: Layer, weight_bits: int) -> tuple[int, int, int, int, int, int, int]:
    K, N = layer.matrix_shape
    wpr = arch.weights_per_array_row(weight_bits)
    row_blocks = math.ceil(K / arch.crossbar.rows)
    col_blocks = math.ceil(N / wpr)
    per_pe = arch.arrays_per_pe
    rb_per_pe = min(row_blocks, per_pe)
    cb_per_pe = per_pe // row_blocks if row_blocks < per_pe else 1
    return K, N, wpr, row_blocks, col_blocks, rb_per_pe, cb_per_pe


def _pes_per_replica(row_blocks: int, col_blocks: int, rb_per_pe: int, cb_per_pe: int) -> int:
    return math.ceil(row_blocks / rb_per_pe) * math.ceil(col_blocks / cb_per_pe)


def _replicas(arch: Arch, network: Network, grids: list, replication: bool) -> list[int]:
    replicas = [1] * len(grids)
    if not replication:
        return replicas
    spare = arch.pes_per_chip - sum(_pes_per_replica(*g[3:]) for g in grids)
    layers = network.weight_layers
    heap = [(-layers[i].output_pixels, i) for i in range(len(grids))]
    heapq.heapify(heap)
    while heap:
        _, i = heapq.heappop(heap)
        cost = _pes_per_replica(*grids[i][3:])
        if cost > spare or replicas[i] >= layers[i].output_pixels:
            continue  # this layer cannot grow; the next-slowest may still
        replicas[i] += 1
        spare -= cost
        heapq.heappush(heap, (-math.ceil(layers[i].output_pixels / replicas[i]), i))
    return replicas


def map_network(arch: Arch, network: Network, *, weight_bits: int | None = None,
                input_bits: int | None = None, replication: bool = False,
                source: str | None = None) -> Mapping:
    """Place ``network`` on ``arch``. Raises MappingError (naming ``source``) when it does not fit."""
    weight_bits = weight_bits or arch.precision.weight_bits
    input_bits = input_bits or arch.precision.input_bits
    if arch.weights_per_array_row(weight_bits) < 1:
        raise MappingError(source, "precision.weight_bits",
                           f"a {weight_bits}-bit weight needs {arch.columns_per_weight(weight_bits)}"
                           f" crossbar columns but an array of {arch.name} has {arch.array_columns}")
    weight_layers = network.weight_layers
    grids = [_grid(arch, layer, weight_bits) for layer in weight_layers]
    needed = sum(_pes_per_replica(*g[3:]) for g in grids)
    if needed > arch.pes_per_chip:
        crossbars = sum(g[3] * g[4] for g in grids) * arch.crossbars_per_array
        raise MappingError(
            source, "model",
            f"{network.name} at {weight_bits}-bit weights ({arch.crossbar.encoding} encoding) needs "
            f"{needed} PEs ({crossbars} crossbars of {arch.crossbar.rows}x{arch.crossbar.columns}) "
            f"but arch {arch.name} has {arch.pes_per_chip} PEs ({arch.crossbars_per_chip} crossbars)",
        )
    replicas = _replicas(arch, network, grids, replication)

    pes: list[PePlacement] = []
    layers: list[LayerMapping] = []
    tier2_offset = 0
    rows, per_tile = arch.crossbar.rows, arch.pes_per_tile
    for li, (layer, grid, copies) in enumerate(zip(weight_layers, grids, replicas)):
        K, N, wpr, row_blocks, col_blocks, rb_per_pe, cb_per_pe = grid
        ids = []
        for replica in range(copies):
            for cb0 in range(0, col_blocks, cb_per_pe):
                cb1 = min(cb0 + cb_per_pe, col_blocks)
                for rb0 in range(0, row_blocks, rb_per_pe):
                    rb1 = min(rb0 + rb_per_pe, row_blocks)
                    index = len(pes)
                    col_start, col_stop = cb0 * wpr, min(cb1 * wpr, N)
                    pes.append(PePlacement(
                        index=index, layer=layer.name, layer_index=li, replica=replica,
                        tile=index // per_tile, slot=index % per_tile,
                        row_start=rb0 * rows, row_stop=min(rb1 * rows, K),
                        col_start=col_start, col_stop=col_stop,
                        arrays=(rb1 - rb0) * (cb1 - cb0),
                        tier2_offset=tier2_offset if replica == 0 else -1,
                    ))
                    if replica == 0:
                        tier2_offset += col_stop - col_start
                    ids.append(index)
        layers.append(LayerMapping(
            layer=layer, layer_index=li, K=K, N=N, row_blocks=row_blocks, col_blocks=col_blocks,
            weights_per_row=wpr, row_blocks_per_pe=rb_per_pe, col_blocks_per_pe=cb_per_pe,
            replicas=copies, pes=tuple(ids),
        ))
    return Mapping(arch=arch, network=network, weight_bits=weight_bits, input_bits=input_bits,
                   layers=tuple(layers), pes=tuple(pes))
