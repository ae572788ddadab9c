"""Float reference inference: im2col against direct loops, weights I/O, whole-network runs."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xsim.functional import (
    check_weights,
    conv_columns,
    conv_patches,
    forward_float,
    grouped_patches,
    im2col,
    load_weights,
    patches_to_map,
    residual_branch_ends,
    save_weights,
    synthetic_inputs,
    synthetic_weights,
)
from xsim.models import GraphBuilder, build_model, network_from_spec

# -- slow references -------------------------------------------------------------------------


def slow_conv(x, w, b, stride, padding, groups):
    """Direct loop convolution of one image (C, H, W), PyTorch semantics."""
    _, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    sh, sw = stride
    ph, pw = padding
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((cout, ho, wo))
    per_group = cout // groups
    for n in range(cout):
        g = n // per_group
        for oy in range(ho):
            for ox in range(wo):
                acc = 0.0 if b is None else b[n]
                for c in range(cg):
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * sh + ky - ph, ox * sw + kx - pw
                            if 0 <= iy < h and 0 <= ix < wd:
                                acc += w[n, c, ky, kx] * x[g * cg + c, iy, ix]
                out[n, oy, ox] = acc
    return out


def slow_pool(x, kind, kernel, stride, padding):
    c, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((c, ho, wo))
    for ch in range(c):
        for oy in range(ho):
            for ox in range(wo):
                vals = []
                for ky in range(kh):
                    for kx in range(kw):
                        iy, ix = oy * sh + ky - ph, ox * sw + kx - pw
                        inside = 0 <= iy < h and 0 <= ix < wd
                        if inside:
                            vals.append(x[ch, iy, ix])
                        elif kind == "avgpool":
                            vals.append(0.0)  # count_include_pad=True
                out[ch, oy, ox] = max(vals) if kind == "maxpool" else sum(vals) / (kh * kw)
    return out


def conv_layer(in_shape, cout, kernel, stride=1, padding=0, groups=1, dilation=1):
    b = GraphBuilder("t", in_shape)
    b.conv("c", cout, kernel, stride=stride, padding=padding, groups=groups, dilation=dilation)
    return b.build()["c"]


def conv_via_patches(x, layer, w, b):
    """The crossbar view: each group's patches times that group's weight-matrix columns."""
    cout, g = layer.out_channels, layer.groups
    wmat = w.reshape(cout, -1)
    per = cout // g
    cols = np.concatenate(
        [conv_patches(x, layer, grp) @ wmat[grp * per : (grp + 1) * per].T for grp in range(g)],
        axis=1,
    )
    out = patches_to_map(cols, layer)
    return out if b is None else out + b[:, None, None]


# -- im2col ----------------------------------------------------------------------------------

CONV_CASES = [
    # in_shape, cout, kernel, stride, padding, groups
    ((3, 7, 7), 4, 3, 1, 0, 1),
    ((3, 7, 7), 4, 3, 2, 1, 1),
    ((2, 9, 6), 5, (3, 2), (2, 1), (1, 0), 1),
    ((4, 8, 8), 6, 3, 1, 1, 2),
    ((6, 7, 9), 6, 3, 2, 1, 6),  # depthwise
    ((4, 6, 6), 8, 3, 1, 1, 4),  # depthwise with channel multiplier 2
    ((3, 10, 10), 2, 7, 2, 3, 1),  # ResNet stem-like
    ((5, 5, 5), 3, 1, 2, 0, 1),  # strided 1x1 (downsample)
    ((2, 4, 4), 3, 5, 1, 2, 1),  # kernel larger than the unpadded input
]


@pytest.mark.parametrize(("in_shape", "cout", "kernel", "stride", "padding", "groups"), CONV_CASES)
def test_im2col_conv_matches_direct_loops(in_shape, cout, kernel, stride, padding, groups):
    rng = np.random.default_rng(1)
    layer = conv_layer(in_shape, cout, kernel, stride, padding, groups)
    x = rng.standard_normal(in_shape)
    w = rng.standard_normal(layer.weight_shape)
    b = rng.standard_normal(cout)
    expected = slow_conv(x, w, b, layer.stride, layer.padding, groups)
    assert expected.shape == layer.out_shape
    np.testing.assert_allclose(conv_via_patches(x, layer, w, b), expected, rtol=1e-12, atol=1e-12)

    k = layer.matrix_shape[0]
    full = im2col(x, layer)
    grouped = grouped_patches(x, layer)
    assert full.shape == (layer.output_pixels, groups * k)
    assert grouped.shape == (groups, layer.output_pixels, k)
    for grp in range(groups):
        np.testing.assert_array_equal(conv_patches(x, layer, grp), grouped[grp])
        np.testing.assert_array_equal(full[:, grp * k : (grp + 1) * k], grouped[grp])
    if groups == 1:
        got = patches_to_map(full @ w.reshape(cout, -1).T, layer) + b[:, None, None]
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)

    net = network_from_spec(
        "one",
        in_shape,
        [
            {
                "name": "c",
                "kind": "conv",
                "out_channels": cout,
                "kernel": kernel,
                "stride": stride,
                "padding": padding,
                "groups": groups,
            },
        ],
    )
    got = forward_float(net, {"c": (w, b)}, x)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def _conv_net(layer):
    spec = {"name": "c", "kind": "conv", "out_channels": layer.out_channels, "kernel": layer.kernel,
            "stride": layer.stride, "padding": layer.padding, "groups": layer.groups,
            "dilation": layer.dilation, "bias": False}
    return network_from_spec("one", layer.in_shape, [spec])


def assert_columns_give_the_patch_product(layer, seed):
    """The columns are the patch matrix's transpose, bit for bit, and the float reference's conv
    (the weights times the columns) is the generic patch-matrix product to float64 rounding."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(layer.in_shape)
    w = rng.standard_normal(layer.weight_shape)
    g, cout = layer.groups, layer.out_channels
    cols = conv_columns(x, layer)
    patches = grouped_patches(x, layer)
    assert cols.shape == (g, patches.shape[2], patches.shape[1])
    np.testing.assert_array_equal(cols.transpose(0, 2, 1), patches)
    wmat = w.reshape(g, cout // g, -1).transpose(0, 2, 1)
    generic = np.matmul(patches, wmat).transpose(0, 2, 1).reshape(layer.out_shape)
    got = forward_float(_conv_net(layer), {"c": (w, None)}, x, return_all=True)["c"]
    # Both sum the same K products per output; BLAS may order them otherwise in either layout.
    bound = 1e-13 * max(1.0, float(np.abs(patches).sum(axis=2).max() * np.abs(w).max()))
    np.testing.assert_allclose(got, generic, rtol=0, atol=bound)
    return cols, x


@settings(max_examples=40, deadline=None)
@given(
    cg=st.integers(1, 3),
    groups=st.integers(1, 3),
    per_group=st.integers(1, 3),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    sh=st.integers(1, 3),
    sw=st.integers(1, 3),
    ph=st.integers(0, 2),
    pw=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_im2col_conv_random(cg, groups, per_group, h, w, kh, kw, sh, sw, ph, pw, seed):
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return  # empty output: the builder rejects it (tested in test_models)
    in_shape = (cg * groups, h, w)
    layer = conv_layer(in_shape, per_group * groups, (kh, kw), (sh, sw), (ph, pw), groups)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(in_shape)
    wt = rng.standard_normal(layer.weight_shape)
    expected = slow_conv(x, wt, None, (sh, sw), (ph, pw), groups)
    np.testing.assert_allclose(conv_via_patches(x, layer, wt, None), expected, atol=1e-12)
    assert_columns_give_the_patch_product(layer, seed)


FAST_CONV_CASES = [
    # in_shape, cout, kernel, stride, padding, groups, dilation: large and small products,
    # matrix-vector ones (depthwise) and 1x1 convs whose columns are the input itself.
    ((64, 14, 14), 256, 1, 1, 0, 1, 1),  # 1x1: the columns are the input itself
    ((512, 14, 14), 256, 1, 1, 0, 2, 1),  # grouped 1x1
    ((128, 29, 29), 256, 1, 2, 0, 1, 1),  # strided 1x1 (downsample), odd input
    ((64, 14, 14), 128, 1, 1, 1, 1, 1),  # padded 1x1: the window path
    ((64, 28, 28), 64, 3, 1, 1, 1, 1),  # ResNet 3x3
    ((64, 28, 28), 64, 3, 2, 1, 1, 1),  # strided 3x3
    ((3, 64, 64), 64, 7, 2, 3, 1, 1),  # stem-like
    ((64, 23, 23), 128, (3, 2), (2, 1), (2, 1), 2, (2, 3)),  # dilated, grouped, rectangular
    ((3, 32, 32), 16, 7, 2, 3, 1, 1),  # small product
    ((32, 12, 12), 32, 3, 1, 2, 32, 2),  # dilated depthwise: matrix-vector products
    ((16, 9, 9), 32, 1, 1, 0, 1, 1),  # small 1x1
]


@pytest.mark.parametrize(("in_shape", "cout", "kernel", "stride", "padding", "groups", "dilation"),
                         FAST_CONV_CASES)
def test_conv_columns_give_the_patch_product(in_shape, cout, kernel, stride, padding, groups,
                                             dilation):
    layer = conv_layer(in_shape, cout, kernel, stride, padding, groups, dilation)
    cols, x = assert_columns_give_the_patch_product(layer, 4)
    if layer.kernel == (1, 1) and layer.padding == (0, 0) and layer.stride == (1, 1):
        assert np.shares_memory(cols, x)


@settings(max_examples=20, deadline=None)
@given(
    cg=st.integers(16, 96),
    groups=st.integers(1, 2),
    per_group=st.integers(16, 96),
    h=st.integers(6, 20),
    w=st.integers(6, 20),
    k=st.sampled_from([1, 3]),
    stride=st.integers(1, 2),
    padding=st.integers(0, 1),
    dilation=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_conv_columns_give_the_patch_product_random_large(cg, groups, per_group, h, w, k, stride,
                                                          padding, dilation, seed):
    layer = conv_layer((cg * groups, h, w), per_group * groups, k, stride, padding, groups,
                       dilation)
    assert_columns_give_the_patch_product(layer, seed)


def test_im2col_errors():
    layer = conv_layer((4, 6, 6), 4, 3, groups=2)
    with pytest.raises(ValueError, match="does not match"):
        im2col(np.zeros((3, 6, 6)), layer)
    with pytest.raises(ValueError, match="one image"):
        im2col(np.zeros((1, 4, 6, 6)), layer)
    with pytest.raises(ValueError, match="group 2 out of range"):
        conv_patches(np.zeros((4, 6, 6)), layer, 2)
    with pytest.raises(ValueError, match="not a conv"):
        im2col(np.zeros((4, 6, 6)), build_model("lenet5")["pool1"])
    with pytest.raises(ValueError, match="expected results of shape"):
        patches_to_map(np.zeros((16, 3)), layer)


@pytest.mark.parametrize(
    ("kind", "kernel", "stride", "padding"),
    [
        ("maxpool", 3, 2, 1),  # ResNet stem pool: pads with -inf
        ("maxpool", 2, 2, 0),
        ("maxpool", (3, 2), (1, 2), (1, 1)),
        ("avgpool", 3, 2, 1),  # padded zeros count in the divisor
        ("avgpool", 2, 1, 0),
    ],
)
def test_pooling_matches_direct_loops(kind, kernel, stride, padding):
    in_shape = (3, 7, 8)
    net = network_from_spec(
        "p", in_shape, [{"kind": kind, "kernel": kernel, "stride": stride, "padding": padding}]
    )
    layer = net.layers[0]
    # All-negative input: a max pool padded with zeros instead of -inf would show up.
    x = -np.abs(np.random.default_rng(2).standard_normal((2, *in_shape))) - 0.1
    got = forward_float(net, {}, x)
    for i in range(2):
        expected = slow_pool(x[i], kind, layer.kernel, layer.stride, layer.padding)
        np.testing.assert_allclose(got[i], expected, rtol=1e-12)


def test_forward_matches_hand_computation():
    net = network_from_spec(
        "hand",
        (2, 4, 4),
        [
            {"name": "a", "kind": "conv", "out_channels": 2, "kernel": 1, "activation": "relu6"},
            {"name": "s", "kind": "add", "inputs": ["a", "input"], "activation": "relu"},
            {"name": "g", "kind": "avgpool"},
            {"name": "f", "kind": "flatten"},
            {"name": "fc", "kind": "linear", "out_features": 3, "bias": False},
        ],
    )
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 4, 4)) * 4
    wa, ba = rng.standard_normal((2, 2, 1, 1)), rng.standard_normal(2)
    wfc = rng.standard_normal((3, 2))
    a = np.clip(np.einsum("nc,bchw->bnhw", wa[:, :, 0, 0], x) + ba[:, None, None], 0, 6)
    s = np.maximum(a + x, 0)
    expected = s.mean(axis=(2, 3)) @ wfc.T
    got = forward_float(net, {"a": (wa, ba), "fc": (wfc, None)}, x)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


# -- whole networks --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet20", "lenet5", "mlp", "mobilenetv2"])
def test_forward_zoo_models(name):
    kwargs = {"input_shape": (3, 32, 32)} if name == "mobilenetv2" else {}
    net = build_model(name, **kwargs)
    w = synthetic_weights(net, seed=7)
    x = synthetic_inputs(net, 3, seed=11)
    out = forward_float(net, w, x)
    assert out.shape == (3, net.num_classes)
    assert out.dtype == np.float64
    assert np.all(np.isfinite(out))
    assert 1e-2 < out.std() < 1e2
    # Deterministic: same seeds, same bits.
    again = forward_float(net, synthetic_weights(net, seed=7), synthetic_inputs(net, 3, seed=11))
    np.testing.assert_array_equal(out, again)
    # One image without a batch axis gives that image's row.
    np.testing.assert_allclose(forward_float(net, w, x[1]), out[1], rtol=1e-12, atol=1e-12)
    # Another weight seed gives other logits.
    assert not np.allclose(forward_float(net, synthetic_weights(net, seed=8), x), out)


def test_forward_return_all_and_float32():
    net = build_model("resnet20")
    w = synthetic_weights(net, seed=0)
    x = synthetic_inputs(net, 2, seed=0)
    every = forward_float(net, w, x, return_all=True)
    assert list(every) == ["input", *(layer.name for layer in net.layers)]
    for layer in net.layers:
        assert every[layer.name].shape == (2, *layer.out_shape)
        if layer.activation == "relu":
            assert every[layer.name].min() >= 0
    logits = forward_float(net, w, x)
    np.testing.assert_array_equal(every["fc"][:, :, 0, 0], logits)
    single = forward_float(net, w, x[0], return_all=True)
    assert single["layer3.2.add"].shape == net["layer3.2.add"].out_shape
    out32 = forward_float(net, w, x, dtype=np.float32)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, logits, rtol=1e-3, atol=1e-4)
    seen = {}
    observed = forward_float(net, w, x, observe=lambda name, t: seen.setdefault(name, t.copy()))
    np.testing.assert_array_equal(observed, logits)
    assert list(seen) == list(every)
    assert all(np.array_equal(seen[name], every[name]) for name in every)


