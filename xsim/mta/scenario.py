"""A multi-task scenario run under every adaptation strategy on one deployment and schedule.

What a PE holds while task ``t`` runs, and which PEs tier 2 scales, is each strategy's entry in
:mod:`xsim.strategies` (``rewrites``: ``all``, ``tier1``, ``elementwise`` or ``none``;
``scales``: the frozen PEs of :meth:`xsim.deployment.Deployment.frozen_pes`).

Every task has its own head (classifier, :attr:`xsim.deployment.Deployment.head_layer`). With
``mapping.resident_heads`` (the default) each new task's head sits in spare PEs of its own,
programmed once with the backbone and never rewritten; otherwise every switch rewrites the head
layer's PEs in every strategy. A switch A → B
rewrites, PE by PE, the cells whose content differs (``mask_A ∪ mask_B`` for the tier-1
strategies: A's PEs back to the backbone or straight to B's weights) through the reprogramming
controller (:mod:`xsim.mta.controller`), with the write-verify cost of
:func:`xsim.kernels.writes.write_cost`; meanwhile B's tier-2 scales are loaded from eDRAM into the
scale registers (the switch latency is the longer of the two). The chip starts with the backbone
programmed (that first programming is not counted: it is the same for every strategy). Each
distinct switch (A, B) is costed once and counted as often as the schedule makes it.

Costing, layer by layer: the first-instance PEs of a layer that go from one version of its
weights to another are costed in one call of :func:`xsim.kernels.writes.write_costs` (their
windows tile the layer's cell levels without overlap, so the kernel writes their endurance
counters in parallel); a replica costs what its first instance costs. Strategies that hold the
same version in every first-instance PE of a layer for every task (tier 1 only and XMA2; every
strategy on the head layer) write the same cells: the layer is costed once for all of them.

Crossbars as mapped. The kernel cuts a window of the K × N·cpw level matrix into crossbars every
``rows`` rows and ``wpr·cpw`` columns, which is a dense layer's array grid. A grouped or
depthwise convolution's arrays are not that grid (:mod:`xsim.mapping`): an array holds whole
groups block-diagonally, each group on rows of its own, and a group wider than an array starts
its own column blocks. Such a layer is costed per array as mapped: each group's block of an
array (its K rows of the row block, its columns of the column block) is one kernel window, and
the array's figures are its groups' summed, since the groups' rows are rows of the same crossbar,
written one after another (its time is the sum of its groups' row times, compare reads
included; under the ``array`` scheme the whole-array write counts once, if any group has a cell
to write).

Energy of a switch: the cells' pulses and the word and bit lines they charge (the write model of
:mod:`xsim.write_model`), verify reads (compare-before-write and, under ``write_verify``, one per
pulse) and tier-2 scale bytes × (eDRAM byte + scale register byte). The controller writes as
many crossbars at once as the chip's write-power budget allows
(:func:`xsim.write_model.crossbars_in_parallel`).

Endurance: every cell of every PE ever written has a write counter over the whole schedule; the
result gives their maximum, mean and histogram, and the projected lifetime — schedule periods
until the worst cell reaches ``cell.endurance_cycles`` (periods × endurance / max count), and the
wall time at the workload's ``switches_per_hour``.

The result is typed (:class:`MtaResult`); :mod:`xsim.report.tables` turns it into tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from xsim.config import Arch, Workload
from xsim.deployment import Deployment
from xsim.kernels.writes import write_costs
from xsim.mapping import LayerMapping
from xsim.mta.cells import cell_levels
from xsim.mta.controller import Rewrite, schedule_switch
from xsim.mta.tasks import TaskSet
from xsim.strategies import strategy as strategy_of
from xsim.write_model import cell_tables, crossbars_in_parallel


@dataclass
class SwitchCost:
    """The cost of one distinct switch (A → B) under one strategy."""

    strategy: str
    source: str
    target: str
    occurrences: int
    pulses: int = 0
    cells_written: int = 0
    compared_cells: int = 0
    write_time_ps: int = 0
    cell_energy_pj: float = 0.0
    line_energy_pj: float = 0.0
    verifies: int = 0
    tier2_bytes: int = 0
    scale_load_ps: int = 0
    pes_rewritten: int = 0
    jobs: list = field(default_factory=list, repr=False)
    latency_ps: int = 0
    rewrites: list[Rewrite] = field(default_factory=list, repr=False)
    energy_pj: dict[str, float] = field(default_factory=dict)

    @property
    def total_energy_pj(self) -> float:
        return sum(self.energy_pj.values())


@dataclass
class Endurance:
    strategy: str
    histogram: np.ndarray  # histogram[c] = cells written c times over the schedule
    cells_tracked: int

    @property
    def max_writes(self) -> int:
        nz = np.flatnonzero(self.histogram)
        return int(nz[-1]) if nz.size else 0

    @property
    def mean_writes(self) -> float:
        if not self.cells_tracked:
            return 0.0
        return float((np.arange(self.histogram.size) * self.histogram).sum() / self.cells_tracked)


@dataclass
class MtaResult:
    """Every strategy on the schedule: distinct switches, endurance, per-image inference figures
    per (strategy, task), the visit sequence and the lifetime per strategy."""

    deployment: Deployment
    switches: dict[tuple[str, str, str], SwitchCost]
    endurance: dict[str, Endurance]
    sequence: tuple[str, ...]
    inference: dict[tuple[str, str], dict]
    tier1: dict[str, frozenset[int]]
    cell_writes: dict[str, dict[str, np.ndarray]] | None = None
    """with ``keep_cell_writes``: strategy → layer → per-cell writes over the schedule, (K, N·cpw)
    int64 as :mod:`xsim.mta.cells` lays them out (wear-out in :mod:`xsim.mta.lifetime`); read-only,
    one array for the strategies that write a layer alike"""

    @property
    def switch_count(self) -> int:
        return sum(1 for a, b in zip(self.sequence, self.sequence[1:]) if a != b)

    def lifetime(self, strategy: str) -> tuple[float | None, float | None]:
        """(periods, hours) until the most-written cell reaches the cell's endurance; None when
        the strategy writes no cell (it never wears out)."""
        workload = self.deployment.workload
        max_writes = self.endurance[strategy].max_writes
        if max_writes == 0:
            return None, None
        periods = workload.schedule.periods if workload.schedule.kind == "round_robin" else 1
        lifetime_periods = self.deployment.arch.cell.endurance_cycles * periods / max_writes
        hours_per_period = self.switch_count / periods / workload.schedule.switches_per_hour
        return lifetime_periods, lifetime_periods * hours_per_period


def _switch_sequence(workload: Workload) -> tuple[str, ...]:
    return (workload.backbone.name, *workload.visits())


class _LayerLevels:
    """Cell levels of one layer under each version of its weights, computed once each."""

    def __init__(self, arch: Arch, tasks: TaskSet, lm: LayerMapping, bits: int,
                 head: str) -> None:
        self.arch, self.tasks, self.lm, self.bits = arch, tasks, lm, bits
        self.cache: dict[tuple[str, str], np.ndarray] = {}
        self.is_head = lm.layer.name == head

    def get(self, kind: str, task: str) -> np.ndarray:
        key = (kind, task)
        if key not in self.cache:
            name = self.lm.layer.name
            if self.is_head:
                w = self.tasks.backbone[name].copy()
                head = self.tasks.head_weights(task)
                w[:, : head.shape[1]] = head
            elif kind == "finetuned":
                w = self.tasks.task_weights(task, name)
            elif kind == "masked":
                w = self.tasks.masked_weights(task, name)
            else:
                w = self.tasks.backbone[name]
            self.cache[key] = cell_levels(w, self.arch, self.bits)
        return self.cache[key]


def _version(strategy: str, task: str, first_pe: int, tasks: TaskSet, head: bool) -> tuple[str, str]:
    backbone = tasks.workload.backbone.name
    if head:
        return ("head", backbone if tasks.workload.mapping.resident_heads else task)
    rewrites = strategy_of(strategy).rewrites
    if task == backbone or rewrites == "none":
        return ("backbone", backbone)
    if rewrites == "all" or (rewrites == "tier1" and first_pe in tasks.tier1[task]):
        return ("finetuned", task)
    if rewrites == "elementwise":
        return ("masked", task)
    return ("backbone", backbone)


@dataclass(frozen=True)
class _PeCost:
    """One first-instance PE's rewrite in one switch: its crossbars' write times and its totals."""

    time_ps: np.ndarray
    pulses: int
    cells: int
    write_time_ps: int
    cell_energy_pj: float
    line_energy_pj: float
    verifies: int


def _first_instance_costs(lm: LayerMapping, mapping, levels: _LayerLevels, old_held, new_held,
                          counts: np.ndarray, weight: int, params: dict) -> dict[int, _PeCost]:
    """Cost of rewriting every first-instance PE ``j`` of ``lm`` whose version changes from
    ``old_held[j]`` to ``new_held[j]``, adding ``weight`` to ``counts`` for every cell written: one
    kernel call per (old, new) version pair, over those PEs' windows. A layer's first-instance
    PEs hold disjoint blocks of its K × N matrix (:func:`xsim.mapping.map_network` tiles it by
    row and column blocks), so their windows never overlap."""
    cpw = mapping.columns_per_weight
    by_versions: dict[tuple, list[int]] = {}
    for j, (old_v, new_v) in enumerate(zip(old_held, new_held)):
        if old_v != new_v:
            by_versions.setdefault((old_v, new_v), []).append(j)
    out: dict[int, _PeCost] = {}
    if lm.groups > 1:
        for (old_v, new_v), js in by_versions.items():
            out.update(_grouped_costs(lm, mapping, [mapping.pes[lm.pes[j]] for j in js], js, cpw,
                                      levels.get(*old_v), levels.get(*new_v), counts, weight, params))
        return out
    for (old_v, new_v), js in by_versions.items():
        pes = [mapping.pes[lm.pes[j]] for j in js]
        windows = [(pe.row_start, pe.row_stop, pe.col_start * cpw, pe.col_stop * cpw) for pe in pes]
        costs = write_costs(levels.get(*old_v), levels.get(*new_v), windows,
                            columns=lm.weights_per_row * cpw, counts=counts, weight=weight,
                            **params)
        starts = costs.first[:-1]
        totals = [np.add.reduceat(a, starts).tolist() for a in (
            costs.flat.pulses, costs.flat.cells, costs.flat.time_ps, costs.flat.verifies)]
        for k, j in enumerate(js):
            cost = costs.window(k)
            out[j] = _PeCost(cost.time_ps.ravel(), totals[0][k], totals[1][k], totals[2][k],
                             float(cost.energy_pj.sum()), float(cost.line_energy_pj.sum()),
                             totals[3][k])
    return out


def _grouped_costs(lm: LayerMapping, mapping, pes, js, cpw: int, old: np.ndarray,
                   new: np.ndarray, counts: np.ndarray, weight: int,
                   params: dict) -> dict[int, _PeCost]:
    """:func:`_first_instance_costs` of a grouped layer's PEs ``pes`` (first-instance positions
    ``js``) that go from levels ``old`` to ``new``: one kernel window per group block of each array
    (:meth:`xsim.mapping.Mapping.pe_group_blocks`, in cell columns), summed per array."""
    arrays = [mapping.pe_group_blocks(pe) for pe in pes]
    windows = [(r0, r1, c0 * cpw, c1 * cpw) for pe_arrays in arrays for blocks in pe_arrays
               for r0, r1, c0, c1 in blocks]
    columns = lm.weights_per_row * cpw
    costs = write_costs(old, new, windows, columns=columns, counts=counts, weight=weight, **params)
    # Every piece is one kernel crossbar: at most ``rows`` rows of one column block.
    assert len(costs.flat.time_ps) == len(windows)
    flat = costs.flat
    piece_ps = flat.time_ps
    if params["scheme"] == "array":
        # The whole-array write happens once per array: a piece's own is taken out, and the
        # array's added back below when any of its groups has a cell to write.
        piece_ps = piece_ps - np.where(flat.cells > 0, params["array_ps"], 0)
    out: dict[int, _PeCost] = {}
    k = 0
    for j, pe_arrays in zip(js, arrays):
        sizes = [len(blocks) for blocks in pe_arrays]
        starts = k + np.concatenate([[0], np.cumsum(sizes[:-1])]).astype(np.int64)
        k += sum(sizes)
        span = slice(int(starts[0]), k)
        time_ps = np.add.reduceat(piece_ps[:k], starts)
        if params["scheme"] == "array":
            time_ps += np.where(np.add.reduceat(flat.cells[:k], starts) > 0, params["array_ps"], 0)
        out[j] = _PeCost(time_ps, int(flat.pulses[span].sum()), int(flat.cells[span].sum()),
                         int(time_ps.sum()), float(flat.energy_pj[span].sum()),
                         float(flat.line_energy_pj[span].sum()), int(flat.verifies[span].sum()))
    return out


def _add_rewrites(sw: SwitchCost, lm: LayerMapping, mapping, costs: dict[int, _PeCost],
                  compare: bool, ever: np.ndarray) -> None:
    """Add the rewritten PEs of ``lm`` to ``sw``, PE by PE in PE order: a replica holds its first
    instance's weights in cells of its own, so it costs the same write (its cells' write counts
    are the first instance's, counted once in ``counts``, which is laid out by weight)."""
    for i, pid in enumerate(lm.pes):
        cost = costs.get(i % lm.pes_per_replica)
        if cost is None:
            continue
        sw.jobs.append((pid, cost.time_ps))
        sw.pulses += cost.pulses
        sw.cells_written += cost.cells
        sw.write_time_ps += cost.write_time_ps
        sw.cell_energy_pj += cost.cell_energy_pj
        sw.line_energy_pj += cost.line_energy_pj
        sw.verifies += cost.verifies
        sw.pes_rewritten += 1
        if compare:
            pe = mapping.pes[pid]
            sw.compared_cells += ((pe.row_stop - pe.row_start)
                                  * (pe.col_stop - pe.col_start) * mapping.columns_per_weight)
        ever[i] = True


