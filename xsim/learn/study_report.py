"""The study's tables (CSV and markdown) and plots (PNG), from the rows :mod:`xsim.learn.study`
collects.  Every figure is a mean over seeds ± the half-width of its 95 % t interval; a
difference is paired by seed.  Accuracy of a seed is its mean over the adaptation tasks.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from xsim.learn.export import write_text

MAIN = "xma2"


def _label(strategy: str, budget) -> str:
    return strategy if budget is None else f"{strategy} @{budget:.0%}"


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def _markdown(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(str(row[k]) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def _keys(runs):
    seen = []
    for r in runs:
        key = (r["strategy"], r["pe_budget"])
        if key not in seen:
            seen.append(key)
    return seen


def per_seed_accuracy(runs, strategy, budget, tasks, seeds) -> np.ndarray:
    """(seeds,) task-mean test accuracy of one strategy and budget."""
    table = {(r["seed"], r["task"]): r["test_accuracy"] for r in runs
             if r["strategy"] == strategy and r["pe_budget"] == budget}
    return np.array([np.mean([table[(s, t)] for t in tasks]) for s in seeds])


def write_report(out: Path, spec, meta: dict, runs, search_rows, backbone_rows, crossbar_rows,
                 cost_rows) -> dict:
    """Write every table and plot under ``out``; returns the summary's dict."""
    from xsim.learn.study import interval, shown

    out.mkdir(parents=True, exist_ok=True)
    seeds = list(spec.seeds)
    tasks = list(dict.fromkeys(r["task"] for r in runs))
    main = (MAIN, spec.main_budget)

    accuracy_rows = []
    for strategy, budget in _keys(runs):
        row = {"strategy": _label(strategy, budget)}
        pes = [r["tier1_pes"] for r in runs if r["strategy"] == strategy and r["pe_budget"] == budget]
        row["tier1_pes"] = f"{np.mean(pes):.1f}"
        for t in tasks:
            v = [r["test_accuracy"] for r in runs if r["strategy"] == strategy
                 and r["pe_budget"] == budget and r["task"] == t]
            row[t] = shown(*interval(v), 100)
        row["mean"] = shown(*interval(per_seed_accuracy(runs, strategy, budget, tasks, seeds)), 100)
        accuracy_rows.append(row)

    main_acc = per_seed_accuracy(runs, *main, tasks, seeds)
    paired_rows = []
    for strategy, budget in _keys(runs):
        if (strategy, budget) == main:
            continue
        diff = main_acc - per_seed_accuracy(runs, strategy, budget, tasks, seeds)
        mean, half = interval(diff)
        row = {"xma2 @main minus": _label(strategy, budget),
               "mean (points)": shown(mean, half, 100)}
        for t in tasks:
            a = per_seed_accuracy(runs, *main, [t], seeds)
            b = per_seed_accuracy(runs, strategy, budget, [t], seeds)
            row[t] = shown(*interval(a - b), 100)
        row["interval excludes 0"] = "yes" if abs(mean) > half else "no"
        paired_rows.append(row)

    cost_table = []
    by_key = {}
    for c in cost_rows:
        by_key.setdefault((c["strategy"], c["pe_budget"]), []).append(c)
    for (strategy, budget), rows in by_key.items():
        row = {"strategy": _label(strategy, budget)}
        for key, scale, digits in (("switch_energy_uj", 1, 3), ("switch_latency_us", 1, 2),
                                   ("cells_written", 1, 0), ("max_cell_writes", 1, 1)):
            row[key] = shown(*interval([r[key] for r in rows]), scale, digits)
        life = [r["lifetime_switches"] for r in rows]
        row["lifetime_switches"] = ("never wears" if any(v is None for v in life)
                                    else shown(*interval(life), 1, 0))
        cost_table.append(row)

    wear_rows = []
    if any(r["strategy"] == "xma2_wear" for r in runs):
        plain = per_seed_accuracy(runs, "xma2", spec.main_budget, tasks, seeds)
        aware = per_seed_accuracy(runs, "xma2_wear", spec.main_budget, tasks, seeds)
        life = {s: np.array([next(c["lifetime_switches"] for c in cost_rows if c["seed"] == sd
                                  and c["strategy"] == s and c["pe_budget"] == spec.main_budget)
                             for sd in seeds], dtype=np.float64) for s in ("xma2", "xma2_wear")}
        writes = {s: np.array([next(c["max_cell_writes"] for c in cost_rows if c["seed"] == sd
                                    and c["strategy"] == s and c["pe_budget"] == spec.main_budget)
                               for sd in seeds], dtype=np.float64) for s in ("xma2", "xma2_wear")}
        for name, acc in (("xma2", plain), ("xma2_wear", aware)):
            wear_rows.append({"strategy": _label(name, spec.main_budget),
                              "accuracy (%)": shown(*interval(acc), 100),
                              "max cell writes": shown(*interval(writes[name]), 1, 1),
                              "lifetime (switches)": shown(*interval(life[name]), 1, 0)})
        wear_rows.append({"strategy": "wear-aware minus plain (paired)",
                          "accuracy (%)": shown(*interval(aware - plain), 100),
                          "max cell writes": shown(*interval(writes["xma2_wear"] - writes["xma2"]),
                                                   1, 1),
                          "lifetime (switches)": shown(*interval(life["xma2_wear"] / life["xma2"]),
                                                       1, 2) + " ×"})

    adc_rows = []
    for bits in spec.crossbar.adc_bits:
        row = {"adc_bits": bits}
        for name in dict.fromkeys(r["task"] for r in crossbar_rows):
            v = [r["crossbar_accuracy"] for r in crossbar_rows
                 if r["adc_bits"] == bits and r["task"] == name]
            strat = next(r["strategy"] for r in crossbar_rows if r["task"] == name)
            row[f"{name} ({strat})"] = shown(*interval(v), 100)
        adc_rows.append(row)
    float_rows = {"backbone float (mnist)": shown(*interval(
        [r["float_accuracy"] for r in backbone_rows]), 100)}

    tables = {"accuracy": accuracy_rows, "paired": paired_rows, "costs": cost_table,
              "wear": wear_rows, "adc": adc_rows}
    for name, rows in tables.items():
        write_text(out / f"{name}.md", _markdown(rows))
        write_text(out / f"{name}.csv", _csv(rows))
    write_text(out / "runs.csv", _csv(runs))
    write_text(out / "search.csv", _csv(search_rows))
    write_text(out / "costs_per_seed.csv", _csv([{k: v for k, v in c.items() if k != "workload"}
                                                 for c in cost_rows]))
    write_text(out / "crossbar_per_seed.csv", _csv(crossbar_rows))
    plot_frontier(out / "frontier.png", runs, cost_rows, tasks, seeds)
    plot_lifetime(out / "lifetime.png", runs, cost_rows, tasks, seeds, spec.main_budget)
    plot_adc(out / "adc.png", crossbar_rows, spec.crossbar.adc_bits)
    return {**meta, "backbone": float_rows, "tables": tables,
            "note": "mean ± half-width of the 95 % t interval over seeds; accuracy in %"}


