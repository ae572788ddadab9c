"""The documented schema: JSON Schema of every input file, and the key reference made from it.

:func:`json_schema` gives the JSON Schema pydantic derives from the config models (``xsim schema
arch|workload|sweep|learn|study`` prints it); :func:`reference_markdown` walks the same schemas into
``docs/reference.md``, one row per key with its type, unit, default and meaning (a test checks
the page is current: regenerate it with ``python -m xsim.config.reference > docs/reference.md``).
A key's unit is the one its name ends in (:data:`UNITS`), its meaning the model's docstring for
it. Layer kinds of an explicit ``model.layers`` list come from :mod:`xsim.models.spec`.
"""

from __future__ import annotations

import json
from typing import Any

KINDS = ("arch", "workload", "sweep", "learn", "study")

UNITS = {
    "_mw": "mW", "_pj": "pJ", "_uj": "µJ", "_ns": "ns", "_ghz": "GHz", "_gsps": "GS/s",
    "_mm2": "mm²", "_kb": "KiB", "_bits": "bits", "_nm": "nm", "_kohm": "kΩ", "_v": "V",
    "_ff_per_cell": "fF per cell", "_gb_per_s": "GB/s", "_per_hour": "per hour",
    "_cycles": "cycles", "_lsb": "LSB",
}
"""Name suffix → unit: every quantity carries its unit in its name."""

# Set by the loader (the file's own path), never written in a file.
_INTERNAL = ("source",)


