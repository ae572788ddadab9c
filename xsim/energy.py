"""Per-action energy, power, leakage and area of an architecture, derived from its registry.

Every component of the arch file's registry (:mod:`xsim.config.arch`) gives its busy power at its
peak rate; unless the entry gives ``energy_pj`` itself, the energy of one action is
``(power_mw - leakage_mw) / peak_rate``, so a component doing ``peak_rate`` actions per second
draws exactly its listed power. The action and the peak rate of one unit follow from its class:

==============  ============  ===========================================================
class           action        peak rate of one unit
==============  ============  ===========================================================
crossbar        cell_read     rows × (columns + unit columns) cells per read cycle
dac             row_drive     one drive per read cycle
sample_hold     sample        one sample per read cycle
adc             conversion    ``sample_rate_gsps``
shift_add       add           the conversions of the ADCs in its level's scope, shared by its units
buffer          byte          ``width_bits / 8`` bytes per digital clock
digital         op            one operation per digital clock
scale_unit      op            one operation per digital clock
router          flit          one flit per port per router clock
link            byte          ``bandwidth_gb_per_s``
static          (none)        contributes power, leakage and area only
==============  ============  ===========================================================

The action table is keyed by *role* (:data:`xsim.config.arch.ROLES`), which is what the engine
counts; each row also names the registry entry that prices it. The cell's write (pulses, lines,
verify reads) is priced by :mod:`xsim.write_model` from the cell's physics; its figures are the
``write`` block of :meth:`Hardware.to_dict`.

Roll-up: the power, leakage and area of a PE, a tile and the chip are the sums over the registry
of units per instance × unit figure (:meth:`xsim.config.arch.Arch.units`; a shared unit counts
as a fraction, ISAAC's router as a quarter per tile). ``part: tier2`` components (XMA2's scaling
hardware) are rolled up separately, per PE, so the base chip can be held to published figures.

Tier-2 registers are sized at the precision in use: a PE holds one scale per weight column it can
output, ``arrays_per_pe × weights_per_array_row(weight_bits)`` (ISAAC at 8 bits, offset: 8 × 32 =
256; at 16 bits 128). The arch file prices its ``tier2_register`` entry for
``tier2.registers_per_pe`` scales; its power, leakage and area scale by the ratio, while one access
(a byte) costs what the file's figures give.

Peak throughput counts 2 operations per multiply-accumulate: every array completes
``rows × weights_per_row`` MACs per MVM of ``ceil(input_bits / dac_bits)`` read cycles.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from xsim.config.arch import LEVELS, ROLES, Arch, Component
from xsim.write_model import write_figures

ACTION = {"crossbar": "cell_read", "dac": "row_drive", "sample_hold": "sample",
          "adc": "conversion", "shift_add": "add", "buffer": "byte", "digital": "op",
          "scale_unit": "op", "router": "flit", "link": "byte"}
"""The action of each component class (``static`` has none)."""


@dataclass(frozen=True)
class Action:
    component: str
    """the role the engine counts under"""
    action: str
    energy_pj: float
    peak_rate_per_s: float
    derivation: str
    unit: str = ""
    """the registry entry that prices it"""


@dataclass(frozen=True)
class PowerArea:
    power_mw: float
    area_mm2: float
    leakage_mw: float


@dataclass(frozen=True)
class ComponentFigures:
    """One registry entry on the whole chip."""

    name: str
    class_: str
    level: str
    part: str
    units_per_chip: float
    power_mw: float
    leakage_mw: float
    area_mm2: float


@dataclass(frozen=True)
class Hardware:
    """The derived hardware figures of one arch at one precision."""

    arch_name: str
    weight_bits: int
    input_bits: int
    actions: tuple[Action, ...]
    components: tuple[ComponentFigures, ...]
    pe: PowerArea
    tile: PowerArea
    chip: PowerArea
    tier2_per_pe: PowerArea
    tier2_registers_per_pe: int
    """scales one PE's tier-2 registers hold at this precision"""
    read_cycle_ps: int
    mvm_cycles: int
    peak_tops: float
    write: dict
    """the write model's figures (:func:`xsim.write_model.write_figures`)"""

    def energy_pj(self, component: str, action: str | None = None) -> float:
        for a in self.actions:
            if a.component == component and (action is None or a.action == action):
                return a.energy_pj
        raise KeyError(f"no action {action!r} of component {component!r}")

    @property
    def energy_table(self) -> dict[str, float]:
        return {f"{a.component}.{a.action}": a.energy_pj for a in self.actions}

    @property
    def gops_per_w(self) -> float:
        return self.peak_tops * 1e3 / (self.chip.power_mw / 1e3)

    @property
    def gops_per_s_per_mm2(self) -> float:
        return self.peak_tops * 1e3 / self.chip.area_mm2

    def to_dict(self) -> dict:
        return {
            "arch": self.arch_name,
            "precision": {"weight_bits": self.weight_bits, "input_bits": self.input_bits},
            "read_cycle_ns": self.read_cycle_ps / 1000,
            "mvm_cycles": self.mvm_cycles,
            "actions": [asdict(a) for a in self.actions],
            "components": [{("class" if k == "class_" else k): v for k, v in asdict(c).items()}
                           for c in self.components],
            "pe": {"power_mw": self.pe.power_mw, "area_mm2": self.pe.area_mm2},
            "tile": {"power_mw": self.tile.power_mw, "area_mm2": self.tile.area_mm2},
            "chip": {
                "power_w": self.chip.power_mw / 1e3,
                "area_mm2": self.chip.area_mm2,
                "leakage_w": self.chip.leakage_mw / 1e3,
                "peak_tops": self.peak_tops,
                "gops_per_w": self.gops_per_w,
                "gops_per_s_per_mm2": self.gops_per_s_per_mm2,
            },
            "tier2_per_pe": {
                "registers": self.tier2_registers_per_pe,
                "power_mw": self.tier2_per_pe.power_mw,
                "area_mm2": self.tier2_per_pe.area_mm2,
            },
            "write": dict(self.write),
        }


