"""Unit plausibility: a value far outside what its unit allows for real hardware is a warning.

Every quantity carries its unit in its key's name (``power_mw``, ``read_ns``); a number typed in
the wrong unit (watts into a ``_mw`` field, seconds into a ``_ns`` one) still validates, so
:func:`implausible` walks a parsed document and names each key whose value lies outside the
range of :data:`PLAUSIBLE` for its unit. The ranges are generous bounds for one component of a
ReRAM accelerator chip, not limits: a warning never stops a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xsim.config.reference import UNITS

PLAUSIBLE: dict[str, tuple[float, float, str]] = {
    "_mw": (0.0, 1e5, "100 W"),  # a whole chip is tens of watts (ISAAC 65.8 W)
    "_pj": (0.0, 1e6, "1 µJ"),  # one action of one component
    "_ns": (0.0, 1e6, "1 ms"),  # a pulse, a read, an array write
    "_ghz": (0.0, 20.0, "20 GHz"),
    "_gsps": (0.0, 100.0, "100 GS/s"),
    "_mm2": (0.0, 1000.0, "1000 mm²"),  # a reticle is about 860 mm²
    "_v": (0.0, 20.0, "20 V"),
    "_nm": (1.0, 1000.0, "1000 nm"),
    "_kb": (0.0, 1e6, "1 GiB"),
    "_kohm": (1e-3, 1e7, "10 GΩ"),
}
"""Key suffix → (lowest, highest plausible value, the highest in words)."""


def implausible(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key path, message) for every numeric value outside its unit's plausible range."""
    found: list[tuple[str, str]] = []
    _walk(document, "", found)
    return found


def _walk(node: Any, path: str, found: list[tuple[str, str]]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                _check(str(key), child, float(value), found)
            else:
                _walk(value, child, found)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{path}[{i}]", found)


def _check(key: str, path: str, value: float, found: list[tuple[str, str]]) -> None:
    for suffix, (low, high, words) in PLAUSIBLE.items():
        if key.endswith(suffix):
            unit = UNITS.get(suffix, suffix[1:])
            if value > high:
                found.append((path, f"{value:g} {unit} is above {words}, implausible for one "
                              f"component: is the value in {unit}?"))
            elif value < low:
                found.append((path, f"{value:g} {unit} is below {low:g} {unit}, implausible: "
                              f"is the value in {unit}?"))
            return
