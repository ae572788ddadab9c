"""Tests of the exact product of the columns whose ADC cannot clip (xsim.kernels.lossless)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_reference import reference_bounds, reference_mvm

from xsim.kernels import _mvm, crossbar_mvm, crossbar_mvm_packed, lossless, pack_weights

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(rows=st.sampled_from([1, 3, 64, 100, 128, 129]), cell_bits=st.integers(1, 4),
       weight_bits=st.integers(2, 12), encoding=st.sampled_from(["differential", "offset"]),
       k=st.integers(1, 300), n=st.integers(1, 9), seed=st.integers(0, 2**32))
def test_bounds_match_reference(rows, cell_bits, weight_bits, encoding, k, n, seed):
    rng = np.random.default_rng(seed)
    half = 1 << (weight_bits - 1)
    w = rng.integers(-half if encoding == "offset" else -(half - 1), half, (k, n))
    packed = pack_weights(w, rows=rows, cell_bits=cell_bits, weight_bits=weight_bits,
                          encoding=encoding)
    peaks, block_l1 = reference_bounds(w, rows=rows, cell_bits=cell_bits, weight_bits=weight_bits,
                                       encoding=encoding)
    np.testing.assert_array_equal(packed.stored.peaks, peaks)
    np.testing.assert_array_equal(packed.stored.block_l1, block_l1)
    np.testing.assert_array_equal(packed.stored.weights, w)
    assert not packed.stored.weights.flags.writeable


def _mixed(rng, k, n):
    """Differential 8-bit weights (128-row blocks, 2-bit cells): small columns (levels <= 1, a
    peak of at most 128) and, every third column, large ones (63: levels 3, a peak of 384)."""
    w = rng.choice(np.array([-21, -5, -1, 0, 1, 5, 21]), (k, n))
    w[:, ::3] = 63
    return w


KW = dict(rows=128, cell_bits=2, dac_bits=1, input_bits=8, weight_bits=8, adc_bits=8,
          encoding="differential")


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("group_rows", [None, 256])
def test_mixed_columns_match_reference_and_skip_the_kernels(monkeypatch, signed, group_rows):
    rng = np.random.default_rng(3)
    k, n = 600, 10
    w = _mixed(rng, k, n)
    x = rng.integers(-128, 128, (17, k)) if signed else rng.integers(0, 256, (17, k))
    x[0] = -1 if signed else 255  # every bit-plane drives every row: the large columns clip
    packed = pack_weights(w, rows=128, cell_bits=2, weight_bits=8, encoding="differential")
    split = packed.columns_for(255)
    np.testing.assert_array_equal(split.rest, np.arange(0, n, 3))
    assert split.lossless.size == n - split.rest.size
    seen = []
    real = _mvm.MVM_128X2

    class Recorder(dict):
        def __getitem__(self, width):
            def call(x, planes, *args):
                seen.append(planes.shape[-1])
                return real[width](x, planes, *args)
            return call

    monkeypatch.setattr(_mvm, "MVM_128X2", Recorder())
    kw = dict(KW, signed_inputs=signed)
    y = crossbar_mvm_packed(x, packed, group_rows=group_rows, **{
        key: kw[key] for key in ("dac_bits", "input_bits", "adc_bits", "signed_inputs")})
    assert seen == [split.rest.size]  # the kernel saw only the columns that may clip
    np.testing.assert_array_equal(y, reference_mvm(x, w, group_rows=group_rows, **kw))
    # The large columns clip (sample 0): the kernel's result is not the exact product.
    exact = x @ w
    ungrouped = y if group_rows is None else y.sum(axis=1)
    assert not np.array_equal(ungrouped[:, ::3], exact[:, ::3])
    np.testing.assert_array_equal(np.delete(ungrouped, np.s_[::3], axis=1),
                                  np.delete(exact, np.s_[::3], axis=1))


def test_every_column_lossless_runs_no_kernel(monkeypatch):
    rng = np.random.default_rng(4)
    w = rng.choice(np.array([-5, -1, 0, 1, 5]), (300, 7))
    x = rng.integers(0, 256, (5, 300))

    def fail(*_):
        raise AssertionError("a bit-sliced kernel ran")

    monkeypatch.setattr(_mvm, "MVM_128X2", {256: fail, 512: fail})
    monkeypatch.setattr(_mvm, "MVM_GENERIC", {256: fail, 512: fail})
    np.testing.assert_array_equal(crossbar_mvm(x, w, **KW), x @ w)


def test_noise_and_lossy_scale_keep_the_kernels(monkeypatch):
    # Read noise or a scale ADC whose step is not 1 may change a column sum that fits the ADC.
    rng = np.random.default_rng(5)
    w = rng.choice(np.array([-5, -1, 0, 1, 5]), (300, 7))
    x = rng.integers(0, 256, (5, 300))
    for extra in (dict(noise_sigma=0.7, seed=2), dict(adc_mode="scale")):
        kw = dict(KW, **extra)
        np.testing.assert_array_equal(crossbar_mvm(x, w, **kw), reference_mvm(x, w, **kw))
    kw = dict(KW, adc_mode="scale", adc_range=255)  # step 1: the clip ADC
    np.testing.assert_array_equal(crossbar_mvm(x, w, **kw), x @ w)


def test_products_past_float32_stay_exact():
    # Weights whose slices hold one level: every column is lossless, but with 8-bit inputs the
    # 4096 rows sum past 2**24 (several float32 chunks) and with 16-bit inputs one 512-row block
    # alone does (float64); the exact integer product must come back either way.
    k = 4096
    w = np.full((k, 3), 21)
    w[:, 1] = -21
    w[::7, 2] = 1
    for rows, input_bits, adc_bits, dtype in ((128, 8, 8, np.float32), (512, 16, 10, np.float64)):
        x_max = (1 << input_bits) - 1
        x = np.full((2, k), x_max)
        x[1, ::5] = x_max // 3
        kw = dict(rows=rows, cell_bits=2, dac_bits=1, input_bits=input_bits, weight_bits=8,
                  adc_bits=adc_bits, encoding="differential")
        packed = pack_weights(w, rows=rows, cell_bits=2, weight_bits=8, encoding="differential")
        parts = lossless.chunks(packed.stored.block_l1, 0, packed.n_blocks, x_max, rows, k)
        assert {part[2] for part in parts} == {dtype}
        assert len(parts) > 1 and parts[0][0] == 0 and parts[-1][1] == k
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
        np.testing.assert_array_equal(crossbar_mvm(x, w, **kw), x @ w)
        np.testing.assert_array_equal(crossbar_mvm(x, w, shortcut=False, **kw), x @ w)
        # Per group of row blocks (tier 2's partial sums): each group's chunks on their own.
        grouped = crossbar_mvm(x, w, group_rows=24 * rows, **kw)
        np.testing.assert_array_equal(grouped, crossbar_mvm(x, w, group_rows=24 * rows,
                                                            shortcut=False, **kw))
        np.testing.assert_array_equal(grouped.sum(axis=1), x @ w)


def test_beyond_float64_keeps_the_kernels():
    l1 = np.full((2, 1), float(1 << 40))
    assert lossless.chunks(l1, 0, 2, (1 << 14), 128, 256) is None


def test_wide_weights_stay_exact():
    # 30-bit weights of sparse bits: their slices hold one level (every column lossless), their
    # values lie beyond float32's integers, so they are kept and multiplied in float64.
    w = np.array([[(1 << 28) + 1, -((1 << 28) + 5)], [(1 << 26) + 1, 3]] * 3, np.int64)
    x = np.array([[255, 1, 7, 0, 200, 13], [3, 254, 0, 1, 9, 255]], np.int64)
    kw = dict(rows=4, cell_bits=2, dac_bits=1, input_bits=8, weight_bits=30, adc_bits=8,
              encoding="differential")
    packed = pack_weights(w, rows=4, cell_bits=2, weight_bits=30, encoding="differential")
    assert packed.stored.weights.dtype == np.float64
    assert packed.columns_for(255).rest.size == 0
    np.testing.assert_array_equal(crossbar_mvm(x, w, **kw), x @ w)
