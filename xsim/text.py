"""Showing user-given text and values safely: shortened, escaped, printable anywhere.

Depends on nothing else in xsim, so that every module that builds a message can use it.
"""

from __future__ import annotations

import math
from typing import Any

# How much of an offending value a message shows.
MAX_SHOWN_CHARS = 80


def shown(value: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """``repr(value)``, shortened to ``limit`` characters and safe to print anywhere: lone
    surrogates, NUL and other control characters are escaped, nothing but ASCII comes out."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**40:
        text = f"<an integer of {_digits(value)} digits>"
    else:
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001 (a repr that fails is still a value to name)
            text = f"<{type(value).__name__}>"
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    if len(text) > limit:
        suffix = f"... ({len(text)} chars)"
        text = text[: limit - len(suffix)] + suffix
    return text


def safe_text(text: str) -> str:
    """``text`` with lone surrogates and control characters (but tabs) escaped: safe to print."""
    out = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode()
                   for c in out)


def _digits(value: int) -> int:
    return max(1, math.ceil(abs(value).bit_length() * math.log10(2)))


def readable_number(v: float, digits: int = 3) -> str:
    """``v`` to ``digits`` significant digits as a reader writes it: ``3,800``, ``11.9``,
    ``0.0099``, ``200,000``; powers of ten only outside 0.001 to a billion (``2.98e-06``); 0 as
    ``0``, ``inf`` and ``nan`` as Python writes them. For plots and the console; files keep
    every digit."""
    v = float(v)
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    if not 1e-3 <= abs(v) < 1e9:
        return f"{v:.{digits}g}"
    places = digits - 1 - math.floor(math.log10(abs(v)))
    text = f"{round(v, places):,.{max(places, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
