"""Hostile and unlucky inputs: every one ends in a clean result or one clean message (exit 2);
array files are checked before use; runs are bounded up front; a run folder never misleads; the
CLI behaves in pipes and on signals; the fuzzer finds no crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from fuzz import _claiming_archive
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ARCH, ROOT, WORKLOADS
from xsim.cli import main
from xsim.config import ConfigError, limits
from xsim.config.arrays import NpzArchive
from xsim.report.outdir import LOCK_NAME, check_run, claim
from xsim.report.writer import RUN_FILES
from xsim.text import MAX_SHOWN_CHARS, shown

ISAAC = str(ARCH / "isaac128.yaml")
LENET = WORKLOADS / "lenet5_mta.json"


def workload(**changes) -> dict:
    data = json.loads(LENET.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    return data


def validate(capsys, path) -> tuple[int, str]:
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code:
        assert err.count("\n") == 1 and err.startswith("xsim: error: "), err
        assert err.strip().isprintable(), err
    return code, err


# 1. Every input ends in a clean result or one clean message.

@pytest.mark.parametrize(("changes", "expected"), [
    ({"schedule__periods": 10**9}, "less than or equal to 1000000"),
    ({"schedule__periods": 600_000}, "MAX_SCHEDULE_VISITS"),
    ({"strategies": []}, "strategies: Tuple should have at least 1 item"),
    ({"batch": 10**30}, "MAX_ABS_INT"),
    ({"tasks__1__tier1__pe_budget": 1e-300}, "MIN_ABS_FLOAT"),
    ({"name": "x" * 5000}, "MAX_STRING_CHARS"),
    ({"name": "a\x00b"}, "control character"),
    ({"name": "\ud800"}, "lone surrogate"),
    ({"name": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
     "MAX_DEPTH"),
])
def test_bounds_at_validation(tmp_path, capsys, changes, expected):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(workload(**changes)))
    code, err = validate(capsys, path)
    assert code == 2 and str(path) in err and expected in err, err


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "9" * 5000, "1e999"])
def test_non_standard_json_numbers(tmp_path, capsys, token):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(workload(batch="TOKEN")).replace('"TOKEN"', token))
    code, err = validate(capsys, path)
    assert code == 2 and len(err) < 400, err


def test_deep_nesting_and_duplicate_keys(tmp_path, capsys):
    path = tmp_path / "w.json"
    path.write_text('{"name": ' + "[" * 3000 + "]" * 3000 + "}")
    assert validate(capsys, path)[0] == 2
    path.write_text('{"name": "a", "name": "b"}')
    code, err = validate(capsys, path)
    assert code == 2 and "appears twice" in err


def test_offending_values_are_shortened_and_escaped(tmp_path, capsys):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(workload(tasks__1__tier1__policy="\x1b[31m" + "z" * 3000)))
    code, err = validate(capsys, path)
    assert code == 2 and "\x1b" not in err and "\\x1b" in err
    assert len(err[err.index("control character: ") + 19:].strip()) <= MAX_SHOWN_CHARS
    path.write_text(json.dumps(workload(tasks__1__tier1__policy="z" * 3000)))
    code, err = validate(capsys, path)
    got = err[err.index("(got ") + 5:].strip()[:-1]
    assert code == 2 and len(got) <= MAX_SHOWN_CHARS, got
    text = shown("\ud800\x00" + "y" * 500)
    assert text.startswith("'\\ud800\\x00yyy") and text.endswith("... (512 chars)")
    assert len(text) == MAX_SHOWN_CHARS and text.isascii()
    assert shown(10**5000) == "<an integer of 5001 digits>"


def test_yaml_alias_bombs_and_python_tags(tmp_path, capsys):
    base = (ARCH / "isaac128.yaml").read_text()
    bomb = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(bomb) + "\n" + base)
    start = time.perf_counter()
    code, err = validate(capsys, path)
    assert code == 2 and "MAX_NODES" in err and time.perf_counter() - start < 5
    many = "\n".join(f"k{i}: *a0" for i in range(limits.MAX_YAML_ALIASES + 1))
    path.write_text(bomb[0] + "\n" + many + "\n")
    assert "MAX_YAML_ALIASES" in validate(capsys, path)[1]
    path.write_text("evil: !!python/object/apply:os.system ['touch pwned']\n" + base)
    code, err = validate(capsys, path)
    assert code == 2 and "no tags such as !!python" in err
    assert not Path("pwned").exists()
    path.write_text(base.replace("name:", "name: 2024-01-01\nold_name:", 1))
    assert "expected a string, number" in validate(capsys, path)[1]


def test_fifo_folder_and_oversized_inputs_are_refused(tmp_path, capsys):
    fifo = tmp_path / "w.json"
    os.mkfifo(fifo)
    code, err = validate(capsys, fifo)  # would block forever if it were opened for reading
    assert code == 2 and "not a regular file" in err
    assert "not a regular file" in validate(capsys, tmp_path)[1]
    big = tmp_path / "big.json"
    big.write_text(json.dumps(workload(description=" " * limits.MAX_DOCUMENT_BYTES)))
    assert "MAX_DOCUMENT_BYTES" in validate(capsys, big)[1]


def test_arch_sizes_are_bounded(tmp_path, capsys):
    data = yaml.safe_load((ARCH / "isaac128.yaml").read_text())
    for key, value, expected in (("columns", 128 * 10**4, "MAX_CROSSBAR_DIM"),
                                 ("tiles_per_chip", 10**9, "MAX_CROSSBARS_PER_CHIP")):
        changed = json.loads(json.dumps(data))
        section = "crossbar" if key == "columns" else "hierarchy"
        changed[section][key] = value
        path = tmp_path / "a.yaml"
        path.write_text(yaml.safe_dump(changed))
        code, err = validate(capsys, path)
        assert code == 2 and f"{section}.{key}" in err and expected in err, err


def test_zero_area_chip_is_refused_not_divided_by(tmp_path, capsys):
    text = (ARCH / "isaac128.yaml").read_text()
    path = tmp_path / "a.yaml"
    lines = [(line.split("area_mm2:")[0] + "area_mm2: 0.0") if "area_mm2:" in line else line
             for line in text.splitlines()]
    path.write_text("\n".join(lines) + "\n")
    assert main(["info", str(path)]) == 2
    assert "total area comes out 0.0" in capsys.readouterr().err


def test_validate_map_info_are_fast_on_hostile_inputs(tmp_path, capsys):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(workload(schedule__periods=10**6 // 2)))
    start = time.perf_counter()
    assert main(["map", ISAAC, str(path)]) == 0
    capsys.readouterr()
    assert time.perf_counter() - start < 5


JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=40)


@settings(max_examples=200, deadline=None)
@given(JSON_LIKE)
def test_document_checks_accept_or_refuse_cleanly(data):
    try:
        limits.check_tree({"doc": data}, "f.json")
    except ConfigError as exc:
        assert str(exc).startswith("f.json") and str(exc).isascii()


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.floats(), st.binary(), JSON_LIKE))
def test_shown_values_are_short_printable_ascii(value):
    text = shown(value)
    assert len(text) <= MAX_SHOWN_CHARS and text.isascii() and text.isprintable()


# 2. Array files.

def _npz_workload(tmp_path: Path, **arrays) -> Path:
    data = workload()
    task = data["tasks"][1]
    for name, key, field in (("mask", "tier1", "mask_file"), ("scales", "tier2", "scales_file")):
        if name in arrays:
            np.savez(tmp_path / f"{name}.npz", **{key: arrays[name]})
            task["tier1" if key == "tier1" else "tier2"][field] = f"{name}.npz"
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def tier2_columns():
    from xsim.api import prepare

    return prepare(ISAAC, LENET).mapping.tier2_columns


@pytest.mark.parametrize(("scales", "expected"), [
    (lambda n: np.full(n, np.nan), "NaN or infinite"),
    (lambda n: -np.ones(n), "must lie in [0, 65536]"),
    (lambda n: np.ones(n, dtype=np.complex128), "expected tier-2 scales (one per first-instance "
     "PE weight column) (integer or unsigned integer or real (float))"),
    (lambda n: np.array(["1"] * n), "got <U1"),
    (lambda n: np.zeros(n, dtype="datetime64[s]"), "got datetime64[s]"),
    (lambda n: np.ones(n + 1), "of shape"),
    (lambda n: np.array([object()] * n), "Python objects (a pickle)"),
])
def test_bad_scales_end_in_a_message_naming_file_array_and_task(tmp_path, capsys, tier2_columns,
                                                               scales, expected):
    path = _npz_workload(tmp_path, scales=scales(tier2_columns))
    assert main(["run", ISAAC, str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "scales.npz: tier2:" in err and expected in err and "task 'rotated'" in err, err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_array_header_is_checked_before_allocation(tmp_path):
    path = tmp_path / "lie.npz"
    path.write_bytes(_claiming_archive("tier2", 2 * 10**9))
    with NpzArchive(path, "named by w.json") as archive, \
            pytest.raises(ConfigError, match=r"claims shape \(2000000000,\).*MAX_ARRAY_BYTES"):
        archive.read("tier2")
    path.write_bytes(_claiming_archive("tier2", 1000))
    with NpzArchive(path) as archive, pytest.raises(ConfigError, match="member holds 16"):
        archive.read("tier2")
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        NpzArchive(fifo)


# 3. Resource bounds on a run.

def test_run_beyond_the_work_limit_is_refused_up_front(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert main(["run", ISAAC, str(LENET), "-o", str(out), "--max-work", "1000"]) == 2
    err = capsys.readouterr().err
    assert "estimated work" in err and "--max-work" in err
    assert (out / "summary.json").read_text() == "{}"  # a refused run does not touch the folder


# 4 and 5. Run folders.

@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    """One run into a folder that holds an earlier --functional run's files and debris."""
    out = tmp_path_factory.mktemp("run")
    for name in ("summary.json", "functional_tasks.csv", "functional_layers.csv",
                 ".strategies.csv.abc.part"):
        (out / name).write_text("stale")
    (out / "notes.txt").write_text("mine")
    outside = tmp_path_factory.mktemp("outside") / "target.csv"
    outside.write_text("do not touch")
    (out / "timeline.csv").symlink_to(outside)
    assert main(["run", ISAAC, str(LENET), "-o", str(out)]) == 0
    return out, outside


