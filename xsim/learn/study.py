"""``xsim study``: XMA2 against its baselines on real data, with seeds, a validation search and
costs from the simulator.

Protocol (what :func:`run_study` does, per seed of ``spec.seeds``):

1. **Backbone.**  The CNN is trained on MNIST's training split (:mod:`xsim.learn.glyphs`) with a
   batch norm after every body conv layer (Adam, cross entropy); the batch norms are folded into
   the conv weights and biases (``w·γ/σ``, ``β − μγ/σ``), and the folded weights are quantised
   per output channel as the crossbars hold them (:class:`xsim.learn.method.Backbone`).
2. **Strategies**, each a :class:`xsim.learn.method.TaskModel` on the simulator's PE grid:
   ``xma2`` (learned top-k PEs + pow2 column scales), ``xma2_wear`` (the same, its top-k taken
   over ``score − wear_weight · n_p``, ``n_p`` the earlier tasks of the schedule whose wear-aware
   masks hold PE ``p``: a PE another task already rewrites costs score, so the masks spread over
   the chip), ``tier1_only``, ``tier2_only`` (scales on every PE), ``random_tier1`` (seeded random
   PEs + scales), ``grad_tier1`` (the top-k PEs by the first-order gradient score XMA2's scores
   start from, never learned, + scales), ``full_finetune`` (every PE), ``head_only`` (head and
   normalisation), ``last_layers`` (every PE of the last ``last_layers`` body layers) and
   ``elementwise`` (Piggyback: a real score per weight, thresholded, Adam at ``mask_lr``).  Every
   strategy has the task's own head and per-channel normalisation.
3. **Search.**  On the first seed, every (task, strategy) is trained once per learning-rate scale
   of ``search.lr_scales`` (all of the strategy's base rates times the scale: the same grid for
   every strategy); the epoch is the best validation checkpoint of the final (frozen-mask) phase.
   The setting with the best validation accuracy is the strategy's for that task, on every seed
   and budget; the first seed's run at that setting is its result there.  Test images are read
   only to report.
4. **Costs.**  Every (strategy, budget) is exported as a scenario (:func:`write_scenario`) with
   the backbone and the three tasks on a round-robin schedule and simulated by
   :func:`xsim.simulate` (no functional inference): mean switch energy and latency over the
   schedule's switches, cells written, the most-written cell's writes and the lifetime in
   switches (``endurance × switches / max writes``).
5. **Crossbar check.**  The backbone and XMA2 at the main budget through
   :class:`xsim.functional.CrossbarNetwork` at every ADC resolution of ``crossbar.adc_bits``.

Tables give the mean over seeds ± the half-width of the 95 % t interval; XMA2-vs-baseline rows are
paired by seed (the same backbone, data and batches).
"""

from __future__ import annotations

import copy
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xsim import streams
from xsim.config import ConfigError, load_arch
from xsim.deployment import Deployment
from xsim.learn import glyphs
from xsim.learn.evaluate import crossbar_accuracy
from xsim.learn.export import Scenario, write_scenario, write_text
from xsim.learn.method import (
    DTYPE,
    Backbone,
    PeStructure,
    StrategyConfig,
    TaskModel,
    TaskResult,
    _batches,
    apply_matrix,
    export_result,
    fit_graph,
    init_scores,
)
from xsim.learn.run import single_threaded
from xsim.learn.study_spec import BUDGETED, STUDY_STRATEGIES, StudySpec, load_study_spec
from xsim.models import network_from_spec
from xsim.models.graph import Layer, Network

BN_EPS = 1e-5
STRATEGY_IDS = {s: i for i, s in enumerate(STUDY_STRATEGIES)}
TASK_IDS = glyphs.DATASET_IDS


# -- data ----------------------------------------------------------------------------------------


def load_data(spec: StudySpec) -> tuple[glyphs.Split, list[glyphs.Split]]:
    """The source split and the adaptation tasks' splits (fixed across training seeds)."""
    d = spec.data
    source = glyphs.mnist(d.image_size, d.seed)
    tasks = []
    for name in d.tasks:
        if name == "digits":
            tasks.append(glyphs.digits(d.image_size, d.seed))
        else:
            tasks.append(glyphs.glyphs(name, d.image_size, d.seed, d.glyph_copies.model_dump()))
    return source, tasks


# -- backbone with batch norm, folded ------------------------------------------------------------


