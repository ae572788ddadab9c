"""Export of learned tasks as files ``xsim run`` consumes unchanged.

``OUT/`` holds:

* ``arch.yaml`` — the arch file with the learning spec's overrides applied (the PE size the masks
  were learned on; ``xsim run OUT/arch.yaml OUT/workload.json``);
* ``backbone.npz`` — the backbone weights (:func:`xsim.functional.save_weights` format, keys
  ``"<layer>.weight"`` / ``"<layer>.bias"``): the dequantised codes ``Q0 · s0``, so the
  simulator's per-channel quantisation gives back exactly the trained integer codes;
* ``tasks/<task>.masks.npz`` — key ``tier1``: int64 global PE indices (first-instance PEs of the
  non-head layers); key ``tier2``: float64 scales of length ``mapping.tier2_columns``, already on
  the task's format grid (1 on the head's columns and inside tier-1 PEs);
* ``tasks/<task>.weights.npz`` — the task's weights (see :func:`save_task_weights`);
* ``workload.json`` — the model as an explicit layer list with ``weights: {"kind": "npz"}``, the
  learning precision, the backbone task and one task per adaptation task with ``tier1.mask_file``,
  ``tier2.scales_file`` (both the masks file), ``weights_file`` and the learned ``pe_budget``, and
  a round-robin schedule.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from xsim.config.loader import deep_update, read_document
from xsim.functional.weights import check_weights, flatten_weights, save_weights
from xsim.learn.method import Backbone, TaskResult, matrix_weight
from xsim.learn.spec import LearnSpec
from xsim.models.graph import Network

TASK_CODES_SUFFIX = ".task_weight"


def _atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder, so a killed run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez(f, **arrays)
    _atomic(path, write)


def save_task_weights(path: Path, backbone: Backbone, result: TaskResult, head: str) -> None:
    """Write one task's weights file (``weights_file`` of the exported workload).

    An ``.npz`` with, per weight layer:

    * ``"<layer>.weight"`` (float64, the layer's weight shape) and ``"<layer>.bias"`` (float64,
      (Cout,), where the layer has a bias): the weights the task's network runs with outside its
      tier-1 PEs — the backbone's codes times the backbone's per-channel scale times the task's
      per-channel normalisation gain, the task's biases, and the task's own head.  These are the
      ``weights`` argument of :class:`xsim.functional.CrossbarNetwork` (load them with
      :func:`load_task_weights`); their per-channel quantisation gives back the backbone's codes;
    * ``"<layer>.task_weight"`` (int64, the layer's weight shape; every layer but the head): the
      task's integer weights on the backbone's per-channel grid, equal to the backbone's codes
      outside the task's tier-1 PEs — :attr:`xsim.functional.TaskMasks.task_weights`.
    """
    from xsim.learn.evaluate import task_float_weights

    arrays = flatten_weights(task_float_weights(backbone, result, head))
    for name, codes in result.codes.items():
        arrays[name + TASK_CODES_SUFFIX] = matrix_weight(codes, backbone.network[name]).astype(np.int64)
    write_npz(path, arrays)


def load_task_weights(path: str | os.PathLike[str], network: Network
                      ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray | None]], dict[str, np.ndarray]]:
    """Read a task weights file: (float weights as :func:`xsim.functional.load_weights` returns
    them, layer → int64 task weights for :class:`xsim.functional.TaskMasks`)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    codes = {key[: -len(TASK_CODES_SUFFIX)]: arrays.pop(key).astype(np.int64)
             for key in list(arrays) if key.endswith(TASK_CODES_SUFFIX)}
    weights = {}
    for layer in network.weight_layers:
        key = f"{layer.name}.weight"
        if key not in arrays:
            raise ValueError(f"{path}: missing key {key!r}")
        bias = arrays.get(f"{layer.name}.bias")
        weights[layer.name] = (arrays[key].astype(np.float64),
                               None if bias is None else bias.astype(np.float64))
    try:
        check_weights(network, weights)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return weights, codes


def export_workload(out: Path, arch_path: str | os.PathLike[str], spec: LearnSpec, backbone: Backbone,
                    results: dict[str, TaskResult], classes: dict[str, int], head: str) -> Path:
    """Write every exported file (see the module docstring); returns the workload's path."""
    scenario = Scenario(
        name=spec.name,
        description=f"XMA2 masks learned by xsim learn from {Path(spec.source or '').name} "
                    f"at a {spec.export.pe_budget:.0%} PE budget",
        seed=spec.seed, model={"name": spec.model.name, "input_shape": list(spec.model.input_shape),
                               "layers": [dict(layer) for layer in spec.model.layers]},
        precision=dict(spec.precision), backbone_task=spec.data.backbone,
        pe_budget=spec.export.pe_budget, tier2_format=spec.tier2.format, tier2_bits=spec.tier2.bits,
        periods=spec.export.periods)
    return write_scenario(out, arch_path, spec.arch_overrides, scenario, backbone, results, classes,
                          head)


@dataclass(frozen=True)
class Scenario:
    """What an exported workload says besides the learned arrays: its name, model (``name``,
    ``input_shape``, ``layers``), precision, backbone task, tier-1 budget label, tier-2 format
    and round-robin periods."""

    name: str
    description: str
    seed: int
    model: dict
    precision: dict
    backbone_task: str
    pe_budget: float
    tier2_format: str
    tier2_bits: int
    periods: int
    strategies: tuple[str, ...] | None = None


def write_scenario(out: Path, arch_path: str | os.PathLike[str], arch_overrides: dict,
                   scenario: Scenario, backbone: Backbone, results: dict[str, TaskResult],
                   classes: dict[str, int], head: str, *, backbone_file: str = "backbone.npz",
                   arch_file: str | None = "arch.yaml", tier2_columns: int | None = None) -> Path:
    """Write a scenario's files under ``out`` (see the module docstring); returns the workload's
    path.  A task without tier-2 scales exports ``tier2_columns`` scales of 1 (nothing
    rescaled).  ``arch_file`` None writes no arch file."""
    if arch_file is not None:
        arch_data = read_document(arch_path)
        if arch_overrides:
            arch_data = deep_update(arch_data, arch_overrides, str(arch_path))
        write_text(out / arch_file, yaml.safe_dump(dict(arch_data), sort_keys=False))
    out.mkdir(parents=True, exist_ok=True)
    save_weights(out / backbone_file, backbone.float_weights())
    tasks = [{"name": scenario.backbone_task, "backbone": True,
              "head": {"num_classes": classes[scenario.backbone_task]}}]
    for name, result in results.items():
        masks = f"tasks/{name}.masks.npz"
        weights = f"tasks/{name}.weights.npz"
        tier2 = result.tier2
        if tier2 is None:
            if tier2_columns is None:
                raise ValueError(f"task {name!r} has no tier-2 scales and no tier2_columns was given")
            tier2 = np.ones(tier2_columns, dtype=np.float64)
        write_npz(out / masks, {"tier1": np.asarray(result.tier1, dtype=np.int64),
                                "tier2": np.asarray(tier2, dtype=np.float64)})
        save_task_weights(out / weights, backbone, result, head)
        tasks.append({
            "name": name,
            "head": {"num_classes": classes[name]},
            "tier1": {"pe_budget": scenario.pe_budget, "mask_file": masks},
            "tier2": {"format": scenario.tier2_format, "bits": scenario.tier2_bits,
                      "scales_file": masks},
            "weights_file": weights,
        })
    workload = {
        "name": scenario.name,
        "description": scenario.description,
        "seed": scenario.seed,
        "model": {**scenario.model, "weights": {"kind": "npz", "path": backbone_file}},
        "precision": dict(scenario.precision),
        "tasks": tasks,
        "schedule": {"kind": "round_robin", "periods": scenario.periods},
    }
    if scenario.strategies is not None:
        workload["strategies"] = list(scenario.strategies)
    path = out / "workload.json"
    write_text(path, json.dumps(workload, indent=2) + "\n")
    return path
