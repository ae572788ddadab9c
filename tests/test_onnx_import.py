"""ONNX import: small torch networks exported to ONNX, imported, and checked against onnxruntime
(float reference) and through the bit-accurate crossbar model; the refusals name node and op."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from conftest import ARCH

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from xsim.cli import main  # noqa: E402
from xsim.config import ConfigError, load_arch  # noqa: E402
from xsim.functional import CrossbarNetwork, forward_float  # noqa: E402
from xsim.importers.onnx import SUPPORTED_OPS, import_onnx  # noqa: E402
from xsim.mapping import map_network  # noqa: E402

# onnxruntime computes in float32, xsim's reference in float64.
MAX_REL_ERROR = 1e-5


class SmallCnn(nn.Module):
    """Conv + batch norm + ReLU, max pool, a grouped dilated conv with ReLU6, concat, avg pool,
    a view-flatten and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4)
        self.conv3 = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(12 * 4 * 4, 10)

    def forward(self, x):
        y = F.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        z = F.relu6(self.conv2(y))
        y = torch.cat([y, self.conv3(z)], 1)
        y = F.avg_pool2d(y, 2)
        return self.fc(y.view(y.size(0), -1))


class ResidualNet(nn.Module):
    """Strided padded conv, a residual block (add, then ReLU), a depthwise conv, global average
    pooling, torch.flatten and a two-layer head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 8, 5, stride=2, padding=2)
        self.bn = nn.BatchNorm2d(8)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(x + self.b(torch.relu(self.a(x))))
        x = F.max_pool2d(self.dw(x), 3, stride=2, padding=1)
        x = torch.flatten(self.pool(torch.relu(x)), 1)
        return self.fc2(torch.relu(self.fc1(x)))


class Mlp(nn.Module):
    """A (batch, features) input, a constant MatMul plus bias, Linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(20, 32) * 0.2)
        self.b = nn.Parameter(torch.randn(32) * 0.1)
        self.fc = nn.Linear(32, 12)
        self.out = nn.Linear(12, 4, bias=False)

    def forward(self, x):
        x = torch.relu(x @ self.w + self.b)
        return self.out(torch.clamp(self.fc(x), 0.0, 6.0))


NETWORKS = {"small_cnn": (SmallCnn, (3, 16, 16)), "residual": (ResidualNet, (2, 24, 24)),
            "mlp": (Mlp, (20,))}


def _randomise_batch_norm(module: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)


def _export(module: nn.Module, shape: tuple[int, ...], path) -> None:
    """TorchScript export (the dynamo exporter needs onnxscript), batch size left open."""
    x = torch.randn(1, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (x,), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


def exported(name: str, tmp_path):
    factory, shape = NETWORKS[name]
    torch.manual_seed(1)
    module = factory().eval()
    _randomise_batch_norm(module, 2)
    path = tmp_path / f"{name}.onnx"
    _export(module, shape, path)
    return path, shape


def _onnxruntime(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def _rel_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def _images(shape, n=4, seed=3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_float_reference_matches_onnxruntime(name, tmp_path):
    path, shape = exported(name, tmp_path)
    model = import_onnx(path)
    x = _images(shape)
    want = _onnxruntime(path, x)
    got = forward_float(model.network, model.weights,
                        x.astype(np.float64).reshape(len(x), *model.input_shape))
    assert got.shape == want.shape
    assert _rel_error(got, want) <= MAX_REL_ERROR


def test_imported_layers(tmp_path):
    path, _ = exported("small_cnn", tmp_path)
    layers = {spec["name"]: spec for spec in import_onnx(path).layers}
    kinds = [spec["kind"] for spec in layers.values()]
    # Batch norm and the activations are folded into the convolutions; nothing else is left.
    assert kinds == ["conv", "maxpool", "conv", "conv", "concat", "avgpool", "flatten", "linear"]
    assert layers["conv1"]["activation"] == "relu" and layers["conv1"]["bias"] is True
    assert layers["conv2"]["dilation"] == [2, 2] and layers["conv2"]["groups"] == 4
    assert layers["conv2"]["activation"] == "relu6"


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_bit_accurate_model_tracks_its_float_reference(name, tmp_path):
    path, shape = exported(name, tmp_path)
    model = import_onnx(path)
    arch = load_arch(ARCH / "isaac128.yaml")
    mapping = map_network(arch, model.network, weight_bits=8, input_bits=8)
    calibration = _images(shape, n=8, seed=5).astype(np.float64).reshape(8, *model.input_shape)
    crossbars = CrossbarNetwork(mapping, model.weights, calibration)
    x = _images(shape, n=4, seed=6).astype(np.float64).reshape(4, *model.input_shape)
    got, want = crossbars.run(x), crossbars.reference(x)
    # 8-bit weights and inputs through 8-bit ADCs: a few per cent, never a broken graph.
    assert _rel_error(got, want) < 0.08
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99


def _graph(nodes, inits, in_shape=(1, 3, 8, 8), out_shape=None, opset=17):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    # IR version 8 (opset 17 era): what onnxruntime reads, whatever onnx writes by default.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def test_batch_norm_folding_and_pooling_against_onnxruntime(tmp_path):
    """Ops torch's exporter folds away: BatchNormalization after a conv, padded MaxPool,
    GlobalMaxPool, Flatten, Gemm with transB = 0 and alpha/beta, Dropout and Identity."""
    from onnx import helper

    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((6, 3, 3, 3)), "s": rng.random(6) + 0.5,
             "b": rng.standard_normal(6), "m": rng.standard_normal(6), "v": rng.random(6) + 0.2,
             "g": rng.standard_normal((6, 4)), "c": rng.standard_normal(4)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c1"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["n1"], name="bn",
                         epsilon=1e-3),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Dropout", ["p1"], ["d1"], name="drop"),
        helper.make_node("GlobalMaxPool", ["d1"], ["g1"], name="gmax"),
        helper.make_node("Flatten", ["g1"], ["f1"], name="flat"),
        helper.make_node("Identity", ["f1"], ["i1"], name="id"),
        helper.make_node("Gemm", ["i1", "g", "c"], ["y"], name="head", alpha=0.5, beta=2.0),
    ]
    path = tmp_path / "hand.onnx"
    onnx.save(_graph(nodes, inits, out_shape=[1, 4]), str(path))
    model = import_onnx(path)
    assert [s["kind"] for s in model.layers] == ["conv", "maxpool", "maxpool", "flatten",
                                                 "linear"]
    x = _images((3, 8, 8), n=1)
    got = forward_float(model.network, model.weights, x.astype(np.float64))
    assert _rel_error(got, _onnxruntime(path, x)) <= MAX_REL_ERROR


def _refusal(tmp_path, nodes, inits, **kw) -> str:
    path = tmp_path / "bad.onnx"
    onnx.save(_graph(nodes, inits, **kw), str(path))
    with pytest.raises(ConfigError) as info:
        import_onnx(path)
    return str(info.value)


def test_unsupported_op_names_node_op_and_supported_ops(tmp_path, capsys):
    from onnx import helper

    w = {"w": np.ones((4, 3, 3, 3))}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Sigmoid", ["c"], ["y"], name="gate")]
    message = _refusal(tmp_path, nodes, w)
    assert "node 'gate' (Sigmoid): op type Sigmoid is not supported; supported: " in message
    assert all(op in message for op in SUPPORTED_OPS)
    # The command line: one line on stderr, exit code 2.
    assert main(["import", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Sigmoid" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("node", "expected"), [
    ({"op_type": "Conv", "pads": [0, 0, 1, 1]}, "not the same on both sides"),
    ({"op_type": "MaxPool", "kernel_shape": [2, 2], "ceil_mode": 1}, "ceil_mode = 1"),
    ({"op_type": "AveragePool", "kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
     "count_include_pad = 0"),
    ({"op_type": "Clip", "clip": (-1.0, 1.0)}, "a clip to [-1, 1] is not supported"),
])
def test_refusals_name_the_node(tmp_path, node, expected):
    from onnx import helper

    node = dict(node)
    op = node.pop("op_type")
    inits = {"w": np.ones((4, 3, 3, 3))}
    if op == "Clip":
        low, high = node.pop("clip")
        inits |= {"lo": np.array(low), "hi": np.array(high)}
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                 helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="odd")]
    elif op == "Conv":
        nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="odd", **node)]
    else:
        nodes = [helper.make_node(op, ["x"], ["y"], name="odd", **node)]
    message = _refusal(tmp_path, nodes, inits)
    assert f"node 'odd' ({op}): " in message and expected in message


