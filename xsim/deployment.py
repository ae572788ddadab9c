"""One deployment: a network placed on an architecture, built once, read by every model.

A :class:`Deployment` owns what the functional model, the engine, the multi-task model, learning
and sweeps need and would otherwise each derive: the arch, the network, the mapping, the hardware
figures of the registry at the mapping's precision, which layer is every task's head, the tier-1
candidate PEs, the tier-2 columns, and the buffer and link geometry that loads tier-2 scales.

Rules decided here, once:

* **The head** is the network's last weight layer; every task has its own copy of it (its
  classifier). With ``mapping.resident_heads`` (the default) each new task's head sits in spare
  PEs of its own, as many as the head layer's K rows × the task's ``num_classes`` columns take by
  the mapping's packing rule (:func:`xsim.mapping.layer_pes`), programmed once and never
  rewritten; the deployment checks the chip has them, and replication spends only the PEs left
  after them.
* **Tier-1 candidates** are the first-instance PEs of every weight layer but the head (replicas
  follow their first instance). **Frozen PEs** under a tier-1 mask — the PEs tier 2 scales — are
  every non-head PE (replicas included) outside the mask.
* **Power gating**: with ``chip.power_gating`` (the default) tiles without a mapped PE are off
  and draw no leakage; :meth:`Deployment.leakage_mw` is what a run's leakage is charged from.
* **Scale loading**: a switch loads the new task's tier-2 scales from the eDRAM of every mapped
  tile at once, through each tile's eDRAM port (the narrower of the eDRAM and its bus, per
  digital clock: the rate the engine's eDRAM server uses).

Checks across the two files (each a :class:`~xsim.config.ConfigError` naming the workload and
the key): a model that does not fit (the mapping), resident heads that do not fit, a task head
with more classes than the head layer has columns, and a tier-2 scale format the arch's tier-2
unit cannot apply (a ``shifter`` applies ``pow2`` scales, not ``fixed`` ones; ``float`` is the
ideal reference of the functional model and is costed as the arch's unit).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from xsim.config import Arch, ConfigError, Workload, build_network, load_arch, load_workload
from xsim.energy import Hardware, hardware
from xsim.mapping import Mapping, layer_pes, map_network
from xsim.models import Network

T = TypeVar("T")


def _resident_heads(arch: Arch, network: Network, weight_bits: int,
                    workload: Workload) -> dict[str, int]:
    """PEs of each new task's resident head (none when heads are rewritten at every switch)."""
    if not workload.mapping.resident_heads:
        return {}
    head = network.weight_layers[-1]
    for ti, task in enumerate(workload.tasks):
        _check_classes(workload, ti, task, head)
    return {t.name: layer_pes(arch, head, weight_bits, t.head.num_classes)
            for t in workload.tasks if not t.backbone}


def _check_classes(workload: Workload, ti: int, task, head) -> None:
    """A task's classes must fit the columns of the model's head layer (before anything is sized
    by them)."""
    if task.head.num_classes > head.out_channels:
        raise ConfigError(workload.source, f"tasks[{ti}].head.num_classes",
                          f"{task.head.num_classes} classes exceed the {head.out_channels} columns "
                          f"of the model's head layer {head.name!r}")


