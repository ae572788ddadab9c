"""The ``xsim`` command line. The only module that prints and exits.

Every error a user can cause (a bad file, a model that does not fit) is an
:class:`~xsim.config.errors.XsimInputError`; it becomes one line on stderr (escaped: safe to
print) and exit code 2. A closed stdout (``xsim map ... | head -1``) ends quietly with exit code
141, Ctrl-C with 130 and SIGTERM with 143 (128 + the signal's number), without a traceback; files
being written when it happens are removed (:mod:`xsim.report.files`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from xsim.config import XsimInputError
from xsim.config.limits import DEFAULT_MAX_WORK
from xsim.text import readable_number, safe_text

EXIT_INPUT = 2
EXIT_PIPE = 128 + signal.SIGPIPE
EXIT_INTERRUPT = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised where the program is so that every ``finally`` runs (BaseException:
    nothing that catches Exception swallows it)."""


_received: list[int] = []
"""The signals (SIGINT, SIGTERM) received. The exception a handler raises can be lost where the
program is (Python reports one raised inside a ctypes callback, such as numba's cache loader, as
ignored and goes on), so the run checks again between its stages (:func:`_check_signals`)."""


_handler_pid: int | None = None
"""The process that installed :func:`_on_signal`: a forked worker inherits the handler until its
own initializer replaces it (:mod:`xsim.processes`)."""


def _on_signal(signum, _frame):
    if os.getpid() != _handler_pid:
        # A worker forked a moment ago, before it set its own handlers: it does what they would
        # (ignore Ctrl-C, which the main process handles; end at SIGTERM without unwinding)
        # instead of printing a traceback of the main process's exception.
        if signum == signal.SIGTERM:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        return
    _received.append(signum)
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated


def _quiet_lost_signals(hook_args) -> None:
    """``sys.unraisablehook``: a signal's exception lost in a callback is not an error to print
    (:func:`_check_signals` raises it again); anything else goes to Python's own hook."""
    if isinstance(hook_args.exc_value, (KeyboardInterrupt, Terminated)):
        return
    sys.__unraisablehook__(hook_args)


def _check_signals() -> None:
    """Raise for a signal whose exception was lost."""
    if _received:
        raise KeyboardInterrupt if _received[0] == signal.SIGINT else Terminated


def _table(rows: list[dict], columns: list[str] | None = None, digits: int = 4) -> str:
    """``rows`` as a console table, floats to ``digits`` significant digits (``readable_number``:
    ``76,040``, ``0.01537``); the files keep every digit."""
    import pandas as pd

    def shown_value(v):
        return readable_number(v, digits) if isinstance(v, float) else v

    frame = pd.DataFrame([{k: shown_value(v) for k, v in row.items()} for row in rows])
    if columns:
        frame = frame[columns]
    return frame.to_string(index=False)


def _file_kind(document) -> str:
    """What an input file is, by its keys (whatever its suffix): study, learn, sweep, workload,
    arch."""
    if "seeds" in document and "task_training" in document:
        return "study"
    if "budgets" in document:
        return "learn"
    if "grid" in document:
        return "sweep"
    if "tasks" in document or "model" in document:
        return "workload"
    return "arch"


