"""Fields: the Grad-CAM of every region of an output from ``C`` forward-mode products.

Why it works. For any target, the gradient of its score at the layer is ``J^T s``: ``s = d score /
d out`` (the *seed*) pulled back through the Jacobian of the output with respect to the layer's
activations. Grad-CAM reduces that gradient per channel by a spatial mean, which is itself a linear
map, so the channel weights are linear in the seed::

    w_c = sum_q s(q) * F_c(q),    F_c = d out / d eps  for the layer output  A + eps * T_c

where ``T_c`` is a tangent living on channel ``c`` only. Grad-CAM's mean over the ``h x w`` grid is
``T_c = 1 / (h w)`` (a constant shift of channel ``c``). XGrad-CAM's weights
``sum_p g_c(p) A_c(p) / (sum_p A_c(p) + eps)`` are the same reduction with the activation-weighted
tangent ``T_c = A_c / (sum_p A_c + eps)``: still one tangent per channel, so the same field serves
it. ``F`` (the *field*, one output-shaped tensor per channel) costs ``C`` Jacobian-vector products,
batched with :func:`torch.func.vmap` under a memory budget; afterwards each target costs one dot
product of its seed with ``F``, and a box of an output channel costs O(C) through a summed-area
table of ``F``, whatever its size.

Methods that reduce the gradient *position by position* (Grad-CAM++'s ``alpha`` uses powers of the
gradient, HiResCAM and LayerCAM multiply gradient and activation at each position, LayerCAM clips
each position with a ReLU) are not linear in a per-channel reduction, so no ``C``-tangent field
gives them: they keep one backward pass per target.

Seeds. A target's seed is taken by autograd through the *target alone* (its score on a detached copy
of the output), which is exact by the chain rule for every target whose score is a differentiable
function of the model output and the input only: Area, Pixel, Class, Segment, Latent,
ReconstructionError (``field_seed = True`` on the class). A :class:`~areacam.targets.Score` runs an
arbitrary function, which may also read a tensor stored by a hook during the pass: differentiating
the output alone would then silently miss that path, so a ``Score`` has no seed unless built with
``pure=True``. Without a seed, the explainer answers with backward passes and a warning
(``mode="auto"``) or raises :class:`FieldUnavailable` (``mode="field"``). Box targets (an
``Area``/``Pixel`` with ``box=``) skip the autograd and read a summed-area table of the field.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Protocol

import torch
from torch import Tensor, nn

from areacam._util.errors import one_line
from areacam.core.explanation import Explanation, working_dtype
from areacam.core.forward import NO_ARGS, ForwardArgs
from areacam.core.inputs import check_input
from areacam.core.outputs import detached, leaves, rebuild, replace_part
from areacam.core.state import explaining
from areacam.layers.find import layer_name
from areacam.layers.hooks import Hooks
from areacam.layers.layout import LayerView, Layout
from areacam.layers.provenance import probe, read_or_defer
from areacam.methods.passes import finish
from areacam.targets.base import Target, as_target_list
from areacam.targets.dense import Area

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "JVP_VJP_COST",
    "MODES",
    "NO_SEED",
    "Field",
    "FieldExplainer",
    "FieldUnavailable",
    "break_even",
    "choose_mode",
]

MODES = ("auto", "field", "backward")

#: Cost of one forward-mode product (one channel of the field) in units of one backward pass (one
#: target), measured by ``scripts/bench_field.py`` on the smp U-Net R18 at 160 px, 2 threads (see
#: docs/performance.md). The field pays off above ``break_even(C) = ceil(C * JVP_VJP_COST)`` targets.
JVP_VJP_COST = 0.35

#: Seeds stacked into one matrix product with the field.
_SEED_CHUNK = 32

#: Memory budget of the batched forward-mode products when ``max_memory`` is not given.
DEFAULT_MAX_MEMORY = 1 << 30


class FieldUnavailable(RuntimeError):
    """The field cannot be formed (an op without a forward-mode rule, a target without a seed)."""


def break_even(channels: int) -> int:
    """Number of targets above which the field is faster than backward passes for a ``channels``-wide layer."""
    return max(1, math.ceil(channels * JVP_VJP_COST))


def choose_mode(mode: str, count: int, channels: int) -> str:
    """``"field"`` or ``"backward"`` for ``count`` targets at a layer of ``channels`` channels.

    ``mode="auto"`` picks the field when ``count`` exceeds :func:`break_even`; the others are forced.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    return "field" if count > break_even(channels) else "backward"


