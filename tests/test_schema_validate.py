"""The documented schema (xsim schema, docs/reference.md), plain-word errors for tagged keys, and
validate ARCH WORKLOAD checking what run checks, in any file format, with unit warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import ARCH, ROOT, WORKLOADS
from xsim.cli import main
from xsim.config.reference import KINDS, json_schema, reference_markdown


def test_reference_page_is_current():
    page = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert page == reference_markdown(), (
        "docs/reference.md is stale: python -m xsim.config.reference > docs/reference.md")


def test_reference_lists_units_defaults_and_layer_kinds():
    page = reference_markdown()
    assert "| `components.<name>.power_mw` | number (≥ 0) | mW | `0.0` | busy power" in page
    assert "| `model.onnx` |" in page and "| `concat` |" in page and "`dilation` (1)" in page


@pytest.mark.parametrize("kind", KINDS)
def test_schema_command_prints_the_json_schema(kind, capsys):
    assert main(["schema", kind]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json.loads(json.dumps(json_schema(kind)))
    assert schema["properties"] and "source" not in schema["properties"]


def _write(path, data):
    path.write_text(json.dumps(data) if path.suffix == ".json" else yaml.safe_dump(data))
    return path


def _lenet():
    return json.loads((WORKLOADS / "lenet5_mta.json").read_text())


def _arch():
    return yaml.safe_load((ARCH / "isaac128.yaml").read_text())


@pytest.mark.parametrize(("weights", "expected"), [
    ({"kind": "pickle"}, "model.weights.kind: unknown kind of weights 'pickle'; it must be one "
                         "of synthetic, npz, onnx"),
    ({"seed": 3}, "model.weights.kind: required key is missing; it says which kind of weights "
                  "this is, one of synthetic, npz, onnx"),
])
def test_weights_kind_errors_in_plain_words(tmp_path, capsys, weights, expected):
    data = _lenet()
    data["model"]["weights"] = weights
    assert main(["validate", str(_write(tmp_path / "w.json", data))]) == 2
    err = capsys.readouterr().err
    assert expected in err and "discriminator" not in err


def test_a_misspelt_arch_key_is_named(tmp_path, capsys):
    data = _arch()
    data["crossbar"]["rowz"] = data["crossbar"].pop("rows")
    assert main(["validate", str(_write(tmp_path / "a.yaml", data))]) == 2
    assert "crossbar.rowz: unknown key; did you mean 'rows'?" in capsys.readouterr().err


def test_validate_accepts_every_format_run_accepts(tmp_path, capsys):
    arch = _write(tmp_path / "arch.json", _arch())
    workload = _write(tmp_path / "workload.yaml", _lenet())
    assert main(["validate", str(arch), str(workload)]) == 0
    out = capsys.readouterr().out
    assert "lenet5 fits in" in out and "task files checked" in out


@pytest.mark.parametrize(("change", "expected"), [
    (lambda a, w: a["hierarchy"].update(tiles_per_chip=1, pes_per_tile=1), "PE"),
    (lambda a, w: w["model"].update(weights={"kind": "npz", "path": "nope.npz"}),
     "model.weights.path: no such file"),
    (lambda a, w: w["tasks"][1].update(weights_file="bad.npz"), "bad.npz"),
    (lambda a, w: w["tasks"][1]["head"].update(num_classes=50), "tasks[1].head.num_classes"),
])
def test_validate_checks_what_run_checks(tmp_path, capsys, change, expected):
    arch, workload = _arch(), _lenet()
    change(arch, workload)
    np.savez(tmp_path / "bad.npz", **{"conv1.task_weight": np.zeros((2, 2), dtype=np.int64)})
    a, w = _write(tmp_path / "a.yaml", arch), _write(tmp_path / "w.json", workload)
    # Each file alone is fine; together they are not.
    assert main(["validate", str(a)]) == 0
    capsys.readouterr()
    assert main(["validate", str(a), str(w)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def test_implausible_units_warn_naming_the_key(tmp_path, capsys):
    data = _arch()
    data["components"]["adc"]["power_mw"] = 2.0e5
    assert main(["validate", str(_write(tmp_path / "a.yaml", data))]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "components.adc.power_mw: 200000 mW is above 100 W" in err
    for path in sorted(ARCH.glob("*.yaml")):
        assert main(["validate", str(path)]) == 0
        assert "warning" not in capsys.readouterr().err
