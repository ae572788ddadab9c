"""Layer graphs: the network description every other part of xsim reads.

A :class:`Network` is a topologically ordered tuple of :class:`Layer` nodes. Batch norm is folded
into the preceding convolution (its scale into the weights, its shift into the bias), so a ``conv``
or ``linear`` layer carries an optional bias and an optional activation applied in the tile's
digital units. Only ``conv`` and ``linear`` layers hold weights and are mapped onto crossbars;
``maxpool``, ``avgpool``, ``add`` (residual, with an optional activation after it), ``concat``
(along channels) and ``flatten`` run in the digital units. A dilated convolution reads its window
with gaps (``dilation`` (h, w)); its weight matrix, and so its mapping, is that of the undilated
kernel.

Shapes are (channels, height, width) for feature maps; a linear layer's input and output are
(features, 1, 1). A conv layer's weight matrix on the crossbars has K = (in_channels/groups)·kh·kw
rows and N = out_channels columns (one group's K rows for each output channel, see ``matrix_shape``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

WEIGHT_KINDS = ("conv", "linear")
KINDS = ("input", "conv", "linear", "maxpool", "avgpool", "add", "concat", "flatten")
ACTIVATIONS = (None, "relu", "relu6")

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class Layer:
    """One node of a network graph.

    ``inputs`` names the producing layers (the first layer's input is the node named ``"input"``).
    For ``conv``/``maxpool``/``avgpool``: ``kernel``, ``stride``, ``padding`` are (h, w) pairs;
    ``groups`` is the convolution group count (depthwise: groups == in_channels == out_channels);
    ``dilation`` spaces a conv's kernel taps (1: adjacent).
    A global average pool is an ``avgpool`` whose kernel equals its input's spatial size.
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    in_shape: Shape
    out_shape: Shape
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    bias: bool = False
    activation: str | None = None
    dilation: tuple[int, int] = (1, 1)

    @property
    def has_weights(self) -> bool:
        return self.kind in WEIGHT_KINDS

    @property
    def in_channels(self) -> int:
        return self.in_shape[0]

    @property
    def out_channels(self) -> int:
        return self.out_shape[0]

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(K, N) of the weight matrix as mapped: K rows per group, N = out_channels columns."""
        if not self.has_weights:
            return (0, 0)
        kh, kw = self.kernel
        return ((self.in_channels // self.groups) * kh * kw, self.out_channels)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of the layer's weight array: (Cout, Cin/groups, kh, kw) for conv, (out, in) for linear."""
        if self.kind == "conv":
            return (self.out_channels, self.in_channels // self.groups, *self.kernel)
        if self.kind == "linear":
            return (self.out_channels, self.in_channels)
        return ()

    @property
    def params(self) -> int:
        """Weights plus biases."""
        if not self.has_weights:
            return 0
        k, n = self.matrix_shape
        return k * n + (n if self.bias else 0)

    @property
    def window(self) -> tuple[int, int]:
        """(h, w) extent of the kernel on the input: ``dilation·(kernel - 1) + 1``."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))  # type: ignore[return-value]

    @property
    def output_pixels(self) -> int:
        return self.out_shape[1] * self.out_shape[2]

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one inference (one image)."""
        if not self.has_weights:
            return 0
        k, n = self.matrix_shape
        return k * n * self.output_pixels


@dataclass(frozen=True)
class Network:
    """A named, topologically ordered layer graph with its input shape."""

    name: str
    input_shape: Shape
    layers: tuple[Layer, ...]
    num_classes: int = 0
    _index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {}
        for i, layer in enumerate(self.layers):
            if layer.name in index or layer.name == "input":
                raise ValueError(f"network {self.name}: duplicate layer name {layer.name!r}")
            for src in layer.inputs:
                if src != "input" and src not in index:
                    raise ValueError(
                        f"network {self.name}: layer {layer.name!r} reads {src!r} before it exists"
                    )
            index[layer.name] = i
        object.__setattr__(self, "_index", index)

    def __getitem__(self, name: str) -> Layer:
        return self.layers[self._index[name]]

    @property
    def weight_layers(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.has_weights)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def output(self) -> Layer:
        return self.layers[-1]
