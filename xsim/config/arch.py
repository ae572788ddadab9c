"""Architecture configuration: the typed, frozen form of an ``arch/*.yaml`` file.

An arch file has two halves.

*The hierarchy and the device* (``hierarchy``, ``crossbar``, ``cell``, ``precision``,
``read_cycle_ns``, ``chip``, ``reprogramming``, ``tier2``): a chip of ``tiles_per_chip`` tiles,
a tile of ``pes_per_tile`` PEs (ISAAC's IMA, PUMA's core), a PE of ``groups_per_pe`` crossbar
groups (PUMA's MVMU; ISAAC has one group of 8 crossbars per IMA), a group of
``crossbars_per_group`` crossbars of ``crossbar.rows × crossbar.columns`` cells.

*The component registry* (``components``): every hardware block is one entry, Accelergy's idea
in xsim's words. An entry names its ``class`` (what it does: its actions, see
:mod:`xsim.energy`), the ``level`` of the hierarchy it sits at, its ``count`` per instance of
that level, optionally ``shared_by`` (one set of ``count`` units serves that many instances of
the level: ISAAC's router is shared by 4 tiles), its busy power at peak rate, its leakage (idle)
power and its area. Sharing is therefore data: an ADC at level ``group`` with ``count: 2`` serves
the columns of all the group's crossbars (two ADCs between them); DACs at level ``group`` are
shared by the group's crossbars, which then see the same inputs and act as one wide *array*
(PUMA's bit-sliced MVMU); DACs at level ``crossbar`` give each crossbar inputs of its own (ISAAC).

Components the engine drives are found by their role: the entry's name, or the roles it lists
in ``roles`` (PUMA's vector unit does the activations and the pooling of its core). The roles are
:data:`ROLES`; components with other names or of class ``static`` (an instruction memory, a
control unit) have no modelled action but still count in power, leakage and area. An entry with
``part: tier2`` is XMA2's addition (the column-scaling unit and its registers), rolled up apart
from the base chip so the base can be held to the published figures.

Every quantity carries its unit in its name. Objects are immutable (pydantic, ``frozen``) and built
once by :func:`xsim.config.load_arch`; nothing below re-reads a file.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]

LEVELS = ("chip", "tile", "pe", "group", "crossbar")
"""The hierarchy, top down; each level's instances sit inside one instance of the level above."""
Level = Literal["chip", "tile", "pe", "group", "crossbar"]

_REGISTERS = "shift-and-add + registers"
ROLES = {
    "crossbar": (("crossbar",), "crossbar reads"),
    "dac": (("dac",), "DAC + S/H"),
    "sample_hold": (("sample_hold",), "DAC + S/H"),
    "adc": (("adc",), "ADC"),
    "pe_shift_add": (("shift_add",), _REGISTERS),
    "input_register": (("buffer",), _REGISTERS),
    "pe_output_register": (("buffer",), _REGISTERS),
    "edram": (("buffer",), "eDRAM + bus"),
    "bus": (("buffer",), "eDRAM + bus"),
    "tile_output_register": (("buffer",), _REGISTERS),
    "sigmoid": (("digital",), "digital units"),
    "tile_shift_add": (("digital", "shift_add"), _REGISTERS),
    "maxpool": (("digital",), "digital units"),
    "router": (("router",), "NoC + off-chip"),
    "offchip": (("link",), "NoC + off-chip"),
    "tier2_scale": (("scale_unit",), "tier-2 scaling"),
    "tier2_register": (("buffer",), "tier-2 scaling"),
}
"""Role → (the classes that can fill it, the group plots and breakdowns show it in). Every role
is filled by exactly one component; the engine counts actions under the role's name and
:mod:`xsim.energy` prices them from that component."""


class Frozen(BaseModel):
    """Base of every config object: immutable, unknown keys rejected, ints not silently truncated."""

    # Attribute docstrings are the keys' meanings in the schema and docs/reference.md.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, validate_default=True,
                              populate_by_name=True, use_attribute_docstrings=True)


