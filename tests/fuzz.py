"""A seeded, type-aware fuzzer of xsim's inputs: arch (YAML), workload and learning spec (JSON),
and the ``.npz`` arrays a workload names (weights, tier-1 masks, tier-2 scales).

Each case takes a bundled file, walks whatever keys it has (no key names are written here, so the
fuzzer follows the schemas as they change), replaces one value with a hostile one — huge and
5,000-digit integers, NaN and infinities, empty and 3,000-deep lists, unicode, lone surrogates,
NUL bytes, long strings, values of the wrong type — or damages the file as text (YAML alias bombs
and ``!!python`` tags, truncation, invalid UTF-8, oversized files), and runs ``xsim validate``,
``info``, ``map`` (and ``run`` for array files) on it in this process. A case must end in exit
code 0, or 2 with one clean line on stderr (``xsim: error: ...``, printable, bounded); anything
else is a crash, and a case running past its time limit is a hang.

``python tests/fuzz.py --cases 1000`` (``make fuzz``) prints the tally; ``tests/test_fuzz.py``
runs a small count in the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import random
import resource
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
ARCH = ROOT / "arch" / "isaac128.yaml"
WORKLOAD = ROOT / "workloads" / "lenet5_mta.json"
LEARN = ROOT / "workloads" / "learn_tiny.json"
# A clean error line: bounded (the value shown is cut at 80 characters; file names and key paths
# add to it) and printable.
MAX_MESSAGE_CHARS = 600
CASE_SECONDS = 20.0


class Hang(BaseException):
    """A case ran past its time limit."""


def _raw(index: int) -> str:
    return f"XSIMRAW{index}XSIM"


# Text that the serialiser cannot write but a hostile file can hold, keyed by format.
RAW_JSON = ["NaN", "Infinity", "-Infinity", "9" * 5000, "-" + "9" * 5000, "[" * 3000 + "]" * 3000,
            '{"a":' * 3000 + "1" + "}" * 3000, "1e999", '"\\ud800"', '"\\u0000"']
RAW_YAML = [".nan", ".inf", "-.inf", "9" * 5000, "[" * 3000 + "]" * 3000,
            "!!python/object/apply:os.system ['true']", "!!binary aGVsbG8=", "2024-01-01",
            '"\\ud800"', '"\\0"', "!!set {a, b}"]

HOSTILE = [10**30, -(10**30), 2**63, 2**53 + 1, 0, -1, 1, 10**9, 10**12, 1e308, -1e308, 1e-320,
           -0.0, 0.5, "", "x" * 100_000, "x" * 5000, "\x00", "a\x00b", "\x1b[31mred\x1b[0m",
           "ünïcødé ✓", "\u202eevil", "many", [], [[]], [1, 2, 3], {}, {"": 1}, None, True, False,
           [None] * 1000, ["x"] * 200_000]


def paths(node, prefix=()):
    """Every key path of a parsed document (mappings and lists, any depth)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*prefix, i))


def put(doc, path, value):
    node = doc
    for part in path[:-1]:
        node = node[part]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


DELETE = object()


# Values at the edges of what validates, set at every key of one name at once ("every area is
# zero"): what one value at a time cannot reach.
EDGES = [0, 0.0, 1, 1e-15, 1e18, 2**53, 10**6, 8192, -1]


def _set_every(node, name, value) -> None:
    if isinstance(node, dict):
        for key in node:
            if key == name and not isinstance(node[key], (dict, list)):
                node[key] = value
            else:
                _set_every(node[key], name, value)
    elif isinstance(node, list):
        for item in node:
            _set_every(item, name, value)


def mutate_document(doc, rng: random.Random, fmt: str) -> tuple[str, str]:
    """A hostile variant of ``doc`` as file text, and a short description of it."""
    raws = RAW_JSON if fmt == "json" else RAW_YAML
    doc = copy.deepcopy(doc)
    targets = [p for p in paths(doc) if p]
    if rng.random() < 0.2:
        names = sorted({str(p[-1]) for p in targets if isinstance(p[-1], str)})
        name, value = rng.choice(names), rng.choice(EDGES)
        _set_every(doc, name, value)
        text = json.dumps(doc) if fmt == "json" else yaml.safe_dump(doc, allow_unicode=True)
        return text, f"every {name} <- {value!r}"
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        path = rng.choice(targets)
        roll = rng.random()
        if roll < 0.35:
            raw = rng.randrange(len(raws))
            value, what = _raw(raw), f"raw {raws[raw][:20]!r}"
        elif roll < 0.85:
            value = copy.deepcopy(rng.choice(HOSTILE))
            what = f"{value!r}"[:40]
        elif roll < 0.92:
            value, what = DELETE, "deleted"
        else:
            value, what = {"unknown_key_" + "k" * rng.choice((1, 5000)): 1}, "unknown key"
        try:
            put(doc, path, value)
        except (KeyError, IndexError, TypeError):
            continue
        targets = [p for p in paths(doc) if p]
        if not targets:
            break
    text = json.dumps(doc) if fmt == "json" else yaml.safe_dump(doc, allow_unicode=True)
    for i, token in enumerate(raws):
        text = text.replace(json.dumps(_raw(i)), token).replace(_raw(i), token)
    return text, f"{'.'.join(map(str, path))} <- {what}"


