"""Sweeps on local processes: grid expansion, resumption from cached points (never a half-written
one), failed points as rows, retries after a lost worker, and kernels warmed once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from xsim.cli import main
from xsim.config import ConfigError
from xsim.sweep import compute_point, load_sweep, run_sweep

SWEEP = ROOT / "sweeps" / "lenet5_adc.yaml"


def test_grid_expands_in_file_order():
    spec, points = load_sweep(SWEEP)
    assert len(points) == 4
    assert [dict(p.coords)["arch.components.adc.bits"] for p in points] == [7, 8, 7, 8]
    assert points[0].arch.endswith("isaac64.yaml") and points[3].arch.endswith("isaac128.yaml")
    assert len({p.key() for p in points}) == 4


@pytest.mark.parametrize(("grid", "expected"), [
    ({"arch.components.adc.bits": []}, "at least one value"),
    ({"hierarchy.pes_per_tile": [1]}, "expected 'arch', 'workload'"),
    ({"arch": ["nope.yaml"]}, "no such file"),
])
def test_bad_sweep_files(tmp_path, grid, expected):
    data = yaml.safe_load(SWEEP.read_text())
    data["arch"] = str(ROOT / "arch" / "isaac128.yaml")
    data["workload"] = str(ROOT / "workloads" / "lenet5_mta.json")
    data["grid"] = grid
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=expected):
        load_sweep(path)


def test_resume_reuses_finished_points_only(tmp_path, capsys):
    spec, points = load_sweep(SWEEP)
    rows, counts = run_sweep(spec, points[:2], tmp_path, workers=2)
    assert counts == {"points": 2, "computed": 2, "reused": 0, "rejected_cache_files": 0,
                      "failed": 0}
    # A killed write leaves only a .part file; a corrupt or failed cache entry is recomputed.
    cache = tmp_path / "points"
    (cache / f".{points[2].key()}.json.abc.part").write_text('{"status": "ok", "rows": []}')
    (cache / f"{points[3].key()}.json").write_text('{"status": "ok", "rows": [')
    assert main(["sweep", str(SWEEP), "-o", str(tmp_path), "--workers", "2"]) == 0
    assert "4 points (2 computed, 2 reused" in capsys.readouterr().out
    again, counts = run_sweep(spec, points, tmp_path)
    assert counts["computed"] == 0
    fresh, _ = run_sweep(spec, points, tmp_path / "fresh", workers=2)
    assert json.dumps(again, sort_keys=True) == json.dumps(fresh, sort_keys=True)
    for name in ("sweep.csv", "sweep_energy.png", "sweep_switch.png"):
        assert (tmp_path / name).exists()


def _worker_info(out, points):
    return [json.loads((out / "points" / f"{p.key()}.json").read_text())["result"]["worker"] for p in points]


def test_kernels_warm_once_per_worker_process(tmp_path):
    spec, points = load_sweep(SWEEP)
    run_sweep(spec, points, tmp_path, workers=2)
    info = _worker_info(tmp_path, points)
    # Every point ran in a process whose initializer had loaded the kernels exactly once, and the
    # point itself compiled nothing; two processes served four points.
    assert {(i["warmups"], i["compiled"]) for i in info} == {(1, 0)}
    assert len({i["pid"] for i in info}) <= 2 and os.getpid() not in {i["pid"] for i in info}


def _bad_budget_sweep(tmp_path):
    data = yaml.safe_load(SWEEP.read_text())
    data["arch"] = str(ROOT / "arch" / "isaac128.yaml")
    data["workload"] = str(ROOT / "workloads" / "lenet5_mta.json")
    data["grid"] = {"workload.tasks.1.tier1.pe_budget": [0.25, 2.0]}
    path = tmp_path / "budget.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_input_error_inside_a_point_is_a_failed_row(tmp_path, capsys):
    path = _bad_budget_sweep(tmp_path)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-o", str(out), "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "2 points (2 computed, 0 reused" in captured.out and "1 failed" in captured.out
    assert "1 of 2 points failed" in captured.err
    table = pd.read_csv(out / "sweep.csv")
    bad = table[table["kind"] == "failed"]
    assert list(bad["workload.tasks.1.tier1.pe_budget"]) == [2.0]
    assert "pe_budget" in bad["item"].iloc[0] and "less than or equal to 1" in bad["item"].iloc[0]
    assert list(bad["value"]) == [1]  # an input error is not retried: the point is pure
    assert (table["kind"] != "failed").sum() > 0 and (out / "sweep_energy.png").exists()
    # The failed point is not cached as finished: the next run computes it (only it) again.
    assert main(["sweep", str(path), "-o", str(out), "--workers", "1"]) == 1
    assert "2 points (1 computed, 1 reused" in capsys.readouterr().out


def _dies_once(point):
    """Kills its worker process the first time it meets a point, then computes it normally."""
    marker = Path(os.environ["XSIM_TEST_MARKERS"]) / point.key()
    if not marker.exists():
        marker.touch()
        os._exit(1)
    return compute_point(point)


def _always_raises(point):
    raise RuntimeError(f"no luck with {dict(point.coords)}")


def test_lost_worker_is_retried_and_a_raising_point_fails_after_its_retries(tmp_path, monkeypatch):
    spec, points = load_sweep(SWEEP)
    points = points[:2]
    monkeypatch.setenv("XSIM_TEST_MARKERS", str(tmp_path))
    rows, counts = run_sweep(spec, points, tmp_path / "a", workers=2, retries=1, compute=_dies_once)
    assert counts["failed"] == 0 and {r["kind"] for r in rows} >= {"inference", "strategy"}
    fresh, _ = run_sweep(spec, points, tmp_path / "b", workers=2)
    assert rows == fresh
    rows, counts = run_sweep(spec, points, tmp_path / "c", workers=2, retries=1,
                             compute=_always_raises)
    assert counts["failed"] == 2
    assert rows[0]["kind"] == "failed" and rows[0]["value"] == 2 and rows[0]["unit"] == "tries"
    assert rows[0]["item"] == "RuntimeError: no luck with {'arch': '../arch/isaac64.yaml', " \
                              "'arch.components.adc.bits': 7}"


def test_scheduler_without_dask_is_an_input_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.delitem(sys.modules, "xsim.sweep.dask_cluster", raising=False)
    code = main(["sweep", str(SWEEP), "-o", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1"])
    assert code == 2 and "pip install 'xsim[dask]'" in capsys.readouterr().err
    assert not (tmp_path / "points").exists()


def test_importing_the_sweep_does_not_import_dask():
    code = "import sys, xsim.sweep, xsim.cli; sys.exit('distributed' in sys.modules or 'dask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def _one_point_sweep(tmp_path, workload: Path) -> Path:
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump({"name": "one", "arch": str(ROOT / "arch" / "isaac128.yaml"),
                                    "workload": str(workload),
                                    "grid": {"workload.seed": [0]}}))
    return path


def test_cache_key_covers_the_files_a_point_reads(tmp_path):
    """Changing the .npz a task names changes the point's key: a rerun recomputes it."""
    import numpy as np

    data = json.loads((ROOT / "workloads" / "lenet5_mta.json").read_text())
    data["tasks"][1]["tier1"]["mask_file"] = "mask.npz"
    workload = tmp_path / "w.json"
    workload.write_text(json.dumps(data))
    np.savez(tmp_path / "mask.npz", tier1=np.array([0, 1]))
    _, points = load_sweep(_one_point_sweep(tmp_path, workload))
    before = points[0].key()
    np.savez(tmp_path / "mask.npz", tier1=np.array([0, 2]))
    _, points = load_sweep(_one_point_sweep(tmp_path, workload))
    assert points[0].key() != before
    assert points[0].referenced_files()[0][0] == "mask.npz"