class Component(Frozen):
    """One registry entry: ``count`` units per instance of ``level``, each with peak power,
    leakage and area; one set of units serves ``shared_by`` instances of the level."""

    level: Level
    """the hierarchy level one set of units sits at (chip, tile, pe, group, crossbar)."""
    count: PositiveInt = 1
    """units per instance of the level."""
    shared_by: PositiveInt = 1
    """instances of the level one set of units serves."""
    power_mw: NonNegativeFloat = 0.0
    """busy power of one unit at its peak rate."""
    leakage_mw: NonNegativeFloat = 0.0
    """idle (leakage) power of one unit; at most power_mw."""
    area_mm2: NonNegativeFloat
    """area of one unit."""
    roles: tuple[str, ...] | None = None
    """engine roles this entry fills besides its name (see ROLES)."""
    part: Literal["base", "tier2"] = "base"
    """base: the published chip; tier2: XMA2's addition, rolled up apart."""
    energy_pj: NonNegativeFloat | None = None
    """energy of one action when a source gives it; else busy power less leakage over the peak
    rate."""

    @model_validator(mode="after")
    def _leakage_within_power(self):
        if self.power_mw and self.leakage_mw > self.power_mw:
            raise ValueError(
                f"leakage_mw ({self.leakage_mw}) must not exceed power_mw ({self.power_mw})"
            )
        return self


class CrossbarArray(Component):
    """The ReRAM array itself (its geometry is the top-level ``crossbar`` section)."""

    class_: Literal["crossbar"] = Field(alias="class")
    """What the block is: its actions and the roles it can fill."""


class Dac(Component):
    class_: Literal["dac"] = Field(alias="class")
    """What the block is: its actions and the roles it can fill."""
    bits: Annotated[int, Field(ge=1, le=8)]
    """input bits a DAC drives per cycle."""


class SampleHold(Component):
    class_: Literal["sample_hold"] = Field(alias="class")
    """What the block is: its actions and the roles it can fill."""


class Adc(Component):
    class_: Literal["adc"] = Field(alias="class")
    """What the block is: its actions and the roles it can fill."""
    bits: Annotated[int, Field(ge=1, le=16)]
    """ADC resolution."""
    sample_rate_gsps: PositiveFloat
    """conversion rate."""


class ShiftAdd(Component):
    """Shift-and-add of the ADCs' outputs in its level's scope (one add per conversion)."""

    class_: Literal["shift_add"] = Field(alias="class")
    """What the block is: its actions and the roles it can fill."""


class Buffer(Component):
    """A register file, eDRAM or bus: busy power at ``width_bits`` per digital clock cycle."""

    class_: Literal["buffer"] = Field(alias="class")
    """What the block is: its actions and the roles it can fill."""
    size_kb: NonNegativeFloat = 0.0
    """capacity."""
    width_bits: PositiveInt
    """bits moved per digital clock cycle."""


class Digital(Component):
    """A digital unit doing one operation per digital clock (sigmoid, max-pool, vector unit)."""

    class_: Literal["digital"] = Field(alias="class")
    """What the block is: its actions and the roles it can fill."""


class ScaleUnit(Component):
    """Tier-2 column scaling after a PE's shift-and-add: a ``shifter`` or a ``multiplier``."""

    class_: Literal["scale_unit"] = Field(alias="class")
    """What the block is: its actions and the roles it can fill."""
    kind: Literal["shifter", "multiplier"]
    """shifter applies pow2 scales; multiplier applies any scale."""


class Router(Component):
    class_: Literal["router"] = Field(alias="class")
    """What the block is: its actions and the roles it can fill."""
    ports: PositiveInt
    """flits a router moves per router clock."""
    flit_bits: PositiveInt
    """bits of one flit."""
    clock_ghz: PositiveFloat
    """router clock."""


