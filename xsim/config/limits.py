"""Bounds on what xsim reads and on the work of one run, each a named constant here.

Every input file goes through :func:`read_input` (a regular file, at most
:data:`MAX_DOCUMENT_BYTES`) and every parsed document through :func:`check_tree` (nesting depth,
collection sizes, string lengths and contents, integer magnitudes, finite numbers) before any
schema sees it, so that no input makes ``xsim validate``, ``map`` or ``info`` run long, allocate
much or print something a terminal would misread (values in messages go through
:func:`xsim.text.shown`). The bounds are far above any real accelerator or scenario and far below
what would exhaust a workstation. :func:`check_arch` bounds an architecture's sizes,
:func:`estimate_work` and :func:`check_work` a run's work before it starts.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xsim.config.errors import ConfigError
from xsim.text import shown

# Input documents (arch, workload, sweep, learning spec).
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DEPTH = 32  # mappings and lists nested in one another
MAX_ITEMS = 100_000  # entries of one list or mapping
MAX_NODES = 200_000  # values in a whole document, YAML aliases expanded
MAX_YAML_ALIASES = 256  # alias references (*name) in one YAML document
MAX_STRING_CHARS = 4096
MAX_ABS_INT = 2**53  # integers beyond this are not exact as floats, and no count is that large
# Non-zero reals lie within these magnitudes: any physical figure of a crossbar accelerator does,
# and products and quotients of many of them stay far from float64's overflow and underflow.
MIN_ABS_FLOAT = 1e-15
MAX_ABS_FLOAT = 1e18
# Derived sizes of a scenario and an accelerator.
MAX_SCHEDULE_VISITS = 1_000_000  # task visits of a schedule (periods x tasks per period)
MAX_SWEEP_POINTS = 10_000  # points of one sweep grid (the product of its dimensions' lengths)
MAX_CROSSBAR_DIM = 8192  # rows or columns of one crossbar
MAX_CROSSBARS_PER_CHIP = 2**22  # ISAAC-CE has 16,128; isaac64 64,512
MAX_PES_PER_CHIP = 2**18  # ISAAC-CE has 2,016
MAX_COMPONENT_COUNT = 10**6  # units of one component per parent
# Times and rates, found by the unit in their names: the engine counts whole picoseconds.
MIN_TIME_NS = 1e-3  # fields named *_ns
MAX_RATE_GHZ = 1e3  # fields named *_ghz or *_gsps
# Array files (.npz): weights, masks, scales.
MAX_ARRAY_BYTES = 2 * 1024**3  # one array, from its .npy header, before it is read
MAX_ARRAYS = 10_000  # arrays in one .npz archive
MAX_ONNX_BYTES = 2 * 1024**3  # one .onnx model file (protobuf's own limit), weights inside it
MAX_TIER2_SCALE = 2.0**16  # magnitude of a tier-2 column scale read from a file
MAX_TRAINING_EPOCHS = 10_000  # epochs of one training phase of `xsim learn`
# Work of one `xsim run` (engine events + cells costed + schedule steps), see estimate_work.
DEFAULT_MAX_WORK = 10**10
# How many times the ideal kernel's time the non-ideal kernel takes (bench_kernels.py: 20-40x).
NONIDEAL_COST = 30


def read_input(path: str | Path, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of an input file, refusing anything but a regular file of at most ``limit`` bytes
    (see :func:`open_regular`)."""
    name = str(path)
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise ConfigError(name, None, f"is {size} bytes; input files are limited to {limit} "
                              "bytes (MAX_DOCUMENT_BYTES)")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise ConfigError(name, None, f"cannot be read: {_reason(exc)}") from None
    if len(data) > limit:
        raise ConfigError(name, None, f"exceeds {limit} bytes (MAX_DOCUMENT_BYTES)")
    return data


