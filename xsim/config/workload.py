"""Workload configuration: the typed, frozen form of a ``workloads/*.json`` file.

A workload says what runs on an architecture: the model (a zoo name or an explicit layer list, with
synthetic seeded weights or an ``.npz``), its precision, and the multi-task scenario — the backbone
task and the new tasks with their tier-1 and tier-2 specs and heads, the schedule of task visits,
and the adaptation strategies to compare on it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from xsim.config.arch import Frozen, PositiveFloat, PositiveInt
from xsim.config.limits import MAX_SCHEDULE_VISITS
from xsim.strategies import SIMULATED
from xsim.text import shown

STRATEGIES = SIMULATED
SELECTION_POLICIES = ("random", "largest_change", "uniform_layers")

Ratio = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
BitCount = Annotated[int, Field(ge=2, le=16)]


class SyntheticWeights(Frozen):
    kind: Literal["synthetic"] = "synthetic"
    """synthetic: seeded He-normal weights."""
    seed: Annotated[int, Field(ge=0)] = 0
    """seed of the weights."""


class NpzWeights(Frozen):
    kind: Literal["npz"]
    """npz: weights from a file."""
    path: str
    """.npz file beside the workload, keys <layer>.weight and <layer>.bias."""


class OnnxWeights(Frozen):
    """The weights inside the model's ONNX file (the default for a ``model.onnx``)."""

    kind: Literal["onnx"]
    """onnx: the weights inside model.onnx."""


WEIGHT_KINDS = ("synthetic", "npz", "onnx")
"""The ``kind`` values of ``model.weights``."""


class ModelSpec(Frozen):
    """``zoo`` names a zoo network; ``layers`` lists an explicit one (see xsim.models.zoo);
    ``onnx`` names an ONNX file (graph and weights, see xsim.importers.onnx)."""

    zoo: str | None = None
    """a zoo network: lenet5, mlp, resnet20, resnet50, ...."""
    onnx: str | None = None
    """an .onnx file beside the workload (graph and weights)."""
    name: str | None = None
    """the network's name (needed with layers)."""
    layers: tuple[dict[str, Any], ...] | None = None
    """an explicit layer list (see the layer kinds below)."""
    input_shape: tuple[PositiveInt, PositiveInt, PositiveInt] | None = None
    """(channels, height, width) of one image (needed with layers)."""
    num_classes: PositiveInt | None = None
    """classes of a zoo network's head."""
    weights: SyntheticWeights | NpzWeights | OnnxWeights = Field(
        default_factory=SyntheticWeights, discriminator="kind")
    """Where the backbone's weights come from: kind synthetic, npz or onnx."""

    @model_validator(mode="before")
    @classmethod
    def _onnx_weights_by_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("onnx") is not None and "weights" not in data:
            return {**data, "weights": {"kind": "onnx"}}
        return data

    @model_validator(mode="after")
    def _one_source(self):
        sources = [k for k in ("zoo", "layers", "onnx") if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of 'zoo' (a zoo model name), 'layers' (a list) or "
                             f"'onnx' (an .onnx file); got {', '.join(sources) or 'none'}")
        if self.layers is not None and (self.input_shape is None or self.name is None):
            raise ValueError("an explicit 'layers' model also needs 'name' and 'input_shape'")
        if self.onnx is not None and self.input_shape is not None:
            raise ValueError("input_shape: an 'onnx' model takes its input shape from the file")
        if self.weights.kind == "onnx" and self.onnx is None:
            raise ValueError("weights: kind 'onnx' reads the weights of the model's 'onnx' "
                             "file; this model names none")
        return self


class WorkloadPrecision(Frozen):
    weight_bits: BitCount | None = None
    """weight precision (default: the arch's)."""
    input_bits: BitCount | None = None
    """input precision (default: the arch's)."""


class Tier1Spec(Frozen):
    """Tier-1 PE mask: a ``pe_budget`` fraction of the PEs chosen by ``policy``, or a mask file."""

    pe_budget: Ratio = 0.0
    """fraction of the tier-1 candidate PEs a switch rewrites."""
    policy: Literal["random", "largest_change", "uniform_layers"] = "random"
    """how the PEs are chosen: random, largest_change, uniform_layers."""
    mask_file: str | None = None
    """.npz with the PE mask (overrides pe_budget and policy)."""