class Link(Component):
    """Off-chip links (ISAAC: HyperTransport). ``duplex: full`` (the default, as HyperTransport
    is): images in and results out each have ``bandwidth_gb_per_s`` per link; ``half``: they
    share it."""

    class_: Literal["link"] = Field(alias="class")
    """What the block is: its actions and the roles it can fill."""
    bandwidth_gb_per_s: PositiveFloat
    """off-chip bandwidth of one link."""
    duplex: Literal["full", "half"] = "full"
    """whether images in and results out have a link's bandwidth each (full) or share it"""


class Static(Component):
    """A block with no modelled action (instruction memory, control): area, leakage, power only."""

    class_: Literal["static"] = Field(alias="class")
    """What the block is: its actions and the roles it can fill."""


AnyComponent = Annotated[
    CrossbarArray | Dac | SampleHold | Adc | ShiftAdd | Buffer | Digital | ScaleUnit | Router | Link | Static,
    Field(discriminator="class_"),
]
COMPONENT_CLASSES = ("crossbar", "dac", "sample_hold", "adc", "shift_add", "buffer", "digital",
                     "scale_unit", "router", "link", "static")


class Hierarchy(Frozen):
    """Instances of each level per instance of the level above."""

    tiles_per_chip: PositiveInt
    """tiles on the chip."""
    pes_per_tile: PositiveInt
    """PEs (ISAAC's IMAs, PUMA's cores) per tile."""
    groups_per_pe: PositiveInt = 1
    """crossbar groups (PUMA's MVMUs) per PE."""
    crossbars_per_group: PositiveInt
    """crossbars per group."""


class CrossbarGeometry(Frozen):
    """One ReRAM crossbar: ``rows`` × ``columns`` cells plus offset-encoding unit columns."""

    rows: PositiveInt
    """wordlines (inputs) of one crossbar."""
    columns: PositiveInt
    """bitlines (outputs) of one crossbar."""
    unit_columns: NonNegativeInt = 0
    """extra columns per crossbar for offset encoding's unit column."""
    encoding: Literal["offset", "differential"]
    """signed weights: offset (one array, offset removed digitally) or differential (two
    columns per weight slice)."""


class Verify(Frozen):
    """Reads of the sensing path during a write: compare-before-write and the verify reads of the
    ``write_verify`` scheme, which loops pulse → verify until the cell is within ``tolerance`` (a
    fraction of one level step) of its target, at most ``max_pulses`` pulses."""

    read_ns: PositiveFloat
    """one verify read after a program pulse."""
    read_energy_pj: NonNegativeFloat
    """energy of one verify read of one cell."""
    tolerance: Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)] = 0.0
    """relative conductance error accepted by verify."""
    max_pulses: PositiveInt = 1000
    """program pulses before a cell write gives up."""


class CellWrite(Frozen):
    """How a cell is programmed (:mod:`xsim.write_model`): SET/RESET pulses of ``pulse_ns`` at
    their voltages, each moving the conductance by ``(G_max - G_min) / pulse_levels``; word and
    bit lines of ``line_capacitance_ff_per_cell`` per cell pitch charged at every pulse. The
    ``array`` scheme instead charges a whole-array write (PUMAsim's figure)."""

    scheme: Literal["row_parallel", "write_verify", "array"]
    """how cells are written: row_parallel, write_verify or array."""
    set_voltage_v: PositiveFloat
    """SET pulse voltage."""
    reset_voltage_v: PositiveFloat
    """RESET pulse voltage."""
    pulse_ns: PositiveFloat
    """width of one program pulse."""
    pulse_levels: PositiveInt
    """conductance levels one pulse moves a cell at most."""
    line_capacitance_ff_per_cell: NonNegativeFloat = 0.0
    """word/bit-line capacitance charged per cell on the line at each pulse."""
    verify: Verify
    """the verify read of write-verify."""
    array_write_ns: PositiveFloat | None = None
    """time to write a whole array (scheme array)."""
    array_write_power_mw: PositiveFloat | None = None
    """power while writing a whole array (scheme array)."""

    @model_validator(mode="after")
    def _array_figures(self):
        if self.scheme == "array" and (self.array_write_ns is None or self.array_write_power_mw is None):
            raise ValueError("array_write_ns: the array scheme needs array_write_ns and "
                             "array_write_power_mw")
        return self


Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class ProgrammingError(Frozen):
    """Conductance error a write leaves (:mod:`xsim.functional.nonideal`): under ``write_verify``
    uniform within the verify ``tolerance``; a one-shot write (``row_parallel``, ``array``)
    accumulates ``pulse_sigma`` of the conductance range per program pulse from the erased state."""

    enabled: bool = False
    """model the programming error of the cell's write scheme."""
    pulse_sigma: NonNegativeFloat = 0.035
    """cycle-to-cycle error of one program pulse, a fraction of G_max - G_min (NeuroSim's sigmaCtoC)."""


