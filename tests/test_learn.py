"""xsim.learn: the PE structure in torch matches the mapping, the quantisers match the simulator's,
the budget is exact, learning beats the frozen backbone, and the export is what xsim run reads."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ARCH, ROOT, WORKLOADS
from xsim.config import ConfigError, load_arch, load_workload
from xsim.deployment import Deployment
from xsim.functional import CrossbarNetwork, TaskMasks, load_weights, quantise_scales
from xsim.learn.data import build_tasks, split, transform
from xsim.learn.evaluate import cells_written
from xsim.learn.export import load_task_weights
from xsim.learn.method import (
    PeStructure,
    StrategyConfig,
    TaskModel,
    export_result,
    quantise_scales_torch,
    strategy_config,
    train_backbone,
    train_task,
)
from xsim.learn.run import quick_spec, run_learn
from xsim.learn.spec import load_learn_spec
from xsim.mapping import map_network
from xsim.models import network_from_spec
from xsim.mta.cells import cell_levels

TINY = WORKLOADS / "learn_tiny.json"


@pytest.fixture(scope="module")
def tiny_spec():
    return load_learn_spec(TINY)


@pytest.fixture(scope="module")
def tiny_setup(tiny_spec):
    torch.set_num_threads(1)
    arch = load_arch(ARCH / "isaac128.yaml", tiny_spec.arch_overrides)
    network = network_from_spec(tiny_spec.model.name, tiny_spec.model.input_shape,
                                [dict(layer) for layer in tiny_spec.model.layers])
    mapping = map_network(arch, network, weight_bits=8, input_bits=8)
    source, tasks = build_tasks(tiny_spec.data)
    backbone = train_backbone(network, source.x_train, source.y_train, epochs=3, batch=128, lr=0.01,
                              weight_bits=8, seed=0)
    return arch, mapping, PeStructure(Deployment.of_mapping(mapping)), source, tasks, backbone


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    out = tmp_path_factory.mktemp("learn")
    summary = run_learn(ARCH / "isaac128.yaml", TINY, out, progress=False)
    return out, summary


def test_simulator_never_imports_torch():
    code = ("import sys, xsim, xsim.api, xsim.cli, xsim.functional, xsim.mta.tasks; "
            "sys.exit(1 if 'torch' in sys.modules or 'xsim.learn' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


@pytest.mark.parametrize("override, key", [
    ({"budgets": [0.0, 1.5]}, "budgets[1]"),
    ({"strategies": ["xma2", "bogus"]}, "strategies[1]"),
    ({"export": {"pe_budget": 0.3}}, None),
    ({"data": {"tasks": [{"name": "a", "transform": "shear"}]}}, "data.tasks[0].transform"),
    ({"task_training": {"epochs": 0}}, "task_training.epochs"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_spec_is_a_config_error(tmp_path, override, key):
    data = json.loads(TINY.read_text())
    data.update(override)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        load_learn_spec(path)
    assert err.value.path == str(path)
    if key is not None:
        assert err.value.key == key


@pytest.mark.parametrize("layers", [
    [{"kind": "flatten"}, {"kind": "linear", "name": "head", "out_features": 10}],
    [{"kind": "flatten"}, {"kind": "linear", "name": "fc", "out_features": 0}],
])
def test_unusable_network_is_a_config_error_before_training(tmp_path, layers):
    data = json.loads(TINY.read_text())
    data["model"]["layers"] = layers
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        run_learn(ARCH / "isaac128.yaml", path, tmp_path / "out", progress=False)
    assert err.value.key == "model.layers"
    assert not (tmp_path / "out").exists()


def test_quick_mode_cuts_the_spec_down():
    spec = quick_spec(load_learn_spec(WORKLOADS / "learn_digits.json"))
    assert spec.task_training.epochs <= 3 and spec.backbone_training.epochs <= 5
    assert len(spec.data.tasks) == 2 and spec.budgets == (0.0, 0.1)
    assert spec.evaluation.test_images == 100


def test_split_and_transforms_are_fixed(tiny_spec):
    labels = np.repeat(np.arange(10), 20)
    train, test = split(labels, 0.2, 0)
    assert np.array_equal(test, split(labels, 0.2, 0)[1])
    assert not set(train) & set(test) and len(test) == 40
    assert np.all(np.bincount(labels[test]) == 4)
    x = np.random.default_rng(0).random((3, 1, 8, 8))
    for kind in ("rot90", "flip", "permute"):
        y = transform(x, kind, 0, 1)
        assert np.allclose(np.sort(y.ravel()), np.sort(x.ravel())) and not np.allclose(y, x)
    assert np.allclose(transform(x, "permute", 0, 1), transform(x, "permute", 0, 1))
    assert np.allclose(transform(x, "invert", 0, 0), 1 - x)
    source, tasks = build_tasks(tiny_spec.data)
    assert source.x_train.shape[1:] == (1, 8, 8) and source.x_train.max() <= 1.0
    assert [t.name for t in tasks] == ["rot90", "invert"]
    assert np.array_equal(tasks[0].y_test, source.y_test)


def test_pe_structure_is_the_mappings(tiny_setup):
    _, mapping, structure, *_ = tiny_setup
    head = mapping.layers[-1].layer.name
    assert structure.count == sum(1 for p in mapping.pes if p.layer != head)
    for pe in mapping.pes:
        layer = structure.layers[pe.layer]
        block = (slice(pe.row_start, pe.row_stop), slice(pe.col_start, pe.col_stop))
        expected = -1 if pe.layer == head else int(np.flatnonzero(structure.candidates == pe.index)[0])
        assert np.all(layer.position[block] == expected)
        columns = pe.tier2_offset + np.arange(pe.weight_columns)
        assert np.all(layer.tier2[block] == columns[None, :])
    assert structure.budget_pes(0.1) == round(0.1 * structure.count)


@pytest.mark.parametrize("fmt, bits", [("pow2", 4), ("pow2", 2), ("fixed", 4), ("fixed", 8), ("float", 4)])
def test_torch_scale_quantiser_matches_the_simulators(fmt, bits):
    v = np.concatenate([np.random.default_rng(1).lognormal(0.0, 2.0, 2000), [0.0, 1.0, 2.0 ** -9]])
    got = quantise_scales_torch(torch.as_tensor(v), fmt, bits).numpy()
    assert np.array_equal(got, quantise_scales(v, fmt, bits))


def test_tier2_scales_multiply_each_pes_partial_sums(tiny_setup):
    _, mapping, structure, _, _, backbone = tiny_setup
    model = TaskModel(backbone, structure, StrategyConfig(tier2=True), tier2_format="float",
                      tier2_bits=4, weight_bits=8)
    scales = torch.as_tensor(np.random.default_rng(2).uniform(0.5, 2.0, mapping.tier2_columns))
    lm = mapping.layers[0]
    name = lm.layer.name
    x = np.random.default_rng(3).random((5, lm.K))
    with torch.no_grad():
        y = x @ model.matrix(name, None, None, scales).numpy()
    expected = np.zeros((5, lm.N))
    w0 = backbone.matrix(name)
    for index in lm.pes:
        p = mapping.pes[index]
        part = x[:, p.row_start:p.row_stop] @ w0[p.row_start:p.row_stop, p.col_start:p.col_stop]
        expected[:, p.col_start:p.col_stop] += part * scales.numpy()[
            p.tier2_offset:p.tier2_offset + p.weight_columns]
    assert np.allclose(y, expected)


def test_learned_tier1_mask_has_exactly_k_pes_and_trains_only_them(tiny_setup):
    _, mapping, structure, _, tasks, backbone = tiny_setup
    task = tasks[0]
    config = strategy_config("xma2", structure, 0.1, 0)
    before = {name: None if b is None else b.copy() for name, b in backbone.biases.items()}
    model = TaskModel(backbone, structure, config, tier2_format="pow2", tier2_bits=4, weight_bits=8,
                      write_penalty=0.1)
    train_task(model, task.x_train[:256], task.y_train[:256], epochs=2, batch=128, lr=0.02,
               weight_lr=0.002, scale_lr=0.002, freeze_fraction=0.5, seed=0)
    result = export_result(model, backbone)
    for name, b in before.items():  # the task trains copies: the backbone stays as programmed
        assert b is None or np.array_equal(backbone.biases[name], b)
    assert len(result.tier1) == config.k == structure.budget_pes(0.1) > 0
    chosen = set(result.tier1)
    for lm in mapping.layers[:-1]:
        changed = result.codes[lm.layer.name] != backbone.codes[lm.layer.name]
        for index in lm.pes:
            p = mapping.pes[index]
            if index not in chosen:
                assert not changed[p.row_start:p.row_stop, p.col_start:p.col_stop].any()
    assert np.all(result.tier2[structure.head_tier2] == 1.0)
    assert np.array_equal(result.tier2, quantise_scales(result.tier2, "pow2", 4))


def test_backbone_training_is_deterministic(tiny_setup):
    _, mapping, _, source, _, _ = tiny_setup
    a, b = (train_backbone(mapping.network, source.x_train[:200], source.y_train[:200], epochs=1,
                           batch=64, lr=0.01, weight_bits=8, seed=5) for _ in range(2))
    for name in a.codes:
        assert np.array_equal(a.codes[name], b.codes[name])
        assert np.array_equal(a.scales[name], b.scales[name])


def test_learning_improves_every_task_over_the_frozen_backbone(learned):
    _, summary = learned
    frozen = {t["task"]: t["backbone_float_accuracy"] for t in summary["tasks"]}
    for row in summary["frontier"]:
        if row["strategy"] == "xma2":
            assert row["crossbar_accuracy"] > frozen[row["task"]] + 0.1, row
    assert summary["backbone"]["crossbar_accuracy"] > 0.5


def test_frontier_respects_the_budget_exactly(learned):
    _, summary = learned
    count = summary["tier1_candidates"]
    for row in summary["frontier"]:
        if row["strategy"] in ("xma2", "tier1_only", "random_tier1"):
            assert row["tier1_pes"] == round(row["pe_budget"] * count)
        if row["tier1_pes"] == 0:
            assert row["cells_written"] == 0
        if row["strategy"] in ("full_finetune", "elementwise"):
            assert row["tier1_pes"] == count
    assert {r["task"] for r in summary["mean"]} == {"mean"}
    assert {r["strategy"] for r in summary["mean"]} == {r["strategy"] for r in summary["frontier"]}
    assert summary["target"]["pe_budget"] == 0.1


def test_export_is_what_xsim_run_reads(learned):
    from xsim.api import model_weights, prepare
    from xsim.mta.tasks import build_tasks as mta_tasks

    out, summary = learned
    assert (out / "frontier.csv").read_text().startswith("task,strategy,pe_budget")
    assert (out / "frontier.png").stat().st_size > 0
    dep = prepare(out / "arch.yaml", out / "workload.json")
    arch, workload, network, mapping = dep.arch, dep.workload, dep.network, dep.mapping
    assert load_workload(out / "workload.json").name == "learn_tiny"
    weights = model_weights(workload, network)
    tasks = mta_tasks(dep, weights)
    k = round(0.1 * summary["tier1_candidates"])
    rows = {(r["task"], r["strategy"], r["pe_budget"]): r for r in summary["frontier"]}
    for spec in workload.new_tasks:
        with np.load(out / spec.tier1.mask_file) as masks:
            tier1, tier2 = masks["tier1"], masks["tier2"]
        assert len(tier1) == k and tasks.tier1[spec.name] == frozenset(tier1.tolist())
        assert np.array_equal(tasks.tier2[spec.name], tier2)
        # The task weights file reproduces the reported bit-accurate accuracy and cell count.
        task_weights, codes = load_task_weights(out / spec.weights_file, network)
        for name, w in codes.items():
            programmed = w.reshape(w.shape[0], -1).T
            assert np.array_equal(programmed, np.where(programmed != tasks.backbone[name],
                                                       programmed, tasks.backbone[name]))
        masks = TaskMasks(tier1=frozenset(tier1.tolist()), tier2=tier2, task_weights=codes)
        _, data = build_tasks(load_learn_spec(TINY).data)
        task = next(t for t in data if t.name == spec.name)
        n = summary["test_images"]
        net = CrossbarNetwork(mapping, task_weights, task.x_train[:16])
        accuracy = float((net.run(task.x_test[:n], masks).argmax(1) == task.y_test[:n]).mean())
        row = rows[(spec.name, "xma2", 0.1)]
        assert accuracy == pytest.approx(row["crossbar_accuracy"])
        cells = sum(int(np.count_nonzero(
            cell_levels(c.reshape(c.shape[0], -1).T, arch, 8)
            != cell_levels(tasks.backbone[name].astype(np.int64), arch, 8)))
            for name, c in codes.items())
        assert cells == row["cells_written"]
    backbone = load_weights(out / "backbone.npz", network)
    assert set(backbone) == {layer.name for layer in network.weight_layers}


def test_cells_written_counts_changed_levels(tiny_setup):
    arch, mapping, structure, _, _, backbone = tiny_setup
    result = export_result(TaskModel(backbone, structure, StrategyConfig(), tier2_format="pow2",
                                     tier2_bits=4, weight_bits=8), backbone)
    assert cells_written(Deployment.of_mapping(mapping), backbone, result) == 0
    name = mapping.layers[0].layer.name
    result.codes[name] = result.codes[name].copy()
    result.codes[name][0, 0] += 1 if result.codes[name][0, 0] < 127 else -1
    assert 1 <= cells_written(Deployment.of_mapping(mapping), backbone, result) <= arch.slices_per_weight(8)


def test_xsim_run_simulates_the_exported_workload(learned):
    from xsim.api import simulate

    out, _ = learned
    result = simulate(out / "arch.yaml", out / "workload.json")
    strategies = {row["strategy"] for row in result.tables["strategy_totals"]}
    assert "xma2" in strategies
