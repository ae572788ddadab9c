"""The cost of writing a ReRAM cell, from device physics (NeuroSim V2.1's model), and cell presets.

A cell of ``bits`` bits has ``L = 2**bits`` conductance levels, linear in conductance between
``G_min = 1 / r_off`` and ``G_max = 1 / r_on``. A pulse moves a cell's conductance by
``dG_pulse = (G_max - G_min) / pulse_levels`` (NeuroSim: ``(maxConductance - minConductance) /
maxNumLevelLTP``). Writing a cell from level a to b:

* is a SET (conductance up, ``set_voltage_v``) or a RESET (down, ``reset_voltage_v``) by the sign
  of the change; a cell whose level does not change is not pulsed;
* takes ``n = ceil(|G_b - G_a| / dG_pulse)`` pulses (``row_parallel``); under ``write_verify`` the
  loop stops once the cell is within ``tolerance`` of a level step of its target, so
  ``n = ceil((|G_b - G_a| - tolerance * dG_level) / dG_pulse)``, at least 1 and at most
  ``max_pulses``, each followed by a verify read;
* costs ``V^2 * G_avg * t_pulse`` per pulse in the cell, with ``1 / G_avg = (1/G_a + 1/G_b) / 2``
  (NeuroSim's ``V^2 / R_avg * t``), so ``n * V^2 * G_avg * t_pulse`` in all;
* charges its bit line, ``C_bl = rows * c_cell``, to ``V`` at every pulse (``C_bl * V^2``), and the
  row's word line, ``C_wl = columns * c_cell``, is charged at every pulse the row is driven (at the
  larger of the two write voltages); ``c_cell = line_capacitance_ff_per_cell``.

The ``array`` scheme is PUMAsim's whole-array figure instead: a crossbar with any cell to write
takes ``array_write_ns`` at ``array_write_power_mw``, and each written cell costs that energy
shared over the crossbar's cells (an array of several crossbars writes them side by side, at
their summed power).

Parallelism comes from the hardware: a crossbar writes ``reprogramming.write_drivers`` columns at
once, and the chip programs as many crossbars at once as its ``write_power_budget_mw`` allows
at the worst case (every driver pulsing a cell at ``G_max``, lines charging every pulse):
:func:`crossbars_in_parallel`.

Presets (:data:`PRESETS`) carry a cell's figures with their sources; an arch file's ``cell.preset``
fills every key the file leaves out. :func:`write_figures` is the ``write`` block of
``xsim info --json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Preset:
    """A cell's figures (the keys of an arch file's ``cell`` section) and where they come from."""

    name: str
    source: str
    figures: dict
    assumptions: tuple[str, ...] = ()
    """keys whose value no source gives"""


_V_NEUROSIM = math.sqrt(4.0**2 + 4.0**2)  # NeuroSim's V_w from its 4 V LTP and LTD pulses
_VERIFY_ISAAC = {"read_ns": 100, "read_energy_pj": 1.564, "tolerance": 0.0, "max_pulses": 1000}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("cimloop_isaac",
           "CiMLoop's ISAAC/RAELLA ReRAM cell: 1.33 kOhm / 20 kOhm, 2 V 40 ns writes, 0.2 V 1 ns "
           "reads; endurance of multi-level (4-level) HfOx cells ~1e6 (shared/REFERENCES.md); "
           "bit lines as NeuroSim's (0.0256 fF per cell)",
           {"r_on_kohm": 1.33, "r_off_kohm": 20, "read_voltage_v": 0.2, "read_pulse_ns": 1,
            "endurance_cycles": 1.0e6,
            "write": {"scheme": "row_parallel", "set_voltage_v": 2, "reset_voltage_v": 2,
                      "pulse_ns": 40, "pulse_levels": 3, "line_capacitance_ff_per_cell": 0.0256,
                      "verify": _VERIFY_ISAAC}},
           ("write.pulse_levels",)),
    Preset("neurosim_v2_1",
           "NeuroSim V2.1's last ReRAM default (Param.cpp at b71b76e, 1T1R): 100 kOhm / 1 MOhm, 32 "
           "pulses from G_min to G_max, 4 V LTP and LTD (V_w = sqrt(4^2 + 4^2) = 5.657 V, "
           "ProcessingUnit.cpp), 50 ns pulses; bit lines 0.2 fF/um x a 4F pitch at 32 nm "
           "(SubArray.cpp) = 0.0256 fF per cell",
           {"r_on_kohm": 100, "r_off_kohm": 1000, "read_voltage_v": 0.5, "read_pulse_ns": 2,
            "endurance_cycles": 1.0e6,
            "write": {"scheme": "row_parallel", "set_voltage_v": _V_NEUROSIM, "reset_voltage_v": _V_NEUROSIM,
                      "pulse_ns": 50, "pulse_levels": 32, "line_capacitance_ff_per_cell": 0.0256,
                      "verify": _VERIFY_ISAAC}},
           ("read_voltage_v", "read_pulse_ns", "endurance_cycles")),
    Preset("nvsim_rram",
           "NVSim sample_RRAM.cell: 100 kOhm / 10 MOhm, 2 V 10 ns SET and RESET (0.6 pJ each in "
           "NVSim), 0.4 V reads",
           {"r_on_kohm": 100, "r_off_kohm": 10000, "read_voltage_v": 0.4, "read_pulse_ns": 10,
            "endurance_cycles": 1.0e6,
            "write": {"scheme": "row_parallel", "set_voltage_v": 2, "reset_voltage_v": 2,
                      "pulse_ns": 10, "pulse_levels": 3, "line_capacitance_ff_per_cell": 0.0256,
                      "verify": _VERIFY_ISAAC}},
           ("endurance_cycles", "write.pulse_levels")),
    Preset("prime",
           "PRIME (Chi et al., ISCA 2016) as secondary sources quote it: 1 kOhm / 20 kOhm, 2 V "
           "SET/RESET, 41.4 ns writes (the paper's body was not checked)",
           {"r_on_kohm": 1, "r_off_kohm": 20, "read_voltage_v": 0.2, "read_pulse_ns": 1,
            "endurance_cycles": 1.0e6,
            "write": {"scheme": "row_parallel", "set_voltage_v": 2, "reset_voltage_v": 2,
                      "pulse_ns": 41.4, "pulse_levels": 3, "line_capacitance_ff_per_cell": 0.0256,
                      "verify": _VERIFY_ISAAC}},
           ("read_voltage_v", "read_pulse_ns", "endurance_cycles", "write.pulse_levels")),
    Preset("pumasim_array",
           "PUMAsim constants: a whole 128x128 array written in 10,968.75 ns at 2.06 mW "
           "(1.38 pJ per cell; constants.py 116-121); the resistances and reads of CiMLoop's ISAAC "
           "cell",
           {"r_on_kohm": 1.33, "r_off_kohm": 20, "read_voltage_v": 0.2, "read_pulse_ns": 1,
            "endurance_cycles": 1.0e6,
            "write": {"scheme": "array", "set_voltage_v": 2, "reset_voltage_v": 2,
                      "pulse_ns": 40, "pulse_levels": 3, "array_write_ns": 10968.75,
                      "array_write_power_mw": 2.06, "verify": _VERIFY_ISAAC}},
           ("endurance_cycles",)),
)}


CONTROLLER_ASSUMPTIONS = (
    "reprogramming.write_power_budget_mw",  # no simulator or paper publishes a chip write budget
    "reprogramming.write_drivers",          # NeuroSim drives every column; ISAAC/PUMA give none
)


def assumptions(arch) -> dict:
    """Which write parameters no source gives: the preset's own and the controller's."""
    preset = PRESETS.get(arch.cell.preset) if arch.cell.preset else None
    return {"preset": arch.cell.preset, "preset_source": preset.source if preset else None,
            "assumed": [f"cell.{k}" for k in (preset.assumptions if preset else ())]
            + list(CONTROLLER_ASSUMPTIONS)}


@dataclass(frozen=True)
class CellTables:
    """One cell's write over every (old level, new level) pair."""

    pulses: np.ndarray
    energy_pj: np.ndarray
    line_pj: np.ndarray
    phase: np.ndarray
    wordline_pj: float
    pulse_ps: int
    verify_ps: int
    array_ps: int


