"""The public entry point: ``xsim.simulate(arch, workload)`` and the result it returns.

Data flows one way: files → validated config (built once) → mapping → hardware roll-up →
engine (inference timing and energy) → multi-task adaptation (every strategy on the schedule) →
optionally the bit-accurate functional model → tables. Each stage lives in its own module; this
one only wires them together and collects what they return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xsim.config import (
    Arch,
    ConfigError,
    Workload,
    build_network,
    load_arch,
    load_workload,
    resolve_path,
)
from xsim.config.limits import DEFAULT_MAX_WORK, check_work, estimate_work
from xsim.energy import Hardware, hardware
from xsim.mapping import Mapping, map_network
from xsim.models import Network

Progress = Callable[[Iterable, str], Iterable]

# Activation scales of the bit-accurate model are calibrated on this many synthetic images per
# task: the scale is the largest activation seen, which two images already bound closely.
CALIBRATION_IMAGES = 2


@dataclass(frozen=True)
class SimulationResult:
    """Everything one run produced. ``tables`` are tidy row lists, one per CSV file."""

    arch: Arch
    workload: Workload
    network: Network
    mapping: Mapping
    hardware: Hardware
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def prepare(arch: Arch | str | Path, workload: Workload | str | Path,
            arch_overrides: dict | None = None) -> tuple[Arch, Workload, Network, Mapping, Hardware]:
    """Load (if given paths), build the network, map it and roll up the hardware."""
    if not isinstance(arch, Arch):
        arch = load_arch(arch, arch_overrides)
    if not isinstance(workload, Workload):
        workload = load_workload(workload)
    network = build_network(workload)
    weight_bits = workload.weight_bits(arch.precision.weight_bits)
    input_bits = workload.input_bits(arch.precision.input_bits)
    mapping = map_network(arch, network, weight_bits=weight_bits, input_bits=input_bits,
                          replication=workload.mapping.replication, source=workload.source)
    if workload.mapping.resident_heads:
        heads = (len(workload.tasks) - 1) * mapping.layers[-1].pes_per_replica
        spare = arch.pes_per_chip - mapping.pe_count
        if heads > spare:
            raise ConfigError(workload.source, "mapping.resident_heads",
                              f"the {len(workload.tasks) - 1} new tasks' heads need {heads} spare PEs "
                              f"but {arch.name} has {spare} left after the mapping; set it to false "
                              "to rewrite the head at every switch")
    return arch, workload, network, mapping, hardware(arch, weight_bits, input_bits)


def model_weights(workload: Workload, network: Network) -> dict:
    """The backbone's float weights: synthetic (seeded) or from the workload's ``.npz``."""
    from xsim.functional.weights import load_weights, synthetic_weights

    spec = workload.model.weights
    if spec.kind == "synthetic":
        return synthetic_weights(network, spec.seed)
    path = resolve_path(workload, spec.path)
    try:
        return load_weights(path, network)
    except FileNotFoundError:
        raise ConfigError(workload.source, "model.weights.path", f"no such file: {path}") from None
    except ValueError as exc:
        raise ConfigError(workload.source, "model.weights.path", str(exc)) from None


def _no_progress(items: Iterable, _label: str) -> Iterable:
    return items


def simulate(arch: Arch | str | Path, workload: Workload | str | Path, *,
             arch_overrides: dict | None = None, functional: bool = False, images: int = 1,
             progress: Progress | None = None, max_work: int = DEFAULT_MAX_WORK) -> SimulationResult:
    """Simulate ``workload`` on ``arch``: inference on the engine, every adaptation strategy on the
    schedule, and (``functional``) bit-accurate inference of ``images`` images per task under
    XMA2's masks. Returns a :class:`SimulationResult` with its tables and summary. A run whose
    estimated work exceeds ``max_work`` is refused before it starts
    (:func:`xsim.config.limits.estimate_work`)."""
    from xsim.engine import simulate_inference
    from xsim.mta.scenario import run_scenario
    from xsim.mta.tasks import build_tasks

    progress = progress or _no_progress
    arch, workload, network, mapping, hw = prepare(arch, workload, arch_overrides)
    check_work(estimate_work(workload, mapping, functional=functional, images=images), max_work,
               workload.source)
    # The pipelined batch gives throughput; strategies compare one image each, all alike.
    backbone = simulate_inference(arch, mapping, hw, images=workload.batch, record_timeline=False)

    def inference(scaled: frozenset[int]) -> dict:
        result = simulate_inference(arch, mapping, hw, images=1, scaled_pes=scaled,
                                    record_timeline=False)
        components: dict[str, float] = {}
        for row in result.component_rows():
            name = "leakage" if row["action"] == "leakage" else row["component"]
            components[name] = components.get(name, 0.0) + row["energy_per_image_pj"]
        tier2 = components.get("tier2_scale", 0.0) + components.get("tier2_register", 0.0)
        return {"energy_pj": result.energy_per_image_pj, "latency_ps": result.latency_ps,
                "tier2_pj": tier2, "components": components}

    weights = model_weights(workload, network)
    tasks = build_tasks(mapping, workload, weights)
    mta = run_scenario(arch, workload, mapping, hw, tasks, inference,
                       progress=lambda layers: progress(layers, "reprogramming"))

    tables = {
        "strategies": mta.tables["strategies"],
        "strategy_totals": mta.tables["strategy_totals"],
        "switches": mta.tables["switches"],
        "energy_breakdown": mta.tables["energy_breakdown"],
        "endurance": mta.tables["endurance"],
        "layers": _layer_rows(mapping, backbone),
        "components": backbone.component_rows(),
        "actions": [{"component": a.component, "action": a.action, "energy_pj": a.energy_pj,
                     "derivation": a.derivation} for a in hw.actions],
    }
    tables["first_switch"], tables["timeline"] = _first_switches(arch, workload, mapping, hw, mta,
                                                                 tasks)
    summary = {
        "arch": arch.name,
        "workload": workload.name,
        "mapping": mapping.totals(),
        "hardware": {k: v for k, v in hw.to_dict().items() if k != "actions"},
        "inference": {k: v for k, v in backbone.to_dict().items()
                      if k not in ("layers", "components", "counts")},
        "multi_task": {**mta.summary, "first_switch": tables["first_switch"]},
    }
    if functional:
        from xsim.functional.masks import task_masks_from_tasks
        from xsim.functional.metrics import functional_metrics

        masks = {task.name: task_masks_from_tasks(tasks, task.name) for task in workload.tasks}
        per_task, per_layer = functional_metrics(
            arch, network, mapping, weights, images=images, seed=workload.seed,
            calibration_images=CALIBRATION_IMAGES,
            masks_by_task=dict(progress(masks.items(), "bit-accurate inference")))
        tables["functional_tasks"] = per_task
        tables["functional_layers"] = per_layer
        summary["functional"] = per_task
    return SimulationResult(arch, workload, network, mapping, hw, tables, summary)


def _layer_rows(mapping: Mapping, backbone) -> list[dict]:
    placed = {row["layer"]: row for row in mapping.summary_rows()}
    rows = []
    for row in backbone.layer_rows():
        merged = dict(placed.get(row["layer"], {}))
        merged.update({k: v for k, v in row.items() if k not in ("first_ps", "last_ps")})
        rows.append(merged)
    return rows


def _first_switches(arch, workload, mapping, hw, mta, tasks) -> tuple[list[dict], list[dict]]:
    """Per strategy, its first switch and the new task's first inference in one engine run (PEs
    being rewritten cannot serve; the others can). Returns (rows, XMA2's timeline)."""
    from xsim.mta.overlap import switch_then_infer
    from xsim.mta.scenario import scaled_pes

    # The first visit that changes task (a schedule may revisit the backbone first, or repeat).
    first = next(((a, b) for a, b in zip(mta.sequence, mta.sequence[1:]) if a != b), None)
    if first is None:
        return [], []
    source, target = first
    rows, timeline = [], []
    for strategy in workload.strategies:
        sw = mta.switches[(strategy, source, target)]
        run = switch_then_infer(arch, mapping, hw, sw.rewrites,
                                scaled_pes(strategy, target, mapping, tasks), sw.scale_load_ps)
        rows.append({"strategy": strategy, "from": source, "to": target,
                     "switch_latency_us": run.switch_latency_ps * 1e-6,
                     "first_result_us": run.first_result_ps * 1e-6,
                     "sequential_bound_us": (run.switch_latency_ps
                                             + mta.inference[(strategy, target)]["latency_ps"]) * 1e-6})
        if strategy == "xma2" or not timeline:
            timeline = list(run.timeline)
    return rows, timeline
