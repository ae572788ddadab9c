"""A multi-task scenario run under every adaptation strategy on one mapping and schedule.

Strategies (what a PE holds while task ``t`` runs, and what a switch A → B rewrites):

=================  =====================================================  =====================
strategy           weights in the crossbars for task t                   tier-2 scaling
=================  =====================================================  =====================
``full_finetune``  t's fine-tuned weights in every PE                     none
``tier1_only``     t's weights in its tier-1 PEs, the backbone elsewhere   none
``tier2_only``     the backbone everywhere                                every non-head PE
``xma2``           t's weights in its tier-1 PEs, the backbone elsewhere   every frozen PE
``elementwise``    the backbone with t's element-wise mask applied        none
=================  =====================================================  =====================

Every task has its own head (classifier). With ``mapping.resident_heads`` (the default) each
new task's head sits in spare PEs of its own, programmed once with the backbone and never
rewritten; otherwise every switch rewrites the head layer's PEs in every strategy. A switch A → B
rewrites, PE by PE, the cells whose content differs (``mask_A ∪ mask_B`` for the tier-1
strategies: A's PEs back to the backbone or straight to B's weights) through the reprogramming
controller (:mod:`xsim.mta.controller`), with the write-verify cost of
:func:`xsim.kernels.writes.write_cost`; meanwhile B's tier-2 scales are loaded from eDRAM into the
scale registers (the switch latency is the longer of the two). The chip starts with the backbone
programmed (that first programming is not counted: it is the same for every strategy). Each
distinct switch (A, B) is costed once and counted as often as the schedule makes it.

Energy of a switch: program pulses × (write pulse + verify read) + compared cells × verify read
+ driver power × crossbar write time + tier-2 scale bytes × (eDRAM byte + scale register byte).

Endurance: every cell of every PE ever written has a write counter over the whole schedule; the
report gives their maximum, mean and histogram, and the projected lifetime — schedule periods
until the worst cell reaches ``cell.endurance_cycles`` (periods × endurance / max count), and the
wall time at the workload's ``switches_per_hour``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from xsim.config import Arch, Workload
from xsim.energy import Hardware
from xsim.kernels.writes import write_cost
from xsim.mapping import LayerMapping, Mapping
from xsim.mta.cells import cell_levels
from xsim.mta.controller import Rewrite, schedule_switch
from xsim.mta.tasks import TaskSet

TIER1_STRATEGIES = ("tier1_only", "xma2")
TIER2_STRATEGIES = ("tier2_only", "xma2")


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
    switches: dict[tuple[str, str, str], SwitchCost]
    endurance: dict[str, Endurance]
    sequence: tuple[str, ...]
    inference: dict[tuple[str, str], dict]
    tables: dict[str, list[dict]]
    summary: dict


def _switch_sequence(workload: Workload) -> tuple[str, ...]:
    return (workload.backbone.name, *workload.visits())


def _frozen_pes(mapping: Mapping, tier1: frozenset[int], head: str) -> frozenset[int]:
    """PEs (replicas included) whose columns are scaled: every non-head PE outside tier 1."""
    return frozenset(p.index for p in mapping.pes
                     if p.layer != head and mapping.first_instance(p.index) not in tier1)


class _LayerLevels:
    """Cell levels of one layer under each version of its weights, computed once each."""

    def __init__(self, arch: Arch, tasks: TaskSet, lm: LayerMapping, bits: int) -> None:
        self.arch, self.tasks, self.lm, self.bits = arch, tasks, lm, bits
        self.cache: dict[tuple[str, str], np.ndarray] = {}
        self.is_head = lm.layer.name == tasks.head_layer

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
    if strategy == "full_finetune":
        return ("finetuned", task)
    if strategy == "elementwise":
        return ("masked", task)
    if strategy in TIER1_STRATEGIES and first_pe in tasks.tier1[task]:
        return ("finetuned", task)
    return ("backbone", backbone)


def run_scenario(arch: Arch, workload: Workload, mapping: Mapping, hw: Hardware, tasks: TaskSet,
                 inference: Callable[[frozenset[int]], dict], progress=None) -> MtaResult:
    """Cost every strategy of the workload on the schedule; ``inference(scaled_pes)`` returns the
    engine's per-image figures for a set of tier-2-scaled PEs."""
    sequence = _switch_sequence(workload)
    pairs = Counter((a, b) for a, b in zip(sequence, sequence[1:]) if a != b)
    strategies = workload.strategies
    cell, wv, rp = arch.cell, arch.cell.write_verify, arch.reprogramming
    cpw = mapping.columns_per_weight
    params = dict(rows=arch.crossbar.rows, compare=rp.compare_before_write,
                  base_pulses=wv.base_pulses, pulses_per_level=wv.pulses_per_level,
                  max_pulses=wv.max_pulses, write_ps=int(round(cell.write_pulse_ns * 1000)),
                  verify_ps=int(round(wv.verify_read_ns * 1000)), compare_ps=arch.read_cycle_ps,
                  parallel_columns=rp.parallel_columns)

    switches = {(s, a, b): SwitchCost(s, a, b, n) for s in strategies for (a, b), n in pairs.items()}
    hist = {s: np.zeros(1, dtype=np.int64) for s in strategies}
    tracked = dict.fromkeys(strategies, 0)
    layers = mapping.layers if progress is None else progress(mapping.layers)
    for lm in layers:
        levels = _LayerLevels(arch, tasks, lm, mapping.weight_bits)
        columns = lm.weights_per_row * cpw
        for s in strategies:
            counts = np.zeros((lm.K, lm.N * cpw), dtype=np.int64)
            ever = np.zeros(len(lm.pes), dtype=bool)
            for (a, b), n in pairs.items():
                sw = switches[(s, a, b)]
                for i, pid in enumerate(lm.pes):
                    pe = mapping.pes[pid]
                    first = lm.pes[i % lm.pes_per_replica]
                    old_v = _version(s, a, first, tasks, levels.is_head)
                    new_v = _version(s, b, first, tasks, levels.is_head)
                    if old_v == new_v:
                        continue
                    window = (pe.row_start, pe.row_stop, pe.col_start * cpw, pe.col_stop * cpw)
                    times, pulses, cells = write_cost(
                        levels.get(*old_v), levels.get(*new_v), columns=columns, window=window,
                        counts=counts, weight=n, **params)
                    sw.jobs.append((pid, times.ravel()))
                    sw.pulses += int(pulses.sum())
                    sw.cells_written += int(cells.sum())
                    sw.write_time_ps += int(times.sum())
                    sw.pes_rewritten += 1
                    if rp.compare_before_write:
                        sw.compared_cells += (window[1] - window[0]) * (window[3] - window[2])
                    ever[i] = True
            for i in np.flatnonzero(ever):
                pe = mapping.pes[lm.pes[i]]
                block = counts[pe.row_start:pe.row_stop, pe.col_start * cpw:pe.col_stop * cpw]
                binned = np.bincount(block.ravel())
                if binned.size > hist[s].size:
                    binned[: hist[s].size] += hist[s]
                    hist[s] = binned
                else:
                    hist[s][: binned.size] += binned
                tracked[s] += block.size

    scale_bytes_per_column = arch.tier2.scale_bits / 8
    e_write = hw.energy_pj("cell", "write_pulse")
    e_verify = hw.energy_pj("cell", "verify_read")
    e_load = hw.energy_pj("edram", "byte") + hw.energy_pj("tier2_register", "byte")
    load_rate = arch.role("edram").width_bits / 8 * arch.chip.digital_clock_ghz * mapping.tiles  # B/ns
    head = tasks.head_layer
    for sw in switches.values():
        sw.latency_ps, sw.rewrites = schedule_switch(sw.jobs, rp.parallel_crossbars)
        sw.jobs = []
        if sw.strategy in TIER2_STRATEGIES and sw.target != workload.backbone.name:
            tier1 = tasks.tier1[sw.target] if sw.strategy == "xma2" else frozenset()
            columns = sum(p.weight_columns for p in mapping.pes
                          if p.replica == 0 and p.layer != head and p.index not in tier1)
            sw.tier2_bytes = int(np.ceil(columns * scale_bytes_per_column))
            sw.scale_load_ps = int(np.ceil(sw.tier2_bytes / load_rate * 1000))
            # Scales travel over the eDRAM and registers while the write drivers work.
            sw.latency_ps = max(sw.latency_ps, sw.scale_load_ps)
        sw.energy_pj = {
            "write_pulse": sw.pulses * e_write,
            "verify_read": (sw.pulses + sw.compared_cells) * e_verify,
            "write_driver": rp.driver_power_mw * 1e-3 * sw.write_time_ps * 1e-12 * 1e12,
            "tier2_load": sw.tier2_bytes * e_load,
        }

    endurance = {s: Endurance(s, hist[s], tracked[s]) for s in strategies}
    infer = _inference_figures(mapping, workload, tasks, inference)
    tables, summary = _tables(arch, workload, mapping, hw, tasks, switches, endurance, infer,
                              sequence)
    return MtaResult(switches, endurance, sequence, infer, tables, summary)


