"""``xsim learn``: train the backbone, learn every task under every strategy and PE budget, measure
the frontier in float and through the crossbar model, and export XMA2's masks for ``xsim run``.

Outputs in ``out_dir``: the exported files of :mod:`xsim.learn.export` (``arch.yaml``,
``backbone.npz``, ``tasks/``, ``workload.json``), ``frontier.csv`` (one row per task, strategy and
budget, plus ``mean`` rows), ``frontier.png`` and ``summary.json`` (what :func:`run_learn`
returns).  Runs that are the same training problem share one result: a 0 % budget of XMA2 or
random tier 1 is tier 2 only, a 0 % budget of tier 1 only is the head only, and a 100 % budget of
any tier-1 strategy rewrites every PE, which is full fine-tuning.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numba
import torch

from xsim import streams
from xsim.config import ConfigError, load_arch, load_workload
from xsim.deployment import Deployment
from xsim.learn import data as learn_data
from xsim.learn.evaluate import cells_written, crossbar_accuracy
from xsim.learn.export import export_workload, write_text
from xsim.learn.frontier import COLUMNS, mean_rows, plot_frontier, target_verdict
from xsim.learn.method import (
    PeStructure,
    StrategyConfig,
    TaskModel,
    export_result,
    float_accuracy,
    strategy_config,
    train_backbone,
    train_task,
)
from xsim.learn.spec import BUDGETED, LearnSpec, load_learn_spec
from xsim.models import network_from_spec
from xsim.strategies import strategy as strategy_of

# Caps of the quick mode (a smoke run of a full spec in well under a minute).
QUICK_BACKBONE_EPOCHS = 5
QUICK_TASK_EPOCHS = 3
QUICK_TASKS = 2
QUICK_TEST_IMAGES = 100


def quick_spec(spec: LearnSpec) -> LearnSpec:
    """``spec`` cut down: few epochs, the first two tasks, budgets 0 and the export budget."""
    return spec.model_copy(update={
        "backbone_training": spec.backbone_training.model_copy(
            update={"epochs": min(spec.backbone_training.epochs, QUICK_BACKBONE_EPOCHS)}),
        "task_training": spec.task_training.model_copy(
            update={"epochs": min(spec.task_training.epochs, QUICK_TASK_EPOCHS)}),
        "data": spec.data.model_copy(update={"tasks": spec.data.tasks[:QUICK_TASKS]}),
        "budgets": tuple(sorted({0.0, spec.export.pe_budget})),
        "evaluation": spec.evaluation.model_copy(update={
            "test_images": min(spec.evaluation.test_images or QUICK_TEST_IMAGES, QUICK_TEST_IMAGES)}),
    })


def _canonical(config: StrategyConfig, structure: PeStructure) -> StrategyConfig:
    """One config per distinct training problem (see the module docstring)."""
    if config.tier1 != "none" and config.k == structure.count:
        return strategy_config("full_finetune", structure, 1.0, 0)
    return config


def _seed(spec: LearnSpec, task_index: int) -> int:
    """One training seed per task, shared by every strategy and budget (common random numbers:
    the same batches in the same order, so strategies differ by what they train, not by luck)."""
    return int(streams.seed_sequence(spec.seed, "learn.task", task_index).generate_state(1)[0]
               & 0x7FFFFFFF)


def _progress(enabled: bool | None, total: int):
    from tqdm import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc="xsim learn", unit="run", disable=not enabled, leave=False)


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def _network(spec: LearnSpec):
    try:
        return network_from_spec(spec.model.name, spec.model.input_shape,
                                 [dict(layer) for layer in spec.model.layers])
    except ValueError as exc:
        raise ConfigError(spec.source, "model.layers", str(exc)) from None


def run_learn(arch_path: str | os.PathLike[str], learn_path: str | os.PathLike[str],
              out_dir: str | os.PathLike[str], *, progress: bool | None = None,
              quick: bool = False) -> dict[str, Any]:
    """Learn and export (see the module docstring); returns the summary written to summary.json.

    ``progress``: a tqdm bar over the training runs (``None``: only when stderr is a terminal).
    ``quick``: :func:`quick_spec`.  Bad input files raise ConfigError / MappingError.  Torch (with
    deterministic algorithms) and the numba kernels run single-threaded while this runs (restored
    afterwards); the learned files are the same for the same inputs and seed.
    """
    spec = load_learn_spec(learn_path)
    if quick:
        spec = quick_spec(spec)
    with single_threaded():
        return _run(arch_path, spec, Path(out_dir), progress, quick)


@contextmanager
def single_threaded():
    """Torch (deterministic algorithms) and the numba kernels on one thread, restored after.

    One thread each: these matrices are small, and on a two-core machine a second thread costs
    more in synchronisation than it computes.  The crossbar kernels' OpenMP workers, once
    started, spin between parallel regions and would take half the CPU from training."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    kernel_threads = numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        numba.set_num_threads(kernel_threads)
        torch.use_deterministic_algorithms(deterministic)


