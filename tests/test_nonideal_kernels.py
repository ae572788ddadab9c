"""Tests of the stored-value non-idealities in the kernels (xsim.kernels.nonideal) against the
ideal kernels, the numpy references of tests/nonideal_reference.py, and a per-cell read-noise
model computed here."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nonideal_reference import reference_cell_deviation, reference_nonideal_mvm

from xsim.kernels import CellDeviation, cell_deviation, crossbar_mvm, pack_weights, stored_levels

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

configs = st.fixed_dictionaries({
    "rows": st.sampled_from([1, 3, 16, 64, 100, 128, 129]),
    "cell_bits": st.integers(1, 3),
    "dac_bits": st.integers(1, 3),
    "input_bits": st.integers(2, 8),
    "weight_bits": st.integers(2, 8),
    "encoding": st.sampled_from(["differential", "offset"]),
    "signed_inputs": st.booleans(),
})
shapes = st.tuples(st.integers(1, 3), st.integers(1, 200), st.integers(1, 7))


def _data(rng, shape, cfg):
    batch, k, n = shape
    ib, wb = cfg["input_bits"], cfg["weight_bits"]
    if cfg["signed_inputs"]:
        x = rng.integers(-(1 << (ib - 1)), 1 << (ib - 1), (batch, k))
    else:
        x = rng.integers(0, 1 << ib, (batch, k))
    half = 1 << (wb - 1)
    low = -half if cfg["encoding"] == "offset" else -(half - 1)
    return x, rng.integers(low, half, (k, n))


def _levels(w, cfg):
    return stored_levels(w, rows=cfg["rows"], cell_bits=cfg["cell_bits"],
                         weight_bits=cfg["weight_bits"], encoding=cfg["encoding"])


def _dyadic(rng, shape, scale=1.0):
    """Multiples of 1/64: their float32 sums are exact in any order, so kernel and reference
    agree bit for bit."""
    return (np.round(rng.normal(0.0, scale, shape) * 64) / 64).astype(np.float32)


def test_stored_levels_match_packed_planes():
    rng = np.random.default_rng(3)
    for encoding in ("differential", "offset"):
        w = rng.integers(-127, 128, (200, 5))
        levels = stored_levels(w, rows=128, cell_bits=2, weight_bits=8, encoding=encoding)
        planes = pack_weights(w, rows=128, cell_bits=2, weight_bits=8, encoding=encoding).planes
        row = np.arange(128, dtype=np.uint64)
        # bit i % 64 of word i // 64 is row i: [R, A, S, C, rows, N]
        bits = (planes[:, :, :, :, (row // 64).astype(np.int64), :] >> (row % 64)[:, None]) & 1
        unpacked = bits[:, :, :, 0] + 2 * bits[:, :, :, 1]
        np.testing.assert_array_equal(levels, unpacked)


@SETTINGS
@given(cfg=configs, shape=shapes, adc_bits=st.integers(2, 10), sigma=st.sampled_from([0.0, 0.7]),
       mode=st.sampled_from(["clip", "scale"]), seed=st.integers(0, 2**32))
def test_zero_deviation_is_the_ideal_kernel(cfg, shape, adc_bits, sigma, mode, seed):
    """No deviation: the non-ideal kernel gives the ideal kernel's bits, fixed read noise included."""
    rng = np.random.default_rng(seed)
    x, w = _data(rng, shape, cfg)
    cells = cell_deviation(_levels(w, cfg), cell_bits=cfg["cell_bits"],
                           g_min=float(rng.uniform(0, 2)))
    assert not cells.deviation.any()
    kw = dict(cfg, adc_bits=adc_bits, adc_mode=mode, noise_sigma=sigma, seed=seed)
    np.testing.assert_array_equal(crossbar_mvm(x, w, cells=cells, **kw), crossbar_mvm(x, w, **kw))


@SETTINGS
@given(cfg=configs, shape=shapes, adc_bits=st.integers(2, 10),
       mode=st.sampled_from(["clip", "scale"]), read_sigma=st.sampled_from([0.0, 0.05, 0.3]),
       grouped=st.booleans(), seed=st.integers(0, 2**32))
