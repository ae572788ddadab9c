"""Bit-accurate model of bit-sliced ReRAM crossbar matrix-vector products.

What is modelled (ISAAC-class tile, one MVM ``x @ w``):

* **Crossbars.** The K rows of ``w`` are split into row blocks of ``rows`` rows
  (the last one may be short); each row block is one crossbar per column block.
* **Weights** are signed ``weight_bits``-bit integers, stored ``cell_bits`` per
  cell (slice ``s`` holds bits ``s*cell_bits ..``).

  - ``differential``: sign-magnitude; a positive array holds the slices of
    ``max(w, 0)`` and a negative array those of ``max(-w, 0)``; each array's
    column sums go through their own ADC and the negative array's reconstructed
    value is subtracted digitally.  Magnitudes have ``weight_bits - 1`` bits, so
    weights must satisfy ``|w| <= 2**(weight_bits-1) - 1`` (the two's-complement
    minimum ``-2**(weight_bits-1)`` has no sign-magnitude form and is rejected);
    ``ceil((weight_bits-1)/cell_bits)`` slices.
  - ``offset``: the crossbar stores ``w + 2**(weight_bits-1)`` (unsigned,
    ``ceil(weight_bits/cell_bits)`` slices), so any two's-complement weight in
    ``[-2**(weight_bits-1), 2**(weight_bits-1) - 1]`` fits.  The bias term
    ``2**(weight_bits-1) * sum_k x_k`` is removed **exactly, in the digital input
    path**: the input sum of each row block is formed by an adder on the
    digital inputs (which the tile holds anyway) and subtracted from that
    crossbar's partial sum.  We chose this over ISAAC's unit column through the
    ADC because it costs no crossbar column nor ADC conversion, keeps lossless
    configurations exact for every ``adc_bits`` (a unit column saturates its ADC
    as soon as ``rows * (2**dac_bits - 1)`` exceeds the ADC range), and keeps read
    noise and ADC error on the weight columns only.
* **Inputs** are ``input_bits``-bit integers, unsigned (``0 .. 2**input_bits-1``)
  or, with ``signed_inputs``, two's complement.  They are cut into
  ``T = ceil(input_bits/dac_bits)`` chunks ``x_t = (x >> t*dac_bits) &
  (2**dac_bits - 1)`` (the top chunk has the remaining bits) driven one per
  analogue phase.  With signed inputs the top chunk is negative:
  ``x_top = x >> (T-1)*dac_bits`` (arithmetic shift, in ``[-2**(w-1),
  2**(w-1) - 1]`` for its width ``w``).  A DAC drives magnitudes only, so the top
  chunk takes two phases, its non-negative part ``max(x_top, 0)`` (omitted when
  ``w == 1``, where it is always 0, e.g. with 1-bit DACs) and its negative part
  ``max(-x_top, 0)``, whose reconstructed value is subtracted.  Every phase's
  value is at most ``2**dac_bits - 1``.
* **Column sums.** For each (row block, phase, array, slice) every column's
  analogue sum ``P = sum_rows x_phase * w_slice`` (an integer) optionally gets
  Gaussian read noise ``N(0, noise_sigma**2)`` and is rounded half up,
  ``floor(P + noise + 1/2)``; the noise stream is described in ``_noise.py``.
* **ADC.** ``L = 2**adc_bits - 1``.

  - ``clip``: code ``min(max(P, 0), L)``; its value is the code.
  - ``scale``: full scale ``F = adc_range`` (default the largest possible column
    sum ``rows * (2**cell_bits - 1) * (2**dac_bits - 1)``), step ``F / L``; code
    ``min(max(floor(P * (L/F) + 1/2), 0), L)`` (round to nearest, ``L/F``
    evaluated once in float64).  The reconstructed value ``code * F/L`` is mapped
    to the nearest integer, ``floor(code * (F/L) + 1/2)`` (``F/L`` in float64):
    the digital back-end holds a code-to-integer table, so the shift-and-add is
    integer.  Hence the result is exact whenever ``L >= F >= max column sum``
    (e.g. ``adc_range = L``), and grouped partial sums add up to the total.
* **Shift-and-add.** ``Y = sum_r sum_phase sum_array sum_s sign * value *
  2**(phase shift + s*cell_bits)``, minus the offset term per row block.

When the ADC covers ``rows * (2**cell_bits - 1) * (2**dac_bits - 1)`` losslessly
and there is no noise, ``Y == x @ w`` exactly.  More finely, a column whose stored levels
bound every one of its column sums within the ADC's range gives its exact dot product whatever
the input: :func:`crossbar_mvm_packed` computes such columns as an exact integer product on
BLAS and runs the bit-sliced kernels on the others only (``lossless.py``; ``shortcut=False``
runs the kernels on every column).  The bits are the same either way.

Stored-value non-idealities (programming error, variation, drift, stuck cells, a finite on/off
ratio, state-dependent read noise) come in as a per-cell :class:`~.nonideal.CellDeviation`
(``cells=``); they add ``sum_k x_k * E_k`` to every column sum before the rounding and the ADC
(``nonideal.py``), in a kernel of their own (``_mvm.MVM_NONIDEAL``): without ``cells`` the
kernels above run untouched.

Kernels: 128-row crossbars of 2-bit cells with 1-bit DACs, a clip ADC, no noise
and inputs of at most 8 bits run a specialised kernel (``_mvm.MVM_128X2``) that reads
the inputs' bytes in place (``uint8``/``int8`` arrays are not copied; wider integer
types are narrowed once); everything else runs the generic one
(``_mvm.MVM_GENERIC``, on int64 inputs).  Both give the same bits, in the 256- or
512-bit variant the host's CPU features select (``_target.py``).

Read noise is indexed per conversion ``(b, r, p, a, s, n)`` -- sample, row block,
phase (in the order chunk 0, 1, .., top chunk's non-negative part, negative
part), array (positive, negative), slice, column -- as ``index = ((((b*R + r)*NP
+ p)*A + a)*S + s)*N + n``, where ``R, NP, A, S, N`` are the numbers of row
blocks, phases, arrays, slices and columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numba import get_num_threads

from . import _mvm, lossless
from ._noise import noise_key
from ._target import vector_width

ENCODINGS = ("differential", "offset")
ADC_MODES = ("clip", "scale")
_TILE_B = 32
_TILE_N = 64


@dataclass(frozen=True, eq=False)
class PackedWeights:
    """Cell bit-planes of a weight matrix, packed once for many MVMs.

    ``planes`` is ``uint64[R, A, S, cell_bits, ceil(rows/64), N]``: row block,
    array (differential: positive, negative; offset: the biased array), slice,
    cell bit, 64-row word, column.  ``stored`` holds the same weights as floats, with their
    bounds, for the exact product of the columns that cannot clip (``lossless.py``), and
    :meth:`columns_for` caches its split of the columns on the object: only
    :func:`pack_weights` builds one, and neither its planes nor ``stored`` are changed after
    (other weights are packed anew; ``dataclasses.replace`` of the planes alone would leave
    ``stored`` describing the old ones).
    """

    planes: np.ndarray
    k: int
    n: int
    rows: int
    cell_bits: int
    weight_bits: int
    encoding: str
    stored: lossless.StoredWeights

    @property
    def n_blocks(self) -> int:
        """Number of row blocks (crossbars per column)."""
        return self.planes.shape[0]

    @property
    def n_slices(self) -> int:
        """Number of weight slices per weight."""
        return self.planes.shape[2]

    @property
    def bias(self) -> int:
        """The stored offset of the ``offset`` encoding (0 for ``differential``)."""
        return 0 if self.encoding == "differential" else 1 << (self.weight_bits - 1)

    @cached_property
    def _split(self) -> dict:
        return {}

    def columns_for(self, peak_limit: int) -> _Split:
        """The columns whose peak is at most ``peak_limit`` and the others (cached per limit)."""
        split = self._split.get(peak_limit)
        if split is None:
            stored = self.stored
            ok = stored.peaks <= peak_limit
            cols, rest = np.flatnonzero(ok), np.flatnonzero(~ok)
            if rest.size == 0:
                split = _Split(cols, stored.weights, stored.block_l1, rest, None)
            elif cols.size == 0:
                split = _Split(cols, None, None, rest, self.planes)
            else:
                split = _Split(cols, np.ascontiguousarray(stored.weights[:, cols]),
                               np.ascontiguousarray(stored.block_l1[:, cols]), rest,
                               np.ascontiguousarray(self.planes[..., rest]))
            self._split[peak_limit] = split
        return split


@dataclass(frozen=True, eq=False)
class _Split:
    """Columns of one packed matrix: ``lossless`` (their float weights and row blocks' L1
    norms) and ``rest`` (their planes, for the bit-sliced kernels)."""

    lossless: np.ndarray
    weights: np.ndarray | None
    block_l1: np.ndarray | None
    rest: np.ndarray
    rest_planes: np.ndarray | None


def _check_int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return int(value)


def _check_matrix(name, arr):
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must have an integer dtype, got {arr.dtype}")
    if arr.dtype == np.uint64:
        if arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise ValueError(f"{name} has values beyond int64")
        arr = arr.astype(np.int64)
    return np.ascontiguousarray(arr)


def _check_range(name, arr, low, high, what):
    info = np.iinfo(arr.dtype)
    if low <= info.min and info.max <= high:
        return  # the dtype cannot hold a value out of range: no pass over the data
    if arr.size and (int(arr.min()) < low or int(arr.max()) > high):
        raise ValueError(
            f"{name} values must be in [{low}, {high}] ({what}), "
            f"got [{int(arr.min())}, {int(arr.max())}]"
        )


def n_slices(weight_bits: int, cell_bits: int, encoding: str) -> int:
    """Number of ``cell_bits`` slices per weight under ``encoding``."""
    stored = weight_bits - 1 if encoding == "differential" else weight_bits
    return -(-stored // cell_bits)


def pack_weights(w, *, rows: int, cell_bits: int, weight_bits: int,
                 encoding: str = "differential") -> PackedWeights:
    """Pack signed integer weights ``w`` (K x N) into crossbar cell bit-planes.

    The planes take ``A * n_slices * cell_bits`` bits per weight (padded to 64
    rows per row block), e.g. 2 bytes per 8-bit weight with 2-bit cells under the
    differential encoding; beside them ``stored`` keeps the weights as float32 (4 bytes
    each, float64 from 2**24) and per-column bounds, for the exact product of the columns
    that cannot clip (``lossless.py``).
    """
    rows = _check_int("rows", rows, 1, 1 << 20)
    cell_bits = _check_int("cell_bits", cell_bits, 1, 8)
    weight_bits = _check_int("weight_bits", weight_bits, 2, 32)
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    w = _check_matrix("w", w)
    half = 1 << (weight_bits - 1)
    if encoding == "differential":
        _check_range("w", w, -(half - 1), half - 1,
                     f"sign-magnitude with {weight_bits - 1} magnitude bits")
        n_arrays, bias = 2, 0
    else:
        _check_range("w", w, -half, half - 1, f"{weight_bits}-bit two's complement")
        n_arrays, bias = 1, half
    k, n = w.shape
    if k == 0 or n == 0:
        raise ValueError(f"w must be non-empty, got shape {w.shape}")
    n_blocks = -(-k // rows)
    planes = np.empty((n_blocks, n_arrays, n_slices(weight_bits, cell_bits, encoding),
                       cell_bits, -(-rows // 64), n), np.uint64)
    _mvm.pack_weight_planes(w, rows, cell_bits, bias, planes)
    stored = lossless.stored_weights(w, rows, cell_bits, planes.shape[2], bias, n_arrays)
    return PackedWeights(planes, k, n, rows, cell_bits, weight_bits, encoding, stored)


def input_phases(input_bits: int, dac_bits: int, signed_inputs: bool):
    """Analogue input phases as int64 arrays ``(kind, shift, nplanes, plane0, sign)``.

    See ``_mvm.py`` for the meaning of each kind; ``shift`` is both the phase's
    position in the input and its shift in the shift-and-add.
    """
    n_chunks = -(-input_bits // dac_bits)
    phases = []
    for t in range(n_chunks):
        shift = t * dac_bits
        width = min(dac_bits, input_bits - shift)
        if signed_inputs and t == n_chunks - 1:
            if width > 1:
                phases.append((_mvm.TOP_POS, shift, width - 1, 1))
            phases.append((_mvm.TOP_NEG, shift, width, -1))
        else:
            phases.append((_mvm.CHUNK, shift, width, 1))
    kind, shift, nplanes, sign = (np.array(col, np.int64) for col in zip(*phases))
    plane0 = np.concatenate(([0], np.cumsum(nplanes)[:-1])).astype(np.int64)
    return kind, shift, nplanes, plane0, sign


def crossbar_mvm_packed(x, packed: PackedWeights, *, dac_bits: int, input_bits: int,
                        adc_bits: int, adc_mode: str = "clip", adc_range=None,
                        signed_inputs: bool = False, noise_sigma: float = 0.0,
                        seed: int = 0, group_rows=None, cells=None,
                        shortcut: bool = True) -> np.ndarray:
    """Hardware result of ``x @ w`` for weights packed by :func:`pack_weights`.

    ``x`` is an integer (batch x K) array.  Returns int64 (batch x N), or with
    ``group_rows`` (a multiple of ``rows``) the partial sums of each group of
    consecutive row blocks, int64 (batch x ceil(K/group_rows) x N), whose sum
    over axis 1 is the ungrouped result.  ``cells`` (a
    :class:`~.nonideal.CellDeviation` of the same weights) adds the cells' stored-value
    deviations and state-dependent read noise (``nonideal.py``); with state-dependent read
    noise ``noise_sigma`` must be 0, as that noise replaces the fixed one.

    Columns whose ADC cannot clip (``lossless.py``) are computed as the exact integer product,
    the bits the bit-sliced kernels give them; ``shortcut=False`` runs the kernels on every
    column (the benchmarks of the kernels, and tests holding both paths to the reference).
    """
    if not isinstance(packed, PackedWeights):
        raise ValueError("packed must come from pack_weights")
    dac_bits = _check_int("dac_bits", dac_bits, 1, 8)
    input_bits = _check_int("input_bits", input_bits, 1, 32)
    adc_bits = _check_int("adc_bits", adc_bits, 1, 30)
    if adc_mode not in ADC_MODES:
        raise ValueError(f"adc_mode must be one of {ADC_MODES}, got {adc_mode!r}")
    noise_sigma = float(noise_sigma)
    if not noise_sigma >= 0.0 or not np.isfinite(noise_sigma):
        raise ValueError(f"noise_sigma must be finite and >= 0, got {noise_sigma}")
    seed = _check_int("seed", seed, -(1 << 63), (1 << 64) - 1)
    rows, cell_bits = packed.rows, packed.cell_bits
    if input_bits + packed.weight_bits > 56:
        raise ValueError("input_bits + weight_bits must be <= 56 to stay within int64")
    code_max = (1 << adc_bits) - 1
    full_scale = rows * ((1 << cell_bits) - 1) * ((1 << dac_bits) - 1)
    if adc_range is None:
        adc_range = full_scale
    elif adc_mode == "clip":
        raise ValueError("adc_range applies to adc_mode='scale' only")
    adc_range = float(adc_range)
    if not adc_range > 0.0 or not np.isfinite(adc_range):
        raise ValueError(f"adc_range must be finite and > 0, got {adc_range}")
    n_blocks = packed.n_blocks
    if group_rows is None:
        blocks_per_group = n_blocks
    else:
        group_rows = _check_int("group_rows", group_rows, 1, 1 << 40)
        if group_rows % rows:
            raise ValueError(f"group_rows ({group_rows}) must be a multiple of rows ({rows})")
        blocks_per_group = group_rows // rows
    x = _check_matrix("x", x)
    if x.shape[1] != packed.k:
        raise ValueError(f"x has {x.shape[1]} columns but the weights have {packed.k} rows")
    if signed_inputs:
        _check_range("x", x, -(1 << (input_bits - 1)), (1 << (input_bits - 1)) - 1,
                     f"{input_bits}-bit two's complement")
    else:
        _check_range("x", x, 0, (1 << input_bits) - 1, f"{input_bits}-bit unsigned")
    n_groups = -(-n_blocks // blocks_per_group)
    out = np.zeros((x.shape[0], n_groups, packed.n), np.int64)
    if x.shape[0] == 0:
        return out if group_rows is not None else out[:, 0, :]
    planes, target, split = packed.planes, out, None
    if shortcut and cells is None and noise_sigma == 0.0 \
            and (adc_mode == "clip" or adc_range == code_max):
        split = packed.columns_for(code_max // ((1 << dac_bits) - 1))
        planes, target = _lossless_columns(x, packed, split, out,
                                           _input_max(input_bits, signed_inputs), blocks_per_group)
        if planes is None:
            return out if group_rows is not None else out[:, 0, :]
    _bit_sliced(x, packed, planes, target, dac_bits=dac_bits, input_bits=input_bits,
                code_max=code_max, adc_mode=adc_mode, adc_range=adc_range,
                signed_inputs=signed_inputs, noise_sigma=noise_sigma, seed=seed,
                blocks_per_group=blocks_per_group, cells=cells)
    if target is not out:
        out[:, :, split.rest] = target
    return out if group_rows is not None else out[:, 0, :]


def _input_max(input_bits, signed_inputs):
    """The largest input magnitude of ``input_bits``-bit inputs."""
    return 1 << (input_bits - 1) if signed_inputs else (1 << input_bits) - 1


def _lossless_columns(x, packed, split, out, x_max, blocks_per_group):
    """Write the exact product of ``split``'s columns that cannot clip into ``out``; return the
    planes and output array the bit-sliced kernels still have to fill (``(None, None)`` when
    none; ``out`` itself when they compute every column)."""
    if split.lossless.size == 0:
        return packed.planes, out
    n_blocks, n_groups = packed.n_blocks, out.shape[1]
    parts = [lossless.chunks(split.block_l1, g * blocks_per_group,
                             min(n_blocks, (g + 1) * blocks_per_group), x_max, packed.rows, packed.k)
             for g in range(n_groups)]
    if any(p is None for p in parts):
        return packed.planes, out  # beyond float64's integers: the kernels compute every column
    every = split.rest.size == 0
    for g, part in enumerate(parts):
        y = lossless.exact_product(x, split.weights, part)
        if every:
            out[:, g, :] = y
        else:
            out[:, g, split.lossless] = y
    if every:
        return None, None
    return split.rest_planes, np.zeros((out.shape[0], n_groups, split.rest.size), np.int64)


def _bit_sliced(x, packed, planes, out, *, dac_bits, input_bits, code_max, adc_mode, adc_range,
                signed_inputs, noise_sigma, seed, blocks_per_group, cells):
    """The bit-sliced kernels on ``planes`` (every column of ``packed``, or some of them) into
    ``out`` (zeroed), in the host's vector width."""
    rows, cell_bits = packed.rows, packed.cell_bits
    kind, shift, nplanes, plane0, sign = input_phases(input_bits, dac_bits, bool(signed_inputs))
    arr_sign = np.array([1, -1] if packed.encoding == "differential" else [1], np.int64)
    bias = packed.bias
    key = np.uint64(noise_key(np.uint64(seed % (1 << 64))))
    width = vector_width()
    if cells is not None:
        dev, gsq, read_sigma = _check_cells(cells, packed, noise_sigma)
        _mvm.MVM_NONIDEAL[width](
            x.astype(np.int64, copy=False), planes, dev, gsq, out, rows, cell_bits,
            blocks_per_group, kind, shift, nplanes, plane0, sign, arr_sign,
            _mvm.CLIP if adc_mode == "clip" else _mvm.SCALE, code_max, code_max / adc_range,
            adc_range / code_max, noise_sigma, read_sigma, key, bias, _batch_tile(x.shape[0]))
        return
    if rows == 128 and cell_bits == 2 and dac_bits == 1 and adc_mode == "clip" \
            and noise_sigma == 0.0 and input_bits <= 8:
        _mvm.MVM_128X2[width](_input_bytes(x, signed_inputs), planes, out,
                              blocks_per_group, input_bits, bool(signed_inputs), code_max, bias,
                              _batch_tile(x.shape[0]))
        return
    _mvm.MVM_GENERIC[width](
        x.astype(np.int64, copy=False), planes, out, rows, cell_bits, blocks_per_group,
        kind, shift, nplanes, plane0, sign, arr_sign,
        _mvm.CLIP if adc_mode == "clip" else _mvm.SCALE, code_max, code_max / adc_range,
        adc_range / code_max, noise_sigma, key, bias, _TILE_B, _TILE_N)


