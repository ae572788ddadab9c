"""The cells' non-idealities in the functional model: exact when off, each one's draws as the
module says, reproducible across reruns and thread counts, reported in summary.json, and bad
input refused with a message naming the file and key."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from xsim.api import model_weights, simulate
from xsim.cli import main
from xsim.config import load_arch
from xsim.deployment import Deployment
from xsim.functional.network import CrossbarNetwork
from xsim.functional.nonideal import DeviceModel, cell_layout
from xsim.functional.reference import synthetic_inputs
from xsim.kernels import stored_levels
from xsim.mta.cells import cell_levels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCH = os.path.join(ROOT, "arch", "isaac128.yaml")
LENET = os.path.join(ROOT, "workloads", "lenet5_mta.json")
NI = "cell.nonideal"


def _device(overrides, seed=7):
    return DeviceModel.from_arch(load_arch(ARCH, overrides), seed)


def _levels(seed=0, shape=(300, 20)):
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, shape)
    return stored_levels(w, rows=128, cell_bits=2, weight_bits=8, encoding="offset")


@pytest.fixture(scope="module")
def lenet():
    dep = Deployment.build(ARCH, LENET)
    weights = model_weights(dep.workload, dep.network)
    calibration = synthetic_inputs(dep.network, 4, 99)
    images = synthetic_inputs(dep.network, 3, 5)
    return dep, weights, calibration, images


def _network(lenet, overrides, **kw):
    dep, weights, calibration, _ = lenet
    device = DeviceModel.from_arch(load_arch(ARCH, overrides), 3) if overrides is not None else None
    return CrossbarNetwork(dep.mapping, weights, calibration, device=device, **kw)


def test_every_bundled_arch_has_every_nonideality_off():
    for name in sorted(os.listdir(os.path.join(ROOT, "arch"))):
        if name.endswith(".yaml"):
            assert not load_arch(os.path.join(ROOT, "arch", name)).cell.nonideal.enabled, name


def test_all_off_is_bit_identical(lenet):
    images = lenet[3]
    ideal = _network(lenet, None).run(images)
    off = _network(lenet, {}).run(images)
    np.testing.assert_array_equal(ideal, off)
    assert _network(lenet, {}).device is None


def test_on_is_reproducible_and_changes_results(lenet):
    on = {f"{NI}.programming.enabled": True, f"{NI}.variation.sigma": 0.1,
          f"{NI}.read_noise.sigma": 0.05, f"{NI}.on_off.enabled": True, f"{NI}.faults.rate": 0.01}
    images = lenet[3]
    a = _network(lenet, on, seed=1).run(images)
    b = _network(lenet, on, seed=1).run(images)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _network(lenet, None).run(images))
    c = _network(lenet, on, seed=2).run(images)  # another read-noise seed
    assert not np.array_equal(a, c)


def test_read_noise_and_fixed_noise_are_exclusive(lenet):
    with pytest.raises(ValueError, match="replaces noise_sigma"):
        _network(lenet, {f"{NI}.read_noise.sigma": 0.05}, noise_sigma=0.5)


_THREADS_SCRIPT = """
import hashlib, sys
import numpy as np
from xsim.api import model_weights
from xsim.config import load_arch
from xsim.deployment import Deployment
from xsim.functional.network import CrossbarNetwork
from xsim.functional.nonideal import DeviceModel
from xsim.functional.reference import synthetic_inputs
arch = load_arch(sys.argv[1], {"cell.nonideal.programming.enabled": True,
                               "cell.nonideal.variation.sigma": 0.1,
                               "cell.nonideal.read_noise.sigma": 0.05,
                               "cell.nonideal.drift.time_s": 3600.0})
dep = Deployment.build(arch, sys.argv[2])
net = CrossbarNetwork(dep.mapping, model_weights(dep.workload, dep.network),
                      synthetic_inputs(dep.network, 4, 99), device=DeviceModel.from_arch(arch, 3),
                      seed=4)
