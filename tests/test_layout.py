"""The dequantising transpose (xsim.kernels.layout) against its numpy reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_reference import reference_dequantise

from xsim.kernels import dequantise_into


@settings(max_examples=60, deadline=None)
@given(pixels=st.integers(1, 100), columns=st.integers(1, 40), integer=st.booleans(),
       with_bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_dequantise_is_the_numpy_reference_bit_for_bit(pixels, columns, integer, with_bias, seed):
    rng = np.random.default_rng(seed)
    y = (rng.integers(-(1 << 40), 1 << 40, (pixels, columns)) if integer
         else rng.standard_normal((pixels, columns)) * 1e3)
    scale = rng.standard_normal(columns) * 10.0 ** rng.integers(-8, 8, columns)
    bias = rng.standard_normal(columns) * 1e2 if with_bias else None
    out = np.full((columns, pixels), np.nan)
    dequantise_into(y, scale, bias, out)
    np.testing.assert_array_equal(out, reference_dequantise(y, scale, bias))


def test_dequantise_writes_into_a_slice_of_a_map():
    # The network writes a conv group's rows of a (Cout, Ho·Wo) map; the others stay untouched.
    y = np.arange(12, dtype=np.int64).reshape(4, 3)  # 4 pixels, 3 columns
    fmap = np.zeros((5, 4))
    dequantise_into(y, np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -1.0]), fmap[1:4])
    assert fmap[1:4].tolist() == [[0, 3, 6, 9], [3, 9, 15, 21], [0, 1.5, 3, 4.5]]
    assert not fmap[0].any() and not fmap[4].any()


def test_dequantise_refuses_what_it_cannot_write():
    y = np.zeros((4, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="transpose"):
        dequantise_into(y, np.ones(3), None, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="C-contiguous float64"):
        dequantise_into(y, np.ones(3), None, np.zeros((4, 3)).T)
    with pytest.raises(ValueError, match="int64 or float64"):
        dequantise_into(y.astype(np.int32), np.ones(3), None, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="3 entries"):
        dequantise_into(y, np.ones(2), None, np.zeros((3, 4)))
