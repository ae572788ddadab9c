"""Device non-idealities of the arch's cell as per-cell draws for the kernels.

:class:`DeviceModel` reads ``cell.nonideal`` (:class:`xsim.config.arch.NonIdeal`) and the cell's
figures once; :meth:`DeviceModel.cells` draws, for one conv group of one layer, what
:func:`xsim.kernels.cell_deviation` needs (level-step units, see :mod:`xsim.kernels.nonideal`):

* **programming error** (``programming.enabled``), from the write scheme of the cell:
  ``write_verify`` stops once a cell is within ``verify.tolerance`` level steps of its target, so
  its residual is uniform in ``±tolerance``; a one-shot write (``row_parallel``, ``array``) from
  the erased state ``G_min`` takes ``n = ceil(L · pulse_levels / (levels − 1))`` pulses (the write
  model's pulse count) and each adds an independent error of ``pulse_sigma`` of the conductance
  range (NeuroSim's cycle-to-cycle ``sigmaCtoC``), so ``σ = pulse_sigma · (levels − 1) · √n``
  level steps.  A cell left erased (level 0) is not pulsed and has none.  The draw is keyed by
  the cells' content (CRC-32 of the levels), so a group reprogrammed with other weights gets a
  fresh error and the same program the same one;
* **device-to-device variation** (``variation.sigma``): a relative Gaussian deviation fixed per
  cell, the same whatever is written (its stream is keyed by layer and group only);
* **read noise** (``read_noise.sigma``): per cell and read, relative to the cell's conductance
  (CrossSim's and aihwkit's state-proportional read noise); it replaces the fixed column noise;
* **on/off ratio** (``on_off.enabled``): ``G_min = 1 / r_off``, i.e. ``g_min = (levels − 1) /
  (r_off / r_on − 1)`` level steps; its current is removed exactly (see the kernels);
* **drift** (``drift.time_s`` > 0): ``(1 + time_s / t0_s) ** −ν``, ``ν = |nu_mean + nu_std ξ|``
  per cell (aihwkit's ``StateIndependentNoiseModel``, whose ``t_inference`` counts from ``t0``);
* **stuck at manufacture** (``faults.rate``): a cell is stuck with that probability, at
  ``G_max`` with ``faults.high_fraction``, else at ``G_min``; fixed per cell;
* **wear-out** (``wearout.enabled``, with per-cell write counts): a cell written more than its
  own endurance, ``endurance_cycles · exp(sigma_log · ξ)``, sticks at ``wearout.level``.

Stuck cells neither vary nor drift (assumption).  IR drop on the word and bit lines, I-V
nonlinearity and ADC non-linearity are not modelled.  Every draw comes from a named stream of
:mod:`xsim.streams` keyed by (layer, group), so results are the same on every rerun and thread
count.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from xsim import kernels, streams
from xsim.config.arch import Arch, NonIdeal


@dataclass(frozen=True)
class DeviceModel:
    """The cell's non-idealities in level-step units (see the module docstring)."""

    spec: NonIdeal
    cell_bits: int
    g_min: float
    """G_min in level steps (0 without on/off ratio)."""
    scheme: str
    tolerance: float
    pulse_levels: int
    endurance_cycles: float
    seed: int

    @classmethod
    def from_arch(cls, arch: Arch, seed: int) -> DeviceModel:
        cell = arch.cell
        spec = cell.nonideal
        top = cell.levels - 1
        g_min = top / (cell.r_off_kohm / cell.r_on_kohm - 1.0) if spec.on_off.enabled else 0.0
        return cls(spec=spec, cell_bits=cell.bits, g_min=g_min, scheme=cell.write.scheme,
                   tolerance=cell.write.verify.tolerance, pulse_levels=cell.write.pulse_levels,
                   endurance_cycles=cell.endurance_cycles, seed=int(seed))

    @property
    def enabled(self) -> bool:
        return self.spec.enabled

    @property
    def read_sigma(self) -> float:
        return self.spec.read_noise.sigma

    def program_sigma(self) -> np.ndarray:
        """σ of the one-shot programming error per level (level steps), ``float64[levels]``."""
        top = (1 << self.cell_bits) - 1
        pulses = np.ceil(np.arange(top + 1) * self.pulse_levels / top)
        return self.spec.programming.pulse_sigma * top * np.sqrt(pulses)

    def cells(self, levels: np.ndarray, *, layer: int, group: int,
              writes: np.ndarray | None = None) -> kernels.CellDeviation:
        """Per-cell deviations of one layer group's ``levels`` (:func:`xsim.kernels.stored_levels`);
        ``writes``: per-cell write counts of the same shape (wear-out)."""
        spec, shape = self.spec, levels.shape
        program = variation = drift = stuck = None
        if spec.programming.enabled:
            key = zlib.crc32(np.ascontiguousarray(levels).tobytes())
            rng = streams.rng(self.seed, "device.program", layer, group, key)
            if self.scheme == "write_verify":
                program = rng.uniform(-self.tolerance, self.tolerance, shape)
            else:
                program = self.program_sigma()[levels] * rng.standard_normal(shape)
            program[levels == 0] = 0.0
        if spec.variation.sigma > 0:
            rng = streams.rng(self.seed, "device.variation", layer, group)
            variation = spec.variation.sigma * rng.standard_normal(shape)
        if spec.drift.time_s > 0:
            rng = streams.rng(self.seed, "device.drift", layer, group)
            nu = np.abs(spec.drift.nu_mean + spec.drift.nu_std * rng.standard_normal(shape))
            drift = (1.0 + spec.drift.time_s / spec.drift.t0_s) ** -nu
        if spec.faults.rate > 0:
            rng = streams.rng(self.seed, "device.faults", layer, group)
            u = rng.random(shape)
            stuck = np.where(u < spec.faults.rate * spec.faults.high_fraction, 2,
                             np.where(u < spec.faults.rate, 1, 0)).astype(np.int8)
        if spec.wearout.enabled and writes is not None:
            worn = self.worn(writes, layer=layer, group=group)
            level = 2 if spec.wearout.level == "high" else 1
            stuck = np.where(worn, np.int8(level), np.zeros(shape, np.int8) if stuck is None else stuck)
            stuck = stuck.astype(np.int8)
        return kernels.cell_deviation(levels, cell_bits=self.cell_bits, g_min=self.g_min,
                                      program=program, variation=variation, drift=drift,
                                      stuck=stuck, read_sigma=spec.read_noise.sigma)

    def endurance(self, shape: tuple[int, ...], *, layer: int, group: int) -> np.ndarray:
        """Each cell's endurance in writes (lognormal around ``endurance_cycles``)."""
        rng = streams.rng(self.seed, "device.endurance", layer, group)
        return self.endurance_cycles * np.exp(self.spec.wearout.sigma_log * rng.standard_normal(shape))

    def worn(self, writes: np.ndarray, *, layer: int, group: int) -> np.ndarray:
        """Cells written more times than their endurance."""
        writes = np.asarray(writes)
        return writes > self.endurance(writes.shape, layer=layer, group=group)

    def summary(self) -> dict:
        """Every non-ideality with its parameters and whether it is on (``summary.json``)."""
        spec = self.spec
        return {
            "enabled": self.enabled,
            "programming": {**spec.programming.model_dump(), "scheme": self.scheme,
                            "verify_tolerance_levels": self.tolerance,
                            "sigma_levels_by_level": [float(v) for v in self.program_sigma()]
                            if self.scheme != "write_verify" else None},
            "variation": spec.variation.model_dump(),
            "read_noise": spec.read_noise.model_dump(),
            "on_off": {**spec.on_off.model_dump(), "g_min_levels": self.g_min},
            "drift": spec.drift.model_dump(),
            "faults": spec.faults.model_dump(),
            "wearout": {**spec.wearout.model_dump(), "endurance_cycles": self.endurance_cycles},
            "not_modelled": ["IR drop", "I-V nonlinearity", "ADC nonlinearity"],
            "seed": self.seed,
        }


def cell_layout(counts: np.ndarray, *, rows: int, arrays: int, slices: int) -> np.ndarray:
    """(K, N·cpw) per-cell values in :mod:`xsim.mta.cells`' layout → ``[R, A, S, rows, N]``.

    Weight ``n`` occupies columns ``[n·cpw, (n+1)·cpw)``, array ``a``'s slice ``s`` at
    ``a·slices + s`` (cpw = arrays · slices); rows past K are 0.
    """
    counts = np.asarray(counts)
    k, cols = counts.shape
    cpw = arrays * slices
    if cols % cpw:
        raise ValueError(f"{cols} columns are not a multiple of {cpw} cells per weight")
    n = cols // cpw
    blocks = math.ceil(k / rows)
    out = np.zeros((blocks * rows, n, arrays, slices), counts.dtype)
    out[:k] = counts.reshape(k, n, arrays, slices)
    return np.ascontiguousarray(out.reshape(blocks, rows, n, arrays, slices).transpose(0, 3, 4, 1, 2))