def conductances_s(cell) -> np.ndarray:
    """The cell's levels in siemens, linear in conductance from 1/r_off to 1/r_on."""
    return np.linspace(1.0 / (cell.r_off_kohm * 1e3), 1.0 / (cell.r_on_kohm * 1e3), cell.levels)


def _tables(cell, rows: int, columns: int, crossbar_columns: int) -> CellTables:
    w = cell.write
    g = conductances_s(cell)
    span = g[-1] - g[0]
    d_pulse = span / w.pulse_levels
    d_level = span / (cell.levels - 1)
    ga, gb = np.meshgrid(g, g, indexing="ij")
    change = np.abs(gb - ga)
    moved = ~np.eye(cell.levels, dtype=bool)
    phase = np.sign(gb - ga).astype(np.int8)
    volts = np.where(phase > 0, w.set_voltage_v, w.reset_voltage_v)
    t_s = w.pulse_ns * 1e-9
    c_cell = w.line_capacitance_ff_per_cell * 1e-15
    v_max = max(w.set_voltage_v, w.reset_voltage_v)
    if w.scheme == "array":
        pulses = moved.astype(np.int64)
        energy = moved * (w.array_write_power_mw * 1e-3 * w.array_write_ns * 1e-9
                          / (rows * crossbar_columns) * 1e12)
        line = np.zeros_like(energy)
        wordline_pj = 0.0
    else:
        need = change if w.scheme == "row_parallel" else change - w.verify.tolerance * d_level
        pulses = np.where(moved, np.maximum(1, np.ceil(need / d_pulse - 1e-9)), 0).astype(np.int64)
        if w.scheme == "write_verify":
            pulses = np.minimum(pulses, w.verify.max_pulses)
        g_avg = np.where(moved, 2.0 / (1.0 / ga + 1.0 / gb), 0.0)
        energy = pulses * volts**2 * g_avg * t_s * 1e12
        line = pulses * rows * c_cell * volts**2 * 1e12
        wordline_pj = columns * c_cell * v_max**2 * 1e12
    return CellTables(pulses, energy, line, phase, wordline_pj, int(round(w.pulse_ns * 1000)),
                      int(round(w.verify.read_ns * 1000)),
                      int(round((w.array_write_ns or 0.0) * 1000)))


