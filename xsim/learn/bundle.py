"""Bundle one exported scenario of ``xsim study`` as a workload shipped with xsim.

``python -m xsim.learn.bundle EXPORT_DIR WORKLOAD_JSON`` copies the scenario in ``EXPORT_DIR``
(``arch.yaml``, ``workload.json``, ``backbone.npz``, ``tasks/*.npz``) to ``WORKLOAD_JSON`` and a
folder beside it named after it (``workloads/learned_cnn_mta.json`` →
``workloads/learned_cnn/``), every ``.npz`` re-saved compressed (same arrays, fewer bytes) and
every path in the workload rewritten relative to its new place.  The workload then runs with
``xsim run workloads/learned_cnn/arch.yaml workloads/learned_cnn_mta.json``.  With a study spec
as third argument every task also gets a ``test_file`` of labelled test images
(:func:`add_test_sets`), which ``xsim run --lifetime`` measures accuracy on.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np


def _recompress(src: Path, dest: Path) -> None:
    with np.load(src, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as f:
        np.savez_compressed(f, **arrays)


def bundle(export_dir: str | Path, workload_path: str | Path) -> Path:
    """Copy the scenario (see the module docstring); returns the new workload's path."""
    export_dir, workload_path = Path(export_dir), Path(workload_path)
    folder_name = workload_path.stem.removesuffix("_mta")
    folder = workload_path.parent / folder_name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    workload = json.loads((export_dir / "workload.json").read_text(encoding="utf-8"))
    shutil.copyfile(export_dir / "arch.yaml", folder / "arch.yaml")

    def moved(relative: str) -> str:
        _recompress(export_dir / relative, folder / relative)
        return f"{folder_name}/{relative}"

    workload["model"]["weights"]["path"] = moved(workload["model"]["weights"]["path"])
    for task in workload["tasks"]:
        done: dict[str, str] = {}
        for section, key in (("tier1", "mask_file"), ("tier2", "scales_file")):
            if key in task.get(section, {}):
                old = task[section][key]
                done.setdefault(old, moved(old))
                task[section][key] = done[old]
        if "weights_file" in task:
            task["weights_file"] = moved(task["weights_file"])
    workload_path.write_text(json.dumps(workload, indent=2) + "\n", encoding="utf-8")
    return workload_path


TEST_IMAGES = 200
"""labelled test images shipped per task (the first of the study's test split)"""
CALIBRATION_IMAGES = 64
"""training images shipped per task for the activation scales"""


def add_test_sets(workload_path: str | Path, spec_path: str | Path) -> Path:
    """Give every task of the bundled workload a ``test_file``: the first ``TEST_IMAGES`` of the
    study's own test split of that task (the same deterministic split the study measured) and
    ``CALIBRATION_IMAGES`` of its training images for the activation scales (the study
    calibrates each task on its own training images), as float32 pixels."""
    from xsim.learn.study import load_data
    from xsim.learn.study_spec import load_study_spec

    workload_path = Path(workload_path)
    spec = load_study_spec(spec_path)
    source, tasks = load_data(spec)
    splits = {source.name: source, **{t.name: t for t in tasks}}
    folder_name = workload_path.stem.removesuffix("_mta")
    workload = json.loads(workload_path.read_text(encoding="utf-8"))
    for task in workload["tasks"]:
        split = splits[task["name"]]
        arrays = {"x": split.x["test"][:TEST_IMAGES].astype(np.float32),
                  "y": split.y["test"][:TEST_IMAGES].astype(np.int16),
                  "calibration": split.x["train"][:CALIBRATION_IMAGES].astype(np.float32)}
        relative = f"tests/{task['name']}.npz"
        dest = workload_path.parent / folder_name / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as f:
            np.savez_compressed(f, **arrays)
        task["test_file"] = f"{folder_name}/{relative}"
    workload_path.write_text(json.dumps(workload, indent=2) + "\n", encoding="utf-8")
    return workload_path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m xsim.learn.bundle EXPORT_DIR WORKLOAD_JSON [STUDY_SPEC]",
              file=sys.stderr)
        return 2
    path = bundle(*args[:2])
    if len(args) == 3:
        add_test_sets(path, args[2])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
