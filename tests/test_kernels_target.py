"""Tests of the kernels' run-time vector-width choice (xsim.kernels._target) and of both variants."""

import numpy as np
import pytest
from kernel_reference import reference_mvm

from xsim.kernels import _mvm, _target, crossbar_mvm

AVX2_HOST = {"avx", "avx2", "fma", "popcnt", "bmi2"}
AVX512_HOST = AVX2_HOST | {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512vpopcntdq"}


@pytest.mark.parametrize("features, width", [
    (AVX2_HOST, 256),
    (AVX512_HOST, 512),
    (AVX512_HOST - {"avx512vpopcntdq"}, 256),  # Skylake-X: AVX-512 but no vector popcount
    (AVX512_HOST - {"avx512bw"}, 256),
    (set(), 256),
])
def test_width_follows_host_features(features, width):
    assert _target.select_width(features) == width


def test_override():
    assert _target.select_width(AVX512_HOST, "256") == 256
    assert _target.select_width(AVX512_HOST, "512") == 512
    assert _target.select_width(AVX2_HOST, "256") == 256
    assert _target.select_width(AVX2_HOST, "") == 256
    with pytest.raises(ValueError, match="lacks"):
        _target.select_width(AVX2_HOST, "512")
    with pytest.raises(ValueError, match="one of"):
        _target.select_width(AVX512_HOST, "1024")


def test_host_features_follow_numba_config(monkeypatch):
    _target.host_features.cache_clear()
    monkeypatch.setattr(_target.config, "CPU_FEATURES", "+avx2,-avx512f,+avx512bw,+avx512vpopcntdq")
    try:
        assert _target.host_features() == {"avx2", "avx512bw", "avx512vpopcntdq"}
        assert _target.vector_width() == 256
    finally:
        _target.host_features.cache_clear()


def test_vector_width_reads_the_environment(monkeypatch):
    monkeypatch.setenv(_target.ENV, "256")
    assert _target.vector_width() == 256
    monkeypatch.delenv(_target.ENV)
    assert _target.vector_width() == _target.select_width(_target.host_features())


def test_variants_are_separate_closures():
    # The cache index keys on the closure's contents: the two variants never share an entry.
    for kernels in (_mvm.MVM_128X2, _mvm.MVM_GENERIC):
        cells = {w: kernels[w].py_func.__closure__[0].cell_contents for w in _target.WIDTHS}
        assert cells == {w: w for w in _target.WIDTHS}


def test_runnable_widths():
    assert _target.runnable_widths(AVX2_HOST) == [256]
    assert _target.runnable_widths(AVX512_HOST) == [256, 512]


@pytest.mark.parametrize("width", _target.runnable_widths(_target.host_features()))
@pytest.mark.parametrize("encoding", ["differential", "offset"])
@pytest.mark.parametrize("signed, input_bits", [(False, 8), (True, 8), (False, 5), (True, 3)])
@pytest.mark.parametrize("rows, dac_bits", [(128, 1), (64, 2)])
def test_every_runnable_variant_matches_reference(monkeypatch, width, encoding, signed, input_bits,
                                                  rows, dac_bits):
    monkeypatch.setenv(_target.ENV, str(width))
    rng = np.random.default_rng(width + input_bits)
    k, n, batch = 333, 21, 41
    half = 1 << (input_bits - 1)
    x = rng.integers(-half, half, (batch, k)) if signed else rng.integers(0, 2 * half, (batch, k))
    w = rng.integers(-127, 128, (k, n))
    kwargs = dict(rows=rows, cell_bits=2, dac_bits=dac_bits, input_bits=input_bits, weight_bits=8,
                  adc_bits=7, encoding=encoding, signed_inputs=signed)
    # shortcut=False: the variant's kernels compute every column, lossless or not.
    np.testing.assert_array_equal(crossbar_mvm(x, w, shortcut=False, **kwargs),
                                  reference_mvm(x, w, **kwargs))
    np.testing.assert_array_equal(crossbar_mvm(x.astype(np.int8 if signed else np.uint8), w,
                                               shortcut=False, **kwargs),
                                  reference_mvm(x, w, **kwargs))
    grouped = crossbar_mvm(x, w, group_rows=2 * rows, shortcut=False, **kwargs)
    np.testing.assert_array_equal(grouped, reference_mvm(x, w, group_rows=2 * rows, **kwargs))