def scaled_pes(strategy: str, task: str, mapping: Mapping, tasks: TaskSet) -> frozenset[int]:
    """The PEs (replicas included) whose columns go through tier-2 scaling while ``task`` runs."""
    if strategy not in TIER2_STRATEGIES or task == tasks.workload.backbone.name:
        return frozenset()
    tier1 = tasks.tier1[task] if strategy == "xma2" else frozenset()
    return _frozen_pes(mapping, tier1, tasks.head_layer)


def _inference_figures(mapping, workload, tasks, inference) -> dict[tuple[str, str], dict]:
    cache: dict[frozenset[int], dict] = {}
    out = {}
    for s in workload.strategies:
        for t in workload.tasks:
            scaled = scaled_pes(s, t.name, mapping, tasks)
            if scaled not in cache:
                cache[scaled] = inference(scaled)
            out[(s, t.name)] = cache[scaled]
    return out


def _lifetime(workload: Workload, max_writes: int, endurance_cycles: float, switches: int):
    periods = workload.schedule.periods if workload.schedule.kind == "round_robin" else 1
    if max_writes == 0:
        return float("inf"), float("inf")
    lifetime_periods = endurance_cycles * periods / max_writes
    hours_per_period = switches / periods / workload.schedule.switches_per_hour
    return lifetime_periods, lifetime_periods * hours_per_period


