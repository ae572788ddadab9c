"""Multi-task adaptation: masks, the reprogramming controller, strategies, endurance, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ARCH, WORKLOADS
from xsim.api import model_weights, prepare, simulate
from xsim.config import ConfigError, load_arch, load_workload
from xsim.deployment import Deployment
from xsim.mta.controller import schedule_switch
from xsim.mta.scenario import run_scenario
from xsim.mta.tasks import build_tasks
from xsim.report.tables import mta_tables

# Small crossbars and PEs so LeNet-5 spans tens of PEs, as ResNet-50 does on ISAAC.
SMALL = {"crossbar.rows": 32, "crossbar.columns": 32, "components.dac.count": 32,
         "components.sample_hold.count": 32, "hierarchy.crossbars_per_group": 2, "hierarchy.pes_per_tile": 8}


@pytest.fixture(scope="module")
def small():
    dep = prepare(ARCH / "isaac128.yaml", WORKLOADS / "lenet5_mta.json", SMALL)
    tasks = build_tasks(dep, model_weights(dep.workload, dep.network))
    return dep.arch, dep.workload, dep.mapping, dep.hardware, tasks


def _dep(arch, workload, mapping, hw):
    return Deployment(arch, mapping.network, mapping, hw, workload)


def flat_inference(scaled):
    return {"energy_pj": 1.0, "latency_ps": 1, "tier2_pj": float(len(scaled)),
            "components": {"adc": 1.0}}


def test_controller_lanes_closed_form():
    # Two lanes, first come first served: PE 0's crossbars take lanes 0 and 1, and so on.
    latency, rewrites = schedule_switch([(0, np.array([10, 30])), (1, np.array([20])),
                                         (2, np.array([5, 5]))], lanes=2)
    spans = {r.pe: (r.start_ps, r.end_ps) for r in rewrites}
    # Lane A: PE 0 (10), then PE 1 (20) until 30; lane B: PE 0 (30). Both PE 2 crossbars at 30.
    assert spans == {0: (0, 30), 1: (10, 30), 2: (30, 35)}
    assert latency == 35
    assert schedule_switch([], lanes=4) == (0, [])


def test_tier1_budget_is_exact_and_deterministic(small):
    arch, workload, mapping, hw, tasks = small
    head = mapping.layers[-1].layer.name
    candidates = [p for p in mapping.pes if p.replica == 0 and p.layer != head]
    assert len(candidates) > 50
    for task in workload.new_tasks:
        expected = round(task.tier1.pe_budget * len(candidates))
        assert len(tasks.tier1[task.name]) == expected
        assert all(mapping.pes[p].layer != head for p in tasks.tier1[task.name])
    again = build_tasks(_dep(arch, workload, mapping, hw), model_weights(workload, mapping.network))
    assert again.tier1 == tasks.tier1
    assert all(np.array_equal(again.tier2[t], tasks.tier2[t]) for t in tasks.tier2)


def test_uniform_layers_spreads_the_budget(small):
    arch, workload, mapping, hw, tasks = small
    from xsim.mta.tasks import _select

    head = mapping.layers[-1].layer.name
    first = [p for p in mapping.pes if p.replica == 0 and p.layer != head]
    candidates = np.array([p.index for p in first])
    layer_of = np.array([p.layer_index for p in first])
    chosen = _select("uniform_layers", 20, np.arange(len(first), dtype=float), candidates,
                     layer_of, np.random.default_rng(0))
    assert len(chosen) == 20
    per_layer = {li: sum(mapping.pes[p].layer_index == li for p in chosen) for li in set(layer_of)}
    sizes = {li: int((layer_of == li).sum()) for li in set(layer_of)}
    for li in per_layer:
        assert abs(per_layer[li] - 20 * sizes[li] / len(first)) < 1


@pytest.fixture(scope="module")
def scenario(small):
    arch, workload, mapping, hw, tasks = small
    return run_scenario(_dep(arch, workload, mapping, hw), tasks, flat_inference)


def test_strategies_rewrite_what_they_should(small, scenario):
    arch, workload, mapping, hw, tasks = small
    sw = scenario.switches
    backbone = workload.backbone.name
    for (strategy, a, b), cost in sw.items():
        if strategy == "tier2_only":
            assert cost.cells_written == 0 and cost.pes_rewritten == 0
        if strategy in ("tier1_only", "xma2"):
            union = tasks.tier1.get(a, frozenset()) | tasks.tier1[b]
            assert cost.pes_rewritten == len(union)
            assert {r.pe for r in cost.rewrites} == set(union)
        if strategy == "full_finetune":
            assert cost.cells_written >= sw[("xma2", a, b)].cells_written
    # Tier 1 alone and XMA2 write the same cells; XMA2 also loads scales.
    for (strategy, a, b), cost in sw.items():
        if strategy == "xma2":
            twin = sw[("tier1_only", a, b)]
            assert cost.cells_written == twin.cells_written
            assert cost.tier2_bytes > 0 and twin.tier2_bytes == 0
    assert (backbone, "rotated") in {(a, b) for (_, a, b) in sw}


def test_endurance_counts_add_up(small, scenario):
    arch, workload, mapping, hw, tasks = small
    for strategy, endu in scenario.endurance.items():
        total_writes = (np.arange(endu.histogram.size) * endu.histogram).sum()
        written = sum(c.cells_written * c.occurrences for (s, _, _), c in scenario.switches.items()
                      if s == strategy)
        assert total_writes == written
    assert scenario.endurance["tier2_only"].max_writes == 0
    full = scenario.endurance["full_finetune"]
    assert full.max_writes <= len(workload.visits())
    row = next(r for r in mta_tables(scenario)[0]["strategy_totals"]
               if r["strategy"] == "full_finetune")
    periods = workload.schedule.periods
    assert row["lifetime_periods"] == pytest.approx(arch.cell.endurance_cycles * periods
                                                    / full.max_writes)
    switches = len(workload.visits())
    assert row["lifetime_hours"] == pytest.approx(
        row["lifetime_periods"] * switches / periods / workload.schedule.switches_per_hour)


def test_compare_before_write_only_helps(small):
    arch, workload, mapping, hw, tasks = small
    no_compare = arch.model_copy(update={"reprogramming": arch.reprogramming.model_copy(
        update={"compare_before_write": False})})
    blind = run_scenario(prepare(no_compare, workload), tasks, flat_inference)
    smart = run_scenario(_dep(arch, workload, mapping, hw), tasks, flat_inference)
    for key, cost in smart.switches.items():
        assert cost.cells_written <= blind.switches[key].cells_written


def test_mask_file_errors(tmp_path, small):
    arch, workload, mapping, hw, tasks = small
    data = json.loads((WORKLOADS / "lenet5_mta.json").read_text())
    data["tasks"][1]["tier1"]["mask_file"] = "mask.npz"
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    bad = load_workload(path)
    weights = model_weights(bad, mapping.network)
    with pytest.raises(ConfigError, match="cannot read as .npz"):
        build_tasks(_dep(arch, bad, mapping, hw), weights)
    np.savez(tmp_path / "mask.npz", tier1=np.array([0, 10_000]))
    with pytest.raises(ConfigError, match=r"mask.npz: tier1: PE indices \[10000\]"):
        build_tasks(_dep(arch, bad, mapping, hw), weights)
    np.savez(tmp_path / "mask.npz", tier1=np.ones(3, dtype=bool))
    with pytest.raises(ConfigError, match="boolean mask must have shape"):
        build_tasks(_dep(arch, bad, mapping, hw), weights)
    np.savez(tmp_path / "mask.npz", tier1=np.array([0, 3]))
    assert build_tasks(_dep(arch, bad, mapping, hw), weights).tier1["rotated"] == frozenset({0, 3})


def test_run_outputs_are_complete_and_reproducible(tmp_path, monkeypatch):
    import xsim.processes
    from xsim.report.writer import write_outputs

    # The same bytes whether the engine's runs and the plots stay in this process or go to two
    # workers.
    monkeypatch.setattr(xsim.processes, "default_workers", lambda: 2)
    runs = []
    for name, workers in (("a", 1), ("b", 2)):
        result = simulate(ARCH / "isaac128.yaml", WORKLOADS / "lenet5_mta.json", workers=workers)
        assert any(f"in {workers} process" in k for k in result.timings)
        write_outputs(result, tmp_path / name, workers=workers)
        runs.append(tmp_path / name)
    files = sorted(p.name for p in runs[0].iterdir())
    for expected in ("summary.json", "strategies.csv", "energy_breakdown.csv", "endurance.csv",
                     "switches.csv", "layers.csv", "components.csv", "timeline.csv",
                     "energy_breakdown.png", "reprogram_vs_scale.png", "timeline.png",
                     "endurance.png"):
        assert expected in files
    assert not [p for p in files if p.endswith(".part")]
    for name in files:
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name


def test_strategies_costed_beside_the_functional_model_give_the_same_bytes(tmp_path, monkeypatch):
    import xsim.kernels._settings
    from xsim.report.writer import write_outputs

    # With --functional the strategies are costed in a thread beside the bit-accurate inference
    # where numba's threading layer allows it; forced serial, every output is the same.
    threads = []
    real = xsim.kernels._settings.threads_may_share_kernels
    for name, allowed in (("beside", True), ("serial", False)):
        monkeypatch.setattr(xsim.kernels._settings, "threads_may_share_kernels",
                            lambda allowed=allowed: allowed and real())
        result = simulate(ARCH / "isaac128.yaml", WORKLOADS / "lenet5_mta.json", functional=True,
                          workers=1)
        threads.append(any("beside the functional" in k for k in result.timings))
        write_outputs(result, tmp_path / name, workers=1)
    assert threads == [real(), False]
    for path in sorted((tmp_path / "serial").iterdir()):
        assert (tmp_path / "beside" / path.name).read_bytes() == path.read_bytes(), path.name


def test_a_failing_functional_model_stops_the_costing_thread(monkeypatch):
    import threading
    import time

    import xsim.functional.metrics

    started, failed, costed = threading.Event(), threading.Event(), []

    def progress(items, label):
        for i, item in enumerate(items):
            if label == "reprogramming" and i == 1:
                started.set()  # the costing thread is inside the layer loop
                failed.wait(10)
                time.sleep(0.2)  # the main thread has flagged the failure by then
            if label == "reprogramming":
                costed.append(item)
            yield item

    def fail(*args, **kwargs):
        started.wait(10)
        failed.set()
        raise ValueError("the bit-accurate model failed")

    monkeypatch.setattr(xsim.functional.metrics, "functional_metrics", fail)
    before = threading.active_count()
    with pytest.raises(ValueError, match="bit-accurate model failed"):
        simulate(ARCH / "isaac128.yaml", WORKLOADS / "lenet5_mta.json", functional=True, workers=1,
                 progress=progress)
    assert threading.active_count() == before  # the thread beside it has ended
    # It stopped at the layer after the failure instead of costing the remaining ones.
    assert len(costed) == 2


def test_first_switch_overlaps_rewrites_with_serving_layers():
    result = simulate(ARCH / "isaac128.yaml", WORKLOADS / "lenet5_mta.json")
    rows = {r["strategy"]: r for r in result.tables["first_switch"]}
    latency = result.summary["inference"]["latency_us"]
    for row in rows.values():
        # Never faster than an unblocked inference, never slower than switch-then-infer.
        assert row["first_result_us"] >= latency * (1 - 1e-9)
        assert row["first_result_us"] <= row["sequential_bound_us"] * (1 + 1e-9)
    # Full fine-tuning rewrites the first layer too, so its first result waits for that rewrite.
    assert rows["full_finetune"]["first_result_us"] > rows["tier2_only"]["first_result_us"]
    kinds = {e["kind"] for e in result.tables["timeline"]}
    assert kinds == {"rewrite", "inference"}


def test_task_weights_file_replaces_the_synthetic_change(tmp_path, small):
    arch, workload, mapping, hw, tasks = small
    data = json.loads((WORKLOADS / "lenet5_mta.json").read_text())
    data["tasks"][1]["weights_file"] = "rotated.npz"
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    with_file = load_workload(path)
    weights = model_weights(with_file, mapping.network)
    head = mapping.layers[-1].layer.name
    # Task weights equal to the backbone: rewriting the task's PEs changes no cell.
    same = {f"{lm.layer.name}.task_weight": tasks.backbone[lm.layer.name].T.reshape(
        lm.layer.weight_shape).astype(np.int64) for lm in mapping.layers if lm.layer.name != head}
    np.savez(tmp_path / "rotated.npz", **same)
    file_tasks = build_tasks(_dep(arch, with_file, mapping, hw), weights)
    result = run_scenario(_dep(arch, with_file, mapping, hw), file_tasks, flat_inference)
    for strategy in ("full_finetune", "xma2"):
        assert result.switches[(strategy, "digits", "rotated")].cells_written == 0
        assert result.switches[(strategy, "inverted", "rotated")].cells_written > 0
    bad = dict(same)
    bad["conv1.task_weight"] = bad["conv1.task_weight"][:1]
    np.savez(tmp_path / "rotated.npz", **bad)
    with pytest.raises(ConfigError, match=r"rotated.npz: conv1.task_weight: expected integer codes"):
        build_tasks(_dep(arch, with_file, mapping, hw), weights)
    del bad["conv1.task_weight"]
    np.savez(tmp_path / "rotated.npz", **bad)
    with pytest.raises(ConfigError, match="conv1.task_weight: missing array"):
        build_tasks(_dep(arch, with_file, mapping, hw), weights)


@pytest.mark.parametrize("visits", [["digits", "rotated", "rotated", "digits"], ["digits"]])
def test_explicit_schedules_with_repeats_and_no_switch(tmp_path, visits):
    data = json.loads((WORKLOADS / "lenet5_mta.json").read_text())
    data["schedule"] = {"kind": "explicit", "visits": visits}
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    result = simulate(ARCH / "isaac128.yaml", path)
    from xsim.report.writer import write_outputs

    write_outputs(result, tmp_path / "out")  # every plot and the report, even with no switch
    assert (tmp_path / "out" / "report.html").is_file()
    first = result.tables["first_switch"]
    if len(set(visits)) > 1:
        assert {(r["from"], r["to"]) for r in first} == {("digits", "rotated")}
    else:
        assert first == [] and result.summary["multi_task"]["switches"] == 0


@pytest.mark.parametrize(("encoding", "heads"), [
    ("offset", {"cubs": 14, "cars": 14, "flowers": 8, "wikiart": 14, "sketch": 16}),
    ("differential", {"cubs": 26, "cars": 26, "flowers": 14, "wikiart": 26, "sketch": 32})])
def test_resident_heads_are_sized_by_each_task_classes(encoding, heads):
    # The head layer fc has K = 2048 rows (16 row blocks, two PEs of 8 per column block); a head
    # of c classes takes ceil(c / weights per array row) column blocks of them.
    wpr = 32 if encoding == "offset" else 16
    classes = {"cubs": 200, "cars": 196, "flowers": 102, "wikiart": 195, "sketch": 250}
    assert {t: 2 * -(-c // wpr) for t, c in classes.items()} == heads
    dep = Deployment.build(ARCH / "isaac128.yaml", WORKLOADS / "resnet50_mta.json",
                           {"crossbar.encoding": encoding})
    assert dep.resident_head_pes_by_task == heads
    assert dep.mapping.pe_count + dep.resident_head_pes <= dep.arch.pes_per_chip


def test_heads_that_do_not_fit_say_by_how_much():
    with pytest.raises(ConfigError, match=r"resnet50_mta.json.*resident_heads.*124 spare PEs "
                                          r"\(cubs 26, .*has 0 left.*124 PEs short"):
        Deployment.build(ARCH / "isaac128.yaml", WORKLOADS / "resnet50_mta.json",
                         {"crossbar.encoding": "differential", "hierarchy.tiles_per_chip": 143})


def test_fixed_scales_on_a_shifter_name_both_files(tmp_path):
    data = json.loads((WORKLOADS / "lenet5_mta.json").read_text())
    task = next(i for i, t in enumerate(data["tasks"]) if not t.get("backbone"))
    data["tasks"][task]["tier2"] = {"format": "fixed", "bits": 4}
    path = tmp_path / "fixed.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as info:
        Deployment.build(ARCH / "isaac128.yaml", path)
    message = str(info.value)
    assert str(path) in message and f"tasks[{task}].tier2.format" in message
    assert "isaac128.yaml" in message and "components.tier2_scale.kind" in message


def test_replicas_are_rewritten_but_do_not_inflate_a_cells_writes(tmp_path):
    """A replica's cells are written with its first instance's, each the same number of times:
    cells written per switch grow with the replicas, the worst cell's writes do not."""
    data = json.loads((WORKLOADS / "lenet5_mta.json").read_text())
    results = {}
    for replication in (False, "auto"):
        data["mapping"] = {**data.get("mapping", {}), "replication": replication}
        path = tmp_path / f"w_{replication}.json"
        path.write_text(json.dumps(data))
        results[replication] = simulate(ARCH / "isaac128.yaml", path)
    plain, replicated = results[False], results["auto"]
    assert replicated.mapping.pe_count > plain.mapping.pe_count
    for strategy in ("full_finetune", "xma2", "elementwise"):
        assert (replicated.mta.endurance[strategy].max_writes
                == plain.mta.endurance[strategy].max_writes)
    # Full fine-tuning rewrites every PE, the replicated conv layers' replicas included.
    cells = {k: sum(sw.cells_written for (s, _, _), sw in r.mta.switches.items()
                    if s == "full_finetune") for k, r in results.items()}
    assert cells["auto"] > cells[False]


