"""Quantisation of weights and activations for the bit-accurate crossbar model.

Choices (what the crossbar path computes and what the tests hold it to):

* **Weights** are symmetric signed integers, ``|q| <= 2**(bits-1) - 1`` (the two's-complement minimum
  is never used, so every weight also fits the sign-magnitude differential encoding).  The scale is
  ``max|w| / (2**(bits-1) - 1)`` per output channel (``per_channel=True``, the default) or over the
  whole layer (``per_channel=False``; the one scale is still returned once per output channel), and
  ``q = round(w / scale)`` rounding half to even.  An all-zero channel gets scale 1 and zero codes.
  Batch norm is already folded into the conv weights and bias by the layer graph
  (:mod:`xsim.models.graph`), so the folded weights are what is quantised; biases stay in float64
  and are added by the digital units after dequantisation.
* **Activations** entering a crossbar layer are quantised per layer input with one scale:
  unsigned ``0 .. 2**bits - 1`` when the producer ends in a ReLU/ReLU6 (or is a pooling/flatten of
  such a tensor), signed two's complement ``-(2**(bits-1) - 1) .. 2**(bits-1) - 1`` otherwise (the
  network input, MobileNetV2's linear bottlenecks, residual sums without activation).  The zero
  point is 0 in both cases, so zero padding stays exact.  The scale is calibrated on sample inputs
  (e.g. :func:`~xsim.functional.reference.synthetic_inputs`) run through the float64 reference: the
  ``percentile`` of ``|x|`` over all calibration values of that tensor (default 100, the maximum, so
  the calibration set itself never clips) divided by the largest code.  Values beyond the range
  saturate.  :class:`~xsim.functional.network.CrossbarNetwork` calibrates once per task, on the
  task's masked float network.
* **Digital units** (dequantisation, bias, activation, pooling, residual add, tier-2 scaling) work in
  float64: the model charges all error to the crossbars, the ADCs and the two quantisers above.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from xsim.functional.reference import forward_float_each
from xsim.kernels import quantise_codes
from xsim.models.graph import Network

# Producers whose output keeps the sign of their (first) input.
_SIGN_PRESERVING = ("maxpool", "avgpool", "flatten")


def _check_bits(name: str, bits: int, low: int, high: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not low <= bits <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {bits!r}")
    return int(bits)


def quantise_weights(w: np.ndarray, bits: int, per_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric ``bits``-bit quantisation of a weight array whose first axis is the output channel.

    Returns ``(q, scale)``: int64 codes of ``w``'s shape with ``|q| <= 2**(bits-1) - 1`` and a float64
    scale per output channel (shape ``(w.shape[0],)``), so ``q * scale[:, None, ...] ≈ w``.
    """
    bits = _check_bits("bits", bits, 2, 32)
    w = np.asarray(w, dtype=np.float64)
    if w.ndim < 1 or w.shape[0] == 0:
        raise ValueError(f"weights must have an output-channel axis, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights hold NaN or infinite values")
    qmax = (1 << (bits - 1)) - 1
    flat = w.reshape(w.shape[0], -1)
    # max |w| = max(max w, -min w), exactly, without an |w| copy.
    peak = np.maximum(flat.max(axis=1), -flat.min(axis=1))
    if not per_channel:
        peak = np.full(w.shape[0], peak.max(), dtype=np.float64)
    scale = np.where(peak > 0, peak / qmax, 1.0).astype(np.float64)
    shaped = scale.reshape((-1,) + (1,) * (w.ndim - 1))
    q = np.divide(w, shaped)
    np.rint(q, out=q)
    np.clip(q, -qmax, qmax, out=q)
    return q.astype(np.int64), scale


@dataclass(frozen=True)
class ActivationQuantiser:
    """Quantiser of one crossbar layer's input: ``code = clip(round(x / scale), low, high)``."""

    scale: float
    signed: bool
    bits: int

    @property
    def low(self) -> int:
        return -((1 << (self.bits - 1)) - 1) if self.signed else 0

    @property
    def high(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def dtype(self) -> np.dtype:
        """Smallest integer dtype holding every code (keeps im2col patches small)."""
        return np.dtype(np.min_scalar_type(self.low if self.signed else self.high))

    def quantise(self, x: np.ndarray) -> np.ndarray:
        """Integer codes of ``x`` (any shape), saturating outside the calibrated range."""
        return quantise_codes(x, 1.0 / self.scale, self.low, self.high, self.dtype)


def nonnegative_tensors(network: Network) -> frozenset[str]:
    """Names of the tensors (``"input"`` and layer outputs) that are never negative.

    A layer's output is non-negative when it ends in ReLU/ReLU6, or when it is a pooling or
    flatten of a non-negative tensor or a concatenation of non-negative tensors; the network
    input is taken as signed.
    """
    nonneg: set[str] = set()
    for layer in network.layers:
        if layer.activation in ("relu", "relu6") or (
            layer.kind in _SIGN_PRESERVING and layer.inputs[0] in nonneg
        ) or (layer.kind == "concat" and all(name in nonneg for name in layer.inputs)):
            nonneg.add(layer.name)
    return frozenset(nonneg)


def calibrate_activations(
    network: Network,
    weights: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
    samples: np.ndarray,
    bits: int,
    *,
    percentile: float = 100.0,
) -> dict[str, ActivationQuantiser]:
    """One :class:`ActivationQuantiser` per weight layer, for the tensor that layer reads.

    ``samples`` (B, C, H, W) run one at a time through the float64 reference (so only one image's
    activations exist at a time); the scale is the ``percentile`` of ``|x|`` over all samples'
    values of the layer's input, divided by the largest code.  A tensor that is zero on every
    sample gets scale 1.
    """
    bits = _check_bits("input_bits", bits, 2, 16)
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 4 or samples.shape[0] == 0:
        raise ValueError(f"calibration samples must be a non-empty batch (B, C, H, W), got {samples.shape}")
    nonneg = nonnegative_tensors(network)
    readers = {layer.name: layer.inputs[0] for layer in network.weight_layers}
    tensors = sorted(set(readers.values()))
    values: dict[str, list[np.ndarray]] = {name: [] for name in tensors}

    def observe(name: str, tensor: np.ndarray) -> None:
        if name not in values:
            return
        if percentile == 100.0:
            # The maximum needs one number per image, max(|x|) = max(max x, -min x) exactly.
            values[name].append(np.maximum(tensor.max(keepdims=True), -tensor.min(keepdims=True))
                                .ravel())
        else:
            values[name].append(np.abs(tensor).ravel())  # a percentile needs the values

    # Each tensor is seen as it is made: an image's activations are freed after their last
    # reader, not kept for the whole network.
    forward_float_each(network, weights, samples, observe)
    quantisers = {}
    for layer, src in readers.items():
        signed = src not in nonneg
        top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        peak = float(np.percentile(np.concatenate(values[src]), percentile))
        scale = peak / top if peak > 0 else 1.0
        quantisers[layer] = ActivationQuantiser(scale=scale, signed=signed, bits=bits)
    return quantisers
