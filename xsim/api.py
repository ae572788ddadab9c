"""The public entry point: ``xsim.simulate(arch, workload)`` and the result it returns.

Data flows one way: files → validated config (built once) → deployment (mapping, hardware,
heads, tier-1 candidates, tier-2 columns) → engine (inference timing and energy) → multi-task
adaptation (every strategy on the schedule) → optionally the bit-accurate functional model →
typed results. Each stage lives in its own module; this one only wires them together. Tables and
``summary.json`` are made from the result by :mod:`xsim.report.tables`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from xsim.config import Arch, ConfigError, Workload, resolve_path
from xsim.config.limits import DEFAULT_MAX_WORK, check_work, estimate_work
from xsim.deployment import Deployment
from xsim.energy import Hardware
from xsim.mapping import Mapping
from xsim.models import Network
from xsim.processes import one_blas_thread

Progress = Callable[[Iterable, str], Iterable]

# Activation scales of the bit-accurate model are calibrated on this many synthetic images per
# task: the scale is the largest activation seen, which two images already bound closely.
CALIBRATION_IMAGES = 2


@dataclass(frozen=True)
class SimulationResult:
    """Everything one run produced, as typed results of the models."""

    deployment: Deployment
    backbone: Any
    """the pipelined batch of backbone images (:class:`xsim.engine.InferenceResult`)"""
    mta: Any
    """every strategy on the schedule (:class:`xsim.mta.scenario.MtaResult`)"""
    first_switch: tuple
    """per strategy, its first switch and first result (:class:`xsim.mta.overlap.FirstSwitch`)"""
    timeline: tuple[dict, ...]
    functional_tasks: tuple[dict, ...] | None = None
    functional_layers: tuple[dict, ...] | None = None
    lifetime: tuple[dict, ...] | None = None
    """with ``lifetime``: top-1 agreement per strategy, task and period (:mod:`xsim.mta.lifetime`)"""
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    """wall seconds per stage (deployment, engine, writes, functional); never in summary.json,
    which must not change between reruns"""

    @property
    def arch(self) -> Arch:
        return self.deployment.arch

    @property
    def workload(self) -> Workload:
        return self.deployment.workload

    @property
    def network(self) -> Network:
        return self.deployment.network

    @property
    def mapping(self) -> Mapping:
        return self.deployment.mapping

    @property
    def hardware(self) -> Hardware:
        return self.deployment.hardware

    @cached_property
    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """The report's tables of this result, one per CSV file (:mod:`xsim.report.tables`)."""
        from xsim.report.tables import run_tables

        return run_tables(self)

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The report's ``summary.json`` of this result."""
        from xsim.report.tables import run_summary

        return run_summary(self)


def prepare(arch: Arch | str | Path, workload: Workload | str | Path,
            arch_overrides: dict | None = None) -> Deployment:
    """Load (if given paths) and deploy: the mapping, the hardware roll-up and every check of the
    arch against the workload (:meth:`xsim.deployment.Deployment.build`)."""
    return Deployment.build(arch, workload, arch_overrides)


def model_weights(workload: Workload, network: Network) -> dict:
    """The backbone's float weights: synthetic (seeded), from the workload's ``.npz`` or from its
    ONNX model."""
    from xsim.functional.weights import load_weights, synthetic_weights

    spec = workload.model.weights
    if spec.kind == "synthetic":
        return synthetic_weights(network, spec.seed)
    if spec.kind == "onnx":
        from xsim.config.loader import onnx_model

        return onnx_model(workload).weights
    path = resolve_path(workload, spec.path)
    try:
        return load_weights(path, network)
    except FileNotFoundError:
        raise ConfigError(workload.source, "model.weights.path", f"no such file: {path}") from None
    except ValueError as exc:
        raise ConfigError(workload.source, "model.weights.path", str(exc)) from None


def _no_progress(items: Iterable, _label: str) -> Iterable:
    return items


