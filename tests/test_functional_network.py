"""Bit-accurate network execution with task masks: which PEs and columns change, exactness, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ARCH
from xsim.config import load_arch
from xsim.deployment import Deployment
from xsim.functional import (
    CrossbarNetwork,
    TaskMasks,
    functional_metrics,
    load_weights,
    pe_grid,
    quantise_weights,
    save_weights,
    synthetic_inputs,
    synthetic_weights,
)
from xsim.kernels import pack_weights
from xsim.mapping import map_network
from xsim.models.zoo import ZOO

# Small crossbars so a small network spans many PEs; 8-bit ADCs over 16 rows of 2-bit cells with
# 1-bit DACs (column sums <= 48) are lossless.
SMALL = {"crossbar.rows": 16, "components.dac.count": 16, "crossbar.columns": 32,
         "hierarchy.crossbars_per_group": 2}


def _setup(overrides, zoo="mlp", seed=0, **kw):
    arch = load_arch(ARCH / "isaac128.yaml", overrides)
    net = ZOO[zoo](**kw)
    mapping = map_network(arch, net, weight_bits=8, input_bits=8)
    weights = synthetic_weights(net, seed)
    model = CrossbarNetwork(mapping, weights, synthetic_inputs(net, 16, seed + 1))
    return arch, mapping, weights, model


def _integer(model, y, name, masks=None):
    """The integer crossbar sums behind a layer output without activation."""
    ql = model.layers[name]
    bias = 0.0 if ql.bias is None else ql.bias
    act = model.program(masks)[name].act
    return np.rint((y - bias) / (act.scale * ql.scale)).astype(np.int64)


@pytest.fixture(scope="module", params=[2, 8], ids=["one-col-block-per-pe", "two-col-blocks-per-pe"])
def mlp(request):
    return _setup({**SMALL, "hierarchy.crossbars_per_group": request.param})


def test_identity_masks_reproduce_the_backbone_bit_for_bit(mlp):
    _, mapping, _, model = mlp
    x = synthetic_inputs(mapping.network, 3, 5)
    base = model.run(x, return_all=True)
    same = model.run(x, TaskMasks.identity(mapping), return_all=True)
    assert all(np.array_equal(base[k], same[k]) for k in base)
    assert np.array_equal(model.run(x, TaskMasks()), base["fc2"][:, :, 0, 0])


def test_tier1_changes_exactly_its_block(mlp):
    _, mapping, _, model = mlp
    lm = mapping.layer("fc2")
    pe = mapping.pes[lm.pes[-1]]
    backbone = model.layers["fc2"].matrix.astype(np.int64)
    task = backbone.copy()
    rng = np.random.default_rng(3)
    block = (slice(pe.row_start, pe.row_stop), slice(pe.col_start, pe.col_stop))
    task[block] = rng.integers(-127, 128, task[block].shape)
    # Entries outside the PE's block are ignored: make them obviously different.
    outside = np.ones_like(task, dtype=bool)
    outside[block] = False
    task[outside] = -task[outside]
    masks = TaskMasks.from_matrices(mapping, {pe.index}, None, {"fc2": task})
    x = synthetic_inputs(mapping.network, 4, 9)
    base = model.run(x, return_all=True)
    new = model.run(x, masks, return_all=True)
    assert np.array_equal(base["fc1"], new["fc1"])
    changed = np.any(base["fc2"] != new["fc2"], axis=(0, 2, 3))
    assert changed.tolist() == [pe.col_start <= n < pe.col_stop for n in range(lm.N)]
    xq = model.layers["fc2"].act.quantise(base["fc1"][:, :, 0, 0]).astype(np.int64)
    delta = (_integer(model, new["fc2"][:, :, 0, 0], "fc2", masks)
             - _integer(model, base["fc2"][:, :, 0, 0], "fc2"))
    expected = np.zeros_like(delta)
    expected[:, block[1]] = xq[:, block[0]] @ (task - backbone)[block]
    assert np.array_equal(delta, expected)
    # The float reference of the masked network carries the dequantised task block.
    eff = model.effective_weights(masks)["fc2"][0].T
    assert np.allclose(eff[block], task[block] * model.layers["fc2"].scale[block[1]])
    assert np.array_equal(eff[outside], model.weights["fc2"][0].T[outside])


def test_tier2_scales_exactly_their_pe_columns(mlp):
    _, mapping, _, model = mlp
    lm = mapping.layer("fc2")
    grid = pe_grid(mapping, lm)
    pe = mapping.pes[lm.pes[0]]
    # The last column of the PE sits in its second column block when a PE packs two.
    off, doubled = pe.col_start, pe.col_stop - 1
    scales = np.ones(mapping.tier2_columns)
    scales[pe.tier2_offset + off - pe.col_start] = 0.0
    scales[pe.tier2_offset + doubled - pe.col_start] = 2.0
    task = model.layers["fc2"].matrix.astype(np.int64)
    tier1 = set()
    if len(lm.pes) > 1:
        other = mapping.pes[lm.pes[1]]  # a tier-1 PE: its scales are ignored
        scales[other.tier2_offset : other.tier2_offset + other.weight_columns] = 0.0
        tier1.add(other.index)
    masks = TaskMasks.from_matrices(mapping, tier1, scales, {"fc2": task})
    x = synthetic_inputs(mapping.network, 4, 11)
    base = model.run(x, return_all=True)
    new = model.run(x, masks, return_all=True)
    y0 = _integer(model, base["fc2"][:, :, 0, 0], "fc2")
    y1 = _integer(model, new["fc2"][:, :, 0, 0], "fc2", masks)
    keep = [n for n in range(lm.N) if n not in (off, doubled)]
    assert np.array_equal(base["fc2"][:, keep], new["fc2"][:, keep])
    xq = model.layers["fc2"].act.quantise(base["fc1"][:, :, 0, 0]).astype(np.int64)
    rows = slice(pe.row_start, pe.row_stop)
    part = xq[:, rows] @ task[rows]
    assert np.array_equal(y1[:, off], y0[:, off] - part[:, off])
    assert np.array_equal(y1[:, doubled], y0[:, doubled] + part[:, doubled])
    assert grid.pe[pe.row_start // grid.group_rows, off] == pe.index


def test_masked_reference_matches_masked_crossbar(mlp):
    _, mapping, _, model = mlp
    rng = np.random.default_rng(1)
    scales = 2.0 ** rng.integers(-1, 2, mapping.tier2_columns)
    masks = TaskMasks(tier2=scales)
    x = synthetic_inputs(mapping.network, 4, 13)
    y, ref, plain = model.run(x, masks), model.reference(x, masks), model.reference(x)
    assert np.linalg.norm(y - ref) < 0.05 * np.linalg.norm(ref)
    assert np.linalg.norm(plain - ref) > 0.2 * np.linalg.norm(ref)


@pytest.mark.parametrize("zoo,kw", [("lenet5", {}), ("mlp", {}), ("resnet20", {}),
                                    ("mobilenetv2", {"input_shape": (3, 32, 32), "num_classes": 10})])
def test_zoo_runs_and_lossless_adc_is_the_integer_reference(zoo, kw):
    # 9-bit ADCs cover 128 rows x 3 (2-bit cells) x 1 (1-bit DACs): lossless.
    _, mapping, _, model = _setup({"components.adc.bits": 9}, zoo, **kw)
    x = synthetic_inputs(mapping.network, 2, 4)
    y = model.run(x)
    assert y.shape == (2, mapping.network.output.out_channels)
    assert np.array_equal(y, model.run(x, exact=True))
    ref = model.reference(x)
    assert np.linalg.norm(y - ref) < 0.1 * np.linalg.norm(ref)


def test_lossless_differential_small_crossbars_with_task():
    _, mapping, _, model = _setup({**SMALL, "crossbar.encoding": "differential"}, "lenet5")
    lm = mapping.layer("conv2")
    pes = {lm.pes[0], lm.pes[-1]}
    w = model.layers["conv2"].matrix.astype(np.int64)
    masks = TaskMasks.from_matrices(mapping, pes, np.full(mapping.tier2_columns, 0.5), {"conv2": -w})
    x = synthetic_inputs(mapping.network, 2, 6)
    for m in (None, masks):
        assert np.array_equal(model.run(x, m), model.run(x, m, exact=True))


def test_adc_bits_sweep_error_falls():
    # Differential encoding, clipping ADCs: the error falls as the ADC covers more of the column
    # sums, down to the quantisation floor (the integer-quantised reference's error) at 7 bits,
    # where these sums no longer clip.
    errors, floor = {}, None
    for bits in (3, 4, 5, 6, 7):
        _, mapping, _, model = _setup({"components.adc.bits": bits,
                                       "crossbar.encoding": "differential"}, "lenet5")
        x = synthetic_inputs(mapping.network, 4, 2)
        y, ref = model.run(x), model.reference(x)
        errors[bits] = np.linalg.norm(y - ref) / np.linalg.norm(ref)
        floor = np.linalg.norm(model.run(x, exact=True) - ref) / np.linalg.norm(ref)
    values = [errors[b] for b in sorted(errors)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert errors[3] > 0.5 and np.isclose(errors[7], floor) and floor < 0.05


def test_npz_weights_run_and_mismatch_errors(tmp_path, isaac128):
    net = ZOO["mlp"]()
    mapping = map_network(isaac128, net, weight_bits=8, input_bits=8)
    weights = synthetic_weights(net, 2)
    save_weights(tmp_path / "w.npz", weights)
    loaded = load_weights(tmp_path / "w.npz", net)
    cal = synthetic_inputs(net, 2, 0)
    x = synthetic_inputs(net, 2, 1)
    a = CrossbarNetwork(mapping, weights, cal).run(x)
    b = CrossbarNetwork(mapping, loaded, cal).run(x)
    assert np.array_equal(a, b)
    bad = dict(weights)
    bad["fc1"] = (weights["fc1"][0][:, :10], weights["fc1"][1])
    save_weights(tmp_path / "bad.npz", bad)
    with pytest.raises(ValueError, match=r"fc1\.weight.*shape"):
        load_weights(tmp_path / "bad.npz", net)
    with pytest.raises(ValueError, match="fc1"):
        CrossbarNetwork(mapping, bad, cal)
    with pytest.raises(ValueError, match="input"):
        CrossbarNetwork(mapping, weights, cal).run(np.zeros((1, 3, 8, 8)))


def test_functional_metrics_rows_are_deterministic():
    arch, mapping, weights, _ = _setup(SMALL, "lenet5")
    net = mapping.network
    lm = mapping.layer("fc1")
    w = synthetic_weights(net, 9)["fc1"][0]
    masks = TaskMasks(tier1={lm.pes[0]}, tier2=np.ones(mapping.tier2_columns),
                      task_weights={"fc1": quantise_weights(w, 8)[0]})
    dep = Deployment.of_mapping(mapping)
    run = lambda: functional_metrics(dep, weights, images=2, seed=3,  # noqa: E731
                                     masks_by_task={"backbone": None, "task": masks},
                                     labels=np.array([1, 2]))
    tasks, layers = run()
    assert (tasks, layers) == run()
    assert [r["task"] for r in tasks] == ["backbone", "task"]
    assert set(tasks[0]) == {"task", "images", "output", "rel_error", "snr_db", "top1_agreement",
                             "accuracy", "tier1_pes"}
    assert tasks[1]["tier1_pes"] == 1 and 0 < tasks[0]["rel_error"] < 0.1 and tasks[0]["snr_db"] > 20
    assert len(layers) == 2 * len(mapping.layers)
    assert [r["tier1_pes"] for r in layers if r["task"] == "task" and r["layer"] == "fc1"] == [1]
    with pytest.raises(ValueError, match="positive"):
        functional_metrics(dep, weights, images=0, seed=3, masks_by_task={})


def test_task_masks_from_a_task_set(lenet5_workload, isaac128):
    from xsim.deployment import Deployment
    from xsim.functional import task_masks_from_tasks
    from xsim.mta.tasks import build_tasks

    dep = Deployment.build(isaac128, lenet5_workload)
    net, mapping = dep.network, dep.mapping
    tasks = build_tasks(dep, synthetic_weights(net, 3))
    assert task_masks_from_tasks(tasks, lenet5_workload.backbone.name) is None
    name = lenet5_workload.new_tasks[0].name
    masks = task_masks_from_tasks(tasks, name)
    head = mapping.layer(tasks.head_layer)
    assert masks.tier1 == tasks.tier1[name] | set(head.pes)
    assert np.array_equal(masks.tier2[:-head.N], tasks.tier2[name][:-head.N])
    assert np.all(masks.tier2[-head.N:] == 1.0)
    model = CrossbarNetwork(mapping, synthetic_weights(net, 3), synthetic_inputs(net, 4, 0))
    eff = model.effective_weights(masks)[tasks.head_layer][0]
    classes = tasks.head_weights(name).shape[1]
    scale = model.layers[tasks.head_layer].scale[:classes]
    assert np.allclose(eff[:classes].T, tasks.head_weights(name) * scale)


def test_grouped_and_depthwise_convs_are_exact_through_the_crossbars():
    # Depthwise (Kg = 9, 14 groups share an array block-diagonally) then a 2-group conv whose
    # Kg = 288 rows span three row blocks per group; 9-bit ADCs over 128 rows are lossless.
    from test_functional_reference import slow_conv

    from xsim.models import network_from_spec

    arch = load_arch(ARCH / "isaac128.yaml", {"components.adc.bits": 9})
    net = network_from_spec("grouped", (64, 6, 6), [
        {"name": "dw", "kind": "conv", "out_channels": 64, "kernel": 3, "padding": 1, "groups": 64,
         "bias": False},
        {"name": "g2", "kind": "conv", "out_channels": 32, "kernel": 3, "padding": 1, "groups": 2,
         "bias": False, "activation": "relu"},
        {"kind": "flatten"}, {"name": "fc", "kind": "linear", "out_features": 10}])
    mapping = map_network(arch, net, weight_bits=8, input_bits=8)
    assert mapping.layer("dw").groups_per_array == 14 and mapping.layer("g2").row_blocks == 3
    weights = synthetic_weights(net, 3)
    model = CrossbarNetwork(mapping, weights, synthetic_inputs(net, 8, 4))
    x = synthetic_inputs(net, 2, 5)
    out = model.run(x, return_all=True)
    assert np.array_equal(out["fc"][:, :, 0, 0], model.run(x, exact=True))
    # The depthwise layer's integer sums equal a direct loop over the integer codes.
    ql = model.layers["dw"]
    codes = ql.act.quantise(x).astype(np.int64)
    w = ql.matrix.T.reshape(ql.layer.weight_shape).astype(np.int64)
    for i in range(2):
        ref = slow_conv(codes[i], w, None, (1, 1), (1, 1), 64)
        sums = np.rint(out["dw"][i] / (ql.act.scale * ql.scale)[:, None, None]).astype(np.int64)
        assert np.array_equal(sums, ref)
    # Tier 1 on one block-diagonal PE and tier 2 on the rest stay exact.
    lm = mapping.layer("g2")
    qtask = {"g2": -model.layers["g2"].matrix.astype(np.int64)}
    masks = TaskMasks.from_matrices(mapping, {lm.pes[0]}, np.full(mapping.tier2_columns, 0.5), qtask)
    assert np.array_equal(model.run(x, masks), model.run(x, masks, exact=True))


def _grouped_net():
    from xsim.models import network_from_spec

    return network_from_spec("grouped", (64, 6, 6), [
        {"name": "dw", "kind": "conv", "out_channels": 64, "kernel": 3, "padding": 1, "groups": 64,
         "bias": False},
        {"name": "g2", "kind": "conv", "out_channels": 32, "kernel": 3, "padding": 1, "groups": 2,
         "bias": False, "activation": "relu"},
        {"kind": "flatten"}, {"name": "fc", "kind": "linear", "out_features": 10}])


@pytest.mark.parametrize("case", ["lenet5-offset", "lenet5-differential", "grouped"])
def test_task_packing_reuses_the_backbone_and_packs_the_task_matrix(case):
    # A task packs the layers whose weights its tier-1 PEs changed: each conv group's planes and
    # stored weights are the task matrix's columns of that group; a layer whose task weights are
    # the backbone's keeps the backbone's packing.
    if case == "grouped":
        arch = load_arch(ARCH / "isaac128.yaml", {"components.adc.bits": 9})
        net = _grouped_net()
    else:
        arch = load_arch(ARCH / "isaac128.yaml", {**SMALL, "crossbar.encoding": case.split("-")[1]})
        net = ZOO["lenet5"]()
    mapping = map_network(arch, net, weight_bits=8, input_bits=8)
    weights = synthetic_weights(net, 4)
    calibration = synthetic_inputs(net, 2, 5)
    model = CrossbarNetwork(mapping, weights, calibration)
    rng = np.random.default_rng(6)
    layers = [lm for lm in mapping.layers if len(lm.pes[: lm.pes_per_replica]) > 1]
    same = layers[0].layer.name  # all its PEs tier 1, with the backbone's weights
    tier1, matrices = set(), {}
    for lm in mapping.layers:
        first = list(lm.pes[: lm.pes_per_replica])
        chosen = first if lm.layer.name == same else \
            [int(p) for p in rng.choice(first, size=max(1, len(first) // 2), replace=False)]
        task = model.layers[lm.layer.name].matrix.astype(np.int64)
        for i, index in enumerate(chosen):
            p = mapping.pes[index]
            if lm.layer.name != same and i % 3 != 2:  # every third chosen PE keeps its weights
                block = (slice(p.row_start, p.row_stop), slice(p.col_start, p.col_stop))
                task[block] = rng.integers(-127, 128, task[block].shape)
        tier1.update(chosen)
        matrices[lm.layer.name] = task
    masks = TaskMasks.from_matrices(mapping, tier1, None, matrices)
    programs = model.program(masks)
    s = model.settings
    for name, prog in programs.items():
        assert np.array_equal(prog.matrix, matrices[name])
        layer = model.layers[name].layer
        ng = layer.out_channels // layer.groups
        for g, packed in enumerate(prog.packed):
            cols = prog.matrix[:, g * ng : (g + 1) * ng]
            alone = pack_weights(cols.astype(np.int64), rows=s.rows, cell_bits=s.cell_bits,
                                 weight_bits=s.weight_bits, encoding=s.encoding)
            assert np.array_equal(packed.planes, alone.planes)
            assert np.array_equal(packed.stored.weights, cols)
    assert programs[same].packed is model.program(None)[same].packed


def test_effective_weights_kept_from_calibration_equal_recomputed_ones(mlp):
    _, mapping, _, model = mlp
    scales = np.full(mapping.tier2_columns, 0.5)
    masks = TaskMasks(tier2=scales)
    first = model.effective_weights(masks)  # calibrating the task made these
    again = model.effective_weights(masks)  # recomputed from the cached programs
    assert first is not again
    assert all(np.array_equal(first[k][0], again[k][0]) for k in first)
    # Laid out like the float weights (C order): BLAS's summation order can follow the layout.
    assert all(first[k][0].flags.c_contiguous for k in first)
    assert model.effective_weights(None) is model.weights


def test_a_released_task_is_packed_again_to_the_same_bits(mlp):
    _, mapping, _, model = mlp
    pe = mapping.pes[mapping.layer("fc2").pes[0]]
    task = -model.layers["fc2"].matrix.astype(np.int64)  # the tier-1 PE of fc2 holds other weights
    masks = TaskMasks.from_matrices(mapping, {pe.index}, np.full(mapping.tier2_columns, 0.75),
                                    {"fc2": task})
    x = synthetic_inputs(mapping.network, 2, 9)
    programs = model.program(masks)
    before = model.run(x, masks, return_all=True)
    model.release(masks)
    assert model.program(masks) is not programs  # packed again
    after = model.run(x, masks, return_all=True)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    backbone = model.program(None)
    model.release(None)
    model.release(TaskMasks())  # never run: nothing to forget
    assert model.program(None) is backbone


@pytest.mark.parametrize("noise", [0.0, 0.8])
def test_a_batch_equals_its_images_run_one_by_one(monkeypatch, noise):
    # A batch larger than a pass goes through the network a few images at a time: the logits
    # are the whole batch's, and each image's own, bit for bit, under tier-1 and tier-2 masks
    # (a lossy ADC keeps the bit-sliced kernels); with read noise the batch runs whole, as an
    # image's noise stream follows its place in the batch.
    from xsim.functional import network as functional_network

    arch = load_arch(ARCH / "isaac128.yaml", {**SMALL, "components.adc.bits": 6})
    net = ZOO["lenet5"]()
    mapping = map_network(arch, net, weight_bits=8, input_bits=8)
    weights = synthetic_weights(net, 2)
    model = CrossbarNetwork(mapping, weights, synthetic_inputs(net, 4, 3), noise_sigma=noise)
    lm = mapping.layers[1]
    masks = TaskMasks(tier1={lm.pes[0]}, tier2=np.full(mapping.tier2_columns, 0.75),
                      task_weights={lm.layer.name: np.zeros(lm.layer.weight_shape, np.int64)})
    images = 2 * functional_network._RUN_IMAGES + 1
    x = synthetic_inputs(net, images, 5)
    for m in (None, masks):
        parts = model.run(x, m)
        with monkeypatch.context() as patch:
            patch.setattr(functional_network, "_RUN_IMAGES", images)
            whole = model.run(x, m)
        np.testing.assert_array_equal(parts, whole)
        one = np.concatenate([model.run(x[i : i + 1], m) for i in range(images)])
        assert np.array_equal(whole, one) == (noise == 0.0)
