"""Functional inference: float reference execution, weights and im2col patches (NumPy), quantisation,
XMA2 task masks and bit-accurate execution on the crossbar kernels with its accuracy metrics."""

from xsim.functional.im2col import (
    conv_columns,
    conv_patches,
    grouped_patches,
    im2col,
    patches_to_map,
    windows,
)
from xsim.functional.masks import (
    PeGrid,
    TaskMasks,
    pe_grid,
    pow2_exponents,
    quantise_scales,
    task_masks_from_tasks,
)
from xsim.functional.metrics import error_figures, functional_metrics
from xsim.functional.network import CrossbarNetwork, KernelSettings
from xsim.functional.quantise import (
    ActivationQuantiser,
    calibrate_activations,
    nonnegative_tensors,
    quantise_weights,
)
from xsim.functional.reference import activate, forward_float, run_graph, synthetic_inputs
from xsim.functional.weights import (
    Weights,
    check_weights,
    load_weights,
    residual_branch_ends,
    save_weights,
    synthetic_weights,
)

__all__ = [
    "ActivationQuantiser",
    "CrossbarNetwork",
    "KernelSettings",
    "PeGrid",
    "TaskMasks",
    "calibrate_activations",
    "error_figures",
    "functional_metrics",
    "nonnegative_tensors",
    "pe_grid",
    "run_graph",
    "pow2_exponents",
    "quantise_scales",
    "quantise_weights",
    "Weights",
    "activate",
    "check_weights",
    "conv_columns",
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
    "task_masks_from_tasks",
    "windows",
]
