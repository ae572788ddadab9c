"""The sweep's point cache: one ``points/<key>.json`` per finished point, written atomically.

A cached file holds the point's key and a SHA-256 of its result; it is reused only when both
match (the file is the point's, and nothing edited or truncated it). Anything else — another
point's result, an edited value, a damaged file — is recomputed, and the sweep counts it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def _checksum(result: dict) -> str:
    text = json.dumps(result, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load_cached(path: Path, key: str) -> tuple[dict | None, bool]:
    """(the cached result of point ``key``, or None; whether a file was there but not usable)."""
    if not path.is_file() or path.is_symlink():
        return None, path.exists() or path.is_symlink()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        intact = (isinstance(data, dict) and data.get("key") == key
                  and isinstance(data.get("result"), dict)
                  and data.get("sha256") == _checksum(data["result"]))
    except (OSError, ValueError, TypeError):
        return None, True
    if not intact:
        return None, True
    # A failed point's file is intact but not reused: the point is tried again.
    return (data["result"], False) if data["result"].get("status") == "ok" else (None, False)


def store(path: Path, key: str, result: dict) -> None:
    """Cache a finished point's result with its key and checksum (strict JSON, atomically: a
    killed write leaves only a ``.part``)."""
    from xsim.report.files import write_json

    write_json(path, {"key": key, "sha256": _checksum(result), "result": result}, strict=True)