class Variation(Frozen):
    """Device-to-device variation: a fixed relative deviation of each cell's conductance, drawn once
    per cell (seeded), kept across rewrites."""

    sigma: NonNegativeFloat = 0.0
    """relative standard deviation of a cell's conductance (0: off; assumption, no default source)."""


class ReadNoise(Frozen):
    """Cycle-to-cycle read noise of each cell, proportional to its conductance (CrossSim's and
    aihwkit's state-proportional model); a conversion's noise then grows with the conductance and
    the rows driven. Replaces the functional model's fixed column noise when on."""

    sigma: NonNegativeFloat = 0.0
    """relative standard deviation of one cell's read (0: off; assumption, no default source)."""


class OnOffRatio(Frozen):
    """A finite on/off ratio: G_min = 1 / r_off_kohm above zero; its current is removed exactly
    (known from the digital inputs), so it acts through the errors that scale with conductance."""

    enabled: bool = False
    """give the cells G_min = 1/r_off instead of 0."""


class Drift(Frozen):
    """Power-law conductance drift G(t) = G0 (t / t0)^-nu with nu = |nu_mean + nu_std xi| per cell
    (aihwkit's StateIndependentNoiseModel and its defaults, fitted to PCM)."""

    time_s: NonNegativeFloat = 0.0
    """time since programming at which inference runs (0: no drift)."""
    nu_mean: NonNegativeFloat = 0.1
    """mean drift exponent (aihwkit default)."""
    nu_std: NonNegativeFloat = 0.05
    """device-to-device spread of the drift exponent (aihwkit default)."""
    t0_s: PositiveFloat = 20.0
    """time of the first read after programming, where G = G0 (aihwkit default)."""


class StuckFaults(Frozen):
    """Cells stuck at manufacture: each cell independently, at G_max with ``high_fraction``, else
    at G_min."""

    rate: Fraction = 0.0
    """fraction of cells stuck at manufacture (0: off)."""
    high_fraction: Fraction = 0.838
    """share stuck at G_max: SA1 9.04 % of 10.79 % (Chen et al., IEEE Trans. Comput. 2015)."""


class WearOut(Frozen):
    """A cell written more times than its own endurance sticks. Each cell's endurance is
    ``endurance_cycles * exp(sigma_log * xi)`` (lognormal around the cell's figure, seeded)."""

    enabled: bool = False
    """stick cells whose write count exceeds their endurance."""
    sigma_log: NonNegativeFloat = 0.5
    """spread of ln(endurance) over cells (assumption)."""
    level: Literal["low", "high"] = "low"
    """where a worn cell sticks: G_min (low) or G_max (high) (assumption)."""


