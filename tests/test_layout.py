"""The quantiser and the dequantising transpose (xsim.kernels.layout) against their numpy
references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_reference import reference_dequantise, reference_quantise

from xsim.kernels import dequantise_into, quantise_codes


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


@settings(max_examples=80, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
       code=st.sampled_from([(np.uint8, 0, 255), (np.int8, -127, 127), (np.uint16, 0, 4095),
                             (np.int16, -511, 511)]),
       spread=st.floats(0.1, 1e4), strided=st.booleans(), unit=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_quantise_is_the_numpy_reference_bit_for_bit(shape, code, spread, strided, unit, seed):
    rng = np.random.default_rng(seed)
    dtype, low, high = code
    x = rng.standard_normal(shape) * spread
    x.flat[:: 3] = np.round(x.flat[:: 3]) + 0.5  # ties (with a unit scale): half to even
    if strided:
        x = np.repeat(x, 2, axis=-1)[..., ::2]  # a non-contiguous view, read as a contiguous copy
    inv = 1.0 if unit else 1.0 / rng.uniform(0.01, 3.0)
    got = quantise_codes(x, inv, low, high, dtype)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, reference_quantise(x, inv, low, high, dtype))


def test_quantise_saturates_and_refuses_codes_it_cannot_hold():
    x = np.array([-1e9, -0.5, 0.5, 1.5, 2.5, 1e9, np.inf, -np.inf])
    assert quantise_codes(x, 1.0, 0, 255, np.uint8).tolist() == [0, 0, 0, 2, 2, 255, 255, 0]
    with pytest.raises(ValueError, match="does not fit"):
        quantise_codes(x, 1.0, 0, 256, np.uint8)
    with pytest.raises(ValueError, match="codes must be"):
        quantise_codes(x, 1.0, 0, 1, np.float32)