def test_run_folder_is_claimed_and_lists_its_files(lenet_run):
    out, outside = lenet_run
    names = {p.name for p in out.iterdir()}
    assert not {"functional_tasks.csv", "functional_layers.csv"} & names
    assert not [n for n in names if n.endswith(".part")]
    assert "notes.txt" in names  # not a file xsim writes: left alone
    assert outside.read_text() == "do not touch" and not (out / "timeline.csv").is_symlink()
    summary = json.loads((out / "summary.json").read_text())
    listed = {f["file"] for f in summary["files"]}
    assert listed == names - {"summary.json", "notes.txt", LOCK_NAME}
    assert listed < set(RUN_FILES)
    assert check_run(out) == []
    (out / "strategies.csv").write_text("edited")
    assert check_run(out) == ["strategies.csv: differs from the run that wrote summary.json"]


def test_summary_is_strict_json_with_null_for_infinite_lifetimes(lenet_run):
    out, _ = lenet_run

    def refuse(token):
        raise ValueError(token)

    summary = json.loads((out / "summary.json").read_text(), parse_constant=refuse)
    rows = {r["strategy"]: r for r in summary["multi_task"]["strategies"]}
    assert rows["tier2_only"]["lifetime_periods"] is None
    assert rows["xma2"]["lifetime_periods"] > 0