def test_a_per_pe_gain_steers_largest_change_to_each_tasks_own_pes():
    # With pe_spread > 0 each (task, PE) has a log-normal gain on its change size: the PEs a task
    # picks by largest change are those its gain favours (every gain is 1 with pe_spread 0), so
    # different tasks pick different PEs; summary.json says which change model ran.
    from xsim import streams

    base = prepare(ARCH / "isaac128.yaml", WORKLOADS / "lenet5_mta.json", SMALL)
    spread = 1.5
    wl = base.workload.model_copy(update={"tasks": tuple(
        t if t.backbone else t.model_copy(update={
            "weight_change": t.weight_change.model_copy(update={"pe_spread": spread}),
            "tier1": t.tier1.model_copy(update={"policy": "largest_change"})})
        for t in base.workload.tasks)})
    dep = Deployment(base.arch, base.network, base.mapping, base.hardware, wl)
    tasks = build_tasks(dep, model_weights(wl, dep.network))
    first = list(dep.tier1_candidates)
    chosen = {}
    for ti, task in enumerate(wl.tasks):
        if task.backbone:
            continue
        gains = np.exp(streams.rng(wl.seed, "task.pe_gain", ti).normal(-spread**2 / 2, spread, len(first)))
        gain_of = dict(zip(first, gains))
        picked = tasks.tier1[task.name]
        assert picked
        assert np.mean([gain_of[p] for p in picked]) > 1.5 * np.mean(gains)
        chosen[task.name] = picked
    sets = list(chosen.values())
    assert all(len(a & b) < min(len(a), len(b)) for i, a in enumerate(sets) for b in sets[i + 1:])
    summary = mta_tables(run_scenario(dep, tasks, flat_inference))[1]
    model = {name: c["model"] for name, c in summary["synthetic_weight_change"].items()}
    assert set(model.values()) == {"per-PE log-normal gain"}


