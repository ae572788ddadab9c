"""Learned tasks through the simulator's models: bit-accurate accuracy and cells written per switch.

* **Crossbar accuracy**: the task runs through :class:`xsim.functional.CrossbarNetwork` (weights
  and inputs quantised, the crossbar kernels with their ADCs, the tier-2 scales after each frozen
  PE's shift-and-add, the task's integer weights in its tier-1 PEs).  The network is built from
  the backbone's codes times the task's per-channel gains (so its per-channel quantisation gives
  back exactly the backbone's codes, and the gains land in the dequantisation scales), the task's
  biases and its head; activation scales are calibrated on the task's own training images.
* **Cells written per switch**: the cells whose level (:func:`xsim.mta.cells.cell_levels`, the
  layout the simulator writes) differs between the task's programmed integer matrix and the
  backbone's, over every layer but the head (heads are resident, as in the simulator).  A task's
  programmed matrix equals the backbone outside its tier-1 PEs, so this counts the tier-1 PEs for
  XMA2 and tier 1 only, and everything for full fine-tuning and element-wise masks.
"""

from __future__ import annotations

import numpy as np

from xsim.deployment import Deployment
from xsim.functional.masks import TaskMasks
from xsim.functional.network import CrossbarNetwork
from xsim.learn.method import Backbone, TaskResult, matrix_weight
from xsim.mapping import Mapping
from xsim.mta.cells import cell_levels


def task_float_weights(backbone: Backbone, result: TaskResult, head: str) -> dict:
    """The weights :class:`CrossbarNetwork` runs the task with (see the module docstring)."""
    weights = {}
    for name, q0 in backbone.codes.items():
        if name == head:
            weights[name] = result.head
            continue
        matrix = q0 * (backbone.scales[name] * result.gains[name])
        weights[name] = (matrix_weight(matrix, backbone.network[name]), result.biases[name])
    return weights


def task_masks(mapping: Mapping, result: TaskResult) -> TaskMasks:
    """The functional model's masks of a task: its tier-1 PEs, tier-2 scales and task codes."""
    return TaskMasks.from_matrices(mapping, result.tier1, result.tier2, result.codes)


def crossbar_accuracy(deployment: Deployment, backbone: Backbone, result: TaskResult,
                      calibration: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the task on (x, y) through the bit-accurate crossbar model."""
    mapping = deployment.mapping
    weights = task_float_weights(backbone, result, deployment.head_layer)
    network = CrossbarNetwork(mapping, weights, calibration)
    logits = network.run(x, task_masks(mapping, result))
    return float((np.argmax(logits, axis=1) == y).mean())


def cells_written(deployment: Deployment, backbone: Backbone, result: TaskResult) -> int:
    """Cells whose level differs from the backbone's over every layer but the head."""
    arch, bits = deployment.arch, deployment.mapping.weight_bits
    total = 0
    for name, codes in result.codes.items():
        before = cell_levels(backbone.codes[name].astype(np.int64), arch, bits)
        after = cell_levels(codes.astype(np.int64), arch, bits)
        total += int(np.count_nonzero(before != after))
    return total
