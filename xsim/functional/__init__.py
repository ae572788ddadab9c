"""Functional inference: float reference execution, weights and im2col patches (NumPy)."""

from xsim.functional.im2col import (
    conv_patches,
    grouped_patches,
    im2col,
    patches_to_map,
    windows,
)
from xsim.functional.reference import activate, forward_float, synthetic_inputs
from xsim.functional.weights import (
    Weights,
    check_weights,
    load_weights,
    residual_branch_ends,
    save_weights,
    synthetic_weights,
)

__all__ = [
    "Weights",
    "activate",
    "check_weights",
    "conv_patches",
    "forward_float",
    "grouped_patches",
    "im2col",
    "load_weights",
    "patches_to_map",
    "residual_branch_ends",
    "save_weights",
    "synthetic_inputs",
    "synthetic_weights",
    "windows",
]