def test_every_table_of_a_functional_run_is_a_file_the_claim_clears():
    from xsim.api import simulate

    result = simulate(ISAAC, LENET, functional=True)
    assert {f"{name}.csv" for name in result.tables} <= set(RUN_FILES)


def test_json_on_stdout_is_strict(capsys):
    def refuse(token):
        raise ValueError(token)

    for argv in (["info", ISAAC, "--json"], ["map", ISAAC, str(LENET), "--json"]):
        assert main(argv) == 0
        json.loads(capsys.readouterr().out, parse_constant=refuse)


def test_a_second_run_into_a_locked_folder_is_refused(tmp_path, capsys):
    with claim(tmp_path / "out"):
        assert main(["run", ISAAC, str(LENET), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"another xsim run is writing this folder (process {os.getpid()})" in err
    with claim(tmp_path / "out"):
        pass  # released: the folder can be claimed again


def test_lock_and_probe_never_follow_a_symlink(tmp_path, capsys):
    target = tmp_path / "precious"
    target.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(target)
    assert main(["run", ISAAC, str(LENET), "-o", str(out)]) == 2
    assert "is a symlink" in capsys.readouterr().err
    assert target.read_text() == "keep"


# 6. Pipes and signals.

def _xsim(*args) -> list[str]:
    return [sys.executable, "-m", "xsim.cli", *args]


@pytest.mark.parametrize(("reader", "statuses"), [("head -1", ("0", "141")), ("true", ("141",))])
def test_closed_pipe_ends_quietly(reader, statuses):
    # `true` exits before xsim writes a byte, so the write always meets a closed pipe.
    command = " ".join(_xsim("map", ISAAC, str(WORKLOADS / "resnet50_mta.json")))
    proc = subprocess.run(f"{command} | {reader}; echo \"status ${{PIPESTATUS[0]}}\"", shell=True,
                          executable="/bin/bash", capture_output=True, text=True, cwd=ROOT)
    assert proc.stderr == ""
    assert proc.stdout.splitlines()[-1].split()[-1] in statuses, proc.stdout


def test_a_worker_signalled_before_its_own_handlers_ends_quietly():
    """A forked worker holds the main process's handler until its initializer replaces it; a
    SIGTERM in that moment (the main process stopping its pool at Ctrl-C) ends it as its own
    handlers would, by the signal and without a traceback; Ctrl-C there is ignored. The main
    process's handler still raises."""
    script = """if True:
        import os, signal, sys, time
        import xsim.cli as cli
        cli._handler_pid = os.getpid()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, cli._on_signal)
        child = os.fork()
        if child == 0:
            os.kill(os.getpid(), signal.SIGINT)  # ignored
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            os._exit(0)  # not reached
        _, status = os.waitpid(child, 0)
        print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except cli.Terminated:
            print("raised")
    """
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.split() == ["True", "raised"], proc.stdout + proc.stderr
    assert proc.stderr == ""


@pytest.mark.parametrize(("signum", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                      (signal.SIGTERM, 143, "terminated")])
def test_signals_end_quietly_and_leave_no_partial_files(tmp_path, signum, code, word):
    out = tmp_path / "out"
    proc = subprocess.Popen(_xsim("run", ISAAC, str(WORKLOADS / "resnet20_mta.json"), "-o",
                                  str(out), "--functional"), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / LOCK_NAME).exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.strip() == f"xsim: {word}"
    assert not list(out.glob(".*.part")) and not (out / "summary.json").exists()


# 7. The fuzzer.

def test_fuzzer_finds_no_crash_or_hang():
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz.py"), "--cases", "60",
                           "--seed", "7", "--npz-share", "0.1", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    tally = json.loads(proc.stdout.splitlines()[-1])
    assert tally["cases"] == 60 and tally["clean"] + tally["rejected"] == 60, tally["examples"]
    assert tally["crashes"] == 0 and tally["hangs"] == 0


def test_killed_run_leaves_a_folder_that_says_so(tmp_path):
    out = tmp_path / "out"
    assert main(["run", ISAAC, str(LENET), "-o", str(out)]) == 0
    assert check_run(out) == []
    proc = subprocess.Popen(_xsim("run", ISAAC, str(WORKLOADS / "resnet20_mta.json"), "-o",
                                  str(out)), stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while (out / "summary.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert not (out / "summary.json").exists()  # claimed: the earlier run's summary is gone
    assert check_run(out)[0].startswith("summary.json: missing")


def test_a_signal_inside_a_write_removes_its_temporary_file(tmp_path):
    from xsim.cli import Terminated
    from xsim.report.files import atomic_write

    def write(handle):
        handle.write(b"half")
        raise Terminated

    with pytest.raises(Terminated):
        atomic_write(tmp_path / "table.csv", write)
    assert list(tmp_path.iterdir()) == []


def test_learning_epochs_are_bounded(tmp_path, capsys):
    data = json.loads((WORKLOADS / "learn_tiny.json").read_text())
    data["task_training"]["epochs"] = 10**9
    path = tmp_path / "learn.json"
    path.write_text(json.dumps(data))
    code, err = validate(capsys, path)
    assert code == 2 and "task_training.epochs" in err and "10000" in err


def test_more_classes_than_the_head_has_fail_before_heads_are_sized(tmp_path, capsys):
    # A workload whose model is a layer list (the head has 10 outputs) asking for 1e18 classes
    # per task: the resident heads are sized by the classes, so the check comes first (the fuzzer
    # found `xsim map` sizing such a head for minutes).
    from fuzz import explicit_layers

    doc = explicit_layers(json.loads((WORKLOADS / "lenet5_mta.json").read_text()))
    for task in doc["tasks"]:
        task["head"]["num_classes"] = 1e18  # a float the JSON reader takes, an int to the schema
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc))
    started = time.monotonic()
    assert main(["map", str(ARCH / "isaac128.yaml"), str(path)]) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert "tasks[0].head.num_classes" in err and "exceed the 10 columns" in err
