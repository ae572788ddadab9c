"""Tasks of a multi-task scenario: backbone integer weights, task weights, heads and masks.

What is modelled:

* **Backbone**: the workload's weights (synthetic seeded or ``.npz``), quantised per output channel
  to ``weight_bits`` (:func:`xsim.functional.quantise.quantise_weights`); layer ``L``'s matrix is
  (K, N) as mapped.
* **Task weights** (what fine-tuning would produce) come from the task's ``weights_file`` when it
  has one (``.npz``, key ``<layer>.task_weight`` per non-head layer: integer codes in the layer's
  weight shape on the backbone's grid, as ``xsim learn`` exports them); every strategy that
  rewrites PEs then writes those weights. Otherwise each weight changes with probability
  ``weight_change.fraction`` by a step ``round(N(0, sigma_lsb²))`` least-significant bits, clipped
  to the weight range, times a gain of the (task, PE): log-normal with mean 1 and log-σ
  ``weight_change.pe_spread`` (:class:`xsim.config.workload.WeightChange`), so each task needs
  its own PEs most and ``largest_change`` picks task-dependent PEs. A PE's replicas share its
  gain (each copy's rows and columns are the first instance's). The number of cells a rewrite
  changes follows directly from this distribution, so every output states it. Random streams
  are keyed by (workload seed, task index, layer index): a task's changes do not depend on
  which other tasks exist.
* **Element-wise (Piggyback-style) masks**: each backbone weight is switched off (set to 0) with
  probability ``weight_change.masked_fraction``; on a crossbar this means rewriting those cells.
* **Heads**: the network's last weight layer is the task's classifier. Task ``t``'s head has
  ``head.num_classes`` columns written over the first columns of the backbone head's PEs (the
  rest keep their contents and are ignored); its weights are the task's own where its
  ``weights_file`` holds the float head (``<head>.weight``, quantised per channel like the
  backbone), else synthetic, drawn like the backbone's.
* **Tier-1 masks** pick ``round(pe_budget × candidates)`` of the first-instance PEs of every
  weight layer but the head (replicas follow their first instance): ``random`` (seeded),
  ``largest_change`` (the PEs whose task weights move furthest, Σ|ΔW|), or ``uniform_layers``
  (the budget shared over layers in proportion to their PEs, largest remainders first, then
  largest change inside each layer). A ``mask_file`` (``.npz`` with key ``tier1``: PE indices or
  a boolean vector over the first-instance PEs) overrides the policy.
* **Tier-2 scales**: one per (frozen PE, weight column); synthetic ideal scales are log-normal
  around 1 (σ = 0.25) quantised to the task's format, or read from ``scales_file`` (``.npz``,
  key ``tier2``, length ``mapping.tier2_columns``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from xsim import streams
from xsim.config import ConfigError, TaskSpec, Workload, resolve_path
from xsim.config.arrays import INTEGER, REAL, NpzArchive
from xsim.config.limits import MAX_TIER2_SCALE
from xsim.deployment import Deployment
from xsim.functional.masks import quantise_scales
from xsim.functional.quantise import quantise_weights
from xsim.kernels.changes import weight_changes
from xsim.mapping import Mapping
from xsim.processes import in_threads
from xsim.text import shown

SCALE_SIGMA = 0.25


def weight_matrix(weight: np.ndarray) -> np.ndarray:
    """A layer's weight array (Cout, Cin/g, kh, kw) or (out, in) as its mapped (K, N) matrix."""
    return weight.reshape(weight.shape[0], -1).T