def mutate_text(text: str, rng: random.Random, fmt: str) -> tuple[bytes, str]:
    """Damage to the file as text or bytes."""
    kind = rng.choice(["truncate", "flip", "alias_bomb", "python_tag", "invalid_utf8", "bom",
                       "huge", "empty", "not_a_mapping", "duplicate_keys"])
    data = text.encode("utf-8")
    if kind == "truncate":
        data = data[: rng.randrange(len(data))]
    elif kind == "flip":
        buf = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        data = bytes(buf)
    elif kind == "alias_bomb":
        bomb = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
        bomb += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
        data = ("\n".join(bomb) + "\n").encode() + data
    elif kind == "python_tag":
        data = b"evil: !!python/object/apply:os.system ['echo pwned > /dev/null']\n" + data
    elif kind == "invalid_utf8":
        data = data[:40] + b"\xff\xfe\xc3" + data[40:]
    elif kind == "bom":
        data = b"\xef\xbb\xbf" + data
    elif kind == "huge":
        data = data + (b" " * (2 * 1024 * 1024)) + b"\n"
    elif kind == "empty":
        data = b""
    elif kind == "not_a_mapping":
        data = b"[1, 2, 3]\n" if fmt == "json" else b"- 1\n- 2\n"
    elif kind == "duplicate_keys":
        data = data.replace(b"{", b'{"name": 1, "name": "x", ', 1) if fmt == "json" else data
    return data, f"text: {kind}"


def run_cli(argv: list[str], seconds: float = CASE_SECONDS) -> tuple[str, int | None, str]:
    """Run ``xsim`` in this process: (outcome, exit code, detail). Outcome: clean (0), rejected
    (2 with a clean message), crash or hang."""
    from xsim.cli import main

    out, err = io.StringIO(), io.StringIO()

    def alarm(_signum, _frame):
        raise Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    except Hang:
        return "hang", None, f"over {seconds:g} s"
    except BaseException as exc:  # noqa: BLE001 (a crash is what the fuzzer looks for)
        return "crash", None, "".join(traceback.format_exception_only(type(exc), exc))[-300:]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    message = err.getvalue()
    if code == 0:
        return "clean", 0, ""
    if code != 2:
        return "crash", code, f"exit code {code}: {message[-300:]}"
    lines = message.rstrip("\n").split("\n")
    argparse_usage = lines[0].startswith("usage:")
    last = lines[-1]
    if not argparse_usage and (len(lines) != 1 or not last.startswith("xsim: error: ")):
        return "crash", 2, f"not one message line: {message[:300]!r}"
    if len(last) > MAX_MESSAGE_CHARS or not last.isprintable():
        return "crash", 2, f"unclean message ({len(last)} chars): {last[:200]!r}"
    return "rejected", 2, last[:200]


