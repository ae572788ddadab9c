"""A task switch and the new task's first inference in one engine run.

The reprogramming controller's per-PE rewrite intervals (:mod:`xsim.mta.controller`) block the
engine's PE groups (one per layer replica) until their last crossbar is written; the new task's
first image starts with the switch, so layers whose PEs are not rewritten serve at once and a
rewritten layer serves as soon as its rewrite ends. The result is the time from the switch's
start to the first result of the new task, against the sequential bound (switch latency plus
one inference), and the merged timeline for the report. Loading the tier-2 scales uses the eDRAM
and the scale registers, not the write drivers, so it runs concurrently with the rewrites.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xsim.deployment import Deployment
from xsim.engine import ChipModel, Environment
from xsim.mta.controller import Rewrite
from xsim.mta.scenario import MtaResult, scaled_pes
from xsim.mta.tasks import TaskSet


@dataclass(frozen=True)
class SwitchThenInfer:
    first_result_ps: int
    switch_latency_ps: int
    timeline: tuple[dict, ...]


@dataclass(frozen=True)
class FirstSwitch:
    """A strategy's first switch of the schedule and the new task's first result after it."""

    strategy: str
    source: str
    target: str
    switch_latency_ps: int
    first_result_ps: int
    sequential_bound_ps: int
    """the switch and then one inference, back to back"""


def switch_then_infer(deployment: Deployment, rewrites: list[Rewrite],
                      scaled_pes: frozenset[int], scale_load_ps: int = 0) -> SwitchThenInfer:
    """Run the rewrites and one image, which starts once the tier-2 scales are loaded
    (``scale_load_ps``, concurrent with the rewrites: eDRAM and scale registers, not the write
    drivers)."""
    env = Environment()
    mapping = deployment.mapping
    chip = ChipModel(env, deployment, scaled_pes=scaled_pes, record_timeline=True)
    release: dict[int, tuple] = {}
    for rw in rewrites:
        group = chip.group_of_pe[rw.pe]
        end = max(rw.end_ps, release.get(id(group), (group, 0))[1])
        release[id(group)] = (group, end)

    def hold(group, until_ps):
        yield from group.take()
        yield env.timeout(until_ps - env.now)
        group.give_back()

    for group, end in release.values():
        env.process(hold(group, end))
    batch = chip.infer(1, start_ps=scale_load_ps)
    env.run(until=batch.done)
    chip.close()
    order = {lm.layer.name: i for i, lm in enumerate(mapping.layers)}
    events = [{"start_ps": rw.start_ps, "end_ps": rw.end_ps, "layer": mapping.pes[rw.pe].layer,
               "layer_index": mapping.pes[rw.pe].layer_index, "tile": mapping.pes[rw.pe].tile,
               "kind": "rewrite"} for rw in rewrites]
    events += [{"start_ps": s, "end_ps": e, "layer": layer, "layer_index": order.get(layer, len(order)),
                "tile": tile, "kind": "inference"}
               for s, e, layer, tile, kind in chip.timeline if kind == "mvm" and e > s]
    latency = max(max((rw.end_ps for rw in rewrites), default=0), scale_load_ps)
    return SwitchThenInfer(batch.image_done_ps[0], latency, tuple(events))


def first_switch_runs(deployment: Deployment, mta: MtaResult, tasks: TaskSet,
                      submit=None) -> Callable[[], tuple[list[FirstSwitch], tuple[dict, ...]]]:
    """Per strategy, its first switch and the new task's first inference in one engine run (PEs
    being rewritten cannot serve; the others can). ``submit(fn, *args)`` starts each run
    as ``fn(deployment, *args)`` (:meth:`xsim.engine.parallel.EngineRuns.submit`; default: in
    this process when asked for);
    the returned function collects them: the rows and XMA2's timeline (or the first strategy's
    when XMA2 is not compared)."""
    # The first visit that changes task (a schedule may revisit the backbone first, or repeat).
    first = next(((a, b) for a, b in zip(mta.sequence, mta.sequence[1:]) if a != b), None)
    if first is None:
        return lambda: ([], ())
    source, target = first
    if submit is None:
        from xsim.engine.parallel import EngineRuns

        submit = EngineRuns(deployment, workers=1).submit
    runs = []
    for strategy in deployment.workload.strategies:
        sw = mta.switches[(strategy, source, target)]
        runs.append((strategy, submit(switch_then_infer, list(sw.rewrites),
                                      scaled_pes(strategy, target, deployment, tasks),
                                      sw.scale_load_ps)))

    def collect() -> tuple[list[FirstSwitch], tuple[dict, ...]]:
        rows, timeline = [], ()
        for strategy, handle in runs:
            run = handle.result()
            rows.append(FirstSwitch(strategy, source, target, run.switch_latency_ps,
                                    run.first_result_ps, run.switch_latency_ps
                                    + mta.inference[(strategy, target)]["latency_ps"]))
            if strategy == "xma2" or not timeline:
                timeline = run.timeline
        return rows, timeline

    return collect
