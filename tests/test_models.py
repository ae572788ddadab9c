"""Model zoo and network_from_spec: shapes, published totals, error cases."""

from __future__ import annotations

import pytest

from xsim.models import (
    ZOO,
    LayerSpecError,
    UnknownModelError,
    build_model,
    network_from_spec,
)

# (name, torchvision parameter count with batch-norm gamma and beta, MACs of conv + fc).
PUBLISHED = {
    "resnet18": (11_689_512, 1.82e9),
    "resnet50": (25_557_032, 4.09e9),
    "vgg16": (138_357_544, 15.47e9),
    "mobilenetv2": (3_504_872, 0.30e9),
}


def _bn_channels(net):
    """Channels of the folded batch norms: every conv with a bias in these nets had one."""
    return sum(layer.out_channels for layer in net.layers if layer.kind == "conv" and layer.bias)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_totals(name):
    params, macs = PUBLISHED[name]
    net = build_model(name)
    assert net.input_shape == (3, 224, 224)
    assert net.output.out_shape == (1000, 1, 1)
    assert net.num_classes == 1000
    # Folding keeps one bias per batch-norm channel where torchvision counts gamma and beta.
    bn = _bn_channels(net) if name != "vgg16" else 0
    assert net.params + bn == params
    assert net.params == pytest.approx(params, rel=0.005)
    assert net.macs == pytest.approx(macs, rel=0.01)


def test_resnet50_details():
    net = build_model("resnet50")
    assert net.params == pytest.approx(25.53e6, rel=0.005)
    assert net.macs == pytest.approx(4.09e9, rel=0.01)
    # v1.5: the stride sits on the 3x3 conv, the 1x1 convs keep stride 1.
    assert net["layer2.0.conv1"].stride == (1, 1)
    assert net["layer2.0.conv2"].stride == (2, 2)
    assert net["layer2.0.downsample"].stride == (2, 2)
    assert net["layer2.0.downsample"].bias
    assert net["layer2.0.add"].inputs == ("layer2.0.conv3", "layer2.0.downsample")
    assert net["layer2.1.add"].inputs == ("layer2.1.conv3", "layer2.0.add")
    assert net["layer2.0.add"].activation == "relu"
    assert net["layer2.0.conv3"].activation is None
    assert net["layer4.2.add"].out_shape == (2048, 7, 7)
    assert net["avgpool"].kernel == (7, 7)
    assert net["fc"].in_shape == (2048, 1, 1)
    assert len(net.weight_layers) == 54  # 53 convs (incl. 4 downsamples) + fc


def test_resnet18_details():
    net = build_model("resnet18")
    assert net["conv1"].out_shape == (64, 112, 112)
    assert net["maxpool"].out_shape == (64, 56, 56)
    assert "layer1.0.downsample" not in net._index
    assert net["layer3.0.downsample"].out_shape == (256, 14, 14)
    assert len(net.weight_layers) == 21


def test_mobilenetv2_details():
    net = build_model("mobilenetv2")
    dw = [layer for layer in net.layers if layer.kind == "conv" and layer.groups > 1]
    assert len(dw) == 17
    for layer in dw:
        assert layer.groups == layer.in_channels == layer.out_channels
        assert layer.matrix_shape == (9, layer.out_channels)
        assert layer.activation == "relu6"
    adds = [layer for layer in net.layers if layer.kind == "add"]
    assert len(adds) == 10
    for add in adds:
        assert add.activation is None
        assert net[add.inputs[0]].activation is None  # linear bottleneck projection
    assert net["features.18"].out_shape == (1280, 7, 7)
    assert net["classifier.1"].in_shape == (1280, 1, 1)


def test_vgg16_details():
    net = build_model("vgg16")
    convs = [layer for layer in net.layers if layer.kind == "conv"]
    assert len(convs) == 13
    assert all(layer.bias and layer.activation == "relu" for layer in convs)
    assert net["classifier.0"].in_shape == (512 * 7 * 7, 1, 1)
    assert net["classifier.6"].activation is None


def test_lenet5():
    net = build_model("lenet5")
    assert net.input_shape == (1, 32, 32)
    assert net.params == 61_706
    assert [layer.out_shape for layer in net.layers] == [
        (6, 28, 28),
        (6, 14, 14),
        (16, 10, 10),
        (16, 5, 5),
        (400, 1, 1),
        (120, 1, 1),
        (84, 1, 1),
        (10, 1, 1),
    ]