@dataclass
class TaskSet:
    """Integer weights of the backbone and of every task, and the tasks' masks."""

    deployment: Deployment
    backbone: dict[str, np.ndarray]
    limit: int
    deltas: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    from_file: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    masked: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    heads: dict[str, np.ndarray] = field(default_factory=dict)
    tier1: dict[str, frozenset[int]] = field(default_factory=dict)
    tier2: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def mapping(self) -> Mapping:
        return self.deployment.mapping

    @property
    def workload(self) -> Workload:
        return self.deployment.workload

    @property
    def head_layer(self) -> str:
        return self.deployment.head_layer

    def task_weights(self, task: str, layer: str) -> np.ndarray:
        """The task's fully fine-tuned integer weights of a (non-head) layer."""
        if task == self.workload.backbone.name:
            return self.backbone[layer]
        if (task, layer) in self.from_file:
            return self.from_file[(task, layer)]
        w = self.backbone[layer] + self.deltas[(task, layer)].astype(np.int32)
        return np.clip(w, -self.limit, self.limit)

    def masked_weights(self, task: str, layer: str) -> np.ndarray:
        """The backbone with the task's element-wise mask applied."""
        if task == self.workload.backbone.name:
            return self.backbone[layer]
        return np.where(self.masked[(task, layer)], 0, self.backbone[layer])

    def head_weights(self, task: str) -> np.ndarray:
        return self.heads[task]


def _rng(workload: Workload, stream: str, *key: int) -> np.random.Generator:
    return streams.rng(workload.seed, stream, *key)


def _synthetic_head(workload: Workload, task_index: int, k: int, classes: int, bits: int):
    w = _rng(workload, "task.head", task_index).normal(0.0, np.sqrt(1.0 / k), (classes, k))
    q, _ = quantise_weights(w, bits, per_channel=True)
    return q.T


def _read_npz(path: Path, key: str, source: str | None, where: str, **checks) -> np.ndarray:
    """Array ``key`` of the ``.npz`` at ``path``, checked (xsim.config.arrays) before use."""
    with NpzArchive(path, f"named by {source}: {where}") as archive:
        return archive.read(key, **checks)


def _tier1_from_file(path: Path, candidates: np.ndarray, workload: Workload, where: str):
    arr = _read_npz(path, "tier1", workload.source, where, kinds="b" + INTEGER,
                    max_items=candidates.size,
                    what="a tier-1 mask (PE indices or one boolean per candidate PE)")
    n_first = candidates.size
    if arr.dtype == np.bool_:
        if arr.shape != (n_first,):
            raise ConfigError(str(path), "tier1", f"a boolean mask must have shape ({n_first},) "
                              f"(one entry per candidate PE), got {arr.shape}")
        return frozenset(int(p) for p in candidates[arr])
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(str(path), "tier1", "expected a 1-D array of PE indices or a boolean mask")
    bad = np.unique(arr[~np.isin(arr, candidates)]).tolist()
    if bad:
        raise ConfigError(str(path), "tier1", f"PE indices {bad[:5]} are not tier-1 candidates "
                          f"(first-instance PEs of non-head layers, 0..{int(candidates.max())})")
    return frozenset(int(p) for p in arr)


def _select(policy: str, count: int, scores: np.ndarray, candidates: np.ndarray,
            layer_of: np.ndarray, rng: np.random.Generator) -> frozenset[int]:
    if count == 0:
        return frozenset()
    if policy == "random":
        return frozenset(int(p) for p in rng.choice(candidates, size=count, replace=False))
    order = np.argsort(-scores, kind="stable")
    if policy == "largest_change":
        return frozenset(int(p) for p in candidates[order[:count]])
    layers, sizes = np.unique(layer_of, return_counts=True)
    exact = count * sizes / sizes.sum()
    quota = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - quota), kind="stable")[: count - quota.sum()]:
        quota[i] += 1
    chosen = []
    for layer, q in zip(layers, quota):
        in_layer = order[layer_of[order] == layer]
        chosen.extend(int(p) for p in candidates[in_layer[:q]])
    return frozenset(chosen)


