"""Plots of a run (PNG and SVG): energy breakdown, reprogramming versus scaling, timeline,
endurance.

Each function takes the tidy tables the run produced (lists of dicts) and returns a matplotlib
figure; :func:`write_plots` saves them atomically, rendering them in parallel where the host has
cores. The Agg backend is used so plots work without
a display.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from xsim.config.arch import ROLES  # noqa: E402
from xsim.processes import ForkPool, workers_for  # noqa: E402
from xsim.report.files import save_figure  # noqa: E402

PLOT_NAMES = ("energy_breakdown", "reprogram_vs_scale", "timeline", "endurance", "lifetime")
PLOT_FORMATS = ("png", "svg")
from xsim.strategies import ALL, BY_NAME  # noqa: E402
from xsim.text import readable_number  # noqa: E402

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


SWITCH_ITEMS = ("write pulses", "word/bit lines", "verify/compare reads", "tier-2 scale load")


def _label_bars(ax, xs, values, suffix="") -> None:
    """Every bar's value above it, a zero written as 0, so no bar can vanish unseen."""
    for x, v in zip(xs, values):
        ax.annotate(readable_number(v) + ("" if v == 0 else suffix), (x, v), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")


def _switch_frame(breakdown: list[dict], switches: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """Per strategy and switch item: mean energy of one switch (µJ) over the schedule's switches."""
    frame = pd.DataFrame(breakdown)
    frame = frame[frame["phase"] == "switch"].copy()
    frame["group"] = frame["component"].map(_group)
    count = pd.DataFrame(switches).groupby("strategy")["occurrences"].sum()
    order = _strategies(pd.DataFrame(switches))
    table = frame.pivot_table(index="strategy", columns="group", values="energy_uj",
                              aggfunc="sum").reindex(order).fillna(0.0)
    return table.div(count.reindex(order), axis=0).fillna(0.0), order


def energy_breakdown(breakdown: list[dict], switches: list[dict]):
    """The schedule's energy per strategy: what its switches pay for (left, µJ per switch) and
    its inference energy per image by component group (right), each on its own linear axis."""
    table, order = _switch_frame(breakdown, switches)
    frame = pd.DataFrame(breakdown)
    inference = frame[frame["phase"] == "inference"].copy()
    inference["group"] = inference["component"].map(_group)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    ax = axes[0]
    bottom = np.zeros(len(order))
    for item in SWITCH_ITEMS:
        if item in table and table[item].any():
            values = table[item].to_numpy()
            ax.bar(order, values, bottom=bottom, color=COLOURS[item], label=item)
            bottom += values
    _label_bars(ax, range(len(order)), bottom, suffix=" µJ")
    ax.set_ylabel("energy of one task switch (µJ, mean over the schedule)")
    ax.set_title("What a switch pays for")
    ax.legend(fontsize=8)
    ax = axes[1]
    per = (inference.pivot_table(index="strategy", columns="group", values="energy_uj",
                                 aggfunc="sum").reindex(order).fillna(0.0))
    per = per.div(per.sum(axis=1).replace(0.0, np.nan), axis=0).fillna(0.0)
    bottom = np.zeros(len(order))
    for group in GROUPS:
        if group in per and per[group].any():
            values = per[group].to_numpy() * 100
            ax.bar(order, values, bottom=bottom, color=COLOURS[group], label=group)
            bottom += values
    ax.set_ylabel("share of the schedule's inference energy (%)")
    ax.set_title("Where inference energy goes (all of the schedule's inferences)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle("Energy per strategy: task switches and inference, apart")
    fig.tight_layout()
    return fig


def reprogram_vs_scale(strategies: list[dict]):
    """Per strategy, mean over the new tasks: switch energy, switch latency, and tier 2's
    inference overhead per image (energy and share of the image's energy), linear axes with
    every value written on its bar."""
    frame = pd.DataFrame(strategies)
    frame = frame[frame["switches_into"] > 0]
    order = _strategies(frame)
    mean = frame.groupby("strategy").mean(numeric_only=True).reindex(order)
    share = mean["tier2_overhead_uj"] / mean["inference_energy_uj"] * 100
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    colours = [plt.get_cmap("tab10")(i) for i in range(len(order))]
    panels = (
        (mean["switch_energy_uj"].to_numpy(), "switch energy (µJ per switch)", " µJ"),
        (mean["switch_latency_us"].to_numpy() * 1e-3, "switch latency (ms per switch)", " ms"),
        (mean["tier2_overhead_uj"].to_numpy(),
         "tier-2 scaling energy (µJ per image;\nbar labels: µJ and % of the image's energy)", " µJ"),
    )
    for ax, (values, label, unit) in zip(axes, panels):
        ax.bar(order, values, color=colours)
        if ax is axes[2]:  # the overhead also as a share of the image's energy
            for x, (v, pct) in enumerate(zip(values, share.to_numpy())):
                text = f"{readable_number(v)} µJ\n{readable_number(pct, 2)} %"
                ax.annotate("0" if v == 0 else text, (x, v),
                            ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                            textcoords="offset points")
        else:
            _label_bars(ax, range(len(order)), values, suffix=unit)
        ax.set_ylabel(label)
        ax.set_ylim(0, max(values.max() * 1.25, 1e-12))
        ax.tick_params(axis="x", rotation=30)
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
        # One collection per layer (tens of thousands of intervals on a replicated chip),
        # rasterised so the SVG stays small.
        for i, (layer, rows) in enumerate(sub.groupby("layer", sort=False)):
            starts = rows["start_ps"].to_numpy() * 1e-9
            widths = np.maximum((rows["end_ps"] - rows["start_ps"]).to_numpy() * 1e-9, 1e-9)
            ax.broken_barh(list(zip(starts, widths)), (y[layer] - 0.4, 0.8), facecolors=colour,
                           linewidth=0, rasterized=True, label=kind if i == 0 else None)
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


def endurance(hist: list[dict], totals: list[dict], endurance_cycles: float):
    """Cells against their write count over the schedule: one panel per strategy that writes
    cells (strategies with identical counts stay visible), its worst cell and lifetime above it."""
    frame = pd.DataFrame(hist)
    life = {r["strategy"]: r for r in totals}
    writers = [] if frame.empty else [s for s in _strategies(frame)
                                      if frame[(frame["strategy"] == s) & (frame["writes"] > 0)].size]
    silent = [r["strategy"] for r in totals if r["strategy"] not in writers]
    fig, axes = plt.subplots(1, max(1, len(writers)), figsize=(3.6 * max(1, len(writers)), 4),
                             sharey=True, squeeze=False)
    top = int(frame["writes"].max()) if not frame.empty else 0
    for ax, strategy in zip(axes[0], writers):
        sub = frame[frame["strategy"] == strategy].set_index("writes")["cells"]
        cells = sub.reindex(range(top + 1)).fillna(0.0).to_numpy(dtype=float)
        ax.bar(range(top + 1), cells, color="tab:purple", width=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("writes per cell over the schedule")
        periods = life.get(strategy, {}).get("lifetime_periods")
        ax.set_title(f"{strategy}\nworst cell {life.get(strategy, {}).get('max_writes', 0)} "
                     f"writes; lifetime {readable_number(periods)} periods" if periods else strategy,
                     fontsize=9)
    axes[0][0].set_ylabel("cells (log)")
    note = (f"; no cell written by {', '.join(silent)} (it never wears out)" if silent else "")
    fig.suptitle(f"Endurance: write counts of every cell in a PE ever rewritten (cell endurance "
                 f"{readable_number(endurance_cycles)} writes){note}", fontsize=10)
    fig.tight_layout()
    return fig


def lifetime(rows: list[dict]):
    """Accuracy on the tasks' labelled test images (where the workload ships them; else top-1
    agreement with the fault-free model) against switches survived: one panel per task, one
    line per strategy."""
    measure = "accuracy" if rows and all(r.get("accuracy") is not None for r in rows) \
        else "top1_agreement"
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    cols = min(3, len(tasks))
    nrows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False,
                             sharey=True)
    positive = [r["switches"] for r in rows if r["switches"] > 0]
    floor = min(positive) / 4 if positive else 1.0
    # Strategies that wear the same cells (tier 1 only and XMA2) draw the same line: distinct
    # dashes and markers keep both visible.
    styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 2, 1, 2)), "v")]
    for ax, task in zip(axes.flat, tasks):
        for i, strategy in enumerate(strategies):
            pts = [(max(r["switches"], floor), r[measure]) for r in rows
                   if r["task"] == task and r["strategy"] == strategy]
            dash, marker = styles[i % len(styles)]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle=dash, marker=marker,
                    ms=4 - 0.4 * (i % len(styles)), lw=1.4,
                    label=BY_NAME[strategy].label if strategy in BY_NAME else strategy)
        ax.set_xscale("log")
        ax.set_title(task, fontsize=9)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("switches survived (0 drawn at the left edge)", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy" if measure == "accuracy" else "top-1 agreement with fault-free")
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Accuracy over the chip's life: worn cells stick (cell.nonideal.wearout)",
                 fontsize=10)
    fig.tight_layout()
    return fig