NO_SEED = (
    "its function may read more than the model output (e.g. a tensor stored by a hook); build it as "
    "Score(fn, pure=True) when fn reads only its argument"
)


class FieldExplainer(Protocol):
    """What a :class:`Field` needs of its explainer (:class:`~areacam.methods.cam.FieldCAM`)."""

    model: nn.Module
    layer: nn.Module
    view: LayerView

    def field_tangents(self, acts: Tensor) -> Tensor: ...

    def backward(self, x: Tensor, targets: Target | Sequence[Target], fwd: ForwardArgs = ...) -> Explanation: ...


# ------------------------------------------------------------------------------------- the field


class _Shift:
    """Forward hook on the explained layer: records its output once, then adds ``delta`` when set.

    The layer's output part is picked and read as ``(B, C, *s)`` by the explainer's
    :class:`~areacam.layers.LayerView`; ``value`` is the picked part as the layer returns it,
    ``layout`` its reading, ``activation`` the read ``(B, C, *s)`` tensor. With ``measure``, the clean
    pass also records ``largest``: the most elements of one module output computed after the layer
    (what one tangent of the forward-mode products carries at its peak).
    """

    def __init__(self, model: nn.Module, explainer: FieldExplainer, x: Tensor, measure: bool = False):
        self.model, self.layer = model, explainer.layer
        self.view: LayerView = explainer.view
        self.where = f"layer {layer_name(model, explainer.layer)!r}"
        self.input_size = tuple(x.shape[2:])
        self.measure = measure
        self.delta: Tensor | None = None
        self.value: Tensor | None = None
        self.layout: Layout | None = None
        self.largest = 0
        self.paused = False
        self._hooks = Hooks()

    @property
    def activation(self) -> Tensor | None:
        return None if self.value is None or self.layout is None else self.layout(self.value)

    def captured(self) -> tuple[Tensor, Layout]:
        """The layer's output as computed and its reading (``ValueError`` before the layer ran)."""
        if self.value is None or self.layout is None:
            raise ValueError(f"{self.where} did not run in the model's forward pass")
        return self.value, self.layout

    def __enter__(self) -> _Shift:
        with ExitStack() as undo:  # hooks come off if registering one fails
            undo.callback(self._hooks.remove)
            self._hooks.add(self.layer.register_forward_hook(self._hook))
            if self.measure:
                for module in self.model.modules():
                    self._hooks.add(module.register_forward_hook(self._measure))
            undo.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.remove()

    def settle(self, x: Tensor, fwd: ForwardArgs) -> None:
        """Read a tied shape (left unread by the hook) from the layer's autograd graph, this shift's hooks paused."""
        if self.value is None or self.layout is not None:
            return
        self.paused = True
        try:
            self.layout = self.view.read(
                tuple(self.value.shape),
                self.input_size,
                self.where,
                self.layer,
                self.model,
                settle=lambda: probe(self.model, self.layer, self.view, x, fwd, self.where),
            )
        finally:
            self.paused = False

    def _measure(self, module: nn.Module, inputs: tuple, output: object) -> None:
        if self.value is not None and self.delta is None and not self.paused:
            self.largest = max([self.largest] + [leaf.numel() for leaf in leaves(output)])

    def _hook(self, module: nn.Module, inputs: tuple, output: object) -> object:
        if self.paused:
            return None
        part, key = self.view.pick(output, self.where)
        if self.delta is None:
            if self.value is not None:
                raise ValueError(
                    f"{self.where} ran more than once in one forward pass; pick a module that runs once "
                    "(e.g. a stage or block output, not a shared activation)"
                )
            self.layout = read_or_defer(self.view, tuple(part.shape), self.input_size, self.where, module, self.model)
            self.value = part.detach()
            return None
        return replace_part(output, key, part + self.delta)


class Field:
    """The per-channel output derivatives of one batch at one layer; call it with targets.

    Built by ``explainer.field(x, max_memory)`` for :class:`~areacam.GradCAM` (and every
    :class:`~areacam.methods.cam.FieldCAM`: a CAM whose weights are linear in a per-channel reduction
    of the gradient). ``field(targets)`` returns the
    same :class:`~areacam.Explanation` as ``explainer(x, targets)`` with backward passes.

    Attributes: ``activations`` ``(B, C, h, w)`` in the working dtype (float64 for a float64 model, else
    float32; the layer read by its layout; ``layout`` the reading); ``output`` the detached model output;
    ``derivatives`` one ``(B, C, *leaf.shape[1:])`` tensor (working dtype) per floating tensor of the output
    (``F_c`` of the module docstring); ``layer`` the layer's dotted name; ``channels`` ``C``.

    ``max_memory`` (bytes, default 1 GiB) bounds the working memory of the batched forward-mode
    products (the field itself, ``C`` output-sized tensors, comes on top). Where the model has an op
    without a forward-mode rule, the field answers by backward passes and says so in a warning
    (``strict=True``: raises :class:`FieldUnavailable`).
    """

    def __init__(
        self,
        explainer: FieldExplainer,
        x: Tensor,
        max_memory: int | None = None,
        strict: bool = False,
        fwd: ForwardArgs = NO_ARGS,
    ):
        if max_memory is not None and (
            isinstance(max_memory, bool) or not isinstance(max_memory, int) or max_memory <= 0
        ):
            raise ValueError(f"max_memory must be a positive number of bytes, got {max_memory!r}")
        self.explainer = explainer
        self.model = explainer.model
        self.x = check_input(self.model, x)
        self.fwd = fwd
        self.layer = layer_name(self.model, explainer.layer)
        self.max_memory = DEFAULT_MAX_MEMORY if max_memory is None else max_memory
        self.fallback: str | None = None
        self._tables: dict[tuple[int, int | None], tuple[Tensor, Tensor]] = {}
        try:
            self._compute()
        except (RuntimeError, NotImplementedError) as err:
            if isinstance(err, FieldUnavailable):
                raise
            reason = (
                f"the forward-mode products at layer {self.layer!r} failed ({one_line(err, 300)}); an op of the "
                "model has no forward-mode (JVP) rule or no vmap batching rule"
            )
            if strict:
                raise FieldUnavailable(reason + "; use mode='backward'") from err
            warnings.warn(reason + ": answering with backward passes instead", RuntimeWarning, stacklevel=3)
            self.fallback = reason

    def __repr__(self) -> str:
        how = "backward fallback" if self.fallback else f"{self.channels} channels"
        return f"Field({type(self.explainer).__name__}, layer={self.layer!r}, {how})"

    # -------------------------------------------------------------------------------- building

    def _compute(self) -> None:
        model, x = self.model, self.x
        with explaining(model), torch.no_grad(), _Shift(model, self.explainer, x, measure=True) as shift:
            output = self.fwd.run(model, x)
            shift.settle(x, self.fwd)
            acts = shift.activation
            if acts is None:
                raise ValueError(f"layer {self.layer!r} did not run in the model's forward pass")
            if acts.dim() != x.dim():
                raise ValueError(
                    f"CAM methods need an activation with the input's {x.dim() - 2} spatial dims, but layer "
                    f"{self.layer!r} gives {tuple(shift.captured()[0].shape)}, read as {shift.layout}, for an input "
                    f"{tuple(x.shape)}"
                )
            shift.measure = False
            self.output = detached(output)
            self._output_leaves = leaves(self.output)
            work = working_dtype(acts.dtype)
            self.activations = acts.to(work)
            self.layout = str(shift.layout)
            self.channels = acts.shape[1]
            tangents = self.explainer.field_tangents(self.activations).to(acts.dtype)  # (B, C, h, w)
            floating = leaves(output)
            if not floating:
                raise TypeError(f"the model returned no floating tensor ({type(output).__name__})")
            self.derivatives = _jvp_field(model, x, shift, tangents, floating, self.max_memory, self.fwd)

    # ------------------------------------------------------------------------------- answering

    def __call__(self, targets: Target | Sequence[Target]) -> Explanation:
        """The explanation of ``targets`` (one or K): maps, raw, scores, degenerate as a normal call."""
        targets = as_target_list(targets)
        if self.fallback is not None:
            return self.explainer.backward(self.x, targets, self.fwd)
        weights, scores = self.weights(targets)
        acts = self.activations
        raw = torch.einsum("bkc,bcn->bkn", weights, acts.flatten(2)).view(*weights.shape[:2], *acts.shape[2:])
        raw = torch.relu(raw)
        return finish(raw, raw, scores, targets, self.x.shape[2:], self.layout)

    def weights(self, targets: Target | Sequence[Target]) -> tuple[Tensor, Tensor]:
        """Channel weights ``(B, K, C)`` and scores ``(B, K)`` of ``targets``, in the working dtype.

        Raises :class:`FieldUnavailable` naming the first target without a seed.
        """
        targets = as_target_list(targets)
        if self.fallback is not None:
            raise FieldUnavailable(self.fallback)
        batch = self.x.shape[0]
        weights = torch.zeros(batch, len(targets), self.channels, dtype=torch.float64, device=self.x.device)
        work = self.activations.dtype
        scores = torch.zeros(batch, len(targets), dtype=work, device=self.x.device)
        boxes: dict[tuple[int, int | None], list[tuple[int, Area]]] = {}
        seeded: dict[int, list[tuple[int, Tensor]]] = {}
        for k, target in enumerate(targets):
            if isinstance(target, Area) and (key := self._box_key(target)) is not None:
                boxes.setdefault(key, []).append((k, target))
                continue
            seeds, scores[:, k] = self._seeds(target)
            for leaf, seed in seeds:
                seeded.setdefault(leaf, []).append((k, seed))
        for leaf, group in seeded.items():
            field = self.derivatives[leaf].flatten(2)  # (B, C, N)
            for start in range(0, len(group), _SEED_CHUNK):
                part = group[start : start + _SEED_CHUNK]
                stacked = torch.stack([seed.flatten(1) for _, seed in part], dim=1).to(field.dtype)  # (B, k, N)
                weights[:, [k for k, _ in part]] += torch.bmm(stacked, field.transpose(1, 2)).double()
        for box_key, box_group in boxes.items():
            columns = [k for k, _ in box_group]
            weights[:, columns], scores[:, columns] = self._box_weights(box_key, [t for _, t in box_group])
        if not torch.isfinite(scores).all():
            raise ValueError("a target score is not finite: the model output holds NaN or inf there")
        return weights.to(work), scores

    def _box_key(self, target: Area) -> tuple[int, int | None] | None:
        """``(leaf index, channel)`` for a box :class:`Area` / :class:`Pixel` of a dense output, else ``None``."""
        if type(target).score is not Area.score or target.region.box is None:
            return None
        if isinstance(target.channel, tuple):
            return None  # each sample's own channel: the general path
        try:
            selected = target.select(self.output)
        except Exception:
            return None  # the normal path raises the target's own error
        index = next((i for i, leaf in enumerate(self._output_leaves) if leaf is selected), None)
        if index is None or selected.dim() != 4 or self.x.dim() != 4 or len(target.region.box) != 4:
            return None  # images only; signals, volumes and other outputs take the general path
        channels, height, width = selected.shape[1:]
        _, _, bottom, right = target.region.box
        if bottom > height or right > width or not (target.channel is None or -channels <= target.channel < channels):
            return None  # the general path raises the target's own error
        channel = None if target.channel is None else target.channel % channels
        return index, channel

    def _tables_of(self, leaf: int, channel: int | None) -> tuple[Tensor, Tensor]:
        """Summed-area tables, float64, of one output channel (or all): the field's ``(B, C, H + 1, W + 1)``
        and the output's ``(B, 1, H + 1, W + 1)``."""
        key = (leaf, channel)
        if key not in self._tables:
            field = self.derivatives[leaf]  # (B, C, Co, H, W)
            output = self._output_leaves[leaf][:, None]  # (B, 1, Co, H, W)
            tables = []
            for values in (field, output):
                plane = values.double().sum(dim=2) if channel is None else values[:, :, channel].double()
                tables.append(torch.nn.functional.pad(plane.cumsum(dim=2).cumsum(dim=3), (1, 0, 1, 0)))
            self._tables[key] = (tables[0], tables[1])
        return self._tables[key]

    def _box_weights(self, key: tuple[int, int | None], targets: list[Area]) -> tuple[Tensor, Tensor]:
        """Weights ``(B, K, C)`` float64 and scores ``(B, K)`` of box targets via summed-area tables."""
        field, output = self._tables_of(*key)
        rows = torch.tensor([t.region.box for t in targets], device=field.device)  # (K, 4)
        top, left, bottom, right = rows.unbind(1)
        means = torch.tensor([t.reduce == "mean" for t in targets], device=field.device)
        per_channel = 1 if key[1] is not None else self._output_leaves[key[0]].shape[1]
        areas = ((bottom - top) * (right - left) * per_channel).to(field.dtype)
        scale = torch.where(means, 1.0 / areas, torch.ones_like(areas))
        sums = []
        for table in (field, output):
            total = (
                table[..., bottom, right] - table[..., top, right] - table[..., bottom, left] + table[..., top, left]
            )
            sums.append(total.transpose(1, 2) * scale[None, :, None])  # (B, K, C) and (B, K, 1)
        return sums[0], sums[1][..., 0].to(self.activations.dtype)

    def _seeds(self, target: Target) -> tuple[list[tuple[int, Tensor]], Tensor]:
        """``d score / d leaf`` of ``target`` for each output leaf it reads, and its ``(B,)`` score."""
        if not target.field_seed:
            raise FieldUnavailable(f"{target!r} has no seed for a field: {NO_SEED}")
        copies = [leaf.detach().requires_grad_(True) for leaf in leaves(self.output)]
        with torch.enable_grad():
            score = target(rebuild(self.output, list(copies)), self.x)
            if not score.requires_grad:
                raise FieldUnavailable(
                    f"{target!r} has no seed for a field: its score does not depend on the model output "
                    "through autograd"
                )
            grads = torch.autograd.grad(score.sum(), copies, allow_unused=True)
        seeds = [(i, grad) for i, grad in enumerate(grads) if grad is not None]
        return seeds, score.detach().to(self.activations.dtype)


def _jvp_field(
    model: nn.Module,
    x: Tensor,
    shift: _Shift,
    tangents: Tensor,
    floating: list[Tensor],
    max_memory: int,
    fwd: ForwardArgs = NO_ARGS,
) -> list[Tensor]:
    """``F_c`` for every channel: one ``(B, C, *leaf.shape[1:])`` tensor (working dtype) per output leaf.

    ``tangents`` are read like the activations, ``(B, C, *s)``; each channel's tangent goes back to
    the layer's own layout through the adjoint of the reading (the identity for ``nchw``; a scatter
    into the grid's tokens for ``tokens``). Chunks of channels run as one vmapped JVP each; the chunk
    size keeps ``chunk * per_tangent``
    under ``max_memory``, where ``per_tangent`` (bytes of one tangent's forward pass above the layer)
    is estimated generously as 4x the largest module output after the layer plus the outputs.
    """
    channels = tangents.shape[1]
    itemsize = tangents.element_size()
    value, layout = shift.captured()
    largest = max(shift.largest, value.numel())
    per_tangent = itemsize * (4 * largest + 2 * sum(leaf.numel() for leaf in floating))
    chunk = int(max(1, min(channels, max_memory // max(per_tangent, 1))))
    zero = torch.zeros_like(value)
    if layout.kind == "nchw":
        to_layer = None
    else:
        adjoint = torch.func.vjp(layout, value)[1]
        to_layer = torch.func.vmap(lambda tangent: adjoint(tangent)[0])

    def run(delta: Tensor) -> tuple[Tensor, ...]:
        shift.delta = delta
        try:
            return tuple(leaves(fwd.run(model, x)))
        finally:
            shift.delta = None

    def derivative(tangent: Tensor) -> tuple[Tensor, ...]:
        return torch.func.jvp(run, (zero,), (tangent,))[1]

    fields: list[list[Tensor]] = [[] for _ in floating]
    for start in range(0, channels, chunk):
        stop = min(channels, start + chunk)
        basis = torch.zeros(stop - start, *tangents.shape, dtype=tangents.dtype, device=tangents.device)
        index = torch.arange(stop - start, device=tangents.device)
        basis[index, :, index + start] = tangents[:, start:stop].transpose(0, 1)
        if to_layer is not None:
            basis = to_layer(basis)
        outs = torch.func.vmap(derivative)(basis)  # per leaf: (n, B, ...)
        for found, out in zip(fields, outs):
            found.append(out.to(working_dtype(out.dtype)).transpose(0, 1))  # (B, n, ...)
    return [torch.cat(parts, dim=1) for parts in fields]