POW2_MAX_BITS = 10
"""Widest ``pow2`` scale code: 2**(bits-1) exponents either side of 1 stay inside float64."""


class Tier2Spec(Frozen):
    """Tier-2 column scales: ``pow2`` shift levels (0 = column off), ``fixed`` k-bit, or ``float``."""

    format: Literal["pow2", "fixed", "float"] = "pow2"
    """scale format: pow2 (shift levels), fixed (k-bit) or float (ideal)."""
    bits: Annotated[int, Field(ge=1, le=16)] = 4
    """bits of one scale."""
    scales_file: str | None = None
    """.npz with the column scales."""

    @model_validator(mode="after")
    def _width_fits_the_format(self):
        if self.format == "pow2" and self.bits > POW2_MAX_BITS:
            raise ValueError(f"bits: pow2 scales take at most {POW2_MAX_BITS} bits (got "
                             f"{self.bits}): wider shift codes leave float64's exponent range")
        return self


class WeightChange(Frozen):
    """How task weights differ from the backbone's when no weights file is given.

    Each weight of a tier-1 PE changes with probability ``fraction``; a changed weight moves by a
    normal step of ``sigma_lsb · g`` least-significant bits (rounded, clipped to the weight
    range), where ``g`` is a gain of the (task, PE): log-normal, ``ln g ~ N(-s²/2, s²)`` with
    ``s = pe_spread`` (mean 1), drawn per task for every first-instance PE. A task thus needs
    some PEs much more than others, and different tasks need different PEs. With ``pe_spread: 0``
    (the default) every weight changes alike; ``largest_change`` then still picks different PEs
    per task, by the sampling noise of each task's changes (on the bundled ResNet-50 scenario two
    tasks' choices share 3-11 % of their PEs, Jaccard index). An element-wise (Piggyback-style)
    mask switches off a ``masked_fraction`` of the weights.
    """

    fraction: Ratio = 0.5
    """probability that a weight of a rewritten PE changes."""
    sigma_lsb: PositiveFloat = 4.0
    """standard deviation of a change."""
    masked_fraction: Ratio = 0.1
    """fraction of weights an element-wise mask switches off."""
    pe_spread: Annotated[float, Field(ge=0.0, le=4.0, allow_inf_nan=False)] = 0.0
    """σ of the log of a (task, PE) gain on the change size (an assumption; 0: i.i.d.)."""


class HeadSpec(Frozen):
    num_classes: PositiveInt
    """classes of this task's classifier (at most the head layer's outputs)."""


class TaskSpec(Frozen):
    name: Annotated[str, Field(min_length=1)]
    """the task's name."""
    backbone: bool = False
    """the task the crossbars hold at first (exactly one)."""
    head: HeadSpec
    """its classifier."""
    inferences_per_visit: PositiveInt = 1
    """images inferred each time the schedule visits the task."""
    tier1: Tier1Spec = Field(default_factory=Tier1Spec)
    """tier-1 PE mask."""
    tier2: Tier2Spec = Field(default_factory=Tier2Spec)
    """tier-2 column scales."""
    weight_change: WeightChange = Field(default_factory=WeightChange)
    """synthetic task weights when no weights_file is given."""
    weights_file: str | None = None
    """.npz of task weights, keys <layer>.task_weight (integer codes)."""
    test_file: str | None = None
    """``.npz`` of the task's labelled test images: ``x`` (B, C, H, W) float in the network's input
    units, ``y`` (B,) integer classes below ``head.num_classes``, optionally ``calibration``
    (N, C, H, W) training images for the activation scales; ``xsim run --lifetime`` then measures
    accuracy on them."""