_FIGURES: dict[str, tuple[Callable, tuple]] = {}
"""The figures a plot worker renders, by name (set before the fork)."""


def write_plots(tables: dict[str, list[dict]], out: Path, *, endurance_cycles: float,
                timeline_title: str = "", workers: int | None = None) -> list[Path]:
    """Every plot as PNG and SVG. The figures render in ``workers`` forked processes (default:
    one per usable core, :mod:`xsim.processes`); their bytes do not depend on where."""
    figures: dict[str, tuple[Callable, tuple]] = {}
    if tables.get("energy_breakdown") and tables.get("switches"):
        figures["energy_breakdown"] = (energy_breakdown, (tables["energy_breakdown"],
                                                          tables["switches"]))
    if any(row["switches_into"] for row in tables.get("strategies", ())):
        # A schedule that never switches into a new task has nothing to compare here.
        figures["reprogram_vs_scale"] = (reprogram_vs_scale, (tables["strategies"],))
    if tables.get("timeline"):
        figures["timeline"] = (timeline, (tables["timeline"], timeline_title))
    if "endurance" in tables:
        figures["endurance"] = (endurance, (tables["endurance"], tables.get("strategy_totals", []),
                                            endurance_cycles))
    if tables.get("lifetime"):
        figures["lifetime"] = (lifetime, (tables["lifetime"],))
    workers = workers_for(workers, len(figures))
    jobs = [(name, out) for name in figures]
    if workers == 1:
        _FIGURES.update(figures)
        try:
            return [path for job in jobs for path in _render(job)]
        finally:
            _FIGURES.clear()
    _FIGURES.update(figures)
    try:
        with ForkPool(workers) as pool:
            # The longest first, so that the last one to start is a short one.
            order = sorted(jobs, key=lambda job: job[0] not in ("timeline", "endurance"))
            done = {job: pool.submit(_render, job) for job in order}
            return [path for job in jobs for path in done[job].result()]
    finally:
        _FIGURES.clear()


def _render(job: tuple[str, Path]) -> list[Path]:
    name, out = job
    build, args = _FIGURES[name]
    fig = build(*args)
    try:
        return [save_figure(out / f"{name}.{kind}", fig) for kind in PLOT_FORMATS]
    finally:
        plt.close(fig)
