"""Every class of bad input ends in one message naming the file, the key and what was expected,
exit code 2 and no traceback; the bundled files load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from conftest import ARCH, ROOT, WORKLOADS
from xsim.cli import main
from xsim.config import ConfigError, load_arch, load_workload


def arch_data() -> dict:
    return yaml.safe_load((ARCH / "isaac128.yaml").read_text())


def workload_data(name: str = "lenet5_mta") -> dict:
    return json.loads((WORKLOADS / f"{name}.json").read_text())


def write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else
                    (json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data)))
    return path


def set_key(data: dict, dotted: str, value) -> dict:
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return data


DELETE = object()


@pytest.mark.parametrize("path", sorted(ARCH.glob("*.yaml")) + sorted(WORKLOADS.glob("*.json"))
                         + sorted((ROOT / "sweeps").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_bundled_files_validate(path, capsys):
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


ARCH_CASES = [
    ("crossbar.rows", -128, "crossbar.rows", "greater than 0"),
    ("crossbar.rows", 0, "crossbar.rows", "greater than 0"),
    ("crossbar.rows", "many", "crossbar.rows", "integer"),
    ("components.adc.bits", 40, "components.adc.bits", "less than or equal to 16"),
    ("cell.bits", 0, "cell.bits", "greater than or equal to 1"),
    ("crossbar.encoding", "balanced", "crossbar.encoding", "'offset' or 'differential'"),
    ("components.adc.count", 3, "components.adc.count", "must divide the 128 crossbar columns"),
    ("components.dac.count", 64, "components.dac.count", "one DAC drives each row"),
    ("components.dac.level", "tile", "components.dac.level", "DACs sit at level pe, group or crossbar"),
    ("components.dac.class", "laser", "components.dac.class",
     "unknown component class 'laser'; it must be one of crossbar, dac,"),
    ("components.dac.class", DELETE, "components.dac.class", "required key is missing"),
    ("components.maxpool", DELETE, "components", "no component fills the role(s) maxpool"),
    ("components.maxpool.class", "adc", "components.maxpool.bits", "required key is missing"),
    ("components.ctrl", {"class": "static", "level": "tile", "area_mm2": -1},
     "components.ctrl.area_mm2", "greater than or equal to 0"),
    ("components.sigmoid.leakage_mw", 5.0, "components.sigmoid", "must not exceed power_mw"),
    ("components.adc.sample_rate_gsps", DELETE, "components.adc.sample_rate_gsps", "required key is missing"),
    ("components.adc.resolution", 8, "components.adc.resolution", "unknown key"),
    ("precision.weight_bits", 17, "precision.weight_bits", "less than or equal to 16"),
    ("cell.r_off_kohm", 1.0, "cell", "must be larger than r_on_kohm"),
]


WORKLOAD_CASES = [
    ("tasks.1.tier1.pe_budget", 1.5, "tasks[1].tier1.pe_budget", "less than or equal to 1"),
    ("tasks.1.tier1.pe_budget", -0.1, "tasks[1].tier1.pe_budget", "greater than or equal to 0"),
    ("tasks.1.tier2.format", "log", "tasks[1].tier2.format", "'pow2', 'fixed' or 'float'"),
    ("tasks.0.backbone", False, "", "exactly one task must have"),
    ("tasks.2.name", "rotated", "", "task names must be unique"),
    ("schedule.order", ["rotated", "mnist"], "", "unknown task 'mnist'"),
    ("precision.weight_bits", 1, "precision.weight_bits", "greater than or equal to 2"),
    ("model.zoo", "alexnet", "model.zoo", "unknown model 'alexnet'"),
    ("model.input_shape", [1, 4, 4], "model.zoo", ""),
    ("batch", 0, "batch", "greater than 0"),
    ("tasks.1.head", DELETE, "tasks[1].head", "required key is missing"),
    ("strategies", ["xma2", "magic"], "strategies[1]", "full_finetune"),
    ("tasks.1.inferences_per_visit", 2.5, "tasks[1].inferences_per_visit", "integer"),
    ("tasks.1.tier2.bits", 12, "tasks[1].tier2.bits", "pow2 scales take at most 10 bits"),
    ("strategies", [], "strategies", "at least 1 item"),
]


BAD_CASES = ([("arch.yaml", arch_data, *case) for case in ARCH_CASES]
             + [("w.json", workload_data, *case) for case in WORKLOAD_CASES])


@pytest.mark.parametrize(("name", "data", "key", "value", "where", "expected"), BAD_CASES,
                         ids=[f"{c[0]}:{c[2]}={c[3]}" for c in BAD_CASES])
def test_bad_file(tmp_path, capsys, name, data, key, value, where, expected):
    path = write(tmp_path, name, set_key(data(), key, value))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert str(path) in err and expected in err
    if where:
        assert f": {where}:" in err


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("a.yaml", "crossbar: [1, 2\n", "invalid YAML at line"),
    ("a.yaml", "- 1\n- 2\n", "expected a mapping of keys"),
    ("w.json", '{"name": "x",,}', "invalid JSON at line 1"),
    ("w.json", "", "invalid JSON"),
])
def test_syntax_errors(tmp_path, capsys, name, text, expected):
    path = write(tmp_path, name, text)
    assert main(["validate", str(path)]) == 2
    assert expected in capsys.readouterr().err


def test_missing_file(capsys):
    assert main(["validate", "no/such/arch.yaml"]) == 2
    assert "no/such/arch.yaml: file not found" in capsys.readouterr().err


def test_model_that_does_not_fit(tmp_path, capsys):
    small = set_key(arch_data(), "hierarchy.tiles_per_chip", 2)
    arch = write(tmp_path, "tiny.yaml", small)
    assert main(["map", str(arch), str(WORKLOADS / "resnet50_mta.json")]) == 2
    err = capsys.readouterr().err
    assert "resnet50_mta.json: model: resnet50 at 8-bit weights" in err
    assert "needs 861 PEs" in err and "has 24 PEs" in err


def test_cli_process_exit_code_and_no_traceback(tmp_path):
    path = write(tmp_path, "w.json", set_key(workload_data(), "tasks.1.tier1.pe_budget", 2))
    proc = subprocess.run([sys.executable, "-m", "xsim.cli", "validate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("xsim: error: ")


def test_overrides_and_immutability(isaac128):
    arch = load_arch(ARCH / "isaac128.yaml", {"crossbar.encoding": "differential"})
    assert arch.crossbar.encoding == "differential" and isaac128.crossbar.encoding == "offset"
    with pytest.raises(ValidationError, match="frozen"):
        isaac128.crossbar.rows = 64
    with pytest.raises(ConfigError, match="crossbar.rows"):
        load_arch(ARCH / "isaac128.yaml", {"crossbar.rows": -1})


def test_schedule_visits(lenet5_workload, resnet50_workload):
    assert lenet5_workload.visits() == ("rotated", "inverted") * 3
    assert resnet50_workload.visits()[:5] == ("cubs", "cars", "flowers", "wikiart", "sketch")
    assert len(resnet50_workload.visits()) == 20
    assert resnet50_workload.backbone.name == "imagenet"
    assert load_workload(WORKLOADS / "resnet50_mta.json") == resnet50_workload


def test_file_of_the_wrong_kind(capsys, tmp_path):
    assert main(["map", str(WORKLOADS / "lenet5_mta.json"), str(WORKLOADS / "lenet5_mta.json")]) == 2
    assert "looks like a workload (JSON) file, but an architecture (YAML)" in capsys.readouterr().err
    assert main(["map", str(ARCH / "isaac128.yaml"), str(ARCH / "isaac128.yaml")]) == 2
    assert "looks like an architecture (YAML) file, but a workload" in capsys.readouterr().err


def test_unwritable_output_folder(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", str(ARCH / "isaac128.yaml"), str(WORKLOADS / "lenet5_mta.json"),
                 "-o", str(blocker / "out")]) == 2
    assert "cannot write the output folder" in capsys.readouterr().err


@pytest.mark.parametrize(("key", "value", "where", "expected"), [
    ("tasks.1.tier2.format", "fixed", "tasks[1].tier2.format", "is a shifter, which applies pow2"),
    ("tasks.1.head.num_classes", 11, "tasks[1].head.num_classes", "exceed the 10 columns"),
])
def test_arch_and_workload_checked_together(tmp_path, capsys, key, value, where, expected):
    """Checks across the two files: the deployment names the workload key and the arch."""
    path = write(tmp_path, "w.json", set_key(workload_data(), key, value))
    assert main(["map", str(ARCH / "isaac128.yaml"), str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"w.json: {where}: " in err and expected in err, err