class NonIdeal(Frozen):
    """Non-idealities of the stored value (:mod:`xsim.functional.nonideal`); every one is off by
    default, and with all off the bit-accurate model is exact."""

    programming: ProgrammingError = ProgrammingError()
    """the programming error of the write scheme."""
    variation: Variation = Variation()
    """device-to-device variation."""
    read_noise: ReadNoise = ReadNoise()
    """state-dependent read noise."""
    on_off: OnOffRatio = OnOffRatio()
    """a finite on/off ratio."""
    drift: Drift = Drift()
    """conductance drift since programming."""
    faults: StuckFaults = StuckFaults()
    """stuck-at faults at manufacture."""
    wearout: WearOut = WearOut()
    """stuck-at faults from wear (needs per-cell write counts: xsim run --lifetime)."""

    @property
    def enabled(self) -> bool:
        return (self.programming.enabled or self.variation.sigma > 0 or self.read_noise.sigma > 0
                or self.on_off.enabled or self.drift.time_s > 0 or self.faults.rate > 0
                or self.wearout.enabled)


class Cell(Frozen):
    """The ReRAM cell: ``2**bits`` conductance levels between ``1/r_off`` and ``1/r_on`` (linear
    in conductance), read pulses, the write model and endurance. ``preset`` names a cell of
    :data:`xsim.write_model.PRESETS` whose figures fill every key the file leaves out."""

    preset: str | None = None
    """a device preset of xsim.write_model.PRESETS filling the keys left out."""
    bits: Annotated[int, Field(ge=1, le=8)]
    """bits stored per cell."""
    r_on_kohm: PositiveFloat
    """low-resistance state."""
    r_off_kohm: PositiveFloat
    """high-resistance state."""
    read_voltage_v: PositiveFloat
    """read voltage on a wordline."""
    read_pulse_ns: PositiveFloat
    """width of one read pulse."""
    write: CellWrite
    """how a cell is programmed."""
    endurance_cycles: PositiveFloat
    """writes a cell survives."""
    nonideal: NonIdeal = NonIdeal()
    """non-idealities of the stored value (all off by default)."""

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data):
        if isinstance(data, dict) and data.get("preset") is not None:
            from xsim.write_model import PRESETS

            name = data["preset"]
            if not isinstance(name, str) or name not in PRESETS:
                raise ValueError(f"preset: unknown cell preset {name!r}; the presets are "
                                 f"{', '.join(PRESETS)}")
            data = _merged(PRESETS[name].figures, data)
        return data

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


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


class Reprogramming(Frozen):
    """The write controller: ``write_drivers`` columns of a crossbar written at once, and a chip
    write-power budget that bounds how many crossbars program at once (xsim derives the count:
    :func:`xsim.write_model.crossbars_in_parallel`)."""

    write_drivers: PositiveInt
    """cells the write circuitry programs at once."""
    write_power_budget_mw: PositiveFloat
    """power the chip may spend on writing."""
    compare_before_write: bool
    """read a row first and write only the cells that change."""


class Tier2(Frozen):
    """XMA2's tier-2 scale format in hardware (its units are the ``part: tier2`` components)."""

    scale_bits: Annotated[int, Field(ge=1, le=16)]
    """bits of one stored tier-2 column scale."""
    registers_per_pe: PositiveInt
    """tier-2 scale registers per PE."""


class Precision(Frozen):
    weight_bits: Annotated[int, Field(ge=2, le=16)]
    """default weight precision (a workload may set its own)."""
    input_bits: Annotated[int, Field(ge=2, le=16)]
    """default input (activation) precision."""


class Chip(Frozen):
    digital_clock_ghz: PositiveFloat
    """clock of the digital units, eDRAM and buses."""
    technology_nm: PositiveFloat
    """process node the figures are for."""
    power_gating: bool = True
    """tiles without a mapped PE are off and draw no leakage."""
    pipeline_start: Literal["window", "row"] = "window"
    """when a weight layer starts an output row: once the first window of its inputs exists
    (ISAAC), or once the whole input rows it reads exist"""
    backpressure: Literal["input", "all"] = "input"
    """which streams wait for room in their readers' eDRAM: the image stream only, or every
    layer's output too (a layer then stalls when its readers' eDRAM is full)"""


