"""Shared fixtures: the bundled files, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCH = ROOT / "arch"
WORKLOADS = ROOT / "workloads"


@pytest.fixture(scope="session")
def isaac128():
    from xsim.config import load_arch

    return load_arch(ARCH / "isaac128.yaml")


@pytest.fixture(scope="session")
def resnet50_workload():
    from xsim.config import load_workload

    return load_workload(WORKLOADS / "resnet50_mta.json")


@pytest.fixture(scope="session")
def lenet5_workload():
    from xsim.config import load_workload

    return load_workload(WORKLOADS / "lenet5_mta.json")