def test_small_models():
    r20 = build_model("resnet20")
    assert r20.input_shape == (3, 32, 32)
    assert r20.output.out_shape == (10, 1, 1)
    assert len([lay for lay in r20.weight_layers if lay.kind == "conv"]) == 21  # 19 + 2 shortcuts
    assert r20.params == pytest.approx(0.27e6, rel=0.02)
    m = build_model("mlp")
    assert [layer.kind for layer in m.layers] == ["flatten", "linear", "linear"]
    assert m.params == 64 * 64 + 64 + 64 * 10 + 10


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_model_is_consistent(name):
    net = build_model(name)
    shapes = {"input": net.input_shape}
    for layer in net.layers:
        assert layer.in_shape == shapes[layer.inputs[0]]
        shapes[layer.name] = layer.out_shape
        if layer.kind == "conv":
            assert layer.bias  # folded batch norm or a plain conv bias
    assert net.output.out_shape == (net.num_classes, 1, 1)


def test_build_model_overrides():
    net = build_model("resnet18", input_shape=(1, 64, 64), num_classes=7)
    assert net["conv1"].in_shape == (1, 64, 64)
    assert net["avgpool"].kernel == (2, 2)
    assert net.output.out_shape == (7, 1, 1)
    assert net.num_classes == 7
    assert build_model("lenet5", input_shape=(1, 28, 28))["flatten"].out_shape == (256, 1, 1)


def test_build_model_unknown_name():
    with pytest.raises(KeyError, match="resnet50"):
        build_model("resnet51")
    with pytest.raises(ValueError, match="known models: lenet5, mlp"):
        build_model("resnet51")
    with pytest.raises(UnknownModelError):
        build_model(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "shape"),
    [("vgg16", (3, 16, 16)), ("lenet5", (1, 8, 8)), ("lenet5", (1, 12, 12))],
)
def test_build_model_input_too_small(name, shape):
    with pytest.raises(ValueError, match="too small"):
        build_model(name, input_shape=shape)


def test_build_model_bad_arguments():
    with pytest.raises(ValueError, match="out_features"):
        build_model("mlp", num_classes=0)
    with pytest.raises(ValueError, match="input shape"):
        build_model("mlp", input_shape=(8, 8))
    with pytest.raises(ValueError, match="input shape"):
        build_model("mlp", input_shape=(1, 0, 8))


# -- network_from_spec -----------------------------------------------------------------------


def test_spec_builds_shapes():
    net = network_from_spec(
        "tiny",
        (3, 16, 16),
        [
            {
                "name": "c1",
                "kind": "conv",
                "out_channels": 8,
                "kernel": 3,
                "padding": 1,
                "activation": "relu",
            },
            {
                "name": "dw",
                "kind": "conv",
                "out_channels": 8,
                "kernel": [3, 3],
                "stride": 2,
                "padding": 1,
                "groups": 8,
                "activation": "relu6",
            },
            {"name": "pw", "kind": "conv", "out_channels": 8, "kernel": 1, "bias": False},
            {"name": "sc", "kind": "maxpool", "kernel": 2, "inputs": "c1"},
            {"name": "sum", "kind": "add", "inputs": ["pw", "sc"], "activation": "relu"},
            {"kind": "avgpool"},
            {"kind": "flatten", "stride": None},
            {"name": "fc", "kind": "linear", "out_features": 4},
        ],
    )
    assert net["dw"].out_shape == (8, 8, 8)
    assert net["dw"].weight_shape == (8, 1, 3, 3)
    assert net["pw"].params == 64
    assert net["sc"].stride == (2, 2)  # pooling stride defaults to the kernel
    assert net["sum"].inputs == ("pw", "sc")
    assert net["avgpool5"].kernel == (8, 8)
    assert net["flatten6"].out_shape == (8, 1, 1)
    assert net["fc"].inputs == ("flatten6",)
    assert net["fc"].bias
    assert net.num_classes == 4


def test_spec_reproduces_zoo_model():
    zoo = build_model("lenet5")
    spec = [
        {
            "name": layer.name,
            "kind": layer.kind,
            **(
                {"out_channels": layer.out_channels, "kernel": list(layer.kernel)}
                if layer.kind == "conv"
                else {}
            ),
            **({"kernel": list(layer.kernel)} if layer.kind == "maxpool" else {}),
            **({"out_features": layer.out_channels} if layer.kind == "linear" else {}),
            **({"activation": layer.activation} if layer.has_weights else {}),
        }
        for layer in zoo.layers
    ]
    assert network_from_spec("lenet5", (1, 32, 32), spec) == zoo


_CONV = {"kind": "conv", "out_channels": 4, "kernel": 3}