def _points(runs, cost_rows, tasks, seeds, key):
    """Per (strategy, budget): (mean accuracy, accuracy half, mean cost)."""
    from xsim.learn.study import interval

    points = {}
    for strategy, budget in _keys(runs):
        acc = per_seed_accuracy(runs, strategy, budget, tasks, seeds)
        cost = [c[key] for c in cost_rows if c["strategy"] == strategy and c["pe_budget"] == budget]
        if any(v is None for v in cost):
            continue
        points[(strategy, budget)] = (*interval(acc), float(np.mean(cost)))
    return points


COLOURS = {"xma2": "C3", "xma2_wear": "C1", "tier1_only": "C0", "tier2_only": "C2",
           "random_tier1": "C4", "grad_tier1": "C5", "full_finetune": "k", "head_only": "C7",
           "last_layers": "C8", "elementwise": "C9"}


def plot_frontier(path: Path, runs, cost_rows, tasks, seeds) -> None:
    """Accuracy (task mean) against switch energy, switch latency and worst-cell writes."""
    plt = _pyplot()
    panels = (("switch_energy_uj", "mean switch energy (µJ)"),
              ("switch_latency_us", "mean switch latency (µs)"),
              ("max_cell_writes", "most-written cell: writes over the schedule"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, (key, xlabel) in zip(axes, panels):
        points = _points(runs, cost_rows, tasks, seeds, key)
        for strategy in dict.fromkeys(s for s, _ in points):
            mine = sorted((c, m, h, b) for (s, b), (m, h, c) in points.items() if s == strategy)
            xs = [p[0] for p in mine]
            ax.errorbar(xs, [100 * p[1] for p in mine], yerr=[100 * p[2] for p in mine],
                        marker="o", capsize=3, color=COLOURS.get(strategy), label=strategy,
                        linestyle="-" if len(mine) > 1 else "none")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy, mean over tasks (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Accuracy against the simulator's switch costs (mean ± 95 % CI over seeds)")
    fig.tight_layout()
    _save(fig, path)


def plot_lifetime(path: Path, runs, cost_rows, tasks, seeds, budget) -> None:
    """Lifetime (switches) against accuracy, per seed, for XMA2 with and without wear-aware tier 1."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for strategy in ("xma2", "xma2_wear"):
        acc = per_seed_accuracy(runs, strategy, budget, tasks, seeds)
        life = [next((c["lifetime_switches"] for c in cost_rows if c["seed"] == s
                      and c["strategy"] == strategy and c["pe_budget"] == budget), None)
                for s in seeds]
        if any(v is None for v in life):
            continue
        ax.scatter(life, 100 * acc, color=COLOURS[strategy], label=f"{strategy} (per seed)")
        ax.scatter([np.mean(life)], [100 * acc.mean()], color=COLOURS[strategy], marker="*", s=200,
                   edgecolor="k", label=f"{strategy} (mean)")
    ax.set_xlabel("lifetime: switches until the most-written cell reaches endurance")
    ax.set_ylabel("test accuracy, mean over tasks (%)")
    ax.set_title(f"Wear-aware tier 1 at a {budget:.0%} PE budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_adc(path: Path, crossbar_rows, adc_bits) -> None:
    """Bit-accurate accuracy against ADC resolution."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name in dict.fromkeys(r["task"] for r in crossbar_rows):
        means = [100 * np.mean([r["crossbar_accuracy"] for r in crossbar_rows
                                if r["task"] == name and r["adc_bits"] == b]) for b in adc_bits]
        strat = next(r["strategy"] for r in crossbar_rows if r["task"] == name)
        ax.plot(list(adc_bits), means, marker="o", label=f"{name} ({strat})")
    ax.set_xlabel("ADC bits (32-row crossbar, 2-bit cells, 1-bit DAC: 7 bits are lossless)")
    ax.set_ylabel("crossbar-model test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def write_wear_sweep(out: Path, rows: list[dict], budget: float, k: int) -> dict:
    """The wear-weight sweep's table and plot: accuracy, overlap, worst-cell writes, lifetime."""
    from xsim.learn.study import interval, shown

    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    table = []
    seeds = sorted({r["seed"] for r in rows})
    weights = list(dict.fromkeys(r["wear_weight"] for r in rows))
    plain = {r["seed"]: r for r in rows if r["wear_weight"] == 0}
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, w in enumerate(weights):
        mine = [r for r in rows if r["wear_weight"] == w]
        life = [r["lifetime_switches"] for r in mine]
        row = {"wear_weight": w, "accuracy (%)": shown(*interval([r["test_accuracy"] for r in mine]),
                                                       100),
               "PEs in 2+ masks": shown(*interval([r["pes_in_two_or_more_masks"] for r in mine]),
                                        1, 1),
               "max cell writes": shown(*interval([r["max_cell_writes"] for r in mine]), 1, 1),
               "lifetime (switches)": shown(*interval(life), 1, 0),
               "switch energy (µJ)": shown(*interval([r["switch_energy_uj"] for r in mine]), 1, 3)}
        if plain and w != 0:
            diff = [r["test_accuracy"] - plain[r["seed"]]["test_accuracy"] for r in mine]
            ratio = [r["lifetime_switches"] / plain[r["seed"]]["lifetime_switches"] for r in mine]
            row["accuracy minus plain (paired)"] = shown(*interval(diff), 100)
            row["lifetime / plain (paired)"] = shown(*interval(ratio), 1, 2)
        else:
            row["accuracy minus plain (paired)"] = ""
            row["lifetime / plain (paired)"] = ""
        table.append(row)
        label = "plain XMA2" if w == 0 else f"wear-aware, weight {w:g}"
        ax.scatter(life, [100 * r["test_accuracy"] for r in mine], color=f"C{i}", alpha=0.5)
        ax.errorbar([np.mean(life)], [100 * np.mean([r["test_accuracy"] for r in mine])],
                    yerr=[100 * interval([r["test_accuracy"] for r in mine])[1]], color=f"C{i}",
                    marker="*", markersize=14, capsize=3, label=label)
    ax.set_xlabel("lifetime: switches until the most-written cell reaches endurance")
    ax.set_ylabel("test accuracy, mean over tasks (%)")
    ax.set_title(f"XMA2 at {budget:.0%} ({k} PEs): wear-aware tier 1 ({len(seeds)} seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out / "wear_sweep.png")
    write_text(out / "wear_sweep.md", _markdown(table))
    write_text(out / "wear_sweep.csv", _csv(table))
    write_text(out / "wear_sweep_per_seed.csv", _csv(rows))
    return {"table": table, "note": "mean ± half-width of the 95 % t interval over seeds"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


