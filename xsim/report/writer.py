"""Write a :class:`~xsim.api.SimulationResult` under an output folder: tidy CSV tables, PNG
plots and ``summary.json``, each written atomically. ``summary.json`` is written last and lists
every other file of the run with its size and SHA-256, so its presence and those checksums mark
a complete run (:func:`xsim.report.outdir.check_run`). :data:`RUN_FILES` names every file a run
may write; :func:`xsim.report.outdir.claim` clears them before a run starts."""

from __future__ import annotations

from pathlib import Path

from xsim.report.files import sha256_file, write_csv, write_json
from xsim.report.html import write_report
from xsim.report.plots import PLOT_FORMATS, PLOT_NAMES, write_plots
from xsim.report.provenance import provenance

TABLES = ("strategies", "strategy_totals", "switches", "energy_breakdown", "endurance", "layers",
          "components", "actions", "first_switch", "timeline", "functional_tasks",
          "functional_layers", "lifetime")
PLOTS = tuple(f"{name}.{kind}" for name in PLOT_NAMES for kind in PLOT_FORMATS)
RUN_FILES = ("summary.json", "report.html", *(f"{t}.csv" for t in TABLES), *PLOTS)


def write_outputs(result, out: str | Path, plots: bool = True,
                  workers: int | None = None) -> list[Path]:
    """Write the run's tables, plots (rendered in ``workers`` processes, default one per usable
    core), ``report.html`` and, last, ``summary.json`` into ``out``; the paths written."""
    out = Path(out)
    # A previous run's summary would make a half-rewritten folder look complete.
    (out / "summary.json").unlink(missing_ok=True)
    written = [write_csv(out / f"{name}.csv", rows) for name, rows in result.tables.items() if rows]
    if plots:
        title = (f"{result.workload.name} on {result.arch.name}: XMA2's first task switch "
                 "(PE rewrites) and the new task's first inference")
        written += write_plots(result.tables, out, endurance_cycles=result.arch.cell.endurance_cycles,
                               timeline_title=title, workers=workers)
    prov = provenance(result)
    if plots:
        written.append(write_report({**result.summary, "provenance": prov}, result.tables, out))
    files = [{"file": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in written]
    summary = {**result.summary, "provenance": prov, "files": files}
    written.append(write_json(out / "summary.json", summary, strict=True))
    return written
