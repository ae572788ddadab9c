"""Bundle one exported scenario of ``xsim study`` as a workload shipped with xsim.

``python -m xsim.learn.bundle EXPORT_DIR WORKLOAD_JSON`` copies the scenario in ``EXPORT_DIR``
(``arch.yaml``, ``workload.json``, ``backbone.npz``, ``tasks/*.npz``) to ``WORKLOAD_JSON`` and a
folder beside it named after it (``workloads/learned_cnn_mta.json`` →
``workloads/learned_cnn/``), every ``.npz`` re-saved compressed (same arrays, fewer bytes) and
every path in the workload rewritten relative to its new place.  The workload then runs with
``xsim run workloads/learned_cnn/arch.yaml workloads/learned_cnn_mta.json``.
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m xsim.learn.bundle EXPORT_DIR WORKLOAD_JSON", file=sys.stderr)
        return 2
    print(f"wrote {bundle(*args)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
