"""The adaptation strategies, as one table of data.

A strategy says what the crossbars hold while a new task runs (``rewrites``), whether the other
PEs' columns are rescaled by tier 2 (``scales``), how its tier-1 PEs are chosen (``tier1``) and
what it costs beyond the writes. The config validates a workload's or learning spec's strategy
names against this table; the multi-task model (:mod:`xsim.mta.scenario`), the learning code
(:mod:`xsim.learn.method`) and the report read their rules from it. Adding a strategy is one
entry here plus, where it rewrites in a new way, its rule where ``rewrites`` is read.

``rewrites``:

* ``all``: the task's fine-tuned weights in every PE (full fine-tuning);
* ``tier1``: the task's weights in its tier-1 PEs, the backbone elsewhere;
* ``elementwise``: the backbone with the task's element-wise (Piggyback-style) mask applied,
  which on a crossbar means rewriting every masked cell;
* ``none``: the backbone everywhere (only the task's head and, with ``scales``, tier 2 differ).

``tier1`` (how the PEs of a ``tier1`` strategy are chosen): ``budget`` — a PE budget and the
task's selection policy (or, in learning, learned scores); ``random`` — the same budget drawn at
random (a learning baseline); ``all`` and ``none`` for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Strategy:
    name: str
    label: str
    rewrites: Literal["all", "tier1", "elementwise", "none"]
    scales: bool
    tier1: Literal["budget", "random", "all", "none"]
    simulated: bool
    """costed by the multi-task model of ``xsim run`` (the others are learning baselines)"""
    description: str

    @property
    def budgeted(self) -> bool:
        """Its tier-1 PE count comes from a PE budget."""
        return self.tier1 in ("budget", "random")

    @property
    def uses_tier1_mask(self) -> bool:
        return self.rewrites == "tier1"

    @property
    def rewrites_all(self) -> bool:
        return self.rewrites in ("all", "elementwise")


TABLE: tuple[Strategy, ...] = (
    Strategy("full_finetune", "full fine-tune", "all", False, "all", True,
             "every PE rewritten with the task's fine-tuned weights"),
    Strategy("tier1_only", "tier 1 only", "tier1", False, "budget", True,
             "the task's tier-1 PEs rewritten, no column scaling"),
    Strategy("tier2_only", "tier 2 only", "none", True, "none", True,
             "no cell written: every non-head PE's columns scaled"),
    Strategy("xma2", "XMA2", "tier1", True, "budget", True,
             "tier-1 PEs rewritten, every other frozen PE's columns scaled"),
    Strategy("elementwise", "element-wise mask", "elementwise", False, "all", True,
             "Piggyback-style per-weight masks: every masked cell rewritten"),
    Strategy("random_tier1", "random tier 1 + tier 2", "tier1", True, "random", False,
             "as XMA2 with the tier-1 PEs drawn at random (a learning baseline)"),
    Strategy("head_only", "head only", "none", False, "none", False,
             "only the task's head trained (a learning baseline)"),
)
BY_NAME: dict[str, Strategy] = {s.name: s for s in TABLE}
SIMULATED: tuple[str, ...] = tuple(s.name for s in TABLE if s.simulated)
"""The strategies ``xsim run`` compares, in report order."""
ALL: tuple[str, ...] = tuple(s.name for s in TABLE)


def strategy(name: str) -> Strategy:
    """The table entry of ``name``; a KeyError naming the known strategies otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; the strategies are {', '.join(ALL)}") from None