def write_params(arch: Arch) -> dict:
    """The arch's write model as :func:`xsim.kernels.writes.write_costs` takes it (all but the
    levels, windows, columns and counters)."""
    rp, tables = arch.reprogramming, cell_tables(arch)
    return dict(rows=arch.crossbar.rows, compare=rp.compare_before_write,
                pulses=tables.pulses, energy_pj=tables.energy_pj, line_pj=tables.line_pj,
                phase=tables.phase, scheme=arch.cell.write.scheme, pulse_ps=tables.pulse_ps,
                verify_ps=tables.verify_ps, compare_ps=tables.verify_ps,
                drivers=rp.write_drivers, wordline_pj=tables.wordline_pj,
                array_ps=tables.array_ps)


def run_scenario(deployment: Deployment, tasks: TaskSet,
                 inference: Callable[[frozenset[int]], dict], progress=None,
                 keep_cell_writes: bool = False) -> MtaResult:
    """Cost every strategy of the workload on the schedule; ``inference(scaled_pes)`` returns the
    engine's per-image figures for a set of tier-2-scaled PEs; ``keep_cell_writes`` keeps every
    layer's per-cell write counters in the result."""
    arch, workload, mapping = deployment.arch, deployment.workload, deployment.mapping
    hw = deployment.hardware
    sequence = _switch_sequence(workload)
    pairs = Counter((a, b) for a, b in zip(sequence, sequence[1:]) if a != b)
    strategies = workload.strategies
    rp = arch.reprogramming
    cpw = mapping.columns_per_weight
    params = write_params(arch)

    switches = {(s, a, b): SwitchCost(s, a, b, n) for s in strategies for (a, b), n in pairs.items()}
    hist = {s: np.zeros(1, dtype=np.int64) for s in strategies}
    tracked = dict.fromkeys(strategies, 0)
    cell_writes = {s: {} for s in strategies} if keep_cell_writes else None
    visited = sorted({t for pair in pairs for t in pair})
    # A cell is written at most once per distinct switch, so its count is at most the number of
    # switches: narrow counters while that fits (less memory to touch), int64 in the result.
    counter = np.uint16 if sum(pairs.values()) <= np.iinfo(np.uint16).max else np.int64
    layers = mapping.layers if progress is None else progress(mapping.layers)
    for lm in layers:
        levels = _LayerLevels(arch, tasks, lm, mapping.weight_bits, deployment.head_layer)
        firsts = lm.pes[: lm.pes_per_replica]
        # Strategies that hold the same version in every first-instance PE for every task write
        # the same cells at the same cost: they are costed once, as one plan.
        plans: dict[tuple, list[str]] = {}
        for s in strategies:
            held = {t: tuple(_version(s, t, f, tasks, levels.is_head) for f in firsts)
                    for t in visited}
            plans.setdefault(tuple((held[a], held[b]) for a, b in pairs), []).append(s)
        for plan, group in plans.items():
            counts = np.zeros((lm.K, lm.N * cpw), dtype=counter)
            ever = np.zeros(len(lm.pes), dtype=bool)
            for ((a, b), n), (old_held, new_held) in zip(pairs.items(), plan):
                costs = _first_instance_costs(lm, mapping, levels, old_held, new_held, counts, n,
                                              params)
                for s in group:
                    _add_rewrites(switches[(s, a, b)], lm, mapping, costs, rp.compare_before_write,
                                  ever)
            if cell_writes is not None:
                kept = counts.astype(np.int64)
                kept.flags.writeable = False  # shared by the plan's strategies
                for s in group:
                    cell_writes[s][lm.layer.name] = kept
            # A replica's cells are written as its first instance's (the same block of counts):
            # each first instance's block is binned once and counted once per written copy.
            copies = np.bincount(np.flatnonzero(ever) % lm.pes_per_replica,
                                 minlength=lm.pes_per_replica)
            for j in np.flatnonzero(copies):
                pe = mapping.pes[lm.pes[j]]
                block = counts[pe.row_start:pe.row_stop, pe.col_start * cpw:pe.col_stop * cpw]
                binned = np.bincount(block.ravel()) * copies[j]
                for s in group:
                    if binned.size > hist[s].size:
                        grown = binned.copy()
                        grown[: hist[s].size] += hist[s]
                        hist[s] = grown
                    else:
                        hist[s][: binned.size] += binned
                    tracked[s] += block.size * int(copies[j])

    scale_bytes_per_column = arch.tier2.scale_bits / 8
    e_verify = hw.energy_pj("cell", "verify_read")
    e_load = hw.energy_pj("edram", "byte") + hw.energy_pj("tier2_register", "byte")
    lanes = crossbars_in_parallel(arch)
    for sw in switches.values():
        sw.latency_ps, sw.rewrites = schedule_switch(sw.jobs, lanes)
        sw.jobs = []
        entry = strategy_of(sw.strategy)
        if entry.scales and sw.target != workload.backbone.name:
            tier1 = tasks.tier1[sw.target] if entry.uses_tier1_mask else frozenset()
            columns = deployment.scaled_columns(tier1)
            sw.tier2_bytes = int(np.ceil(columns * scale_bytes_per_column))
            sw.scale_load_ps = deployment.scale_load_ps(sw.tier2_bytes)
            # Scales travel over the eDRAM and registers while the write drivers work.
            sw.latency_ps = max(sw.latency_ps, sw.scale_load_ps)
        sw.energy_pj = {
            "write_pulse": sw.cell_energy_pj,
            "write_lines": sw.line_energy_pj,
            "verify_read": (sw.verifies + sw.compared_cells) * e_verify,
            "tier2_load": sw.tier2_bytes * e_load,
        }

    endurance = {s: Endurance(s, hist[s], tracked[s]) for s in strategies}
    infer = _inference_figures(deployment, tasks, inference)
    return MtaResult(deployment, switches, endurance, sequence, infer, dict(tasks.tier1), cell_writes)


