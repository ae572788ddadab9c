"""Golden regression case (SCALE-Sim style): a small arch and workload and the figures they must
produce. Any unintended change in the mapping, the roll-up, the engine, the reprogramming model
or the functional model shows up here as a named figure that moved.

After an intended change, rewrite the expected file and review its diff:
``XSIM_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py``.
"""

from __future__ import annotations

import json
import math
import os

import pytest

from conftest import ARCH, ROOT, WORKLOADS
from xsim.api import simulate

GOLDEN = ROOT / "tests" / "golden" / "lenet5_mta_isaac128.json"
# Integer figures must match exactly; simulated floats to 1e-9; the functional model's errors,
# which go through BLAS and so may differ in the last bits between numpy builds, to 1e-6.
REL = {"functional": 1e-6}


def figures() -> dict:
    result = simulate(ARCH / "isaac128.yaml", WORKLOADS / "lenet5_mta.json", functional=True)
    s = result.summary
    out = {
        "mapping": {k: v for k, v in s["mapping"].items() if not isinstance(v, str)},
        "chip": s["hardware"]["chip"],
        "inference": {k: s["inference"][k] for k in ("latency_ps", "interval_ps", "energy_pj",
                                                      "events")},
        "strategies": {f"{r['strategy']}/{r['task']}": {
            k: r[k] for k in ("cells_written", "program_pulses", "switch_energy_uj",
                              "switch_latency_us", "inference_energy_uj", "tier2_overhead_uj")}
            for r in result.tables["strategies"]},
        "endurance": {r["strategy"]: {"max_writes": r["max_writes"], "mean_writes": r["mean_writes"]}
                      for r in result.tables["strategy_totals"]},
        "functional": {r["task"]: {"rel_error": r["rel_error"], "snr_db": r["snr_db"]}
                       for r in result.tables["functional_tasks"]},
    }
    return json.loads(json.dumps(out))


def compare(got, want, path, rel):
    if isinstance(want, dict):
        assert set(got) == set(want), f"{path}: keys {sorted(set(got) ^ set(want))} differ"
        for key in want:
            compare(got[key], want[key], f"{path}.{key}", REL.get(key, rel))
    elif isinstance(want, float):
        assert math.isclose(got, want, rel_tol=rel, abs_tol=1e-12), f"{path}: {got} != {want}"
    else:
        assert got == want, f"{path}: {got} != {want}"


def test_golden_lenet5_scenario():
    got = figures()
    if os.environ.get("XSIM_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        pytest.skip("golden figures rewritten")
    compare(got, json.loads(GOLDEN.read_text()), "golden", 1e-9)
