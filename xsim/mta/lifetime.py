"""Accuracy over the chip's lifetime under each strategy: wear-out from the schedule's writes.

The multi-task scenario (:func:`xsim.mta.scenario.run_scenario` with ``keep_cell_writes``) counts
every cell's writes over the workload's schedule (``schedule.periods`` periods).  The schedule
repeats over the chip's life, so after ``p`` periods a cell has been written ``w · p / periods``
times (the same linear projection as the endurance table's lifetime).  A cell written more
than its own endurance (``cell.endurance_cycles · exp(sigma_log · ξ)``, drawn once per cell:
:mod:`xsim.functional.nonideal`) sticks at ``cell.nonideal.wearout.level``.

Checkpoints are chosen around the wear: ``0`` and ``CHECKPOINTS`` periods spaced geometrically
from 1/16 to 16 times the projected lifetime of the most-written strategy (periods until its
worst cell reaches ``endurance_cycles``), so wear-out happens within the study whatever the
endurance; a strategy that writes no cell keeps its day-one figure.

At each checkpoint, for each strategy and task, the bit-accurate model (the arch's other
non-idealities as the arch file sets them, plus wear-out, which this study turns on with the
file's ``wearout`` parameters) runs ``images`` synthetic images and its top-1 class is compared
with the fault-free model (the same model without stuck cells, from manufacture or wear; with
every other non-ideality off, the ideal crossbars): ``top1_agreement``. Where every task names a
``test_file`` (labelled test images, as the learned CNN scenario ships), the model runs the
first ``images`` of each task's own test images instead, calibrated on the backbone task's
``calibration`` images when its file has them, and ``accuracy`` is the share classified right.
The network computed is XMA2's masked network of each task for every strategy (its tier-1
weights and tier-2 scales): the strategies differ in which cells they wear, and this measures
what their wear does to the same task.  ``switches`` is the number of task switches the chip
has made by the checkpoint (the schedule's switches per period times the periods).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from xsim.config import resolve_path
from xsim.config.arrays import INTEGER, NpzArchive
from xsim.deployment import Deployment
from xsim.functional.masks import task_masks_from_tasks
from xsim.functional.network import CrossbarNetwork
from xsim.functional.nonideal import DeviceModel
from xsim.functional.reference import synthetic_inputs
from xsim.text import shown

CHECKPOINTS = 9
CALIBRATION_IMAGES = 2
# Calibration images are drawn from their own stream, as the functional model's are.
CALIBRATION_SEED_OFFSET = 1_000_003


def checkpoints(deployment: Deployment, mta) -> list[float]:
    """Periods at which accuracy is measured (see the module docstring)."""
    lifetimes = [mta.lifetime(s)[0] for s in deployment.workload.strategies]
    finite = [t for t in lifetimes if t is not None]
    if not finite:
        return [0.0]
    shortest = min(finite)
    return [0.0, *(float(shortest * 2.0**e) for e in np.linspace(-4, 4, CHECKPOINTS))]


def lifetime_rows(deployment: Deployment, weights, tasks, mta, *, images: int,
                  seed: int) -> list[dict]:
    """Rows ``strategy, task, period, switches, worn_cells, worn_fraction, images,
    top1_agreement`` and, with labelled test images, ``accuracy``."""
    if mta.cell_writes is None:
        raise ValueError("the scenario was run without keep_cell_writes")
    mapping, network, workload = deployment.mapping, deployment.network, deployment.workload
    spec = deployment.arch.cell.nonideal
    wearout = spec.wearout.model_copy(update={"enabled": True})
    device = DeviceModel.from_arch(deployment.arch, seed)
    device = replace(device, spec=spec.model_copy(update={"wearout": wearout}))
    labelled = labelled_sets(workload, network)
    names = [t.name for t in workload.tasks]
    if labelled is None:
        synthetic = synthetic_inputs(network, CALIBRATION_IMAGES, seed + CALIBRATION_SEED_OFFSET)
        calibration = dict.fromkeys(names, synthetic)
        x = dict.fromkeys(names, synthetic_inputs(network, images, seed))
        labels = None
        own = dict.fromkeys(names, weights)
    else:
        back = labelled[workload.backbone.name]
        calibration = {name: t.calibration if t.calibration is not None else
                       back.calibration if back.calibration is not None else
                       back.x[:CALIBRATION_IMAGES] for name, t in labelled.items()}
        x = {name: t.x[:images] for name, t in labelled.items()}
        labels = {t.name: labelled[t.name].y[:images] for t in workload.tasks}
        classes = {t.name: t.head.num_classes for t in workload.tasks}
        # Each task runs its own network: its digital gains, biases and head from its
        # weights_file (the crossbars hold the same codes), else the backbone's.
        own = {t.name: task_float_weights(workload, t, network, weights) for t in workload.tasks}
    masks = {t.name: task_masks_from_tasks(tasks, t.name) for t in workload.tasks}

    def top1(logits: np.ndarray, task: str) -> np.ndarray:
        # A task's classes are the first head.num_classes outputs of the shared head layer.
        return np.argmax(logits if labels is None else logits[:, : classes[task]], axis=1)

    # Fault-free: the same cells without stuck ones (manufacture or wear), the other
    # non-idealities as they are, so period 0 compares like with like.
    healthy = replace(device, spec=spec.model_copy(update={
        "faults": spec.faults.model_copy(update={"rate": 0.0}),
        "wearout": spec.wearout.model_copy(update={"enabled": False})}))
    want = {task: top1(CrossbarNetwork(mapping, own[task], calibration[task], device=healthy,
                                       seed=seed).run(x[task], m), task)
            for task, m in masks.items()}
    periods = workload.schedule.periods if workload.schedule.kind == "round_robin" else 1
    per_period = mta.switch_count / periods
    total_cells = sum(lm.K * lm.N * mapping.columns_per_weight for lm in mapping.layers)
    rows = []
    for strategy in workload.strategies:
        counts = mta.cell_writes[strategy]
        for period in checkpoints(deployment, mta):
            scale = period / periods
            writes = {name: c * scale for name, c in counts.items()}
            worn = 0
            for lm in mapping.layers:
                w = writes[lm.layer.name]
                worn += int(sum(np.count_nonzero(device.worn(_group_layout(w, lm, mapping, g),
                                                             layer=lm.layer_index, group=g))
                                for g in range(lm.layer.groups)))
            for task, m in masks.items():
                model = CrossbarNetwork(mapping, own[task], calibration[task], device=device,
                                        writes=writes, seed=seed)
                got = top1(model.run(x[task], m), task)
                row = {"strategy": strategy, "task": task, "period": period,
                       "switches": period * per_period, "worn_cells": worn,
                       "worn_fraction": worn / total_cells, "images": len(got),
                       "top1_agreement": float(np.mean(got == want[task]))}
                if labels is not None:
                    row["accuracy"] = float(np.mean(got == labels[task]))
                rows.append(row)
    return rows


@dataclass(frozen=True)
class LabelledSet:
    """A task's labelled test images (and optional calibration images) from its ``test_file``."""

    x: np.ndarray
    y: np.ndarray
    calibration: np.ndarray | None


