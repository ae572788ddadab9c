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
every other non-ideality off, the ideal crossbars): ``top1_agreement``.
The network computed is XMA2's masked network of each task for every strategy (its tier-1
weights and tier-2 scales): the strategies differ in which cells they wear, and this measures
what their wear does to the same task.  ``switches`` is the number of task switches the chip
has made by the checkpoint (the schedule's switches per period times the periods).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from xsim.deployment import Deployment
from xsim.functional.masks import task_masks_from_tasks
from xsim.functional.network import CrossbarNetwork
from xsim.functional.nonideal import DeviceModel
from xsim.functional.reference import synthetic_inputs

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
    """Rows ``strategy, task, period, switches, worn_cells, worn_fraction, top1_agreement``."""
    if mta.cell_writes is None:
        raise ValueError("the scenario was run without keep_cell_writes")
    mapping, network, workload = deployment.mapping, deployment.network, deployment.workload
    spec = deployment.arch.cell.nonideal
    wearout = spec.wearout.model_copy(update={"enabled": True})
    device = DeviceModel.from_arch(deployment.arch, seed)
    device = replace(device, spec=spec.model_copy(update={"wearout": wearout}))
    calibration = synthetic_inputs(network, CALIBRATION_IMAGES, seed + CALIBRATION_SEED_OFFSET)
    x = synthetic_inputs(network, images, seed)
    masks = {t.name: task_masks_from_tasks(tasks, t.name) for t in workload.tasks}
    # Fault-free: the same cells without stuck ones (manufacture or wear), the other
    # non-idealities as they are, so period 0 compares like with like.
    healthy = replace(device, spec=spec.model_copy(update={
        "faults": spec.faults.model_copy(update={"rate": 0.0}),
        "wearout": spec.wearout.model_copy(update={"enabled": False})}))
    ideal = CrossbarNetwork(mapping, weights, calibration, device=healthy, seed=seed)
    want = {task: np.argmax(ideal.run(x, m), axis=1) for task, m in masks.items()}
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
            model = CrossbarNetwork(mapping, weights, calibration, device=device, writes=writes,
                                    seed=seed)
            for task, m in masks.items():
                got = np.argmax(model.run(x, m), axis=1)
                rows.append({"strategy": strategy, "task": task, "period": period,
                             "switches": period * per_period, "worn_cells": worn,
                             "worn_fraction": worn / total_cells, "images": images,
                             "top1_agreement": float(np.mean(got == want[task]))})
    return rows


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
