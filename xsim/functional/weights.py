"""Network weights: synthetic initialisation, ``.npz`` loading and saving, validation.

Weights are a dict from weight-layer name to ``(weight, bias)``: a float64 weight of shape
``Layer.weight_shape`` and a (Cout,) bias, or ``None`` for a layer without one.  On disk they are
an ``.npz`` archive with keys ``"<layer>.weight"`` and ``"<layer>.bias"``.

Synthetic weights stand in for trained ones when only the data flow matters: He-normal with the
gain of the layer's activation, so activation magnitudes stay of order one through a deep
network; the last layer of every residual branch is scaled down so that the sum over tens of
residual blocks does not grow without bound.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from xsim import streams
from xsim.config.arrays import NpzArchive
from xsim.models.graph import Network
from xsim.processes import in_threads
from xsim.text import shown

Weights = dict[str, tuple[np.ndarray, np.ndarray | None]]

# Scale of a residual branch's last layer, relative to its He-normal draw.
RESIDUAL_SCALE = 0.2
# Standard deviation of synthetic biases: small next to the O(1) activations.
BIAS_STD = 0.01


def _depths(network: Network) -> dict[str, int]:
    """Longest path (in layers) from the network input to each layer's output."""
    depth = {"input": 0}
    for layer in network.layers:
        depth[layer.name] = 1 + max(depth[src] for src in layer.inputs)
    return depth


def residual_branch_ends(network: Network) -> frozenset[str]:
    """Weight layers that end a residual branch: the deepest weight-layer input of each add.

    The shortcut of an add is the identity or a short projection, the branch the longer path;
    the branch's last conv is the one whose scale decides whether the sum grows block by block.
    """
    depth = _depths(network)
    ends = set()
    for layer in network.layers:
        if layer.kind != "add":
            continue
        deepest = max(layer.inputs, key=lambda name: depth[name])
        if deepest != "input" and network[deepest].has_weights:
            ends.add(deepest)
    return frozenset(ends)


def synthetic_weights(network: Network, seed: int) -> Weights:
    """Deterministic He-normal weights and small biases for every weight layer, in float64.

    Weights are N(0, gain / fan_in) with fan_in = (Cin/groups)·kh·kw and gain 2 before a ReLU or
    ReLU6 (which halves the variance), 1 otherwise; residual branch ends are further scaled by
    :data:`RESIDUAL_SCALE`.  Biases are N(0, :data:`BIAS_STD`²).  Layer i of ``network.layers``
    draws from its own generator seeded by (seed, i), so appending layers to a network leaves
    the existing layers' weights unchanged.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    ends = residual_branch_ends(network)

    def draw(index: int) -> tuple[np.ndarray, np.ndarray | None]:
        layer = network.layers[index]
        rng = streams.synthetic_weights(seed, index)
        fan_in = layer.matrix_shape[0]
        gain = 2.0 if layer.activation in ("relu", "relu6") else 1.0
        std = np.sqrt(gain / fan_in)
        if layer.name in ends:
            std *= RESIDUAL_SCALE
        w = rng.standard_normal(layer.weight_shape, dtype=np.float64) * std
        b = (
            rng.standard_normal(layer.out_channels, dtype=np.float64) * BIAS_STD
            if layer.bias
            else None
        )
        return w, b

    indices = [i for i, layer in enumerate(network.layers) if layer.has_weights]
    # Every layer has its own generator: the layers are drawn in threads (numpy's generators run
    # outside the GIL) and kept in layer order.
    return {network.layers[i].name: pair for i, pair in zip(indices, in_threads(draw, indices))}


def _expected(network: Network) -> dict[str, tuple[int, ...]]:
    expected: dict[str, tuple[int, ...]] = {}
    for layer in network.weight_layers:
        expected[f"{layer.name}.weight"] = layer.weight_shape
        if layer.bias:
            expected[f"{layer.name}.bias"] = (layer.out_channels,)
    return expected


class _Header(NamedTuple):
    """An array's shape and dtype, read from its .npy header: checked like the array itself."""

    shape: tuple[int, ...]
    dtype: np.dtype