class _Levels:
    """Two level matrices under the (kind, task) keys the scenario's costing asks for."""

    def __init__(self, old: np.ndarray, new: np.ndarray) -> None:
        self.by_kind = {"old": old, "new": new}

    def get(self, kind: str, _task: str) -> np.ndarray:
        return self.by_kind[kind]


def _physical_array(levels: np.ndarray, lm, r0: int, r1: int, c0: int, c1: int, cpw: int):
    """One array of a grouped layer as the mapping's packing rule lays it out: the groups of
    columns ``[c0, c1)`` block-diagonally, group ``i`` on rows ``[i·(r1-r0), (i+1)·(r1-r0))`` and
    its own columns; the cells no group uses hold level 0 in both versions."""
    ng = lm.N // lm.groups
    groups = range(c0 // ng, (c1 - 1) // ng + 1)
    h = r1 - r0
    out = np.zeros((len(groups) * h, (c1 - c0) * cpw), dtype=np.uint8)
    for i, g in enumerate(groups):
        a, z = max(c0, g * ng), min(c1, (g + 1) * ng)
        out[i * h:(i + 1) * h, (a - c0) * cpw:(z - c0) * cpw] = levels[r0:r1, a * cpw:z * cpw]
    return out


@pytest.mark.parametrize("encoding", ["offset", "differential"])
@pytest.mark.parametrize(("scheme", "compare"), [("row_parallel", True), ("row_parallel", False),
                                                 ("write_verify", True), ("array", True)])
def test_grouped_layers_are_rewritten_array_by_array_as_packed(encoding, scheme, compare):
    """A depthwise layer's arrays hold up to 14 groups block-diagonally: each array's write is
    the write of that packed crossbar (rows written one after another), not of the K × N matrix
    cut every 128 rows and columns."""
    from xsim.kernels.writes import write_cost
    from xsim.mapping import map_network
    from xsim.models.zoo import ZOO
    from xsim.mta.scenario import _first_instance_costs, write_params

    whole_array = {"cell.write.array_write_ns": 10968.75, "cell.write.array_write_power_mw": 2.06}
    arch = load_arch(ARCH / "isaac128.yaml", {
        "crossbar.encoding": encoding, "cell.write.scheme": scheme,
        "reprogramming.compare_before_write": compare, **(whole_array if scheme == "array" else {})})
    m = map_network(arch, ZOO["mobilenetv2"](), weight_bits=8)
    cpw, rows = m.columns_per_weight, arch.crossbar.rows
    params = write_params(arch)
    top = (1 << arch.cell.bits) - 1
    rng = np.random.default_rng(5)
    packed = 0
    for lm in m.layers:
        if lm.groups == 1:
            continue
        old = rng.integers(0, top + 1, (lm.K, lm.N * cpw), dtype=np.uint8)
        new = np.where(rng.random(old.shape) < 0.4,
                       rng.integers(0, top + 1, old.shape, dtype=np.uint8), old).astype(np.uint8)
        firsts = len(lm.pes) // lm.replicas
        counts = np.zeros(old.shape, dtype=np.int64)
        got = _first_instance_costs(lm, m, _Levels(old, new), [("old", "")] * firsts,
                                    [("new", "")] * firsts, counts, 1, params)
        for j in range(firsts):
            pe = m.pes[lm.pes[j]]
            want = []
            for r0 in range(pe.row_start, pe.row_stop, rows):
                r1 = min(r0 + rows, pe.row_stop)
                for b in range(lm.col_bounds.index(pe.col_start), lm.col_bounds.index(pe.col_stop)):
                    c0, c1 = lm.col_bounds[b], lm.col_bounds[b + 1]
                    a_old, a_new = (_physical_array(v, lm, r0, r1, c0, c1, cpw) for v in (old, new))
                    packed += a_old.shape[0] > r1 - r0
                    want.append(write_cost(a_old, a_new, **{**params, "rows": a_old.shape[0],
                                                           "columns": a_old.shape[1]}))
            cost = got[j]
            assert cost.time_ps.tolist() == [int(w.time_ps.sum()) for w in want], lm.layer.name
            assert cost.write_time_ps == sum(int(w.time_ps.sum()) for w in want)
            assert cost.pulses == sum(int(w.pulses.sum()) for w in want)
            assert cost.cells == sum(int(w.cells.sum()) for w in want)
            assert cost.verifies == sum(int(w.verifies.sum()) for w in want)
            assert cost.cell_energy_pj == pytest.approx(sum(float(w.energy_pj.sum()) for w in want),
                                                        rel=1e-12)
            assert cost.line_energy_pj == pytest.approx(
                sum(float(w.line_energy_pj.sum()) for w in want), rel=1e-12)
        assert counts.sum() == sum(c.cells for c in got.values())
    assert packed > 0  # arrays that really hold several groups were checked


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.lists(st.tuples(st.integers(0, 40), st.lists(
    st.integers(0, 50), min_size=0, max_size=5)), max_size=12))
