"""Atomic output files: a killed run never leaves a file that looks complete.

Every file is written to a temporary name in its destination directory, flushed and synced, then
renamed over the final name with ``os.replace`` (atomic on POSIX file systems). The temporary
file is created exclusively (``O_CREAT | O_EXCL``: never through an existing file or symlink) and
removed on every exit path Python controls, SIGTERM included (the CLI turns it into an
exception). A run's JSON is strict: a number without a finite value (an infinite lifetime, an
SNR of identical results) is written as ``null``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); an output follows the umask like any other.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | Path, data: Any, *, strict: bool = False) -> Path:
    """``strict``: RFC 8259 JSON, non-finite numbers as null (every file of a run). Without it
    they stay ``Infinity``/``NaN``, which only Python reads: the sweep's point cache needs them
    back as numbers until it reads null as infinity."""
    if strict:
        return write_text(path, json_text(data) + "\n")
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def json_text(data: Any) -> str:
    """``data`` as strict JSON (RFC 8259): NaN and infinities become null."""
    return json.dumps(_finite(data), indent=2, sort_keys=False, default=_jsonable, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _finite(value.tolist())  # numpy scalars and arrays
    return value


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write a tidy table; floats in full precision so re-runs compare bit for bit."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    return write_text(path, frame.to_csv(index=False, float_format="%.17g"))


def save_figure(path: str | Path, figure) -> Path:
    """Save a matplotlib figure as PNG or SVG (by the suffix) with reproducible bytes: no
    timestamps or software versions in the metadata, fixed SVG element ids."""
    import matplotlib

    kind = Path(path).suffix.lstrip(".").lower()
    metadata = {"Software": None} if kind == "png" else {"Date": None, "Creator": None}

    def save(f):
        with matplotlib.rc_context({"svg.hashsalt": "xsim", "svg.fonttype": "none"}):
            figure.savefig(f, format=kind, dpi=120, bbox_inches="tight", metadata=metadata)

    return atomic_write(path, save)


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