def _warn(path: str, document) -> None:
    from xsim.config.plausible import implausible

    for key, message in implausible(document):
        print(f"xsim: warning: {safe_text(path)}: {key}: {message}", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    """Each file alone; an arch with a workload also as ``run`` checks them before simulating."""
    from xsim.config import build_network, load_arch, load_workload
    from xsim.config.loader import read_document

    archs, workloads = [], []
    for name in args.files:
        shown = safe_text(name)
        document = read_document(name)
        kind = _file_kind(document)
        if kind == "study":
            _learn_module()
            from xsim.learn.study_spec import load_study_spec

            spec = load_study_spec(name)
            print(f"ok: {shown}: study spec {spec.name} ({len(spec.seeds)} seeds, "
                  f"{len(spec.data.tasks)} tasks, budgets {list(spec.budgets)})")
        elif kind == "learn":
            spec = _learn_module().load_learn_spec(name)
            print(f"ok: {shown}: learning spec {spec.name} ({len(spec.data.tasks)} tasks, "
                  f"budgets {list(spec.budgets)})")
        elif kind == "workload":
            workload = load_workload(name)
            network = build_network(workload)
            workloads.append(workload)
            print(f"ok: {shown}: workload {workload.name} ({network.name}, "
                  f"{len(workload.tasks)} tasks, {len(workload.visits())} visits)")
        elif kind == "sweep":
            from xsim.sweep import load_sweep

            spec, points = load_sweep(name)
            print(f"ok: {shown}: sweep {spec.name} ({len(points)} points)")
        else:
            arch = load_arch(name)
            archs.append(arch)
            print(f"ok: {shown}: arch {arch.name} ({arch.crossbars_per_chip} crossbars of "
                  f"{arch.crossbar.rows}x{arch.crossbar.columns})")
        _warn(name, document)
    if len(archs) == 1 and len(workloads) == 1:
        _validate_run(archs[0], workloads[0])
    elif archs and workloads:
        print("xsim: note: give one arch and one workload to check them together as run does",
              file=sys.stderr)
    return 0


def _validate_run(arch, workload) -> None:
    """What ``xsim run`` checks before it simulates: the fit and every check across the two
    files, the weights file and every task's weights, mask and scale files (shapes, dtypes,
    values), and the work limit."""
    from xsim.api import model_weights, prepare
    from xsim.config.limits import check_work, estimate_work
    from xsim.mta.tasks import build_tasks

    dep = prepare(arch, workload)
    weights = model_weights(dep.workload, dep.network)
    build_tasks(dep, weights)
    work = estimate_work(dep.workload, dep.mapping, functional=False, images=1)
    check_work(work, DEFAULT_MAX_WORK, dep.workload.source)
    m = dep.mapping
    print(f"ok: {safe_text(str(workload.source))} on {safe_text(str(arch.source))}: "
          f"{dep.network.name} fits in {m.pe_count} of {arch.pes_per_chip} PEs "
          f"({m.tiles} tiles), heads and task files checked, estimated work "
          f"{work['total']:.2g}")


def _out_dir(value: str, option: str = "-o") -> str:
    """An output folder given on the command line: an empty one would be the current folder."""
    if not value or not value.strip():
        raise XsimInputError(None, option, "needs a folder name (an empty one would write into "
                             "the current folder)")
    return value


def cmd_import(args: argparse.Namespace) -> int:
    from xsim.functional.weights import save_weights
    from xsim.importers.onnx import _safe_name, import_onnx, workload_document
    from xsim.report.files import write_json

    out = Path(_out_dir(args.out))
    name = _safe_name(args.name) if args.name else None
    if args.name is not None and not name:
        raise XsimInputError(None, "--name", f"needs letters or digits, got {args.name!r}")
    model = import_onnx(args.model, name=name)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XsimInputError(str(out), None, f"cannot create the folder: {exc.strerror}") from None
    weights = out / f"{model.name}.npz"
    workload = out / f"{model.name}.json"
    save_weights(weights, model.weights)
    write_json(workload, workload_document(model, weights.name), strict=True)
    net = model.network
    print(f"imported {safe_text(args.model)}: {net.name}, {len(net.layers)} layers "
          f"({len(net.weight_layers)} with weights, {net.params} parameters), input "
          f"{net.input_shape}")
    print(f"wrote {safe_text(str(workload))} and {safe_text(str(weights))}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from xsim.config.reference import json_schema

    print(strict_json(json_schema(args.kind)))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from xsim.config import load_arch
    from xsim.energy import hardware

    arch = load_arch(args.arch)
    hw = hardware(arch, args.weight_bits, args.input_bits)
    data = hw.to_dict()
    if args.json:
        print(strict_json(data))
        return 0
    chip = data["chip"]
    print(f"{arch.name}: {arch.description}")
    print(f"precision {hw.weight_bits}-bit weights, {hw.input_bits}-bit inputs; read cycle "
          f"{data['read_cycle_ns']:g} ns, {hw.mvm_cycles} cycles per MVM\n")
    print("Energy per action")
    print(_table(data["actions"], ["component", "action", "unit", "energy_pj", "derivation"]))
    print("\nComponents on the chip (the registry)")
    print(_table(data["components"], ["name", "class", "level", "part", "units_per_chip",
                                      "power_mw", "leakage_mw", "area_mm2"], digits=6))
    print()
    rows = [
        {"level": "PE", "power_mw": hw.pe.power_mw, "area_mm2": hw.pe.area_mm2},
        {"level": "tile", "power_mw": hw.tile.power_mw, "area_mm2": hw.tile.area_mm2},
        {"level": "chip", "power_mw": hw.chip.power_mw, "area_mm2": hw.chip.area_mm2},
        {"level": "tier-2 per PE", "power_mw": hw.tier2_per_pe.power_mw,
         "area_mm2": hw.tier2_per_pe.area_mm2},
    ]
    print(_table(rows, digits=6))
    print(f"\npeak {chip['peak_tops']:.2f} TOPS, {chip['gops_per_w']:.1f} GOPS/W, "
          f"{chip['gops_per_s_per_mm2']:.1f} GOPS/s/mm2")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from xsim.api import prepare

    mapping = prepare(args.arch, args.workload).mapping
    if args.json:
        print(strict_json({"layers": mapping.summary_rows(), "total": mapping.totals()}))
        return 0
    print(_table(mapping.summary_rows()))
    totals = mapping.totals()
    print(f"\n{totals['network']} at {totals['weight_bits']}-bit weights ({totals['encoding']}, "
          f"{totals['columns_per_weight']} columns per weight): {totals['crossbars']} crossbars in "
          f"{totals['pes']} PEs on {totals['tiles']} tiles (chip: {totals['chip_crossbars']} "
          f"crossbars, {totals['chip_pes']} PEs, {totals['chip_tiles']} tiles); cell "
          f"utilisation {totals['utilisation']:.1%}")
    return 0


def _progress_bar(enabled: bool):
    """A tqdm bar on a terminal (stderr); nothing when output is not a terminal."""
    if not enabled:
        return None
    from tqdm import tqdm

    def wrap(items, label):
        items = list(items)
        return tqdm(items, desc=label, unit="step", leave=False, file=sys.stderr)

    return wrap


def _claim(path: str, outputs=()):
    """Create, lock and clear the output folder before any work (xsim.report.outdir)."""
    from xsim.report.outdir import claim

    return claim(path, outputs)


def cmd_run(args: argparse.Namespace) -> int:
    import time

    from xsim.api import prepare, simulate
    from xsim.config.limits import check_work, estimate_work
    from xsim.report.writer import RUN_FILES, write_outputs

    started = time.perf_counter()
    # Bad inputs and runs too large are refused before the folder is touched.
    _out_dir(args.out)
    dep = prepare(args.arch, args.workload)
    deployed = time.perf_counter()
    check_work(estimate_work(dep.workload, dep.mapping, functional=args.functional,
                             images=args.images, lifetime=args.lifetime), args.max_work,
               dep.workload.source)
    with _claim(args.out, RUN_FILES):
        result = simulate(dep, functional=args.functional,
                          images=args.images, progress=_progress_bar(sys.stderr.isatty()),
                          max_work=args.max_work, lifetime=args.lifetime, workers=args.workers)
        simulated = time.perf_counter()
        _check_signals()
        written = write_outputs(result, args.out, workers=args.workers)
    print(summary_text(result))
    print(f"\nwrote {len(written)} files to {safe_text(args.out)}/")
    if args.profile:
        laps = {"deployment": deployed - started, **result.timings,
                "report (tables, plots, files)": time.perf_counter() - simulated}
        total = time.perf_counter() - started
        print("\nwall time per stage (s): " + ", ".join(f"{k} {v:.2f}" for k, v in laps.items())
              + f"; total {total:.2f} (the interpreter's start and imports come before this)")
    return 0


def summary_text(result) -> str:
    s = result.summary
    m, inf = s["mapping"], s["inference"]
    lines = [
        f"{result.workload.name} on {result.arch.name}: {m['network']} at {m['weight_bits']}-bit, "
        f"{m['crossbars']} crossbars in {m['pes']} PEs on {m['tiles']} tiles "
        f"(utilisation {m['utilisation']:.1%})",
        f"backbone inference: {inf['latency_us']:.1f} us latency, "
        f"{inf['throughput_images_per_s']:.1f} images/s, {inf['energy_per_image_uj']:.1f} uJ/image",
        "",
        _table([{k: ("never" if k.startswith("lifetime") and v is None else v) for k, v in r.items()}
                for r in s["multi_task"]["strategies"]], ["strategy", "schedule_switch_energy_uj",
                                                "schedule_inference_energy_uj", "max_writes",
                                                "lifetime_periods", "extra_area_mm2"]),
    ]
    if "functional" in s:
        lines += ["", _table(s["functional"], ["task", "images", "rel_error", "snr_db",
                                               "top1_agreement"])]
    on = _nonideal_on(s.get("nonideal", {}))
    if on:
        lines += ["", "cell non-idealities on: " + "; ".join(on)]
    if "lifetime" in s:
        first = {k: v["first_disagreement_period"] for k, v in s["lifetime"].items()}
        lines += ["", "lifetime (lifetime.csv): first period with a task's top-1 disagreement: "
                  + ", ".join(f"{k} {'never' if v is None else readable_number(v)}"
                              for k, v in first.items())]
        acc = {k: v["accuracy"] for k, v in s["lifetime"].items() if "accuracy" in v}
        if acc:
            lines.append("test accuracy, mean over tasks, day one -> last checkpoint: " + ", ".join(
                f"{k} {sum(a['first'] for a in v.values()) / len(v):.3f} -> "
                f"{sum(a['last'] for a in v.values()) / len(v):.3f}" for k, v in acc.items()))
    return "\n".join(lines)


def _nonideal_on(block: dict) -> list[str]:
    """The non-idealities of ``summary.json``'s ``nonideal`` block that are on, in words."""
    if not block.get("enabled"):
        return []
    on = []
    if block["programming"]["enabled"]:
        on.append(f"programming error ({block['programming']['scheme']})")
    for key, label in (("variation", "variation"), ("read_noise", "read noise")):
        if block[key]["sigma"] > 0:
            on.append(f"{label} sigma {block[key]['sigma']:g}")
    if block["on_off"]["enabled"]:
        on.append(f"G_min {block['on_off']['g_min_levels']:.3g} level steps")
    if block["drift"]["time_s"] > 0:
        on.append(f"drift at {block['drift']['time_s']:g} s")
    if block["faults"]["rate"] > 0:
        on.append(f"stuck-at faults {block['faults']['rate']:g}")
    if block["wearout"]["enabled"]:
        on.append("wear-out")
    return on


def cmd_sweep(args: argparse.Namespace) -> int:
    """Exit 0 when every point finished, 1 when some failed (they are rows of sweep.csv)."""

    from xsim.sweep import load_sweep, run_sweep, write_sweep

    if args.retries < 0:
        raise XsimInputError(None, "--retries", f"must be at least 0, got {args.retries}")
    _out_dir(args.out)
    spec, points = load_sweep(args.sweep)
    scheduler = args.scheduler or os.environ.get("XSIM_SCHEDULER") or None
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        # Lazily, so that each point is cached as it finishes (not after the last one).
        def progress(items, label):
            return tqdm(items, desc=label, unit="point", leave=False, file=sys.stderr)

    with _claim(args.out):
        rows, counts = run_sweep(spec, points, args.out, workers=args.workers,
                                 scheduler=scheduler, retries=args.retries, progress=progress)
        written = write_sweep(spec, rows, args.out)
    where = f" on {scheduler}" if scheduler else ""
    print(f"sweep {spec.name}: {counts['points']} points ({counts['computed']} computed{where}, "
          f"{counts['reused']} reused from {args.out}/points, {counts['failed']} failed)")
    if counts["rejected_cache_files"]:
        print(f"note: {counts['rejected_cache_files']} cached point file(s) did not match their "
              "point (another point's, edited or damaged) and were recomputed")
    print(f"wrote {len(written)} files to {args.out}/")
    if counts["failed"]:
        print(f"xsim: {counts['failed']} of {counts['points']} points failed: see the "
              f"kind=failed rows of {args.out}/sweep.csv", file=sys.stderr)
        return 1
    return 0


def _learn_module():
    """xsim.learn, which needs the optional ``learn`` extra (PyTorch)."""
    try:
        import xsim.learn as learn
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "sklearn"):
            from xsim.config import XsimInputError

            raise XsimInputError(None, None, "mask learning needs the 'learn' extra: "
                                 "pip install -e '.[learn]' (PyTorch 2.13.0, CPU)") from None
        raise
    return learn


def cmd_learn(args: argparse.Namespace) -> int:
    _out_dir(args.out)
    learn = _learn_module()
    with _claim(args.out):
        summary = learn.run_learn(args.arch, args.spec, args.out, progress=sys.stderr.isatty(),
                                  quick=args.quick)
    print(json.dumps(summary.get("target", summary), indent=2, default=str))
    print(f"wrote the learned masks, a workload for `xsim run` and the frontier to {args.out}/")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    _out_dir(args.out)
    _learn_module()
    from xsim.learn.study import command_line, run_study

    def progress(message: str) -> None:
        if args.verbose:
            print(message, file=sys.stderr, flush=True)

    if args.wear_sweep:
        from xsim.learn.study import run_wear_sweep

        weights = tuple(float(w) for w in args.wear_sweep.split(","))
        with _claim(args.out):
            summary = run_wear_sweep(args.arch, args.spec, args.from_study, weights, args.out,
                                     args.exports, command=args.command or command_line(),
                                     progress=progress)
        print(f"wrote the wear sweep to {args.out}/ ({summary['wall_seconds']} s)")
        return 0
    with _claim(args.out):
        summary = run_study(args.arch, args.spec, args.out, args.exports, quick=args.quick,
                            command=args.command or command_line(), progress=progress)
    print(f"wrote the study's tables and plots to {args.out}/ ({summary['wall_seconds']} s) and "
          f"its exported scenarios to {args.exports}/")
    return 0


def _version() -> str:
    from xsim.report.provenance import git_commit, version

    git = git_commit()
    if git is None:
        return version()
    return f"{version()} (commit {git['commit'][:12]}{', modified' if git['modified'] else ''})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xsim", description="Cycle-level simulator of ReRAM-crossbar DNN accelerators "
        "and of multi-task adaptation with 2-tier masks (XMA2).")
    parser.add_argument("--version", action="version", version=f"xsim {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check input files; an arch with a workload as run "
                       "checks them")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("import", help="import an ONNX model as a workload and its weights "
                       "(extra 'onnx')")
    p.add_argument("model", metavar="MODEL", help="an .onnx file")
    p.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="folder for NAME.json (the workload) and NAME.npz (its weights)")
    p.add_argument("--name", default=None, help="the network's name (default: the file's stem)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("schema", help="print the JSON Schema of an input file kind "
                       "(docs/reference.md documents every key)")
    p.add_argument("kind", choices=("arch", "workload", "sweep", "learn", "study"))
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("info", help="per-action energy table, power, area and peak of an arch")
    p.add_argument("arch", metavar="ARCH")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--weight-bits", type=int, default=None, help="precision (default: the arch's)")
    p.add_argument("--input-bits", type=int, default=None, help="precision (default: the arch's)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("map", help="map a workload's model onto an arch")
    p.add_argument("arch", metavar="ARCH")
    p.add_argument("workload", metavar="WORKLOAD")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("run", help="simulate a workload on an arch and write tables and plots")
    p.add_argument("arch", metavar="ARCH")
    p.add_argument("workload", metavar="WORKLOAD")
    p.add_argument("-o", "--out", default="out", metavar="OUTDIR", help="output folder (default out)")
    p.add_argument("--functional", action="store_true",
                   help="also run bit-accurate inference per task under XMA2's masks")
    p.add_argument("--images", type=int, default=1, metavar="N",
                   help="images per task for --functional and --lifetime (default 1)")
    p.add_argument("--lifetime", action="store_true",
                   help="top-1 agreement of every task with the fault-free model over the chip's "
                        "life under each strategy's wear (lifetime.csv, lifetime.png)")
    p.add_argument("--max-work", type=int, default=DEFAULT_MAX_WORK, metavar="N",
                   help="refuse a run whose estimated work (engine events + cells costed + "
                   f"thousands of functional MACs) exceeds N (default {DEFAULT_MAX_WORK:.0e})")
    p.add_argument("--profile", action="store_true",
                   help="print the wall time of each stage (deployment, writes and strategies, "
                   "functional, waiting for the engine, report) and the engine runs' own time")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes for the engine's runs and the plots (default: one per usable "
                   "core; 1 keeps them in this process); the figures do not depend on it")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="run a grid of arch/workload variations (resumable)")
    p.add_argument("sweep", metavar="SWEEP", help="sweep file (YAML)")
    p.add_argument("-o", "--out", default="out/sweep", metavar="OUTDIR",
                   help="output folder (default out/sweep); finished points are reused")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the points on this Dask scheduler (tcp://HOST:PORT; default "
                   "$XSIM_SCHEDULER, else local processes); needs pip install 'xsim[dask]'")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="tries after the first for a point that raises (default 2)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("learn", help="learn XMA2's masks from data and export them (extra 'learn')")
    p.add_argument("arch", metavar="ARCH")
    p.add_argument("spec", metavar="LEARN", help="learning spec (JSON), e.g. workloads/learn_digits.json")
    p.add_argument("-o", "--out", default="out/learn", metavar="OUTDIR",
                   help="output folder (default out/learn)")
    p.add_argument("--quick", action="store_true", help="a reduced smoke run (few epochs, 2 tasks)")
    p.set_defaults(func=cmd_learn)

    p = sub.add_parser("study", help="XMA2 against its baselines over seeds, costed by the "
                       "simulator (extra 'learn')")
    p.add_argument("arch", metavar="ARCH")
    p.add_argument("spec", metavar="STUDY", help="study spec (JSON), e.g. workloads/study_glyphs.json")
    p.add_argument("-o", "--out", default="out/study", metavar="OUTDIR",
                   help="folder of the tables and plots (default out/study)")
    p.add_argument("--exports", default="out/study_exports", metavar="DIR",
                   help="folder of every exported scenario (default out/study_exports)")
    p.add_argument("--quick", action="store_true", help="a reduced smoke run (2 seeds, 2 tasks)")
    p.add_argument("--verbose", action="store_true", help="print each training run to stderr")
    p.add_argument("--command", default=None, help="the command to record (default: this one)")
    p.add_argument("--wear-sweep", default=None, metavar="W1,W2,...",
                   help="instead of the study: wear-aware XMA2 at these wear weights (0: plain), "
                   "at the learning rates the study's search chose (--from-study)")
    p.add_argument("--from-study", default="results/study/study.json", metavar="STUDY_JSON",
                   help="the study whose search the wear sweep reuses")
    p.set_defaults(func=cmd_study)
    return parser