def build_tasks(deployment: Deployment, weights: dict) -> TaskSet:
    """Quantise the backbone and derive every task's weights, head and masks."""
    mapping, workload = deployment.mapping, deployment.workload
    bits = mapping.weight_bits
    limit = (1 << (bits - 1)) - 1
    head_layer = mapping.layer(deployment.head_layer)

    def quantised(name: str) -> np.ndarray:
        codes = quantise_weights(weights[name][0], bits, per_channel=True)[0]
        return np.ascontiguousarray(weight_matrix(codes), dtype=np.int32)

    names = [lm.layer.name for lm in mapping.layers]
    backbone = dict(zip(names, in_threads(quantised, names)))  # layer by layer, in layer order
    tasks = TaskSet(deployment, backbone, limit)

    first = [mapping.pes[i] for i in deployment.tier1_candidates]
    candidates = np.array([p.index for p in first], dtype=np.int64)
    layer_of = np.array([p.layer_index for p in first], dtype=np.int64)
    # Every layer draws from its own generator, so a task's layers are drawn in threads (numpy's
    # generators and the kernel run outside the GIL) and used in layer order.
    pe_pos = {p.index: i for i, p in enumerate(first)}
    for ti, task in enumerate(workload.tasks):
        where = f"tasks[{ti}]"
        tasks.heads[task.name] = (
            backbone[head_layer.layer.name] if task.backbone
            else _file_head(workload, task, f"tasks[{ti}]", head_layer, bits)
            if task.weights_file and _has_key(workload, task.weights_file,
                                              f"{head_layer.layer.name}.weight")
            else _synthetic_head(workload, ti, head_layer.K, task.head.num_classes, bits))
        if task.backbone:
            tasks.tier1[task.name] = frozenset()
            continue
        scores = np.zeros(len(first))
        spread = task.weight_change.pe_spread
        gains = np.exp(_rng(workload, "task.pe_gain", ti).normal(-spread**2 / 2, spread, len(first)))
        layers = [lm for lm in mapping.layers if lm.layer.name != deployment.head_layer]
        changes = in_threads(partial(_layer_change, deployment, task, ti, backbone, limit,
                                     gains, pe_pos), layers)
        for lm, (delta, masked, boxes, change) in zip(layers, changes):
            tasks.deltas[(task.name, lm.layer.name)] = delta
            tasks.masked[(task.name, lm.layer.name)] = masked
            if task.weights_file:
                tasks.from_file[(task.name, lm.layer.name)] = _file_weights(
                    workload, task, where, lm, limit)
                w = np.abs(tasks.task_weights(task.name, lm.layer.name) - backbone[lm.layer.name])
                change = [w[r0:r1, c0:c1].sum() for r0, r1, c0, c1 in boxes]
            for pid, score in zip(lm.pes[: lm.pes_per_replica], change):
                scores[pe_pos[pid]] = score
        tasks.tier1[task.name] = _tier1(task, where, workload, candidates, layer_of, scores, ti)
        tasks.tier2[task.name] = _tier2(task, where, deployment, ti)
    return tasks


def _layer_change(deployment: Deployment, task: TaskSpec, ti: int, backbone: dict[str, np.ndarray],
                  limit: int, gains: np.ndarray, pe_pos: dict[int, int], lm):
    """One layer's synthetic change for task ``ti``: ``(delta, masked, boxes, moved)``, the
    int8 deltas, the element-wise mask, the first-instance PE boxes and their summed change."""
    mapping, change, w0 = deployment.mapping, task.weight_change, backbone[lm.layer.name]
    rng = _rng(deployment.workload, "task.weight_change", ti, lm.layer_index)
    changed = rng.random(w0.shape, dtype=np.float32) < change.fraction
    # The float32 product is the same with sigma as a scalar as with a full array of it.
    sigma = np.float32(change.sigma_lsb)
    firsts = [mapping.pes[pid] for pid in lm.pes[: lm.pes_per_replica]]
    if change.pe_spread > 0:
        sigma = np.full(w0.shape, sigma, dtype=np.float32)
        for p in firsts:
            sigma[p.row_start:p.row_stop, p.col_start:p.col_stop] *= gains[pe_pos[p.index]]
    boxes = np.array([(p.row_start, p.row_stop, p.col_start, p.col_stop) for p in firsts],
                     dtype=np.int64)
    # rint(z·σ) clipped to ±127 where changed, and each PE's summed change, in one pass.
    delta, moved = weight_changes(changed, rng.standard_normal(w0.shape, dtype=np.float32), sigma,
                                  w0, limit, boxes)
    masked = rng.random(w0.shape, dtype=np.float32) < change.masked_fraction
    return delta, masked, boxes, moved