def fold_batch_norm(matrix: np.ndarray, bn: torch.nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """A (K, N) conv matrix followed by ``bn`` (inference statistics) as one matrix and bias:
    ``W·γ/σ`` and ``β − μ·γ/σ``, ``σ = sqrt(running_var + eps)``."""
    with torch.no_grad():
        factor = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).numpy()
        return matrix * factor[None, :], bn.bias.numpy() - bn.running_mean.numpy() * factor


def train_backbone_bn(network: Network, head: str, x: np.ndarray, y: np.ndarray, *, epochs: int,
                      batch: int, lr: float, weight_bits: int, seed: int) -> Backbone:
    """Train with a batch norm after every body conv layer, fold it, quantise (step 1)."""
    from xsim.functional.quantise import quantise_weights

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    weights, biases, norms = {}, {}, {}
    for layer in network.weight_layers:
        k, n = layer.matrix_shape
        gain = 2.0 if layer.activation in ("relu", "relu6") else 1.0
        weights[layer.name] = torch.nn.Parameter(torch.randn(k, n, dtype=DTYPE) * math.sqrt(gain / k))
        biases[layer.name] = torch.nn.Parameter(torch.zeros(n, dtype=DTYPE))
        if layer.kind == "conv" and layer.name != head:
            norms[layer.name] = torch.nn.BatchNorm2d(n, eps=BN_EPS, dtype=DTYPE)
    params = [*weights.values(), *biases.values()]
    for bn in norms.values():
        params += list(bn.parameters())

    def weight_layer(layer: Layer, src: torch.Tensor) -> torch.Tensor:
        out = apply_matrix(layer, src, weights[layer.name])
        if layer.name in norms:
            return norms[layer.name](out)
        return out + biases[layer.name][None, :, None, None]

    for bn in norms.values():
        bn.train()
    fit_graph(network, weight_layer, params, x, y, epochs=epochs, batch=batch, lr=lr,
              generator=generator)
    codes, scales, out_biases = {}, {}, {}
    with torch.no_grad():
        for layer in network.weight_layers:
            w = weights[layer.name].numpy().copy()
            b = biases[layer.name].numpy().copy()
            if layer.name in norms:
                w, b = fold_batch_norm(w, norms[layer.name])
            q, s = quantise_weights(w.T, weight_bits)
            codes[layer.name] = np.ascontiguousarray(q.T)
            scales[layer.name] = s
            out_biases[layer.name] = b if layer.bias else None
    return Backbone(network, codes, scales, out_biases)


# -- strategies ----------------------------------------------------------------------------------


