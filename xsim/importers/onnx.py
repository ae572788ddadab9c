"""ONNX import: a trained network from PyTorch (or any ONNX exporter) as an xsim layer graph.

:func:`import_onnx` reads an ``.onnx`` file with the ``onnx`` package (the optional ``onnx``
extra) and returns the explicit layer list a workload's ``model.layers`` takes, the
:class:`~xsim.models.graph.Network` it builds and the float64 weights of its conv and linear
layers. ONNX nodes map onto xsim's layer kinds as follows:

* ``Conv`` → ``conv`` (groups and dilation; symmetric padding, or ``auto_pad`` that comes out
  symmetric); ``Gemm`` (``transA`` = 0, ``alpha``/``beta`` applied to the weights and bias) and
  ``MatMul`` by a constant matrix → ``linear``.
* ``BatchNormalization`` is folded into the conv or linear layer before it (its scale into the
  weights, its shift into the bias); an ``Add`` of a constant after a conv or linear layer is its
  bias. ``Relu`` and ``Clip`` to [0, 6] (ReLU6) or [0, ∞) become the activation of the layer that
  produced their input; behind a max pool or a flatten they move before it, which gives the same
  result because both commute with a monotone activation.
* ``MaxPool``, ``AveragePool`` (padding only with ``count_include_pad``, as xsim's digital units
  count padded zeros), ``GlobalAveragePool``, ``GlobalMaxPool`` → ``maxpool``/``avgpool``;
  ``Add``/``Sum`` of feature maps → ``add``; ``Concat`` along channels → ``concat``; ``Flatten``
  (axis 1) and a ``Reshape`` to (batch, features) → ``flatten``.
* Shape arithmetic that exporters emit around a reshape (``Shape``, ``Gather``, ``Unsqueeze``,
  ``Squeeze``, ``Concat``, ``Cast`` and ``Constant`` on constants) is evaluated here;
  ``Identity`` and ``Dropout`` (inference) pass their input through.

Anything else ends in one :class:`~xsim.config.ConfigError` naming the file, the node, its op
type and what is supported. Everything is read from the one file: weights stored outside it
(ONNX external data) are refused, as are files over :data:`~xsim.config.limits.MAX_ONNX_BYTES`.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from xsim.config.errors import ConfigError
from xsim.config.limits import MAX_ONNX_BYTES
from xsim.functional.weights import Weights, check_weights
from xsim.models.graph import Network
from xsim.models.spec import GraphBuilder, LayerSpecError, network_from_spec
from xsim.text import shown

LAYER_OPS = ("Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Conv", "Flatten",
             "Gemm", "GlobalAveragePool", "GlobalMaxPool", "MatMul", "MaxPool", "Relu",
             "Reshape", "Sum")
PASS_THROUGH_OPS = ("Dropout", "Identity")
CONSTANT_OPS = ("Cast", "Concat", "Constant", "Gather", "Shape", "Squeeze", "Unsqueeze")
SUPPORTED_OPS = tuple(sorted(set(LAYER_OPS + PASS_THROUGH_OPS + CONSTANT_OPS)))

# Layers an activation can be given to, and those it commutes with (it moves before them).
_ACTIVATED = ("conv", "linear", "add", "concat")
_COMMUTES = ("maxpool", "flatten")


@dataclass(frozen=True)
class ImportedModel:
    """An imported network: its layer list (a workload's ``model.layers``), graph and weights."""

    name: str
    input_shape: tuple[int, int, int]
    layers: tuple[dict[str, Any], ...]
    network: Network
    weights: Weights
    opset: int


class _Unsupported(Exception):
    """A node xsim cannot import; the importer adds the file, node and op type."""


@dataclass
class _Layer:
    """A value that is an xsim layer's output; ``rank`` 2 for (batch, features), 4 for maps."""

    name: str
    rank: int


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "onnx":
            raise ConfigError(None, None, "reading ONNX models needs the 'onnx' extra: "
                              "pip install -e '.[onnx]'") from None
        raise
    return onnx, numpy_helper


def _check_file(path: Path) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(str(path), None, "no such file") from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(str(path), None, "is not a regular file")
    if info.st_size > MAX_ONNX_BYTES:
        raise ConfigError(str(path), None, f"is {info.st_size} bytes; an ONNX model takes at most "
                          f"{MAX_ONNX_BYTES} (MAX_ONNX_BYTES)")


def import_onnx(path: str | os.PathLike[str], name: str | None = None) -> ImportedModel:
    """Import the ONNX model at ``path`` (``name``: the network's name, default the file's stem).

    Raises ConfigError naming the file (and the node and its op type) for anything xsim cannot
    represent; a missing ``onnx`` package is a ConfigError saying which extra to install.
    """
    path = Path(path)
    stamp = _stamp(path)
    return _import_cached(str(path.resolve()), stamp, name or _safe_name(path.stem) or "model",
                          str(path))


def _stamp(path: Path) -> tuple[int, int]:
    _check_file(path)
    info = path.stat()
    return (info.st_mtime_ns, info.st_size)


@lru_cache(maxsize=8)
def _import_cached(resolved: str, _stamp: tuple[int, int], name: str, shown_path: str
                   ) -> ImportedModel:
    # A workload naming an .onnx file asks for its graph and for its weights separately; the
    # file's (mtime, size) in the key rereads a file that changed.
    onnx, numpy_helper = _onnx()
    try:
        model = onnx.load(resolved, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 (protobuf raises its own error types)
        raise ConfigError(shown_path, None, f"is not an ONNX model ({type(exc).__name__}: "
                          f"{shown(str(exc))})") from None
    return _Importer(model, numpy_helper, name, shown_path).run()


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")[:64]


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _Importer:
    def __init__(self, model, numpy_helper, name: str, path: str) -> None:
        self.model, self.np_helper, self.name, self.path = model, numpy_helper, name, path
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.values: dict[str, Any] = {}
        self.specs: list[dict[str, Any]] = []
        self.by_name: dict[str, dict[str, Any]] = {}
        self.weights: dict[str, list[np.ndarray | None]] = {}
        self.sources: dict[str, str] = {}  # xsim layer -> the ONNX tensor it produced
        self.consumers: dict[str, int] = {}
        self.builder: GraphBuilder | None = None

    # -- the walk --------------------------------------------------------------------------------
    def run(self) -> ImportedModel:
        graph = self.graph
        for init in graph.initializer:
            if init.data_location == 1:  # TensorProto.EXTERNAL
                raise ConfigError(self.path, None, f"initializer {shown(init.name)} is stored "
                                  "outside the file (ONNX external data); save the model with "
                                  "its weights inside")
            self.values[init.name] = self.np_helper.to_array(init)
        for node in graph.node:
            for name in node.input:
                self.consumers[name] = self.consumers.get(name, 0) + 1
        for out in graph.output:
            self.consumers[out.name] = self.consumers.get(out.name, 0) + 1
        input_shape = self._input()
        self.builder = GraphBuilder(self.name, input_shape)
        for node in graph.node:
            try:
                self._node(node)
            except _Unsupported as exc:
                raise ConfigError(self.path, None, f"node {shown(node.name or node.output[0])} "
                                  f"({node.op_type}): {exc}") from None
            except LayerSpecError as exc:
                raise ConfigError(self.path, None, f"node {shown(node.name or node.output[0])} "
                                  f"({node.op_type}): {exc.message}") from None
        if len(graph.output) != 1:
            raise ConfigError(self.path, None, f"has {len(graph.output)} outputs; xsim imports "
                              "a network with one output")
        out = self.values.get(graph.output[0].name)
        if not isinstance(out, _Layer):
            raise ConfigError(self.path, None, "its output is not computed from its input")
        if out.name != self.specs[-1]["name"]:
            # The last layer is the network's output (and its head): move the output's own
            # computation last, unless a layer after it is a dead branch.
            raise ConfigError(self.path, None, f"its output {shown(graph.output[0].name)} is not "
                              "the last layer computed; xsim reads the last layer as the output")
        weights: Weights = {}
        for layer, (w, b) in self.weights.items():
            weights[layer] = (np.asarray(w, dtype=np.float64),
                              None if b is None else np.asarray(b, dtype=np.float64))
        specs = tuple(self.specs)
        try:
            network = network_from_spec(self.name, input_shape, [dict(s) for s in specs])
            check_weights(network, weights)
        except (LayerSpecError, ValueError) as exc:
            raise ConfigError(self.path, None, str(exc)) from None
        return ImportedModel(self.name, input_shape, specs, network, weights, self.opset)

    def _input(self) -> tuple[int, int, int]:
        inits = {i.name for i in self.graph.initializer}
        inputs = [i for i in self.graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise ConfigError(self.path, None, f"has {len(inputs)} inputs "
                              f"({shown([i.name for i in inputs])}); xsim imports a network with "
                              "one input")
        value = inputs[0]
        tensor = value.type.tensor_type
        if tensor.elem_type not in (1, 10, 11):  # float, float16, double
            raise ConfigError(self.path, None, f"input {shown(value.name)} is not a float tensor")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if len(dims) not in (2, 4) or any(d is None or d < 1 for d in dims[1:]):
            raise ConfigError(self.path, None, f"input {shown(value.name)} has shape "
                              f"{shown([d if d else '?' for d in dims])}; xsim imports an input of "
                              "(batch, channels, height, width) or (batch, features) with fixed "
                              "sizes after the batch")
        self.values[value.name] = _Layer("input", len(dims))
        return (dims[1], dims[2], dims[3]) if len(dims) == 4 else (dims[1], 1, 1)

    def _node(self, node) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise _Unsupported(f"op {shown(op)} of domain {shown(node.domain)} is not supported; "
                               f"supported (domain ai.onnx): {', '.join(SUPPORTED_OPS)}")
        if op in PASS_THROUGH_OPS:
            self._set(node.output[0], self._get(node.input[0]))
            if op == "Dropout" and len(node.output) > 1 and self.consumers.get(node.output[1]):
                raise _Unsupported("its mask output is used; xsim imports inference graphs")
            return
        ins = [self.values.get(name) if name else None for name in node.input]
        if op in CONSTANT_OPS and all(not isinstance(v, _Layer) for v in ins) or op in (
                "Constant", "Shape"):
            self._set(node.output[0], self._constant(node, ins))
            return
        handler = getattr(self, f"_op_{op}", None)
        if handler is None or op not in LAYER_OPS:
            raise _Unsupported(f"op type {op} is not supported; supported: "
                               f"{', '.join(SUPPORTED_OPS)}")
        handler(node, _attrs(node))

    def _get(self, name: str) -> Any:
        if name not in self.values:
            raise _Unsupported(f"input {shown(name)} is not produced by an earlier node")
        return self.values[name]

    def _set(self, name: str, value: Any) -> None:
        self.values[name] = value

    def _layer_input(self, node, index: int = 0) -> _Layer:
        value = self._get(node.input[index])
        if not isinstance(value, _Layer):
            raise _Unsupported(f"input {index} ({shown(node.input[index])}) is a constant; xsim "
                               "imports operations on the network's feature maps")
        return value

    def _const_input(self, node, index: int, what: str) -> np.ndarray:
        if index >= len(node.input) or not node.input[index]:
            raise _Unsupported(f"{what} is missing")
        value = self._get(node.input[index])
        if isinstance(value, _Layer):
            raise _Unsupported(f"{what} ({shown(node.input[index])}) is computed from the input; "
                               "xsim needs it as a constant (an initializer)")
        return np.asarray(value)

    # -- layers ----------------------------------------------------------------------------------
    def _layer_name(self, node) -> str:
        parts = [p for p in (node.name or "").split("/") if p]
        if parts and parts[-1].split("_")[0] == node.op_type:
            parts = parts[:-1]
        base = _safe_name("_".join(parts)) or f"{node.op_type.lower()}{len(self.specs)}"
        name, n = base, 1
        while name in self.by_name or name == "input":
            n += 1
            name = f"{base}_{n}"
        return name

    def _append(self, node, spec: dict[str, Any], out: str | None = None) -> _Layer:
        spec = {"name": self._layer_name(node), **spec}
        method = getattr(self.builder, spec["kind"])
        args = {k: v for k, v in spec.items() if k not in ("name", "kind")}
        method(spec["name"], **args)
        self.specs.append(spec)
        self.by_name[spec["name"]] = spec
        out = out or node.output[0]
        self.sources[spec["name"]] = out
        shape = self.builder.shape(spec["name"])
        value = _Layer(spec["name"], 2 if spec["kind"] in ("linear", "flatten") else 4)
        if value.rank == 4 and shape[1:] == (1, 1) and spec["kind"] != "conv":
            value.rank = self._get(node.input[0]).rank
        self._set(out, value)
        return value

    def _pads(self, node, attrs: dict, kernel: Sequence[int], stride: Sequence[int],
              dilation: Sequence[int], in_hw: Sequence[int]) -> list[int]:
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = []
            for n, k, s, d in zip(in_hw, kernel, stride, dilation, strict=True):
                extent = d * (k - 1) + 1
                total = max((-(-n // s) - 1) * s + extent - n, 0)
                if total % 2:
                    raise _Unsupported(f"auto_pad {auto} pads one side more than the other here; "
                                       "xsim pads both sides alike")
                pads.append(total // 2)
            return pads
        if auto == "VALID":
            return [0, 0]
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4 or pads[:2] != pads[2:]:
            raise _Unsupported(f"padding {pads} is not the same on both sides; xsim pads both "
                               "sides alike")
        return pads[:2]

    def _two(self, attrs: dict, key: str, default: Sequence[int]) -> list[int]:
        value = list(attrs.get(key, default))
        if len(value) != 2:
            raise _Unsupported(f"{key} {value}: xsim imports 2-d operations")
        return value

    def _op_Conv(self, node, attrs: dict) -> None:
        src = self._layer_input(node)
        if src.rank != 4:
            raise _Unsupported("its input is not a (batch, channels, height, width) feature map")
        w = self._const_input(node, 1, "the weight")
        if w.ndim != 4:
            raise _Unsupported(f"weight of shape {w.shape}: xsim imports 2-d convolutions")
        b = self._const_input(node, 2, "the bias") if len(node.input) > 2 and node.input[2] else None
        kernel = self._two(attrs, "kernel_shape", w.shape[2:])
        stride = self._two(attrs, "strides", [1, 1])
        dilation = self._two(attrs, "dilations", [1, 1])
        in_hw = self.builder.shape(src.name)[1:]
        pads = self._pads(node, attrs, kernel, stride, dilation, in_hw)
        spec = {"kind": "conv", "inputs": src.name, "out_channels": int(w.shape[0]),
                "kernel": kernel, "stride": stride, "padding": pads,
                "groups": int(attrs.get("group", 1)), "bias": b is not None}
        if dilation != [1, 1]:
            spec["dilation"] = dilation
        layer = self._append(node, spec)
        self.weights[layer.name] = [w, None if b is None else b.reshape(-1)]

    def _op_Gemm(self, node, attrs: dict) -> None:
        src = self._flat_input(node)
        if attrs.get("transA", 0):
            raise _Unsupported("transA = 1 is not supported (the input must be (batch, features))")
        b_mat = self._const_input(node, 1, "the weight")
        if b_mat.ndim != 2:
            raise _Unsupported(f"weight of shape {b_mat.shape} is not a matrix")
        w = b_mat if attrs.get("transB", 0) else b_mat.T
        w = w * float(attrs.get("alpha", 1.0))
        bias = None
        if len(node.input) > 2 and node.input[2]:
            c = self._const_input(node, 2, "the bias") * float(attrs.get("beta", 1.0))
            bias = self._bias_vector(c, w.shape[0])
        self._linear(node, src, w, bias)

    def _op_MatMul(self, node, _attrs: dict) -> None:
        src = self._flat_input(node)
        b_mat = self._const_input(node, 1, "the weight (the second input)")
        if b_mat.ndim != 2:
            raise _Unsupported(f"weight of shape {b_mat.shape} is not a matrix")
        self._linear(node, src, b_mat.T, None)

    def _flat_input(self, node) -> _Layer:
        src = self._layer_input(node)
        shape = self.builder.shape(src.name)
        if src.rank != 2 and shape[1:] != (1, 1):
            raise _Unsupported(f"its input {shown(node.input[0])} is a feature map of shape "
                               f"{shape}; flatten it first")
        return src

    def _linear(self, node, src: _Layer, w: np.ndarray, bias: np.ndarray | None) -> None:
        features = self.builder.shape(src.name)[0]
        if w.shape[1] != features:
            raise _Unsupported(f"weight of {w.shape[1]} inputs does not fit the {features} "
                               "features it reads")
        spec = {"kind": "linear", "inputs": src.name, "out_features": int(w.shape[0]),
                "bias": bias is not None}
        layer = self._append(node, spec)
        self.weights[layer.name] = [w, bias]

    @staticmethod
    def _bias_vector(c: np.ndarray, n: int) -> np.ndarray:
        c = np.asarray(c, dtype=np.float64)
        if c.size == 1:
            return np.full(n, float(c.reshape(-1)[0]))
        flat = c.reshape(-1)
        if flat.size != n or max(c.shape) != n:
            raise _Unsupported(f"bias of shape {c.shape} does not give one value per output "
                               f"channel ({n})")
        return flat.copy()

    def _fusable(self, node, what: str, kinds: Sequence[str]) -> dict[str, Any]:
        """The spec of the layer producing ``node``'s input, when ``what`` may be merged into it:
        one of ``kinds``, no activation yet, and this node its output's only reader."""
        src = self._layer_input(node)
        spec = self.by_name.get(src.name)
        if spec is None or spec["kind"] not in kinds or spec.get("activation"):
            kind = "the network input" if spec is None else (
                f"{spec['kind']} layer {shown(src.name)}"
                + (" (already activated)" if spec and spec.get("activation") else ""))
            raise _Unsupported(f"{what} must follow a {' or '.join(kinds)} layer; it follows "
                               f"{kind}")
        if self.consumers.get(self.sources[src.name], 0) != 1:
            raise _Unsupported(f"{what} reads {shown(src.name)}, which other nodes also read; xsim "
                               "can only merge it into a layer it alone reads")
        return spec

    def _op_BatchNormalization(self, node, attrs: dict) -> None:
        spec = self._fusable(node, "a batch normalisation", ("conv", "linear"))
        if len(node.output) > 1 and any(self.consumers.get(o) for o in node.output[1:] if o):
            raise _Unsupported("its running statistics are used; xsim imports inference graphs")
        scale, shift, mean, var = (self._const_input(node, i, what).astype(np.float64).reshape(-1)
                                   for i, what in ((1, "scale"), (2, "bias"), (3, "mean"),
                                                   (4, "variance")))
        eps = float(attrs.get("epsilon", 1e-5))
        w, b = self.weights[spec["name"]]
        n = w.shape[0]
        if any(v.size != n for v in (scale, shift, mean, var)):
            raise _Unsupported(f"its parameters do not have one value per channel ({n})")
        factor = scale / np.sqrt(var + eps)
        w = np.asarray(w, dtype=np.float64) * factor.reshape((-1,) + (1,) * (w.ndim - 1))
        b = (np.zeros(n) if b is None else np.asarray(b, dtype=np.float64)) - mean
        self.weights[spec["name"]] = [w, b * factor + shift]
        spec["bias"] = True
        self._merge(node, spec)

    def _merge(self, node, spec: dict[str, Any]) -> None:
        self.sources[spec["name"]] = node.output[0]
        self._set(node.output[0], self._layer_input(node))

    def _activation(self, node, activation: str) -> None:
        src = self._layer_input(node)
        spec = self.by_name.get(src.name)
        chain = [spec]
        # max(relu(x)) = relu(max(x)) and likewise for a flatten: move it before them.
        while (spec is not None and spec["kind"] in _COMMUTES
               and self.consumers.get(self.sources[spec["name"]], 0) == 1):
            spec = self.by_name.get(spec.get("inputs"))
            chain.append(spec)
        if spec is None or spec["kind"] not in _ACTIVATED or spec.get("activation"):
            target = chain[0]
            kind = ("the network input" if target is None
                    else f"{target['kind']} layer {shown(target['name'])}")
            raise _Unsupported(f"an activation must follow a {', '.join(_ACTIVATED)} layer (or a "
                               f"max pool or flatten of one); it follows {kind}")
        for step in chain:
            if self.consumers.get(self.sources[step["name"]], 0) != 1:
                raise _Unsupported(f"the activation reads {shown(step['name'])}, which other "
                                   "nodes also read; xsim can only give it to a layer it alone "
                                   "reads")
        spec["activation"] = activation
        self._set(node.output[0], src)
        self.sources[src.name] = node.output[0]

    def _op_Relu(self, node, _attrs: dict) -> None:
        self._activation(node, "relu")

    def _op_Clip(self, node, attrs: dict) -> None:
        if self.opset < 11:
            low, high = attrs.get("min", -np.inf), attrs.get("max", np.inf)
        else:
            low = (float(self._const_input(node, 1, "min")) if len(node.input) > 1
                   and node.input[1] else -np.inf)
            high = (float(self._const_input(node, 2, "max")) if len(node.input) > 2
                    and node.input[2] else np.inf)
        if low == 0 and high == 6:
            self._activation(node, "relu6")
        elif low == 0 and high == np.inf:
            self._activation(node, "relu")
        else:
            raise _Unsupported(f"a clip to [{low:g}, {high:g}] is not supported; xsim has ReLU "
                               "(a clip to [0, inf)) and ReLU6 (a clip to [0, 6])")

    def _pool(self, node, attrs: dict, kind: str) -> None:
        src = self._layer_input(node)
        if src.rank != 4:
            raise _Unsupported("its input is not a (batch, channels, height, width) feature map")
        if attrs.get("ceil_mode", 0):
            raise _Unsupported("ceil_mode = 1 is not supported (xsim rounds output sizes down)")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise _Unsupported("a dilated pooling window is not supported")
        kernel = self._two(attrs, "kernel_shape", [1, 1])
        stride = self._two(attrs, "strides", [1, 1])
        pads = self._pads(node, attrs, kernel, stride, [1, 1], self.builder.shape(src.name)[1:])
        if kind == "avgpool" and any(pads) and not attrs.get("count_include_pad", 0):
            raise _Unsupported("a padded average pool with count_include_pad = 0 is not supported "
                               "(xsim's digital units count the padded zeros)")
        if kind == "maxpool" and len(node.output) > 1 and self.consumers.get(node.output[1]):
            raise _Unsupported("its indices output is used")
        self._append(node, {"kind": kind, "inputs": src.name, "kernel": kernel,
                            "stride": stride, "padding": pads})

    def _op_MaxPool(self, node, attrs: dict) -> None:
        self._pool(node, attrs, "maxpool")

    def _op_AveragePool(self, node, attrs: dict) -> None:
        self._pool(node, attrs, "avgpool")

    def _op_GlobalAveragePool(self, node, _attrs: dict) -> None:
        src = self._layer_input(node)
        self._append(node, {"kind": "avgpool", "inputs": src.name})

    def _op_GlobalMaxPool(self, node, _attrs: dict) -> None:
        src = self._layer_input(node)
        h, w = self.builder.shape(src.name)[1:]
        self._append(node, {"kind": "maxpool", "inputs": src.name, "kernel": [h, w]})

    def _op_Add(self, node, _attrs: dict) -> None:
        values = [self._get(name) for name in node.input]
        layers = [v for v in values if isinstance(v, _Layer)]
        if len(layers) == len(values):
            self._op_Sum(node, _attrs)
            return
        if len(values) != 2 or not layers:
            raise _Unsupported("it adds no feature map")
        index = 0 if isinstance(values[0], _Layer) else 1
        if index == 1:
            node = _Swapped(node)
        spec = self._fusable(node, "an added constant (a bias)", ("conv", "linear"))
        w, b = self.weights[spec["name"]]
        bias = self._bias_vector(np.asarray(values[1 - index]), w.shape[0])
        self.weights[spec["name"]] = [w, bias if b is None else np.asarray(b) + bias]
        spec["bias"] = True
        self._merge(node, spec)

    def _op_Sum(self, node, _attrs: dict) -> None:
        srcs = [self._layer_input(node, i) for i in range(len(node.input))]
        if len(srcs) == 1:
            self._set(node.output[0], srcs[0])
            return
        self._append(node, {"kind": "add", "inputs": [s.name for s in srcs]})

    def _op_Concat(self, node, attrs: dict) -> None:
        srcs = [self._layer_input(node, i) for i in range(len(node.input))]
        axis = attrs.get("axis", 1)
        rank = srcs[0].rank
        if any(s.rank != 4 for s in srcs) or axis not in (1, 1 - rank):
            raise _Unsupported(f"a concatenation along axis {axis} is not supported; xsim "
                               "concatenates feature maps along channels (axis 1)")
        self._append(node, {"kind": "concat", "inputs": [s.name for s in srcs]})

    def _op_Flatten(self, node, attrs: dict) -> None:
        src = self._layer_input(node)
        axis = attrs.get("axis", 1)
        if axis != 1:
            raise _Unsupported(f"a flatten at axis {axis} is not supported; xsim flattens "
                               "(batch, ...) to (batch, features): axis 1")
        self._flatten(node, src)

    def _flatten(self, node, src: _Layer) -> None:
        if src.rank == 2:
            self._set(node.output[0], src)
            return
        self._append(node, {"kind": "flatten", "inputs": src.name})

    def _op_Reshape(self, node, _attrs: dict) -> None:
        src = self._layer_input(node)
        target = [int(v) for v in self._const_input(node, 1, "the target shape").reshape(-1)]
        c, h, w = self.builder.shape(src.name)
        current = [1, c, h, w] if src.rank == 4 else [1, c]
        shape = _reshaped(current, target)
        if shape is None:
            raise _Unsupported(f"target shape {target} does not fit the input {current}")
        if shape == current:
            self._set(node.output[0], src)
        elif shape == [1, c * h * w]:
            self._flatten(node, src)
        else:
            raise _Unsupported(f"a reshape of {current} to {shape} is not supported; xsim "
                               "imports a reshape to (batch, features) (a flatten) or to the "
                               "same shape")

    # -- constants -------------------------------------------------------------------------------
    def _constant(self, node, ins: list[Any]) -> np.ndarray:
        op, attrs = node.op_type, _attrs(node)
        if op == "Constant":
            if "value" not in attrs:
                raise _Unsupported(f"a constant given as {sorted(attrs)} is not supported "
                                   "(only 'value')")
            return self.np_helper.to_array(attrs["value"])
        if op == "Shape":
            value = self._get(node.input[0])
            if isinstance(value, _Layer):
                c, h, w = (self.builder.shape(value.name) if value.name != "input"
                           else self.builder.input_shape)
                shape = np.array([1, c, h, w] if value.rank == 4 else [1, c], dtype=np.int64)
            else:
                shape = np.array(np.shape(value), dtype=np.int64)
            return shape[attrs.get("start", 0):attrs.get("end", None)]
        if any(v is None for v in ins):
            raise _Unsupported("an input is not produced by an earlier node")
        arrays = [np.asarray(v) for v in ins]
        if op == "Cast":
            from onnx import helper

            return arrays[0].astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
        if op == "Gather":
            return np.take(arrays[0], arrays[1], axis=attrs.get("axis", 0))
        if op == "Unsqueeze":
            axes = attrs.get("axes") if self.opset < 13 else [int(a) for a in arrays[1]]
            out = arrays[0]
            for axis in sorted(a % (out.ndim + len(axes)) for a in axes):
                out = np.expand_dims(out, axis)
            return out
        if op == "Squeeze":
            axes = attrs.get("axes") if self.opset < 13 or len(arrays) < 2 else [
                int(a) for a in arrays[1]]
            return np.squeeze(arrays[0], axis=None if axes is None else tuple(axes))
        return np.concatenate(arrays, axis=attrs.get("axis", 0))  # Concat of constants


class _Swapped:
    """A two-input node seen with its inputs the other way round (the feature map first)."""

    def __init__(self, node) -> None:
        self.name, self.op_type, self.output = node.name, node.op_type, node.output
        self.input = [node.input[1], node.input[0]]


def _reshaped(current: list[int], target: list[int]) -> list[int] | None:
    """ONNX Reshape's result shape (0 copies the dimension, -1 takes the rest), or None."""
    out = [current[i] if v == 0 and i < len(current) else v for i, v in enumerate(target)]
    total = int(np.prod(current))
    if out.count(-1) > 1 or any(v < -1 for v in out):
        return None
    if -1 in out:
        known = int(np.prod([v for v in out if v != -1]))
        if known == 0 or total % known:
            return None
        out[out.index(-1)] = total // known
    return out if int(np.prod(out)) == total else None


def workload_document(model: ImportedModel, weights_file: str) -> dict[str, Any]:
    """A workload for ``model`` with its weights in ``weights_file`` (a path beside the
    workload): the backbone task and two new tasks, as in ``workloads/lenet5_mta.json``; edit
    the tasks, the schedule and the precision to the scenario at hand."""
    classes = model.network.num_classes or model.network.output.out_channels
    task = {"head": {"num_classes": classes}, "inferences_per_visit": 100}
    return {
        "name": f"{model.name}_mta",
        "description": f"{model.name}, imported from ONNX (opset {model.opset}), with a backbone "
                       "task and two new tasks.",
        "seed": 1,
        "model": {"name": model.name, "input_shape": list(model.input_shape),
                  "layers": [dict(spec) for spec in model.layers],
                  "weights": {"kind": "npz", "path": weights_file}},
        "precision": {"weight_bits": 8, "input_bits": 8},
        "tasks": [
            {"name": "backbone", "backbone": True, **task},
            {"name": "task_a", **task, "tier1": {"pe_budget": 0.25, "policy": "random"},
             "tier2": {"format": "pow2", "bits": 4}},
            {"name": "task_b", **task, "tier1": {"pe_budget": 0.5, "policy": "largest_change"},
             "tier2": {"format": "pow2", "bits": 4}},
        ],
        "schedule": {"kind": "round_robin", "periods": 3, "switches_per_hour": 60},
    }