def _model(kind: str):
    if kind == "arch":
        from xsim.config.arch import Arch

        return Arch
    if kind == "workload":
        from xsim.config.workload import Workload

        return Workload
    if kind == "sweep":
        from xsim.sweep.spec import SweepSpec

        return SweepSpec
    if kind in ("learn", "study"):
        import importlib.util

        # The spec modules need no torch; import them without the package's torch-bound runner.
        name, model = {"learn": ("spec", "LearnSpec"), "study": ("study_spec", "StudySpec")}[kind]
        spec = importlib.util.find_spec(f"xsim.learn.{name}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return getattr(module, model)
    raise ValueError(f"unknown schema {kind!r}; known: {', '.join(KINDS)}")


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind of input file (``arch``, ``workload``, ``sweep``, ``learn``, ``study``)."""
    schema = _model(kind).model_json_schema(by_alias=True)
    for name in _INTERNAL:
        schema.get("properties", {}).pop(name, None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def unit_of(key: str) -> str:
    for suffix, unit in sorted(UNITS.items(), key=lambda item: -len(item[0])):
        if key.endswith(suffix):
            return unit
    return ""


def _resolve(schema: dict, defs: dict) -> dict:
    while "$ref" in schema:
        schema = {**defs[schema["$ref"].rsplit("/", 1)[-1]],
                  **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _type(schema: dict, defs: dict) -> str:
    schema = _resolve(schema, defs)
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return " or ".join(dict.fromkeys(_type(s, defs) for s in schema[union]))
    kind = schema.get("type")
    if kind == "array":
        if "prefixItems" in schema:
            return "[" + ", ".join(_type(s, defs) for s in schema["prefixItems"]) + "]"
        return f"list of {_type(schema.get('items', {}), defs)}"
    if kind == "object":
        if "properties" in schema:
            return "mapping"
        extra = schema.get("additionalProperties")
        return f"mapping of {_type(extra, defs)}" if isinstance(extra, dict) else "mapping"
    bounds = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                      ("exclusiveMaximum", "<")):
        if key in schema:
            bounds.append(f"{sign} {schema[key]:g}")
    if "minLength" in schema and kind == "string":
        bounds.append(f"≥ {schema['minLength']} chars")
    return (kind or "any") + (f" ({', '.join(bounds)})" if bounds else "")


def _default(schema: dict) -> str:
    if "default" not in schema:
        return "required"
    value = schema["default"]
    return "—" if value is None else f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(schema: dict, defs: dict, prefix: str, rows: list, sections: list) -> None:
    schema = _resolve(schema, defs)
    required = set(schema.get("required", ()))
    for key, prop in schema.get("properties", {}).items():
        if key in _INTERNAL:
            continue
        path = f"{prefix}.{key}" if prefix else key
        target = _resolve(prop, defs)
        nested = [s for s in target.get("anyOf", [target]) if "type" in s or "$ref" in s]
        nested = [_resolve(s, defs) for s in nested]
        meaning = prop.get("description") or target.get("description", "") if (
            "properties" not in target) else prop.get("description", "")
        default = "required" if key in required else _default(prop)
        rows.append((path, _type(prop, defs), unit_of(key), default, meaning))
        for sub in nested:
            if "properties" in sub:
                _rows(sub, defs, path, rows, sections)
            elif sub.get("type") == "array" and "properties" in _resolve(sub.get("items", {}),
                                                                         defs):
                _rows(sub["items"], defs, f"{path}[]", rows, sections)
            elif sub.get("type") == "object" and isinstance(sub.get("additionalProperties"), dict):
                values = _resolve(sub["additionalProperties"], defs)
                if "oneOf" in values or "properties" in values:
                    sections.append((path, values))


def _table(rows: list) -> list[str]:
    lines = ["| key | type | unit | default | meaning |", "|---|---|---|---|---|"]
    for path, kind, unit, default, meaning in rows:
        lines.append(f"| `{path}` | {_cell(kind)} | {unit} | {_cell(default)} | "
                     f"{_cell(meaning)} |")
    return lines


def _section(kind: str) -> list[str]:
    schema = json_schema(kind)
    defs = schema.get("$defs", {})
    rows: list = []
    sections: list = []
    _rows(schema, defs, "", rows, sections)
    lines = [f"## {kind}", "", _cell(schema.get("description", "")), ""] + _table(rows)
    for path, values in sections:
        variants = values.get("oneOf", [values])
        tag = values.get("discriminator", {}).get("propertyName")
        lines += ["", f"### `{path}.<name>`", ""]
        if tag:
            lines += [f"Each entry is one of the following, chosen by its `{tag}`.", ""]
        for variant in variants:
            variant = _resolve(variant, defs)
            title = variant.get("title", "entry")
            value = variant.get("properties", {}).get(tag, {}).get("const") if tag else None
            lines += [f"#### {title}" + (f" (`{tag}: {value}`)" if value else ""), ""]
            if variant.get("description"):
                lines += [_cell(variant["description"]), ""]
            sub: list = []
            _rows(variant, defs, f"{path}.<name>", sub, [])
            lines += _table(sub) + [""]
    return lines


def _layer_section() -> list[str]:
    from xsim.models.spec import KIND_DOCS, KIND_KEYS

    lines = ["### `model.layers[]`: the layer kinds", "",
             "An explicit model is a list of layers, each a mapping with `kind`, an optional "
             "`name` (default `<kind><index>`) and `inputs` (a layer name or a list of names; "
             "default the previous layer, `input` for the network's input). Kernel, stride, "
             "padding and dilation are an integer or an `[h, w]` pair.", "",
             "| kind | required keys | optional keys (default) | what it computes |",
             "|---|---|---|---|"]
    for kind, (required, optional) in KIND_KEYS.items():
        meaning, defaults = KIND_DOCS[kind]
        needs = ", ".join(f"`{k}`" for k in required) or "—"
        takes = ", ".join(f"`{k}` ({defaults.get(k, 'none')})" for k in optional) or "—"
        lines.append(f"| `{kind}` | {needs} | {takes} | {_cell(meaning)} |")
    return lines


def reference_markdown() -> str:
    """The key reference of every input file, ``docs/reference.md``."""
    lines = ["# Input file reference", "",
             "Generated from xsim's config models by `python -m xsim.config.reference` (a test "
             "checks this page is current); `xsim schema arch|workload|sweep|learn|study` prints the "
             "JSON Schema of the same models. A key's unit is the one its name ends in: "
             + ", ".join(f"`{s}` {u}" for s, u in UNITS.items()) + ". Unknown keys are "
             "errors; `required` keys have no default.", ""]
    for kind in KINDS:
        lines += _section(kind)
        if kind == "workload":
            lines += [""] + _layer_section()
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