@pytest.mark.parametrize(
    ("layers", "index", "key", "message"),
    [
        ([{"kind": "lstm"}], 0, "kind", "unknown kind 'lstm'"),
        ([{"out_channels": 4}], 0, "kind", "unknown kind None"),
        ([{**_CONV, "groups": 4}], 0, "groups", "input channels 6 not divisible by groups 4"),
        ([{**_CONV, "out_channels": 9, "groups": 2}], 0, "groups", "out_channels 9 not divisible"),
        ([{**_CONV, "out_channels": 0}], 0, "out_channels", "must be >= 1"),
        ([{**_CONV, "out_channels": -2}], 0, "out_channels", "must be >= 1"),
        ([{**_CONV, "kernel": 0}], 0, "kernel", "must be >= 1"),
        ([{**_CONV, "stride": 0}], 0, "stride", "must be >= 1"),
        ([{**_CONV, "padding": -1}], 0, "padding", "must be >= 0"),
        ([{**_CONV, "kernel": 2.5}], 0, "kernel", "expected an integer"),
        ([{**_CONV, "kernel": True}], 0, "kernel", "expected an integer"),
        ([{**_CONV, "kernel": [3, 3, 3]}], 0, "kernel", "an \\(h, w\\) pair"),
        ([{**_CONV, "kernel": 11}], 0, "kernel", "output size -2x-2 <= 0"),
        ([_CONV, {**_CONV, "kernel": [8, 1]}], 1, "kernel", "output size -1x6 <= 0"),
        ([{"kind": "conv", "kernel": 3}], 0, "out_channels", "needs 'out_channels'"),
        ([{**_CONV, "out_features": 3}], 0, "out_features", "not a key of a conv layer"),
        ([{**_CONV, "dilation": 0}], 0, "dilation", "must be >= 1"),
        ([{**_CONV, "dilation": 4}], 0, "kernel", "output size 0x0 <= 0"),
        ([{"kind": "concat", "inputs": ["input"]}], 0, "inputs", "at least 2 inputs"),
        (
            [{"name": "p", "kind": "maxpool", "kernel": 2},
             {"name": "c", "kind": "concat", "inputs": ["input", "p"]}],
            1,
            "inputs",
            "height and width must agree",
        ),
        ([{**_CONV, "activation": "gelu"}], 0, "activation", "unknown activation 'gelu'"),
        ([{**_CONV, "bias": "yes"}], 0, "bias", "expected true or false"),
        ([{**_CONV, "inputs": "c9"}], 0, "inputs", "unknown layer 'c9'"),
        ([{**_CONV, "inputs": ["input", "input"]}], 0, "inputs", "expected 1 input"),
        (
            [{"kind": "maxpool", "kernel": 2, "out_channels": 3}],
            0,
            "out_channels",
            "not a key of a maxpool layer",
        ),
        ([{"kind": "maxpool", "kernel": 3, "padding": 2}], 0, "padding", "exceeds half"),
        ([{"kind": "linear", "out_features": 3}], 0, "inputs", "insert a flatten"),
        (
            [{"kind": "flatten"}, {"kind": "linear", "out_features": 0}],
            1,
            "out_features",
            "must be >= 1",
        ),
        ([{"kind": "add", "inputs": ["input"]}], 0, "inputs", "at least 2 inputs"),
        ([{"kind": "add"}], 0, "inputs", "needs 'inputs'"),
        (
            [
                {"name": "a", **_CONV},
                {"name": "b", **_CONV, "out_channels": 8, "inputs": "input"},
                {"name": "s", "kind": "add", "inputs": ["a", "b"]},
            ],
            2,
            "inputs",
            r"cannot add 'b' of shape \(8, 6, 6\) to 'a' of shape \(4, 6, 6\)",
        ),
        ([{"name": "a", **_CONV}, {"name": "a", **_CONV}], 1, "name", "duplicate layer name"),
        ([{"name": "input", **_CONV}], 0, "name", "duplicate layer name 'input'"),
        ([{"name": 3, **_CONV}], 0, "name", "non-empty string"),
    ],
)
def test_spec_errors(layers, index, key, message):
    with pytest.raises(LayerSpecError, match=message) as info:
        network_from_spec("bad", (6, 8, 8), layers)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.network, err.index, err.key) == ("bad", index, key)
    assert f"layer {index}" in str(err)
    assert f"key {key!r}" in str(err)


def test_spec_error_names_the_layer():
    with pytest.raises(ValueError, match=r"layer 1 \('second'\), key 'groups'"):
        network_from_spec(
            "n", (4, 8, 8), [_CONV, {**_CONV, "name": "second", "out_channels": 6, "groups": 4}]
        )


@pytest.mark.parametrize(
    ("shape", "layers", "message"),
    [
        ((3, 8), [_CONV], "input shape"),
        ((3, 8, 0), [_CONV], "input shape"),
        ((3, 8, 8), [], "no layers"),
        ((3, 8, 8), {"kind": "flatten"}, "list of layer dicts"),
        ((3, 8, 8), ["conv"], "expected a dict"),
    ],
)
def test_spec_structure_errors(shape, layers, message):
    with pytest.raises(ValueError, match=message):
        network_from_spec("n", shape, layers)