def main(argv: list[str] | None = None) -> int:
    global _handler_pid
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "images", 1) < 1:
        parser.error(f"--images must be at least 1, got {args.images}")
    for name in ("weight_bits", "input_bits"):
        value = getattr(args, name, None)
        if value is not None and not 2 <= value <= 16:
            parser.error(f"--{name.replace('_', '-')} must be between 2 and 16, got {value}")
    if getattr(args, "workers", None) is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if getattr(args, "max_work", 1) < 1:
        parser.error(f"--max-work must be at least 1, got {args.max_work}")
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    _received.clear()
    _handler_pid = os.getpid()
    sys.unraisablehook = _quiet_lost_signals
    previous = {signum: _install(signum, _on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except XsimInputError as exc:
        print(f"xsim: error: {safe_text(str(exc))}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_PIPE
    except KeyboardInterrupt:
        _ignore_signals()
        print("xsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except Terminated:
        _ignore_signals()
        print("xsim: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)


def _ignore_signals() -> None:
    """Once interrupted, a second Ctrl-C or SIGTERM while xsim exits must not end it with a
    traceback or a signal status: the first one decides the exit code."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        _install(signum, signal.SIG_IGN)


def _install(signum, handler):
    """Install a signal handler where Python allows it (the main thread); the previous one."""
    try:
        return signal.signal(signum, handler)
    except ValueError:
        return None


def _stdout_to_devnull() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # stdout is no real file (captured by a test): nothing will flush it at exit


def strict_json(data) -> str:
    """``data`` as strict JSON text (non-finite numbers as null, see xsim.report.files)."""
    from xsim.report.files import json_text

    return json_text(data)


def run() -> None:
    """The console entry point: ``main``'s exit code. After Ctrl-C or SIGTERM, xsim has already
    cleaned up and said so; it then leaves at once, so that nothing still unwinding in the
    interpreter's shutdown (a KeyboardInterrupt left over in a C extension's thread or
    finaliser) can turn the documented 130 or 143 into a death by signal."""
    from xsim.processes import keep_freed_memory

    keep_freed_memory()  # before the first large array: see its docstring
    code = main()
    if code in (EXIT_INTERRUPT, EXIT_TERMINATED):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