def simulate(arch: Arch | str | Path | Deployment, workload: Workload | str | Path | None = None,
             *, arch_overrides: dict | None = None, functional: bool = False, images: int = 1,
             progress: Progress | None = None, max_work: int = DEFAULT_MAX_WORK,
             lifetime: bool = False, workers: int | None = None) -> SimulationResult:
    """Simulate ``workload`` on ``arch`` (or an already built :class:`Deployment`): inference on
    the engine, every adaptation strategy on the schedule, and (``functional``) bit-accurate
    inference of ``images`` images per task under XMA2's masks; ``lifetime`` adds each task's
    top-1 agreement over the chip's life under every strategy's wear (:mod:`xsim.mta.lifetime`,
    ``images`` images per checkpoint). A run whose estimated work
    exceeds ``max_work`` is refused before it starts (:func:`xsim.config.limits.estimate_work`).
    The engine's runs go to ``workers`` processes (default: one per usable core, see
    :mod:`xsim.engine.parallel`); the figures are the same for any ``workers``."""
    from xsim.engine.parallel import EngineRuns
    from xsim.engine.simulate import same_tier2_timing
    from xsim.kernels._settings import threads_may_share_kernels
    from xsim.mta.overlap import first_switch_runs
    from xsim.mta.scenario import run_scenario, scaled_pe_sets
    from xsim.mta.tasks import build_tasks

    progress = progress or _no_progress
    clock = _Stopwatch()
    if isinstance(arch, Deployment):
        dep = arch
    else:
        dep = prepare(arch, workload, arch_overrides)
        clock.lap("deployment")
    check_work(estimate_work(dep.workload, dep.mapping, functional=functional, images=images,
                             lifetime=lifetime), max_work, dep.workload.source)
    with EngineRuns(dep, workers, prepare=_engine_plan) as runs, \
            one_blas_thread(runs.workers > 1 or (functional and threads_may_share_kernels())):
        # Other pieces of the run hold the cores (the engine's workers, the write model's thread):
        # BLAS threads would only spin beside them.
        # The pipelined batch gives throughput; strategies compare one image each, all alike.
        backbone = runs.submit(_batch_run, dep.workload.batch)
        weights = model_weights(dep.workload, dep.network)
        tasks = build_tasks(dep, weights)
        clock.lap("weights and tasks")
        # One engine run per distinct tier-2 timing: sets it only counts differently share it.
        one_image = {}
        for group in same_tier2_timing(dep, scaled_pe_sets(dep, tasks)):
            run = runs.submit(_one_image, group)
            one_image.update({scaled: (run, k) for k, scaled in enumerate(group)})

        stop = threading.Event()  # set when the main thread fails: a costing thread stops

        def layers_until_stopped(layers):
            for layer in progress(layers, "reprogramming"):
                if stop.is_set():
                    raise RuntimeError("stopped: the run failed")
                yield layer

        def scenario():
            """The strategies on the schedule, then their first switches on the engine."""
            start = time.perf_counter()
            mta = run_scenario(dep, tasks, lambda scaled: one_image[scaled][0].result()[one_image[scaled][1]],
                               progress=layers_until_stopped, keep_cell_writes=lifetime)
            return mta, first_switch_runs(dep, mta, tasks, runs.submit), time.perf_counter() - start

        per_task = per_layer = None
        if not functional:
            mta, switches, _ = scenario()
            clock.lap("writes and strategies")
        else:
            from xsim.functional.masks import task_masks_from_tasks
            from xsim.functional.metrics import functional_metrics
            from xsim.functional.nonideal import DeviceModel
            masks = {task.name: task_masks_from_tasks(tasks, task.name) for task in dep.workload.tasks}
            # The write model and the bit-accurate model share nothing: where numba's kernels may
            # run from two threads at once, the strategies are costed in a thread beside the
            # bit-accurate inference (both spend most of their time outside the GIL).
            beside = ThreadPoolExecutor(1) if threads_may_share_kernels() else None
            costing = beside.submit(scenario) if beside is not None else None
            try:
                if costing is None:
                    mta, switches, _ = scenario()
                    clock.lap("writes and strategies")
                per_task, per_layer = functional_metrics(
                    dep, weights, images=images, seed=dep.workload.seed,
                    calibration_images=CALIBRATION_IMAGES,
                    device=DeviceModel.from_arch(dep.arch, dep.workload.seed),
                    masks_by_task=dict(progress(masks.items(), "bit-accurate inference")))
                per_task, per_layer = tuple(per_task), tuple(per_layer)
                clock.lap("functional")
            except BaseException:
                stop.set()  # a signal or an error: the costing thread ends at its next layer
                raise
            finally:
                if beside is not None:
                    beside.shutdown(wait=True)
            if costing is not None:
                mta, switches, seconds = costing.result()
                clock.lap("waiting for the writes")
                clock.laps["writes and strategies (beside the functional)"] = seconds
        life = None
        if lifetime:
            from xsim.mta.lifetime import lifetime_rows

            life = tuple(lifetime_rows(dep, weights, tasks, mta, images=images, seed=dep.workload.seed))
            clock.lap("lifetime")
        first, timeline = switches()
        backbone = backbone.result()
        clock.lap("waiting for the engine")
    clock.laps[f"engine (its runs, in {runs.workers} process{'es' if runs.workers > 1 else ''})"] = \
        runs.engine_s
    return SimulationResult(dep, backbone, mta, tuple(first), tuple(timeline), per_task, per_layer,
                            life, clock.laps)


def _engine_plan(dep: Deployment) -> None:
    from xsim.engine.chip import deployment_wiring

    deployment_wiring(dep)  # the datapath plan, bound to its servers


def _batch_run(dep: Deployment, images: int):
    from xsim.engine import simulate_inference

    return simulate_inference(dep, images=images, record_timeline=False)


def _one_image(dep: Deployment, group: list[frozenset[int]]) -> list[dict]:
    """Per set of tier-2-scaled PEs, one image's energy, latency and tier-2 share."""
    from xsim.engine.simulate import simulate_scaled

    out = []
    for result in simulate_scaled(dep, group):
        components: dict[str, float] = {}
        for row in result.component_rows():
            name = "leakage" if row["action"] == "leakage" else row["component"]
            components[name] = components.get(name, 0.0) + row["energy_per_image_pj"]
        tier2 = components.get("tier2_scale", 0.0) + components.get("tier2_register", 0.0)
        out.append({"energy_pj": result.energy_per_image_pj, "latency_ps": result.latency_ps,
                    "tier2_pj": tier2, "components": components})
    return out


class _Stopwatch:
    """Wall time per named stage, summed over the laps of one name."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now
