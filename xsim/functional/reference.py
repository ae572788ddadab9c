"""Floating-point reference inference: what the network computes without crossbar effects.

Runs a :class:`~xsim.models.graph.Network` layer by layer on a batch in NumPy, with PyTorch's
inference semantics: convolution as im2col patches times the weight matrix (the product the
crossbars compute), folded batch norm as the conv bias, max pooling padded with -inf, average
pooling counting padded zeros in the divisor (``count_include_pad=True``), residual adds,
concatenation along channels and flatten in (C, H, W) order, then the layer's ReLU or ReLU6.
The bit-accurate crossbar path is checked against this.

The float64 pass (the reference every accuracy figure and the activation calibration use) runs
numpy's BLAS on one thread (:func:`xsim.processes.one_blas_thread`): a multi-threaded BLAS splits
some products by thread count, and the reference's bits must not depend on the host's cores.
Other dtypes (float32, a timing baseline) take BLAS's threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from xsim import streams
from xsim.functional.im2col import conv_columns, windows
from xsim.functional.weights import check_weights
from xsim.models.graph import Layer, Network
from xsim.processes import one_blas_thread


def activate(x: np.ndarray, activation: str | None, *, in_place: bool = False) -> np.ndarray:
    """Apply a layer activation (``"relu"``, ``"relu6"``; ``None`` returns ``x`` itself).

    A new array unless ``in_place`` (for an ``x`` nothing else reads: a flatten output is a view
    of its producer's output).
    """
    out = x if in_place else None
    if activation == "relu":
        return np.maximum(x, 0, out=out)
    if activation == "relu6":
        return np.clip(x, 0, 6, out=out)
    if activation is None:
        return x
    raise ValueError(f"unknown activation {activation!r}")


def _conv(layer: Layer, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    g = layer.groups
    cout = layer.out_channels
    ho, wo = layer.out_shape[1:]
    n, p = cout // g, ho * wo
    # (groups, Cout/groups, K): group g's weight matrix, a crossbar column per row.
    wmat = w.reshape(g, n, -1)
    out = np.empty((x.shape[0], cout, ho, wo), dtype=x.dtype)
    for i, image in enumerate(x):
        # One image's patches at a time bounds memory by a single layer's im2col matrix. The
        # product of the weights with the (groups, K, P) columns lands in the (Cout, Ho·Wo)
        # layout of the output map itself: no transposed copy.
        y = out[i].reshape(g, n, p)
        np.matmul(wmat, conv_columns(image, layer), out=y)
        if b is not None:
            y += b.reshape(g, n, 1)
    return out


def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    y = x[:, :, 0, 0] @ w.T
    if b is not None:
        y += b
    return y[:, :, None, None]


def _pool(layer: Layer, x: np.ndarray) -> np.ndarray:
    if layer.kind == "maxpool":
        # The window maximum, tap by tap: one pass per tap over a strided (..., Ho, Wo) view
        # (the same maximum as a reduction over the window view, far faster).
        view = windows(x, layer, pad_value=-np.inf)
        kh, kw = view.shape[-2:]
        out = view[..., 0, 0].copy()
        for ky in range(kh):
            for kx in range(kw):
                if ky or kx:
                    np.maximum(out, view[..., ky, kx], out=out)
        return out
    kh, kw = layer.kernel
    return windows(x, layer).sum(axis=(-2, -1)) / (kh * kw)


def forward_float(
    network: Network,
    weights: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
    x: np.ndarray,
    *,
    dtype: type[np.floating] | np.dtype = np.float64,
    return_all: bool = False,
    observe: Callable[[str, np.ndarray], None] | None = None,
) -> np.ndarray | dict[str, np.ndarray]:
    """Run ``network`` on ``x`` in floating point of ``dtype`` (float32 or float64).

    ``x`` is a batch (B, C, H, W) or one image (C, H, W) matching ``network.input_shape``.
    Returns the output: (B, F) when the network ends in a (F, 1, 1) shape (the logits), else
    (B, C, H, W); without the batch axis when ``x`` had none.  With ``return_all`` returns a dict
    from ``"input"`` and every layer name to its output (B, C, H, W) (no batch axis for one
    image), in layer order.  ``observe(name, tensor)``, if given, sees ``"input"`` and every
    layer's output (B, C, H, W) as it is made, before it is freed.  Raises ValueError for a wrong
    input shape, a non-float dtype or weights that do not match the network.
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating-point type, got {dtype}")
    batch, single = _as_batch(network, x)
    check_weights(network, weights)
    return _run_float(network, weights, batch.astype(dtype, copy=False), return_all=return_all,
                      single=single, observe=observe)


def forward_float_each(network: Network, weights: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
                       images: np.ndarray, observe: Callable[[str, np.ndarray], None]) -> None:
    """Run the images (B, C, H, W) through :func:`forward_float` (float64) one at a time, the
    weights checked once: ``observe(name, tensor)`` sees every tensor (1, C, H, W) of each image
    as it is made, and only one image's activations exist at a time (calibration)."""
    images, _ = _as_batch(network, np.asarray(images, dtype=np.float64))
    check_weights(network, weights)
    for i in range(images.shape[0]):
        _run_float(network, weights, images[i : i + 1], return_all=False, single=True,
                   observe=observe)


def _as_batch(network: Network, x: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(batch, single)``: ``x`` as a (B, C, H, W) batch, and whether it was one image."""
    x = np.asarray(x)
    single = x.ndim == 3
    batch = x[None] if single else x
    if batch.ndim != 4 or batch.shape[1:] != network.input_shape:
        raise ValueError(
            f"network {network.name!r}: expected input (B, {', '.join(map(str, network.input_shape))})"
            f" or one image {network.input_shape}, got shape {x.shape}"
        )
    return batch, single


def _run_float(network: Network, weights: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
               batch: np.ndarray, *, return_all: bool, single: bool,
               observe: Callable[[str, np.ndarray], None] | None):
    dtype = batch.dtype
    params = {
        name: (w.astype(dtype, copy=False), None if b is None else b.astype(dtype, copy=False))
        for name, (w, b) in weights.items()
    }

    def weight_layer(layer: Layer, src: np.ndarray) -> np.ndarray:
        if layer.kind == "conv":
            return _conv(layer, src, *params[layer.name])
        return _linear(src, *params[layer.name])

    with one_blas_thread(dtype == np.float64):
        return run_graph(network, batch, weight_layer, return_all=return_all, single=single,
                         observe=observe)


def run_graph(network: Network, batch: np.ndarray,
              weight_layer: Callable[[Layer, np.ndarray], np.ndarray], *, return_all: bool,
              single: bool, observe: Callable[[str, np.ndarray], None] | None = None,
              ) -> np.ndarray | dict[str, np.ndarray]:
    """Execute ``network`` on ``batch`` (B, C, H, W); ``weight_layer(layer, input)`` computes
    conv and linear layers (before their activation) into a new array, which the activation
    then overwrites; the digital layers run here.

    Returns the output as :func:`forward_float` describes (``single``: drop the batch axis);
    ``observe`` as there.
    """
    # Free each intermediate after its last reader unless every output is kept.
    last_use = {src: i for i, layer in enumerate(network.layers) for src in layer.inputs}
    outputs: dict[str, np.ndarray] = {"input": batch}
    if observe is not None:
        observe("input", batch)
    for i, layer in enumerate(network.layers):
        src = outputs[layer.inputs[0]]
        if layer.kind in ("conv", "linear"):
            y = weight_layer(layer, src)
        elif layer.kind in ("maxpool", "avgpool"):
            y = _pool(layer, src)
        elif layer.kind == "add":
            y = np.add(src, outputs[layer.inputs[1]]) if len(layer.inputs) > 1 else src.copy()
            for other in layer.inputs[2:]:
                y += outputs[other]
        elif layer.kind == "concat":
            y = np.concatenate([outputs[name] for name in layer.inputs], axis=1)
        elif layer.kind == "flatten":
            y = src.reshape(src.shape[0], -1, 1, 1)
        else:
            raise ValueError(f"layer {layer.name!r}: kind {layer.kind!r} cannot be executed")
        # Every kind but flatten (a view of its input) made y afresh: activate it in place.
        outputs[layer.name] = activate(y, layer.activation, in_place=layer.kind != "flatten")
        if observe is not None:
            observe(layer.name, outputs[layer.name])
        if not return_all:
            for name in set(layer.inputs):
                if last_use[name] == i:
                    del outputs[name]
    if return_all:
        return {name: out[0] for name, out in outputs.items()} if single else outputs
    out = outputs[network.output.name]
    if out.shape[2:] == (1, 1):
        out = out[:, :, 0, 0]
    return out[0] if single else out


def synthetic_inputs(network: Network, n: int, seed: int) -> np.ndarray:
    """``n`` deterministic standard-normal images (n, C, H, W) in float64, like normalised data."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = streams.synthetic_images(seed)
    return rng.standard_normal((int(n), *network.input_shape), dtype=np.float64)