@dataclass(frozen=True)
class Deployment:
    arch: Arch
    network: Network
    mapping: Mapping
    hardware: Hardware
    workload: Workload | None = None

    def __post_init__(self) -> None:
        if self.mapping.arch is not self.arch:
            raise ValueError("the mapping was built for a different arch object")
        bits = (self.hardware.weight_bits, self.hardware.input_bits)
        if bits != (self.mapping.weight_bits, self.mapping.input_bits):
            raise ValueError(
                f"hardware figures are for {bits[0]}/{bits[1]}-bit weights/inputs but the mapping "
                f"is at {self.mapping.weight_bits}/{self.mapping.input_bits}")

    @classmethod
    def build(cls, arch: Arch | str | Path, workload: Workload | str | Path,
              arch_overrides: dict | None = None) -> Deployment:
        """Load (if given paths), build the workload's network, map it, roll up the hardware and
        check the arch against the workload."""
        if not isinstance(arch, Arch):
            arch = load_arch(arch, arch_overrides)
        if not isinstance(workload, Workload):
            workload = load_workload(workload)
        network = build_network(workload)
        weight_bits = workload.weight_bits(arch.precision.weight_bits)
        heads = sum(_resident_heads(arch, network, weight_bits, workload).values())
        mapping = map_network(arch, network, weight_bits=weight_bits,
                              input_bits=workload.input_bits(arch.precision.input_bits),
                              replication=workload.mapping.replicate, reserved_pes=heads,
                              source=workload.source)
        dep = cls(arch, network, mapping, hardware(arch, mapping.weight_bits, mapping.input_bits),
                  workload)
        dep._check()
        return dep

    @classmethod
    def of(cls, arch: Arch, network: Network, *, weight_bits: int | None = None,
           input_bits: int | None = None, replication: bool = False,
           source: str | None = None) -> Deployment:
        """A deployment of a bare network (no workload: no tasks, heads not resident);
        ``source`` names the file a MappingError blames."""
        mapping = map_network(arch, network, weight_bits=weight_bits, input_bits=input_bits,
                              replication=replication, source=source)
        return cls(arch, network, mapping, hardware(arch, mapping.weight_bits, mapping.input_bits))

    @classmethod
    def of_mapping(cls, mapping: Mapping, hw: Hardware | None = None) -> Deployment:
        """A deployment of an existing mapping (its hardware at the mapping's precision)."""
        hw = hw or hardware(mapping.arch, mapping.weight_bits, mapping.input_bits)
        return cls(mapping.arch, mapping.network, mapping, hw)

    # -- heads ----------------------------------------------------------------------------------
    def derived(self, key: str, build: Callable[[Deployment], T]) -> T:
        """What another model derives from this deployment alone (the engine's datapath plan),
        built by ``build(self)`` on the first call for ``key`` and kept with the deployment,
        which is immutable. Not pickled: a copy builds its own."""
        memo = self.__dict__.setdefault("_derived", {})
        if key not in memo:
            memo[key] = build(self)
        return memo[key]

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_derived"}

    @property
    def head_layer(self) -> str:
        """The layer every task has its own copy of: the last weight layer."""
        return self.mapping.layers[-1].layer.name

    def head_pes(self, num_classes: int | None = None) -> int:
        """PEs a head of ``num_classes`` classes takes: the head layer's rows × that many columns
        (default: all of the head layer's columns, one replica of it)."""
        head = self.network.weight_layers[-1]
        return layer_pes(self.arch, head, self.mapping.weight_bits, num_classes)

    @property
    def resident_heads(self) -> bool:
        return self.workload is not None and self.workload.mapping.resident_heads

    @property
    def resident_head_pes_by_task(self) -> dict[str, int]:
        """Spare PEs each new task's resident head takes (empty when heads are rewritten)."""
        if not self.resident_heads:
            return {}
        return _resident_heads(self.arch, self.network, self.mapping.weight_bits, self.workload)

    @property
    def resident_head_pes(self) -> int:
        """Spare PEs the new tasks' resident heads take (0 when heads are rewritten)."""
        return sum(self.resident_head_pes_by_task.values())

    # -- tier 1 and tier 2 ----------------------------------------------------------------------
    @cached_property
    def tier1_candidates(self) -> tuple[int, ...]:
        """First-instance PEs outside the head, in PE order."""
        return tuple(p.index for p in self.mapping.pes
                     if p.replica == 0 and p.layer != self.head_layer)

    def frozen_pes(self, tier1: frozenset[int]) -> frozenset[int]:
        """PEs (replicas included) whose columns tier 2 scales: every non-head PE outside tier 1."""
        return frozenset(p.index for p in self.mapping.pes
                         if p.layer != self.head_layer
                         and self.mapping.first_instance(p.index) not in tier1)

    def scaled_columns(self, tier1: frozenset[int]) -> int:
        """Tier-2 scales a task loads: the weight columns of first-instance PEs outside the head
        and outside ``tier1``."""
        return sum(p.weight_columns for p in self.mapping.pes
                   if p.replica == 0 and p.layer != self.head_layer and p.index not in tier1)

    # -- buffers and links ------------------------------------------------------------------------
    @property
    def edram_port_bits(self) -> int:
        """Bits one tile's eDRAM moves per digital clock: the narrower of the eDRAM and its bus."""
        return min(self.arch.role("edram").width_bits, self.arch.role("bus").width_bits)

    def scale_load_ps(self, scale_bytes: int) -> int:
        """Time to load ``scale_bytes`` of tier-2 scales from the mapped tiles' eDRAM at once."""
        per_ns = self.edram_port_bits / 8 * self.arch.chip.digital_clock_ghz * self.mapping.tiles
        return math.ceil(scale_bytes / per_ns * 1000)

    # -- power ----------------------------------------------------------------------------------
    @property
    def powered_tiles(self) -> int:
        """Tiles drawing leakage: with ``chip.power_gating`` the tiles holding mapped PEs (the
        network and the resident heads), otherwise every tile of the chip."""
        if not self.arch.chip.power_gating:
            return self.arch.tiles
        pes = self.mapping.pe_count + self.resident_head_pes
        return min(self.arch.tiles, math.ceil(pes / self.arch.pes_per_tile))

    def leakage_mw(self, tier2: bool = False) -> dict[str, float]:
        """Leakage per registry entry of what is powered: components of powered tiles (a shared
        one, such as a router, when any tile it serves is powered) and the chip-level ones; the
        tier-2 entries only when ``tier2`` (some PE's columns are scaled)."""
        arch, powered = self.arch, self.powered_tiles
        out = {}
        for fig in self.hardware.components:
            if fig.part == "tier2" and not tier2:
                continue
            comp = arch.components[fig.name]
            if comp.level == "chip":
                share = 1.0
            elif comp.level == "tile" and comp.shared_by > 1:
                share = (math.ceil(powered / comp.shared_by)
                         / math.ceil(arch.tiles / comp.shared_by))
            else:
                share = powered / arch.tiles
            out[fig.name] = fig.leakage_mw * share
        return out

    # -- checks ---------------------------------------------------------------------------------
    def _check(self) -> None:
        workload, arch, mapping = self.workload, self.arch, self.mapping
        heads, spare = self.resident_head_pes, arch.pes_per_chip - mapping.pe_count
        if heads > spare:
            each = ", ".join(f"{name} {n}" for name, n in self.resident_head_pes_by_task.items())
            raise ConfigError(
                workload.source, "mapping.resident_heads",
                f"the {len(self.resident_head_pes_by_task)} new tasks' heads need {heads} spare PEs "
                f"({each}) but {arch.name} ({arch.source or 'arch'}) has {spare} left after the "
                f"{mapping.pe_count} PEs of the mapping ({mapping.network.name}, "
                f"{mapping.weight_bits}-bit, {arch.crossbar.encoding} encoding): {heads - spare} "
                "PEs short; set it to false to rewrite the head at every switch")
        head = mapping.layers[-1]
        unit = arch.role("tier2_scale")
        for ti, task in enumerate(workload.tasks):
            _check_classes(workload, ti, task, head.layer)
            if not task.backbone and unit.kind == "shifter" and task.tier2.format == "fixed":
                raise ConfigError(
                    workload.source, f"tasks[{ti}].tier2.format",
                    f"{task.tier2.format!r} scales need a multiplier, but the tier-2 unit of "
                    f"{arch.name} ({arch.source or 'arch'}: components."
                    f"{arch.role_name('tier2_scale')}.kind) is a shifter, which applies pow2 "
                    "scales (use pow2, or a multiplier unit)")