def test_deviation_matches_reference(cfg, shape, adc_bits, mode, read_sigma, grouped, seed):
    rng = np.random.default_rng(seed)
    x, w = _data(rng, shape, cfg)
    levels = _levels(w, cfg)
    dev = _dyadic(rng, levels.shape, 0.5)
    gsq = None
    if read_sigma > 0:
        gsq = (np.round(rng.uniform(0, 9, levels.shape) * 16) / 16).astype(np.float32)
    cells = CellDeviation(dev, gsq, read_sigma)
    group_rows = cfg["rows"] if grouped else None
    kw = dict(cfg, adc_bits=adc_bits, adc_mode=mode, seed=seed, group_rows=group_rows)
    y = crossbar_mvm(x, w, cells=cells, **kw)
    ref = reference_nonideal_mvm(x, w, dev, conductance_sq=gsq, read_sigma=read_sigma, **kw)
    np.testing.assert_array_equal(y, ref)


@SETTINGS
@given(cell_bits=st.integers(1, 4), g_min=st.floats(0, 3), read_sigma=st.sampled_from([0.0, 0.1]),
       parts=st.sets(st.sampled_from(["program", "variation", "drift", "stuck"])),
       seed=st.integers(0, 2**32))
def test_cell_deviation_matches_reference(cell_bits, g_min, read_sigma, parts, seed):
    rng = np.random.default_rng(seed)
    shape = (2, 2, 2, 5, 3)
    levels = rng.integers(0, 1 << cell_bits, shape).astype(np.uint8)
    draws = {
        "program": rng.normal(0, 0.4, shape) if "program" in parts else None,
        "variation": rng.normal(0, 0.3, shape) if "variation" in parts else None,
        "drift": rng.uniform(0.5, 1.0, shape) if "drift" in parts else None,
        "stuck": rng.choice(np.array([0, 1, 2], np.int8), shape, p=[0.6, 0.2, 0.2])
        if "stuck" in parts else None,
    }
    cells = cell_deviation(levels, cell_bits=cell_bits, g_min=g_min, read_sigma=read_sigma, **draws)
    dev, gsq = reference_cell_deviation(levels, cell_bits=cell_bits, g_min=g_min,
                                        read_sigma=read_sigma, **draws)
    np.testing.assert_allclose(cells.deviation, dev, rtol=0, atol=2e-6 * (1 + g_min))
    if read_sigma > 0:
        np.testing.assert_allclose(cells.conductance_sq, gsq, rtol=1e-6, atol=1e-6)
    else:
        assert cells.conductance_sq is None


@pytest.mark.parametrize("encoding", ["differential", "offset"])
def test_finite_on_off_ratio_is_exact(encoding):
    """G_min > 0 alone: its current is removed exactly, the result is x @ w (lossless ADC)."""
    rng = np.random.default_rng(7)
    cfg = dict(rows=128, cell_bits=2, dac_bits=1, input_bits=8, weight_bits=8, encoding=encoding,
               signed_inputs=False)
    x, w = _data(rng, (4, 300, 9), cfg)
    cells = cell_deviation(_levels(w, cfg), cell_bits=2, g_min=3 / (20 / 1.33 - 1))
    np.testing.assert_array_equal(crossbar_mvm(x, w, adc_bits=10, cells=cells, **cfg), x @ w)


@pytest.mark.parametrize("encoding", ["differential", "offset"])
def test_stuck_cells_read_their_stuck_level(encoding):
    """Stuck cells (lossless ADC) give the product of the weights their stuck levels encode."""
    rng = np.random.default_rng(11)
    cfg = dict(rows=64, cell_bits=2, dac_bits=1, input_bits=6, weight_bits=6, encoding=encoding,
               signed_inputs=False)
    x, w = _data(rng, (3, 150, 4), cfg)
    levels = _levels(w, cfg)
    stuck = rng.choice(np.array([0, 1, 2], np.int8), levels.shape, p=[0.8, 0.1, 0.1])
    cells = cell_deviation(levels, cell_bits=2, g_min=0.4, stuck=stuck)
    faulty = np.where(stuck == 1, 0, np.where(stuck == 2, 3, levels)).astype(np.int64)
    # reassemble the stored values: [R, A, S, rows, N] -> per array sum_s level << 2s
    n_arrays, n_sl = levels.shape[1], levels.shape[2]
    stored = sum(faulty[:, :, s] << (2 * s) for s in range(n_sl))  # [R, A, rows, N]
    stored = stored.transpose(1, 0, 2, 3).reshape(n_arrays, -1, w.shape[1])[:, :w.shape[0]]
    if encoding == "differential":
        expected = x @ (stored[0] - stored[1])
    else:
        expected = x @ stored[0] - (1 << 5) * x.sum(axis=1)[:, None]
    np.testing.assert_array_equal(crossbar_mvm(x, w, adc_bits=10, cells=cells, **cfg), expected)


