"""Read architecture (YAML) and workload (JSON) files into frozen config objects, once.

Every problem becomes a :class:`~xsim.config.errors.ConfigError` naming the file, the key path
(``components.adc.bits``, ``tasks[2].tier1.pe_budget``) and what was expected.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from xsim.config.arch import COMPONENT_CLASSES, Arch
from xsim.config.errors import ConfigError
from xsim.config.limits import (
    MAX_ABS_INT,
    MAX_DEPTH,
    MAX_YAML_ALIASES,
    check_arch,
    check_tree,
    read_input,
    shown_key,
)
from xsim.config.workload import WEIGHT_KINDS, Workload
from xsim.models import Network, build_model, network_from_spec
from xsim.text import safe_text, shown


def _key_path(loc: tuple) -> str:
    out = ""
    # A registry entry's location carries its class (pydantic's union tag): not a key of the file.
    loc = tuple(p for i, p in enumerate(loc)
                if not (i == 2 and loc[0] == "components" and p in COMPONENT_CLASSES))
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + shown_key(part)
    return out


def _describe(error: dict) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key (check its spelling against the documented format)"
    if kind == "union_tag_not_found":
        tag = _tag(error)
        allowed = _TAG_VALUES.get(tag)
        return ("required key is missing" + (f"; it says which {_TAG_WHAT[tag]} this is, one "
                f"of {', '.join(allowed)}" if allowed else ""))
    if kind == "union_tag_invalid":
        tags = error["ctx"]["expected_tags"].replace("'", "")
        what = _TAG_WHAT.get(_tag(error), "kind")
        return f"unknown {what} {shown(error['ctx']['tag'])}; it must be one of {tags}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    value = error.get("input")
    if isinstance(value, (int, float, str, bool)) and kind != "value_error":
        message += f" (got {shown(value)})"
    return message


def _tag(error: dict) -> str:
    """The key a tagged union is told apart by (``class`` of a component, ``kind`` of weights)."""
    # A field with an alias is named both ways ("'class_' | 'class'"): the file uses the last.
    tag = str(error.get("ctx", {}).get("discriminator", "class"))
    return tag.split("|")[-1].strip(" '")


_TAG_VALUES = {"class": COMPONENT_CLASSES, "kind": WEIGHT_KINDS}
_TAG_WHAT = {"class": "component class", "kind": "kind of weights"}


_NAMED = re.compile(r"^(?P<key>[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*): (?P<message>.*)$", re.S)


def validation_error(path: str | None, exc: ValidationError) -> ConfigError:
    """The first validation problem, as a ConfigError; the others are counted in the message."""
    errors = exc.errors(include_url=False)
    # A misspelt key shows as an unknown key and a missing one: name the typo first.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    key = _key_path(tuple(p for p in first["loc"] if not str(p).startswith("function-")))
    message = _describe(first)
    if first["type"] == "extra_forbidden":
        missing = [str(e["loc"][-1]) for e in errors
                   if e["type"] == "missing" and e["loc"][:-1] == first["loc"][:-1]]
        close = difflib.get_close_matches(str(first["loc"][-1]), missing, n=1)
        if close:
            message = f"unknown key; did you mean {shown(close[0])}?"
    if first["type"] in ("union_tag_not_found", "union_tag_invalid"):
        key += f".{_tag(first)}"
    # A check across keys names the key it is about at the start of its message.
    named = _NAMED.match(message)
    if named and (not key or "." not in named["key"]):
        key = f"{key}.{named['key']}" if key else named["key"]
        message = named["message"]
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s) in this file)"
    return ConfigError(path, key or None, message)


def read_document(path: str | Path) -> Mapping[str, Any]:
    """Parse a YAML or JSON file into a mapping; syntax errors name the line. The file and what
    it holds are bounded first (:mod:`xsim.config.limits`): a regular file of bounded size,
    strict JSON (no ``NaN``/``Infinity``), safe YAML with few aliases, bounded nesting."""
    path = Path(path)
    raw = read_input(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, f"is not UTF-8 text (byte {exc.start})") from None
    try:
        data = _parse_json(text, path) if path.suffix.lower() == ".json" else _parse_yaml(text, path)
    except RecursionError:
        raise ConfigError(str(path), None, f"nested deeper than {MAX_DEPTH} levels "
                          "(MAX_DEPTH)") from None
    check_tree(data, str(path))
    if not isinstance(data, Mapping):
        raise ConfigError(
            str(path), None, f"expected a mapping of keys at the top, got {type(data).__name__}"
        )
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (numbers must be finite)")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > len(str(MAX_ABS_INT)):
        raise ValueError(f"integer of {len(text.lstrip('-'))} digits is out of range (at most "
                         f"{MAX_ABS_INT} in magnitude, MAX_ABS_INT)")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {shown(key)} appears twice in one object")
        out[key] = value
    return out


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int,
                          object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            str(path), None, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:
        raise ConfigError(str(path), None, f"invalid JSON: {exc}") from None


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        # Aliases are counted before anything is built: a few anchors used many times over
        # ("billion laughs") would otherwise expand into an unbounded document downstream.
        aliases = sum(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=_YAML_LOADER))
        if aliases > MAX_YAML_ALIASES:
            raise ConfigError(str(path), None, f"uses {aliases} YAML aliases; at most "
                              f"{MAX_YAML_ALIASES} (MAX_YAML_ALIASES)")
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(str(path), None, f"invalid YAML{where}: {safe_text(exc.problem or '')} "
                          "(only plain YAML is read: no tags such as !!python/...)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), None, f"invalid YAML{where}: {safe_text(problem)}") from None
    except ValueError as exc:
        # YAML's own scalars (e.g. an integer too long to convert) that yaml does not wrap.
        raise ConfigError(str(path), None, f"invalid YAML: {safe_text(str(exc))}") from None


# Top-level keys that only one kind of file has: a file of the other kind is named as such.
_SIGNATURES = {"Arch": ("crossbar", "hierarchy", "components"), "Workload": ("tasks", "model")}


def build(model: type[BaseModel], data: Mapping[str, Any], path: str | None) -> Any:
    """Validate ``data`` as ``model``, turning pydantic's errors into a ConfigError."""
    names = {"Arch": "an architecture (YAML)", "Workload": "a workload (JSON)"}
    for kind, keys in _SIGNATURES.items():
        if kind != model.__name__ and model.__name__ in names and all(k in data for k in keys):
            raise ConfigError(path, None, f"this looks like {names[kind]} file, but "
                              f"{names[model.__name__]} file is expected here")
    try:
        return model.model_validate({**data, "source": path})
    except ValidationError as exc:
        raise validation_error(path, exc) from None


