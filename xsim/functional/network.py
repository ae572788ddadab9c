"""Bit-accurate network inference on the crossbar kernels, with XMA2 task masks.

:class:`CrossbarNetwork` runs a mapped :class:`~xsim.models.graph.Network` the way the accelerator
does, one layer at a time:

1. the layer's input tensor is quantised with the layer's calibrated activation quantiser
   (:mod:`xsim.functional.quantise`) over the whole batch, into the codes' narrow integer dtype,
   which the kernels read in place; a conv layer's integer input maps are cut into im2col patches
   of as many images as make ``_CHUNK_ROWS`` patches (one image with read noise), which share one
   kernel call per conv group, so each image's inputs are packed once for every column.  Activation
   scales are calibrated per task on the task's masked float network (the requantisation scales
   are digital registers loaded with the task, like its tier-2 scales and its normalisation), on
   the calibration images given once; masks that change nothing (no tier-1 PE, every tier-2
   scale 1) reuse the backbone's;
2. the patches (a linear layer: the batch of input vectors) times the layer's integer weight matrix
   (K × N, column ``n`` = output channel ``n``'s weights in ``weight.reshape(Cout, -1)`` order)
   go through :func:`xsim.kernels.crossbar_mvm_packed` with the arch's crossbar rows, cell bits,
   DAC and ADC bits and encoding (the mapping's row blocks); a grouped convolution runs one kernel
   call per group on that group's columns, as every column reads only its group's rows;
3. with tier-2 scales the kernel returns one partial sum per PE row group
   (``group_rows = row_blocks_per_pe · rows``, see :class:`~xsim.functional.masks.PeGrid`), and
   each (PE, column) partial sum is multiplied by its scale before the PEs' sums are added;
   tier-1 PEs compute with the task's integer weights in their (rows, columns) block.  A layer
   whose tier-1 PEs changed weights is packed anew from the task's matrix (packing a layer costs
   far less than running it); a layer whose task weights equal the backbone's shares its planes
   and cells;
4. the digital units (float64) dequantise by ``input scale × weight scale[n]``, add the bias and
   apply the activation; pooling, residual adds and flatten follow :mod:`xsim.functional.reference`.

Integer products are exact in float64 (|partial sums| < 2**53 for every supported precision), so
the integer sums of step 3 convert to float64 without rounding and any summation order gives the
same bits: identity masks reproduce the backbone bit for bit.  ``run(..., exact=True)`` replaces
step 2 by the exact integer product (float64 BLAS on the integer codes): the integer-quantised
reference, which a lossless crossbar configuration matches exactly.  :meth:`CrossbarNetwork.reference`
is the float64 reference of the same masked network: float weights scaled by the tier-2 scales,
dequantised task weights inside the tier-1 PEs.

Read noise (``noise_sigma`` > 0) draws from the kernels' counter-based stream with a seed derived
from (``seed``, layer index, image index in the batch, conv group).

Stored-value non-idealities (``device``, a :class:`~xsim.functional.nonideal.DeviceModel` of the
arch's ``cell.nonideal``) give every packed conv group its per-cell deviations, drawn once when
the group is packed (per task for the tier-1 layers, whose cells hold other weights) and, with
``writes`` (layer → per-cell write counts in :mod:`xsim.mta.cells`' layout), its worn-out cells;
the kernels then add them to every column sum (:mod:`xsim.kernels.nonideal`).  State-dependent
read noise replaces ``noise_sigma`` and is seeded like it.  Without ``device`` (or with every
non-ideality off) nothing changes: the ideal kernels run as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from xsim import kernels, streams
from xsim.config.arch import Arch
from xsim.functional.im2col import batch_patches
from xsim.functional.masks import PeGrid, TaskMasks, pe_grid
from xsim.functional.nonideal import DeviceModel, cell_layout
from xsim.functional.quantise import ActivationQuantiser, calibrate_activations, quantise_weights
from xsim.functional.reference import forward_float, run_graph
from xsim.functional.weights import Weights, check_weights
from xsim.mapping import Mapping as XMapping
from xsim.models.graph import Layer

# Packed weight sets of this many tasks stay cached (a task's tier-1 layers are packed once).
_TASK_CACHE = 4
# Patches (output pixels of one or more images) per kernel call of a conv layer: enough rows for
# every thread, few enough that a call's patches and int64 results stay a few tens of MB.
_CHUNK_ROWS = 8192
# Images per pass of CrossbarNetwork.run through the network (a larger batch goes in such parts).
_RUN_IMAGES = 4


@dataclass(frozen=True)
class KernelSettings:
    """What the crossbar kernels are called with (from the arch and the mapping's precision)."""

    rows: int
    cell_bits: int
    dac_bits: int
    adc_bits: int
    weight_bits: int
    input_bits: int
    encoding: str
    adc_mode: str = "clip"
    adc_range: float | None = None
    noise_sigma: float = 0.0
    seed: int = 0

    @classmethod
    def from_arch(cls, arch: Arch, mapping: XMapping, *, adc_mode: str = "clip",
                  adc_range: float | None = None, noise_sigma: float = 0.0, seed: int = 0) -> KernelSettings:
        return cls(rows=arch.crossbar.rows, cell_bits=arch.cell.bits, dac_bits=arch.dac_bits,
                   adc_bits=arch.adc_bits, weight_bits=mapping.weight_bits,
                   input_bits=mapping.input_bits, encoding=arch.crossbar.encoding, adc_mode=adc_mode,
                   adc_range=adc_range, noise_sigma=noise_sigma, seed=seed)


@dataclass(frozen=True)
class QuantisedLayer:
    """A weight layer as programmed: integer weight matrix (K × N), scales, bias, input quantiser."""

    layer: Layer
    index: int
    matrix: np.ndarray
    scale: np.ndarray
    bias: np.ndarray | None
    act: ActivationQuantiser
    grid: PeGrid


@dataclass(frozen=True)
class _Program:
    """One layer's setup under one task: integer matrix, packed groups, tier-2 scales, input quantiser."""

    matrix: np.ndarray
    packed: tuple[kernels.PackedWeights, ...]
    tier2: np.ndarray | None
    act: ActivationQuantiser
    cells: tuple[kernels.CellDeviation | None, ...]


def weight_matrix(w: np.ndarray) -> np.ndarray:
    """The (K, N) crossbar matrix of a (Cout, Cin/groups, kh, kw) or (out, in) weight array."""
    return w.reshape(w.shape[0], -1).T


class CrossbarNetwork:
    """A network quantised, calibrated and packed onto crossbars once; run it with or without masks.

    ``weights`` are float weights (layer → (weight, bias)) of ``mapping.network``; ``calibration``
    is a batch (B, C, H, W) of sample inputs for the activation scales.  Weights are quantised to
    ``mapping.weight_bits`` (per output channel unless ``per_channel`` is False), inputs to
    ``mapping.input_bits``.  Kernel settings come from the mapping's arch
(:meth:`KernelSettings.from_arch`);
    ``adc_mode``, ``adc_range``, ``noise_sigma`` and ``seed`` pass to the kernels; ``device`` and
    ``writes`` add the cells' non-idealities (see the module docstring).
    """

    def __init__(self, mapping: XMapping,
                 weights: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
                 calibration: np.ndarray, *, per_channel: bool = True, percentile: float = 100.0,
                 adc_mode: str = "clip", adc_range: float | None = None, noise_sigma: float = 0.0,
                 seed: int = 0, device: DeviceModel | None = None,
                 writes: Mapping[str, np.ndarray] | None = None) -> None:
        arch = mapping.arch
        self.device = device if device is not None and device.enabled else None
        if self.device is not None and self.device.read_sigma > 0 and noise_sigma > 0:
            raise ValueError("the cells' read noise (cell.nonideal.read_noise) replaces noise_sigma: "
                             "give one of them")
        self.writes = dict(writes or {})
        self.network = mapping.network
        self.mapping = mapping
        self.weights: Weights = dict(weights)
        check_weights(self.network, self.weights)
        self.settings = KernelSettings.from_arch(arch, mapping, adc_mode=adc_mode, adc_range=adc_range,
                                                 noise_sigma=noise_sigma, seed=seed)
        self.calibration = np.array(calibration, dtype=np.float64)
        self.percentile = percentile
        acts = self._calibrate(self.weights)
        # The narrowest integer type that holds the codes: the packers read any integer dtype.
        wdtype = np.min_scalar_type(-((1 << (mapping.weight_bits - 1)) - 1))
        self.layers: dict[str, QuantisedLayer] = {}
        for lm in mapping.layers:
            name = lm.layer.name
            w, b = self.weights[name]
            q, scale = quantise_weights(w, mapping.weight_bits, per_channel)
            self.layers[name] = QuantisedLayer(
                layer=lm.layer, index=lm.layer_index,
                matrix=np.ascontiguousarray(weight_matrix(q), dtype=wdtype), scale=scale,
                bias=None if b is None else np.asarray(b, dtype=np.float64), act=acts[name],
                grid=pe_grid(mapping, lm))
        self._backbone = {}
        for name, ql in self.layers.items():
            packed = self._pack(ql, ql.matrix)
            self._backbone[name] = _Program(ql.matrix, packed, None, ql.act,
                                            self._cells(ql, ql.matrix))
        self._tasks: OrderedDict[int, tuple[TaskMasks, dict[str, _Program]]] = OrderedDict()
        self._last_effective: tuple[TaskMasks, Weights] | None = None

    # -- weights of a task ---------------------------------------------------------------------

    def _calibrate(self, weights: Weights) -> dict[str, ActivationQuantiser]:
        return calibrate_activations(self.network, weights, self.calibration, self.mapping.input_bits,
                                     percentile=self.percentile)

    def _pack(self, ql: QuantisedLayer, matrix: np.ndarray) -> tuple[kernels.PackedWeights, ...]:
        s = self.settings
        ng = ql.layer.out_channels // ql.layer.groups
        # int64 codes: one compiled kernel signature serves every layer and precision.
        return tuple(
            kernels.pack_weights(matrix[:, g * ng : (g + 1) * ng].astype(np.int64), rows=s.rows,
                                 cell_bits=s.cell_bits, weight_bits=s.weight_bits, encoding=s.encoding)
            for g in range(ql.layer.groups))

    @property
    def _read_noise(self) -> bool:
        return self.settings.noise_sigma > 0 or (self.device is not None and self.device.read_sigma > 0)

    def _cells(self, ql: QuantisedLayer, matrix: np.ndarray) -> tuple[kernels.CellDeviation | None, ...]:
        """Per conv group, the cells' deviations under :attr:`device` (None without one)."""
        layer = ql.layer
        if self.device is None:
            return (None,) * layer.groups
        s = self.settings
        ng = layer.out_channels // layer.groups
        writes = self.writes.get(layer.name)
        out = []
        for g in range(layer.groups):
            levels = kernels.stored_levels(matrix[:, g * ng : (g + 1) * ng], rows=s.rows,
                                           cell_bits=s.cell_bits, weight_bits=s.weight_bits,
                                           encoding=s.encoding)
            counts = None
            if writes is not None:
                cpw = levels.shape[1] * levels.shape[2]
                counts = cell_layout(writes[:, g * ng * cpw : (g + 1) * ng * cpw], rows=s.rows,
                                     arrays=levels.shape[1], slices=levels.shape[2])
            out.append(self.device.cells(levels, layer=ql.index, group=g, writes=counts))
        return tuple(out)

    def _task_matrix(self, ql: QuantisedLayer, masks: TaskMasks, pes: tuple[int, ...]) -> np.ndarray:
        """The layer's integer matrix with the task's weights inside its tier-1 PEs."""
        matrix = ql.matrix.copy()
        task = weight_matrix(masks.task_weights[ql.layer.name])
        for index in pes:
            p = self.mapping.pes[index]
            block = (slice(p.row_start, p.row_stop), slice(p.col_start, p.col_stop))
            matrix[block] = task[block]
        return matrix

    def _tier2(self, ql: QuantisedLayer, masks: TaskMasks) -> np.ndarray | None:
        """(groups, N) scales of the layer's PE partial sums; 1 inside tier-1 PEs."""
        if masks.tier2 is None:
            return None
        scales = masks.tier2[ql.grid.tier2]
        tier1 = np.isin(ql.grid.pe, np.fromiter(masks.tier1, dtype=np.int64, count=len(masks.tier1)))
        scales[tier1] = 1.0
        return scales

    def program(self, masks: TaskMasks | None) -> dict[str, _Program]:
        """Per layer, the weights and scales ``masks`` run with (packed once per task, cached)."""
        if masks is None:
            return self._backbone
        key = id(masks)
        if key in self._tasks:
            self._tasks.move_to_end(key)
            return self._tasks[key][1]
        masks.validate(self.mapping)
        programs = {}
        for lm in self.mapping.layers:
            ql = self.layers[lm.layer.name]
            pes = masks.tier1_in(lm)
            base = self._backbone[lm.layer.name]
            matrix = self._task_matrix(ql, masks, pes) if pes else base.matrix
            if matrix is base.matrix or np.array_equal(matrix, base.matrix):
                # The task's weights in this layer are the backbone's: so are its cells.
                programs[lm.layer.name] = _Program(base.matrix, base.packed, self._tier2(ql, masks),
                                                   ql.act, base.cells)
            else:
                programs[lm.layer.name] = _Program(matrix, self._pack(ql, matrix),
                                                   self._tier2(ql, masks), ql.act, self._cells(ql, matrix))
        if masks.tier1 or (masks.tier2 is not None and np.any(masks.tier2 != 1.0)):
            effective = self._effective(masks, programs)
            acts = self._calibrate(effective)
            programs = {name: replace(prog, act=acts[name]) for name, prog in programs.items()}
            # Kept for the effective_weights call that usually follows (one task's worth at most).
            self._last_effective = (masks, effective)
        # The masks object is held with its programs, so its id cannot be reused while cached.
        self._tasks[key] = (masks, programs)
        if len(self._tasks) > _TASK_CACHE:
            self._tasks.popitem(last=False)
        return programs

    def release(self, masks: TaskMasks | None) -> None:
        """Forget what was packed for ``masks`` (a caller done with that task), so that the next
        task's arrays can take its memory; a later call with the same masks packs them again, to
        the same bits. The backbone's (``None``) stay."""
        if masks is None:
            return
        entry = self._tasks.get(id(masks))
        if entry is not None and entry[0] is masks:
            del self._tasks[id(masks)]
        if self._last_effective is not None and self._last_effective[0] is masks:
            self._last_effective = None

    def effective_weights(self, masks: TaskMasks | None) -> Weights:
        """Float weights of the masked network: what :meth:`reference` runs.

        Outside tier-1 PEs the float weights, each PE's rows of column ``n`` multiplied by its
        tier-2 scale; inside tier-1 PEs the task's integer weights times the backbone's scales.
        """
        if masks is None:
            return self.weights
        programs = self.program(masks)
        last, self._last_effective = self._last_effective, None
        if last is not None and last[0] is masks:
            return last[1]
        return self._effective(masks, programs)

    def _effective(self, masks: TaskMasks, programs: dict[str, _Program]) -> Weights:
        out: Weights = {}
        for name, ql in self.layers.items():
            w, b = self.weights[name]
            wmat = weight_matrix(np.asarray(w, dtype=np.float64))
            prog = programs[name]
            if prog.tier2 is None:
                matrix = np.array(wmat)
            else:
                # Scaled as the copy is made, one pass (the PE row groups cover every row), in the
                # float weights' own memory order, like the plain copy's.
                matrix = np.empty_like(wmat)
                rows = ql.grid.group_rows
                for g in range(ql.grid.groups):
                    part = slice(g * rows, (g + 1) * rows)
                    np.multiply(wmat[part], prog.tier2[g], out=matrix[part])
            for index in masks.tier1_in(self.mapping.layer(name)):
                p = self.mapping.pes[index]
                block = (slice(p.row_start, p.row_stop), slice(p.col_start, p.col_stop))
                matrix[block] = prog.matrix[block] * ql.scale[p.col_start : p.col_stop]
            out[name] = (matrix.T.reshape(ql.layer.weight_shape), b)
        return out

    # -- execution ------------------------------------------------------------------------------

    def _mvm(self, ql: QuantisedLayer, prog: _Program, x: np.ndarray, group: int, exact: bool,
             image: int) -> np.ndarray:
        """(batch, N/groups) result of codes ``x`` times one conv group's columns (after tier 2).

        ``x`` holds the integer codes in their narrow dtype, which the kernels read in place.
        Integer-valued: int64 from the kernels, float64 from the exact product or tier-2 scaling.
        """
        ng = ql.layer.out_channels // ql.layer.groups
        cols = slice(group * ng, (group + 1) * ng)
        tier2 = None if prog.tier2 is None else prog.tier2[:, cols]
        rows = ql.grid.group_rows
        if exact:
            xf = x.astype(np.float64)
            m = prog.matrix[:, cols]
            if tier2 is None:
                return xf @ m
            parts = np.stack([xf[:, g * rows : (g + 1) * rows] @ m[g * rows : (g + 1) * rows]
                              for g in range(ql.grid.groups)], axis=1)
        else:
            s = self.settings
            seed = 0
            if self._read_noise:
                seed = streams.read_noise_seed(s.seed, ql.index, image, group)
            y = kernels.crossbar_mvm_packed(
                x, prog.packed[group], dac_bits=s.dac_bits, input_bits=s.input_bits,
                adc_bits=s.adc_bits, adc_mode=s.adc_mode, adc_range=s.adc_range,
                signed_inputs=prog.act.signed, noise_sigma=s.noise_sigma, seed=seed,
                group_rows=None if tier2 is None else rows, cells=prog.cells[group])
            if tier2 is None:
                return y
            parts = y.astype(np.float64)
        return np.einsum("bgn,gn->bn", parts, tier2)

    def _conv(self, ql: QuantisedLayer, prog: _Program, x: np.ndarray, exact: bool) -> np.ndarray:
        layer = ql.layer
        g, cout = layer.groups, layer.out_channels
        ho, wo = layer.out_shape[1:]
        pixels = ho * wo
        out = np.empty((x.shape[0], cout, ho, wo), dtype=np.float64)
        factor = prog.act.scale * ql.scale
        ng = cout // g
        codes = prog.act.quantise(x)  # the whole batch at once, in the codes' narrow dtype
        # Images share a kernel call (one packed input feeds every column of the layer, and a
        # late layer's few pixels fill the threads), up to _CHUNK_ROWS patches; with read noise
        # one image per call, as its noise stream is seeded per image.
        per_call = 1 if self._read_noise else max(1, _CHUNK_ROWS // pixels)
        for i0 in range(0, x.shape[0], per_call):
            i1 = min(x.shape[0], i0 + per_call)
            patches = batch_patches(codes[i0:i1], layer)  # (groups, images·P, K)
            for group in range(g):
                cols = slice(group * ng, (group + 1) * ng)
                y = self._mvm(ql, prog, patches[group], group, exact, i0).reshape(i1 - i0, pixels, ng)
                # Dequantised (and biased) straight into each (Cout, Ho·Wo) map, in one pass.
                bias = None if ql.bias is None else ql.bias[cols]
                for i in range(i0, i1):
                    kernels.dequantise_into(y[i - i0], factor[cols], bias,
                                            out[i].reshape(cout, pixels)[cols])
        return out

    def _linear(self, ql: QuantisedLayer, prog: _Program, x: np.ndarray, exact: bool) -> np.ndarray:
        y = self._mvm(ql, prog, prog.act.quantise(x[:, :, 0, 0]), 0, exact, 0)
        y = y * (prog.act.scale * ql.scale)
        if ql.bias is not None:
            y += ql.bias
        return y[:, :, None, None]

    def run(self, x: np.ndarray, masks: TaskMasks | None = None, *, return_all: bool = False,
            exact: bool = False) -> np.ndarray | dict[str, np.ndarray]:
        """Bit-accurate inference of ``x`` (B, C, H, W) or one image (C, H, W) under ``masks``.

        Returns what :func:`~xsim.functional.reference.forward_float` returns (logits (B, F) for a
        network ending in (F, 1, 1); every layer's output with ``return_all``).  ``exact`` replaces
        the crossbars by exact integer products (the integer-quantised reference).
        """
        x = np.asarray(x, dtype=np.float64)
        single = x.ndim == 3
        batch = x[None] if single else x
        net = self.network
        if batch.ndim != 4 or batch.shape[1:] != net.input_shape:
            shape = ", ".join(map(str, net.input_shape))
            raise ValueError(f"network {net.name!r}: expected input (B, {shape})"
                             f" or one image {net.input_shape}, got shape {x.shape}")
        programs = self.program(masks)

        def weight_layer(layer: Layer, src: np.ndarray) -> np.ndarray:
            compute = self._conv if layer.kind == "conv" else self._linear
            return compute(self.layers[layer.name], programs[layer.name], src, exact)

        if return_all or self._read_noise or batch.shape[0] <= _RUN_IMAGES:
            return run_graph(net, batch, weight_layer, return_all=return_all, single=single)
        # A few images at a time through the whole network: every image's figures are its own
        # (integer crossbar sums, elementwise digital steps), and a few images' feature maps stay
        # in cache between layers where a large batch's would not.  (Read noise is seeded by the
        # image's place in the batch: such a batch runs whole.)
        return np.concatenate([run_graph(net, batch[i : i + _RUN_IMAGES], weight_layer,
                                         return_all=False, single=False)
                               for i in range(0, batch.shape[0], _RUN_IMAGES)])

    def reference(self, x: np.ndarray, masks: TaskMasks | None = None, *, return_all: bool = False,
                  dtype: type[np.floating] = np.float64) -> np.ndarray | dict[str, np.ndarray]:
        """Float reference of the same masked network (:meth:`effective_weights`), no quantisation."""
        return forward_float(self.network, self.effective_weights(masks), x, dtype=dtype,
                             return_all=return_all)
