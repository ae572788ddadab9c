"""Lifetime accuracy (xsim run --lifetime): wear from the schedule's per-cell writes, top-1
agreement with the fault-free model per strategy, task and checkpoint, and its files."""

import csv
import os

import numpy as np
import pytest

from xsim.api import simulate
from xsim.cli import main
from xsim.config import load_arch
from xsim.report.outdir import check_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCH = os.path.join(ROOT, "arch", "isaac128.yaml")
LENET = os.path.join(ROOT, "workloads", "lenet5_mta.json")


@pytest.fixture(scope="module")
def result():
    # A small endurance (100 writes) and a wide spread: the same study in fewer periods.
    arch = load_arch(ARCH, {"cell.endurance_cycles": 100, "cell.nonideal.wearout.sigma_log": 0.3})
    return simulate(arch, LENET, lifetime=True, images=3)


def test_rows_cover_every_strategy_task_and_checkpoint(result):
    rows = result.lifetime
    strategies = result.workload.strategies
    tasks = [t.name for t in result.workload.tasks]
    periods = sorted({r["period"] for r in rows})
    assert len(rows) == len(strategies) * len(tasks) * len(periods)
    assert periods[0] == 0 and len(periods) == 10
    for r in rows:
        assert 0.0 <= r["top1_agreement"] <= 1.0 and r["images"] == 3
        if r["period"] == 0:
            assert r["top1_agreement"] == 1.0 and r["worn_cells"] == 0


def test_wear_grows_with_periods_and_follows_the_strategy(result):
    rows = result.lifetime
    by = {}
    for r in rows:
        by.setdefault(r["strategy"], {})[r["period"]] = r["worn_cells"]
    for strategy, worn in by.items():
        series = [worn[p] for p in sorted(worn)]
        assert series == sorted(series), strategy  # stuck cells only accumulate
    assert all(v == 0 for v in by["tier2_only"].values())  # tier 2 writes no cell
    assert max(by["full_finetune"].values()) > max(by["xma2"].values()) > 0
    t2 = [r["top1_agreement"] for r in rows if r["strategy"] == "tier2_only"]
    assert t2 == [1.0] * len(t2)
    worst = min(r["top1_agreement"] for r in rows if r["strategy"] == "full_finetune")
    assert worst < 1.0  # wear-out happens within the study
    # the projected lifetime of the most-written strategy sits in the middle of the checkpoints
    life = min(result.mta.lifetime(s)[0] for s in ("full_finetune", "xma2"))
    periods = sorted({r["period"] for r in rows})
    assert periods[5] == pytest.approx(life)


def test_summary_and_files(result, tmp_path):
    block = result.summary["lifetime"]
    assert set(block) == set(result.workload.strategies)
    assert block["tier2_only"]["first_disagreement_period"] is None
    out = tmp_path / "run"
    assert main(["run", ARCH, LENET, "-o", str(out), "--lifetime", "--images", "1"]) == 0
    assert (out / "lifetime.png").stat().st_size > 0
    with open(out / "lifetime.csv") as f:
        header = next(csv.reader(f))
    assert header == ["strategy", "task", "period", "switches", "worn_cells", "worn_fraction",
                      "images", "top1_agreement"]
    assert check_run(out) == []


def test_without_lifetime_nothing_is_kept():
    r = simulate(ARCH, LENET)
    assert r.lifetime is None and r.mta.cell_writes is None and "lifetime" not in r.summary
    assert not np.any([k == "lifetime" for k in r.tables])


def test_fault_free_reference_keeps_the_other_nonidealities():
    """With variation on, period 0 still agrees fully: the reference has the same variation."""
    arch = load_arch(ARCH, {"cell.endurance_cycles": 100, "cell.nonideal.variation.sigma": 0.05,
                            "cell.nonideal.programming.enabled": True})
    from xsim.api import model_weights
    from xsim.deployment import Deployment
    from xsim.mta.lifetime import lifetime_rows
    from xsim.mta.scenario import run_scenario
    from xsim.mta.tasks import build_tasks

    dep = Deployment.build(arch, LENET)
    weights = model_weights(dep.workload, dep.network)
    tasks = build_tasks(dep, weights)
    zero = {"energy_pj": 0.0, "latency_ps": 0, "tier2_pj": 0.0, "components": {}}
    mta = run_scenario(dep, tasks, lambda scaled: zero, keep_cell_writes=True)
    rows = lifetime_rows(dep, weights, tasks, mta, images=2, seed=dep.workload.seed)
    assert all(r["top1_agreement"] == 1.0 for r in rows if r["period"] == 0)
    assert min(r["top1_agreement"] for r in rows) < 1.0


LEARNED = os.path.join(ROOT, "workloads", "learned_cnn_mta.json")
LEARNED_ARCH = os.path.join(ROOT, "workloads", "learned_cnn", "arch.yaml")


def test_the_learned_cnn_scenario_measures_accuracy_on_its_own_test_images():
    # Every task of the bundled learned CNN scenario ships labelled test images: the lifetime
    # study runs each task's own network on them and reports accuracy, which on day one matches
    # what an independent count over the same images gives (the task's first classes only),
    # and wear then takes it down.
    from xsim.api import model_weights
    from xsim.functional.masks import task_masks_from_tasks
    from xsim.functional.network import CrossbarNetwork
    from xsim.mta.lifetime import labelled_sets, task_float_weights
    from xsim.mta.tasks import build_tasks

    images = 24
    res = simulate(load_arch(LEARNED_ARCH), LEARNED, lifetime=True, images=images)
    rows = res.lifetime
    assert all(r.get("accuracy") is not None and r["images"] == images for r in rows)
    day_one = {r["task"]: r["accuracy"] for r in rows if r["period"] == 0}
    assert day_one["mnist"] >= 0.8 and min(day_one.values()) > 0.2
    last = max(r["period"] for r in rows)
    assert np.mean([r["accuracy"] for r in rows if r["period"] == last]) < np.mean(list(day_one.values()))
    dep, wl = res.deployment, res.workload
    sets = labelled_sets(wl, dep.network)
    tasks = build_tasks(dep, model_weights(wl, dep.network))
    task = wl.tasks[1]
    net = CrossbarNetwork(dep.mapping, task_float_weights(wl, task, dep.network, None),
                          sets[task.name].calibration)
    logits = net.run(sets[task.name].x[:images], task_masks_from_tasks(tasks, task.name))
    hits = np.argmax(logits[:, : task.head.num_classes], axis=1) == sets[task.name].y[:images]
    assert day_one[task.name] == pytest.approx(float(np.mean(hits)))


def test_a_test_file_with_labels_out_of_range_fails_clearly(tmp_path, capsys):
    import json
    import shutil

    folder = tmp_path / "learned_cnn"
    shutil.copytree(os.path.join(ROOT, "workloads", "learned_cnn"), folder)
    with open(LEARNED) as f:
        doc = json.load(f)
    with np.load(folder / "tests" / "greek.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["y"] = arrays["y"] + 30
    np.savez(folder / "tests" / "greek.npz", **arrays)
    path = tmp_path / "learned_cnn_mta.json"
    path.write_text(json.dumps(doc))
    code = main(["run", str(folder / "arch.yaml"), str(path), "--lifetime", "--images", "2",
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "greek.npz: y:" in err and "head.num_classes 24" in err and "tasks[2].test_file" in err
