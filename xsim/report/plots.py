"""PNG plots of a run: energy breakdown, reprogramming versus scaling, timeline, endurance.

Each function takes the tidy tables the run produced (lists of dicts) and returns a matplotlib
figure; :func:`write_plots` saves them atomically. The Agg backend is used so plots work without
a display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from xsim.config.arch import ROLES  # noqa: E402
from xsim.report.files import save_figure  # noqa: E402
from xsim.strategies import ALL  # noqa: E402

# Components grouped for the stacked bars: the analogue datapath, data movement, digital units,
# tier 2 and the reprogramming phase, each with a colour a reader can tell apart.
# The inference groups come from the roles of the component registry; the switch's own energy
# items follow.
GROUPS: dict[str, tuple[str, ...]] = {}
for _role, (_, _group_name) in ROLES.items():
    GROUPS[_group_name] = (*GROUPS.get(_group_name, ()), _role)
GROUPS.update({
    "leakage": ("leakage",),
    "write pulses": ("write_pulse",),
    "word/bit lines": ("write_lines",),
    "verify/compare reads": ("verify_read",),
    "tier-2 scale load": ("tier2_load",),
})
COLOURS = dict(zip(GROUPS, plt.get_cmap("tab20").colors[::1][: len(GROUPS)]))
STRATEGY_ORDER = ALL


def _group(component: str) -> str:
    for name, members in GROUPS.items():
        if component in members:
            return name
    return "digital units"


def _strategies(frame: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(frame["strategy"]))
    return [s for s in STRATEGY_ORDER if s in present] + [s for s in present if s not in STRATEGY_ORDER]


def energy_breakdown(breakdown: list[dict]):
    """Schedule energy per strategy and task, stacked by component group; switch phase hatched."""
    frame = pd.DataFrame(breakdown)
    frame["group"] = frame["component"].map(_group)
    strategies = _strategies(frame)
    tasks = list(dict.fromkeys(frame["task"]))
    fig, axes = plt.subplots(1, len(strategies), figsize=(3.2 * len(strategies), 4.8), sharey=True,
                             squeeze=False)
    for ax, strategy in zip(axes[0], strategies):
        sub = frame[frame["strategy"] == strategy]
        bottom = np.zeros(len(tasks))
        for phase, hatch in (("inference", None), ("switch", "//")):
            table = (sub[sub["phase"] == phase].pivot_table(index="task", columns="group",
                                                             values="energy_uj", aggfunc="sum")
                     .reindex(tasks).fillna(0.0))
            for group in GROUPS:
                if group not in table or not table[group].any():
                    continue
                values = table[group].to_numpy() * 1e-3
                ax.bar(tasks, values, bottom=bottom, color=COLOURS[group], hatch=hatch,
                       edgecolor="white", linewidth=0.3, label=f"{group}")
                bottom += values
        ax.set_title(strategy)
        ax.tick_params(axis="x", rotation=60)
    axes[0][0].set_ylabel("energy over the schedule (mJ)")
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.12))
    fig.suptitle("Energy per strategy and task (hatched: task switches; plain: inference)")
    fig.tight_layout()
    return fig


def reprogram_vs_scale(strategies: list[dict]):
    """Per strategy: switch energy, cells written per switch and tier-2 overhead, new tasks only."""
    frame = pd.DataFrame(strategies)
    frame = frame[frame["switches_into"] > 0]
    order = _strategies(frame)
    mean = frame.groupby("strategy").mean(numeric_only=True).reindex(order)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    colours = [plt.get_cmap("tab10")(i) for i in range(len(order))]
    panels = (
        ("switch_energy_uj", "switch energy (µJ per switch)"),
        ("cells_written", "cells written per switch"),
        ("tier2_overhead_uj", "tier-2 scaling energy (µJ per image)"),
    )
    for ax, (column, label) in zip(axes, panels):
        values = mean[column].to_numpy()
        ax.bar(order, np.where(values > 0, values, np.nan), color=colours)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.tick_params(axis="x", rotation=40)
        for x, v in enumerate(values):
            ax.annotate("0" if v == 0 else f"{v:.3g}", (x, v if v > 0 else 1), ha="center",
                        va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    fig.suptitle("Reprogramming (tier 1) versus scaling (tier 2): mean over the new tasks")
    fig.tight_layout()
    return fig


def timeline(events: list[dict], title: str):
    """Layer (y) against time (x): rewrites in red, inference work in blue."""
    frame = pd.DataFrame(events).sort_values("layer_index", kind="stable")
    layers = list(dict.fromkeys(frame["layer"]))
    y = {name: i for i, name in enumerate(layers)}
    fig, ax = plt.subplots(figsize=(11, max(3.0, 0.12 * len(layers) + 1.5)))
    for kind, colour in (("rewrite", "tab:red"), ("inference", "tab:blue")):
        sub = frame[frame["kind"] == kind]
        if sub.empty:
            continue
        starts = sub["start_ps"].to_numpy() * 1e-9
        widths = np.maximum((sub["end_ps"] - sub["start_ps"]).to_numpy() * 1e-9, 1e-9)
        rows = sub["layer"].map(y).to_numpy()
        ax.barh(rows, widths, left=starts, height=0.8, color=colour, label=kind, linewidth=0)
    ax.set_yticks(range(len(layers)))
    ax.set_yticklabels(layers if len(layers) <= 40 else
                       [n if i % max(1, len(layers) // 30) == 0 else "" for i, n in enumerate(layers)],
                       fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("layer")
    ax.legend(loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def endurance(hist: list[dict], endurance_cycles: float):
    """Cells against their write count over the schedule, per strategy (log counts)."""
    frame = pd.DataFrame(hist)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = []
    if not frame.empty:
        top = int(frame["writes"].max())
        markers = iter("osD^v<>")
        for strategy in _strategies(frame):
            sub = frame[frame["strategy"] == strategy].set_index("writes")["cells"]
            if not sub.drop(0, errors="ignore").any():
                continue
            # Every write count 0..max, absent counts as gaps (log axis), so nothing is implied
            # between the counts that occur.
            cells = sub.reindex(range(top + 1)).to_numpy(dtype=float, copy=True)
            cells[cells == 0] = np.nan
            ax.plot(range(top + 1), cells, marker=next(markers), markersize=4, linewidth=1,
                    label=strategy, alpha=0.85)
            drawn.append(strategy)
    ax.set_yscale("log")
    ax.set_xlabel("writes per cell over the schedule")
    ax.set_ylabel("cells")
    ax.set_title(f"Endurance: write counts of every cell in a PE ever rewritten\n"
                 f"(cell endurance {endurance_cycles:.0e} writes; strategies writing no cell are "
                 "not drawn)")
    if drawn:
        ax.legend()
    fig.tight_layout()
    return fig


def write_plots(tables: dict[str, list[dict]], out: Path, *, endurance_cycles: float,
                timeline_title: str = "") -> list[Path]:
    written = []
    figures = []
    if tables.get("energy_breakdown"):
        figures.append(("energy_breakdown.png", energy_breakdown(tables["energy_breakdown"])))
    if tables.get("strategies"):
        figures.append(("reprogram_vs_scale.png", reprogram_vs_scale(tables["strategies"])))
    if tables.get("timeline"):
        figures.append(("timeline.png", timeline(tables["timeline"], timeline_title)))
    if "endurance" in tables:
        figures.append(("endurance.png", endurance(tables["endurance"], endurance_cycles)))
    for name, fig in figures:
        written.append(save_figure(out / name, fig))
        plt.close(fig)
    return written