def scaled_pes(strategy: str, task: str, deployment: Deployment, tasks: TaskSet) -> frozenset[int]:
    """The PEs (replicas included) whose columns go through tier-2 scaling while ``task`` runs."""
    entry = strategy_of(strategy)
    if not entry.scales or task == tasks.workload.backbone.name:
        return frozenset()
    tier1 = tasks.tier1[task] if entry.uses_tier1_mask else frozenset()
    return deployment.frozen_pes(tier1)


def scaled_pe_sets(deployment: Deployment, tasks: TaskSet) -> list[frozenset[int]]:
    """The distinct sets of tier-2-scaled PEs the workload's strategies and tasks run with, in
    the order :func:`run_scenario` asks for their inference figures."""
    workload = deployment.workload
    sets = (scaled_pes(s, t.name, deployment, tasks) for s in workload.strategies for t in workload.tasks)
    return list(dict.fromkeys(sets))


def _inference_figures(deployment, tasks, inference) -> dict[tuple[str, str], dict]:
    cache: dict[frozenset[int], dict] = {}
    out = {}
    workload = deployment.workload
    for s in workload.strategies:
        for t in workload.tasks:
            scaled = scaled_pes(s, t.name, deployment, tasks)
            if scaled not in cache:
                cache[scaled] = inference(scaled)
            out[(s, t.name)] = cache[scaled]
    return out