def test_the_controller_schedule_is_the_simpy_controllers(lanes, jobs):
    # Same intervals as the reference: one simpy process per lane, first come first served
    # (PEs may repeat and crossbars may take no time).
    import simpy

    from xsim.mta.controller import run_controller

    jobs = [(pe, np.array(times, dtype=np.int64)) for pe, times in jobs]
    env, reference = simpy.Environment(), []
    env.process(run_controller(env, lanes, jobs, reference))
    env.run()
    latency, rewrites = schedule_switch(jobs, lanes)
    assert rewrites == reference
    assert latency == max((r.end_ps for r in reference), default=0)


def test_numbers_read_as_a_person_writes_them():
    """Bar labels and the console's tables (xsim.text.readable_number)."""
    from xsim.text import readable_number

    assert [readable_number(v) for v in (3801, 1097.4, 89.0, 11.93, 0.587, 0.0099, 0.0, -3.2)] == \
        ["3,800", "1,100", "89", "11.9", "0.587", "0.0099", "0", "-3.2"]
    assert readable_number(2.98e-06) == "2.98e-06" and readable_number(1234567) == "1,230,000"
    assert readable_number(2.5e9) == "2.5e+09" and readable_number(0.00942, 2) == "0.0094"
    assert [readable_number(v) for v in (float("inf"), float("-inf"), float("nan"))] == \
        ["inf", "-inf", "nan"]


@given(st.floats(1e-3, 1e9, exclude_max=True), st.integers(1, 4))
def test_readable_numbers_keep_their_significant_digits(v, digits):
    from xsim.text import readable_number

    text = readable_number(v, digits)
    assert "e" not in text
    # Rounded to `digits` significant digits: within half a unit of the last one kept.
    unit = 10 ** (np.floor(np.log10(v)) - digits + 1)
    assert abs(float(text.replace(",", "")) - v) <= 0.5 * unit * (1 + 1e-9)