def test_state_dependent_read_noise_matches_a_per_cell_model():
    """The conversion's noise (variance read_sigma² Σ x² g²) has the distribution of a per-cell
    model that gives every cell its own N(0, (read_sigma g)²) at every read (CrossSim's
    state-proportional read noise), summed over the driven rows: KS test on the output errors
    and their σ within 2 % (the σ estimates' own spread is about 0.6 % here)."""
    from scipy import stats

    rng = np.random.default_rng(5)
    rows, n, k, batch = 128, 64, 128, 256
    cfg = dict(rows=rows, cell_bits=2, dac_bits=1, input_bits=1, weight_bits=2,
               encoding="offset", signed_inputs=False)
    w = rng.integers(-2, 2, (k, n))
    x = rng.integers(0, 2, (batch, k))
    g_min, sigma = 0.25, 0.05
    levels = _levels(w, cfg)
    cells = cell_deviation(levels, cell_bits=2, g_min=g_min, read_sigma=sigma)
    # a wide ADC, one input bit and one slice of 2-bit cells: y = P + noise, rounded, minus bias
    y = crossbar_mvm(x, w, adc_bits=12, seed=1, cells=cells, **cfg)
    err_kernel = (y - x @ w).ravel().astype(np.float64)
    g = g_min + levels[0, 0, 0].astype(np.float64)  # (rows, N)
    per_cell = []
    for _ in range(4):
        reads = g * (1.0 + sigma * rng.standard_normal((batch, rows, n)))
        analog = np.einsum("bk,bkn->bn", x.astype(np.float64), reads) - g_min * x.sum(axis=1)[:, None]
        ideal = x @ levels[0, 0, 0].astype(np.int64)
        per_cell.append((np.floor(analog + 0.5) - ideal).ravel())
    err_cells = np.concatenate(per_cell)
    assert err_kernel.std() > 0.5  # the test has noise to compare
    assert stats.ks_2samp(err_kernel, err_cells).pvalue > 1e-3
    assert abs(err_kernel.std() / err_cells.std() - 1) < 0.02
    assert abs(err_kernel.mean() - err_cells.mean()) < 0.05


def test_read_noise_replaces_fixed_noise_and_bad_cells_are_refused():
    rng = np.random.default_rng(2)
    w = rng.integers(-7, 8, (10, 3))
    kw = dict(rows=8, cell_bits=2, dac_bits=1, input_bits=4, weight_bits=4, adc_bits=6)
    levels = stored_levels(w, rows=8, cell_bits=2, weight_bits=4)
    cells = cell_deviation(levels, cell_bits=2, read_sigma=0.1)
    x = rng.integers(0, 16, (2, 10))
    with pytest.raises(ValueError, match="replaces noise_sigma"):
        crossbar_mvm(x, w, noise_sigma=0.5, cells=cells, **kw)
    with pytest.raises(ValueError, match="shape"):
        crossbar_mvm(x[:, :8], w[:8], cells=cells, **kw)
    with pytest.raises(ValueError, match="CellDeviation"):
        crossbar_mvm(x, w, cells=cells.deviation, **kw)
    with pytest.raises(ValueError, match="g_min"):
        cell_deviation(levels, cell_bits=2, g_min=-1.0)
    with pytest.raises(ValueError, match="stuck"):
        cell_deviation(levels, cell_bits=2, stuck=np.full(levels.shape, 3, np.int8))
