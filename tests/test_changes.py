"""The task weight-change kernel (xsim.kernels.changes) against its numpy reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_reference import reference_changes

from xsim.kernels.changes import weight_changes


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 40), n=st.integers(1, 40), sigma=st.floats(0.0, 300.0, width=32),
       fraction=st.floats(0.0, 1.0), per_weight=st.booleans(), bits=st.integers(2, 8),
       seed=st.integers(0, 2**32 - 1), split=st.tuples(st.integers(0, 40), st.integers(0, 40)))
def test_weight_changes_are_the_numpy_reference(k, n, sigma, fraction, per_weight, bits, seed,
                                                split):
    rng = np.random.default_rng(seed)
    limit = (1 << (bits - 1)) - 1
    w0 = rng.integers(-limit, limit + 1, (k, n)).astype(np.int32)
    changed = rng.random((k, n), dtype=np.float32) < fraction
    z = rng.standard_normal((k, n), dtype=np.float32)
    s = np.float32(sigma)
    if per_weight:  # a gain per weight, as a PE spread gives: float32(σ · gain)
        s = np.full((k, n), s, dtype=np.float32)
        s *= np.exp(rng.normal(0.0, 1.0, (k, n)))
    # Boxes as first-instance PEs tile the matrix: row and column blocks.
    r, c = min(split[0], k), min(split[1], n)
    boxes = np.array([(0, r, 0, c), (0, r, c, n), (r, k, 0, c), (r, k, c, n)], dtype=np.int64)
    delta, scores = weight_changes(changed, z, s, w0, limit, boxes)
    ref_delta, ref_scores = reference_changes(changed, z, s, w0, limit, boxes)
    assert delta.dtype == np.int8 and np.array_equal(delta, ref_delta)
    assert np.array_equal(scores, ref_scores)


def test_large_steps_clip_and_unchanged_weights_stay():
    w0 = np.array([[100, -100, 5, 0]], dtype=np.int32)
    changed = np.array([[True, True, False, True]])
    z = np.array([[1e6, -1e6, 3.0, 0.49]], dtype=np.float32)
    delta, scores = weight_changes(changed, z, np.float32(1.0), w0, 127,
                                   np.array([[0, 1, 0, 2], [0, 1, 2, 4]]))
    assert delta.tolist() == [[127, -127, 0, 0]]
    assert scores.tolist() == [27 + 27, 0]


def test_shapes_that_do_not_match_are_refused():
    ok = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="one \\(K, N\\) shape"):
        weight_changes(np.zeros((2, 2), bool), ok, np.float32(1), np.zeros((2, 3), np.int32), 7,
                       np.zeros((0, 4)))
    with pytest.raises(ValueError, match="sigma"):
        weight_changes(np.zeros((2, 3), bool), ok, np.ones(3, np.float32),
                       np.zeros((2, 3), np.int32), 7, np.zeros((0, 4)))
    with pytest.raises(ValueError, match="inside"):
        weight_changes(np.zeros((2, 3), bool), ok, np.float32(1), np.zeros((2, 3), np.int32), 7,
                       np.array([[0, 3, 0, 1]]))


def test_the_step_is_rounded_from_the_float32_product():
    # Products whose float32 rounding lands on the other side of a half-integer than the exact
    # product: a kernel that multiplied in float64 would round these differently.
    rng = np.random.default_rng(7)
    s = (1 + rng.random(200_000, dtype=np.float32) * 40).astype(np.float32)
    half = (2 * rng.integers(0, 3, s.size) + 0.5).astype(np.float32)  # 0.5, 2.5, 4.5: rint goes down
    z = (half / s).astype(np.float32)
    z = np.concatenate([z, np.nextafter(z, np.float32(np.inf)), np.nextafter(z, np.float32(0))])
    s = np.tile(s, 3)
    exact = np.rint(z.astype(np.float64) * s.astype(np.float64))
    pick = np.flatnonzero(np.rint(z * s) != exact)[:64]
    assert pick.size > 0
    z, s = z[pick][None, :], s[pick][None, :]
    w0 = np.zeros(z.shape, dtype=np.int32)
    delta, _ = weight_changes(np.ones(z.shape, bool), z, s, w0, 127, np.zeros((0, 4)))
    ref, _ = reference_changes(np.ones(z.shape, bool), z, s, w0, 127, np.zeros((0, 4)))
    assert np.array_equal(delta, ref) and not np.array_equal(delta, np.clip(exact[pick], -127, 127))