class ScheduleSpec(Frozen):
    """Task visits: ``round_robin`` over ``order`` (default: every non-backbone task) for
    ``periods`` periods, or an explicit ``visits`` list of task names."""

    kind: Literal["round_robin", "explicit"] = "round_robin"
    """round_robin over order, or explicit visits."""
    periods: Annotated[int, Field(gt=0, le=MAX_SCHEDULE_VISITS)] = 1
    """round-robin periods."""
    order: tuple[str, ...] | None = None
    """task order of a period (default every new task)."""
    visits: tuple[str, ...] | None = None
    """the task of every visit (explicit)."""
    switches_per_hour: PositiveFloat = 1.0
    """task switches per hour, for lifetimes in hours."""

    @model_validator(mode="after")
    def _shape(self):
        if self.kind == "explicit" and not self.visits:
            raise ValueError("an 'explicit' schedule needs a non-empty 'visits' list")
        if self.kind == "round_robin" and self.visits is not None:
            raise ValueError("'visits' belongs to an 'explicit' schedule; use 'order' here")
        return self


class MappingSpec(Frozen):
    """``replication``: ``auto`` (or true) spends the PEs left after the resident heads on
    replicas of the layers that bound the pipeline (ISAAC), false keeps one copy of every layer.
    ``resident_heads``: keep every task's head in spare PEs of its own, so a switch does not
    rewrite the classifier."""

    replication: bool | Literal["auto"] = False
    """give the PEs left after the heads to the layers that bound the pipeline (ISAAC)."""
    resident_heads: bool = True
    """each task's head in spare PEs of its own."""

    @property
    def replicate(self) -> bool:
        return self.replication is not False


class Workload(Frozen):
    name: str
    """the workload's name in reports."""
    description: str = ""
    """free text."""
    seed: Annotated[int, Field(ge=0)] = 0
    """seed of every random stream of the run."""
    model: ModelSpec
    """the network."""
    precision: WorkloadPrecision = Field(default_factory=WorkloadPrecision)
    """precision (default: the arch's)."""
    batch: PositiveInt = 1
    """images in flight in the pipelined run."""
    mapping: MappingSpec = Field(default_factory=MappingSpec)
    """mapping options."""
    tasks: tuple[TaskSpec, ...] = Field(min_length=1)
    """the backbone task and the new tasks."""
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    """the order of task visits."""
    strategies: tuple[Literal[STRATEGIES], ...] = Field(default=STRATEGIES, min_length=1)
    """adaptation strategies to compare."""
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self):
        names = [t.name for t in self.tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"task names must be unique; repeated: {shown(duplicates)}")
        backbones = [t.name for t in self.tasks if t.backbone]
        if len(backbones) != 1:
            raise ValueError(f"exactly one task must have \"backbone\": true, found "
                             f"{shown(backbones)}")
        for key in ("order", "visits"):
            for name in getattr(self.schedule, key) or ():
                if name not in names:
                    raise ValueError(f"schedule.{key} names unknown task {shown(name)}; "
                                     f"tasks are {shown(names)}")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError("strategies must not repeat")
        order = self.schedule.order or [t for t in self.tasks if not t.backbone]
        steps = len(self.schedule.visits or ()) or len(order) * self.schedule.periods
        if steps > MAX_SCHEDULE_VISITS:
            raise ValueError(f"the schedule has {steps} task visits; at most {MAX_SCHEDULE_VISITS} "
                             "(MAX_SCHEDULE_VISITS): fewer periods or a shorter order")
        return self

    @property
    def backbone(self) -> TaskSpec:
        return next(t for t in self.tasks if t.backbone)

    @property
    def new_tasks(self) -> tuple[TaskSpec, ...]:
        return tuple(t for t in self.tasks if not t.backbone)

    def task(self, name: str) -> TaskSpec:
        return next(t for t in self.tasks if t.name == name)

    def visits(self) -> tuple[str, ...]:
        """The task visited at each step of the schedule, in order."""
        if self.schedule.kind == "explicit":
            return self.schedule.visits
        order = self.schedule.order or tuple(t.name for t in self.new_tasks)
        return tuple(order) * self.schedule.periods

    def weight_bits(self, arch_default: int) -> int:
        return self.precision.weight_bits or arch_default

    def input_bits(self, arch_default: int) -> int:
        return self.precision.input_bits or arch_default