class Arch(Frozen):
    """A whole accelerator. ``source`` is the file it came from (for messages), not a setting."""

    name: str
    """the architecture's name in reports."""
    description: str = ""
    """free text."""
    precision: Precision
    """default precision."""
    read_cycle_ns: PositiveFloat
    """one crossbar read cycle."""
    hierarchy: Hierarchy
    """tiles, PEs, groups, crossbars."""
    crossbar: CrossbarGeometry
    """geometry of one crossbar."""
    cell: Cell
    """the ReRAM cell."""
    chip: Chip
    """chip-wide settings."""
    components: dict[str, AnyComponent] = Field(min_length=1)
    """the component registry: one entry per hardware block, by name."""
    reprogramming: Reprogramming
    """the write path."""
    tier2: Tier2
    """XMA2's tier-2 scale storage."""
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self):
        self._check_roles()
        adc, dac = self.role("adc"), self.role("dac")
        if dac.shared_by != 1 or dac.count != self.crossbar.rows:
            raise ValueError(
                f"components.{self.role_name('dac')}.count: must equal crossbar.rows "
                f"({self.crossbar.rows}) and shared_by must be 1: one DAC drives each row of the "
                f"crossbars at level {dac.level!r} (got count {dac.count}, shared_by {dac.shared_by})")
        if LEVELS.index(dac.level) < LEVELS.index("pe"):
            raise ValueError(f"components.{self.role_name('dac')}.level: DACs sit at level pe, "
                             f"group or crossbar, got {dac.level!r}")
        if LEVELS.index(adc.level) < LEVELS.index("pe"):
            raise ValueError(f"components.{self.role_name('adc')}.level: ADCs sit at level pe, "
                             f"group or crossbar, got {adc.level!r}")
        columns = self.crossbars_under(adc.level) * adc.shared_by * self.crossbar.columns
        if columns % adc.count:
            raise ValueError(
                f"components.{self.role_name('adc')}.count: {adc.count} must divide the "
                f"{columns} crossbar columns it serves")
        if self.crossbar.encoding == "offset" and self.crossbar.unit_columns < 1:
            raise ValueError("crossbar.unit_columns must be at least 1 under offset encoding")
        if self.weights_per_array_row(self.precision.weight_bits) < 1:
            raise ValueError(
                f"a {self.precision.weight_bits}-bit weight needs "
                f"{self.columns_per_weight(self.precision.weight_bits)} columns but an array has "
                f"{self.array_columns}")
        return self

    def _check_roles(self) -> None:
        filled: dict[str, str] = {}
        for name, comp in self.components.items():
            for role in comp.roles if comp.roles is not None else (name,):
                if comp.roles is not None and role not in ROLES:
                    raise ValueError(f"components.{name}.roles: unknown role {role!r}; the roles "
                                     f"are {', '.join(ROLES)}")
                if role not in ROLES:
                    continue
                classes = ROLES[role][0]
                if comp.class_ not in classes:
                    raise ValueError(f"components.{name}: the {role!r} role takes class "
                                     f"{' or '.join(classes)}, got {comp.class_!r}")
                if role in filled:
                    raise ValueError(f"components.{name}: role {role!r} is already filled by "
                                     f"components.{filled[role]}")
                filled[role] = name
        missing = [r for r in ROLES if r not in filled]
        if missing:
            raise ValueError(f"components: no component fills the role(s) {', '.join(missing)} "
                             "(name a component so, or list the role in its roles)")

    # -- the registry --------------------------------------------------------------------------
    @cached_property
    def _role_names(self) -> dict[str, str]:
        out = {}
        for name, comp in self.components.items():
            for role in comp.roles if comp.roles is not None else (name,):
                if role in ROLES:
                    out[role] = name
        return out

    def role_name(self, role: str) -> str:
        """The name of the component that fills ``role``."""
        return self._role_names[role]

    def role(self, role: str) -> AnyComponent:
        """The component that fills ``role`` (one of :data:`ROLES`)."""
        return self.components[self._role_names[role]]

    def instances(self, level: str, per: str = "chip") -> int:
        """Instances of ``level`` inside one instance of ``per`` (``per`` above ``level``)."""
        h = self.hierarchy
        factors = {"tile": h.tiles_per_chip, "pe": h.pes_per_tile, "group": h.groups_per_pe,
                   "crossbar": h.crossbars_per_group}
        lo, hi = LEVELS.index(per), LEVELS.index(level)
        if hi < lo:
            raise ValueError(f"level {level!r} is above {per!r}")
        return math.prod(factors[LEVELS[i]] for i in range(lo + 1, hi + 1))

    def crossbars_under(self, level: str) -> int:
        return self.instances("crossbar", per=level)

    def units(self, comp: Component, per: str = "chip") -> float:
        """Units of ``comp`` inside one instance of ``per`` (a fraction where a unit is shared
        by several instances of ``per``, e.g. a router per tile)."""
        if LEVELS.index(comp.level) >= LEVELS.index(per):
            return comp.count * self.instances(comp.level, per) / comp.shared_by
        return comp.count / comp.shared_by / self.instances(per, comp.level)

    # -- derived geometry, used throughout; derived here so every consumer derives it alike --
    @property
    def dac_bits(self) -> int:
        return self.role("dac").bits

    @property
    def adc_bits(self) -> int:
        return self.role("adc").bits

    @property
    def crossbars_per_array(self) -> int:
        """Crossbars that share one set of DACs, hence their inputs: one wide array (ISAAC: 1,
        PUMA's bit-sliced MVMU: 8)."""
        return self.crossbars_under(self.role("dac").level)

    @property
    def array_columns(self) -> int:
        """Weight columns of one array: its crossbars side by side."""
        return self.crossbar.columns * self.crossbars_per_array

    @property
    def array_unit_columns(self) -> int:
        return self.crossbar.unit_columns * self.crossbars_per_array

    @property
    def arrays_per_pe(self) -> int:
        return self.crossbars_under("pe") // self.crossbars_per_array

    @property
    def columns_per_adc(self) -> int:
        adc = self.role("adc")
        return self.crossbars_under(adc.level) * adc.shared_by * self.crossbar.columns // adc.count

    @property
    def read_cycle_ps(self) -> int:
        """One crossbar read cycle: the larger of the read pulse and the ADCs' conversion time."""
        adc_ns = self.columns_per_adc / self.role("adc").sample_rate_gsps
        return int(round(max(self.read_cycle_ns, adc_ns) * 1000))

    def unit_count(self, role: str, per: str) -> int:
        """Whole units filling ``role`` inside one instance of ``per`` (at least one)."""
        return max(1, math.floor(self.units(self.role(role), per) + 1e-9))

    @property
    def tiles_per_router(self) -> int:
        """Tiles one router of the concentrated mesh serves."""
        return max(1, round(1 / self.units(self.role("router"), "tile")))

    @property
    def tiles(self) -> int:
        return self.hierarchy.tiles_per_chip

    @property
    def pes_per_tile(self) -> int:
        return self.hierarchy.pes_per_tile

    @property
    def crossbars_per_chip(self) -> int:
        return self.instances("crossbar")

    @property
    def arrays_per_chip(self) -> int:
        return self.crossbars_per_chip // self.crossbars_per_array

    @property
    def pes_per_chip(self) -> int:
        return self.instances("pe")

    def slices_per_weight(self, weight_bits: int) -> int:
        """Cells per weight per array: magnitude bits (differential) or all bits (offset) / cell_bits."""
        bits = weight_bits - 1 if self.crossbar.encoding == "differential" else weight_bits
        return math.ceil(bits / self.cell.bits)

    def columns_per_weight(self, weight_bits: int) -> int:
        """Array columns one weight occupies: its slices, twice under differential encoding."""
        arrays = 2 if self.crossbar.encoding == "differential" else 1
        return arrays * self.slices_per_weight(weight_bits)

    def weights_per_array_row(self, weight_bits: int) -> int:
        """Whole weights side by side in one array row (a weight never straddles two arrays)."""
        return self.array_columns // self.columns_per_weight(weight_bits)