class NpzBase:
    """LeNet-5 workload naming a weights file, a mask, scales and task weights, all valid."""

    def __init__(self, folder: Path) -> None:
        from xsim.api import prepare
        from xsim.functional.weights import save_weights, synthetic_weights
        from xsim.mta.tasks import build_tasks

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        data = json.loads(WORKLOAD.read_text())
        dep = prepare(ARCH, WORKLOAD)
        network, mapping = dep.network, dep.mapping
        weights = synthetic_weights(network, 3)
        save_weights(folder / "backbone.npz", weights)
        tasks = build_tasks(dep, weights)
        head = dep.head_layer
        rotated = data["tasks"][1]["name"]
        self.arrays = {
            "backbone.npz": dict(np.load(folder / "backbone.npz")),
            "mask.npz": {"tier1": np.array(sorted(tasks.tier1[rotated]), dtype=np.int64)},
            "scales.npz": {"tier2": tasks.tier2[rotated].astype(np.float64)},
            "task.npz": {f"{lm.layer.name}.task_weight": tasks.task_weights(rotated, lm.layer.name)
                         .T.reshape(lm.layer.weight_shape).astype(np.int64)
                         for lm in mapping.layers if lm.layer.name != head},
        }
        data["model"]["weights"] = {"kind": "npz", "path": "backbone.npz"}
        task = data["tasks"][1]
        task["tier1"]["mask_file"] = "mask.npz"
        task["tier2"]["scales_file"] = "scales.npz"
        task["weights_file"] = "task.npz"
        data["schedule"]["periods"] = 1
        data["strategies"] = ["xma2"]
        (folder / "workload.json").write_text(json.dumps(data))

    def mutate(self, rng: random.Random) -> str:
        """Write every array file, one of them hostile; a description of the damage."""
        name = rng.choice(sorted(self.arrays))
        for other, arrays in self.arrays.items():
            if other != name:
                np.savez(self.folder / other, **arrays)
        arrays = dict(self.arrays[name])
        key = rng.choice(sorted(arrays))
        base = arrays[key]
        kind = rng.choice(["nan", "inf", "negative", "huge", "complex", "string", "datetime",
                           "object", "shape", "empty", "scalar", "bool", "float16", "missing",
                           "extra", "garbage", "truncated", "claims_2e9", "npy", "uint64", "odd_name"])
        path = self.folder / name
        if kind in ("garbage", "truncated", "claims_2e9", "npy"):
            np.savez(path, **arrays)
            raw = path.read_bytes()
            if kind == "garbage":
                path.write_bytes(bytes(rng.randrange(256) for _ in range(200)))
            elif kind == "truncated":
                path.write_bytes(raw[: rng.randrange(len(raw))])
            elif kind == "npy":
                np.save(path.with_suffix(".npy"), base)
                path.write_bytes(path.with_suffix(".npy").read_bytes())
            else:
                path.write_bytes(_claiming_archive(key, 2 * 10**9))
            return f"{name}:{key} <- {kind}"
        if kind == "missing":
            del arrays[key]
        elif kind == "extra":
            arrays["unexpected"] = np.zeros(3)
        elif kind == "odd_name":
            arrays["\x1b[2J" + "k" * 5000] = np.zeros(3)
        else:
            arrays[key] = _hostile_array(base, kind, rng)
        np.savez(path, **arrays)
        return f"{name}:{key} <- {kind}"


def _hostile_array(base: np.ndarray, kind: str, rng: random.Random) -> np.ndarray:
    a = np.array(base)
    if kind in ("nan", "inf"):
        a = a.astype(np.float64)
        a.flat[rng.randrange(a.size)] = np.nan if kind == "nan" else np.inf
    elif kind == "negative":
        a = -np.abs(a) - 1
    elif kind == "huge":
        a = a.astype(np.float64) * 1e300 if a.dtype.kind == "f" else a.astype(np.int64) * 2**40
    elif kind == "complex":
        a = a.astype(np.complex128)
    elif kind == "string":
        a = a.astype(str)
    elif kind == "datetime":
        a = np.zeros(a.shape, dtype="datetime64[s]")
    elif kind == "object":
        a = np.array([object()] * max(a.size, 1), dtype=object)
    elif kind == "shape":
        a = np.concatenate([a.ravel(), a.ravel()[:1]])
    elif kind == "empty":
        a = a.ravel()[:0]
    elif kind == "scalar":
        a = np.array(a.ravel()[0])
    elif kind == "bool":
        a = a.astype(bool)
    elif kind == "float16":
        a = a.astype(np.float16)
    elif kind == "uint64":
        a = np.abs(a).astype(np.uint64) + np.uint64(2**63)
    return a


def _claiming_archive(key: str, elements: int) -> bytes:
    """An .npz whose member's header claims ``elements`` float64s but holds 16 bytes."""
    import zipfile

    header = {"descr": "<f8", "fortran_order": False, "shape": (elements,)}
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    member = b"\x93NUMPY\x01\x00" + (len(text) + pad + 1).to_bytes(2, "little") + text
    member += b" " * pad + b"\n" + b"\x00" * 16
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{key}.npy", member)
    return buf.getvalue()


def explicit_layers(workload_doc: dict) -> dict:
    """The LeNet-5 workload with its model written out as a layer list (a workload's
    ``model.layers``, as ``xsim learn`` exports it), so that layer specs are fuzzed too."""
    doc = copy.deepcopy(workload_doc)
    doc["model"] = {"name": "lenet5_layers", "input_shape": [1, 32, 32], "layers": [
        {"kind": "conv", "name": "conv1", "out_channels": 6, "kernel": 5, "activation": "relu"},
        {"kind": "maxpool", "name": "pool1", "kernel": 2},
        {"kind": "conv", "name": "conv2", "out_channels": 16, "kernel": [5, 5], "stride": 1,
         "padding": 0, "groups": 1, "activation": "relu"},
        {"kind": "avgpool", "name": "pool2", "kernel": 2, "stride": 2},
        {"kind": "flatten", "name": "flatten"},
        {"kind": "linear", "name": "fc1", "out_features": 120, "activation": "relu"},
        {"kind": "linear", "name": "fc2", "out_features": 84, "bias": False},
        {"kind": "linear", "name": "fc3", "out_features": 10}]}
    return doc