def deep_update(base: Any, overrides: Mapping[str, Any], path: str | None = None) -> Any:
    """A copy of ``base`` with ``overrides`` applied. Dotted keys address nested keys, and a
    numeric part indexes a list (``crossbar.rows``, ``tasks.1.tier1.pe_budget``); a key that
    leads through a missing list item is a ConfigError naming ``path``."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        node = out
        parts = key.split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(path, key, f"no list item {part!r} (the list has {len(node)})")
                index = int(part)
            elif isinstance(node, dict):
                index = part
                if not last and not isinstance(node.get(part), (dict, list)):
                    node[part] = {}
            else:
                raise ConfigError(path, key, f"{'.'.join(parts[:depth])} is not a mapping or list")
            if last:
                node[index] = copy.deepcopy(value)
            else:
                node = node[index]
    return out


def load_arch(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Arch:
    """Load and validate an architecture file; ``overrides`` (dotted keys) are applied first."""
    data = read_document(path)
    if overrides:
        data = deep_update(data, overrides, str(path))
        check_tree(data, str(path))
    arch = build(Arch, data, str(path))
    check_arch(arch)
    return arch


def load_workload(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Workload:
    """Load and validate a workload file (``overrides`` as for :func:`load_arch`); relative file
    paths inside it resolve beside it."""
    data = read_document(path)
    if overrides:
        data = deep_update(data, overrides, str(path))
        check_tree(data, str(path))
    return build(Workload, data, str(path))


def resolve_path(workload: Workload, relative: str) -> Path:
    """A path written in a workload file, resolved against that file's directory."""
    base = Path(workload.source).parent if workload.source else Path.cwd()
    return (base / relative).resolve()


def build_network(workload: Workload) -> Network:
    """The workload's model as a layer graph; an unknown zoo name, a bad layer list or an ONNX
    file xsim cannot import is a ConfigError on ``model.zoo`` / ``model.layers`` /
    ``model.onnx``."""
    spec = workload.model
    if spec.onnx is not None:
        return onnx_model(workload).network
    try:
        if spec.zoo is not None:
            return build_model(spec.zoo, input_shape=spec.input_shape,
                               num_classes=spec.num_classes)
        return network_from_spec(spec.name, spec.input_shape, [dict(x) for x in spec.layers])
    except (KeyError, ValueError) as exc:
        key = "model.zoo" if spec.zoo is not None else "model.layers"
        message = exc.args[0] if exc.args else str(exc)
        raise ConfigError(workload.source, key, str(message)) from None


def onnx_model(workload: Workload):
    """The :class:`~xsim.importers.onnx.ImportedModel` of a workload's ``model.onnx``."""
    from xsim.importers.onnx import import_onnx

    try:
        return import_onnx(resolve_path(workload, workload.model.onnx), name=workload.model.name)
    except ConfigError as exc:
        raise ConfigError(workload.source, "model.onnx", str(exc)) from None