def test_forward_errors():
    net = build_model("lenet5")
    w = synthetic_weights(net, seed=0)
    with pytest.raises(ValueError, match=r"got shape \(3, 32, 32\)"):
        forward_float(net, w, np.zeros((3, 32, 32)))
    with pytest.raises(ValueError, match="got shape"):
        forward_float(net, w, np.zeros((32, 32)))
    with pytest.raises(ValueError, match="floating-point"):
        forward_float(net, w, np.zeros((1, 32, 32)), dtype=np.int32)
    bad = dict(w)
    del bad["fc3"]
    with pytest.raises(ValueError, match="missing key 'fc3.weight'"):
        forward_float(net, bad, np.zeros((1, 32, 32)))
    bad = {**w, "fc3": (w["fc3"][0].T, w["fc3"][1])}
    with pytest.raises(ValueError, match=r"expected \(10, 84\), found \(84, 10\)"):
        forward_float(net, bad, np.zeros((1, 32, 32)))


def test_resnet50_activations_stay_order_one():
    net = build_model("resnet50")
    w = synthetic_weights(net, seed=0)
    x = synthetic_inputs(net, 1, seed=0)
    start = time.perf_counter()
    every = forward_float(net, w, x, return_all=True)
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0
    for name, out in every.items():
        assert np.all(np.isfinite(out)), name
        assert 1e-2 < out.std() < 1e2, (name, out.std())
    assert every["fc"].shape == (1, 1000, 1, 1)


