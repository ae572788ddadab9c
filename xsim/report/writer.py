"""Write a :class:`~xsim.api.SimulationResult` under an output folder: summary.json and one tidy
CSV per table, each written atomically. ``summary.json`` is written last, so its presence marks a
complete run."""

from __future__ import annotations

from pathlib import Path

from xsim.report.files import write_csv, write_json


def write_outputs(result, out: str | Path) -> list[Path]:
    out = Path(out)
    written = [write_csv(out / f"{name}.csv", rows) for name, rows in result.tables.items() if rows]
    written.append(write_json(out / "summary.json", result.summary))
    return written
