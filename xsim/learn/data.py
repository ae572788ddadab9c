"""Data of the learning demo: real handwritten digits shipped inside scikit-learn's wheel.

The source (backbone) task is scikit-learn's ``load_digits``: 1797 8×8 grey-level images of the
digits 0–9 (16 levels, scaled here to [0, 1]) from the UCI optical-recognition set; nothing is
downloaded.  One fixed split, drawn from ``data.seed``, holds ``test_fraction`` of the images out
(stratified by class), and every task uses the same split of the same images, so a task differs
from the backbone only by its input transform:

* ``rot90`` / ``rot180``: the image rotated counter-clockwise;
* ``flip``: mirrored left–right;
* ``invert``: ``1 − x`` (white digits become dark on white);
* ``permute``: a fixed permutation of the pixels, drawn from (data seed, task position);
* ``identity``: the source task itself.

Every task keeps the ten classes and has its own head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xsim import streams
from xsim.learn.spec import DataSpec


@dataclass(frozen=True)
class TaskArrays:
    """One task's images (B, 1, 8, 8) float64 in [0, 1] and labels (B,) int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int


def load_source(spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """The source images (B, 1, 8, 8) in [0, 1] and their labels (``spec.dataset``: ``digits``)."""
    from sklearn.datasets import load_digits  # the learn extra's dependency, loaded on use

    digits = load_digits()
    x = digits.images.astype(np.float64)[:, None] / 16.0
    return x, digits.target.astype(np.int64)


def split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, test) index arrays: ``test_fraction`` of every class, rounded."""
    rng = streams.rng(seed, "learn.split")
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * idx.size))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def transform(x: np.ndarray, kind: str, seed: int, position: int) -> np.ndarray:
    """Images ``x`` (B, C, H, W) under the task transform ``kind`` (see the module docstring)."""
    if kind == "identity":
        return x.copy()
    if kind == "rot90":
        return np.ascontiguousarray(np.rot90(x, 1, axes=(2, 3)))
    if kind == "rot180":
        return np.ascontiguousarray(np.rot90(x, 2, axes=(2, 3)))
    if kind == "flip":
        return np.ascontiguousarray(x[..., ::-1])
    if kind == "invert":
        return 1.0 - x
    if kind == "permute":
        flat = x.reshape(x.shape[0], -1)
        perm = streams.rng(seed, "learn.permutation", position).permutation(flat.shape[1])
        return np.ascontiguousarray(flat[:, perm].reshape(x.shape))
    raise ValueError(f"unknown task transform {kind!r}")


def build_tasks(spec: DataSpec) -> tuple[TaskArrays, list[TaskArrays]]:
    """The backbone task and the adaptation tasks, all on one fixed split."""
    x, y = load_source(spec)
    train, test = split(y, spec.test_fraction, spec.seed)
    classes = int(y.max()) + 1
    backbone = TaskArrays(spec.backbone, x[train], y[train], x[test], y[test], classes)
    tasks = []
    for position, task in enumerate(spec.tasks):
        xt = transform(x, task.transform, spec.seed, position)
        tasks.append(TaskArrays(task.name, xt[train], y[train], xt[test], y[test], classes))
    return backbone, tasks