# -- weights ---------------------------------------------------------------------------------


def test_synthetic_weights_shapes_and_determinism():
    net = build_model("resnet20")
    w = synthetic_weights(net, seed=5)
    assert list(w) == [layer.name for layer in net.weight_layers]
    for layer in net.weight_layers:
        wt, b = w[layer.name]
        assert wt.shape == layer.weight_shape
        assert wt.dtype == np.float64
        assert b is not None and b.shape == (layer.out_channels,) and b.dtype == np.float64
    again = synthetic_weights(net, seed=5)
    other = synthetic_weights(net, seed=6)
    for name in w:
        np.testing.assert_array_equal(w[name][0], again[name][0])
        np.testing.assert_array_equal(w[name][1], again[name][1])
        assert not np.array_equal(w[name][0], other[name][0])
    # He-normal scale: std ~ sqrt(2 / fan_in) before a ReLU.
    conv = net["layer2.0.conv1"]
    assert w[conv.name][0].std() == pytest.approx(np.sqrt(2 / conv.matrix_shape[0]), rel=0.1)
    check_weights(net, w)


def test_synthetic_weights_appending_a_layer_keeps_the_others():
    layers = [
        {"name": "c1", "kind": "conv", "out_channels": 4, "kernel": 3, "activation": "relu"},
        {"name": "c2", "kind": "conv", "out_channels": 4, "kernel": 3, "bias": False},
    ]
    short = network_from_spec("n", (2, 9, 9), layers)
    longer = network_from_spec(
        "n", (2, 9, 9), [*layers, {"name": "c3", "kind": "conv", "out_channels": 2, "kernel": 1}]
    )
    a, b = synthetic_weights(short, 3), synthetic_weights(longer, 3)
    assert a["c2"][1] is None
    for name in a:
        np.testing.assert_array_equal(a[name][0], b[name][0])
    assert set(b) == {"c1", "c2", "c3"}


