"""The sweep's point cache: one ``points/<key>.json`` per finished point, written atomically."""

from __future__ import annotations

import json
from pathlib import Path


def load_cached(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("status") == "ok" else None


def store(path: Path, result: dict) -> None:
    """Cache a finished point's result (atomically: a killed write leaves only a ``.part``)."""
    from xsim.report.files import write_json

    write_json(path, result)