def open_regular(path: str | Path):
    """A binary file object of ``path``, refusing anything but a regular file. The file is opened
    without blocking (a FIFO or a device named as input is refused, never waited on) and checked
    with ``fstat`` on the open descriptor, so what is checked is what is read."""
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(name, None, "file not found") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(name, None, f"cannot be read: {_reason(exc)}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(name, None, "is not a regular file (a folder, FIFO or device cannot be "
                          "an input)")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def shown_key(key: Any) -> str:
    """A mapping key as it appears in a key path: plain when printable and short, else repr."""
    if isinstance(key, str) and key.isprintable() and key.isascii() and len(key) <= 40:
        return key
    return shown(key, 40)


def check_tree(data: Any, path: str | None) -> None:
    """Refuse a parsed document that is nested too deep, too large, or holds a value no field
    can mean: a non-finite or huge number, an over-long string or one with NUL, control
    characters or lone surrogates, a key that is not a string."""
    nodes = 0
    # An explicit stack, not recursion: a deep document must not exhaust Python's stack. Each
    # entry's place is a (parent place, key) link, spelled out only for a message.
    stack: list[tuple[Any, int, tuple | None]] = [(data, 0, None)]
    while stack:
        value, depth, where = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ConfigError(path, None, f"holds more than {MAX_NODES} values (MAX_NODES; "
                              "YAML aliases count each time they are used)")
        if depth > MAX_DEPTH:
            raise ConfigError(path, _key(where, MAX_DEPTH), f"nested deeper than {MAX_DEPTH} "
                              "levels (MAX_DEPTH)")
        if isinstance(value, (Mapping, list, tuple)):
            if len(value) > MAX_ITEMS:
                raise ConfigError(path, _key(where), f"has {len(value)} entries; at most "
                                  f"{MAX_ITEMS} (MAX_ITEMS)")
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise ConfigError(path, _key(where), f"keys must be strings, got "
                                          f"{shown(key)}")
                    _check_string(key, path, (where, key), "a key")
                    stack.append((item, depth + 1, (where, key)))
            else:
                stack.extend((item, depth + 1, (where, i)) for i, item in enumerate(value))
        else:
            _check_scalar(value, path, where)


def _key(where: tuple | None, depth: int | None = None) -> str | None:
    """The key path of a (parent, key) link: ``tasks[1].tier1``; None at the top."""
    parts: list = []
    while where is not None:
        where, part = where
        parts.append(part)
    parts.reverse()
    out = ""
    for part in parts[:depth]:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + shown_key(part)
    return out or None


def _check_scalar(value: Any, path: str | None, where: tuple | None) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > MAX_ABS_INT:
            raise ConfigError(path, _key(where), f"integer out of range: at most {MAX_ABS_INT} in "
                              f"magnitude (MAX_ABS_INT), got {shown(value)}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(path, _key(where), f"numbers must be finite, got {shown(value)}")
        if value and not MIN_ABS_FLOAT <= abs(value) <= MAX_ABS_FLOAT:
            raise ConfigError(path, _key(where), f"number out of range: 0 or between "
                              f"{MIN_ABS_FLOAT:g} and {MAX_ABS_FLOAT:g} in magnitude "
                              f"(MIN_ABS_FLOAT, MAX_ABS_FLOAT), got {shown(value)}")
    elif isinstance(value, str):
        _check_string(value, path, where, "a string")
    else:
        raise ConfigError(path, _key(where), f"expected a string, number, boolean, list or "
                          f"mapping, got {type(value).__name__} {shown(value)}")


def _check_string(text: str, path: str | None, where: tuple | None, what: str) -> None:
    if len(text) > MAX_STRING_CHARS:
        raise ConfigError(path, _key(where), f"{what} of {len(text)} characters; at most "
                          f"{MAX_STRING_CHARS} (MAX_STRING_CHARS): {shown(text)}")
    if text.isprintable():  # the common case; surrogates and control characters are not
        return
    for c in text:
        if "\ud800" <= c <= "\udfff":
            raise ConfigError(path, _key(where), f"{what} holding a lone surrogate (not valid "
                              f"Unicode): {shown(text)}")
        if not c.isprintable() and c not in "\t\n":
            raise ConfigError(path, _key(where), f"{what} holding a control character: "
                              f"{shown(text)}")


def check_arch(arch: Any) -> None:
    """Refuse an architecture whose sizes no mapping or engine run could hold: crossbar
    dimensions, crossbars and PEs per chip, and every component's ``count``."""
    source = arch.source
    for key, value, what, limit, name in (
        ("crossbar.rows", arch.crossbar.rows, "rows", MAX_CROSSBAR_DIM, "MAX_CROSSBAR_DIM"),
        ("crossbar.columns", arch.crossbar.columns, "columns", MAX_CROSSBAR_DIM,
         "MAX_CROSSBAR_DIM"),
        ("hierarchy.tiles_per_chip", arch.crossbars_per_chip, "crossbars per chip",
         MAX_CROSSBARS_PER_CHIP, "MAX_CROSSBARS_PER_CHIP"),
        ("hierarchy.tiles_per_chip", arch.pes_per_chip, "PEs per chip", MAX_PES_PER_CHIP,
         "MAX_PES_PER_CHIP"),
    ):
        if value > limit:
            raise ConfigError(source, key, f"{value} {what}; at most {limit} ({name})")
    # Walk the model, not a list of names: every sub-object with a ``count`` is a component,
    # every field's unit is in its name.
    stack: list[tuple[str, Any]] = [("", arch)]
    while stack:
        prefix, node = stack.pop()
        for name in type(node).model_fields:
            child, key = getattr(node, name), f"{prefix}.{name}" if prefix else name
            if hasattr(type(child), "model_fields"):
                stack.append((key, child))
            elif isinstance(child, dict):  # the component registry: entries by name
                stack.extend((f"{key}.{k}", v) for k, v in child.items()
                             if hasattr(type(v), "model_fields"))
            elif name == "count" and isinstance(child, int) and child > MAX_COMPONENT_COUNT:
                raise ConfigError(source, key, f"{child} units; at most {MAX_COMPONENT_COUNT} "
                                  "per parent (MAX_COMPONENT_COUNT)")
            elif name.endswith("_ns") and isinstance(child, float) and child < MIN_TIME_NS:
                raise ConfigError(source, key, f"{shown(child)} ns is shorter than the engine's "
                                  f"1 ps time step (MIN_TIME_NS = {MIN_TIME_NS:g})")
            elif (name.endswith(("_ghz", "_gsps")) and isinstance(child, float)
                  and child > MAX_RATE_GHZ):
                raise ConfigError(source, key, f"{shown(child)} is faster than "
                                  f"{MAX_RATE_GHZ:g} GHz (MAX_RATE_GHZ)")
    _check_rollup(arch)


def _check_rollup(arch: Any) -> None:
    """A chip without area or power has no efficiency figures: refuse it here, not in ``info``."""
    from xsim.energy import hardware

    chip = hardware(arch).chip
    for what, value in (("area", chip.area_mm2), ("busy power", chip.power_mw)):
        if not value > 0:
            raise ConfigError(arch.source, None, f"the chip's total {what} comes out "
                              f"{shown(value)}: at least one component must have some")


def estimate_work(workload: Any, mapping: Any, *, functional: bool = False,
                  images: int = 1, lifetime: bool = False) -> dict[str, int]:
    """What one ``xsim run`` will do, in units of about equal cost, before doing any of it.

    * ``engine_events``: one per layer replica and output row per image, for the pipelined batch,
      every (strategy, task) inference and every strategy's first switch;
    * ``cell_writes``: cells of the mapped network costed per strategy and distinct switch;
    * ``functional_macs``: with ``functional``, thousands of bit-sliced multiply-accumulates
      (one per weight bit slice) of ``images`` images per task;
    * ``lifetime_macs``: with ``lifetime``, the same for every strategy and checkpoint of
      :mod:`xsim.mta.lifetime` (the fault-free run and the worn one), times
      ``NONIDEAL_COST``, the non-ideal kernel's cost against the ideal one's (``bench_kernels.py``).

    ``total`` is their sum, compared with ``--max-work`` (default :data:`DEFAULT_MAX_WORK`).
    """
    strategies = len(workload.strategies)
    sequence = (workload.backbone.name, *workload.visits())
    pairs = len({(a, b) for a, b in zip(sequence, sequence[1:]) if a != b})
    cpw = mapping.columns_per_weight
    cells = sum(lm.K * lm.N * cpw * lm.replicas for lm in mapping.layers)
    rows = sum(lm.replicas * lm.layer.out_shape[1] for lm in mapping.layers)
    runs = workload.batch + strategies * len(workload.tasks) + strategies
    work = {"engine_events": rows * runs, "cell_writes": strategies * pairs * cells,
            "schedule_steps": strategies * len(sequence)}
    if functional:
        macs = mapping.network.macs * cpw * images * len(workload.tasks)
        work["functional_macs"] = macs // 1000
    if lifetime:
        from xsim.mta.lifetime import CHECKPOINTS

        macs = mapping.network.macs * cpw * images * len(workload.tasks)
        work["lifetime_macs"] = macs * (1 + strategies * (CHECKPOINTS + 1) * NONIDEAL_COST) // 1000
    work["total"] = sum(work.values())
    return work


def check_work(work: dict[str, int], max_work: int, source: str | None) -> None:
    """Refuse, before any work, a run whose :func:`estimate_work` exceeds ``max_work``."""
    if work["total"] > max_work:
        parts = ", ".join(f"{k.replace('_', ' ')} {v:.3g}" for k, v in work.items() if k != "total")
        raise ConfigError(source, None, f"this run's estimated work is {work['total']:.3g} units "
                          f"({parts}), above the limit of {max_work:.3g}; raise it with "
                          "--max-work N (or max_work= in xsim.simulate) if that is intended")
