"""Results into tables: every tidy row list a run writes as CSV, and ``summary.json``.

The models return typed results (:class:`xsim.engine.InferenceResult`,
:class:`xsim.mta.scenario.MtaResult`, the functional metrics); this module alone decides the
tables' columns and units (µJ, µs, mm²). A lifetime that never ends (a strategy that writes no
cell) is ``None``: an empty CSV cell and ``null`` in JSON, never ``Infinity``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from xsim.functional.nonideal import DeviceModel
from xsim.mta.scenario import MtaResult
from xsim.strategies import strategy as strategy_of
from xsim.write_model import assumptions


def mta_tables(mta: MtaResult) -> tuple[dict[str, list[dict]], dict]:
    """The multi-task tables (strategies, energy_breakdown, switches, endurance,
    strategy_totals) and the multi-task part of ``summary.json``."""
    dep = mta.deployment
    arch, workload, mapping, hw = dep.arch, dep.workload, dep.mapping, dep.hardware
    switches, endurance, infer, sequence = mta.switches, mta.endurance, mta.inference, mta.sequence
    n_switches = mta.switch_count
    tier2_area = hw.tier2_per_pe.area_mm2 * arch.pes_per_chip
    rows, breakdown, switch_rows, hist_rows, totals = [], [], [], [], []
    visits = Counter(sequence[1:])
    for s in workload.strategies:
        endu = endurance[s]
        entry = strategy_of(s)
        life_p, life_h = mta.lifetime(s)
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
                "tier1_pes": len(mta.tier1.get(task.name, ())) if entry.uses_tier1_mask else
                (mapping.pe_count if entry.rewrites_all and not task.backbone else 0),
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
                "extra_area_mm2": tier2_area if entry.scales else 0.0,
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
            "extra_area_mm2": tier2_area if entry.scales else 0.0,
        })
    change = {t.name: {"model": "weights_file" if t.weights_file else (
                           "per-PE log-normal gain" if t.weight_change.pe_spread > 0 else "i.i.d."),
                       "fraction": t.weight_change.fraction, "sigma_lsb": t.weight_change.sigma_lsb,
                       "pe_spread": t.weight_change.pe_spread,
                       "masked_fraction": t.weight_change.masked_fraction,
                       "tier1_policy": t.tier1.policy,
                       "description": ("each weight changes with probability fraction by "
                                       "round(N(0, (sigma_lsb*g)^2)) LSB, g a (task, PE) gain with "
                                       "ln g ~ N(-pe_spread^2/2, pe_spread^2)")}
              for t in workload.new_tasks}
    summary = {
        "switches": n_switches,
        "schedule": list(sequence),
        "tier1_pes": {t: len(m) for t, m in mta.tier1.items()},
        "synthetic_weight_change": change,
        "strategies": totals,
    }
    return ({"strategies": rows, "energy_breakdown": breakdown, "switches": switch_rows,
             "endurance": hist_rows, "strategy_totals": totals}, summary)


def run_tables(result) -> dict[str, list[dict[str, Any]]]:
    """Every table of ``xsim run`` for a :class:`xsim.api.SimulationResult`."""
    dep = result.deployment
    mta, _ = mta_tables(result.mta)
    tables = {
        **mta,
        "layers": _layer_rows(dep.mapping, result.backbone),
        "components": result.backbone.component_rows(),
        "actions": [{"component": a.component, "action": a.action, "unit": a.unit,
                     "energy_pj": a.energy_pj, "derivation": a.derivation}
                    for a in dep.hardware.actions],
        "first_switch": first_switch_rows(result.first_switch),
        "timeline": list(result.timeline),
    }
    if result.functional_tasks is not None:
        tables["functional_tasks"] = list(result.functional_tasks)
        tables["functional_layers"] = list(result.functional_layers)
    if result.lifetime is not None:
        tables["lifetime"] = list(result.lifetime)
    return tables


def first_switch_rows(first_switch) -> list[dict[str, Any]]:
    return [{"strategy": f.strategy, "from": f.source, "to": f.target,
             "switch_latency_us": f.switch_latency_ps * 1e-6,
             "first_result_us": f.first_result_ps * 1e-6,
             "sequential_bound_us": f.sequential_bound_ps * 1e-6} for f in first_switch]


def run_summary(result) -> dict[str, Any]:
    """``summary.json`` of ``xsim run`` for a :class:`xsim.api.SimulationResult`."""
    dep = result.deployment
    _, mta_summary = mta_tables(result.mta)
    summary = {
        "arch": dep.arch.name,
        "workload": dep.workload.name,
        "mapping": dep.mapping.totals(),
        "hardware": {k: v for k, v in dep.hardware.to_dict().items()
                     if k not in ("actions", "components")},
        "inference": {k: v for k, v in result.backbone.to_dict().items()
                      if k not in ("layers", "components", "counts")},
        "multi_task": {**mta_summary, "first_switch": first_switch_rows(result.first_switch)},
        "write_model": {**dep.hardware.write, **assumptions(dep.arch)},
        "nonideal": DeviceModel.from_arch(dep.arch, dep.workload.seed).summary(),
    }
    if result.functional_tasks is not None:
        summary["functional"] = list(result.functional_tasks)
    if result.lifetime is not None:
        summary["lifetime"] = lifetime_summary(result.lifetime)
    return summary


def lifetime_summary(rows) -> dict[str, Any]:
    """Per strategy: the checkpoints, the first period at which some task's top-1 agreement
    with the fault-free model drops below 1 (None: never within the study) and, where the tasks
    have labelled test images, each task's accuracy at day one and at the last checkpoint."""
    out: dict[str, Any] = {}
    for row in rows:
        entry = out.setdefault(row["strategy"], {"periods": [], "first_disagreement_period": None})
        if row["period"] not in entry["periods"]:
            entry["periods"].append(row["period"])
        if row["top1_agreement"] < 1.0 and entry["first_disagreement_period"] is None:
            entry["first_disagreement_period"] = row["period"]
        if row.get("accuracy") is not None:
            acc = entry.setdefault("accuracy", {}).setdefault(row["task"], {})
            acc.setdefault("first", row["accuracy"])
            acc["last"] = row["accuracy"]
    return out