def tier2_registers_per_pe(arch: Arch, weight_bits: int) -> int:
    """Scales one PE's tier-2 registers hold: the weight columns a PE outputs at ``weight_bits``."""
    return arch.arrays_per_pe * arch.weights_per_array_row(weight_bits)


def _sizes(arch: Arch, weight_bits: int) -> dict[str, float]:
    """Per registry entry, the factor its power, leakage and area take (1 unless listed)."""
    return {arch.role_name("tier2_register"):
            tier2_registers_per_pe(arch, weight_bits) / arch.tier2.registers_per_pe}


def _roll_up(arch: Arch, per: str, part: str, sizes: dict[str, float]) -> PowerArea:
    """Power, area and leakage of one instance of level ``per``: the ``part`` components at or
    below it (a unit shared by several instances counts as its share: ISAAC's router), each
    entry of ``sizes`` scaled by its factor."""
    power = area = leak = 0.0
    below = LEVELS.index(per)
    for name, comp in arch.components.items():
        if comp.part != part:
            continue
        if LEVELS.index(comp.level) < below:
            continue
        n = arch.units(comp, per) * sizes.get(name, 1.0)
        power += n * comp.power_mw
        area += n * comp.area_mm2
        leak += n * comp.leakage_mw
    return PowerArea(power, area, leak)


