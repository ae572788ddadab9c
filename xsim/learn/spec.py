"""Learning specification: the typed, frozen form of a ``workloads/learn_*.json`` file.

A learning spec says what ``xsim learn`` trains and how: the data set and its adaptation tasks, the
network (an explicit layer list, as a workload's ``model.layers``), the arch overrides that give the
network enough PEs for the PE-level choice to mean something, the precision, the training settings
of the backbone and of the tasks, the tier-2 scale format, the PE budgets and strategies of the
frontier, and which budget the exported workload uses.  Relative paths inside it resolve beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from xsim.config.arch import Frozen, PositiveFloat, PositiveInt
from xsim.config.limits import MAX_TRAINING_EPOCHS
from xsim.config.loader import build, read_document
from xsim.config.workload import BitCount, Ratio
from xsim.strategies import strategy

LEARN_STRATEGIES = ("xma2", "tier1_only", "tier2_only", "random_tier1", "full_finetune",
                    "head_only", "elementwise")
# Strategies whose tier-1 PE count comes from the budget; the others have none or all PEs.
BUDGETED = tuple(s for s in LEARN_STRATEGIES if strategy(s).budgeted)
TRANSFORMS = ("identity", "rot90", "rot180", "flip", "invert", "permute")


class TaskData(Frozen):
    """One adaptation task: the source images under ``transform`` (``permute``: a fixed pixel
    permutation drawn from the data seed and the task's position)."""

    name: Annotated[str, Field(min_length=1)]
    """the task's name (its workload task when exported)."""
    transform: Literal[TRANSFORMS]
    """how the task's images derive from the source images."""


class DataSpec(Frozen):
    """``digits``: scikit-learn's 1797 8×8 handwritten digits (shipped inside its wheel)."""

    dataset: Literal["digits"] = "digits"
    """the source data set."""
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    """share of every class held out for testing (a stratified split)."""
    seed: Annotated[int, Field(ge=0)] = 0
    """seed of the split and of the permutation tasks."""
    backbone: Annotated[str, Field(min_length=1)] = "digits"
    """name of the source task the backbone learns."""
    tasks: tuple[TaskData, ...] = Field(min_length=1)
    """the adaptation tasks."""


class LearnModel(Frozen):
    """The network learned, as a workload's explicit layer list."""

    name: Annotated[str, Field(min_length=1)]
    """the network's name."""
    input_shape: tuple[PositiveInt, PositiveInt, PositiveInt]
    """(channels, height, width) of one image."""
    layers: tuple[dict[str, Any], ...] = Field(min_length=1)
    """the layers, as a workload's model.layers."""


class Training(Frozen):
    """Adam, ``lr`` for scores, scales, heads and normalisation, ``weight_lr`` for weights."""

    epochs: Annotated[int, Field(gt=0, le=MAX_TRAINING_EPOCHS)]
    """passes over the training images."""
    batch: PositiveInt = 64
    """images per step."""
    lr: PositiveFloat = 1e-2
    """Adam's step for PE scores, heads and normalisation."""
    weight_lr: PositiveFloat = 1e-3
    """Adam's step for the weights."""


class TaskTraining(Training):
    """``scale_lr``: Adam's step for tier-2 scales. ``freeze_fraction``: the last fraction of
    epochs trains with the tier-1 mask fixed. ``write_penalty``: weight of the selected PEs' mean
    weight change (in LSBs) in the loss."""

    scale_lr: PositiveFloat = 2e-3
    """Adam's step for the tier-2 scales."""
    freeze_fraction: Ratio = 0.3
    """last share of the epochs trained with the tier-1 mask fixed."""
    write_penalty: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.0
    """weight of the selected PEs' mean weight change (LSB) in the loss."""


class Tier2Format(Frozen):
    """The tier-2 scale format learned (as a workload task's tier2)."""

    format: Literal["pow2", "fixed", "float"] = "pow2"
    """pow2 shift levels, fixed-point, or float (the ideal reference)."""
    bits: Annotated[int, Field(ge=1, le=10)] = 4
    """bits of one scale code."""


class ExportSpec(Frozen):
    """Which learned XMA2 masks the exported workload carries, and its schedule."""

    pe_budget: Ratio = 0.1
    """the PE budget whose XMA2 masks are exported (one of budgets)."""
    periods: PositiveInt = 2
    """round-robin periods of the exported workload's schedule."""


class EvalSpec(Frozen):
    """Bit-accurate evaluation: test images (0 = all) and activation calibration images."""

    test_images: Annotated[int, Field(ge=0)] = 0
    """test images run through the crossbar model (0: all)."""
    calibration_images: PositiveInt = 64
    """training images that calibrate the activation scales."""


class LearnSpec(Frozen):
    """A learning study: data, network, training, the strategies and budgets compared, export."""

    name: Annotated[str, Field(min_length=1)]
    """the study's name (the exported workload's too)."""
    description: str = ""
    """free text."""
    seed: Annotated[int, Field(ge=0)] = 0
    """seed of the training runs."""
    arch_overrides: dict[str, Any] = Field(default_factory=dict)
    """dotted arch keys applied to the arch file (e.g. small crossbars)."""
    model: LearnModel
    """the network."""
    precision: dict[Literal["weight_bits", "input_bits"], BitCount] = Field(
        default_factory=lambda: {"weight_bits": 8, "input_bits": 8})
    """weight and input bits."""
    data: DataSpec
    """the source data and the tasks."""
    backbone_training: Training
    """training of the backbone on the source task."""
    task_training: TaskTraining
    """training of every strategy on every task."""
    tier2: Tier2Format = Field(default_factory=Tier2Format)
    """the tier-2 scale format."""
    budgets: tuple[Ratio, ...] = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)
    """tier-1 PE budgets of the budgeted strategies."""
    strategies: tuple[Literal[LEARN_STRATEGIES], ...] = LEARN_STRATEGIES
    """the strategies compared (xma2 among them)."""
    export: ExportSpec = Field(default_factory=ExportSpec)
    """what the exported workload carries."""
    evaluation: EvalSpec = Field(default_factory=EvalSpec)
    """the bit-accurate evaluation."""
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self):
        names = [self.data.backbone] + [t.name for t in self.data.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names (backbone first) must be unique, got {names}")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError("strategies must not repeat")
        if "xma2" not in self.strategies:
            raise ValueError("strategies must include 'xma2' (the exported masks are XMA2's)")
        if len(set(self.budgets)) != len(self.budgets) or not self.budgets:
            raise ValueError("budgets must be a non-empty list without repeats")
        if self.export.pe_budget not in self.budgets:
            raise ValueError(f"export.pe_budget {self.export.pe_budget} must be one of the "
                             f"budgets {list(self.budgets)}")
        return self


def load_learn_spec(path: str | Path) -> LearnSpec:
    """Read and validate a learning spec; every problem is a ConfigError(path, key, message)."""
    data = read_document(path)
    return build(LearnSpec, data, str(path))

