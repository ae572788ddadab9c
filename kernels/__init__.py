"""Bit-sliced crossbar kernels (numba): pure functions over numpy arrays."""