def cell_tables(arch) -> CellTables:
    """The write tables of the arch's cell on its arrays (the unit the controller writes)."""
    return _cached_tables(arch.cell, arch.crossbar.rows, arch.array_columns, arch.crossbar.columns)


@lru_cache(maxsize=64)
def _cached_tables(cell, rows: int, columns: int, crossbar_columns: int) -> CellTables:
    return _tables(cell, rows, columns, crossbar_columns)


def crossbar_write_power_mw(arch) -> float:
    """Worst-case power of one crossbar programming: every write driver pulsing a cell at G_max
    and charging its bit line each pulse, and the row's word line (``array``: the array figure)."""
    w = arch.cell.write
    if w.scheme == "array":
        return w.array_write_power_mw * arch.crossbars_per_array
    v = max(w.set_voltage_v, w.reset_voltage_v)
    g_max = 1.0 / (arch.cell.r_on_kohm * 1e3)
    c_cell = w.line_capacitance_ff_per_cell * 1e-15
    t_s = w.pulse_ns * 1e-9
    rows, columns = arch.crossbar.rows, arch.array_columns
    drivers = min(arch.reprogramming.write_drivers, columns)
    watts = drivers * (v**2 * g_max + rows * c_cell * v**2 / t_s) + columns * c_cell * v**2 / t_s
    return watts * 1e3


def crossbars_in_parallel(arch) -> int:
    """Crossbars (arrays) the chip programs at once within its write-power budget (at least 1)."""
    n = math.floor(arch.reprogramming.write_power_budget_mw / crossbar_write_power_mw(arch) + 1e-9)
    return max(1, min(n, arch.arrays_per_chip))


def write_figures(arch) -> dict:
    """The write model's headline numbers (``xsim info --json``'s ``write`` block)."""
    cell, w = arch.cell, arch.cell.write
    g = conductances_s(cell)
    g_mid = (g[0] + g[-1]) / 2
    t = cell_tables(arch)
    moved = ~np.eye(cell.levels, dtype=bool)
    per_cell = (t.energy_pj + t.line_pj)[moved].mean()
    return {
        "scheme": w.scheme,
        "preset": cell.preset,
        "pulse_ns": w.pulse_ns,
        # At the middle conductance; the array scheme has no pulses of its own.
        "pulse_energy_pj_set": (None if w.scheme == "array"
                                else w.set_voltage_v**2 * g_mid * w.pulse_ns * 1e-9 * 1e12),
        "pulse_energy_pj_reset": (None if w.scheme == "array"
                                  else w.reset_voltage_v**2 * g_mid * w.pulse_ns * 1e-9 * 1e12),
        "pulses_per_level": None if w.scheme == "array" else w.pulse_levels / (cell.levels - 1),
        "crossbar_write_power_mw": crossbar_write_power_mw(arch),
        "write_drivers_per_crossbar": arch.reprogramming.write_drivers,
        "crossbars_in_parallel": crossbars_in_parallel(arch),
        "cell_write_energy_pj_mean": float(per_cell),
        "verify_read_energy_pj": w.verify.read_energy_pj,
    }
