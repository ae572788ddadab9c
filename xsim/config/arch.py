"""Architecture configuration: the typed, frozen form of an ``arch/*.yaml`` file.

The hierarchy is ISAAC's: a chip of tiles, a tile of PEs (ISAAC's IMAs) plus its eDRAM, bus,
digital units and a share of a router, a PE of crossbars with their DACs, sample-and-holds, ADCs,
shift-and-add units and registers. Every component gives its figures *per unit* (one ADC, one DAC,
one crossbar array) with a ``count`` per parent, so the roll-up in :mod:`xsim.energy` is a plain
sum of count × unit figure. Powers are the component's power when busy at its peak rate (ISAAC's
Table I figures are of that kind); ``leakage_mw`` is the part of it drawn whether busy or not.

Every quantity carries its unit in its name. Objects are immutable (pydantic, ``frozen``) and built
once by :func:`xsim.config.load_arch`; nothing below re-reads a file.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
BitWidth = Annotated[int, Field(ge=1, le=32)]


class Frozen(BaseModel):
    """Base of every config object: immutable, unknown keys rejected, ints not silently truncated."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, validate_default=True)


class Component(Frozen):
    """A hardware block: ``count`` units per parent, each with peak power, leakage and area."""

    count: PositiveInt = 1
    power_mw: NonNegativeFloat
    leakage_mw: NonNegativeFloat = 0.0
    area_mm2: NonNegativeFloat

    @model_validator(mode="after")
    def _leakage_within_power(self):
        if self.leakage_mw > self.power_mw:
            raise ValueError(
                f"leakage_mw ({self.leakage_mw}) must not exceed power_mw ({self.power_mw})"
            )
        return self


class Buffer(Component):
    """A register file, eDRAM or bus: busy power at ``width_bits`` per digital clock cycle."""

    size_kb: NonNegativeFloat = 0.0
    width_bits: PositiveInt


class Crossbar(Component):
    """One ReRAM crossbar array of ``rows`` × ``columns`` cells (plus offset-encoding unit columns)."""

    rows: PositiveInt
    columns: PositiveInt
    unit_columns: NonNegativeInt = 0
    encoding: Literal["offset", "differential"]


class Dac(Component):
    bits: Annotated[int, Field(ge=1, le=8)]


class Adc(Component):
    bits: Annotated[int, Field(ge=1, le=16)]
    sample_rate_gsps: PositiveFloat


class Pe(Frozen):
    """A processing element (ISAAC's IMA): crossbars sharing registers and shift-and-add units.

    ``dac``, ``sample_hold`` and ``adc`` counts are per crossbar (one DAC per row, one
    sample-and-hold per column); ``shift_add`` and the registers are counted per PE.
    """

    crossbars: PositiveInt
    dac: Dac
    sample_hold: Component
    adc: Adc
    shift_add: Component
    input_register: Buffer
    output_register: Buffer


class Router(Component):
    ports: PositiveInt
    tiles_per_router: PositiveInt
    flit_bits: PositiveInt
    clock_ghz: PositiveFloat


class OffChip(Component):
    """Off-chip links (ISAAC: HyperTransport); ``count`` links per chip."""

    bandwidth_gb_per_s: PositiveFloat


class Tile(Frozen):
    pes: PositiveInt
    edram: Buffer
    bus: Buffer
    sigmoid: Component
    shift_add: Component
    maxpool: Component
    output_register: Buffer


class WriteVerify(Frozen):
    """Iterative program-and-verify: pulses = base_pulses + pulses_per_level · |Δlevel|, capped."""

    base_pulses: NonNegativeInt
    pulses_per_level: NonNegativeFloat
    max_pulses: PositiveInt
    verify_read_ns: PositiveFloat
    verify_read_energy_pj: NonNegativeFloat


class Cell(Frozen):
    """The ReRAM cell: ``2**cell_bits`` conductance levels, read and write pulses, endurance."""

    bits: Annotated[int, Field(ge=1, le=8)]
    r_on_kohm: PositiveFloat
    r_off_kohm: PositiveFloat
    read_voltage_v: PositiveFloat
    read_pulse_ns: PositiveFloat
    write_voltage_v: PositiveFloat
    write_pulse_ns: PositiveFloat
    write_pulse_energy_pj: PositiveFloat
    write_verify: WriteVerify
    endurance_cycles: PositiveFloat

    @property
    def levels(self) -> int:
        return 2**self.bits

    @model_validator(mode="after")
    def _resistances_ordered(self):
        if self.r_off_kohm <= self.r_on_kohm:
            raise ValueError(
                f"r_off_kohm ({self.r_off_kohm}) must be larger than r_on_kohm ({self.r_on_kohm})"
            )
        return self