def test_a_point_cached_by_other_code_is_computed_again(tmp_path, monkeypatch):
    # The key holds a digest of xsim's code, which changes with any source file's bytes or name.
    from xsim.report import provenance

    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    first = provenance.source_digest((pkg,))
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    second = provenance.source_digest((pkg,))
    (pkg / "sub" / "b.py").rename(pkg / "sub" / "c.py")
    assert len({first, second, provenance.source_digest((pkg,))}) == 3
    _, points = load_sweep(SWEEP)
    before = points[0].key()
    monkeypatch.setattr(provenance, "code_digest", lambda: "other code")
    assert points[0].key() != before


def test_cached_points_are_verified_before_reuse(tmp_path, capsys):
    spec, points = load_sweep(SWEEP)
    run_sweep(spec, points[:2], tmp_path, workers=1)
    cache = tmp_path / "points"
    first, second = (cache / f"{p.key()}.json" for p in points[:2])
    edited = json.loads(first.read_text())
    edited["result"]["rows"][0]["value"] = 12345.0  # an edited figure: the checksum fails
    first.write_text(json.dumps(edited))
    second.write_text((cache / f"{points[0].key()}.json").read_text())  # another point's file
    rows, counts = run_sweep(spec, points[:2], tmp_path, workers=1)
    assert counts["computed"] == 2 and counts["rejected_cache_files"] == 2
    assert 12345.0 not in [r["value"] for r in rows]
    (cache / f"{points[0].key()}.json").write_bytes(b"\x00garbage")
    assert main(["sweep", str(SWEEP), "-o", str(tmp_path), "--workers", "1"]) == 0
    assert "were recomputed" in capsys.readouterr().out


def test_grid_size_is_bounded(tmp_path):
    from xsim.config.limits import MAX_SWEEP_POINTS

    path = tmp_path / "big.yaml"
    values = list(range(int(MAX_SWEEP_POINTS**0.5) + 1))
    path.write_text(yaml.safe_dump({"name": "big", "arch": str(ROOT / "arch" / "isaac128.yaml"),
                                    "workload": str(ROOT / "workloads" / "lenet5_mta.json"),
                                    "grid": {"workload.seed": values, "arch.read_cycle_ns": values}}))
    with pytest.raises(ConfigError, match="MAX_SWEEP_POINTS"):
        load_sweep(path)


def test_labelled_grid_values(tmp_path):
    path = tmp_path / "l.yaml"
    path.write_text(yaml.safe_dump({
        "name": "l", "arch": str(ROOT / "arch" / "isaac128.yaml"),
        "workload": str(ROOT / "workloads" / "lenet5_mta.json"),
        "grid": {"arch.cell": [{"label": "nvsim", "value": {"preset": "nvsim_rram", "bits": 2}}]}}))
    _, points = load_sweep(path)
    assert dict(points[0].coords) == {"arch.cell": "nvsim"}
    assert dict(points[0].arch_overrides)["cell"] == {"preset": "nvsim_rram", "bits": 2}


def test_a_terminated_sweep_leaves_no_workers(tmp_path):
    import signal
    import time

    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "xsim.cli", "sweep", str(SWEEP), "-o",
                             str(tmp_path), "--workers", "2"], stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 120
    children: list = []
    while time.time() < deadline and len(children) < 2:
        children = [c for c in parent.children(recursive=True) if "spawn" in " ".join(c.cmdline())]
        time.sleep(0.1)
    assert children, "the sweep started no worker"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive
