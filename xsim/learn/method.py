"""XMA2 mask learning on the simulator's own PE structure (PyTorch), and its baselines.

What is learned, and how (the algorithm):

1. **Backbone.**  The network is trained in floating point on the source task (Adam, cross
   entropy), then every weight layer is quantised as the crossbars hold it
   (:func:`xsim.functional.quantise.quantise_weights`: symmetric, per output channel,
   ``weight_bits``): integer codes ``Q0`` (K × N, the mapped matrix) and scales ``s0`` (N,).  From
   here on the backbone is ``W0 = Q0 · s0`` and never changes; it is what sits in the crossbars.

2. **PE structure.**  The network is mapped onto the arch (:func:`xsim.mapping.map_network`).  For
   every weight layer the PE grid (:func:`xsim.functional.masks.pe_grid`) says which
   first-instance PE holds each element ``(k, n)`` of the (K, N) matrix and which tier-2 column
   scales it.  The tier-1 candidates are the first-instance PEs of every weight layer but the head
   (the last weight layer, the task's own classifier), exactly as :mod:`xsim.mta.tasks` counts
   them, so a budget ``b`` means ``round(b · candidates)`` PEs in both places.

3. **Per task**, the trainable state is:

   * **tier 1** — a real score ``σ_p`` per candidate PE and task weights ``Wt`` (initialised to
     ``W0``).  The forward pass keeps the ``k`` highest scores (straight-through top-k:
     ``m = hard + σ − stopgrad(σ)``, so the forward mask has exactly ``k`` ones and the scores get
     the gradient of the mask); scores start from each PE's mean ``|∂L/∂W|`` on the backbone (a
     first-order importance), standardised.  A PE's gradient is ``Σ_{(k,n)∈p} ∂L/∂W · (Q(Wt) − W0·S)``: a PE
     scores up when its task weights would lower the loss.  Task weights of *unselected* PEs also
     receive their gradient (a straight-through shadow update, zero in the forward pass) so that
     this difference is informative before a PE is chosen.  For the last ``freeze_fraction`` of
     the epochs the mask and the tier-2 scales are fixed, and the selected PEs' weights, the head
     and the normalisation settle on them.  Task weights are quantised in the loop onto the
     backbone's per-channel grid, ``Q(Wt) = clip(round(Wt/s0))·s0``, with a straight-through
     estimator, so the exported integers are what was trained;
   * **tier 2** — a scale ``v`` per tier-2 column (per frozen PE and weight column, initialised
     to 1), quantised in the loop to the workload's format with a straight-through estimator
     (``pow2``: 0 or ``2^e``, ``e ∈ [−(2^(b−1)−1), 2^(b−1)−1]``; ``fixed``: ``b``-bit unsigned with
     ``b−1`` fraction bits; ``float``: as is — the same grid as
     :func:`xsim.functional.masks.quantise_scales`) and kept non-negative.  Scaling the rows of a
     PE's block of column ``n`` is the same as scaling that PE's partial sum of column ``n``:
     ``y_n = Σ_p S_{p,n} · (x[rows_p] · W0[rows_p, n])`` for frozen PEs, ``S = 1`` in tier-1 PEs;
   * **head and normalisation** — the head (last weight layer) is the task's own, initialised
     from the backbone's and quantised in the loop per channel; every other weight layer gets a
     per-task per-channel gain ``γ = exp(c)`` and bias ``β`` (a folded batch norm), applied
     digitally after the layer (a positive gain folds into the dequantisation scale and leaves
     the integer codes, hence the cells, unchanged);
   * **write cost** (optional) — ``write_penalty · mean_p∈tier1 (mean |Q(Wt) − W0| / s0)``: the
     selected PEs' average weight change in LSBs, a differentiable stand-in for the cells a
     switch rewrites.

   The layer's effective weight is ``W = m·Q(Wt) + (1 − m)·W0·S`` (``m`` and ``S`` broadcast from
   PEs and tier-2 columns to elements); the loss is cross entropy plus the write penalty; Adam
   with ``weight_lr`` for weights and element-wise mask scores, ``scale_lr`` for tier-2 scales
   (small: a pow2 scale moves by a factor of two when it crosses a rounding boundary, so a large
   step makes the columns flip back and forth), ``lr`` for everything else.

4. **Baselines**, trained the same way (same epochs, optimiser, head and normalisation):
   ``full_finetune`` (every candidate PE is tier 1), ``head_only`` (head and normalisation only),
   ``tier1_only`` (learned top-k PEs, no scales), ``tier2_only`` (scales on every PE, no
   rewrite), ``random_tier1`` (a seeded random set of ``k`` PEs plus tier-2 scales), and
   ``elementwise`` (Piggyback: a real score per backbone weight, binarised at a threshold with a
   straight-through estimator, ``W = W0 · 1[score > τ]``; on a crossbar every zeroed weight's
   cells are rewritten).

Everything runs in float64 on the CPU, seeded, with deterministic algorithms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from xsim import streams
from xsim.deployment import Deployment
from xsim.functional.masks import pe_grid, pow2_exponents
from xsim.functional.quantise import quantise_weights
from xsim.models.graph import Layer, Network
from xsim.strategies import strategy as strategy_of

DTYPE = torch.float64
# Piggyback's real-valued mask: initial score and binarisation threshold.
ELEMENTWISE_INIT = 1e-2
ELEMENTWISE_THRESHOLD = 5e-3
# Batches of the initial gradient that seed the tier-1 scores.
SCORE_INIT_BATCHES = 4


def weight_matrix(w: np.ndarray) -> np.ndarray:
    """The (K, N) crossbar matrix of a (Cout, Cin/groups, kh, kw) or (out, in) weight array."""
    return w.reshape(w.shape[0], -1).T


def matrix_weight(m: np.ndarray, layer: Layer) -> np.ndarray:
    """The layer's weight array of a (K, N) matrix (the inverse of :func:`weight_matrix`)."""
    return np.ascontiguousarray(m.T).reshape(layer.weight_shape)


# -- the PE structure ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerPes:
    """Per element (k, n) of one weight layer's matrix: its tier-1 candidate position (−1 for
    the head) and its tier-2 column index."""

    layer: Layer
    position: np.ndarray
    tier2: np.ndarray


class PeStructure:
    """The mapping's tier-1 candidates and each weight layer's element → PE / tier-2 maps."""

    def __init__(self, deployment: Deployment) -> None:
        mapping = deployment.mapping
        self.mapping = mapping
        self.head = deployment.head_layer
        first = [mapping.pes[i] for i in deployment.tier1_candidates]
        self.candidates = np.array([p.index for p in first], dtype=np.int64)
        position_of = np.full(mapping.pe_count, -1, dtype=np.int64)
        position_of[self.candidates] = np.arange(self.candidates.size)
        self.sizes = np.array([(p.row_stop - p.row_start) * p.weight_columns for p in first],
                              dtype=np.float64)
        self.layers: dict[str, LayerPes] = {}
        for lm in mapping.layers:
            grid = pe_grid(mapping, lm)
            rows = np.arange(lm.K) // grid.group_rows
            pe = grid.pe[rows]
            self.layers[lm.layer.name] = LayerPes(lm.layer, position_of[pe], grid.tier2[rows])
        # Tier-2 columns of the head: never scaled (as xsim.mta.tasks treats them).
        self.head_tier2 = np.unique(self.layers[self.head].tier2)

    @property
    def count(self) -> int:
        return int(self.candidates.size)

    def budget_pes(self, budget: float) -> int:
        """Tier-1 PEs of a ``budget`` fraction, rounded as :mod:`xsim.mta.tasks` rounds it."""
        return int(round(budget * self.count))


# -- quantisers with straight-through gradients --------------------------------------------------


def ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``q`` in the forward pass, the identity's gradient to ``x`` in the backward pass."""
    return x + (q - x).detach()


def quantise_scales_torch(v: torch.Tensor, fmt: str, bits: int) -> torch.Tensor:
    """Tier-2 scales on the ``fmt``/``bits`` grid (as :func:`xsim.functional.quantise_scales`)."""
    if fmt == "float":
        return v
    if fmt == "fixed":
        steps = float(1 << (bits - 1))
        return torch.clamp(torch.round(v * steps), 0, (1 << bits) - 1) / steps
    e_min, e_max = pow2_exponents(bits)
    e = torch.clamp(torch.round(torch.log2(v)), e_min, e_max)
    return torch.where(v < 2.0 ** (e_min - 1), torch.zeros_like(v), torch.exp2(e))


def quantise_per_channel(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, N) matrix → (dequantised matrix, per-column scale), as ``quantise_weights`` does."""
    qmax = (1 << (bits - 1)) - 1
    peak = w.detach().abs().amax(dim=0)
    scale = torch.where(peak > 0, peak / qmax, torch.ones_like(peak))
    return torch.clamp(torch.round(w / scale), -qmax, qmax) * scale, scale


# -- the network in torch ------------------------------------------------------------------------


def run_graph(network: Network, x: torch.Tensor, weight_layer) -> torch.Tensor:
    """Forward ``network`` on ``x`` (B, C, H, W); ``weight_layer(layer, input)`` computes a conv
    or linear layer before its activation.  Returns the logits (B, F)."""
    outputs = {"input": x}
    for layer in network.layers:
        src = outputs[layer.inputs[0]]
        if layer.has_weights:
            y = weight_layer(layer, src)
        elif layer.kind == "maxpool":
            y = F.max_pool2d(src, layer.kernel, layer.stride, layer.padding)
        elif layer.kind == "avgpool":
            if layer.padding != (0, 0):
                raise ValueError(f"layer {layer.name!r}: padded average pooling is not supported")
            y = F.avg_pool2d(src, layer.kernel, layer.stride)
        elif layer.kind == "add":
            y = src
            for other in layer.inputs[1:]:
                y = y + outputs[other]
        elif layer.kind == "concat":
            y = torch.cat([outputs[name] for name in layer.inputs], dim=1)
        elif layer.kind == "flatten":
            y = src.reshape(src.shape[0], -1, 1, 1)
        else:
            raise ValueError(f"layer {layer.name!r}: kind {layer.kind!r} cannot be trained")
        if layer.activation == "relu":
            y = F.relu(y)
        elif layer.activation == "relu6":
            y = torch.clamp(y, 0.0, 6.0)
        outputs[layer.name] = y
    return outputs[network.output.name].reshape(x.shape[0], -1)


def apply_matrix(layer: Layer, x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """A conv or linear layer with its (K, N) weight matrix, no bias."""
    if layer.kind == "linear":
        return (x.reshape(x.shape[0], -1) @ matrix)[:, :, None, None]
    weight = matrix.T.reshape(layer.weight_shape)
    return F.conv2d(x, weight, stride=layer.stride, padding=layer.padding,
                    dilation=layer.dilation, groups=layer.groups)


# -- backbone ------------------------------------------------------------------------------------


@dataclass
class Backbone:
    """The trained, quantised backbone: per weight layer codes Q0 (K, N), scales s0 (N,), bias."""

    network: Network
    codes: dict[str, np.ndarray]
    scales: dict[str, np.ndarray]
    biases: dict[str, np.ndarray | None]

    def matrix(self, name: str) -> np.ndarray:
        """The dequantised float matrix ``Q0 · s0``."""
        return self.codes[name] * self.scales[name]

    def float_weights(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """``.npz``-ready weights whose per-channel quantisation gives back exactly ``Q0``."""
        return {name: (matrix_weight(self.matrix(name), self.network[name]), self.biases[name])
                for name in self.codes}


def _batches(n: int, batch: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for i in range(0, n, batch):
        yield order[i : i + batch]


def fit_graph(network: Network, weight_layer, params: list, x: np.ndarray, y: np.ndarray, *,
              epochs: int, batch: int, lr: float, generator: torch.Generator) -> None:
    """Adam on cross entropy over ``params`` for ``epochs`` passes of shuffled batches."""
    opt = torch.optim.Adam(params, lr=lr)
    xt, yt = torch.as_tensor(x, dtype=DTYPE), torch.as_tensor(y)
    for _ in range(epochs):
        for idx in _batches(len(xt), batch, generator):
            loss = F.cross_entropy(run_graph(network, xt[idx], weight_layer), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def train_backbone(network: Network, x: np.ndarray, y: np.ndarray, *, epochs: int, batch: int,
                   lr: float, weight_bits: int, seed: int) -> Backbone:
    """Train ``network`` in floating point on (x, y) and quantise it (step 1 of the docstring)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    params: dict[str, torch.nn.Parameter] = {}
    biases: dict[str, torch.nn.Parameter] = {}
    for layer in network.weight_layers:
        k, n = layer.matrix_shape
        gain = 2.0 if layer.activation in ("relu", "relu6") else 1.0
        params[layer.name] = torch.nn.Parameter(torch.randn(k, n, dtype=DTYPE) * math.sqrt(gain / k))
        if layer.bias:
            biases[layer.name] = torch.nn.Parameter(torch.zeros(n, dtype=DTYPE))

    def weight_layer(layer: Layer, src: torch.Tensor) -> torch.Tensor:
        out = apply_matrix(layer, src, params[layer.name])
        if layer.name in biases:
            out = out + biases[layer.name][None, :, None, None]
        return out

    fit_graph(network, weight_layer, [*params.values(), *biases.values()], x, y, epochs=epochs,
              batch=batch, lr=lr, generator=generator)
    codes, scales, out_biases = {}, {}, {}
    for layer in network.weight_layers:
        q, s = quantise_weights(params[layer.name].detach().numpy().T, weight_bits)
        codes[layer.name] = np.ascontiguousarray(q.T)
        scales[layer.name] = s
        out_biases[layer.name] = (biases[layer.name].detach().numpy().copy()
                                  if layer.name in biases else None)
    return Backbone(network, codes, scales, out_biases)


# -- per-task model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrategyConfig:
    """What a strategy trains: ``tier1`` none / learned / fixed (``fixed_pes``), ``tier2``
    scales, ``elementwise`` Piggyback masks; ``k`` tier-1 PEs."""

    tier1: str = "none"
    tier2: bool = False
    elementwise: bool = False
    k: int = 0
    fixed_pes: tuple[int, ...] = ()


def strategy_config(strategy: str, structure: PeStructure, budget: float, seed: int) -> StrategyConfig:
    """The :class:`StrategyConfig` of a strategy at a PE budget (see the module docstring)."""
    try:
        entry = strategy_of(strategy)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    if entry.rewrites == "elementwise":
        return StrategyConfig(elementwise=True)
    if entry.tier1 == "all":
        return StrategyConfig(tier1="fixed", k=structure.count,
                              fixed_pes=tuple(range(structure.count)))
    k = structure.budget_pes(budget) if entry.budgeted else 0
    if entry.tier1 == "random" and k:
        rng = np.random.default_rng(streams.seed_sequence(seed, "learn.random_tier1", k))
        chosen = np.sort(rng.choice(structure.count, size=k, replace=False))
        return StrategyConfig(tier1="fixed", tier2=entry.scales, k=k,
                              fixed_pes=tuple(int(p) for p in chosen))
    return StrategyConfig(tier1="learned" if k else "none", tier2=entry.scales, k=k)


class TaskModel(torch.nn.Module):
    """The backbone under one task's trainable tiers, head and normalisation (step 3)."""

    def __init__(self, backbone: Backbone, structure: PeStructure, config: StrategyConfig, *,
                 tier2_format: str, tier2_bits: int, weight_bits: int,
                 write_penalty: float = 0.0) -> None:
        super().__init__()
        self.network = backbone.network
        self.structure = structure
        self.config = config
        self.tier2_format, self.tier2_bits = tier2_format, tier2_bits
        self.weight_bits = weight_bits
        self.qmax = (1 << (weight_bits - 1)) - 1
        self.write_penalty = write_penalty
        self.head = structure.head
        self.body = [layer.name for layer in self.network.weight_layers if layer.name != self.head]
        self.w0 = {n: torch.as_tensor(backbone.matrix(n), dtype=DTYPE) for n in backbone.codes}
        self.s0 = {n: torch.tensor(backbone.scales[n], dtype=DTYPE) for n in backbone.codes}
        self.position = {n: torch.as_tensor(structure.layers[n].position) for n in self.body}
        self.tier2_index = {n: torch.as_tensor(structure.layers[n].tier2) for n in self.body}
        self.gain_log = torch.nn.ParameterDict()
        self.bias = torch.nn.ParameterDict()
        for n in backbone.codes:
            if n != self.head:
                self.gain_log[n] = torch.nn.Parameter(torch.zeros(self.w0[n].shape[1], dtype=DTYPE))
            if backbone.biases[n] is not None:
                self.bias[n] = torch.nn.Parameter(torch.tensor(backbone.biases[n], dtype=DTYPE))
        self.head_weight = torch.nn.Parameter(self.w0[self.head].clone())
        self.task_weight = torch.nn.ParameterDict()
        if config.tier1 != "none":
            for n in self.body:
                self.task_weight[n] = torch.nn.Parameter(self.w0[n].clone())
        self.scales = None
        if config.tier2:
            self.scales = torch.nn.Parameter(
                torch.ones(structure.mapping.tier2_columns, dtype=DTYPE))
        self.mask_score = torch.nn.ParameterDict()
        if config.elementwise:
            for n in self.body:
                self.mask_score[n] = torch.nn.Parameter(torch.full_like(self.w0[n], ELEMENTWISE_INIT))
        self.scores = None
        hard = torch.zeros(structure.count, dtype=DTYPE)
        if config.tier1 == "fixed":
            hard[list(config.fixed_pes)] = 1.0
        self.register_buffer("fixed_mask", hard)
        if config.tier1 == "learned":
            self.scores = torch.nn.Parameter(torch.zeros(structure.count, dtype=DTYPE))
        self.frozen = config.tier1 != "learned"

    # -- tiers ---------------------------------------------------------------------------------

    def hard_mask(self) -> torch.Tensor:
        """The current tier-1 mask over the candidates: exactly ``k`` ones."""
        if self.frozen:
            return self.fixed_mask
        hard = torch.zeros_like(self.scores)
        hard[torch.topk(self.scores.detach(), self.config.k).indices] = 1.0
        return hard

    def pe_mask(self, hard: torch.Tensor) -> torch.Tensor:
        """The straight-through mask: ``hard`` forward, the scores' gradient backward."""
        if self.frozen:
            return hard
        return hard + self.scores - self.scores.detach()

    def freeze_mask(self) -> None:
        """Fix the tier-1 mask at its current top-k and the tier-2 scales at their values (the
        last phase of training: the weights, head and normalisation settle on fixed masks)."""
        if not self.frozen:
            self.fixed_mask.copy_(self.hard_mask())
            self.frozen = True
        if self.scales is not None:
            # Without a gradient Adam leaves the scales where they are.
            self.scales.requires_grad_(False)

    def quantised_task_weight(self, name: str) -> torch.Tensor:
        w = self.task_weight[name]
        s = self.s0[name]
        return ste(w, torch.clamp(torch.round(w / s), -self.qmax, self.qmax) * s)

    def quantised_scales(self) -> torch.Tensor:
        q = quantise_scales_torch(self.scales, self.tier2_format, self.tier2_bits)
        return ste(self.scales, q)

    def matrix(self, name: str, hard: torch.Tensor | None, pe_mask: torch.Tensor | None,
               scales: torch.Tensor | None) -> torch.Tensor:
        """The effective (K, N) weight matrix of a body layer under the task (``hard``: the
        tier-1 mask, ``pe_mask`` its straight-through form; None without tier 1)."""
        w0 = self.w0[name]
        if self.config.elementwise:
            score = self.mask_score[name]
            keep = ste(score, (score > ELEMENTWISE_THRESHOLD).to(DTYPE))
            return w0 * keep
        base = w0 if scales is None else w0 * scales[self.tier2_index[name]]
        if pe_mask is None:
            return base
        position = self.position[name]
        m = pe_mask[position]
        dq = self.quantised_task_weight(name)
        w = base + m * (dq - base)
        if not self.frozen:
            w = w + (1.0 - hard[position]) * (dq - dq.detach())
        return w

    def head_matrix(self) -> torch.Tensor:
        q, _ = quantise_per_channel(self.head_weight, self.weight_bits)
        return ste(self.head_weight, q)

    # -- forward and loss ----------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hard = pe_mask = None
        if self.config.tier1 != "none":
            hard = self.hard_mask()
            pe_mask = self.pe_mask(hard)
        scales = None if self.scales is None else self.quantised_scales()

        def weight_layer(layer: Layer, src: torch.Tensor) -> torch.Tensor:
            name = layer.name
            if name == self.head:
                out = apply_matrix(layer, src, self.head_matrix())
            else:
                out = apply_matrix(layer, src, self.matrix(name, hard, pe_mask, scales))
                out = out * torch.exp(self.gain_log[name])[None, :, None, None]
            if name in self.bias:
                out = out + self.bias[name][None, :, None, None]
            return out

        return run_graph(self.network, x, weight_layer)

    def penalty(self) -> torch.Tensor:
        """The write-cost term: selected PEs' mean weight change in LSBs, averaged over them."""
        if self.write_penalty == 0.0 or self.config.tier1 == "none" or self.config.k == 0:
            return torch.zeros((), dtype=DTYPE)
        per_pe = torch.zeros(self.structure.count, dtype=DTYPE)
        for name in self.body:
            lsb = (self.quantised_task_weight(name) - self.w0[name]).abs() / self.s0[name]
            per_pe = per_pe.index_add(0, self.position[name].reshape(-1), lsb.reshape(-1))
        per_pe = per_pe / torch.as_tensor(self.structure.sizes, dtype=DTYPE)
        mask = self.pe_mask(self.hard_mask())
        return self.write_penalty * (mask * per_pe).sum() / self.config.k

    def project(self) -> None:
        """Keep quantised tier-2 scales non-negative magnitudes after an optimiser step."""
        if self.scales is not None and self.tier2_format != "float":
            with torch.no_grad():
                self.scales.clamp_(min=0.0)

    def parameter_groups(self, lr: float, weight_lr: float, scale_lr: float) -> list[dict]:
        weights = [*self.task_weight.values(), *self.mask_score.values()]
        others = [*self.gain_log.values(), *self.bias.values(), self.head_weight]
        if self.scores is not None:
            others.append(self.scores)
        groups = [{"params": others, "lr": lr}]
        if weights:
            groups.append({"params": weights, "lr": weight_lr})
        if self.scales is not None:
            groups.append({"params": [self.scales], "lr": scale_lr})
        return groups


def init_scores(model: TaskModel, x: torch.Tensor, y: torch.Tensor, batch: int,
                generator: torch.Generator) -> None:
    """Seed the tier-1 scores with each PE's gradient magnitude on the backbone (a first-order
    importance), standardised; ties are broken by candidate order."""
    if model.scores is None:
        return
    grads = {n: torch.zeros_like(model.w0[n]) for n in model.body}
    matrices = {n: model.w0[n].clone().requires_grad_(True) for n in model.body}

    def weight_layer(layer: Layer, src: torch.Tensor) -> torch.Tensor:
        matrix = model.head_matrix().detach() if layer.name == model.head else matrices[layer.name]
        out = apply_matrix(layer, src, matrix)
        if layer.name in model.bias:
            out = out + model.bias[layer.name].detach()[None, :, None, None]
        return out

    for i, idx in enumerate(_batches(len(x), batch, generator)):
        if i == SCORE_INIT_BATCHES:
            break
        loss = F.cross_entropy(run_graph(model.network, x[idx], weight_layer), y[idx])
        for n, g in zip(model.body, torch.autograd.grad(loss, [matrices[n] for n in model.body])):
            grads[n] += g.abs()
    importance = torch.zeros(model.structure.count, dtype=DTYPE)
    for n in model.body:
        importance = importance.index_add(0, model.position[n].reshape(-1), grads[n].reshape(-1))
    importance = importance / torch.as_tensor(model.structure.sizes, dtype=DTYPE)
    importance = (importance - importance.mean()) / importance.std().clamp_min(1e-12)
    with torch.no_grad():
        model.scores.copy_(importance)


def train_task(model: TaskModel, x: np.ndarray, y: np.ndarray, *, epochs: int, batch: int, lr: float,
               weight_lr: float, scale_lr: float, freeze_fraction: float, seed: int) -> None:
    """Train one task's model (step 3): scores seeded, then Adam on cross entropy + penalty."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    xt, yt = torch.as_tensor(x, dtype=DTYPE), torch.as_tensor(y)
    init_scores(model, xt, yt, batch, generator)
    opt = torch.optim.Adam(model.parameter_groups(lr, weight_lr, scale_lr), foreach=True)
    freeze_at = int(round(epochs * (1.0 - freeze_fraction)))
    for epoch in range(epochs):
        if epoch == freeze_at:
            model.freeze_mask()
        for idx in _batches(len(xt), batch, generator):
            loss = F.cross_entropy(model(xt[idx]), yt[idx]) + model.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.project()
    model.freeze_mask()


# -- what a trained task model programs ---------------------------------------------------------


@dataclass
class TaskResult:
    """A trained task, as the crossbars hold it.

    ``tier1``: global PE indices rewritten with task weights; ``tier2``: quantised float64 scales
    of length ``mapping.tier2_columns`` (1 on the head and in tier-1 PEs), or None;
    ``codes``: per body layer the programmed (K, N) integer matrix (the backbone's codes outside
    tier-1 PEs); ``gains`` / ``biases``: per-channel normalisation; ``head``: the head's float
    weight (its layer's weight shape, exactly quantisable per channel) and bias.
    """

    tier1: tuple[int, ...]
    tier2: np.ndarray | None
    codes: dict[str, np.ndarray]
    gains: dict[str, np.ndarray]
    biases: dict[str, np.ndarray | None]
    head: tuple[np.ndarray, np.ndarray | None]


def export_result(model: TaskModel, backbone: Backbone) -> TaskResult:
    """The integer codes, masks, scales, normalisation and head a trained model programs."""
    from xsim.functional.masks import quantise_scales

    structure = model.structure
    with torch.no_grad():
        hard = model.hard_mask().numpy().astype(bool)
        chosen = structure.candidates[hard] if model.config.tier1 != "none" else np.array([], int)
        if model.config.elementwise:
            chosen = structure.candidates
        codes = {}
        for name in model.body:
            q0 = backbone.codes[name]
            if model.config.elementwise:
                keep = (model.mask_score[name] > ELEMENTWISE_THRESHOLD).numpy()
                codes[name] = np.where(keep, q0, 0).astype(np.int64)
            elif model.config.tier1 != "none":
                qmax = (1 << (model.weight_bits - 1)) - 1
                qt = np.clip(np.rint(model.task_weight[name].numpy() / backbone.scales[name]),
                             -qmax, qmax)
                inside = hard[structure.layers[name].position]
                codes[name] = np.where(inside, qt, q0).astype(np.int64)
            else:
                codes[name] = q0.astype(np.int64)
        tier2 = None
        if model.scales is not None:
            tier2 = quantise_scales(model.scales.numpy(), model.tier2_format, model.tier2_bits)
            tier2[structure.head_tier2] = 1.0
            for name in model.body:
                inside = hard[structure.layers[name].position]
                tier2[structure.layers[name].tier2[inside]] = 1.0
        gains = {n: np.exp(model.gain_log[n].numpy()) for n in model.body}
        biases = {n: (model.bias[n].numpy().copy() if n in model.bias else None)
                  for n in backbone.codes}
        head_layer = model.network[model.head]
        head_matrix, _ = quantise_per_channel(model.head_weight, model.weight_bits)
        head = (matrix_weight(head_matrix.numpy(), head_layer), biases[model.head])
    return TaskResult(tier1=tuple(int(p) for p in np.sort(chosen)), tier2=tier2, codes=codes,
                      gains=gains, biases=biases, head=head)


def float_accuracy(model: TaskModel, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the trained model in floating point (weights and scales quantised in the loop)."""
    with torch.no_grad():
        logits = model(torch.as_tensor(x, dtype=DTYPE))
    return float((logits.argmax(1).numpy() == y).mean())
