"""Per-action energy, power and area roll-up of an architecture (Accelergy-style estimators).

Every component of the arch file gives its busy power at its peak rate; the energy of one action is
``(power_mw - leakage_mw) / peak_rate``, so a component doing ``peak_rate`` actions per second
draws exactly its listed power. The peak rates follow from the architecture:

======================  ==================  ===================================================
component               action              peak rate
======================  ==================  ===================================================
crossbar                cell_read           rows × columns cells per read cycle
dac                     row_drive           one drive per read cycle
sample_hold             sample              one sample per read cycle
adc                     conversion          ``sample_rate_gsps``
pe_shift_add            add                 one add per ADC conversion of the PE
registers, eDRAM, bus   byte                ``width_bits / 8`` bytes per digital clock
router                  flit                one flit per port per router clock
offchip                 byte                ``bandwidth_gb_per_s`` per link
sigmoid, maxpool,       op                  one operation per digital clock
tile shift-and-add,
tier-2 scale unit
cell write              write_pulse         given: ``cell.write_pulse_energy_pj``
cell verify             verify_read         given: ``cell.write_verify.verify_read_energy_pj``
======================  ==================  ===================================================

Power and area roll up as count × unit figure: PE → tile (plus the tile's share of its router)
→ chip (plus the off-chip links). Tier-2 hardware is XMA2's addition, reported separately so the
base roll-up of ``arch/isaac128.yaml`` can be held to ISAAC's Table I.

Peak throughput counts 2 operations per multiply-accumulate: every crossbar completes
``rows × weights_per_row`` MACs per MVM of ``ceil(input_bits / dac_bits)`` read cycles.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from xsim.config.arch import Arch, Buffer, Component


@dataclass(frozen=True)
class Action:
    component: str
    action: str
    energy_pj: float
    peak_rate_per_s: float
    derivation: str


@dataclass(frozen=True)
class PowerArea:
    power_mw: float
    area_mm2: float
    leakage_mw: float


@dataclass(frozen=True)
class Hardware:
    """The derived hardware figures of one arch at one precision."""

    arch_name: str
    weight_bits: int
    input_bits: int
    actions: tuple[Action, ...]
    pe: PowerArea
    tile: PowerArea
    chip: PowerArea
    tier2_per_pe: PowerArea
    read_cycle_ps: int
    mvm_cycles: int
    peak_tops: float

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
                "power_mw": self.tier2_per_pe.power_mw,
                "area_mm2": self.tier2_per_pe.area_mm2,
            },
        }


def _sum(parts: list[tuple[int | float, Component]]) -> PowerArea:
    return PowerArea(
        power_mw=sum(n * c.count * c.power_mw for n, c in parts),
        area_mm2=sum(n * c.count * c.area_mm2 for n, c in parts),
        leakage_mw=sum(n * c.count * c.leakage_mw for n, c in parts),
    )


def _add(*parts: PowerArea) -> PowerArea:
    return PowerArea(
        sum(p.power_mw for p in parts),
        sum(p.area_mm2 for p in parts),
        sum(p.leakage_mw for p in parts),
    )


def _per_action(component: Component, rate_per_s: float, per_units: float = 1.0) -> float:
    """pJ per action of ``per_units`` units of ``component`` sharing ``rate_per_s`` actions."""
    dynamic_mw = (component.power_mw - component.leakage_mw) * per_units
    return dynamic_mw * 1e-3 / rate_per_s * 1e12


def hardware(arch: Arch, weight_bits: int | None = None, input_bits: int | None = None) -> Hardware:
    """Derive the per-action table and the PE/tile/chip roll-up of ``arch`` at a precision."""
    weight_bits = weight_bits or arch.precision.weight_bits
    input_bits = input_bits or arch.precision.input_bits
    pe, tile, xbar = arch.pe, arch.tile, arch.crossbar
    cycle_s = arch.read_cycle_ps * 1e-12
    clock_hz = arch.chip.digital_clock_ghz * 1e9

    def buffer_action(name: str, buf: Buffer) -> Action:
        rate = buf.width_bits / 8 * clock_hz
        return Action(name, "byte", _per_action(buf, rate), rate,
                      f"{buf.power_mw} mW / ({buf.width_bits} bit / 8 x {arch.chip.digital_clock_ghz} GHz)")

    def op_action(name: str, comp: Component) -> Action:
        return Action(name, "op", _per_action(comp, clock_hz), clock_hz,
                      f"{comp.power_mw} mW / {arch.chip.digital_clock_ghz} GHz")

    adc_rate = pe.adc.sample_rate_gsps * 1e9
    pe_conversions = pe.crossbars * pe.adc.count * adc_rate
    cells = xbar.rows * (xbar.columns + xbar.unit_columns)
    router_rate = arch.router.ports * arch.router.clock_ghz * 1e9
    link_rate = arch.chip.offchip.bandwidth_gb_per_s * 1e9
    wv = arch.cell.write_verify
    actions = (
        Action("crossbar", "cell_read", _per_action(xbar, cells / cycle_s), cells / cycle_s,
               f"{xbar.power_mw} mW / ({cells} cells per {cycle_s * 1e9:g} ns read cycle)"),
        Action("dac", "row_drive", _per_action(pe.dac, 1 / cycle_s), 1 / cycle_s,
               f"{pe.dac.power_mw} mW x {cycle_s * 1e9:g} ns"),
        Action("sample_hold", "sample", _per_action(pe.sample_hold, 1 / cycle_s), 1 / cycle_s,
               f"{pe.sample_hold.power_mw} mW x {cycle_s * 1e9:g} ns"),
        Action("adc", "conversion", _per_action(pe.adc, adc_rate), adc_rate,
               f"{pe.adc.power_mw} mW / {pe.adc.sample_rate_gsps} GS/s"),
        Action("pe_shift_add", "add", _per_action(pe.shift_add, pe_conversions, pe.shift_add.count),
               pe_conversions,
               f"{pe.shift_add.count} x {pe.shift_add.power_mw} mW / {pe.crossbars} ADCs' conversions"),
        buffer_action("input_register", pe.input_register),
        buffer_action("pe_output_register", pe.output_register),
        buffer_action("edram", tile.edram),
        buffer_action("bus", tile.bus),
        buffer_action("tile_output_register", tile.output_register),
        op_action("sigmoid", tile.sigmoid),
        op_action("tile_shift_add", tile.shift_add),
        op_action("maxpool", tile.maxpool),
        Action("router", "flit", _per_action(arch.router, router_rate), router_rate,
               f"{arch.router.power_mw} mW / ({arch.router.ports} ports x {arch.router.clock_ghz} GHz)"),
        Action("offchip", "byte", _per_action(arch.chip.offchip, link_rate), link_rate,
               f"{arch.chip.offchip.power_mw} mW / {arch.chip.offchip.bandwidth_gb_per_s} GB/s"),
        op_action("tier2_scale", arch.tier2.unit),
        buffer_action("tier2_register", arch.tier2.scale_register),
        Action("cell", "write_pulse", arch.cell.write_pulse_energy_pj, 1e9 / arch.cell.write_pulse_ns,
               "cell.write_pulse_energy_pj"),
        Action("cell", "verify_read", wv.verify_read_energy_pj, 1e9 / wv.verify_read_ns,
               "cell.write_verify.verify_read_energy_pj"),
    )

    per_crossbar = _sum([(1, xbar), (1, pe.dac), (1, pe.sample_hold), (1, pe.adc)])
    pe_total = _add(
        PowerArea(per_crossbar.power_mw * pe.crossbars, per_crossbar.area_mm2 * pe.crossbars,
                  per_crossbar.leakage_mw * pe.crossbars),
        _sum([(1, pe.shift_add), (1, pe.input_register), (1, pe.output_register)]),
    )
    tile_total = _add(
        PowerArea(pe_total.power_mw * tile.pes, pe_total.area_mm2 * tile.pes,
                  pe_total.leakage_mw * tile.pes),
        _sum([(1, tile.edram), (1, tile.bus), (1, tile.sigmoid), (1, tile.shift_add),
              (1, tile.maxpool), (1, tile.output_register),
              (1 / arch.router.tiles_per_router, arch.router)]),
    )
    chip_total = _add(
        PowerArea(tile_total.power_mw * arch.chip.tiles, tile_total.area_mm2 * arch.chip.tiles,
                  tile_total.leakage_mw * arch.chip.tiles),
        _sum([(1, arch.chip.offchip)]),
    )
    tier2 = _sum([(1, arch.tier2.unit), (1, arch.tier2.scale_register)])

    mvm_cycles = math.ceil(input_bits / pe.dac.bits)
    macs_per_mvm = xbar.rows * arch.weights_per_crossbar_row(weight_bits)
    peak_tops = (arch.crossbars_per_chip * 2 * macs_per_mvm
                 / (mvm_cycles * arch.read_cycle_ps * 1e-12) / 1e12)
    return Hardware(
        arch_name=arch.name,
        weight_bits=weight_bits,
        input_bits=input_bits,
        actions=actions,
        pe=pe_total,
        tile=tile_total,
        chip=chip_total,
        tier2_per_pe=tier2,
        read_cycle_ps=arch.read_cycle_ps,
        mvm_cycles=mvm_cycles,
        peak_tops=peak_tops,
    )
