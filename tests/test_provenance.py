"""Output hygiene and provenance: --version, summary.json's provenance, -o "" refused, output
files following the umask."""

from __future__ import annotations

import json
import os
import stat

import pytest

from conftest import ARCH, ROOT, WORKLOADS
from xsim.cli import main
from xsim.report.files import sha256_file


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("xsim 0.1.0")


@pytest.mark.parametrize("command", [
    ["run", str(ARCH / "isaac128.yaml"), str(WORKLOADS / "lenet5_mta.json")],
    ["sweep", str(ROOT / "sweeps" / "crossbar_size.yaml")],
    ["import", "model.onnx"],
])
def test_an_empty_output_folder_is_refused(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "-o", ""]) == 2
    assert "-o: needs a folder name" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_run_records_provenance_and_follows_the_umask(tmp_path, capsys):
    out = tmp_path / "run"
    old = os.umask(0o027)
    try:
        assert main(["run", str(ARCH / "isaac128.yaml"), str(WORKLOADS / "lenet5_mta.json"),
                     "-o", str(out)]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    prov = summary["provenance"]
    assert prov["xsim_version"] == "0.1.0"
    assert prov["git"] is None or len(prov["git"]["commit"]) == 40
    inputs = {i["role"]: i for i in prov["inputs"]}
    assert inputs["arch"]["sha256"] == sha256_file(ARCH / "isaac128.yaml")
    assert inputs["workload"]["sha256"] == sha256_file(WORKLOADS / "lenet5_mta.json")
    assert prov["seeds"] == {"workload": 1, "synthetic_weights": 3}
    assert prov["host"]["cpu"] and prov["host"]["cores"] >= 1
    for path in out.iterdir():
        if path.name != ".xsim.lock":
            assert stat.S_IMODE(path.stat().st_mode) == 0o640, path.name