print(hashlib.sha256(net.run(synthetic_inputs(dep.network, 3, 5)).tobytes()).hexdigest())
"""


def test_bit_identical_across_thread_counts():
    digests = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT, ARCH, LENET], env=env,
                             capture_output=True, text=True, check=True, cwd=ROOT)
        digests.append(out.stdout.strip())
    assert len(digests[0]) == 64 and digests[0] == digests[1]


def test_write_verify_residual_within_tolerance_and_one_shot_sigma():
    levels = _levels()
    dev = _device({f"{NI}.programming.enabled": True, "cell.write.scheme": "write_verify",
                   "cell.write.verify.tolerance": 0.2})
    e = dev.cells(levels, layer=0, group=0).deviation
    assert np.all(np.abs(e) <= 0.2 + 1e-6) and np.all(e[levels == 0] == 0)
    assert abs(np.abs(e[levels > 0]).max() - 0.2) < 0.01  # uniform up to the tolerance
    one_shot = _device({f"{NI}.programming.enabled": True})  # isaac128: row_parallel, 3 pulses
    e = one_shot.cells(levels, layer=0, group=0).deviation
    sigma = one_shot.program_sigma()
    np.testing.assert_allclose(sigma, 0.035 * 3 * np.sqrt([0, 1, 2, 3]))
    for level in (1, 2, 3):
        assert abs(e[levels == level].std() / sigma[level] - 1) < 0.05
    # a reprogrammed group (other levels) gets a fresh error; the same levels the same one
    again = one_shot.cells(levels, layer=0, group=0).deviation
    np.testing.assert_array_equal(e, again)
    other = one_shot.cells(_levels(1), layer=0, group=0).deviation
    assert not np.array_equal(e[(levels == 3) & (_levels(1) == 3)], other[(levels == 3) & (_levels(1) == 3)])


def test_variation_is_fixed_per_cell_and_drift_follows_the_power_law():
    levels, other = _levels(0), _levels(1)
    dev = _device({f"{NI}.variation.sigma": 0.1, f"{NI}.on_off.enabled": True})
    g_min = 3 / (20 / 1.33 - 1)
    assert dev.g_min == pytest.approx(g_min)
    rel_a = dev.cells(levels, layer=2, group=0).deviation / (g_min + levels)
    rel_b = dev.cells(other, layer=2, group=0).deviation / (g_min + other)
    np.testing.assert_allclose(rel_a, rel_b, rtol=1e-5, atol=1e-6)  # the same device spread
    assert abs(rel_a.std() / 0.1 - 1) < 0.05
    drift = _device({f"{NI}.drift.time_s": 3600.0, f"{NI}.drift.nu_std": 0.0})
    e = drift.cells(levels, layer=0, group=0).deviation
    np.testing.assert_allclose(e, levels * ((1 + 3600 / 20) ** -0.1 - 1), rtol=1e-5, atol=1e-6)


def test_stuck_faults_and_wear_out():
    levels = _levels(0, (1000, 40))
    dev = _device({f"{NI}.faults.rate": 0.1})
    e = dev.cells(levels, layer=0, group=0).deviation
    high = np.isclose(e, 3 - levels) & (levels < 3)
    low = np.isclose(e, -levels.astype(np.float32)) & (levels > 0)
    cells = levels.size
    # cells whose level is already the stuck level show no deviation: count among the others
    assert abs(high.sum() / (levels < 3).sum() - 0.1 * 0.838) < 0.005
    assert abs(low.sum() / (levels > 0).sum() - 0.1 * 0.162) < 0.004
    assert cells > 100_000
    wear = _device({f"{NI}.wearout.enabled": True, "cell.endurance_cycles": 100})
    none = wear.cells(levels, layer=0, group=0, writes=np.zeros(levels.shape, np.int64))
    assert not none.deviation.any()
    writes = np.full(levels.shape, 100)
    d = wear.cells(levels, layer=0, group=0, writes=writes).deviation
    worn = wear.worn(writes, layer=0, group=0)
    assert abs(worn.mean() - 0.5) < 0.01  # the median of the endurance draw
    np.testing.assert_array_equal(d[worn], -levels[worn].astype(np.float32))  # stuck at G_min
    assert not d[~worn].any()


def test_cell_layout_matches_the_mta_cell_levels():
    arch = load_arch(ARCH)
    rng = np.random.default_rng(4)
    for encoding in ("offset", "differential"):
        a = load_arch(ARCH, {"crossbar.encoding": encoding})
        w = rng.integers(-127, 128, (300, 7))
        mta = cell_levels(w, a, 8)
        levels = stored_levels(w, rows=128, cell_bits=2, weight_bits=8, encoding=encoding)
        got = cell_layout(mta, rows=128, arrays=levels.shape[1], slices=levels.shape[2])
        np.testing.assert_array_equal(got, levels)
    assert arch.crossbar.rows == 128


def test_summary_lists_every_nonideality():
    result = simulate(load_arch(ARCH, {f"{NI}.variation.sigma": 0.05,
                                       f"{NI}.programming.enabled": True}),
                      LENET, functional=True, images=1)
    block = result.summary["nonideal"]
    assert block["enabled"] is True and block["variation"]["sigma"] == 0.05
    for key in ("programming", "variation", "read_noise", "on_off", "drift", "faults", "wearout"):
        assert key in block
    json.dumps(block, allow_nan=False)
    from xsim.cli import summary_text

    assert "cell non-idealities on: programming error (row_parallel); variation sigma 0.05" \
        in summary_text(result)
    ideal = simulate(ARCH, LENET, functional=True, images=1)
    assert ideal.summary["nonideal"]["enabled"] is False
    assert "non-idealities on" not in summary_text(ideal)
    assert result.functional_tasks[0]["rel_error"] > ideal.functional_tasks[0]["rel_error"]


@pytest.mark.parametrize(("key", "expected"), [
    ("variation:\n      sigma: -0.1", "cell.nonideal.variation.sigma"),
    ("faults:\n      rate: 1.5", "cell.nonideal.faults.rate"),
    ("drift:\n      tau_s: 3", "cell.nonideal.drift.tau_s"),
])
def test_bad_nonideal_input_is_one_message_and_exit_2(tmp_path, capsys, key, expected):
    with open(ARCH) as f:
        text = f.read()
    assert "\ncell:\n" in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("\ncell:\n", f"\ncell:\n  nonideal:\n    {key}\n", 1))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml" in err and expected in err, err


def test_nonideal_sweep_file_and_agreement_plot(tmp_path):
    from xsim.sweep import load_sweep

    spec, points = load_sweep(os.path.join(ROOT, "sweeps", "nonideal.yaml"))
    assert spec.functional_images == 8 and len(points) == 4 * 4 * 3
    small = tmp_path / "small.yaml"
    small.write_text(
        f"name: small\narch: {ARCH}\nworkload: {LENET}\nfunctional_images: 1\n"
        "grid:\n  arch.cell.nonideal.variation.sigma: [0.0, 0.3]\n"
        "  arch.components.adc.bits: [8]\n")
    out = tmp_path / "out"
    assert main(["sweep", str(small), "-o", str(out), "--workers", "1"]) == 0
    import pandas as pd

    frame = pd.read_csv(out / "sweep.csv")
    agree = frame[(frame["kind"] == "functional_task") & (frame["item"] == "top1_agreement")]
    assert len(agree) == 2 * 3  # two points, three tasks
    rel = frame[(frame["kind"] == "functional_task") & (frame["item"] == "rel_error")]
    by_sigma = rel.groupby("arch.cell.nonideal.variation.sigma")["value"].mean()
    assert by_sigma[0.3] > by_sigma[0.0]
    assert (out / "sweep_agreement.png").stat().st_size > 0
    # the point's cache key covers the images: another count is another point
    from dataclasses import replace

    _, pts = load_sweep(small)
    assert replace(pts[0], functional_images=2).key() != pts[0].key()


def test_cli_run_with_nonidealities_reports_them(tmp_path, capsys):
    with open(ARCH) as f:
        text = f.read()
    arch = tmp_path / "noisy.yaml"
    arch.write_text(text.replace("\ncell:\n", "\ncell:\n  nonideal:\n    variation:\n      sigma: 0.05\n"
                                 "    read_noise:\n      sigma: 0.02\n", 1))
    out = tmp_path / "out"
    assert main(["run", str(arch), LENET, "-o", str(out), "--functional"]) == 0
    assert "cell non-idealities on: variation sigma 0.05; read noise sigma 0.02" in capsys.readouterr().out
    with open(out / "summary.json") as f:
        summary = json.load(f)
    assert summary["nonideal"]["enabled"] and summary["nonideal"]["read_noise"]["sigma"] == 0.02
    assert summary["functional"][0]["rel_error"] > 0.05
