"""Sweeps: grid expansion, resumption from cached points, and never reusing a half-written one."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import ROOT
from xsim.cli import main
from xsim.config import ConfigError
from xsim.sweep import load_sweep, run_sweep

SWEEP = ROOT / "sweeps" / "lenet5_adc.yaml"


def test_grid_expands_in_file_order():
    spec, points = load_sweep(SWEEP)
    assert len(points) == 4
    assert [dict(p.coords)["arch.pe.adc.bits"] for p in points] == [7, 8, 7, 8]
    assert points[0].arch.endswith("isaac64.yaml") and points[3].arch.endswith("isaac128.yaml")
    assert len({p.key() for p in points}) == 4


@pytest.mark.parametrize(("grid", "expected"), [
    ({"arch.pe.adc.bits": []}, "at least one value"),
    ({"tile.pes": [1]}, "expected 'arch', 'workload'"),
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
    assert counts == {"points": 2, "computed": 2, "reused": 0, "failed": 0}
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