def test_activation_on_a_shared_tensor_is_refused(tmp_path):
    from onnx import helper

    inits = {"w": np.ones((3, 3, 1, 1))}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Add", ["c", "r"], ["y"], name="sum")]
    assert "which other nodes also read" in _refusal(tmp_path, nodes, inits)


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x08\x07not a protobuf at all")
    with pytest.raises(ConfigError, match="is not an ONNX model"):
        import_onnx(path)
    with pytest.raises(ConfigError, match="no such file"):
        import_onnx(tmp_path / "missing.onnx")


def test_import_command_writes_a_workload_run_accepts(tmp_path, capsys):
    path, _ = exported("residual", tmp_path)
    out = tmp_path / "imported"
    assert main(["import", str(path), "-o", str(out)]) == 0
    workload = out / "residual.json"
    assert (out / "residual.npz").exists()
    document = json.loads(workload.read_text())
    assert document["model"]["weights"] == {"kind": "npz", "path": "residual.npz"}
    assert main(["validate", str(ARCH / "isaac128.yaml"), str(workload)]) == 0
    capsys.readouterr()
    assert main(["map", str(ARCH / "isaac128.yaml"), str(workload), "--json"]) == 0
    mapped = json.loads(capsys.readouterr().out)
    assert [row["layer"] for row in mapped["layers"]] == ["stem", "a", "b", "dw", "fc1", "fc2"]
    assert main(["import", str(path), "-o", ""]) == 2
    assert "-o: needs a folder name" in capsys.readouterr().err


def test_workload_names_an_onnx_file(tmp_path):
    from xsim.api import model_weights, prepare

    path, _ = exported("small_cnn", tmp_path)
    workload = tmp_path / "direct.json"
    workload.write_text(json.dumps({
        "name": "direct", "model": {"onnx": path.name},
        "tasks": [{"name": "a", "backbone": True, "head": {"num_classes": 10}},
                  {"name": "b", "head": {"num_classes": 10}, "tier1": {"pe_budget": 0.5}}]}))
    dep = prepare(ARCH / "isaac128.yaml", workload)
    assert dep.network.name == "small_cnn" and dep.workload.model.weights.kind == "onnx"
    weights = model_weights(dep.workload, dep.network)
    assert weights.keys() == import_onnx(path).weights.keys()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(workload.read_text()),
                               "model": {"onnx": "nowhere.onnx"}}))
    with pytest.raises(ConfigError, match=r"model\.onnx: .*nowhere\.onnx: no such file"):
        prepare(ARCH / "isaac128.yaml", bad)
