"""Write a :class:`~xsim.api.SimulationResult` under an output folder: tidy CSV tables, PNG
plots and ``summary.json``, each written atomically. ``summary.json`` is written last, so its
presence marks a complete run."""

from __future__ import annotations

from pathlib import Path

from xsim.report.files import write_csv, write_json
from xsim.report.plots import write_plots


def write_outputs(result, out: str | Path, plots: bool = True) -> list[Path]:
    out = Path(out)
    # A previous run's summary would make a half-rewritten folder look complete.
    (out / "summary.json").unlink(missing_ok=True)
    written = [write_csv(out / f"{name}.csv", rows) for name, rows in result.tables.items() if rows]
    if plots:
        title = (f"{result.workload.name} on {result.arch.name}: XMA2's first task switch "
                 "(PE rewrites) and the new task's first inference")
        written += write_plots(result.tables, out, endurance_cycles=result.arch.cell.endurance_cycles,
                               timeline_title=title)
    written.append(write_json(out / "summary.json", result.summary))
    return written