def _layer_rows(mapping, backbone) -> list[dict]:
    placed = {row["layer"]: row for row in mapping.summary_rows()}
    rows = []
    for row in backbone.layer_rows():
        merged = dict(placed.get(row["layer"], {}))
        merged.update({k: v for k, v in row.items() if k not in ("first_ps", "last_ps")})
        rows.append(merged)
    return rows


def sweep_rows(result) -> list[dict[str, Any]]:
    """One sweep point's rows of ``sweep.csv`` (without the grid coordinates)."""
    arch = result.arch
    tables, summary = result.tables, result.summary  # built once per result
    base = {"arch_name": arch.name, "crossbar_rows": arch.crossbar.rows, "adc_bits": arch.adc_bits}
    inference = summary["inference"]
    rows = []
    for row in tables["components"]:
        rows.append({**base, "kind": "inference_component", "strategy": "", "item": row["component"],
                     "value": row["energy_per_image_pj"] * 1e-6, "unit": "uJ/image"})
    for row in tables["strategy_totals"]:
        for item in ("schedule_switch_energy_uj", "max_writes", "lifetime_periods", "extra_area_mm2"):
            rows.append({**base, "kind": "strategy", "strategy": row["strategy"], "item": item,
                         "value": row[item], "unit": item.rsplit("_", 1)[-1]})
    for row in tables["strategies"]:
        if row["switches_into"]:
            for item in ("switch_energy_uj", "switch_latency_us", "cells_written"):
                rows.append({**base, "kind": "strategy_task", "strategy": row["strategy"],
                             "task": row["task"], "item": item, "value": row[item],
                             "unit": item.rsplit("_", 1)[-1]})
    rows.append({**base, "kind": "inference", "strategy": "", "item": "latency_us",
                 "value": inference["latency_us"], "unit": "us"})
    rows.append({**base, "kind": "inference", "strategy": "", "item": "energy_per_image_uj",
                 "value": inference["energy_per_image_uj"], "unit": "uJ"})
    for row in result.functional_tasks or ():
        for item in ("top1_agreement", "rel_error"):
            if row[item] is not None:
                rows.append({**base, "kind": "functional_task", "strategy": "xma2", "task": row["task"],
                             "item": item, "value": row[item], "unit": "fraction"})
    return rows