class Reprogramming(Frozen):
    """The write controller: how many cells of a row and how many crossbars it writes at once."""

    parallel_columns: PositiveInt
    parallel_crossbars: PositiveInt
    compare_before_write: bool
    driver_power_mw: NonNegativeFloat


class ScaleUnit(Component):
    """Tier-2 column scaling after a PE's shift-and-add: ``shifter`` or ``multiplier``."""

    kind: Literal["shifter", "multiplier"]
    scale_bits: Annotated[int, Field(ge=1, le=16)]


class Tier2(Frozen):
    unit: ScaleUnit
    scale_register: Buffer
    registers_per_pe: PositiveInt


class Precision(Frozen):
    weight_bits: Annotated[int, Field(ge=2, le=16)]
    input_bits: Annotated[int, Field(ge=2, le=16)]


class Chip(Frozen):
    tiles: PositiveInt
    digital_clock_ghz: PositiveFloat
    technology_nm: PositiveFloat
    offchip: OffChip


class Arch(Frozen):
    """A whole accelerator. ``source`` is the file it came from (for messages), not a setting."""

    name: str
    description: str = ""
    precision: Precision
    read_cycle_ns: PositiveFloat
    cell: Cell
    crossbar: Crossbar
    pe: Pe
    tile: Tile
    router: Router
    chip: Chip
    reprogramming: Reprogramming
    tier2: Tier2
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self):
        if self.crossbar.columns % self.pe.adc.count:
            raise ValueError(
                f"pe.adc.count ({self.pe.adc.count}) must divide crossbar.columns "
                f"({self.crossbar.columns})"
            )
        if self.pe.dac.count != self.crossbar.rows:
            raise ValueError(
                f"pe.dac.count ({self.pe.dac.count}) must equal crossbar.rows "
                f"({self.crossbar.rows}): one DAC drives each row"
            )
        if self.crossbar.encoding == "offset" and self.crossbar.unit_columns < 1:
            raise ValueError("crossbar.unit_columns must be at least 1 under offset encoding")
        if self.weights_per_crossbar_row(self.precision.weight_bits) < 1:
            raise ValueError(
                f"a {self.precision.weight_bits}-bit weight needs "
                f"{self.columns_per_weight(self.precision.weight_bits)} columns but "
                f"crossbar.columns is {self.crossbar.columns}"
            )
        return self

    # Derived figures used throughout; kept here so every consumer derives them the same way.
    @property
    def columns_per_adc(self) -> int:
        return self.crossbar.columns // self.pe.adc.count

    @property
    def read_cycle_ps(self) -> int:
        """One crossbar read cycle: the larger of the read pulse and the ADCs' conversion time."""
        adc_ns = self.columns_per_adc / self.pe.adc.sample_rate_gsps
        return int(round(max(self.read_cycle_ns, adc_ns) * 1000))

    @property
    def crossbars_per_chip(self) -> int:
        return self.pe.crossbars * self.tile.pes * self.chip.tiles

    @property
    def pes_per_chip(self) -> int:
        return self.tile.pes * self.chip.tiles

    def slices_per_weight(self, weight_bits: int) -> int:
        """Cells per weight per array: magnitude bits (differential) or all bits (offset) / cell_bits."""
        bits = weight_bits - 1 if self.crossbar.encoding == "differential" else weight_bits
        return math.ceil(bits / self.cell.bits)

    def columns_per_weight(self, weight_bits: int) -> int:
        """Crossbar columns one weight occupies: its slices, twice under differential encoding."""
        arrays = 2 if self.crossbar.encoding == "differential" else 1
        return arrays * self.slices_per_weight(weight_bits)

    def weights_per_crossbar_row(self, weight_bits: int) -> int:
        """Whole weights side by side in one crossbar row (a weight never straddles two crossbars)."""
        return self.crossbar.columns // self.columns_per_weight(weight_bits)
