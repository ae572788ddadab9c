"""Sweep files into points: the grid expanded, every point carrying its parsed documents."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from xsim.config.arch import Frozen
from xsim.config.errors import ConfigError, XsimInputError
from xsim.config.limits import MAX_SWEEP_POINTS
from xsim.config.loader import build, read_document

DEFAULT_RETRIES = 2


class SchedulerError(XsimInputError):
    """A ``--scheduler`` that cannot be used: Dask is not installed, or the address is unreachable."""


class SweepSpec(Frozen):
    """A grid of arch and workload variations, each point one ``xsim run``."""

    name: str
    """The sweep's name in reports."""
    arch: str
    """The base arch file, beside the sweep file."""
    workload: str
    """The base workload file, beside the sweep file."""
    grid: dict[str, list[Any]] = Field(min_length=1)
    """Dimension → values: arch or workload (files), arch.<dotted key> or workload.<dotted key>
    (overrides; numeric parts index lists)."""
    functional_images: Annotated[int, Field(ge=0, le=64)] = 0
    """Images per task of the bit-accurate model at every point (0: none); adds each task's
    top-1 agreement and error to sweep.csv and the plot sweep_agreement.png."""
    source: str | None = Field(default=None, exclude=True)


@dataclass(frozen=True)
class Point:
    """One point of a sweep: the documents and overrides it runs, and its grid coordinates.

    ``arch`` and ``workload`` are the files' paths, used in error messages and to resolve files
    that a workload names relative to itself; ``arch_doc`` and ``workload_doc`` are their parsed
    contents, which is what the point computes from.
    """

    arch: str
    workload: str
    arch_overrides: tuple[tuple[str, Any], ...]
    workload_overrides: tuple[tuple[str, Any], ...]
    coords: tuple[tuple[str, Any], ...]
    arch_doc: Mapping[str, Any] = field(repr=False, hash=False)
    workload_doc: Mapping[str, Any] = field(repr=False, hash=False)
    functional_images: int = 0

    def key(self) -> str:
        """Hash of everything the result depends on: documents, overrides, the contents of every
        file the workload names (weights, masks, scales), xsim's version and code (a point
        cached by other code is computed again)."""
        from xsim import __version__
        from xsim.report.provenance import code_digest

        data = [self.arch_doc, self.workload_doc, self.arch_overrides, self.workload_overrides,
                self.referenced_files(), __version__, code_digest()]
        if self.functional_images:
            data.append({"functional_images": self.functional_images})
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def referenced_files(self) -> list[tuple[str, str]]:
        """(path as written, SHA-256 of its contents or 'missing') of every file the point's
        workload names, overrides applied."""
        from xsim.config.loader import deep_update

        doc = deep_update(self.workload_doc, dict(self.workload_overrides), self.workload)
        base = Path(self.workload).parent
        out = []
        for name in _named_files(doc):
            target = base / name
            try:
                digest = hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() \
                    else "missing"
            except OSError:
                digest = "unreadable"
            out.append((name, digest))
        return out


def _named_files(doc: Any) -> list[str]:
    """Paths a workload document names: the model's weights, each task's weights, mask and
    scales files."""
    names: list[str] = []
    if not isinstance(doc, Mapping):
        return names
    model = doc.get("model")
    weights = model.get("weights") if isinstance(model, Mapping) else None
    if isinstance(weights, Mapping) and isinstance(weights.get("path"), str):
        names.append(weights["path"])
    for task in doc.get("tasks") or ():
        if not isinstance(task, Mapping):
            continue
        for section, key in ((task, "weights_file"), (task.get("tier1"), "mask_file"),
                             (task.get("tier2"), "scales_file"), (task, "test_file")):
            if isinstance(section, Mapping) and isinstance(section.get(key), str):
                names.append(section[key])
    return names


def _labelled(value: Any) -> tuple[Any, Any]:
    """A grid value and its label: ``{label: ..., value: ...}`` names a value (a whole arch
    section, say) in the table and plots; any other value is its own label."""
    if isinstance(value, Mapping) and set(value) == {"label", "value"}:
        return value["label"], value["value"]
    return value, value


def load_sweep(path: str | Path) -> tuple[SweepSpec, list[Point]]:
    """Read a sweep file and expand its grid into points (validated: files exist and parse,
    keys are known)."""
    spec = build(SweepSpec, read_document(path), str(path))
    base = Path(path).resolve().parent
    arch = str((base / spec.arch).resolve())
    workload = str((base / spec.workload).resolve())
    dims = list(spec.grid.items())
    for name, values in dims:
        if not values:
            raise ConfigError(str(path), f"grid.{name}", "a grid dimension needs at least one value")
        if name not in ("arch", "workload") and not name.startswith(("arch.", "workload.")):
            raise ConfigError(str(path), f"grid.{name}", "expected 'arch', 'workload', "
                              "'arch.<key>' or 'workload.<key>'")
    count = math.prod(len(values) for _, values in dims)
    if count > MAX_SWEEP_POINTS:
        raise ConfigError(str(path), "grid", f"{count} points; at most {MAX_SWEEP_POINTS} "
                          "(MAX_SWEEP_POINTS): split the sweep")
    documents: dict[str, Mapping[str, Any]] = {}
    points = []
    for combo in itertools.product(*(values for _, values in dims)):
        a, w, ao, wo = arch, workload, [], []
        labels = [_labelled(v)[0] for v in combo]
        combo = [_labelled(v)[1] for v in combo]
        for (name, _), value in zip(dims, combo):
            if name == "arch":
                a = str((base / str(value)).resolve())
            elif name == "workload":
                w = str((base / str(value)).resolve())
            elif name.startswith("arch."):
                ao.append((name[len("arch."):], value))
            else:
                wo.append((name[len("workload."):], value))
        for f, key in ((a, "arch"), (w, "workload")):
            if not Path(f).is_file():
                raise ConfigError(str(path), key, f"no such file: {f}")
            if f not in documents:
                documents[f] = read_document(f)
        coords = tuple((name, label) for (name, _), label in zip(dims, labels))
        points.append(Point(a, w, tuple(ao), tuple(wo), coords, documents[a], documents[w],
                            spec.functional_images))
    return spec, points