class WearAwareModel(TaskModel):
    """XMA2 whose top-k is taken over ``score − wear_weight · wear``: ``wear[p]`` counts the
    earlier tasks that rewrite PE ``p`` (the straight-through gradient still reaches the score)."""

    def __init__(self, *args, wear: np.ndarray, wear_weight: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("wear", torch.as_tensor(wear, dtype=DTYPE) * wear_weight)

    def hard_mask(self) -> torch.Tensor:
        if self.frozen:
            return self.fixed_mask
        hard = torch.zeros_like(self.scores)
        hard[torch.topk(self.scores.detach() - self.wear, self.config.k).indices] = 1.0
        return hard


def importance_pes(model: TaskModel, x: np.ndarray, y: np.ndarray, batch: int, seed: int,
                   k: int) -> tuple[int, ...]:
    """The ``k`` PEs of highest first-order score (XMA2's initial scores), ties by position."""
    generator = torch.Generator().manual_seed(seed)
    init_scores(model, torch.as_tensor(x, dtype=DTYPE), torch.as_tensor(y), batch, generator)
    order = np.argsort(-model.scores.detach().numpy(), kind="stable")
    return tuple(int(p) for p in np.sort(order[:k]))


def last_layer_pes(structure: PeStructure, count: int) -> tuple[int, ...]:
    """Candidate positions of the last ``count`` body layers (in network order)."""
    body = [n for n in structure.layers if n != structure.head]
    chosen = set()
    for name in body[-count:]:
        chosen.update(int(p) for p in np.unique(structure.layers[name].position))
    return tuple(sorted(chosen))


def strategy_setup(strategy: str, structure: PeStructure, k: int, spec: StudySpec, seed: int,
                   task_index: int) -> StrategyConfig:
    """The :class:`StrategyConfig` of a strategy with ``k`` tier-1 PEs (grad_tier1's PEs are
    filled in later, from the backbone's gradient)."""
    if strategy in ("xma2", "xma2_wear"):
        return StrategyConfig(tier1="learned", tier2=True, k=k)
    if strategy == "tier1_only":
        return StrategyConfig(tier1="learned", k=k)
    if strategy == "tier2_only":
        return StrategyConfig(tier2=True)
    if strategy == "random_tier1":
        rng = streams.rng(seed, "study.random_tier1", task_index, k)
        chosen = np.sort(rng.choice(structure.count, size=k, replace=False))
        return StrategyConfig(tier1="fixed", tier2=True, k=k, fixed_pes=tuple(int(p) for p in chosen))
    if strategy == "grad_tier1":
        return StrategyConfig(tier1="fixed", tier2=True, k=k)
    if strategy == "full_finetune":
        return StrategyConfig(tier1="fixed", k=structure.count,
                              fixed_pes=tuple(range(structure.count)))
    if strategy == "head_only":
        return StrategyConfig()
    if strategy == "last_layers":
        pes = last_layer_pes(structure, spec.last_layers)
        return StrategyConfig(tier1="fixed", k=len(pes), fixed_pes=pes)
    if strategy == "elementwise":
        return StrategyConfig(elementwise=True)
    raise ValueError(f"unknown study strategy {strategy!r}")


def accuracy(model: TaskModel, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        logits = model(torch.as_tensor(x, dtype=DTYPE))
    return float((logits.argmax(1).numpy() == y).mean())


def fit(model: TaskModel, task: glyphs.Split, spec: StudySpec, scale: float, seed: int
        ) -> tuple[TaskModel, float, int]:
    """Train ``model`` on the task's training split at ``scale`` × the base learning rates; the
    returned copy is the final-phase checkpoint best on validation: (model, accuracy, epoch)."""
    tt = spec.task_training
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(task.x["train"], dtype=DTYPE)
    yt = torch.as_tensor(task.y["train"])
    if model.config.tier1 == "learned":
        init_scores(model, xt, yt, tt.batch, generator)
    weight_lr = (tt.mask_lr if model.config.elementwise else tt.weight_lr) * scale
    opt = torch.optim.Adam(model.parameter_groups(tt.lr * scale, weight_lr, tt.scale_lr * scale),
                           foreach=True)
    freeze_at = int(round(tt.epochs * (1.0 - tt.freeze_fraction)))
    freeze_at = min(freeze_at, tt.epochs - 1)
    best = (-1.0, None, 0)
    for epoch in range(tt.epochs):
        if epoch == freeze_at:
            model.freeze_mask()
        for idx in _batches(len(xt), tt.batch, generator):
            loss = F.cross_entropy(model(xt[idx]), yt[idx]) + model.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.project()
        if epoch >= freeze_at:
            val = accuracy(model, task.x["validation"], task.y["validation"])
            if val > best[0]:
                best = (val, copy.deepcopy(model), epoch + 1)
    return best[1], best[0], best[2]


def _train_seed(strategy: str, spec: StudySpec, seed: int, task_index: int, grid: int) -> int:
    key = (STRATEGY_IDS[strategy], grid)
    return int(streams.seed_sequence(seed, "study.train", task_index, *key).generate_state(1)[0]
               & 0x7FFFFFFF)


# -- statistics ----------------------------------------------------------------------------------


def interval(values) -> tuple[float, float]:
    """(mean, half-width of the two-sided 95 % t interval) of ``values`` (≥ 2 of them)."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        raise ValueError("an interval needs two or more values")
    half = float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return float(v.mean()), half


def shown(mean: float, half: float, scale: float = 1.0, digits: int = 1) -> str:
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}"


# -- the study -----------------------------------------------------------------------------------


def quick_spec(spec: StudySpec) -> StudySpec:
    """A reduced study (the tests' smoke run): two seeds, two tasks, few epochs, one budget,
    one glyph per font and class, a two-point search (the same for every strategy), two ADC
    resolutions, few crossbar images."""
    return spec.model_copy(update={
        "seeds": spec.seeds[:2],
        "data": spec.data.model_copy(update={
            "tasks": spec.data.tasks[:2],
            "glyph_copies": glyphs_copies_one(spec)}),
        "backbone_training": spec.backbone_training.model_copy(update={"epochs": 1}),
        "task_training": spec.task_training.model_copy(update={"epochs": 2}),
        "budgets": (spec.main_budget,),
        "search": spec.search.model_copy(update={"lr_scales": spec.search.lr_scales[-2:]}),
        "crossbar": spec.crossbar.model_copy(update={"adc_bits": (8, 4), "images": 20,
                                                     "calibration_images": 16}),
        "periods": 1,
    })


def glyphs_copies_one(spec: StudySpec):
    return spec.data.glyph_copies.model_copy(update={"train": 1, "validation": 1, "test": 1})


def run_study(arch_path: str | os.PathLike[str], spec_path: str | os.PathLike[str],
              out_dir: str | os.PathLike[str], exports_dir: str | os.PathLike[str], *,
              quick: bool = False, command: str | None = None,
              progress=None) -> dict[str, Any]:
    """Run the study (see the module docstring); writes tables and plots under ``out_dir``, the
    exported scenarios under ``exports_dir``; returns the summary written to ``study.json``.
    ``progress(message)`` is called between runs when given.  Torch and the kernels run on one
    thread, deterministically (restored afterwards)."""
    spec = load_study_spec(spec_path)
    if quick:
        spec = quick_spec(spec)
    with single_threaded():
        return _run(arch_path, spec, Path(out_dir), Path(exports_dir), quick,
                    command, progress or (lambda _m: None))


def _network(spec: StudySpec, size: int) -> Network:
    try:
        return network_from_spec(spec.model.name, (1, size, size),
                                 [dict(layer) for layer in spec.model.layers])
    except ValueError as exc:
        raise ConfigError(spec.source, "model.layers", str(exc)) from None


def _run(arch_path, spec: StudySpec, out: Path, exports: Path, quick: bool, command, progress):
    started = time.perf_counter()
    from xsim.learn import study_report

    size = spec.data.image_size
    network = _network(spec, size)
    arch = load_arch(arch_path, spec.arch_overrides)
    dep = Deployment.of(arch, network, weight_bits=spec.precision.get("weight_bits"),
                        input_bits=spec.precision.get("input_bits"), source=spec.source)
    structure = PeStructure(dep)
    head = dep.head_layer
    weight_bits = dep.mapping.weight_bits
    source, tasks = load_data(spec)
    classes = {source.name: source.classes, **{t.name: t.classes for t in tasks}}
    head_outputs = dep.mapping.layer(head).N
    if max(classes.values()) > head_outputs:
        raise ConfigError(spec.source, "model.layers", f"the head has {head_outputs} outputs but "
                          f"a task has {max(classes.values())} classes")
    k_of = {b: structure.budget_pes(b) for b in spec.budgets}
    if min(k_of.values()) == 0:
        raise ConfigError(spec.source, "budgets", f"a budget rounds to 0 of {structure.count} PEs")

    def new_model(config: StrategyConfig, strategy: str, wear: np.ndarray) -> TaskModel:
        kwargs = dict(tier2_format=spec.tier2_format, tier2_bits=spec.tier2_bits,
                      weight_bits=weight_bits)
        if strategy == "xma2_wear":
            return WearAwareModel(backbone, structure, config, wear=wear,
                                  wear_weight=spec.wear_weight, **kwargs)
        return TaskModel(backbone, structure, config, **kwargs)

    runs: list[dict] = []            # one row per final (seed, task, strategy, budget)
    search_rows: list[dict] = []     # every grid point of the first seed
    chosen_scale: dict[tuple[str, str], float] = {}
    results: dict[tuple, TaskResult] = {}
    backbone_rows: list[dict] = []
    crossbar_rows: list[dict] = []
    cost_rows: list[dict] = []
    bt = spec.backbone_training
    scales = spec.search.lr_scales
    for si, seed in enumerate(spec.seeds):
        progress(f"seed {seed}: backbone")
        backbone = train_backbone_bn(network, head, source.x["train"], source.y["train"],
                                     epochs=bt.epochs, batch=bt.batch, lr=bt.lr,
                                     weight_bits=weight_bits, seed=seed)
        frozen = new_model(StrategyConfig(), "head_only", np.zeros(structure.count))
        backbone_rows.append({"seed": seed, "task": source.name,
                              "float_accuracy": accuracy(frozen, source.x["test"], source.y["test"])})
        wear = np.zeros(structure.count)
        for task in tasks:
            tid = TASK_IDS[task.name]
            for strategy in STUDY_STRATEGIES:
                budgets = spec.budgets if strategy in ("xma2", "tier1_only") else (
                    (spec.main_budget,) if strategy in BUDGETED else (None,))
                # The main budget first: its search fixes the setting of the other budgets.
                budgets = sorted(budgets, key=lambda b: b != spec.main_budget)
                for budget in budgets:
                    k = k_of[budget] if budget is not None else 0
                    config = strategy_setup(strategy, structure, k, spec, seed, tid)
                    searching = si == 0 and budget in (None, spec.main_budget)
                    grid = range(len(scales)) if searching else (
                        scales.index(chosen_scale[(task.name, strategy)]),)
                    best = None
                    for gi in grid:
                        progress(f"seed {seed} {task.name} {strategy} budget={budget} "
                                 f"lr×{scales[gi]:.3g}")
                        train_seed = _train_seed(strategy, spec, seed, tid, gi)
                        cfg = config
                        if strategy == "grad_tier1":
                            probe = new_model(StrategyConfig(tier1="learned", tier2=True, k=k),
                                              "xma2", wear)
                            pes = importance_pes(probe, task.x["train"], task.y["train"],
                                                 spec.task_training.batch, train_seed, k)
                            cfg = StrategyConfig(tier1="fixed", tier2=True, k=k, fixed_pes=pes)
                        model, val, epoch = fit(new_model(cfg, strategy, wear), task, spec,
                                                scales[gi], train_seed)
                        if searching:
                            search_rows.append({"task": task.name, "strategy": strategy,
                                                "lr_scale": scales[gi], "epochs": epoch,
                                                "validation_accuracy": val})
                        if best is None or val > best[1]:
                            best = (model, val, epoch, scales[gi])
                    model, val, epoch, scale = best
                    if searching:
                        chosen_scale[(task.name, strategy)] = scale
                    result = export_result(model, backbone)
                    results[(seed, task.name, strategy, budget)] = result
                    runs.append({
                        "seed": seed, "task": task.name, "strategy": strategy,
                        "pe_budget": budget, "tier1_pes": len(result.tier1),
                        "lr_scale": scale, "epochs": epoch, "validation_accuracy": val,
                        "test_accuracy": accuracy(model, task.x["test"], task.y["test"]),
                    })
                    if strategy == "xma2_wear":
                        position = np.searchsorted(structure.candidates, result.tier1)
                        wear[position] += 1.0
        progress(f"seed {seed}: crossbar check")
        crossbar_rows += _crossbar_check(arch_path, spec, network, backbone, source, tasks,
                                         results, seed, structure)
        progress(f"seed {seed}: simulating the exported scenarios")
        cost_rows += _costs(arch_path, spec, backbone, tasks, results, seed, classes, head,
                            exports, dep.mapping.tier2_columns, source.name)

    meta = {
        "name": spec.name,
        "study_spec": str(spec.source),
        "arch": str(arch_path),
        "arch_overrides": dict(spec.arch_overrides),
        "command": command,
        "quick": quick,
        "seeds": list(spec.seeds),
        "network": network.name,
        "mapping": dep.mapping.totals(),
        "tier1_candidates": structure.count,
        "budget_pes": {str(b): k for b, k in k_of.items()},
        "last_layers_pes": len(last_layer_pes(structure, spec.last_layers)),
        "data": {s.name: {"classes": s.classes, **s.sizes()} for s in (source, *tasks)},
        "search": {"lr_scales": list(scales), "base": spec.task_training.model_dump(),
                   "chosen": [{"task": t, "strategy": s, "lr_scale": v}
                              for (t, s), v in chosen_scale.items()]},
        "wall_seconds": None,
    }
    summary = study_report.write_report(out, spec, meta, runs, search_rows, backbone_rows,
                                        crossbar_rows, cost_rows)
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_text(out / "study.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _crossbar_check(arch_path, spec, network, backbone, source, tasks, results, seed, structure):
    """Backbone and XMA2 (main budget) accuracy through the crossbar model per ADC resolution."""
    rows = []
    cx = spec.crossbar
    base = results_backbone(structure, backbone)
    for bits in cx.adc_bits:
        arch = load_arch(arch_path, {**spec.arch_overrides, "components.adc.bits": bits})
        dep = Deployment.of(arch, network, weight_bits=spec.precision.get("weight_bits"),
                            input_bits=spec.precision.get("input_bits"), source=spec.source)
        cases = [(source, "backbone", base)] + [
            (t, "xma2", results[(seed, t.name, "xma2", spec.main_budget)]) for t in tasks]
        for split, strategy, result in cases:
            acc = crossbar_accuracy(dep, backbone, result, split.x["train"][:cx.calibration_images],
                                    split.x["test"][:cx.images], split.y["test"][:cx.images])
            rows.append({"seed": seed, "adc_bits": bits, "task": split.name, "strategy": strategy,
                         "crossbar_accuracy": acc, "images": min(cx.images, len(split.y["test"]))})
    return rows


def results_backbone(structure: PeStructure, backbone: Backbone) -> TaskResult:
    """The backbone as a task result: no tier 1, no scales, its own head."""
    body = [n for n in backbone.codes if n != structure.head]
    return TaskResult(
        tier1=(), tier2=None, codes={n: backbone.codes[n].astype(np.int64) for n in body},
        gains={n: np.ones(backbone.codes[n].shape[1]) for n in body},
        biases=dict(backbone.biases),
        head=(backbone.float_weights()[structure.head][0], backbone.biases[structure.head]))


def _costs(arch_path, spec, backbone, tasks, results, seed, classes, head, exports, tier2_columns,
           source_name):
    """Export every (strategy, budget) of this seed as a scenario and simulate its schedule."""
    rows = []
    keys = sorted({(s, b) for (sd, _, s, b) in results if sd == seed},
                  key=lambda sb: (STRATEGY_IDS[sb[0]], -1.0 if sb[1] is None else sb[1]))
    for strategy, budget in keys:
        label = strategy if budget is None else f"{strategy}_{budget:g}"
        task_results = {t.name: results[(seed, t.name, strategy, budget)] for t in tasks}
        rows.append({"seed": seed, "strategy": strategy, "pe_budget": budget,
                     **simulate_scenario(arch_path, spec, backbone, task_results, seed, classes,
                                         head, exports / f"seed{seed}" / label, tier2_columns,
                                         source_name, label, budget)})
    return rows


def simulate_scenario(arch_path, spec, backbone, task_results, seed, classes, head, out: Path,
                      tier2_columns, source_name, label, budget) -> dict:
    """Export one scenario under ``out`` and cost its round-robin schedule with xsim.simulate."""
    import xsim

    scenario = Scenario(
        name=f"{spec.name}_{label}_seed{seed}",
        description=f"{label} learned by xsim study (seed {seed})",
        seed=seed, model={"name": spec.model.name,
                          "input_shape": [1, spec.data.image_size, spec.data.image_size],
                          "layers": [dict(layer) for layer in spec.model.layers]},
        precision=dict(spec.precision), backbone_task=source_name,
        pe_budget=budget if budget is not None else 0.0, tier2_format=spec.tier2_format,
        tier2_bits=spec.tier2_bits, periods=spec.periods, strategies=("xma2",))
    path = write_scenario(out, arch_path, spec.arch_overrides, scenario, backbone,
                          task_results, classes, head, tier2_columns=tier2_columns)
    # This process has run torch's threads: its engine runs stay in it rather than fork.
    sim = xsim.simulate(str(out / "arch.yaml"), str(path), workers=1)
    mta = sim.mta
    into = [r for r in sim.tables["strategies"] if r["switches_into"]]
    n = sum(r["switches_into"] for r in into)
    max_writes = mta.endurance["xma2"].max_writes
    switches = mta.switch_count
    endurance = sim.deployment.arch.cell.endurance_cycles
    return {
        "switch_energy_uj": sum(r["switch_energy_uj"] * r["switches_into"] for r in into) / n,
        "switch_latency_us": sum(r["switch_latency_us"] * r["switches_into"] for r in into) / n,
        "cells_written": sum(r["cells_written"] * r["switches_into"] for r in into) / n,
        "switches": switches,
        "max_cell_writes": max_writes,
        "lifetime_switches": (endurance * switches / max_writes) if max_writes else None,
        "workload": str(path),
    }


def run_wear_sweep(arch_path: str | os.PathLike[str], spec_path: str | os.PathLike[str],
                   study_json: str | os.PathLike[str], weights: tuple[float, ...],
                   out_dir: str | os.PathLike[str], exports_dir: str | os.PathLike[str], *,
                   command: str | None = None, progress=None) -> dict[str, Any]:
    """Wear-aware XMA2 at the main budget for every ``wear_weight`` of ``weights`` (0 is plain
    XMA2's selection), every seed and task, at the learning-rate scale the study's search chose
    for ``xma2_wear`` on each task (read from ``study_json``: no new search), with the same
    training seeds, so the spec's own weight reproduces the study's ``xma2_wear`` runs.  Writes
    ``wear_sweep.csv`` / ``.md`` / ``.png`` under ``out_dir``; returns the summary."""
    spec = load_study_spec(spec_path)
    chosen = {row["task"]: row["lr_scale"] for row in
              json.loads(Path(study_json).read_text(encoding="utf-8"))["search"]["chosen"]
              if row["strategy"] == "xma2_wear"}
    with single_threaded():
        return _wear_sweep(arch_path, spec, chosen, tuple(weights), Path(out_dir),
                           Path(exports_dir), command, progress or (lambda _m: None))


def _wear_sweep(arch_path, spec, chosen, weights, out, exports, command, progress):
    from xsim.learn import study_report

    started = time.perf_counter()
    size = spec.data.image_size
    network = _network(spec, size)
    dep = Deployment.of(load_arch(arch_path, spec.arch_overrides), network,
                        weight_bits=spec.precision.get("weight_bits"),
                        input_bits=spec.precision.get("input_bits"), source=spec.source)
    structure = PeStructure(dep)
    weight_bits = dep.mapping.weight_bits
    source, tasks = load_data(spec)
    classes = {source.name: source.classes, **{t.name: t.classes for t in tasks}}
    k = structure.budget_pes(spec.main_budget)
    scales = spec.search.lr_scales
    bt = spec.backbone_training
    rows = []
    for seed in spec.seeds:
        progress(f"seed {seed}: backbone")
        backbone = train_backbone_bn(network, dep.head_layer, source.x["train"], source.y["train"],
                                     epochs=bt.epochs, batch=bt.batch, lr=bt.lr,
                                     weight_bits=weight_bits, seed=seed)
        for weight in weights:
            wear = np.zeros(structure.count)
            results, accuracies = {}, []
            for task in tasks:
                progress(f"seed {seed} wear_weight={weight:g} {task.name}")
                tid = TASK_IDS[task.name]
                scale = chosen[task.name]
                model = WearAwareModel(backbone, structure, StrategyConfig(tier1="learned",
                                       tier2=True, k=k), tier2_format=spec.tier2_format,
                                       tier2_bits=spec.tier2_bits, weight_bits=weight_bits,
                                       wear=wear.copy(), wear_weight=weight)
                model, _, _ = fit(model, task, spec, scale,
                                  _train_seed("xma2_wear", spec, seed, tid, scales.index(scale)))
                result = export_result(model, backbone)
                results[task.name] = result
                accuracies.append(accuracy(model, task.x["test"], task.y["test"]))
                wear[np.searchsorted(structure.candidates, result.tier1)] += 1.0
            label = f"wear_{weight:g}"
            cost = simulate_scenario(arch_path, spec, backbone, results, seed, classes,
                                     dep.head_layer, exports / f"seed{seed}" / label,
                                     dep.mapping.tier2_columns, source.name, label,
                                     spec.main_budget)
            masks = [set(r.tier1) for r in results.values()]
            shared = len(set.union(*[a & b for i, a in enumerate(masks) for b in masks[i + 1:]]))
            rows.append({"seed": seed, "wear_weight": weight, "test_accuracy": float(
                np.mean(accuracies)), "pes_in_two_or_more_masks": shared,
                **{key: cost[key] for key in ("switch_energy_uj", "cells_written",
                                              "max_cell_writes", "lifetime_switches")}})
    summary = study_report.write_wear_sweep(out, rows, spec.main_budget, k)
    summary.update({"command": command, "study_json": "read for the chosen learning-rate scales",
                    "chosen_lr_scale": chosen, "wall_seconds": round(time.perf_counter() - started, 1)})
    write_text(out / "wear_sweep.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def command_line() -> str:
    """The command that started this process, quoted (recorded in the study's outputs)."""
    return " ".join(shlex.quote(a) for a in sys.argv)
