"""xsim study: its data (held-out fonts, fixed splits), the folded batch norm, the strategies'
PE choices, the intervals, a reduced end-to-end study whose exports xsim run simulates, and the
bundled learned-CNN workload."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import ARCH, WORKLOADS
from xsim.config import ConfigError, load_arch, load_workload
from xsim.deployment import Deployment
from xsim.learn import glyphs
from xsim.learn.method import PeStructure, StrategyConfig, TaskModel, export_result
from xsim.learn.study import (
    STUDY_STRATEGIES,
    WearAwareModel,
    fold_batch_norm,
    interval,
    last_layer_pes,
    quick_spec,
    run_study,
    strategy_setup,
    train_backbone_bn,
)
from xsim.learn.study_spec import load_study_spec
from xsim.models import network_from_spec

SPEC = WORKLOADS / "study_glyphs.json"
BUNDLED = WORKLOADS / "learned_cnn_mta.json"


@pytest.fixture(scope="module")
def spec():
    return load_study_spec(SPEC)


@pytest.fixture(scope="module")
def cnn(spec):
    torch.set_num_threads(1)
    network = network_from_spec(spec.model.name, (1, 16, 16), [dict(x) for x in spec.model.layers])
    arch = load_arch(ARCH / "isaac128.yaml", spec.arch_overrides)
    dep = Deployment.of(arch, network, weight_bits=8, input_bits=8)
    return network, dep, PeStructure(dep)


def test_font_splits_are_disjoint_and_render():
    for fonts in (glyphs.LATIN_FONTS, glyphs.GREEK_FONTS):
        names = [f for split in glyphs.SPLITS for f in fonts[split]]
        assert len(names) == len(set(names))
        for name in names:
            assert (glyphs.font_dir() / name).is_file()
    rng = np.random.default_rng(0)
    img = glyphs.render_glyph(glyphs.font_dir() / "STIXGeneralItalic.ttf", "ω", 16, rng)
    assert img.shape == (16, 16) and img.min() >= 0.0 and img.max() <= 1.0 and img.sum() > 5


def test_glyph_tasks_are_fixed_by_their_seed():
    copies = {"train": 1, "validation": 1, "test": 1}
    a = glyphs.glyphs("greek", 12, 3, copies)
    b = glyphs.glyphs("greek", 12, 3, copies)
    c = glyphs.glyphs("greek", 12, 4, copies)
    assert a.classes == 24
    assert a.sizes() == {"train": 24 * len(glyphs.GREEK_FONTS["train"]),
                         "validation": 24 * len(glyphs.GREEK_FONTS["validation"]),
                         "test": 24 * len(glyphs.GREEK_FONTS["test"])}
    for split in glyphs.SPLITS:
        np.testing.assert_array_equal(a.x[split], b.x[split])
    assert not np.array_equal(a.x["train"], c.x["train"])


def test_three_way_split_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(5), 40)
    parts = glyphs.stratified(labels, (0.1, 0.2), 0, "mnist")
    every = np.concatenate(list(parts.values()))
    assert np.array_equal(np.sort(every), np.arange(labels.size))
    for c in range(5):
        assert np.count_nonzero(labels[parts["validation"]] == c) == 4
        assert np.count_nonzero(labels[parts["test"]] == c) == 8


def test_source_is_mlxtends_mnist():
    source = glyphs.mnist(16, 0)
    assert source.classes == 10 and sum(source.sizes().values()) == 5000
    assert source.x["train"].shape[1:] == (1, 16, 16)
    assert np.bincount(source.y["test"]).tolist() == [50] * 10


def test_batch_norm_folds_into_the_conv():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(3, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    bn.eval()
    matrix = np.random.default_rng(0).normal(size=(2 * 3 * 3, 3))
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    weight = torch.as_tensor(np.ascontiguousarray(matrix.T).reshape(3, 2, 3, 3))
    expected = bn(torch.nn.functional.conv2d(x, weight))
    folded, bias = fold_batch_norm(matrix, bn)
    w2 = torch.as_tensor(np.ascontiguousarray(folded.T).reshape(3, 2, 3, 3))
    got = torch.nn.functional.conv2d(x, w2, torch.as_tensor(bias))
    torch.testing.assert_close(got, expected)


def test_cnn_spans_over_a_hundred_pes_and_8_bit_adcs_are_lossless_only_by_margin(spec, cnn):
    _, dep, structure = cnn
    assert structure.count >= 100
    arch = dep.arch
    lossless = math.ceil(math.log2(arch.crossbar.rows * (arch.cell.levels - 1)
                                   * (2 ** arch.dac_bits - 1) + 1))
    assert lossless == 7  # the study's 6-, 5- and 4-bit ADCs clip
    assert any(bits < lossless for bits in spec.crossbar.adc_bits)


def test_strategy_pe_choices(spec, cnn):
    _, _, structure = cnn
    k = structure.budget_pes(spec.main_budget)
    last = last_layer_pes(structure, 1)
    assert set(last) == set(np.unique(structure.layers["conv4"].position).tolist())
    assert strategy_setup("last_layers", structure, 0, spec, 0, 0).fixed_pes == last
    a = strategy_setup("random_tier1", structure, k, spec, 0, 2)
    b = strategy_setup("random_tier1", structure, k, spec, 1, 2)
    assert len(set(a.fixed_pes)) == k and a.fixed_pes != b.fixed_pes
    assert strategy_setup("full_finetune", structure, k, spec, 0, 0).k == structure.count
    for name in STUDY_STRATEGIES:
        strategy_setup(name, structure, k, spec, 0, 0)
    with pytest.raises(ValueError):
        strategy_setup("bogus", structure, k, spec, 0, 0)


def test_wear_aware_top_k_avoids_worn_pes(cnn):
    network, _, structure = cnn
    backbone = train_backbone_bn(network, "head", np.zeros((4, 1, 16, 16)), np.arange(4), epochs=1,
                                 batch=4, lr=1e-3, weight_bits=8, seed=0)
    config = StrategyConfig(tier1="learned", tier2=True, k=5)
    kwargs = dict(tier2_format="pow2", tier2_bits=4, weight_bits=8)
    scores = torch.linspace(1.0, 0.0, structure.count, dtype=torch.float64)
    plain = TaskModel(backbone, structure, config, **kwargs)
    wear = np.zeros(structure.count)
    wear[:3] = 1.0
    aware = WearAwareModel(backbone, structure, config, wear=wear, wear_weight=2.0, **kwargs)
    with torch.no_grad():
        plain.scores.copy_(scores)
        aware.scores.copy_(scores)
    assert set(np.flatnonzero(plain.hard_mask().numpy())) == {0, 1, 2, 3, 4}
    assert set(np.flatnonzero(aware.hard_mask().numpy())) == {3, 4, 5, 6, 7}
    assert len(export_result(aware, backbone).tier1) == 5


def test_interval_is_the_t_interval():
    mean, half = interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302652729911275 / math.sqrt(3))
    with pytest.raises(ValueError):
        interval([1.0])


def test_bad_study_spec_is_a_config_error(tmp_path):
    data = json.loads(SPEC.read_text())
    data["main_budget"] = 0.3
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        load_study_spec(path)
    assert err.value.path == str(path)


def test_cli_reports_a_bad_study_spec_and_exits_2(tmp_path, capsys):
    from xsim.cli import main

    data = json.loads(SPEC.read_text())
    data["seeds"] = [0]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    assert main(["study", str(ARCH / "isaac128.yaml"), str(path), "-o", str(tmp_path / "o")]) == 2
    assert "seeds" in capsys.readouterr().err


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    summary = run_study(ARCH / "isaac128.yaml", SPEC, out / "tables", out / "exports", quick=True,
                        command="pytest quick study")
    return out, summary


def test_quick_study_writes_every_table_for_every_strategy(spec, quick_study):
    out, summary = quick_study
    q = quick_spec(spec)
    assert summary["command"] == "pytest quick study" and summary["quick"]
    for name in ("accuracy", "paired", "costs", "wear", "adc", "runs", "search"):
        assert (out / "tables" / f"{name}.csv").is_file()
    for name in ("frontier", "lifetime", "adc"):
        assert (out / "tables" / f"{name}.png").stat().st_size > 10_000
    labels = [row["strategy"] for row in summary["tables"]["accuracy"]]
    assert len(labels) == len(STUDY_STRATEGIES)
    assert all("±" in row["mean"] for row in summary["tables"]["accuracy"])
    # The same grid for every strategy, on the first seed only, per task.
    search = list(csv_rows(out / "tables" / "search.csv"))
    per = {}
    for row in search:
        per.setdefault((row["task"], row["strategy"]), []).append(row)
    assert len(per) == len(q.data.tasks) * len(STUDY_STRATEGIES)
    assert {len(v) for v in per.values()} == {len(q.search.lr_scales)}


def csv_rows(path):
    import csv

    with open(path, newline="") as f:
        yield from csv.DictReader(f)


def test_quick_study_costs_come_from_the_simulator(quick_study):
    out, summary = quick_study
    rows = {(r["strategy"], r["pe_budget"]): r for r in csv_rows(out / "tables" / "costs_per_seed.csv")
            if r["seed"] == "0"}
    full = rows[("full_finetune", "")]
    xma2 = rows[("xma2", "0.1")]
    assert float(full["cells_written"]) > float(xma2["cells_written"]) > 0
    assert float(full["switch_energy_uj"]) > float(xma2["switch_energy_uj"]) > 0
    for free in ("head_only", "tier2_only"):
        assert float(rows[(free, "")]["cells_written"]) == 0
        assert rows[(free, "")]["lifetime_switches"] == ""
    workload = out / "exports" / "seed0" / "xma2_0.1" / "workload.json"
    loaded = load_workload(workload)
    assert [t.name for t in loaded.tasks][1:] == ["latin_upper", "greek"]


def test_bundled_learned_cnn_workload_runs(tmp_path):
    from xsim.cli import main

    arch = WORKLOADS / "learned_cnn" / "arch.yaml"
    assert main(["run", str(arch), str(BUNDLED), "-o", str(tmp_path / "run")]) == 0
    rows = list(csv_rows(tmp_path / "run" / "strategies.csv"))
    workload = load_workload(BUNDLED)
    assert len(workload.new_tasks) == 3
    for task in workload.new_tasks:
        mask = np.load(WORKLOADS / "learned_cnn" / "tasks" / f"{task.name}.masks.npz")["tier1"]
        row = next(r for r in rows if r["strategy"] == "xma2" and r["task"] == task.name)
        assert int(row["tier1_pes"]) == mask.size > 0
        assert float(row["switch_energy_uj"]) > 0 and float(row["cells_written"]) > 0


def test_study_spec_names_every_data_task():
    from xsim.learn.study_spec import TASKS

    assert set(TASKS) == {"digits", *glyphs.GLYPH_CLASSES}


def test_a_study_run_is_bit_identical_for_the_same_seed(spec, cnn):
    from xsim.learn.study import fit

    network, _, structure = cnn
    source = glyphs.mnist(16, 0)
    task = glyphs.glyphs("latin_upper", 16, 0, {"train": 1, "validation": 1, "test": 1})
    short = spec.model_copy(update={"task_training": spec.task_training.model_copy(
        update={"epochs": 2})})
    exported = []
    for _ in range(2):
        backbone = train_backbone_bn(network, "head", source.x["train"][:256],
                                     source.y["train"][:256], epochs=1, batch=64, lr=3e-3,
                                     weight_bits=8, seed=5)
        model = TaskModel(backbone, structure, StrategyConfig(tier1="learned", tier2=True, k=13),
                          tier2_format="pow2", tier2_bits=4, weight_bits=8)
        model, val, epoch = fit(model, task, short, 1.0, 7)
        exported.append((export_result(model, backbone), val, epoch))
    (a, va, ea), (b, vb, eb) = exported
    assert (va, ea) == (vb, eb) and a.tier1 == b.tier1 and len(a.tier1) == 13
    np.testing.assert_array_equal(a.tier2, b.tier2)
    for name in a.codes:
        np.testing.assert_array_equal(a.codes[name], b.codes[name])