def _has_key(workload: Workload, name: str, key: str) -> bool:
    with NpzArchive(resolve_path(workload, name), f"named by {workload.source}") as archive:
        return key in archive.keys


def _file_head(workload: Workload, task: TaskSpec, where: str, lm, bits: int) -> np.ndarray:
    """A task's own classifier from its ``weights_file`` (key ``<head>.weight``: the float head
    ``xsim learn`` and ``xsim study`` export), quantised per output channel as the backbone is:
    its first ``head.num_classes`` outputs as the (K, classes) codes written into the head PEs."""
    path = resolve_path(workload, task.weights_file)
    w = _read_npz(path, f"{lm.layer.name}.weight", workload.source,
                  f"{where}.weights_file (task {shown(task.name)})", kinds=REAL,
                  shape=lm.layer.weight_shape, what="the task's float head weights")
    codes = quantise_weights(w.astype(np.float64), bits, per_channel=True)[0]
    return np.ascontiguousarray(weight_matrix(codes)[:, : task.head.num_classes], dtype=np.int32)


def _file_weights(workload: Workload, task: TaskSpec, where: str, lm, limit: int) -> np.ndarray:
    """A task's integer weights of one layer from its ``weights_file`` (key
    ``<layer>.task_weight``: codes in the layer's weight shape on the backbone's quantisation
    grid, as ``xsim learn`` exports them), as the mapped (K, N) matrix."""
    path = resolve_path(workload, task.weights_file)
    key = f"{lm.layer.name}.task_weight"
    codes = _read_npz(path, key, workload.source, f"{where}.weights_file (task {shown(task.name)})",
                      kinds=INTEGER, shape=lm.layer.weight_shape, low=-limit, high=limit,
                      what=f"integer codes of {limit.bit_length() + 1}-bit weights")
    return np.ascontiguousarray(weight_matrix(codes), dtype=np.int32)


def _tier1(task: TaskSpec, where: str, workload: Workload, candidates, layer_of, scores, ti):
    if task.tier1.mask_file:
        path = resolve_path(workload, task.tier1.mask_file)
        return _tier1_from_file(path, candidates, workload,
                                f"{where}.tier1.mask_file (task {shown(task.name)})")
    count = int(round(task.tier1.pe_budget * candidates.size))
    return _select(task.tier1.policy, count, scores, candidates, layer_of,
                   _rng(workload, "task.tier1", ti))


def _tier2(task: TaskSpec, where: str, deployment: Deployment, ti: int):
    """The task's tier-2 scales; the head layer's columns are never scaled (scale 1)."""
    mapping, workload = deployment.mapping, deployment.workload
    scales = _tier2_values(task, where, workload, mapping, ti)
    head = mapping.layer(deployment.head_layer)
    for p in head.pes[: head.pes_per_replica]:
        pe = mapping.pes[p]
        scales[pe.tier2_offset: pe.tier2_offset + pe.weight_columns] = 1.0
    return scales


def _tier2_values(task: TaskSpec, where: str, workload: Workload, mapping: Mapping, ti: int):
    if task.tier2.scales_file:
        path = resolve_path(workload, task.tier2.scales_file)
        # Magnitudes for pow2 and fixed scales; a float scale may also flip a column's sign.
        low = -MAX_TIER2_SCALE if task.tier2.format == "float" else 0.0
        scales = _read_npz(path, "tier2", workload.source,
                           f"{where}.tier2.scales_file (task {shown(task.name)})", kinds=REAL,
                           shape=(mapping.tier2_columns,), low=low, high=MAX_TIER2_SCALE,
                           what="tier-2 scales (one per first-instance PE weight column)")
        return quantise_scales(scales.astype(np.float64), task.tier2.format, task.tier2.bits)
    ideal = np.exp(_rng(workload, "task.tier2_scales", ti).normal(0.0, SCALE_SIGMA,
                                                                 mapping.tier2_columns))
    return quantise_scales(ideal, task.tier2.format, task.tier2.bits)