def _check_cells(cells, packed, noise_sigma):
    """The deviation arrays of ``cells`` for the kernel, checked against ``packed``."""
    from .nonideal import CellDeviation

    if not isinstance(cells, CellDeviation):
        raise ValueError("cells must be a CellDeviation (xsim.kernels.cell_deviation)")
    shape = (packed.n_blocks, packed.planes.shape[1], packed.n_slices, packed.rows, packed.n)
    dev = cells.deviation
    if dev.shape != shape or dev.dtype != np.float32 or not dev.flags.c_contiguous:
        raise ValueError(f"cells.deviation must be C-contiguous float32 of shape {shape}, "
                         f"got {dev.dtype} {dev.shape}")
    read_sigma = float(cells.read_sigma)
    if read_sigma > 0.0:
        gsq = cells.conductance_sq
        if gsq is None or gsq.shape != shape or gsq.dtype != np.float32 \
                or not gsq.flags.c_contiguous:
            raise ValueError(f"cells.conductance_sq must be C-contiguous float32 of shape {shape}")
        if noise_sigma > 0.0:
            raise ValueError("state-dependent read noise replaces noise_sigma: give one of them")
    else:
        gsq = np.zeros((1, 1, 1, 1, 1), np.float32)
    return dev, gsq, read_sigma


