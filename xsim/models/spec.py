"""Building layer graphs: shape inference and validation.

:class:`GraphBuilder` appends layers one at a time, computes each output shape from its input
shapes with PyTorch's arithmetic (``floor((size + 2·padding - dilation·(kernel - 1) - 1) / stride)
+ 1``, no ceil mode) and rejects inconsistent layers at the point they are added.  The zoo builders
use it directly; :func:`network_from_spec` drives it from an explicit list of layer dicts, the form
a workload file gives.  Every error is a :class:`LayerSpecError` naming the network, the layer's
index and name and, where one is to blame, the offending key.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

from xsim.models.graph import ACTIVATIONS, Layer, Network, Shape
from xsim.text import shown


class LayerSpecError(ValueError):
    """An inconsistent layer: carries the layer's index, name and offending key for callers to wrap."""

    def __init__(
        self, network: str, index: int, layer: str | None, key: str | None, message: str
    ) -> None:
        self.network = network
        self.index = index
        self.layer = layer
        self.key = key
        self.message = message
        where = f"network {shown(network)}: layer {index}"
        if layer is not None:
            where += f" ({shown(layer)})"
        if key is not None:
            where += f", key {shown(key)}"
        super().__init__(f"{where}: {message}")


class _Invalid(Exception):
    """Raised by the value parsers; the builder attaches the layer context."""

    def __init__(self, key: str | None, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(message)


def _int(value: Any, key: str, minimum: int) -> int:
    # bool is an int subclass but a kernel of True is a spec mistake, not a 1.
    if isinstance(value, bool):
        raise _Invalid(key, f"expected an integer, got {shown(value)}")
    try:
        number = operator.index(value)
    except TypeError:
        raise _Invalid(key, f"expected an integer, got {shown(value)}") from None
    if number < minimum:
        raise _Invalid(key, f"must be >= {minimum}, got {number}")
    return number


def _pair(value: Any, key: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise _Invalid(key, f"expected an integer or an (h, w) pair, got {shown(list(value))}")
        return (_int(value[0], key, minimum), _int(value[1], key, minimum))
    number = _int(value, key, minimum)
    return (number, number)


def _window_out(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[int, int]:
    """Output size for a window of extent ``kernel`` (a dilated kernel's extent)."""
    return tuple(  # type: ignore[return-value]
        (n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding, strict=True)
    )


class GraphBuilder:
    """Appends layers to a network under construction, checking each one as it comes.

    Every method returns the new layer's name; ``inputs=None`` reads the previous layer (the
    network input for the first layer).
    """

    def __init__(self, name: str, input_shape: Sequence[int]) -> None:
        self.name = name
        if (
            isinstance(input_shape, str)
            or not isinstance(input_shape, Sequence)
            or len(input_shape) != 3
        ):
            raise ValueError(
                f"network {shown(name)}: input shape must be (channels, height, width), got "
                f"{shown(input_shape)}"
            )
        try:
            shape = tuple(_int(v, "input_shape", 1) for v in input_shape)
        except _Invalid as exc:
            raise ValueError(
                f"network {shown(name)}: input shape {shown(tuple(input_shape))}: {exc.message}"
            ) from None
        self.input_shape: Shape = shape  # type: ignore[assignment]
        self._layers: list[Layer] = []
        self._shapes: dict[str, Shape] = {"input": self.input_shape}

    @property
    def last(self) -> str:
        """Name of the most recently added layer (``"input"`` before the first)."""
        return self._layers[-1].name if self._layers else "input"

    def shape(self, name: str) -> Shape:
        """Output shape of an already added layer (or of ``"input"``)."""
        return self._shapes[name]

    def error(self, layer: str | None, key: str | None, message: str) -> LayerSpecError:
        """An error for the layer about to be added (index = number of layers so far)."""
        return LayerSpecError(self.name, len(self._layers), layer, key, message)

    # -- layer kinds -------------------------------------------------------------------------

    def conv(
        self,
        name: str,
        out_channels: int,
        kernel: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        groups: int = 1,
        dilation: int | Sequence[int] = 1,
        bias: bool = True,
        activation: str | None = None,
        inputs: str | Sequence[str] | None = None,
    ) -> str:
        try:
            (src,) = self._inputs(inputs, count=1)
            in_shape = self._shapes[src]
            cout = _int(out_channels, "out_channels", 1)
            k = _pair(kernel, "kernel", 1)
            s = _pair(stride, "stride", 1)
            p = _pair(padding, "padding", 0)
            d = _pair(dilation, "dilation", 1)
            g = _int(groups, "groups", 1)
            if in_shape[0] % g:
                raise _Invalid(
                    "groups", f"input channels {in_shape[0]} not divisible by groups {g}"
                )
            if cout % g:
                raise _Invalid("groups", f"out_channels {cout} not divisible by groups {g}")
            self._check_bias(bias)
            self._check_activation(activation)
            extent = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
            hw = self._window(in_shape, extent, s, p)
        except _Invalid as exc:
            raise self.error(name, exc.key, exc.message) from None
        return self._append(
            Layer(name, "conv", (src,), in_shape, (cout, *hw), k, s, p, g, bias, activation, d)
        )

    def linear(
        self,
        name: str,
        out_features: int,
        *,
        bias: bool = True,
        activation: str | None = None,
        inputs: str | Sequence[str] | None = None,
    ) -> str:
        try:
            (src,) = self._inputs(inputs, count=1)
            in_shape = self._shapes[src]
            if in_shape[1:] != (1, 1):
                raise _Invalid(
                    "inputs",
                    f"a linear layer reads (features, 1, 1), got {in_shape} from {shown(src)} "
                    "(insert a flatten layer)",
                )
            n = _int(out_features, "out_features", 1)
            self._check_bias(bias)
            self._check_activation(activation)
        except _Invalid as exc:
            raise self.error(name, exc.key, exc.message) from None
        return self._append(
            Layer(name, "linear", (src,), in_shape, (n, 1, 1), bias=bias, activation=activation)
        )

    def maxpool(
        self,
        name: str,
        kernel: int | Sequence[int],
        *,
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        inputs: str | Sequence[str] | None = None,
    ) -> str:
        return self._pool("maxpool", name, kernel, stride, padding, inputs)

    def avgpool(
        self,
        name: str,
        kernel: int | Sequence[int] | None = None,
        *,
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        inputs: str | Sequence[str] | None = None,
    ) -> str:
        """Average pool; ``kernel=None`` pools globally (kernel = the input's spatial size)."""
        return self._pool("avgpool", name, kernel, stride, padding, inputs)

    def add(self, name: str, inputs: Sequence[str], *, activation: str | None = None) -> str:
        try:
            srcs = self._inputs(inputs, count=None)
            shapes = [self._shapes[s] for s in srcs]
            for src, shape in zip(srcs[1:], shapes[1:], strict=True):
                if shape != shapes[0]:
                    raise _Invalid(
                        "inputs",
                        f"cannot add {shown(src)} of shape {shape} to {shown(srcs[0])} of shape {shapes[0]}",
                    )
            self._check_activation(activation)
        except _Invalid as exc:
            raise self.error(name, exc.key, exc.message) from None
        return self._append(Layer(name, "add", srcs, shapes[0], shapes[0], activation=activation))

    def concat(self, name: str, inputs: Sequence[str], *, activation: str | None = None) -> str:
        """Channels of two or more feature maps of equal height and width, in input order."""
        try:
            srcs = self._inputs(inputs, count=None)
            shapes = [self._shapes[s] for s in srcs]
            for src, shape in zip(srcs[1:], shapes[1:], strict=True):
                if shape[1:] != shapes[0][1:]:
                    raise _Invalid(
                        "inputs",
                        f"cannot concatenate {shown(src)} of shape {shape} with {shown(srcs[0])} "
                        f"of shape {shapes[0]}: height and width must agree",
                    )
            self._check_activation(activation)
        except _Invalid as exc:
            raise self.error(name, exc.key, exc.message) from None
        out = (sum(shape[0] for shape in shapes), *shapes[0][1:])
        return self._append(Layer(name, "concat", srcs, shapes[0], out, activation=activation))

    def flatten(self, name: str, *, inputs: str | Sequence[str] | None = None) -> str:
        try:
            (src,) = self._inputs(inputs, count=1)
        except _Invalid as exc:
            raise self.error(name, exc.key, exc.message) from None
        c, h, w = self._shapes[src]
        return self._append(Layer(name, "flatten", (src,), (c, h, w), (c * h * w, 1, 1)))

    def build(self, num_classes: int = 0) -> Network:
        if not self._layers:
            raise ValueError(f"network {shown(self.name)}: no layers")
        return Network(self.name, self.input_shape, tuple(self._layers), num_classes)

    # -- helpers -----------------------------------------------------------------------------

    def _pool(
        self,
        kind: str,
        name: str,
        kernel: int | Sequence[int] | None,
        stride: int | Sequence[int] | None,
        padding: int | Sequence[int],
        inputs: str | Sequence[str] | None,
    ) -> str:
        try:
            (src,) = self._inputs(inputs, count=1)
            in_shape = self._shapes[src]
            k = in_shape[1:] if kernel is None else _pair(kernel, "kernel", 1)
            # PyTorch's default: stride = kernel.
            s = k if stride is None else _pair(stride, "stride", 1)
            p = _pair(padding, "padding", 0)
            if p[0] > k[0] // 2 or p[1] > k[1] // 2:
                # A window made of padding alone has no defined max (or a meaningless mean).
                raise _Invalid("padding", f"padding {p} exceeds half the kernel {k}")
            hw = self._window(in_shape, k, s, p)
        except _Invalid as exc:
            raise self.error(name, exc.key, exc.message) from None
        return self._append(
            Layer(name, kind, (src,), in_shape, (in_shape[0], *hw), k, s, p)  # type: ignore[arg-type]
        )

    def _inputs(self, inputs: str | Sequence[str] | None, count: int | None) -> tuple[str, ...]:
        if inputs is None:
            srcs: tuple[str, ...] = (self.last,)
        elif isinstance(inputs, str):
            srcs = (inputs,)
        elif isinstance(inputs, Sequence) and all(isinstance(s, str) for s in inputs):
            srcs = tuple(inputs)
        else:
            raise _Invalid("inputs", f"expected a layer name or a list of names, got {shown(inputs)}")
        if count is not None and len(srcs) != count:
            raise _Invalid("inputs", f"expected {count} input, got {len(srcs)}: {shown(list(srcs))}")
        if count is None and len(srcs) < 2:
            raise _Invalid("inputs", f"expected at least 2 inputs, got {shown(list(srcs))}")
        for src in srcs:
            if src not in self._shapes:
                raise _Invalid("inputs", f"unknown layer {shown(src)} (inputs must name earlier layers)")
        return srcs

    @staticmethod
    def _check_bias(bias: Any) -> None:
        if not isinstance(bias, bool):
            raise _Invalid("bias", f"expected true or false, got {shown(bias)}")

    @staticmethod
    def _check_activation(activation: Any) -> None:
        if activation not in ACTIVATIONS:
            raise _Invalid("activation", f"unknown activation {shown(activation)}; known: {ACTIVATIONS}")

    @staticmethod
    def _window(
        in_shape: Shape, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int]
    ) -> tuple[int, int]:
        hw = _window_out(in_shape[1:], k, s, p)
        if min(hw) <= 0:
            raise _Invalid(
                "kernel",
                f"output size {hw[0]}x{hw[1]} <= 0: input {in_shape[1]}x{in_shape[2]} too small "
                f"for kernel {k}, stride {s}, padding {p}",
            )
        return hw

    def _append(self, layer: Layer) -> str:
        if layer.name in self._shapes:
            raise self.error(layer.name, "name", f"duplicate layer name {shown(layer.name)}")
        self._layers.append(layer)
        self._shapes[layer.name] = layer.out_shape
        return layer.name


# Keys each kind accepts beyond "name", "kind" and "inputs"; the first group is required.
KIND_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "conv": (
        ("out_channels", "kernel"),
        ("stride", "padding", "dilation", "groups", "bias", "activation"),
    ),
    "linear": (("out_features",), ("bias", "activation")),
    "maxpool": (("kernel",), ("stride", "padding")),
    "avgpool": ((), ("kernel", "stride", "padding")),
    "add": (("inputs",), ("activation",)),
    "concat": (("inputs",), ("activation",)),
    "flatten": ((), ()),
}

SPEC_KINDS = tuple(KIND_KEYS)

# What each kind computes and its optional keys' defaults, for the input file reference.
KIND_DOCS: dict[str, tuple[str, dict[str, str]]] = {
    "conv": ("2-d convolution on the crossbars; K = (in_channels/groups)·kh·kw rows, out_channels "
             "columns; the activation runs in the tile's digital units",
             {"stride": "1", "padding": "0", "dilation": "1", "groups": "1", "bias": "true",
              "activation": "none; relu or relu6"}),
    "linear": ("fully connected layer on the crossbars; reads (features, 1, 1)",
               {"bias": "true", "activation": "none; relu or relu6"}),
    "maxpool": ("max pooling in the digital units, padded with -inf",
                {"stride": "= kernel", "padding": "0"}),
    "avgpool": ("average pooling, padded zeros counted; without kernel a global average pool",
                {"kernel": "the input's height and width", "stride": "= kernel",
                 "padding": "0"}),
    "add": ("element-wise sum of two or more inputs of equal shape (a residual add)",
            {"activation": "none; relu or relu6"}),
    "concat": ("the inputs' channels side by side (equal height and width)",
               {"activation": "none; relu or relu6"}),
    "flatten": ("(C, H, W) to (C·H·W, 1, 1) in C, H, W order", {}),
}


def network_from_spec(
    name: str, input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]]
) -> Network:
    """Build a :class:`Network` from an explicit list of layer dicts.

    Each dict has ``kind`` (one of :data:`SPEC_KINDS`) and optionally ``name`` (default
    ``"<kind><index>"``) and ``inputs`` (a name or list of names; default the previous layer).
    Per kind: ``conv`` needs ``out_channels`` and ``kernel`` and takes ``stride`` (1), ``padding``
    (0), ``dilation`` (1), ``groups`` (1), ``bias`` (true) and ``activation`` (none); ``linear`` needs
    ``out_features`` and takes ``bias`` and ``activation``; ``maxpool`` needs ``kernel`` and takes
    ``stride`` (= kernel) and ``padding``; ``avgpool`` takes the same, without a ``kernel`` it pools
    globally; ``add`` needs two or more ``inputs`` of equal shape and takes ``activation``;
    ``concat`` needs two or more ``inputs`` of equal height and width (their channels in order)
    and takes ``activation``; ``flatten`` takes nothing.  Kernel, stride, padding and dilation
    are an integer or an (h, w) pair.  A ``None`` value means the key is absent.
    ``num_classes`` is the output's feature count when the network ends in a (features, 1, 1)
    shape, else 0.

    Raises :class:`LayerSpecError` (a ValueError) naming the layer and key for an unknown kind or
    key, a key the kind does not take, a missing required key, a bad value, channels not divisible
    by groups, an output size <= 0 or an add of mismatched shapes.
    """
    builder = GraphBuilder(name, input_shape)
    if isinstance(layers, (str, Mapping)) or not isinstance(layers, Sequence):
        # ValueError, not TypeError: this is malformed workload content the loader reports.
        raise ValueError(  # noqa: TRY004
            f"network {shown(name)}: layers must be a list of layer dicts, got {type(layers).__name__}"
        )
    if not layers:
        raise ValueError(f"network {shown(name)}: no layers")
    for index, spec in enumerate(layers):
        if not isinstance(spec, Mapping):
            raise builder.error(None, None, f"expected a dict, got {type(spec).__name__}")
        given = {k: v for k, v in spec.items() if v is not None}
        layer_name = given.get("name")
        if layer_name is not None and (not isinstance(layer_name, str) or not layer_name):
            raise builder.error(None, "name", f"expected a non-empty string, got {shown(layer_name)}")
        kind = given.get("kind")
        if not isinstance(kind, str) or kind not in KIND_KEYS:
            raise builder.error(
                layer_name, "kind", f"unknown kind {shown(kind)}; known: {', '.join(SPEC_KINDS)}"
            )
        if layer_name is None:
            layer_name = f"{kind}{index}"
        required, optional = KIND_KEYS[kind]
        allowed = {"name", "kind", "inputs", *required, *optional}
        for key in given:
            if key not in allowed:
                raise builder.error(
                    layer_name,
                    key,
                    f"not a key of a {kind} layer; it takes {', '.join(sorted(allowed))}",
                )
        for key in required:
            if key not in given:
                raise builder.error(layer_name, key, f"a {kind} layer needs {shown(key)}")
        args = {k: v for k, v in given.items() if k not in ("name", "kind")}
        method = getattr(builder, kind)
        method(layer_name, **args)
    out = builder.shape(builder.last)
    return builder.build(num_classes=out[0] if out[1:] == (1, 1) else 0)
