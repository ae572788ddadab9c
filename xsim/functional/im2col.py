"""Patch extraction: a convolution as the matrix product the crossbars compute.

A crossbar holds one group's weight matrix with K = (Cin/groups)·kh·kw rows and the group's output
channels as columns; each output pixel drives one patch of K input values onto the rows.  The
patch of output pixel p = (oy, ox) is ordered (channel, ky, kx), the order of
``weight.reshape(Cout, -1)`` for a (Cout, Cin/groups, kh, kw) weight, so for group g

    out[n, oy, ox] = conv_patches(x, layer, g)[p] @ weight.reshape(Cout, -1)[n]

for the group's output channels n in ``range(g·Cout/groups, (g+1)·Cout/groups)``.  Patches are
built from a strided view of the padded input (no Python loops over pixels); only the patches of
one layer and of one image (or of the few images that share a crossbar call) exist at a time.

The float reference takes the same patches as columns, (groups, K, P) (:func:`conv_columns`),
the order the (C, H, W) input already has: an unpadded 1×1 convolution's columns are the input
itself, and a k×k one's are copied along output rows rather than gathered across channels.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from xsim.models.graph import Layer


def windows(x: np.ndarray, layer: Layer, pad_value: float = 0.0) -> np.ndarray:
    """Read-only strided view (..., C, Ho, Wo, kh, kw) of the windows of ``layer`` over ``x``
    (the taps of a dilated kernel).

    ``x`` is (..., C, H, W) matching the layer's input shape; leading axes (a batch) pass
    through.  The spatial border is padded with ``pad_value`` (0 for convolution and average
    pooling, -inf for max pooling as PyTorch does).
    """
    if x.shape[-3:] != layer.in_shape:
        raise ValueError(
            f"layer {layer.name!r}: input of shape {x.shape[-3:]} does not match {layer.in_shape}"
        )
    ph, pw = layer.padding
    if ph or pw:
        pad = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
        x = np.pad(x, pad, mode="constant", constant_values=pad_value)
    view = sliding_window_view(x, layer.window, axis=(-2, -1))
    sh, sw = layer.stride
    dh, dw = layer.dilation
    ho, wo = layer.out_shape[1:]
    # Strided slicing of the window view keeps it a view; the bound drops windows past the
    # last full stride, as floor-mode output sizes do, and a dilated kernel keeps every
    # dilation-th tap of its extent.
    return view[..., : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw, ::dh, ::dw]


def _check_conv(layer: Layer, x: np.ndarray) -> None:
    if layer.kind != "conv":
        raise ValueError(f"layer {layer.name!r} is a {layer.kind} layer, not a conv")
    if x.ndim != 3:
        raise ValueError(
            f"layer {layer.name!r}: expected one image of shape (C, H, W), got shape {x.shape}"
        )


def grouped_patches(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Patches of all groups: (groups, P, K) with P = Ho·Wo and K = (Cin/groups)·kh·kw.

    ``grouped_patches(x, layer)[g]`` equals ``conv_patches(x, layer, g)``; the layout serves a
    batched ``matmul`` against the weights reshaped to (groups, Cout/groups, K).
    """
    _check_conv(layer, x)
    g = layer.groups
    cin, kh, kw = layer.in_channels, *layer.kernel
    ho, wo = layer.out_shape[1:]
    view = windows(x, layer)  # (C, Ho, Wo, kh, kw)
    view = view.reshape(g, cin // g, ho, wo, kh, kw)
    # One copy, straight into (g, Ho, Wo, C/g, kh, kw) order.
    patches = np.ascontiguousarray(view.transpose(0, 2, 3, 1, 4, 5))
    return patches.reshape(g, ho * wo, (cin // g) * kh * kw)


def conv_columns(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Patches of all groups as columns: (groups, K, P), ``conv_columns(x, layer)[g].T`` equal to
    ``conv_patches(x, layer, g)``.

    The layout in which ``x``'s pixels already lie: an unpadded 1×1 convolution's columns are the
    input itself, a view (``x.reshape(groups, C/groups, H·W)``; a strided one copies every stride-th
    pixel), and a k×k convolution's copy runs along output rows (the window view's ``(C/g, kh, kw,
    Ho, Wo)`` order) instead of gathering channels.  ``conv_columns(x, layer).transpose(0, 2, 1)``
    is the (groups, P, K) patch matrix of :func:`grouped_patches` with the same values, so the
    weights times the columns is the patch product's transpose: the same sums, which BLAS may
    add in another order.
    """
    _check_conv(layer, x)
    g = layer.groups
    cin, kh, kw = layer.in_channels, *layer.kernel
    ho, wo = layer.out_shape[1:]
    if (kh, kw) == (1, 1) and layer.padding == (0, 0):
        sh, sw = layer.stride
        if (sh, sw) != (1, 1):
            # The bound drops pixels past the last full stride, as floor-mode output sizes do.
            x = np.ascontiguousarray(x[:, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw])
        return x.reshape(g, cin // g, ho * wo)
    view = windows(x, layer).reshape(g, cin // g, ho, wo, kh, kw)
    # One copy, into (g, C/g, kh, kw, Ho, Wo) order: runs of Wo pixels (stride apart) per tap.
    cols = np.ascontiguousarray(view.transpose(0, 1, 4, 5, 2, 3))
    return cols.reshape(g, (cin // g) * kh * kw, ho * wo)


def batch_patches(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Patches of a batch (B, C, H, W), all groups: (groups, B·P, K), image by image.

    ``batch_patches(x, layer)[:, i*P:(i+1)*P]`` equals ``grouped_patches(x[i], layer)``: the
    patches of several images feed one crossbar call per group.
    """
    if x.ndim != 4:
        raise ValueError(f"layer {layer.name!r}: expected a batch (B, C, H, W), got shape {x.shape}")
    if x.shape[0] == 1:
        return grouped_patches(x[0], layer)
    _check_conv(layer, x[0])
    b, g = x.shape[0], layer.groups
    cin, kh, kw = layer.in_channels, *layer.kernel
    ho, wo = layer.out_shape[1:]
    view = windows(x, layer).reshape(b, g, cin // g, ho, wo, kh, kw)
    # One copy, straight into (g, B, Ho, Wo, C/g, kh, kw) order.
    patches = np.ascontiguousarray(view.transpose(1, 0, 3, 4, 2, 5, 6))
    return patches.reshape(g, b * ho * wo, (cin // g) * kh * kw)


def im2col(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Patch matrix (P, Cin·kh·kw) of one image for a conv layer.

    Columns are grouped: group g's K = (Cin/groups)·kh·kw columns are ``[g·K, (g+1)·K)``, so for
    ``groups == 1`` the whole row is the patch that multiplies ``weight.reshape(Cout, -1).T``.
    """
    patches = grouped_patches(x, layer)
    g, p, k = patches.shape
    return patches.transpose(1, 0, 2).reshape(p, g * k)


def conv_patches(x: np.ndarray, layer: Layer, group: int = 0) -> np.ndarray:
    """Patches (P, K) of one group: the crossbar row inputs for that group's weight matrix."""
    _check_conv(layer, x)
    if not 0 <= group < layer.groups:
        raise ValueError(f"layer {layer.name!r}: group {group} out of range [0, {layer.groups})")
    cg = layer.in_channels // layer.groups
    ho, wo = layer.out_shape[1:]
    # Only this group's channels are copied.
    view = windows(x, layer)[group * cg : (group + 1) * cg]  # (C/g, Ho, Wo, kh, kw)
    return np.ascontiguousarray(view.transpose(1, 2, 0, 3, 4)).reshape(ho * wo, -1)


def patches_to_map(out: np.ndarray, layer: Layer) -> np.ndarray:
    """Reshape per-pixel results (P, Cout) of a conv layer into a (Cout, Ho, Wo) feature map."""
    ho, wo = layer.out_shape[1:]
    if out.shape != (ho * wo, layer.out_channels):
        raise ValueError(
            f"layer {layer.name!r}: expected results of shape {(ho * wo, layer.out_channels)}, "
            f"got {out.shape}"
        )
    return out.T.reshape(layer.out_channels, ho, wo)