def cases(count: int, seed: int, folder: Path, npz_share: float, run_share: float):
    """Yield (description, list of argv) for ``count`` cases."""
    rng = random.Random(seed)
    arch_doc = yaml.safe_load(ARCH.read_text())
    workload_doc = json.loads(WORKLOAD.read_text())
    learn_doc = json.loads(LEARN.read_text())
    layers_doc = explicit_layers(workload_doc)
    npz = NpzBase(folder / "npz") if npz_share > 0 else None
    out = folder / "out"
    for i in range(count):
        if npz is not None and rng.random() < npz_share:
            what = npz.mutate(rng)
            yield f"npz {what}", [["run", str(ARCH), str(npz.folder / "workload.json"), "-o",
                                   str(out)]]
            continue
        target = rng.choice(["arch", "arch", "workload", "workload", "layers", "learn"])
        doc, fmt, suffix = {"arch": (arch_doc, "yaml", ".yaml"),
                            "workload": (workload_doc, "json", ".json"),
                            "layers": (layers_doc, "json", ".json"),
                            "learn": (learn_doc, "json", ".json")}[target]
        if rng.random() < 0.8:
            text, what = mutate_document(doc, rng, fmt)
            data = text.encode("utf-8", "surrogatepass")
        else:
            base = json.dumps(doc) if fmt == "json" else yaml.safe_dump(doc)
            data, what = mutate_text(base, rng, fmt)
        path = folder / f"case{i}{suffix}"
        path.write_bytes(data)
        if target == "arch":
            runs = [["validate", str(path)], ["info", str(path)], ["map", str(path), str(WORKLOAD)]]
        elif target in ("workload", "layers"):
            runs = [["validate", str(path)], ["map", str(ARCH), str(path), "--json"]]
            if rng.random() < run_share:
                runs.append(["run", str(ARCH), str(path), "-o", str(out)])
        else:
            runs = [["validate", str(path)]]
        yield f"{target} {what}", runs


def fuzz(count: int, seed: int, npz_share: float = 0.1, run_share: float = 0.1,
         verbose: bool = False) -> dict:
    tally = {"cases": 0, "runs": 0, "clean": 0, "rejected": 0, "crashes": 0, "hangs": 0}
    examples: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xsim-fuzz-") as tmp:
        for what, runs in cases(count, seed, Path(tmp), npz_share, run_share):
            tally["cases"] += 1
            worst = "clean"
            for argv in runs:
                outcome, _, detail = run_cli(argv)
                tally["runs"] += 1
                if outcome in ("crash", "hang"):
                    examples.append(f"{outcome}: {what} | xsim {argv[0]}: {detail.strip()}")
                    worst = outcome
                elif outcome == "rejected" and worst == "clean":
                    worst = "rejected"
                if verbose:
                    print(f"{outcome:9s} {what[:60]:60s} {argv[0]} {detail[:100]}", flush=True)
            tally[{"clean": "clean", "rejected": "rejected", "crash": "crashes",
                   "hang": "hangs"}[worst]] += 1
    tally["seconds"] = round(time.perf_counter() - start, 1)
    tally["examples"] = examples[:20]
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--npz-share", type=float, default=0.1,
                        help="share of cases that damage an array file (each runs xsim run)")
    parser.add_argument("--run-share", type=float, default=0.1,
                        help="share of workload cases that also run xsim run")
    parser.add_argument("--memory-gib", type=float, default=8.0,
                        help="address-space limit of this process, so that a case that would "
                        "exhaust memory fails with MemoryError (a crash) instead")
    parser.add_argument("--json", action="store_true", help="print the tally as JSON")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    limit = int(args.memory_gib * 1024**3)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    tally = fuzz(args.cases, args.seed, args.npz_share, args.run_share, args.verbose)
    if args.json:
        print(json.dumps(tally))
    else:
        print(f"fuzz: {tally['cases']} cases ({tally['runs']} runs of xsim, seed {args.seed}, "
              f"{tally['seconds']} s): {tally['clean']} clean, {tally['rejected']} rejected, "
              f"{tally['crashes']} crashes, {tally['hangs']} hangs")
        for line in tally["examples"]:
            print("  " + line)
    return 1 if tally["crashes"] or tally["hangs"] else 0


if __name__ == "__main__":
    sys.exit(main())