def test_residual_branch_ends():
    r50 = build_model("resnet50")
    ends = residual_branch_ends(r50)
    assert len(ends) == 16
    assert all(name.endswith(".conv3") for name in ends)
    mb = build_model("mobilenetv2")
    ends = residual_branch_ends(mb)
    assert len(ends) == 10
    assert all(mb[name].activation is None and mb[name].kernel == (1, 1) for name in ends)
    w = synthetic_weights(r50, seed=0)
    conv3 = r50["layer1.0.conv3"]
    assert w[conv3.name][0].std() == pytest.approx(0.2 / np.sqrt(conv3.matrix_shape[0]), rel=0.1)


def test_synthetic_errors():
    net = build_model("mlp")
    with pytest.raises(ValueError, match="seed"):
        synthetic_weights(net, -1)
    with pytest.raises(ValueError, match="seed"):
        synthetic_inputs(net, 1, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be"):
        synthetic_inputs(net, 0, seed=0)
    x = synthetic_inputs(net, 4, seed=9)
    assert x.shape == (4, 1, 8, 8) and x.dtype == np.float64
    np.testing.assert_array_equal(x, synthetic_inputs(net, 4, seed=9))


def test_weights_round_trip(tmp_path):
    net = build_model("resnet20")
    w = synthetic_weights(net, seed=1)
    path = tmp_path / "w.npz"
    save_weights(path, w)
    loaded = load_weights(path, net)
    assert list(loaded) == list(w)
    for name, (wt, b) in w.items():
        np.testing.assert_array_equal(loaded[name][0], wt)
        np.testing.assert_array_equal(loaded[name][1], b)
    # Overwriting replaces the file and leaves no temporary behind.
    w2 = synthetic_weights(net, seed=2)
    save_weights(str(path), w2)
    np.testing.assert_array_equal(load_weights(str(path), net)["fc"][0], w2["fc"][0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]
    assert path.stat().st_mode & 0o777 == 0o644
    # A name without the .npz suffix is kept as given.
    save_weights(tmp_path / "plain", w)
    assert (tmp_path / "plain").exists()
    # Layers without bias have no bias key; integer arrays load as float64.
    mlp = build_model("mlp")
    arrays = {
        "fc1.weight": np.ones((64, 64), dtype=np.int32),
        "fc1.bias": np.zeros(64, dtype=np.float32),
        "fc2.weight": np.ones((10, 64)),
        "fc2.bias": np.zeros(10),
    }
    np.savez(tmp_path / "ints.npz", **arrays)
    loaded = load_weights(tmp_path / "ints.npz", mlp)
    assert loaded["fc1"][0].dtype == np.float64 and loaded["fc1"][1].dtype == np.float64


def test_save_weights_failure_leaves_old_file(tmp_path, monkeypatch):
    net = build_model("mlp")
    path = tmp_path / "w.npz"
    save_weights(path, synthetic_weights(net, 0))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="key 'fc1.weight' has non-numeric dtype object"):
        save_weights(path, {"fc1": (np.array([object()]), None)})
    with pytest.raises(ValueError, match="expected a \\(weight, bias\\) pair"):
        save_weights(path, {"fc1": np.zeros(3)})

    def interrupted(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(OSError, match="disk full"):
        save_weights(path, synthetic_weights(net, 1))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]


def _mlp_arrays():
    net = build_model("mlp")
    arrays = {f"{k}.weight": v[0] for k, v in synthetic_weights(net, 0).items()}
    arrays.update({f"{k}.bias": v[1] for k, v in synthetic_weights(net, 0).items()})
    return net, arrays


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda a: a.pop("fc2.weight"), r"missing key 'fc2.weight' \(expected shape \(10, 64\)"),
        (lambda a: a.pop("fc1.bias"), r"missing key 'fc1.bias' \(expected shape \(64,\)"),
        (
            lambda a: a.update({"fc3.weight": np.zeros((2, 3))}),
            r"unexpected key 'fc3.weight' \(found shape \(2, 3\)",
        ),
        (
            lambda a: a.update({"fc1.weight": np.zeros((64, 65))}),
            r"key 'fc1.weight' has the wrong shape: expected \(64, 64\), found \(64, 65\)",
        ),
        (
            lambda a: a.update({"fc2.bias": np.zeros((10, 1))}),
            r"key 'fc2.bias' has the wrong shape: expected \(10,\), found \(10, 1\)",
        ),
        (
            lambda a: a.update({"fc2.bias": np.array(["x"] * 10)}),
            "key 'fc2.bias' .* non-numeric dtype",
        ),
        (
            lambda a: a.update({"fc2.bias": np.full(10, np.nan)}),
            "key 'fc2.bias' .* NaN or infinite",
        ),
    ],
)
def test_load_weights_errors(tmp_path, change, pattern):
    net, arrays = _mlp_arrays()
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=pattern) as info:
        load_weights(path, net)
    assert str(path) in str(info.value)