def _check_arrays(where: str, network: Network, arrays: Mapping[str, np.ndarray]) -> None:
    """Raise ValueError for a missing, extra, misshapen, non-numeric or non-finite array
    (``arrays`` may hold :class:`_Header` entries: then every check but the values')."""
    expected = _expected(network)
    for key, shape in expected.items():
        if key not in arrays:
            raise ValueError(
                f"{where}: missing key {shown(key)} (expected shape {shape}, found none) "
                f"for network {network.name!r}"
            )
    for key, array in arrays.items():
        if key not in expected:
            raise ValueError(
                f"{where}: unexpected key {shown(key)} (found shape {shown(np.shape(array))}, expected no "
                f"such array: network {network.name!r} has no parameter of that name)"
            )
        shape = expected[key]
        if array.shape != shape:
            raise ValueError(
                f"{where}: key {key!r} has the wrong shape: expected {shape}, found {array.shape}"
            )
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(
                f"{where}: key {key!r} (shape {shape}) has non-numeric dtype {array.dtype}"
            )
        if not isinstance(array, _Header) and not np.all(np.isfinite(array)):
            raise ValueError(f"{where}: key {key!r} (shape {shape}) holds NaN or infinite values")


def flatten_weights(
    weights: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
) -> dict[str, np.ndarray]:
    """The ``"<layer>.weight"`` / ``"<layer>.bias"`` arrays of a weights dict."""
    arrays: dict[str, np.ndarray] = {}
    for name, pair in weights.items():
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError(f"weights: layer {name!r}: expected a (weight, bias) pair")
        w, b = pair
        arrays[f"{name}.weight"] = np.asarray(w)
        if b is not None:
            arrays[f"{name}.bias"] = np.asarray(b)
    return arrays


def check_weights(
    network: Network, weights: Mapping[str, tuple[np.ndarray, np.ndarray | None]]
) -> None:
    """Raise ValueError unless ``weights`` has exactly the network's parameters, finite, in shape."""
    _check_arrays("weights", network, flatten_weights(weights))


def load_weights(path: str | os.PathLike[str], network: Network) -> Weights:
    """Load float64 weights for ``network`` from an ``.npz`` archive.

    Raises ValueError naming the path, the key and the expected and found shapes for a missing
    key, an extra key or a wrong shape (also for a file that is not an ``.npz`` archive and for
    non-numeric or non-finite arrays); a missing file raises FileNotFoundError.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    # Shapes and dtypes are checked from the .npy headers before any array is read.
    with NpzArchive(path) as archive:
        _check_arrays(str(path), network, {key: _Header(*archive.header(key))
                                           for key in archive.keys})
        arrays = {key: archive.read(key, what=f"key {key!r}") for key in archive.keys}
    _check_arrays(str(path), network, arrays)
    weights: Weights = {}
    for layer in network.weight_layers:
        w = arrays[f"{layer.name}.weight"].astype(np.float64)
        b = arrays[f"{layer.name}.bias"].astype(np.float64) if layer.bias else None
        weights[layer.name] = (w, b)
    return weights


def save_weights(
    path: str | os.PathLike[str], weights: Mapping[str, tuple[np.ndarray, np.ndarray | None]]
) -> None:
    """Write ``weights`` to an ``.npz`` archive at ``path``, atomically.

    The archive is written to a temporary file in the same directory and renamed over ``path``,
    so a reader never sees a partial file and an interrupted save leaves the old file intact.
    """
    path = Path(path)
    arrays = flatten_weights(weights)
    for key, array in arrays.items():
        # load_weights refuses pickled object arrays; refuse to write what cannot be read back.
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"{path}: key {key!r} has non-numeric dtype {array.dtype}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            # A file object, not a name: np.savez would append ".npz" to a name.
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file private (0600); keep an overwritten file's mode, else
        # follow the umask as any new file does.
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
