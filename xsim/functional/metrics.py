"""Accuracy figures of the bit-accurate crossbar model against the float64 reference.

For every task, the same images run through :meth:`CrossbarNetwork.run` (crossbars, ADCs,
quantisation, the task's masks) and through :meth:`CrossbarNetwork.reference` (float64, the same
masked network: float weights scaled by the task's tier-2 scales, dequantised task weights in its
tier-1 PEs).  Figures, over all images and elements of a tensor:

* ``rel_error`` = ‖y − y_ref‖₂ / ‖y_ref‖₂;
* ``snr_db`` = 10·log10(Σ y_ref² / Σ (y − y_ref)²) (``inf`` when the results are identical);
* ``top1_agreement``: for a classifier (an output of F > 1 features), the fraction of images whose
  arg-max class is the same in both; ``None`` otherwise;
* ``accuracy`` (only when labels are given): the fraction of images whose crossbar arg-max is the
  label.

Per layer, the same error figures compare each weight layer's output (after its activation) in the
two runs; the crossbar run's layers read the crossbar run's earlier results, so a layer's figure is
the error accumulated up to it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from xsim.deployment import Deployment
from xsim.functional.masks import TaskMasks
from xsim.functional.network import CrossbarNetwork
from xsim.functional.nonideal import DeviceModel
from xsim.functional.reference import forward_float, synthetic_inputs

# Calibration images are drawn from their own stream: seed + this offset.
CALIBRATION_SEED_OFFSET = 1_000_003


class ErrorAccumulator:
    """Running Σ y_ref² and Σ (y − y_ref)² of one tensor over images."""

    def __init__(self) -> None:
        self.signal = 0.0
        self.noise = 0.0
        self.count = 0

    def add(self, y: np.ndarray, ref: np.ndarray) -> None:
        ref = np.asarray(ref, dtype=np.float64).ravel()
        diff = np.asarray(y, dtype=np.float64).ravel() - ref
        # einsum's own loop, not BLAS: a threaded dot product splits its sum by thread count.
        self.signal += float(np.einsum("i,i->", ref, ref))
        self.noise += float(np.einsum("i,i->", diff, diff))
        self.count += 1

    @property
    def rel_error(self) -> float:
        if self.signal == 0.0:
            return 0.0 if self.noise == 0.0 else float("inf")
        return float(np.sqrt(self.noise / self.signal))

    @property
    def snr_db(self) -> float:
        if self.noise == 0.0:
            return float("inf")
        if self.signal == 0.0:
            return float("-inf")
        return float(10.0 * np.log10(self.signal / self.noise))


def error_figures(y: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """``rel_error`` and ``snr_db`` of ``y`` against ``ref`` (any equal shapes)."""
    acc = ErrorAccumulator()
    acc.add(y, ref)
    return {"rel_error": acc.rel_error, "snr_db": acc.snr_db}


def functional_metrics(
    deployment: Deployment,
    weights: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
    *,
    images: int,
    seed: int,
    masks_by_task: Mapping[str, TaskMasks | None],
    calibration_images: int = 8,
    labels: np.ndarray | None = None,
    inputs: np.ndarray | None = None,
    network_model: CrossbarNetwork | None = None,
    device: DeviceModel | None = None,
) -> tuple[list[dict], list[dict]]:
    """Per-task and per-layer accuracy rows of the crossbar model (see the module docstring).

    ``images`` synthetic inputs (:func:`synthetic_inputs` with ``seed``) run for every task of
    ``masks_by_task`` (task name → its :class:`TaskMasks`, or ``None`` for the backbone); the
    activation scales are calibrated on ``calibration_images`` synthetic inputs drawn with
    ``seed + CALIBRATION_SEED_OFFSET``, for each task on its masked float network (see
    :mod:`xsim.functional.network`).  ``inputs`` (B, C, H, W) replaces
    the synthetic images (then ``images`` must equal B) and ``labels`` (B,) adds ``accuracy``;
    ``network_model`` reuses an already built :class:`CrossbarNetwork` of the same mapping;
    ``device`` (the arch's ``cell.nonideal``) gives the crossbar model the cells' non-idealities.

    Returns ``(per_task_rows, per_layer_rows)``: flat dicts with keys ``task, images, output,
    rel_error, snr_db, top1_agreement[, accuracy], tier1_pes`` and ``task, layer, kind, images,
    rel_error, snr_db, tier1_pes``.  Deterministic for a seed.
    """
    network, mapping = deployment.network, deployment.mapping
    if isinstance(images, bool) or not isinstance(images, (int, np.integer)) or images < 1:
        raise ValueError(f"images must be a positive integer, got {images!r}")
    if inputs is None:
        x = synthetic_inputs(network, int(images), seed)
    else:
        x = np.asarray(inputs, dtype=np.float64)
        if x.ndim != 4 or x.shape[0] != images:
            raise ValueError(f"inputs must be a batch of {images} images (B, C, H, W), got {x.shape}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (images,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be {images} integer class indices, got {labels.shape} "
                             f"of {labels.dtype}")
    owned = network_model is None  # then nothing else runs a task's masks on it again
    if owned:
        calibration = synthetic_inputs(network, calibration_images, seed + CALIBRATION_SEED_OFFSET)
        network_model = CrossbarNetwork(mapping, weights, calibration, device=device, seed=seed)
    elif network_model.mapping is not mapping:
        raise ValueError("network_model was built for another mapping")
    out_name = network.output.name
    classes = int(np.prod(network.output.out_shape))
    classifier = network.output.out_shape[1:] == (1, 1) and classes > 1
    weight_layers = [lm.layer for lm in mapping.layers]

    task_rows: list[dict] = []
    layer_rows: list[dict] = []
    for task, masks in masks_by_task.items():
        if masks is not None and not isinstance(masks, TaskMasks):
            raise ValueError(f"task {task!r}: masks must be a TaskMasks or None, got {type(masks).__name__}")
        per_layer = {layer.name: ErrorAccumulator() for layer in weight_layers}
        total = ErrorAccumulator()
        agree = correct = 0
        effective = network_model.effective_weights(masks)
        for i, image in enumerate(x):
            top, top_ref = _compare_image(network_model, effective, image, masks, per_layer, total)
            if classifier:
                agree += top == top_ref
                if labels is not None:
                    correct += top == int(labels[i])
        # Freed before the next task's weights are made, so that they can take its memory (on a
        # network built here, the task's packed weights too: each task runs once).
        del effective
        if owned:
            network_model.release(masks)
        row = {"task": task, "images": int(images), "output": out_name, "rel_error": total.rel_error,
               "snr_db": total.snr_db, "top1_agreement": agree / images if classifier else None}
        if labels is not None:
            row["accuracy"] = correct / images if classifier else None
        row["tier1_pes"] = 0 if masks is None else len(masks.tier1)
        task_rows.append(row)
        for lm in mapping.layers:
            acc = per_layer[lm.layer.name]
            layer_rows.append({
                "task": task, "layer": lm.layer.name, "kind": lm.layer.kind, "images": int(images),
                "rel_error": acc.rel_error, "snr_db": acc.snr_db,
                "tier1_pes": 0 if masks is None else len(masks.tier1_in(lm)),
            })
    return task_rows, layer_rows


def _compare_image(network_model: CrossbarNetwork,
                   effective: Mapping[str, tuple[np.ndarray, np.ndarray | None]], image: np.ndarray,
                   masks: TaskMasks | None, per_layer: Mapping[str, ErrorAccumulator],
                   total: ErrorAccumulator) -> tuple[int, int]:
    """One image through both runs, its errors added to the accumulators; returns the arg-max of
    the crossbar run's and the reference's outputs.  Every layer's outputs of both runs exist for
    this one image only, and are freed on return, before the next image's are made."""
    network = network_model.network
    out_name = network.output.name
    hw = network_model.run(image, masks, return_all=True)
    ref = forward_float(network, effective, image, return_all=True)
    for name, acc in per_layer.items():
        acc.add(hw[name], ref[name])
    total.add(hw[out_name], ref[out_name])
    return int(np.argmax(hw[out_name].ravel())), int(np.argmax(ref[out_name].ravel()))
