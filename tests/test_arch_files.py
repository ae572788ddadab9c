"""The committed crossbar-size variants are exactly what arch/make_variants.py derives, and every
number in an arch file carries a comment naming its source or derivation."""

from __future__ import annotations

import importlib.util
import re

import pytest

from conftest import ARCH


def load_generator():
    spec = importlib.util.spec_from_file_location("make_variants", ARCH / "make_variants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("rows", [64, 256, 512])
def test_variants_are_generated(rows):
    gen = load_generator()
    base = (ARCH / "isaac128.yaml").read_text()
    assert (ARCH / f"isaac{rows}.yaml").read_text() == gen.render(base, rows)


@pytest.mark.parametrize("path", sorted(ARCH.glob("*.yaml")), ids=lambda p: p.name)
def test_every_number_cites_a_source(path):
    number = re.compile(r"^\s*[a-z_0-9]+:\s*-?[0-9.][0-9.e+-]*\s*(#.*)?$")
    for line in path.read_text().splitlines():
        if number.match(line):
            assert "#" in line, f"{path.name}: number without a source: {line.strip()}"
