"""``report.html``: one self-contained page of a run (its headline, tables and plots inline), made
from the run's tables, summary and PNGs with a Jinja2 template; it needs no other file and no
network, so it opens in any browser and can be mailed or archived alone."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from xsim.report.files import write_text

TEMPLATE = "report.html.j2"

SECTIONS = (
    ("strategies", "Strategies side by side",
     "Schedule totals per strategy, then per strategy and task (means per switch into the task).",
     ("reprogram_vs_scale", "energy_breakdown"), ("strategy_totals", "strategies")),
    ("switches", "Task switches",
     "Every distinct switch, and the first switch with the new task's first result.",
     ("timeline",), ("switches", "first_switch")),
    ("endurance", "Endurance", "Per-cell write counts over the schedule.", ("endurance",),
     ("endurance",)),
    ("inference", "Backbone inference", "Per layer and per component of the pipelined batch.",
     (), ("layers", "components")),
    ("functional", "Bit-accurate inference",
     "Crossbar model against its float reference, per task and per layer.", (),
     ("functional_tasks", "functional_layers")),
    ("hardware", "Hardware", "The per-action energy table of the component registry.", (),
     ("actions",)),
)
CAPTIONS = {
    "reprogram_vs_scale": "Switch energy, switch latency and tier 2's inference overhead per "
                          "strategy (linear axes; every value written on its bar).",
    "energy_breakdown": "What a switch pays for, and where the schedule's inference energy goes.",
    "timeline": "XMA2's first switch: PE rewrites (red) while the other layers serve (blue).",
    "endurance": "Cells against their write count over the schedule, per strategy.",
}


def render_report(summary: dict[str, Any], tables: dict[str, list[dict]], out: Path) -> str:
    """The page's HTML: ``summary`` is the run's summary.json data, ``tables`` its tables, and the
    plots are read from ``out`` (the PNGs the run wrote there)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("xsim.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined)
    sections = []
    for ident, title, note, plots, names in SECTIONS:
        figures = [{"name": p, "caption": CAPTIONS.get(p, p),
                    "data": base64.b64encode((out / f"{p}.png").read_bytes()).decode("ascii")}
                   for p in plots if (out / f"{p}.png").is_file()]
        found = [{"name": n, "html": _table_html(tables[n])} for n in names if tables.get(n)]
        if figures or found:
            sections.append({"id": ident, "title": title, "note": note, "figures": figures,
                             "tables": found})
    inf, mapping = summary["inference"], summary["mapping"]
    headline = (f"{mapping['network']} at {mapping['weight_bits']}-bit weights: "
                f"{mapping['crossbars']} crossbars in {mapping['pes']} PEs on {mapping['tiles']} "
                f"tiles; backbone inference {inf['latency_us']:.1f} µs latency, "
                f"{inf['throughput_images_per_s']:.1f} images/s, "
                f"{inf['energy_per_image_uj']:.1f} µJ per image "
                f"({inf['leakage_energy_per_image_uj']:.1f} µJ of it leakage).")
    return env.get_template(TEMPLATE).render(
        workload=summary["workload"], arch=summary["arch"], headline=headline,
        convention=inf.get("energy_convention", ""), sections=sections,
        provenance=json.dumps(summary.get("provenance", {}), indent=1, allow_nan=False))


def _table_html(rows: list[dict]) -> str:
    frame = pd.DataFrame(rows)
    return frame.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.6g}",
                         escape=True)


def write_report(summary: dict[str, Any], tables: dict[str, list[dict]], out: Path) -> Path:
    return write_text(out / "report.html", render_report(summary, tables, out))
