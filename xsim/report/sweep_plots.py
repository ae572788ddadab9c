"""Plots of a sweep against its first grid dimension: inference energy per component and the
cost of a task switch per strategy."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from xsim.report.files import save_figure  # noqa: E402
from xsim.report.plots import COLOURS, STRATEGY_ORDER, _group  # noqa: E402


def _labels(frame: pd.DataFrame, x: str) -> tuple[list, str]:
    """Points in sweep order, labelled by crossbar size when the dimension is the arch file."""
    if x == "arch":
        order = list(dict.fromkeys(frame["crossbar_rows"]))
        return order, "crossbar_rows"
    return list(dict.fromkeys(frame[x])), x


def write_sweep_plots(rows: list[dict], out: Path, *, x: str, title: str) -> list[Path]:
    frame = pd.DataFrame(rows)
    points, column = _labels(frame, x)
    xlabel = "crossbar size (rows = columns)" if column == "crossbar_rows" else x
    written = []

    comp = frame[frame["kind"] == "inference_component"].copy()
    comp["group"] = comp["item"].map(_group)
    table = comp.pivot_table(index=column, columns="group", values="value", aggfunc="sum")
    table = table.reindex(points).fillna(0.0)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bottom = np.zeros(len(points))
    labels = [str(p) for p in points]
    for group in COLOURS:
        if group in table and table[group].any():
            ax.bar(labels, table[group].to_numpy(), bottom=bottom, color=COLOURS[group], label=group)
            bottom += table[group].to_numpy()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("backbone inference energy (µJ per image)")
    ax.set_title(f"{title}: inference energy per component")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    written.append(save_figure(out / "sweep_energy.png", fig))
    plt.close(fig)

    def mean_of(item):
        rows = frame[(frame["kind"] == "strategy_task") & (frame["item"] == item)]
        return rows.groupby([column, "strategy"])["value"].mean().unstack("strategy").reindex(points)

    panels = (("switch_energy_uj", "switch energy (µJ per switch)"),
              ("switch_latency_us", "switch latency (µs per switch)"),
              ("cells_written", "cells written per switch"))
    data = {item: mean_of(item) for item, _ in panels}
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    energy = data["switch_energy_uj"]
    for strategy in ([s for s in STRATEGY_ORDER if s in energy]
                     + [s for s in energy if s not in STRATEGY_ORDER]):
        for ax, (item, _) in zip(axes, panels):
            if strategy not in data[item]:
                continue
            values = data[item][strategy].to_numpy(dtype=float)
            ax.plot(labels, np.where(values > 0, values, np.nan), marker="o", label=strategy)
    others = [c for c in frame.columns if c.startswith(("arch.", "workload.")) and c != column]
    for ax, (_, ylabel) in zip(axes, panels):
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_xlabel(xlabel)
        ax.tick_params(axis="x", labelrotation=30)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
        ax.legend(fontsize=8)
    averaged = "tasks" + "".join(f", {o}" for o in others)
    fig.suptitle(f"{title}: cost of a task switch, mean over {averaged} (tier2_only writes no "
                 "cell: its cost is the scale load; tier1_only writes the same cells as xma2)",
                 fontsize=10)
    fig.tight_layout()
    written.append(save_figure(out / "sweep_switch.png", fig))
    plt.close(fig)
    if (frame["kind"] == "functional_task").any():
        written.append(_agreement_plot(frame, out, title))
    return written


def _agreement_plot(frame: pd.DataFrame, out: Path, title: str) -> Path:
    """Top-1 agreement of the bit-accurate model with the float reference against every grid
    dimension: one panel a dimension, one line per value of the next dimension (cyclically),
    each the mean over the tasks with the remaining dimensions at their first listed value (a
    sweep lists its reference point first)."""
    rows = frame[(frame["kind"] == "functional_task") & (frame["item"] == "top1_agreement")]
    dims = [c for c in frame.columns if c == "arch" or c == "workload"
            or c.startswith(("arch.", "workload."))]
    dims = [d for d in dims if rows[d].nunique() > 1] or dims[:1]
    fig, axes = plt.subplots(1, len(dims), figsize=(4.5 * len(dims), 3.8), squeeze=False,
                             sharey=True)
    short = {d: d.replace("arch.cell.nonideal.", "").replace("arch.components.", "") for d in dims}
    for i, (ax, dim) in enumerate(zip(axes[0], dims)):
        order = list(dict.fromkeys(rows[dim]))
        labels = [str(v) for v in order]
        series = dims[(i + 1) % len(dims)] if len(dims) > 1 else None
        fixed = rows
        for other in dims:
            if other not in (dim, series):
                fixed = fixed[fixed[other] == rows[other].iloc[0]]
        groups = [(None, fixed)] if series is None else \
            [(v, fixed[fixed[series] == v]) for v in dict.fromkeys(rows[series])]
        for value, part in groups:
            mean = part.groupby(dim)["value"].mean().reindex(order)
            ax.plot(labels, mean.to_numpy(), marker="o",
                    label="mean" if series is None else f"{short[series]} = {value}")
        ax.set_xlabel(short[dim], fontsize=8)
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[0, 0].set_ylabel("top-1 agreement with float reference")
    others = ", ".join(f"{short[d]} = {rows[d].iloc[0]}" for d in dims)
    fig.suptitle(f"{title}: bit-accurate top-1 agreement (XMA2's masks, mean over tasks); a "
                 f"dimension not on the axis or in the legend stays at its first value ({others})",
                 fontsize=9)
    fig.tight_layout()
    path = save_figure(out / "sweep_agreement.png", fig)
    plt.close(fig)
    return path
