"""report.html: self-contained (every plot inline, no external reference), every table and plot
of the run present; rendered in headless Chromium when the machine has it."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from conftest import ARCH, WORKLOADS
from xsim.api import simulate
from xsim.report.html import SECTIONS
from xsim.report.writer import write_outputs


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.external: list[str] = []
        self.tables: list[str] = []
        self.plots: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            value = attrs.get(key)
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag == "div" and attrs.get("class") == "table":
            self.tables.append(attrs["data-name"])
        if tag == "figure":
            self.plots.append(attrs["data-name"])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = simulate(ARCH / "isaac128.yaml", WORKLOADS / "lenet5_mta.json", functional=True)
    write_outputs(result, out)
    return out, result


def test_report_is_self_contained_and_complete(report):
    out, result = report
    page = _Page()
    page.feed((out / "report.html").read_text(encoding="utf-8"))
    assert not page.external, page.external
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    expected_tables = [n for *_, names in SECTIONS for n in names if result.tables.get(n)]
    assert page.tables == expected_tables
    expected_plots = [p for _, _, _, plots, _ in SECTIONS for p in plots
                      if (out / f"{p}.png").is_file()]
    assert page.plots == expected_plots and len(expected_plots) == 4


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="headless Chromium is not installed (Debian package chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    out, _ = report
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = _Page()
    page.feed(proc.stdout)
    assert len(page.plots) == 4 and page.tables and not page.external