def _tables(arch, workload, mapping, hw, tasks, switches, endurance, infer, sequence):
    n_switches = sum(1 for a, b in zip(sequence, sequence[1:]) if a != b)
    tier2_area = hw.tier2_per_pe.area_mm2 * arch.pes_per_chip
    rows, breakdown, switch_rows, hist_rows, totals = [], [], [], [], []
    visits = Counter(sequence[1:])
    for s in workload.strategies:
        endu = endurance[s]
        life_p, life_h = _lifetime(workload, endu.max_writes, arch.cell.endurance_cycles, n_switches)
        schedule_energy = {"switch": 0.0, "inference": 0.0}
        for task in workload.tasks:
            into = [sw for (st, _, b), sw in switches.items() if st == s and b == task.name]
            n_into = sum(sw.occurrences for sw in into)

            def mean(f, into=into, n=n_into):
                return sum(f(sw) * sw.occurrences for sw in into) / n if n else 0.0

            fig = infer[(s, task.name)]
            energy_image = fig["energy_pj"]
            rows.append({
                "strategy": s, "task": task.name,
                "tier1_pes": len(tasks.tier1.get(task.name, ())) if s in TIER1_STRATEGIES else
                (mapping.pe_count if s in ("full_finetune", "elementwise") and not task.backbone
                 else 0),
                "switches_into": n_into,
                "switch_energy_uj": mean(lambda sw: sw.total_energy_pj) * 1e-6,
                "switch_latency_us": mean(lambda sw: sw.latency_ps) * 1e-6,
                "cells_written": mean(lambda sw: sw.cells_written),
                "program_pulses": mean(lambda sw: sw.pulses),
                "pes_rewritten": mean(lambda sw: sw.pes_rewritten),
                "tier2_load_bytes": mean(lambda sw: sw.tier2_bytes),
                "inference_energy_uj": energy_image * 1e-6,
                "inference_latency_us": fig["latency_ps"] * 1e-6,
                "tier2_overhead_uj": fig["tier2_pj"] * 1e-6,
                "extra_area_mm2": tier2_area if s in TIER2_STRATEGIES else 0.0,
                "lifetime_periods": life_p,
                "lifetime_hours": life_h,
            })
            for sw in into:
                for comp, e in sw.energy_pj.items():
                    breakdown.append({"strategy": s, "task": task.name, "phase": "switch",
                                      "component": comp, "energy_uj": e * sw.occurrences * 1e-6})
                schedule_energy["switch"] += sw.total_energy_pj * sw.occurrences
            per_visit = task.inferences_per_visit * visits.get(task.name, 0)
            for comp, e in fig["components"].items():
                breakdown.append({"strategy": s, "task": task.name, "phase": "inference",
                                  "component": comp, "energy_uj": e * per_visit * 1e-6})
            schedule_energy["inference"] += energy_image * per_visit
        for (st, a, b), sw in switches.items():
            if st == s:
                switch_rows.append({
                    "strategy": s, "from": a, "to": b, "occurrences": sw.occurrences,
                    "energy_uj": sw.total_energy_pj * 1e-6, "latency_us": sw.latency_ps * 1e-6,
                    "cells_written": sw.cells_written, "program_pulses": sw.pulses,
                    "pes_rewritten": sw.pes_rewritten, "tier2_load_bytes": sw.tier2_bytes})
        for writes, cells in enumerate(endu.histogram):
            if cells:
                hist_rows.append({"strategy": s, "writes": writes, "cells": int(cells)})
        totals.append({
            "strategy": s,
            "schedule_switch_energy_uj": schedule_energy["switch"] * 1e-6,
            "schedule_inference_energy_uj": schedule_energy["inference"] * 1e-6,
            "cells_tracked": endu.cells_tracked, "max_writes": endu.max_writes,
            "mean_writes": endu.mean_writes, "lifetime_periods": life_p, "lifetime_hours": life_h,
            "extra_area_mm2": tier2_area if s in TIER2_STRATEGIES else 0.0,
        })
    change = {t.name: {"fraction": t.weight_change.fraction, "sigma_lsb": t.weight_change.sigma_lsb,
                       "masked_fraction": t.weight_change.masked_fraction}
              for t in workload.new_tasks}
    summary = {
        "switches": n_switches,
        "schedule": list(sequence),
        "tier1_pes": {t: len(m) for t, m in tasks.tier1.items()},
        "synthetic_weight_change": change,
        "strategies": totals,
    }
    return ({"strategies": rows, "energy_breakdown": breakdown, "switches": switch_rows,
             "endurance": hist_rows, "strategy_totals": totals}, summary)