def _input_bytes(x, signed_inputs):
    """The inputs as ``uint8`` bytes (two's complement when signed): no copy for 1-byte dtypes.

    Only called with values already checked to fit ``input_bits <= 8``.
    """
    if x.dtype.itemsize == 1:
        return x.view(np.uint8)
    return x.astype(np.int8 if signed_inputs else np.uint8).view(np.uint8)


def _batch_tile(batch):
    """Samples per tile of the specialised kernel: at most ``_TILE_B``, and a number of tiles
    that is a multiple of the thread count, so a small batch (a late conv layer's 49 pixels)
    still spreads evenly over the threads."""
    threads = get_num_threads()
    n_tiles = threads * -(-batch // (_TILE_B * threads))
    return max(1, -(-batch // n_tiles))


def crossbar_mvm(x, w, *, rows: int, cell_bits: int, dac_bits: int, input_bits: int,
                 weight_bits: int, adc_bits: int, adc_mode: str = "clip", adc_range=None,
                 encoding: str = "differential", signed_inputs: bool = False,
                 noise_sigma: float = 0.0, seed: int = 0, group_rows=None,
                 cells=None, shortcut: bool = True) -> np.ndarray:
    """Hardware result (int64, batch x N) of integer inputs ``x`` times weights ``w``.

    Packs ``w`` with :func:`pack_weights` and calls :func:`crossbar_mvm_packed`;
    see the module docstring for the model.
    """
    packed = pack_weights(w, rows=rows, cell_bits=cell_bits, weight_bits=weight_bits,
                          encoding=encoding)
    return crossbar_mvm_packed(x, packed, dac_bits=dac_bits, input_bits=input_bits,
                               adc_bits=adc_bits, adc_mode=adc_mode, adc_range=adc_range,
                               signed_inputs=signed_inputs, noise_sigma=noise_sigma,
                               seed=seed, group_rows=group_rows, cells=cells, shortcut=shortcut)
