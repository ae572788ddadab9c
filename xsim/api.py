"""The public entry point: ``xsim.simulate(arch, workload)`` and the result it returns.

Data flows one way: files → validated config (built once) → mapping → hardware roll-up →
{engine, multi-task adaptation, functional model} → tables. Each stage lives in its own module;
this one only wires them together and collects what they return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xsim.config import Arch, Workload, build_network, load_arch, load_workload
from xsim.energy import Hardware, hardware
from xsim.mapping import Mapping, map_network
from xsim.models import Network


@dataclass(frozen=True)
class SimulationResult:
    """Everything one run produced. ``tables`` are tidy row lists, one per CSV file."""

    arch: Arch
    workload: Workload
    network: Network
    mapping: Mapping
    hardware: Hardware
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def prepare(arch: Arch | str | Path, workload: Workload | str | Path,
            arch_overrides: dict | None = None) -> tuple[Arch, Workload, Network, Mapping, Hardware]:
    """Load (if given paths), build the network, map it and roll up the hardware."""
    if not isinstance(arch, Arch):
        arch = load_arch(arch, arch_overrides)
    if not isinstance(workload, Workload):
        workload = load_workload(workload)
    network = build_network(workload)
    weight_bits = workload.weight_bits(arch.precision.weight_bits)
    input_bits = workload.input_bits(arch.precision.input_bits)
    mapping = map_network(arch, network, weight_bits=weight_bits, input_bits=input_bits,
                          replication=workload.mapping.replication, source=workload.source)
    return arch, workload, network, mapping, hardware(arch, weight_bits, input_bits)


def simulate(arch: Arch | str | Path, workload: Workload | str | Path, *,
             arch_overrides: dict | None = None) -> SimulationResult:
    """Map ``workload`` onto ``arch`` and evaluate it; returns a :class:`SimulationResult`."""
    arch, workload, network, mapping, hw = prepare(arch, workload, arch_overrides)
    tables = {
        "layers": mapping.summary_rows(),
        "actions": [
            {"component": a.component, "action": a.action, "energy_pj": a.energy_pj,
             "derivation": a.derivation}
            for a in hw.actions
        ],
    }
    summary = {
        "arch": arch.name,
        "workload": workload.name,
        "mapping": mapping.totals(),
        "hardware": {k: v for k, v in hw.to_dict().items() if k != "actions"},
    }
    return SimulationResult(arch, workload, network, mapping, hw, tables, summary)
