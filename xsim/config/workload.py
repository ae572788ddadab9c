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
    seed: Annotated[int, Field(ge=0)] = 0


class NpzWeights(Frozen):
    kind: Literal["npz"]
    path: str


class ModelSpec(Frozen):
    """``zoo`` names a zoo network; ``layers`` lists an explicit one (see xsim.models.zoo)."""

    zoo: str | None = None
    name: str | None = None
    layers: tuple[dict[str, Any], ...] | None = None
    input_shape: tuple[PositiveInt, PositiveInt, PositiveInt] | None = None
    num_classes: PositiveInt | None = None
    weights: SyntheticWeights | NpzWeights = Field(default_factory=SyntheticWeights,
                                                   discriminator="kind")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.zoo is None) == (self.layers is None):
            raise ValueError("give exactly one of 'zoo' (a zoo model name) or 'layers' (a list)")
        if self.layers is not None and (self.input_shape is None or self.name is None):
            raise ValueError("an explicit 'layers' model also needs 'name' and 'input_shape'")
        return self


class WorkloadPrecision(Frozen):
    weight_bits: BitCount | None = None
    input_bits: BitCount | None = None


class Tier1Spec(Frozen):
    """Tier-1 PE mask: a ``pe_budget`` fraction of the PEs chosen by ``policy``, or a mask file."""

    pe_budget: Ratio = 0.0
    policy: Literal["random", "largest_change", "uniform_layers"] = "random"
    mask_file: str | None = None


POW2_MAX_BITS = 10
"""Widest ``pow2`` scale code: 2**(bits-1) exponents either side of 1 stay inside float64."""


class Tier2Spec(Frozen):
    """Tier-2 column scales: ``pow2`` shift levels (0 = column off), ``fixed`` k-bit, or ``float``."""

    format: Literal["pow2", "fixed", "float"] = "pow2"
    bits: Annotated[int, Field(ge=1, le=16)] = 4
    scales_file: str | None = None

    @model_validator(mode="after")
    def _width_fits_the_format(self):
        if self.format == "pow2" and self.bits > POW2_MAX_BITS:
            raise ValueError(f"bits: pow2 scales take at most {POW2_MAX_BITS} bits (got "
                             f"{self.bits}): wider shift codes leave float64's exponent range")
        return self


class WeightChange(Frozen):
    """How task weights differ from the backbone's when no weights file is given.

    Each weight of a tier-1 PE changes with probability ``fraction``; a changed weight moves by a
    normal step of ``sigma_lsb`` least-significant bits (rounded, clipped to the weight range).
    An element-wise (Piggyback-style) mask switches off a ``masked_fraction`` of the weights.
    """

    fraction: Ratio = 0.5
    sigma_lsb: PositiveFloat = 4.0
    masked_fraction: Ratio = 0.1


class HeadSpec(Frozen):
    num_classes: PositiveInt


class TaskSpec(Frozen):
    name: Annotated[str, Field(min_length=1)]
    backbone: bool = False
    head: HeadSpec
    inferences_per_visit: PositiveInt = 1
    tier1: Tier1Spec = Field(default_factory=Tier1Spec)
    tier2: Tier2Spec = Field(default_factory=Tier2Spec)
    weight_change: WeightChange = Field(default_factory=WeightChange)
    weights_file: str | None = None


class ScheduleSpec(Frozen):
    """Task visits: ``round_robin`` over ``order`` (default: every non-backbone task) for
    ``periods`` periods, or an explicit ``visits`` list of task names."""

    kind: Literal["round_robin", "explicit"] = "round_robin"
    periods: Annotated[int, Field(gt=0, le=MAX_SCHEDULE_VISITS)] = 1
    order: tuple[str, ...] | None = None
    visits: tuple[str, ...] | None = None
    switches_per_hour: PositiveFloat = 1.0

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
    resident_heads: bool = True

    @property
    def replicate(self) -> bool:
        return self.replication is not False


class Workload(Frozen):
    name: str
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    model: ModelSpec
    precision: WorkloadPrecision = Field(default_factory=WorkloadPrecision)
    batch: PositiveInt = 1
    mapping: MappingSpec = Field(default_factory=MappingSpec)
    tasks: tuple[TaskSpec, ...] = Field(min_length=1)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    strategies: tuple[Literal[STRATEGIES], ...] = Field(default=STRATEGIES, min_length=1)
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