def _run(arch_path, spec: LearnSpec, out: Path, progress: bool | None, quick: bool) -> dict[str, Any]:
    arch = load_arch(arch_path, spec.arch_overrides)
    network = _network(spec)
    dep = Deployment.of(arch, network, weight_bits=spec.precision.get("weight_bits"),
                        input_bits=spec.precision.get("input_bits"), source=spec.source)
    mapping = dep.mapping
    structure = PeStructure(dep)
    if structure.count == 0:
        raise ConfigError(spec.source, "model.layers", "the network needs a weight layer before its "
                          "head: the head has no tier-1 PEs")
    source, tasks = learn_data.build_tasks(spec.data)
    head_outputs = mapping.layer(dep.head_layer).N
    if source.classes > head_outputs:
        raise ConfigError(spec.source, "model.layers", f"the head has {head_outputs} outputs but "
                          f"the data has {source.classes} classes")
    n_test = spec.evaluation.test_images or len(source.y_test)
    n_cal = spec.evaluation.calibration_images
    bt = spec.backbone_training
    tt = spec.task_training
    fmt, bits = spec.tier2.format, spec.tier2.bits
    weight_bits = mapping.weight_bits

    def new_model(backbone, config):
        return TaskModel(backbone, structure, config, tier2_format=fmt, tier2_bits=bits,
                         weight_bits=weight_bits, write_penalty=tt.write_penalty)

    plan: list[tuple[int, str, float, StrategyConfig]] = []
    for ti in range(len(tasks)):
        for strategy in spec.strategies:
            budgets = spec.budgets if strategy in BUDGETED else (
                1.0 if strategy_of(strategy).rewrites_all else 0.0,)
            for budget in budgets:
                config = _canonical(strategy_config(strategy, structure, budget, spec.seed), structure)
                plan.append((ti, strategy, budget, config))
    unique = list(dict.fromkeys((ti, config) for ti, _, _, config in plan))

    bar = _progress(progress, len(unique) + 1)
    try:
        bar.set_postfix_str("backbone")
        backbone = train_backbone(network, source.x_train, source.y_train, epochs=bt.epochs,
                                  batch=bt.batch, lr=bt.lr, weight_bits=weight_bits, seed=spec.seed)
        bar.update()
        frozen = new_model(backbone, StrategyConfig())
        base_result = export_result(frozen, backbone)
        backbone_row = {
            "task": source.name,
            "float_accuracy": float_accuracy(frozen, source.x_test[:n_test], source.y_test[:n_test]),
            "crossbar_accuracy": crossbar_accuracy(dep, backbone, base_result,
                                                   source.x_train[:n_cal], source.x_test[:n_test],
                                                   source.y_test[:n_test]),
        }
        task_rows = []
        results: dict[tuple[int, StrategyConfig], dict] = {}
        for ti, config in unique:
            task = tasks[ti]
            bar.set_postfix_str(f"{task.name} k={config.k}")
            model = new_model(backbone, config)
            if ti not in {key[0] for key in results}:
                # The frozen backbone with the backbone's own head: what adaptation improves on.
                task_rows.append({
                    "task": task.name,
                    "backbone_float_accuracy": float_accuracy(model, task.x_test[:n_test],
                                                              task.y_test[:n_test])})
            train_task(model, task.x_train, task.y_train, epochs=tt.epochs, batch=tt.batch, lr=tt.lr,
                       weight_lr=tt.weight_lr, scale_lr=tt.scale_lr,
                       freeze_fraction=tt.freeze_fraction,
                       seed=_seed(spec, ti))
            result = export_result(model, backbone)
            results[(ti, config)] = {
                "result": result,
                "tier1_pes": len(result.tier1),
                "float_accuracy": float_accuracy(model, task.x_test[:n_test], task.y_test[:n_test]),
                "crossbar_accuracy": crossbar_accuracy(dep, backbone, result,
                                                       task.x_train[:n_cal], task.x_test[:n_test],
                                                       task.y_test[:n_test]),
                "cells_written": cells_written(dep, backbone, result),
            }
            bar.update()
    finally:
        bar.close()

    rows = []
    for ti, strategy, budget, config in plan:
        r = results[(ti, config)]
        rows.append({"task": tasks[ti].name, "strategy": strategy, "pe_budget": budget,
                     "tier1_pes": r["tier1_pes"], "float_accuracy": r["float_accuracy"],
                     "crossbar_accuracy": r["crossbar_accuracy"], "cells_written": r["cells_written"]})
    means = mean_rows(rows)
    verdict = target_verdict(means, spec.export.pe_budget)

    export_config = {ti: _canonical(strategy_config("xma2", structure, spec.export.pe_budget,
                                                    spec.seed), structure)
                     for ti in range(len(tasks))}
    exported = {tasks[ti].name: results[(ti, config)]["result"] for ti, config in export_config.items()}
    classes = {source.name: source.classes, **{t.name: t.classes for t in tasks}}
    workload_path = export_workload(out, arch_path, spec, backbone, exported, classes, structure.head)
    load_workload(workload_path)  # what xsim run will read: fail here, not there

    write_text(out / "frontier.csv", _csv(rows + means))
    plot_frontier(rows + means, out / "frontier.png")
    summary = {
        "name": spec.name,
        "learn_spec": str(spec.source),
        "arch": str(arch_path),
        "arch_overrides": dict(spec.arch_overrides),
        "dataset": spec.data.dataset,
        "network": network.name,
        "mapping": mapping.totals(),
        "tier1_candidates": structure.count,
        "train_images": len(source.y_train),
        "test_images": min(n_test, len(source.y_test)),
        "backbone": backbone_row,
        "tasks": task_rows,
        "frontier": rows,
        "mean": means,
        "target": verdict,
        "export": {"pe_budget": spec.export.pe_budget, "workload": str(workload_path),
                   "arch": str(out / "arch.yaml")},
        "quick": quick,
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