def _rate(arch: Arch, name: str, comp: Component) -> tuple[float, str]:
    """Peak actions per second of one unit of ``comp``, and how it was derived."""
    cycle_s = arch.read_cycle_ps * 1e-12
    clock_hz = arch.chip.digital_clock_ghz * 1e9
    ghz = arch.chip.digital_clock_ghz
    kind = comp.class_
    if kind == "crossbar":
        cells = arch.crossbar.rows * (arch.crossbar.columns + arch.crossbar.unit_columns)
        return cells / cycle_s, f"{cells} cells per {cycle_s * 1e9:g} ns read cycle"
    if kind in ("dac", "sample_hold"):
        return 1 / cycle_s, f"one per {cycle_s * 1e9:g} ns read cycle"
    if kind == "adc":
        return comp.sample_rate_gsps * 1e9, f"{comp.sample_rate_gsps} GS/s"
    if kind == "shift_add":
        adc = arch.role("adc")
        conversions = arch.units(adc, comp.level) * adc.sample_rate_gsps * 1e9
        units = comp.count / comp.shared_by
        return (conversions / units,
                f"the {arch.units(adc, comp.level):g} ADCs' conversions of one {comp.level} "
                f"shared by {units:g} units")
    if kind == "buffer":
        return (comp.width_bits / 8 * clock_hz,
                f"{comp.width_bits} bit / 8 x {ghz} GHz")
    if kind in ("digital", "scale_unit"):
        return clock_hz, f"{ghz} GHz"
    if kind == "router":
        return comp.ports * comp.clock_ghz * 1e9, f"{comp.ports} ports x {comp.clock_ghz} GHz"
    if kind == "link":
        return comp.bandwidth_gb_per_s * 1e9, f"{comp.bandwidth_gb_per_s} GB/s"
    raise ValueError(f"components.{name}: class {kind!r} has no action")


def _actions(arch: Arch) -> tuple[Action, ...]:
    actions = []
    for role in ROLES:
        name = arch.role_name(role)
        comp = arch.components[name]
        rate, how = _rate(arch, name, comp)
        if comp.energy_pj is not None:
            energy, derivation = comp.energy_pj, f"given: components.{name}.energy_pj"
        else:
            energy = (comp.power_mw - comp.leakage_mw) * 1e-3 / rate * 1e12
            derivation = f"({comp.power_mw} - {comp.leakage_mw}) mW / ({how})"
        actions.append(Action(role, ACTION[comp.class_], energy, rate, derivation, name))
    verify = arch.cell.write.verify
    actions.append(Action("cell", "verify_read", verify.read_energy_pj, 1e9 / verify.read_ns,
                          "cell.write.verify.read_energy_pj", "cell"))
    return tuple(actions)


def hardware(arch: Arch, weight_bits: int | None = None, input_bits: int | None = None) -> Hardware:
    """Derive the per-action table and the PE/tile/chip roll-up of ``arch`` at a precision."""
    weight_bits = weight_bits or arch.precision.weight_bits
    input_bits = input_bits or arch.precision.input_bits
    sizes = _sizes(arch, weight_bits)
    components = tuple(
        ComponentFigures(name, comp.class_, comp.level, comp.part, arch.units(comp),
                         *(arch.units(comp) * sizes.get(name, 1.0) * v
                           for v in (comp.power_mw, comp.leakage_mw, comp.area_mm2)))
        for name, comp in arch.components.items())
    mvm_cycles = math.ceil(input_bits / arch.dac_bits)
    macs_per_mvm = arch.crossbar.rows * arch.weights_per_array_row(weight_bits)
    peak_tops = (arch.arrays_per_chip * 2 * macs_per_mvm
                 / (mvm_cycles * arch.read_cycle_ps * 1e-12) / 1e12)
    chip = PowerArea(sum(c.power_mw for c in components if c.part == "base"),
                     sum(c.area_mm2 for c in components if c.part == "base"),
                     sum(c.leakage_mw for c in components if c.part == "base"))
    return Hardware(
        arch_name=arch.name,
        weight_bits=weight_bits,
        input_bits=input_bits,
        actions=_actions(arch),
        components=components,
        pe=_roll_up(arch, "pe", "base", sizes),
        tile=_roll_up(arch, "tile", "base", sizes),
        chip=chip,
        tier2_per_pe=_roll_up(arch, "pe", "tier2", sizes),
        tier2_registers_per_pe=tier2_registers_per_pe(arch, weight_bits),
        read_cycle_ps=arch.read_cycle_ps,
        mvm_cycles=mvm_cycles,
        peak_tops=peak_tops,
        write=write_figures(arch),
    )
