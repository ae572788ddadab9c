"""The accuracy / write-cost frontier of the learned strategies: table rows, target check, PNG.

One row per (task, strategy, PE budget): tier-1 PEs, float accuracy (the trained model, weights
and scales quantised in the loop, float activations), crossbar accuracy (bit-accurate, see
:mod:`xsim.learn.evaluate`) and cells written per switch.  Mean rows (task ``"mean"``) average
accuracy and cells over the adaptation tasks.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from xsim.learn.spec import BUDGETED

COLUMNS = ("task", "strategy", "pe_budget", "tier1_pes", "float_accuracy", "crossbar_accuracy",
           "cells_written")
# Target of the method at the budget the learning demo exports: XMA2 within this many points of full
# fine-tuning and above tier 1 only and tier 2 only.
TARGET_GAP = 0.02


def mean_rows(rows: list[dict]) -> list[dict]:
    """Per (strategy, budget): the mean over tasks of accuracies, tier-1 PEs and cells."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["strategy"], row["pe_budget"])].append(row)
    out = []
    for (strategy, budget), members in groups.items():
        out.append({
            "task": "mean", "strategy": strategy, "pe_budget": budget,
            "tier1_pes": float(np.mean([r["tier1_pes"] for r in members])),
            "float_accuracy": float(np.mean([r["float_accuracy"] for r in members])),
            "crossbar_accuracy": float(np.mean([r["crossbar_accuracy"] for r in members])),
            "cells_written": float(np.mean([r["cells_written"] for r in members])),
        })
    return out


def target_verdict(means: list[dict], budget: float) -> dict:
    """Whether, at ``budget``, XMA2's mean accuracy is within 2 points of full fine-tuning and
    above tier 1 only and tier 2 only, in float and through the crossbars."""
    def find(strategy: str, at: float | None) -> dict | None:
        for row in means:
            if row["strategy"] == strategy and (at is None or row["pe_budget"] == at):
                return row
        return None

    xma2, full = find("xma2", budget), find("full_finetune", None)
    tier1, tier2 = find("tier1_only", budget), find("tier2_only", None)
    verdict: dict = {"pe_budget": budget}
    for kind in ("float_accuracy", "crossbar_accuracy"):
        if xma2 is None or full is None or tier1 is None or tier2 is None:
            verdict[kind] = None
            continue
        figures = {"xma2": xma2[kind], "full_finetune": full[kind], "tier1_only": tier1[kind],
                   "tier2_only": tier2[kind]}
        figures["within_2_points_of_full"] = xma2[kind] >= full[kind] - TARGET_GAP
        figures["above_tier1_only"] = xma2[kind] > tier1[kind]
        figures["above_tier2_only"] = xma2[kind] > tier2[kind]
        figures["met"] = bool(figures["within_2_points_of_full"] and figures["above_tier1_only"]
                              and figures["above_tier2_only"])
        verdict[kind] = figures
    return verdict


def plot_frontier(rows: list[dict], path: Path) -> None:
    """Accuracy against cells written per switch: one panel per task and the mean, float
    (hollow, dashed) and crossbar (filled, solid); budgeted strategies are lines over budgets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    colours = {s: plt.get_cmap("tab10")(i) for i, s in enumerate(strategies)}
    cols = min(3, len(tasks))
    nrows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.0 * nrows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        for strategy in strategies:
            pts = sorted((r for r in rows if r["task"] == task and r["strategy"] == strategy),
                         key=lambda r: r["pe_budget"])
            if not pts:
                continue
            x = [max(r["cells_written"], 1.0) for r in pts]
            style = "-" if strategy in BUDGETED else ""
            ax.plot(x, [r["crossbar_accuracy"] for r in pts], style, marker="o", color=colours[strategy],
                    label=strategy)
            ax.plot(x, [r["float_accuracy"] for r in pts], "--" if style else "", marker="o",
                    mfc="none", color=colours[strategy], alpha=0.6)
            if strategy == "xma2":
                for r, xi in zip(pts, x):
                    ax.annotate(f"{r['pe_budget']:.0%}", (xi, r["crossbar_accuracy"]), fontsize=7,
                                textcoords="offset points", xytext=(3, -9))
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("cells written per switch (1 = none)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("XMA2 frontier: filled = bit-accurate crossbar, hollow = float")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