def labelled_sets(workload, network) -> dict[str, LabelledSet] | None:
    """Every task's :class:`LabelledSet`, or None unless every task names a ``test_file``; a bad file
    is a ConfigError naming it, the key and what was expected."""
    if not all(t.test_file for t in workload.tasks):
        return None
    shape = tuple(network.input_shape)
    out = {}
    for i, task in enumerate(workload.tasks):
        path = resolve_path(workload, task.test_file)
        where = f"named by {workload.source}: tasks[{i}].test_file (task {shown(task.name)})"
        with NpzArchive(path, where) as archive:
            x = archive.read("x", kinds="f", what="test images (B, C, H, W)")
            if x.ndim != 4 or x.shape[1:] != shape or not x.shape[0]:
                raise archive.error("x", f"expected test images of shape (B, {', '.join(map(str, shape))}) "
                                    f"with B >= 1, got {shown(x.shape)}")
            y = archive.read("y", kinds=INTEGER, shape=(x.shape[0],), low=0,
                             high=task.head.num_classes - 1,
                             what=f"one class per test image (below head.num_classes "
                                  f"{task.head.num_classes})")
            calibration = None
            if "calibration" in archive.keys:
                calibration = archive.read("calibration", kinds="f", what="calibration images")
                if calibration.ndim != 4 or calibration.shape[1:] != shape or not calibration.shape[0]:
                    raise archive.error("calibration", "expected calibration images of shape "
                                        f"(N, {', '.join(map(str, shape))}), got {shown(calibration.shape)}")
        out[task.name] = LabelledSet(x.astype(np.float64), y.astype(np.int64),
                                 None if calibration is None else calibration.astype(np.float64))
    return out


def task_float_weights(workload, task, network, backbone):
    """The float weights a task's network runs with: ``<layer>.weight`` / ``<layer>.bias`` of its
    ``weights_file`` where that file holds them (as ``xsim learn`` and ``xsim study`` export a
    task: the backbone's codes times the task's gains, its biases, its head), else ``backbone``."""
    if not task.weights_file:
        return backbone
    path = resolve_path(workload, task.weights_file)
    where = f"named by {workload.source}: weights_file (task {shown(task.name)})"
    with NpzArchive(path, where) as archive:
        if not all(f"{layer.name}.weight" in archive.keys for layer in network.weight_layers):
            return backbone
        out = {}
        for layer in network.weight_layers:
            w = archive.read(f"{layer.name}.weight", kinds="f", shape=tuple(layer.weight_shape),
                             what=f"{layer.name}'s float weights")
            key = f"{layer.name}.bias"
            b = archive.read(key, kinds="f", shape=(layer.out_channels,),
                             what=f"{layer.name}'s bias") if key in archive.keys else None
            out[layer.name] = (w.astype(np.float64), None if b is None else b.astype(np.float64))
    return out


def _group_layout(writes: np.ndarray, lm, mapping, group: int) -> np.ndarray:
    """One conv group's write counts in the kernels' cell layout (as the network draws them)."""
    from xsim.functional.nonideal import cell_layout
    from xsim.kernels import n_slices

    arch = mapping.arch
    encoding = arch.crossbar.encoding
    arrays = 2 if encoding == "differential" else 1
    slices = n_slices(mapping.weight_bits, arch.cell.bits, encoding)
    cpw = arrays * slices
    ng = lm.layer.out_channels // lm.layer.groups
    return cell_layout(writes[:, group * ng * cpw : (group + 1) * ng * cpw],
                       rows=arch.crossbar.rows, arrays=arrays, slices=slices)