def test_load_weights_bad_files(tmp_path):
    net, arrays = _mlp_arrays()
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an archive at all")
    with pytest.raises(ValueError, match=f"{garbage}.*not a readable .npz"):
        load_weights(garbage, net)
    single = tmp_path / "one.npy"
    np.save(single, arrays["fc1.weight"])
    with pytest.raises(ValueError, match=f"{single}.*single .npy array"):
        load_weights(single, net)
    with pytest.raises(FileNotFoundError):
        load_weights(Path(tmp_path / "absent.npz"), net)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**arrays, "fc1.bias": np.array([object()] * 64)})
    with pytest.raises(ValueError, match=f"{pickled}"):
        load_weights(pickled, net)


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")


def test_the_float64_reference_runs_blas_on_one_thread(monkeypatch):
    """Its bits must not depend on the host's cores (a threaded BLAS splits some products by
    thread count); float32, a timing baseline, keeps BLAS's threads."""
    from threadpoolctl import threadpool_limits

    import xsim.functional.reference as reference

    net = build_model("lenet5")
    w = synthetic_weights(net, seed=0)
    x = synthetic_inputs(net, 1, seed=0)
    seen = []
    conv = reference._conv

    def recording(*args):
        seen.append(_blas_threads())
        return conv(*args)

    monkeypatch.setattr(reference, "_conv", recording)
    with threadpool_limits(limits=2, user_api="blas"):
        outside = _blas_threads()
        forward_float(net, w, x)
        float64 = set(seen)
        seen.clear()
        forward_float(net, w, x, dtype=np.float32)
        assert _blas_threads() == outside  # given back
    assert float64 == {1}
    assert set(seen) == {outside}


