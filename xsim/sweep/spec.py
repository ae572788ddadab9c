"""Sweep files into points: the grid expanded, every point carrying its parsed documents."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from xsim.config.arch import Frozen
from xsim.config.errors import ConfigError, XsimInputError
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

    def key(self) -> str:
        """Hash of everything the result depends on: documents, overrides, xsim's version."""
        from xsim import __version__

        data = [self.arch_doc, self.workload_doc, self.arch_overrides, self.workload_overrides,
                __version__]
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


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
    documents: dict[str, Mapping[str, Any]] = {}
    points = []
    for combo in itertools.product(*(values for _, values in dims)):
        a, w, ao, wo = arch, workload, [], []
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
        coords = tuple((name, value) for (name, _), value in zip(dims, combo))
        points.append(Point(a, w, tuple(ao), tuple(wo), coords, documents[a], documents[w]))
    return spec, points
