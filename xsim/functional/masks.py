"""XMA2's two tiers of task masks, as the functional model applies them to a :class:`Mapping`.

* **Tier 1** is a set of PE indices (first-instance PEs, ``replica == 0``; replicas are copies of
  their first instance and follow it).  A listed PE holds the task's own integer weights: the
  block ``rows [row_start, row_stop) × weight columns [col_start, col_stop)`` of its layer's
  weight matrix comes from :attr:`TaskMasks.task_weights` instead of the backbone.
* **Tier 2** is one scale per (first-instance PE, weight column), indexed as the mapping's tier-2
  columns (``pe.tier2_offset + n - pe.col_start``).  The digital unit after a frozen PE's
  shift-and-add multiplies the PE's partial sum of column ``n`` by the scale; entries of tier-1 PEs
  are ignored.  Scales are stored as float64 values after :func:`quantise_scales` has put them on
  the workload's format:

  - ``pow2`` with ``bits`` b: code 0 is 0 (the column is off); the other ``2**b - 1`` codes are
    the powers ``2**e`` for ``e`` in ``[-(2**(b-1) - 1), 2**(b-1) - 1]`` (b = 4: ``2**-7 .. 2**7``,
    b = 1: on/off only), so a scale of 1 is always representable.  A value is rounded to the
    nearest exponent in the log domain and clipped to the range; values below half the smallest
    power (the linear midpoint between 0 and it) and 0 become 0.  ``bits <= 10`` keeps every
    power inside float64.
  - ``fixed`` with ``bits`` b: unsigned fixed point with ``b - 1`` fraction bits, values
    ``code / 2**(b-1)`` for codes ``0 .. 2**b - 1``, i.e. the range ``[0, 2)`` in steps of
    ``2**-(b-1)``; rounded to nearest (half to even), clipped.
  - ``float``: the values themselves (the ideal reference), which may be any finite number.

  ``pow2`` and ``fixed`` scales are magnitudes: a negative value is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xsim.config.workload import POW2_MAX_BITS
from xsim.mapping import LayerMapping
from xsim.mapping import Mapping as XMapping

SCALE_FORMATS = ("pow2", "fixed", "float")

def pow2_exponents(bits: int) -> tuple[int, int]:
    """Smallest and largest exponent of a ``pow2`` scale of ``bits`` bits (code 0 is off)."""
    top = (1 << (bits - 1)) - 1
    return -top, top


def quantise_scales(values, format: str, bits: int) -> np.ndarray:  # noqa: A002 (the workload's word)
    """Tier-2 scales ``values`` on the ``format``/``bits`` grid, as float64 (see the module docstring)."""
    if format not in SCALE_FORMATS:
        raise ValueError(f"tier-2 scale format must be one of {SCALE_FORMATS}, got {format!r}")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 1:
        raise ValueError(f"tier-2 scale bits must be a positive integer, got {bits!r}")
    v = np.array(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError("tier-2 scales hold NaN or infinite values")
    if format == "float":
        return v
    if np.any(v < 0):
        raise ValueError(f"{format} tier-2 scales are magnitudes; got a negative value {v.min()}")
    if format == "fixed":
        if bits > 32:
            raise ValueError(f"fixed tier-2 scales take at most 32 bits, got {bits}")
        steps = float(1 << (bits - 1))
        return np.clip(np.rint(v * steps), 0, (1 << bits) - 1) / steps
    if bits > POW2_MAX_BITS:
        raise ValueError(f"pow2 tier-2 scales take at most {POW2_MAX_BITS} bits (exponents beyond "
                         f"float64 otherwise), got {bits}")
    e_min, e_max = pow2_exponents(bits)
    with np.errstate(divide="ignore"):
        e = np.clip(np.rint(np.log2(v)), e_min, e_max)
    return np.where(v < 2.0 ** (e_min - 1), 0.0, np.exp2(e))


def _frozen_array(a: np.ndarray, dtype: type[np.generic]) -> np.ndarray:
    # One private copy in ``dtype``, so freezing it never touches the caller's array.
    a = np.array(a, dtype=dtype)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class TaskMasks:
    """One task's masks: tier-1 PEs, tier-2 column scales and the tier-1 PEs' integer weights.

    ``tier1``: first-instance PE indices of the mapping that hold task weights.  ``tier2``: float64
    scales of length ``mapping.tier2_columns`` (``None``: no tier-2 scaling, every column 1).
    ``task_weights``: layer name → integer weights of the layer's ``weight_shape`` (kept in their
    integer dtype), in the same per-channel scale as the backbone's quantised weights; only the
    entries inside the layer's tier-1 PEs are used, and every layer with a tier-1 PE needs one.
    Instances compare and hash by identity (the functional model caches the packed weights of a
    task per instance); arrays are copied and made read-only.  Check against a mapping with :meth:`validate`.
    """

    tier1: frozenset[int] = frozenset()
    tier2: np.ndarray | None = None
    task_weights: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tier1 = frozenset(self.tier1)
        for p in tier1:
            if isinstance(p, bool) or not isinstance(p, (int, np.integer)):
                raise ValueError(f"tier-1 PE indices must be integers, got {p!r}")
        object.__setattr__(self, "tier1", frozenset(int(p) for p in tier1))
        if self.tier2 is not None:
            tier2 = np.asarray(self.tier2)
            if tier2.ndim != 1 or not np.issubdtype(tier2.dtype, np.number):
                raise ValueError(
                    f"tier-2 scales must be a 1-D numeric array, got shape {tier2.shape} of {tier2.dtype}")
            if not np.all(np.isfinite(tier2)):
                raise ValueError("tier-2 scales hold NaN or infinite values")
            object.__setattr__(self, "tier2", _frozen_array(tier2, np.float64))
        weights = {}
        for name, w in dict(self.task_weights).items():
            w = np.asarray(w)
            if not np.issubdtype(w.dtype, np.integer):
                raise ValueError(f"task weights of layer {name!r} must be integers, got {w.dtype}")
            weights[name] = _frozen_array(w, w.dtype)
        object.__setattr__(self, "task_weights", weights)

    @classmethod
    def identity(cls, mapping: XMapping) -> TaskMasks:
        """No tier-1 PE and every tier-2 scale 1: computes exactly what the backbone does."""
        return cls(tier2=np.ones(mapping.tier2_columns, dtype=np.float64))

    @classmethod
    def from_matrices(cls, mapping: XMapping, tier1: Iterable[int], tier2: np.ndarray | None,
                      matrices: Mapping[str, np.ndarray]) -> TaskMasks:
        """Masks whose task weights are given as mapped (K, N) matrices (layer → int matrix)."""
        weights = {}
        names = {layer.name for layer in mapping.network.weight_layers}
        for name, m in matrices.items():
            if name not in names:
                raise ValueError(f"task weights for {name!r}: no weight layer of "
                                 f"{mapping.network.name!r} has that name")
            layer = mapping.network[name]
            k, n = layer.matrix_shape
            m = np.asarray(m)
            if m.shape != (k, n):
                raise ValueError(f"task weight matrix of layer {name!r} must have shape {(k, n)} "
                                 f"(K, N), got {m.shape}")
            weights[name] = m.T.reshape(layer.weight_shape)
        return cls(tier1=frozenset(tier1), tier2=tier2, task_weights=weights)

    def tier1_in(self, lm: LayerMapping) -> tuple[int, ...]:
        """The tier-1 PEs of one layer, in index order."""
        return tuple(p for p in lm.pes if p in self.tier1)

    def validate(self, mapping: XMapping) -> None:
        """Raise ValueError unless these masks fit ``mapping`` (indices, lengths, weight shapes)."""
        for p in sorted(self.tier1):
            if not 0 <= p < mapping.pe_count:
                raise ValueError(f"tier-1 PE index {p} out of range: the mapping has "
                                 f"{mapping.pe_count} PEs (0 .. {mapping.pe_count - 1})")
            pe = mapping.pes[p]
            if pe.replica != 0:
                first = mapping.pes[mapping.layer(pe.layer).pes[0]].index
                raise ValueError(
                    f"tier-1 PE {p} is replica {pe.replica} of layer {pe.layer!r}; list first-instance "
                    f"PEs only (the layer's start at {first}), replicas follow them")
        if self.tier2 is not None and self.tier2.shape != (mapping.tier2_columns,):
            raise ValueError(f"tier-2 scales must have shape ({mapping.tier2_columns},) (one per "
                             f"tier-2 column of the mapping), got {self.tier2.shape}")
        network = mapping.network
        qmax = (1 << (mapping.weight_bits - 1)) - 1
        for name, w in self.task_weights.items():
            if name not in {lm.layer.name for lm in mapping.layers}:
                raise ValueError(f"task weights for {name!r}: no weight layer of {network.name!r} "
                                 f"has that name")
            shape = network[name].weight_shape
            if w.shape != shape:
                raise ValueError(f"task weights of layer {name!r} must have shape {shape}, got {w.shape}")
            # From the extremes, not np.abs: abs wraps the most negative value of a narrow dtype.
            peak = max(-int(w.min()), int(w.max())) if w.size else 0
            if peak > qmax:
                raise ValueError(f"task weights of layer {name!r} must lie in [-{qmax}, {qmax}] "
                                 f"({mapping.weight_bits}-bit symmetric), got |w| up to {peak}")
        for lm in mapping.layers:
            if self.tier1_in(lm) and lm.layer.name not in self.task_weights:
                raise ValueError(f"layer {lm.layer.name!r} has tier-1 PEs {list(self.tier1_in(lm))} "
                                 f"but no task weights")


@dataclass(frozen=True)
class PeGrid:
    """Which first-instance PE computes each (row group, weight column) partial sum of a layer.

    The crossbar kernel's ``group_rows = row_blocks_per_pe · rows`` gives partial sums per row
    group ``g`` (the PEs' row ranges) for every column ``n``; ``pe[g, n]`` is the PE holding that
    block and ``tier2[g, n]`` its tier-2 column index.
    """

    group_rows: int
    pe: np.ndarray
    tier2: np.ndarray

    @property
    def groups(self) -> int:
        return self.pe.shape[0]


def pe_grid(mapping: XMapping, lm: LayerMapping) -> PeGrid:
    """The :class:`PeGrid` of one layer of ``mapping``."""
    group_rows = lm.row_blocks_per_pe * mapping.arch.crossbar.rows
    groups = -(-lm.row_blocks // lm.row_blocks_per_pe)
    pe = np.full((groups, lm.N), -1, dtype=np.int64)
    tier2 = np.full((groups, lm.N), -1, dtype=np.int64)
    for index in lm.pes[: lm.pes_per_replica]:
        p = mapping.pes[index]
        g = p.row_start // group_rows
        pe[g, p.col_start : p.col_stop] = p.index
        tier2[g, p.col_start : p.col_stop] = p.tier2_offset + np.arange(p.weight_columns)
    return PeGrid(group_rows=group_rows, pe=pe, tier2=tier2)


def task_masks_from_tasks(tasks: Any, task: str) -> TaskMasks | None:
    """A :class:`TaskMasks` of one task of an :class:`xsim.mta.tasks.TaskSet` (``None``: the backbone).

    Tier 1 and tier 2 are the task set's; the layers of the tier-1 PEs take the task's fine-tuned
    integer weights.  The task's head (its classifier, written over the first columns of the head
    layer) joins tier 1: the head layer's PEs whose columns meet ``[0, classes)`` hold the backbone
    head with those columns replaced, and the head layer is not tier-2 scaled (every scale 1).
    """
    mapping = tasks.mapping
    if task == tasks.workload.backbone.name:
        return None
    head = mapping.layer(tasks.head_layer)
    head_matrix = np.array(tasks.backbone[head.layer.name], dtype=np.int64)
    head_task = np.asarray(tasks.head_weights(task), dtype=np.int64)
    head_matrix[:, : head_task.shape[1]] = head_task
    tier1 = set(tasks.tier1[task])
    matrices = {head.layer.name: head_matrix}
    # The narrowest type that holds the weights: the masks keep a private copy of each layer.
    narrow = np.min_scalar_type(-tasks.limit)
    for lm in mapping.layers:
        if lm is not head and any(p in tier1 for p in lm.pes):
            matrices[lm.layer.name] = tasks.task_weights(task, lm.layer.name).astype(narrow)
    tier1.update(p for p in head.pes[: head.pes_per_replica] if mapping.pes[p].col_start < head_task.shape[1])
    tier2 = tasks.tier2.get(task)
    if tier2 is not None:
        tier2 = np.array(tier2, dtype=np.float64)
        for p in head.pes[: head.pes_per_replica]:
            pe = mapping.pes[p]
            tier2[pe.tier2_offset : pe.tier2_offset + pe.weight_columns] = 1.0
    return TaskMasks.from_matrices(mapping, tier1, tier2, matrices)
