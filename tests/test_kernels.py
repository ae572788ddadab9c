"""Tests of xsim.kernels.crossbar_mvm against x @ w and the numpy references."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_reference import reference_arrays, reference_gaussian, reference_mvm

from xsim.kernels import crossbar_mvm, crossbar_mvm_packed, pack_weights
from xsim.kernels._noise import gaussian, noise_key

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _inputs(rng, batch, k, input_bits, signed):
    if signed:
        half = 1 << (input_bits - 1)
        return rng.integers(-half, half, (batch, k))
    return rng.integers(0, 1 << input_bits, (batch, k))


def _weights(rng, k, n, weight_bits, encoding):
    half = 1 << (weight_bits - 1)
    low = -half if encoding == "offset" else -(half - 1)
    return rng.integers(low, half, (k, n))


def _lossless_adc_bits(rows, cell_bits, dac_bits):
    return int(rows * ((1 << cell_bits) - 1) * ((1 << dac_bits) - 1)).bit_length()


configs = st.fixed_dictionaries({
    "rows": st.sampled_from([1, 3, 16, 63, 64, 100, 128, 129, 200]),
    "cell_bits": st.integers(1, 4),
    "dac_bits": st.integers(1, 4),
    "input_bits": st.integers(2, 16),
    "weight_bits": st.integers(2, 16),
    "encoding": st.sampled_from(["differential", "offset"]),
    "signed_inputs": st.booleans(),
})
shapes = st.tuples(st.integers(1, 3), st.integers(1, 300), st.integers(1, 9))


@SETTINGS
@given(cfg=configs, shape=shapes, extra_bits=st.integers(0, 2),
       mode=st.sampled_from(["clip", "scale"]), shortcut=st.booleans(), seed=st.integers(0, 2**32))
def test_lossless_equals_matmul(cfg, shape, extra_bits, mode, shortcut, seed):
    rng = np.random.default_rng(seed)
    batch, k, n = shape
    x = _inputs(rng, batch, k, cfg["input_bits"], cfg["signed_inputs"])
    w = _weights(rng, k, n, cfg["weight_bits"], cfg["encoding"])
    adc_bits = _lossless_adc_bits(cfg["rows"], cfg["cell_bits"], cfg["dac_bits"]) + extra_bits
    adc_range = (1 << adc_bits) - 1 if mode == "scale" else None
    y = crossbar_mvm(x, w, adc_bits=adc_bits, adc_mode=mode, adc_range=adc_range,
                     shortcut=shortcut, **cfg)
    assert y.dtype == np.int64 and y.shape == (batch, n)
    np.testing.assert_array_equal(y, x @ w)


@SETTINGS
@given(cfg=configs, shape=shapes, adc_bits=st.integers(1, 9),
       mode=st.sampled_from(["clip", "scale"]), range_factor=st.sampled_from([None, 0.37, 1.0, 2.5]),
       blocks_per_group=st.sampled_from([None, 1, 2, 3]), shortcut=st.booleans(),
       seed=st.integers(0, 2**32))
def test_lossy_matches_reference(cfg, shape, adc_bits, mode, range_factor, blocks_per_group,
                                 shortcut, seed):
    rng = np.random.default_rng(seed)
    batch, k, n = shape
    x = _inputs(rng, batch, k, cfg["input_bits"], cfg["signed_inputs"])
    w = _weights(rng, k, n, cfg["weight_bits"], cfg["encoding"])
    adc_range = None
    if mode == "scale" and range_factor is not None:
        adc_range = range_factor * cfg["rows"] * ((1 << cfg["cell_bits"]) - 1)
    group_rows = None if blocks_per_group is None else blocks_per_group * cfg["rows"]
    kwargs = dict(adc_bits=adc_bits, adc_mode=mode, adc_range=adc_range, **cfg)
    y = crossbar_mvm(x, w, group_rows=group_rows, shortcut=shortcut, **kwargs)
    np.testing.assert_array_equal(y, reference_mvm(x, w, group_rows=group_rows, **kwargs))
    if group_rows is not None:
        assert y.shape == (batch, -(-k // group_rows), n)
        np.testing.assert_array_equal(y.sum(axis=1), crossbar_mvm(x, w, **kwargs))


@settings(max_examples=25, deadline=None)
@given(cfg=configs, shape=st.tuples(st.integers(1, 2), st.integers(1, 140), st.integers(1, 4)),
       adc_bits=st.integers(2, 9), mode=st.sampled_from(["clip", "scale"]),
       sigma=st.sampled_from([0.3, 1.0, 4.0]), seed=st.integers(0, 2**64 - 1))
def test_noise_matches_reference(cfg, shape, adc_bits, mode, sigma, seed):
    rng = np.random.default_rng(seed % 2**32)
    batch, k, n = shape
    cfg = dict(cfg, input_bits=min(cfg["input_bits"], 6), weight_bits=min(cfg["weight_bits"], 6))
    x = _inputs(rng, batch, k, cfg["input_bits"], cfg["signed_inputs"])
    w = _weights(rng, k, n, cfg["weight_bits"], cfg["encoding"])
    kwargs = dict(adc_bits=adc_bits, adc_mode=mode, noise_sigma=sigma, seed=seed, **cfg)
    np.testing.assert_array_equal(crossbar_mvm(x, w, **kwargs), reference_mvm(x, w, **kwargs))


def test_noise_stream_matches_reference():
    for seed in (0, 1, 2**63 + 5):
        key = noise_key(np.uint64(seed))
        for index in (0, 1, 77, 2**40 + 3):
            assert gaussian(key, np.uint64(index)) == reference_gaussian(seed, index)


def test_noise_is_reproducible_and_seeded():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (4, 300))
    w = rng.integers(-127, 128, (300, 16))
    kwargs = dict(rows=128, cell_bits=2, dac_bits=1, input_bits=8, weight_bits=8,
                  adc_bits=8, noise_sigma=2.0)
    a = crossbar_mvm(x, w, seed=3, **kwargs)
    np.testing.assert_array_equal(a, crossbar_mvm(x, w, seed=3, **kwargs))
    assert not np.array_equal(a, crossbar_mvm(x, w, seed=4, **kwargs))
    # Each sample's noise depends on its batch index only, not on the batch tiling.
    np.testing.assert_array_equal(a[:1], crossbar_mvm(x[:1], w, seed=3, **kwargs))


@pytest.mark.parametrize("encoding", ["differential", "offset"])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("k, n, batch", [(1, 1, 1), (1, 7, 3), (65, 1, 2), (127, 5, 1),
                                         (128, 3, 2), (129, 2, 1), (300, 70, 40)])
def test_edge_shapes_exact(encoding, signed, k, n, batch):
    rng = np.random.default_rng(k * n + batch)
    x = _inputs(rng, batch, k, 8, signed)
    w = _weights(rng, k, n, 8, encoding)
    y = crossbar_mvm(x, w, rows=128, cell_bits=2, dac_bits=1, input_bits=8, weight_bits=8,
                     adc_bits=9, encoding=encoding, signed_inputs=signed)
    np.testing.assert_array_equal(y, x @ w)


@pytest.mark.parametrize("encoding", ["differential", "offset"])
def test_extreme_values_exact(encoding):
    weight_bits, input_bits = 8, 8
    most_negative = -128 if encoding == "offset" else -127
    w = np.array([[most_negative, 127, 0], [most_negative, most_negative, 0]])
    for signed, x in ((False, np.array([[255, 255], [0, 0], [255, 0]])),
                      (True, np.array([[-128, -128], [127, -128], [0, 0]]))):
        y = crossbar_mvm(x, w, rows=1, cell_bits=3, dac_bits=3, input_bits=input_bits,
                         weight_bits=weight_bits, adc_bits=6, encoding=encoding,
                         signed_inputs=signed)
        np.testing.assert_array_equal(y, x @ w)


def test_all_zero():
    kwargs = dict(rows=128, cell_bits=2, dac_bits=1, input_bits=8, weight_bits=8, adc_bits=8)
    y = crossbar_mvm(np.zeros((2, 200), np.uint8), np.zeros((200, 5), np.int8), **kwargs)
    np.testing.assert_array_equal(y, np.zeros((2, 5), np.int64))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 200))
    np.testing.assert_array_equal(crossbar_mvm(x, np.zeros((200, 5), np.int64), **kwargs), 0)


def test_small_dtypes_and_packed_reuse():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (5, 576)).astype(np.uint8)
    w = rng.integers(-127, 128, (576, 64)).astype(np.int8)
    packed = pack_weights(w, rows=128, cell_bits=2, weight_bits=8, encoding="differential")
    kwargs = dict(dac_bits=1, input_bits=8, adc_bits=8)
    y = crossbar_mvm_packed(x, packed, **kwargs)
    np.testing.assert_array_equal(y, crossbar_mvm(x.astype(np.int64), w.astype(np.int64),
                                                  rows=128, cell_bits=2, weight_bits=8, **kwargs))
    np.testing.assert_array_equal(y, reference_mvm(x, w, rows=128, cell_bits=2, weight_bits=8,
                                                   **kwargs))


@SETTINGS
@given(rows=st.sampled_from([1, 3, 16, 63, 64, 100, 128, 129, 200]), cell_bits=st.integers(1, 4),
       weight_bits=st.integers(2, 16), encoding=st.sampled_from(["differential", "offset"]),
       k=st.integers(1, 300), n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_packed_planes_hold_every_cell_bit(rows, cell_bits, weight_bits, encoding, k, n, seed):
    # [R, A, S, C, W, N]: bit i % 64 of word i // 64 of row block r is cell bit c of slice s of
    # array a's stored value in row r*rows + i (reference_arrays: the stored values).
    w = _weights(np.random.default_rng(seed), k, n, weight_bits, encoding)
    planes = pack_weights(w, rows=rows, cell_bits=cell_bits, weight_bits=weight_bits,
                          encoding=encoding).planes
    arrays, slices, _ = reference_arrays(w, weight_bits, cell_bits, encoding)
    blocks, words = -(-k // rows), -(-rows // 64)
    assert planes.shape == (blocks, len(arrays), slices, cell_bits, words, n)
    expected = np.zeros_like(planes)
    row = np.arange(k)
    r, i = row // rows, row % rows
    for a, (stored, _) in enumerate(arrays):
        for s in range(slices):
            for c in range(cell_bits):
                bits = ((stored >> (s * cell_bits + c)) & 1).astype(np.uint64)
                np.bitwise_or.at(expected, (r, a, s, c, i // 64),
                                 bits << (i % 64).astype(np.uint64)[:, None])
    np.testing.assert_array_equal(planes, expected)


def test_packed_size_is_a_few_times_the_weights():
    w = np.random.default_rng(3).integers(-127, 128, (1152, 256)).astype(np.int8)
    packed = pack_weights(w, rows=128, cell_bits=2, weight_bits=8, encoding="differential")
    assert packed.planes.nbytes <= 2 * w.nbytes
    assert packed.n_blocks == 9 and packed.n_slices == 4


def test_lossy_clip_saturates():
    x = np.full((1, 128), 255)
    w = np.full((128, 1), 127)
    y = crossbar_mvm(x, w, rows=128, cell_bits=2, dac_bits=1, input_bits=8, weight_bits=8,
                     adc_bits=8)
    # slices 0-2 hold 3 (column sum 384 saturates at 255), slice 3 holds 1 (sum 128)
    assert y[0, 0] == (255 * (1 + 4 + 16) + 128 * 64) * (2**8 - 1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(w=np.array([[-128]])), "values must be in"),
    (dict(x=np.array([[256]])), "values must be in"),
    (dict(x=np.array([[-1]])), "values must be in"),
    (dict(x=np.array([[1.0]])), "integer dtype"),
    (dict(x=np.zeros((1, 2), np.int64)), "columns"),
    (dict(w=np.zeros(3, np.int64)), "2-D"),
    (dict(cell_bits=0), "cell_bits"),
    (dict(dac_bits=9), "dac_bits"),
    (dict(weight_bits=1), "weight_bits"),
    (dict(adc_mode="log"), "adc_mode"),
    (dict(encoding="twos"), "encoding"),
    (dict(adc_range=10.0), "adc_range"),
    (dict(adc_mode="scale", adc_range=-1.0), "adc_range"),
    (dict(group_rows=100), "multiple"),
    (dict(noise_sigma=-0.1), "noise_sigma"),
])
def test_bad_arguments(kwargs, message):
    args = dict(x=np.array([[1]]), w=np.array([[1]]), rows=64, cell_bits=2, dac_bits=1,
                input_bits=8, weight_bits=8, adc_bits=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        crossbar_mvm(args.pop("x"), args.pop("w"), **args)


@pytest.mark.parametrize("encoding", ["differential", "offset"])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("adc_bits", [3, 6, 8])
def test_specialised_path_matches_reference(encoding, signed, adc_bits):
    # 128 rows, 2-bit cells, 1-bit DACs, clip ADC, no noise: the specialised kernel
    rng = np.random.default_rng(adc_bits)
    x = _inputs(rng, 37, 300, 8, signed)
    w = _weights(rng, 300, 19, 8, encoding)
    kwargs = dict(rows=128, cell_bits=2, dac_bits=1, input_bits=8, weight_bits=8,
                  adc_bits=adc_bits, encoding=encoding, signed_inputs=signed)
    for shortcut in (False, True):
        np.testing.assert_array_equal(crossbar_mvm(x, w, shortcut=shortcut, **kwargs),
                                      reference_mvm(x, w, **kwargs))
        y = crossbar_mvm(x, w, group_rows=256, shortcut=shortcut, **kwargs)
        np.testing.assert_array_equal(y, reference_mvm(x, w, group_rows=256, **kwargs))
