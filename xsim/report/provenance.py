"""Provenance of a run: what made it, from what, where — recorded in ``summary.json``.

xsim's version and a digest of its code (:func:`code_digest`); the git commit of the checkout
it runs from (and whether the checkout had uncommitted changes), when it runs from one; the
SHA-256 of every input file (the arch, the workload and every file the workload names: weights,
an ONNX model, task weights, masks, scales); the seeds; and the host (CPU model, cores, Python,
NumPy, the kernels' vector width).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from xsim.report.files import sha256_file

_PACKAGE = Path(__file__).resolve().parent.parent


def version() -> str:
    from xsim import __version__

    return __version__


def source_digest(roots: tuple[Path, ...]) -> str:
    """SHA-256 of every ``.py`` file under ``roots``, by path relative to its root and contents,
    in sorted order."""
    digest = hashlib.sha256()
    for index, root in enumerate(roots):
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{index}:{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


@functools.cache
def code_digest() -> str:
    """:func:`source_digest` of xsim's own code, the ``xsim`` and ``xsim.kernels`` packages: two
    runs with one digest ran the same model, whether from a checkout or an installed wheel."""
    from xsim import kernels

    found = Path(kernels.__file__).resolve().parent
    # A wheel installs the kernels inside the package; a checkout keeps them beside it.
    return source_digest((_PACKAGE,) if _PACKAGE in found.parents else (_PACKAGE, found))


def git_commit() -> dict[str, Any] | None:
    """The checkout xsim runs from: its commit and whether files differ from it; None outside
    a git checkout (an installed wheel) or without git."""
    root = _PACKAGE.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "xsim",
                                 "kernels"], capture_output=True, text=True, timeout=10,
                                check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "modified": bool(status.strip())}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def input_files(arch, workload) -> list[dict[str, Any]]:
    """Every input file of a run with its role and SHA-256 (files that exist)."""
    from xsim.config import resolve_path

    named: list[tuple[str, str | None]] = [("arch", arch.source), ("workload", workload.source)]
    model = workload.model
    if model.onnx:
        named.append(("model.onnx", str(resolve_path(workload, model.onnx))))
    if model.weights.kind == "npz":
        named.append(("model.weights.path", str(resolve_path(workload, model.weights.path))))
    for i, task in enumerate(workload.tasks):
        for key, value in (("weights_file", task.weights_file),
                           ("tier1.mask_file", task.tier1.mask_file),
                           ("tier2.scales_file", task.tier2.scales_file),
                           ("test_file", task.test_file)):
            if value:
                named.append((f"tasks[{i}].{key}", str(resolve_path(workload, value))))
    out = []
    for role, path in named:
        if path and os.path.isfile(path):
            out.append({"role": role, "path": str(path), "sha256": sha256_file(path)})
    return out


def provenance(result) -> dict[str, Any]:
    import numpy as np

    from xsim import kernels

    workload = result.workload
    weights = workload.model.weights
    return {
        "xsim_version": version(),
        "code_sha256": code_digest(),
        "git": git_commit(),
        "inputs": input_files(result.arch, workload),
        "seeds": {"workload": workload.seed,
                  "synthetic_weights": weights.seed if weights.kind == "synthetic" else None},
        "host": {"cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
                 "python": platform.python_version(), "numpy": np.__version__,
                 "vector_width_bits": kernels.vector_width()},
    }