def test_one_blas_thread_nests_and_gives_back_what_was_there():
    import threading

    from threadpoolctl import threadpool_limits

    from xsim.processes import one_blas_thread

    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        with one_blas_thread():
            assert _blas_threads() == 1
            with one_blas_thread():
                assert _blas_threads() == 1
            assert _blas_threads() == 1
        assert _blas_threads() == before
        with one_blas_thread(when=False):
            assert _blas_threads() == before
    # Another thread, once no thread holds the limits, sets them as well.
    seen = []

    def other():
        with one_blas_thread():
            seen.append(_blas_threads())

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [1]


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc's allocator only")
def test_keep_freed_memory_reuses_the_pages_of_freed_arrays():
    """After :func:`keep_freed_memory`, arrays made again where freed ones were start on pages the
    process already has (no page faults); glibc's default hands such memory back to the kernel.
    Each case in a fresh interpreter: the setting is process-wide."""
    script = """if True:
        import resource, sys
        from xsim.processes import keep_freed_memory
        kept = keep_freed_memory() and keep_freed_memory() if sys.argv[1] == "keep" else False
        import numpy as np
        faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(2):
            arrays = [np.ones(2 << 20) for _ in range(4)]  # 4 x 16 MiB, then freed
            del arrays
        before = faults()
        arrays = [np.ones(2 << 20) for _ in range(4)]
        print(kept, faults() - before)
    """
    out = {}
    for case in ("keep", "default"):
        proc = subprocess.run([sys.executable, "-c", script, case], capture_output=True, text=True,
                              check=True)
        kept, faults = proc.stdout.split()
        out[case] = (kept, int(faults))
    assert out["keep"][0] == "True" and out["default"][0] == "False"
    # 64 MiB touched again: by default 16,384 faults of 4 KiB pages, or 32 of 2 MiB huge pages.
    assert out["keep"][1] < 16 <= out["default"][1]
