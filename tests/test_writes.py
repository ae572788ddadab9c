"""The write-verify kernel against a slow, obviously-right loop over rows and cells."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from xsim.kernels.writes import slice_levels, write_cost


def reference_levels(w, weight_bits, cell_bits, encoding):
    """Cell levels by the definition: every slice of every weight, one at a time."""
    magnitude = weight_bits if encoding == "offset" else weight_bits - 1
    slices = math.ceil(magnitude / cell_bits)
    arrays = 1 if encoding == "offset" else 2
    out = np.zeros((w.shape[0], w.shape[1] * slices * arrays), np.uint8)
    for r in range(w.shape[0]):
        for j in range(w.shape[1]):
            v = int(w[r, j])
            values = [v + 2 ** (weight_bits - 1)] if encoding == "offset" else [max(v, 0), max(-v, 0)]
            for a, value in enumerate(values):
                for s in range(slices):
                    level = (value // 2 ** (s * cell_bits)) % 2**cell_bits
                    out[r, (j * arrays + a) * slices + s] = level
    return out, slices


def reference(old, new, rows, columns, compare, base, per_level, max_pulses, write_ps, verify_ps,
              compare_ps, parallel):
    grid = (math.ceil(old.shape[0] / rows), math.ceil(old.shape[1] / columns))
    time = np.zeros(grid, np.int64)
    pulses = np.zeros(grid, np.int64)
    cells = np.zeros(grid, np.int64)
    written = np.zeros(old.shape, bool)
    for rb in range(grid[0]):
        for cb in range(grid[1]):
            for r in range(rb * rows, min((rb + 1) * rows, old.shape[0])):
                todo = []
                for c in range(cb * columns, min((cb + 1) * columns, old.shape[1])):
                    d = abs(int(new[r, c]) - int(old[r, c]))
                    if compare and d == 0:
                        continue
                    p = min(max_pulses, base + math.ceil(per_level * d))
                    if p:
                        todo.append(p)
                        written[r, c] = True
                if compare:
                    time[rb, cb] += compare_ps
                for g in range(0, len(todo), parallel):
                    time[rb, cb] += max(todo[g:g + parallel]) * (write_ps + verify_ps)
                pulses[rb, cb] += sum(todo)
                cells[rb, cb] += len(todo)
    return time, pulses, cells, written


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 40), c=st.integers(1, 40), rows=st.integers(1, 16), columns=st.integers(1, 16),
    levels=st.integers(2, 16), compare=st.booleans(), base=st.integers(0, 3),
    per_level=st.sampled_from([0.0, 0.5, 1.0, 2.0]), max_pulses=st.integers(1, 12),
    parallel=st.integers(1, 9), seed=st.integers(0, 2**32 - 1),
)
def test_matches_reference(k, c, rows, columns, levels, compare, base, per_level, max_pulses,
                           parallel, seed):
    rng = np.random.default_rng(seed)
    old = rng.integers(0, levels, (k, c), dtype=np.uint8)
    new = np.where(rng.random((k, c)) < 0.5, old, rng.integers(0, levels, (k, c))).astype(np.uint8)
    args = dict(rows=rows, columns=columns, compare=compare, base_pulses=base,
                pulses_per_level=per_level, max_pulses=max_pulses, write_ps=40_000,
                verify_ps=100_000, compare_ps=100_000, parallel_columns=parallel)
    counts = np.zeros(old.shape, np.int64)
    got = write_cost(old, new, counts=counts, weight=3, **args)
    want = reference(old, new, rows, columns, compare, base, per_level, max_pulses, 40_000,
                     100_000, 100_000, parallel)
    for g, w in zip(got, want[:3]):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(counts, 3 * want[3])
    # A window is the same as cutting the matrices first.
    r0, c0 = k // 3, c // 4
    sub = write_cost(old, new, window=(r0, k, c0, c), **args)
    cut = write_cost(old[r0:, c0:].copy(), new[r0:, c0:].copy(), **args)
    for g, w in zip(sub, cut):
        np.testing.assert_array_equal(g, w)


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(2, 16), cell_bits=st.integers(1, 4),
       encoding=st.sampled_from(["offset", "differential"]), seed=st.integers(0, 2**32 - 1),
       k=st.integers(1, 9), n=st.integers(1, 9))
def test_slice_levels_matches_definition(bits, cell_bits, encoding, seed, k, n):
    low = -(2 ** (bits - 1)) + (encoding == "differential")
    w = np.random.default_rng(seed).integers(low, 2 ** (bits - 1), (k, n))
    want, slices = reference_levels(w, bits, cell_bits, encoding)
    got = slice_levels(w, weight_bits=bits, cell_bits=cell_bits, slices=slices, encoding=encoding)
    np.testing.assert_array_equal(got, want)


def test_unchanged_crossbar_costs_only_the_compare_reads():
    old = np.full((128, 128), 2, np.uint8)
    counts = np.zeros(old.shape, np.int64)
    t, p, n = write_cost(old, old.copy(), counts=counts, rows=128, columns=128, compare=True, base_pulses=1,
                            pulses_per_level=2, max_pulses=20, write_ps=40_000, verify_ps=100_000,
                            compare_ps=100_000, parallel_columns=16)
    assert t.tolist() == [[128 * 100_000]] and p.sum() == 0 and n.sum() == 0 and not counts.any()


def test_one_level_change_everywhere_closed_form():
    old = np.zeros((256, 256), np.uint8)
    new = np.ones_like(old)
    t, p, n = write_cost(old, new, rows=128, columns=128, compare=False, base_pulses=1,
                            pulses_per_level=2, max_pulses=20, write_ps=40_000, verify_ps=100_000,
                            compare_ps=100_000, parallel_columns=16)
    # 3 pulses per cell; 8 groups of 16 per row; 128 rows per crossbar.
    assert (t == 128 * 8 * 3 * 140_000).all()
    assert (p == 128 * 128 * 3).all() and (n == 128 * 128).all()
