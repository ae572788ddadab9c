"""Weight/activation quantisation, tier-2 scale formats and TaskMasks validation."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ARCH
from xsim.config import load_arch
from xsim.functional import (
    TaskMasks,
    calibrate_activations,
    nonnegative_tensors,
    pe_grid,
    pow2_exponents,
    quantise_scales,
    quantise_weights,
    synthetic_inputs,
    synthetic_weights,
)
from xsim.mapping import map_network
from xsim.models.zoo import ZOO


def test_quantise_weights_per_channel_and_per_layer():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3))
    w[2] = 0.0
    q, scale = quantise_weights(w, 8)
    assert q.dtype == np.int64 and scale.dtype == np.float64 and scale.shape == (4,)
    assert np.abs(q).max() == 127
    assert np.all(np.abs(q.reshape(4, -1)).max(axis=1)[[0, 1, 3]] == 127)
    assert np.all(q[2] == 0) and scale[2] == 1.0
    assert np.abs(q * scale[:, None, None, None] - w).max() <= scale.max() / 2 + 1e-12
    q1, s1 = quantise_weights(w, 4, per_channel=False)
    assert np.all(s1 == s1[0]) and np.abs(q1).max() == 7
    assert np.isclose(s1[0], np.abs(w).max() / 7)
    with pytest.raises(ValueError, match="bits"):
        quantise_weights(w, 1)


def test_activation_signedness_and_calibration():
    lenet = ZOO["lenet5"]()
    acts = calibrate_activations(lenet, synthetic_weights(lenet, 0), synthetic_inputs(lenet, 2, 0), 8)
    assert acts["conv1"].signed and all(not acts[n].signed for n in ("conv2", "fc1", "fc2", "fc3"))
    assert acts["conv1"].dtype == np.int8 and acts["conv2"].dtype == np.uint8
    q = acts["conv2"].quantise(np.array([-1.0, 0.0, 1e9]))
    assert q.tolist() == [0, 0, 255]
    assert acts["conv1"].quantise(np.array([-1e9])).tolist() == [-127]
    mnv2 = ZOO["mobilenetv2"]((3, 32, 32), 10)
    nonneg = nonnegative_tensors(mnv2)
    # A linear bottleneck (projection conv without activation) feeds signed values on.
    linear = [layer.name for layer in mnv2.weight_layers if layer.activation is None]
    assert linear and not any(name in nonneg for name in linear)


def test_calibration_is_the_maximum():
    mlp = ZOO["mlp"]()
    w = synthetic_weights(mlp, 1)
    x = synthetic_inputs(mlp, 3, 1)
    acts = calibrate_activations(mlp, w, x, 8)
    assert np.isclose(acts["fc1"].scale, np.abs(x).max() / 127)
    lower = calibrate_activations(mlp, w, x, 8, percentile=90.0)
    assert lower["fc1"].scale < acts["fc1"].scale


@pytest.mark.parametrize("percentile", [100.0, 97.5])
def test_calibration_scales_are_those_of_every_kept_layer_output(percentile):
    # Calibration sees each tensor as it is made; its scales are bit for bit those computed from
    # every layer output of each sample kept (return_all).
    from xsim.functional import forward_float

    net = ZOO["resnet20"]()
    w = synthetic_weights(net, 2)
    x = synthetic_inputs(net, 2, 3)
    acts = calibrate_activations(net, w, x, 8, percentile=percentile)
    outputs = [forward_float(net, w, image, return_all=True) for image in x]
    for layer in net.weight_layers:
        src = layer.inputs[0]
        values = np.concatenate([np.abs(out[src]).ravel() for out in outputs])
        top = 127 if acts[layer.name].signed else 255
        assert acts[layer.name].scale == float(np.percentile(values, percentile)) / top


def test_pow2_scales():
    assert pow2_exponents(4) == (-7, 7) and pow2_exponents(1) == (0, 0)
    v = quantise_scales([0.0, 1.0, 1.3, 1.5, 3.0, 1000.0, 2.0**-7, 2.0**-8 * 1.01, 2.0**-8 * 0.99], "pow2", 4)
    assert v.tolist() == [0.0, 1.0, 1.0, 2.0, 4.0, 128.0, 2.0**-7, 2.0**-7, 0.0]
    assert quantise_scales([0.2, 0.7, 5.0], "pow2", 1).tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="negative"):
        quantise_scales([-1.0], "pow2", 4)
    with pytest.raises(ValueError, match="at most 10"):
        quantise_scales([1.0], "pow2", 11)


def test_fixed_and_float_scales():
    v = quantise_scales([0.0, 0.06, 0.1, 1.0, 1.9, 5.0], "fixed", 4)
    assert v.tolist() == [0.0, 0.0, 0.125, 1.0, 1.875, 1.875]
    assert quantise_scales([0.4, 0.6, 3.0], "fixed", 1).tolist() == [0.0, 1.0, 1.0]
    f = quantise_scales([-0.3, 1.2345], "float", 4)
    assert f.dtype == np.float64 and f.tolist() == [-0.3, 1.2345]
    with pytest.raises(ValueError, match="format"):
        quantise_scales([1.0], "log", 4)
    with pytest.raises(ValueError, match="NaN"):
        quantise_scales([np.nan], "float", 4)


@pytest.fixture(scope="module")
def small():
    arch = load_arch(ARCH / "isaac128.yaml", {"crossbar.rows": 16, "components.dac.count": 16,
                                             "crossbar.columns": 32, "hierarchy.crossbars_per_group": 2})
    return map_network(arch, ZOO["mlp"](), weight_bits=8, input_bits=8)


def test_replica_pes_are_refused_in_tier1(isaac128):
    mapping = map_network(isaac128, ZOO["lenet5"](), weight_bits=8, input_bits=8, replication=True)
    replica = next(p for p in mapping.pes if p.replica > 0)
    with pytest.raises(ValueError, match="replica"):
        TaskMasks(tier1={replica.index}).validate(mapping)


def test_pe_grid_covers_every_tier2_column_once(small):
    seen = []
    for lm in small.layers:
        grid = pe_grid(small, lm)
        assert grid.pe.shape == (-(-lm.row_blocks // lm.row_blocks_per_pe), lm.N)
        assert np.all(grid.pe >= 0) and np.all(grid.tier2 >= 0)
        seen.append(grid.tier2.ravel())
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(small.tier2_columns))


def test_task_masks_validation(small):
    net = small.network
    TaskMasks.identity(small).validate(small)
    with pytest.raises(ValueError, match="out of range"):
        TaskMasks(tier1={small.pe_count}).validate(small)
    with pytest.raises(ValueError, match="shape"):
        TaskMasks(tier2=np.ones(small.tier2_columns + 1)).validate(small)
    with pytest.raises(ValueError, match="no task weights"):
        TaskMasks(tier1={0}).validate(small)
    good = np.zeros(net["fc1"].weight_shape, dtype=np.int64)
    TaskMasks(tier1={0}, task_weights={"fc1": good}).validate(small)
    with pytest.raises(ValueError, match="shape"):
        TaskMasks(tier1={0}, task_weights={"fc1": good[:, :3]}).validate(small)
    with pytest.raises(ValueError, match=r"\[-127, 127\]"):
        TaskMasks(tier1={0}, task_weights={"fc1": good - 128}).validate(small)
    with pytest.raises(ValueError, match="integers"):
        TaskMasks(task_weights={"fc1": good.astype(float)})
    with pytest.raises(ValueError, match="no weight layer"):
        TaskMasks(task_weights={"nope": good}).validate(small)
    with pytest.raises(ValueError, match="NaN"):
        TaskMasks(tier2=np.full(small.tier2_columns, np.nan))
    m = TaskMasks.from_matrices(small, {0}, None, {"fc1": good.reshape(64, -1).T})
    assert m.task_weights["fc1"].shape == net["fc1"].weight_shape
    with pytest.raises(ValueError, match=r"\(K, N\)"):
        TaskMasks.from_matrices(small, {0}, None, {"fc1": good[:, :3]})
