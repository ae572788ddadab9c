"""One call that runs a batch of pipelined images through a fresh chip and returns the result."""

from __future__ import annotations

from collections.abc import Iterable

from xsim.deployment import Deployment
from xsim.engine.chip import ChipModel
from xsim.engine.result import InferenceResult, collect
from xsim.engine.servers import Environment


def simulate_inference(deployment: Deployment, *, images: int = 1,
                       mode: str = "coarse", scaled_pes: Iterable[int] = frozenset(),
                       record_timeline: bool = True) -> InferenceResult:
    """Simulate ``images`` pipelined inferences of the deployment from time 0.

    ``mode`` is ``"coarse"`` (one event per layer replica and output row) or ``"fine"`` (one per
    MVM, for small networks); ``scaled_pes`` are the PEs whose columns go through tier-2 scaling.
    """
    env = Environment()
    chip = ChipModel(env, deployment, mode=mode, scaled_pes=scaled_pes,
                     record_timeline=record_timeline)
    try:
        batch = chip.infer(images)
        env.run(until=batch.done)
        return collect(chip, batch, mode, env.scheduled)
    finally:
        chip.close()


def simulate_scaled(deployment: Deployment, scaled_sets: Iterable[Iterable[int]], *,
                    images: int = 1) -> list[InferenceResult]:
    """``simulate_inference`` of ``images`` images for each set of tier-2-scaled PEs, without a
    timeline, running the engine once per distinct :func:`~xsim.engine.chip.tier2_timing`:
    sets under which every replica waits as long for its scaling give the same run and differ
    only in the scaled columns they count (:meth:`ChipModel.recount_scaled_pes`)."""
    sets = [frozenset(s) for s in scaled_sets]
    out: dict[frozenset[int], InferenceResult] = {}
    for group in same_tier2_timing(deployment, sets):
        env = Environment()
        chip = ChipModel(env, deployment, scaled_pes=group[0], record_timeline=False)
        try:
            batch = chip.infer(images)
            env.run(until=batch.done)
            for pes in group:
                chip.recount_scaled_pes(pes)
                out[pes] = collect(chip, batch, "coarse", env.scheduled)
        finally:
            chip.close()
    return [out[pes] for pes in sets]


def same_tier2_timing(deployment: Deployment,
                      scaled_sets: Iterable[frozenset[int]]) -> list[list[frozenset[int]]]:
    """The distinct sets of tier-2-scaled PEs grouped by the run they give (their
    :func:`~xsim.engine.chip.tier2_timing`), in first-seen order."""
    from xsim.engine.chip import tier2_timing
    from xsim.engine.plan import build_plan

    plan = deployment.derived("engine.plan", build_plan)
    groups: dict[tuple, list[frozenset[int]]] = {}
    for pes in dict.fromkeys(scaled_sets):
        groups.setdefault(tier2_timing(plan, pes), []).append(pes)
    return list(groups.values())
