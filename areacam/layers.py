"""Layers: finding one by name, capturing its output, and reading that output as a feature map.

Every capture of a layer in areacam goes through :class:`LayerCapture` (explainers, feature maps,
embeddings, filter visualisation) or, for many modules at once, :class:`Hooks` (the layer table,
guided ReLUs). :class:`LayerView` says how a layer's output is read as a ``(B, C, *spatial)``
activation -- channels first, channels last, or a token sequence -- and :class:`Layout` is the
reading it settled on for one shape.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "LAYOUTS",
    "MAX_PREFIX_TOKENS",
    "AmbiguousLayoutError",
    "Hooks",
    "LayerCapture",
    "LayerView",
    "Layout",
    "layer_name",
    "layer_table",
    "replace_part",
    "resolve_layer",
    "unwrap_model",
]

LAYOUTS = ("nchw", "nhwc", "tokens")
# Largest count of class/distillation/register tokens read from the shape alone (DINOv2 with
# registers has 5; papers go up to 1 + 16). A larger count must be given as prefix_tokens=.
MAX_PREFIX_TOKENS = 32


# ------------------------------------------------------------------------------------ finding


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile`` or ``(Distributed)DataParallel`` wrapper runs (repeatedly unwrapped).

    Explainers run this module eagerly on the input's device: it is the same function, and hooks
    on its layers then fire once per forward pass (a DataParallel replica would fire them once per
    device, a compiled graph would break at them).
    """
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def resolve_layer(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    """Return the submodule ``layer`` (a module of ``model`` or its dotted name).

    Names resolve inside compiled and (Distributed)DataParallel wrappers: ``"layer4"`` finds
    ``_orig_mod.layer4`` or ``module.layer4``, and the prefixed names work too.
    """
    if isinstance(layer, nn.Module):
        if not any(module is layer for module in model.modules()):
            raise ValueError(f"layer {type(layer).__name__} is not a module of the model")
        return layer
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a module or a dotted name, got {type(layer).__name__}")
    inner = dict(unwrap_model(model).named_modules())
    if layer in inner:
        return inner[layer]
    outer = dict(model.named_modules())
    if layer in outer:
        return outer[layer]
    names = [name for name in inner if name]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    hint = close or [name for name in names if "." not in name][:8]
    raise ValueError(f"no layer named {layer!r} in {type(model).__name__}; closest valid names: {hint}")


def layer_name(model: nn.Module, layer: nn.Module) -> str:
    """Dotted name of ``layer`` inside ``model`` (without wrapper prefixes; ``""`` for the model)."""
    for name, module in unwrap_model(model).named_modules():
        if module is layer:
            return name
    for name, module in model.named_modules():
        if module is layer:
            return name
    return type(layer).__name__


# ------------------------------------------------------------------------------------- hooks


class Hooks:
    """Hook handles that come off together: on ``remove()`` (safe twice) and on leaving ``with``.

    ``with Hooks() as hooks: hooks.add(module.register_forward_hook(fn))`` -- the hooks are removed
    when the block ends, also when the model raises.
    """

    def __init__(self) -> None:
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def add(self, handle: torch.utils.hooks.RemovableHandle) -> None:
        self._handles.append(handle)

    def __len__(self) -> int:
        return len(self._handles)

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook; safe to call more than once."""
        while self._handles:
            self._handles.pop().remove()


# ------------------------------------------------------------------------------------ layouts


class AmbiguousLayoutError(ValueError):
    """A layer's output shape allows two readings; the message names both and the argument that settles it."""


def _grid_text(grid: Sequence[int]) -> str:
    return "x".join(str(v) for v in grid)


@dataclass(frozen=True)
class Layout:
    """How one activation shape was read: ``kind`` in ``"nchw"``, ``"nhwc"``, ``"tokens"``, ``"reshape"``.

    ``prefix`` and ``grid`` describe a token sequence ``(B, prefix + h*w, C)``; ``assumed`` marks a
    channels-first reading taken by convention because the grid matches the input in neither
    reading. ``str(layout)`` is what :attr:`Explanation.layout` records.
    """

    kind: str
    prefix: int = 0
    grid: tuple[int, ...] = ()
    reshape: Callable[[Tensor], Tensor] | None = None
    assumed: bool = False

    def __str__(self) -> str:
        if self.kind == "tokens":
            return f"tokens(prefix={self.prefix}, grid={_grid_text(self.grid)})"
        if self.kind == "reshape":
            return f"reshape({getattr(self.reshape, '__name__', type(self.reshape).__name__)})"
        return self.kind

    def __call__(self, value: Tensor) -> Tensor:
        """``(B, ...)`` layer output -> ``(B, C, *spatial)`` activation (a view where possible)."""
        if self.kind == "nchw":
            return value
        if self.kind == "nhwc":
            return value.movedim(-1, 1)
        if self.kind == "tokens":
            return value[:, self.prefix :].transpose(1, 2).unflatten(2, self.grid)
        out = self.reshape(value)
        if not isinstance(out, Tensor) or out.dim() < 3 or out.shape[0] != value.shape[0]:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"reshape= must return a (B, C, h, w) tensor with B={value.shape[0]}, got {got} "
                f"for an input of shape {tuple(value.shape)}"
            )
        return out

    def per_target(self, grads: Tensor) -> Tensor:
        """The same reading of ``(B, K, ...)`` gradients: ``(B, K, C, *spatial)``."""
        if self.kind == "nchw":
            return grads
        return self(grads.flatten(0, 1)).unflatten(0, grads.shape[:2])

    def describe(self, shape: Sequence[int]) -> str:
        """Short text for the layer table, e.g. ``"tokens 1+14x14, C=192"`` or ``"nchw 7x7, C=512"``."""
        if self.kind == "tokens":
            return f"tokens {self.prefix}+{_grid_text(self.grid)}, C={shape[-1]}"
        if self.kind == "nhwc":
            return f"nhwc {_grid_text(shape[1:-1])}, C={shape[-1]}"
        if self.kind == "nchw":
            return f"nchw {_grid_text(shape[2:])}, C={shape[1]}{' (assumed)' if self.assumed else ''}"
        return str(self)


def _down_strides(size: int, n: int) -> set[int]:
    """Integer strides ``s`` with ``n`` = floor or ceil of ``size / s``."""
    low = size / (n + 1)
    high = size / (n - 1) if n > 1 else size + 1
    return {s for s in range(math.floor(low) + 1, math.ceil(high)) if 1 <= s <= size}


def _up_factors(size: int, n: int) -> set[int]:
    """Integer upsampling factors ``u > 1`` with ``n`` within one of ``size * u``."""
    return {u for u in range(2, n // max(size, 1) + 2) if abs(size * u - n) < 1}


def grid_matches(input_size: Sequence[int], grid: Sequence[int]) -> bool:
    """Whether ``grid`` is the input's spatial size divided (rounding either way) or multiplied by one
    integer factor shared by every dimension -- i.e. it has the input's aspect ratio."""
    if len(grid) != len(input_size) or any(n < 1 for n in grid):
        return False
    down = set.intersection(*(_down_strides(size, n) for size, n in zip(input_size, grid)))
    up = set.intersection(*(_up_factors(size, n) for size, n in zip(input_size, grid)))
    return bool(down or up)


def _token_grids(tokens: int, input_size: Sequence[int], prefix: int | None) -> list[tuple[int, tuple[int, ...]]]:
    """``(prefix, grid)`` splits of ``tokens`` with a grid that divides the input exactly by one stride."""
    if len(input_size) != 2:
        return []
    height, width = input_size
    prefixes = [prefix] if prefix is not None else range(0, min(MAX_PREFIX_TOKENS, tokens) + 1)
    found = []
    for p in prefixes:
        count = tokens - p
        if count < 1 or (prefix is None and p >= count):  # a guessed prefix is fewer than the grid tokens
            continue
        for stride in range(1, math.gcd(height, width) + 1):
            if height % stride == 0 and width % stride == 0 and (height // stride) * (width // stride) == count:
                found.append((p, (height // stride, width // stride)))
                break
    return found


class LayerView:
    """How to read a layer's output as a ``(B, C, *spatial)`` activation (the explainers' layout keywords).

    - ``layer_output``: the key or index of the part of a dict/tuple/``ModelOutput`` the layer returns
      (``None``: the output itself, or its only tensor);
    - ``layout``: ``"nchw"`` (channels first), ``"nhwc"`` (channels last, e.g. timm Swin) or
      ``"tokens"`` (``(B, N, C)`` with ``prefix_tokens`` class/register tokens, then an ``h x w``
      ``grid`` in row-major order); ``None`` reads it from the shape when the shape decides;
    - ``reshape``: a callable returning ``(B, C, h, w)`` for any other layout (wins over the rest).

    ``grid`` or ``prefix_tokens`` alone imply ``layout="tokens"``.
    """

    def __init__(
        self,
        layout: str | None = None,
        grid: Sequence[int] | None = None,
        prefix_tokens: int | None = None,
        layer_output: Any = None,
        reshape: Callable[[Tensor], Tensor] | None = None,
    ):
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; choose from {LAYOUTS} or pass reshape=")
        if grid is not None:
            if (
                isinstance(grid, (str, bytes))
                or len(grid) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in grid)
            ):
                raise ValueError(f"grid must be two positive ints (h, w), got {grid!r}")
            grid = (int(grid[0]), int(grid[1]))
        if prefix_tokens is not None and (
            isinstance(prefix_tokens, bool) or not isinstance(prefix_tokens, int) or prefix_tokens < 0
        ):
            raise ValueError(f"prefix_tokens must be an int >= 0, got {prefix_tokens!r}")
        if (grid is not None or prefix_tokens is not None) and layout not in (None, "tokens"):
            raise ValueError(f"grid= and prefix_tokens= describe token layers, but layout={layout!r}")
        if reshape is not None and not callable(reshape):
            raise TypeError(f"reshape must be callable, got {type(reshape).__name__}")
        if isinstance(layer_output, (float, bool)) or (layer_output is not None and callable(layer_output)):
            raise TypeError(f"layer_output must be a key or an index, got {layer_output!r}")
        self.layout = "tokens" if layout is None and (grid is not None or prefix_tokens is not None) else layout
        self.grid, self.prefix_tokens = grid, prefix_tokens
        self.layer_output, self.reshape = layer_output, reshape

    def __repr__(self) -> str:
        given = {k: v for k, v in vars(self).items() if v is not None}
        return f"LayerView({', '.join(f'{k}={v!r}' for k, v in given.items())})"

    # -------------------------------------------------------------------------------- the part

    def pick(self, output: object, where: str) -> tuple[Tensor, Any]:
        """The tensor a layer's ``output`` holds and its key/index in it (``None``: the output itself)."""
        key = self.layer_output
        if key is None:
            if isinstance(output, Tensor):
                return output, None
            parts = _parts(output)
            tensors = [k for k, v in parts if isinstance(v, Tensor)]
            if len(tensors) == 1:
                return _get(output, tensors[0]), tensors[0]
            what = f"keys {[k for k, _ in parts]}" if isinstance(output, Mapping) else f"{len(parts)} parts"
            raise TypeError(
                f"{where} returned a {type(output).__name__} ({what}), not a tensor; pass layer_output=<key or index> "
                "to pick the part to explain"
            )
        if isinstance(output, Mapping):
            if key not in output:
                raise KeyError(f"layer_output={key!r} is not a key of what {where} returns (keys: {list(output)})")
        elif isinstance(output, (tuple, list)):
            if not isinstance(key, int):
                raise TypeError(f"layer_output={key!r}: {where} returns a {type(output).__name__}, indexed by int")
            if not -len(output) <= key < len(output):
                raise IndexError(f"layer_output={key} is out of range: {where} returns {len(output)} parts")
        else:
            raise TypeError(f"layer_output={key!r} picks a part, but {where} returned a {type(output).__name__}")
        part = output[key]
        if not isinstance(part, Tensor):
            raise TypeError(f"layer_output={key!r} of {where} is a {type(part).__name__}, not a tensor")
        return part, key

    # ----------------------------------------------------------------------------- the reading

    def read(
        self,
        shape: Sequence[int],
        input_size: Sequence[int],
        where: str,
        module: nn.Module | None = None,
        model: nn.Module | None = None,
    ) -> Layout:
        """Decide the :class:`Layout` of an output of ``shape`` for an input of spatial ``input_size``.

        With no layout argument, a ``module`` whose type fixes its output layout decides it (torch's
        convolutions, batch norms and pools are channels-first; ``nn.Linear`` and ``nn.LayerNorm``
        are channels-last); otherwise the shape must. When the shape allows both channels-first and
        channels-last (e.g. 16 channels on a 16x16 grid), the ``model`` breaks the tie where
        ``nn.Sequential`` semantics prove the layout (a ReLU right after a convolution; see
        :func:`_layout_up_to`). Raises ``ValueError`` when the shape allows two readings that nothing
        settles (naming both and the argument that settles it) or none.
        """
        shape, input_size = tuple(shape), tuple(input_size)
        if self.reshape is not None:
            return Layout("reshape", reshape=self.reshape)
        spatial = len(input_size)
        known = _module_layout(module) if self.layout is None and len(shape) == spatial + 2 else None
        if known is not None:
            return Layout(known)
        if self.layout in ("nchw", "nhwc"):
            if len(shape) < 3:
                raise ValueError(f"layout={self.layout!r} needs an output with >= 3 dims; {where} gives {shape}")
            return Layout(self.layout)
        if self.layout == "tokens":
            return self._tokens(shape, input_size, where)
        if len(shape) == spatial + 2:
            readings = []
            if grid_matches(input_size, shape[2:]):
                readings.append(Layout("nchw"))
            if grid_matches(input_size, shape[1:-1]):
                readings.append(Layout("nhwc"))
            if len(readings) == 2 and (agreed := _layout_up_to(model, module)) is not None:
                return Layout(agreed)
            if len(readings) == 2 and shape[1] != shape[-1]:
                raise AmbiguousLayoutError(
                    f"{where} gives {shape} for an input of spatial size {input_size}: it reads as channels-first "
                    f"(nchw: C={shape[1]}, grid {_grid_text(shape[2:])}) or channels-last (nhwc: C={shape[-1]}, "
                    f"grid {_grid_text(shape[1:-1])}); pass layout='nchw' or layout='nhwc'"
                )
            if len(readings) == 2:
                raise AmbiguousLayoutError(
                    f"{where} gives {shape} for an input of spatial size {input_size}: it reads as channels-first "
                    f"(nchw) or channels-last (nhwc), C={shape[1]} and grid {_grid_text(shape[2:])} either way; "
                    "pass layout='nchw' or layout='nhwc'"
                )
            return readings[0] if readings else Layout("nchw", assumed=True)
        if len(shape) == 3 and spatial == 2:
            return self._tokens(shape, input_size, where)
        raise ValueError(
            f"{where} gives an output of shape {shape}, which is not a feature map for an input of spatial size "
            f"{input_size}: need (B, C, {', '.join('hwd'[i] for i in range(spatial))}), channels-last, or (B, tokens, "
            "C); pick another layer or pass reshape="
        )

    def _tokens(self, shape: tuple, input_size: tuple, where: str) -> Layout:
        if len(shape) != 3:
            raise ValueError(f"layout='tokens' needs a (B, N, C) output; {where} gives an output of shape {shape}")
        tokens = shape[1]
        if self.grid is not None:
            prefix = tokens - self.grid[0] * self.grid[1] if self.prefix_tokens is None else self.prefix_tokens
            if prefix < 0 or prefix + self.grid[0] * self.grid[1] != tokens:
                raise ValueError(
                    f"{where} gives {tokens} tokens, which is not prefix_tokens={self.prefix_tokens} + grid "
                    f"{_grid_text(self.grid)}"
                )
            return Layout("tokens", prefix=prefix, grid=self.grid)
        if len(input_size) != 2:
            raise ValueError(f"token layers need grid=(h, w) for an input of spatial size {input_size}")
        splits = _token_grids(tokens, input_size, self.prefix_tokens)
        if len(splits) == 1:
            prefix, grid = splits[0]
            return Layout("tokens", prefix=prefix, grid=grid)
        if not splits:
            given = f"minus prefix_tokens={self.prefix_tokens} " if self.prefix_tokens is not None else ""
            raise ValueError(
                f"{where} gives an output of shape {shape}: {tokens} tokens {given}do not split into a few prefix "
                f"tokens plus a grid with the aspect ratio of the input {_grid_text(input_size)}; pass grid=(h, w) "
                "and prefix_tokens=, or reshape="
            )
        options = " or ".join(f"prefix_tokens={p} + grid {_grid_text(g)}" for p, g in splits)
        raise AmbiguousLayoutError(
            f"{where} gives {tokens} tokens, read as {options}; pass prefix_tokens= or grid=(h, w)"
        )


_CHANNELS_FIRST = (
    *(
        getattr(nn, f"{kind}{d}d")
        for kind in ("Conv", "ConvTranspose", "BatchNorm", "InstanceNorm", "MaxPool", "AvgPool", "AdaptiveAvgPool",
                     "AdaptiveMaxPool")
        for d in (1, 2, 3)
    ),
    nn.SyncBatchNorm, nn.GroupNorm, nn.Upsample, nn.PixelShuffle,
)


#: Modules whose output has their input's layout (elementwise, or the identity).
_LAYOUT_KEEPING = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
    nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Dropout3d, nn.AlphaDropout, nn.Identity,
)


def _layout_up_to(model: nn.Module | None, module: nn.Module | None) -> str | None:
    """The layout of ``module``'s output as far as ``nn.Sequential`` semantics prove it, else ``None``.

    An ``nn.Sequential`` outputs its last child's output; a layout-keeping module (an activation,
    dropout, identity) inside an ``nn.Sequential`` outputs the layout of its previous sibling; a
    convolution, batch norm or pool fixes its own. Anything else (a module with its own ``forward``,
    which may permute) proves nothing, so a tie between channels-first and channels-last still raises.
    """
    if model is None or module is None:
        return None
    parents = {id(child): (parent, index) for parent in model.modules() if isinstance(parent, nn.Sequential)
               for index, child in enumerate(parent)}
    while True:
        known = _module_layout(module)
        if known is not None:
            return known
        if isinstance(module, nn.Sequential) and len(module) > 0:
            module = module[-1]
        elif isinstance(module, _LAYOUT_KEEPING) and id(module) in parents and parents[id(module)][1] > 0:
            parent, index = parents[id(module)]
            module = parent[index - 1]
        else:
            return None


def _module_layout(module: nn.Module | None) -> str | None:
    """The layout a module's type fixes for its output, if any."""
    if isinstance(module, _CHANNELS_FIRST):
        return "nchw"
    if isinstance(module, (nn.Linear, nn.LayerNorm)):
        return "nhwc"
    return None


def _parts(output: object) -> list[tuple[Any, object]]:
    if isinstance(output, Mapping):
        return list(output.items())
    if isinstance(output, (tuple, list)):
        return list(enumerate(output))
    return []


def _get(output: object, key: Any) -> Tensor:
    return output[key]  # type: ignore[index]


def replace_part(output: object, key: Any, value: Tensor) -> object:
    """``output`` with part ``key`` replaced by ``value`` (a new container; the layer's is untouched)."""
    if key is None:
        return value
    if isinstance(output, Mapping):
        new = copy.copy(output)
        new[key] = value
        return new
    items = list(output)  # type: ignore[call-overload]
    items[key] = value
    if isinstance(output, list):
        return items
    return type(output)(*items) if hasattr(output, "_fields") else type(output)(items)


# ------------------------------------------------------------------------------------ capture


class _Stop(Exception):
    """Raised by a capture hook to end the forward pass once the layer ran."""


class LayerCapture:
    """A forward hook on one layer that captures its output during :meth:`run`.

    ``mode`` says what is captured and how gradients flow:

    - ``"leaf"`` (CAM methods): the picked output part becomes a fresh leaf that requires grad and
      the model continues from a clone of it (in-place ops after the layer never touch it). The
      pass runs under ``no_grad`` until the layer, with autograd on from the layer to the output,
      so no graph is built below it. The caller's grad mode is restored when :meth:`run` returns.
    - ``"value"``: the output under ``no_grad``, detached (feature maps, embeddings).
    - ``"graph"``: the output as computed, inside the caller's grad mode (gradient ascent).

    ``stop=True`` ends the forward pass once the layer ran (:meth:`run` then returns ``None``).
    After a run, ``value`` is the picked part as captured, ``layout`` its :class:`Layout` for the
    input (read when first used; in ``"leaf"`` mode inside the hook, so a layer that is no feature
    map fails before the rest of the model runs) and :meth:`activation` the ``(B, C, *spatial)``
    view. Hooks come off in ``remove()`` (safe twice) and on leaving the ``with`` block, also when
    the model raises.
    """

    MODES = ("leaf", "value", "graph")

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str,
        view: LayerView | None = None,
        mode: str = "leaf",
        stop: bool = False,
    ):
        if mode not in self.MODES:
            raise ValueError(f"unknown capture mode {mode!r}; choose from {self.MODES}")
        self.model = unwrap_model(model)
        self.module = resolve_layer(model, layer)
        self.name = layer_name(model, self.module)
        self.view = view if view is not None else LayerView()
        self.mode, self.stop = mode, stop
        self.value: Tensor | None = None
        self._layout: Layout | None = None
        self.calls = 0
        self._input_size: tuple[int, ...] = ()
        self._hooks = Hooks()

    @property
    def where(self) -> str:
        return f"layer {self.name!r}"

    def __enter__(self) -> LayerCapture:
        self._hooks.add(self.module.register_forward_hook(self._hook))
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the hook; safe to call more than once."""
        self._hooks.remove()

    def run(self, x: Tensor) -> object:
        """Run the model on ``x`` (inside ``with``); the model's output, or ``None`` when stopped.

        Raises ``ValueError`` when the layer did not run.
        """
        self.value, self._layout, self.calls = None, None, 0
        self._input_size = tuple(x.shape[2:])
        grad = torch.no_grad() if self.mode in ("leaf", "value") else nullcontext()
        output = None
        with grad:
            try:
                output = self.model(x)
            except _Stop:
                pass
        if self.value is None:
            raise ValueError(f"{self.where} did not run in the model's forward pass")
        return output

    @property
    def layout(self) -> Layout:
        """The :class:`Layout` of the captured output (read on first use; ``ValueError`` if it has none)."""
        if self.value is None:
            raise ValueError(f"{self.where} has not been captured: call run() first")
        if self._layout is None:
            self._layout = self.view.read(self.value.shape, self._input_size, self.where, self.module, self.model)
        return self._layout

    def activation(self) -> Tensor:
        """The captured output read as ``(B, C, *spatial)`` (a view of :attr:`value` where possible)."""
        return self.layout(self.value)

    def _hook(self, module: nn.Module, inputs: tuple, output: object) -> object:
        self.calls += 1
        if self.calls > 1:
            raise ValueError(
                f"{self.where} ran more than once in one forward pass; pick a module that runs once "
                "(e.g. a stage or block output, not a shared activation)"
            )
        part, key = self.view.pick(output, self.where)
        if self.mode == "leaf":
            self._layout = self.view.read(part.shape, self._input_size, self.where, self.module, self.model)
            torch.set_grad_enabled(True)  # inside run()'s no_grad: restored when run() returns
            self.value = part.detach().requires_grad_(True)
            if self.stop:
                raise _Stop
            return replace_part(output, key, self.value.clone())
        self.value = part.detach() if self.mode == "value" else part
        if self.stop:
            raise _Stop
        return None


# -------------------------------------------------------------------------------- layer table


def layer_table(model: nn.Module, x: Tensor) -> list[dict]:
    """One dummy forward and backward of ``x``: every named module with its output, layout and a CAM suggestion.

    Rows, in ``named_modules()`` order: ``name``, ``type``, ``shape`` (a tuple for a tensor output, a
    list/dict of shapes otherwise), ``calls``, ``layout`` (:meth:`Layout.describe` of the output as
    the explainers read it with no layout argument, ``None`` when it is not a feature map, or the
    reason when the shape is ambiguous), ``reaches`` (the output depends on the map's spatial
    positions: a random projection of the output has a nonzero gradient there) and ``suggested``.
    A layer is suggested when it runs once, reads as a feature map larger than 1x1 that is not an
    output of the model, the output reaches it, and it is the last such layer, in run order, on its
    grid. Hooks are removed in ``finally``.
    """
    from .state import explaining  # the table runs like an explainer: eval mode, grad on
    from .targets import select_output

    inner = unwrap_model(model)
    named = [(name, module) for name, module in inner.named_modules() if name]
    modules = dict(named)
    order: list[tuple[str, object]] = []
    input_size = tuple(x.shape[2:])

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            order.append((name, output))

        return hook

    with explaining(inner), Hooks() as hooks:
        for name, module in named:
            hooks.add(module.register_forward_hook(record(name)))
        inputs = x.detach().clone().requires_grad_(True)
        output = inner(inputs)
    view = LayerView()
    finals = {tuple(t.shape) for _, t in _parts(output) if isinstance(t, Tensor)} | (
        {tuple(output.shape)} if isinstance(output, Tensor) else set()
    )
    counts: dict[str, int] = {}
    first: dict[str, object] = {}
    for name, out in order:
        counts[name] = counts.get(name, 0) + 1
        first.setdefault(name, out)
    layouts: dict[str, Layout | str | None] = {}
    for name, out in first.items():
        layouts[name] = None
        if isinstance(out, Tensor) and out.is_floating_point() and out.shape[:1] == x.shape[:1]:
            try:
                layouts[name] = view.read(out.shape, input_size, f"layer {name!r}", modules[name], model)
            except AmbiguousLayoutError:
                layouts[name] = "ambiguous: pass layout="
            except ValueError:
                pass
    maps = {
        name: lay for name, lay in layouts.items()
        if isinstance(lay, Layout) and not lay.assumed and counts[name] == 1
        and tuple(first[name].shape) not in finals and math.prod(lay(first[name]).shape[2:]) > 1
    }
    reaches = _reaches(output, {name: first[name] for name in maps}, maps, select_output)
    suggested: set[str] = set()
    runs = [(name, tuple(maps[name](first[name]).shape[2:])) for name, _ in order if name in maps and reaches[name]]
    for (name, grid), (_, nxt) in zip(runs, [*runs[1:], (None, None)]):
        if nxt != grid:
            suggested.add(name)
    rows = []
    for name, module in named:
        out = first.get(name)
        lay = layouts.get(name)
        rows.append(
            {
                "name": name,
                "type": type(module).__name__,
                "shape": None if name not in first else tuple(out.shape) if isinstance(out, Tensor) else _shapes(out),
                "calls": counts.get(name, 0),
                "layout": lay.describe(out.shape) if isinstance(lay, Layout) else lay,
                "reaches": reaches.get(name, False),
                "suggested": name in suggested,
            }
        )
    return rows


def _reaches(output: object, tensors: dict[str, Tensor], layouts: dict[str, Layout], select) -> dict[str, bool]:
    """Per name: whether a fixed random projection of the model output has a nonzero gradient on the map."""
    result = dict.fromkeys(tensors, False)
    try:
        selected = select(output, None)
    except (KeyError, TypeError, IndexError):
        return result
    names = [n for n, t in tensors.items() if t.requires_grad]
    if not names or not selected.requires_grad or not selected.is_floating_point():
        return result
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(selected.shape, generator=generator).to(selected.device, selected.dtype)
    grads = torch.autograd.grad((selected * weights).sum(), [tensors[n] for n in names], allow_unused=True)
    for name, grad in zip(names, grads):
        result[name] = grad is not None and bool(layouts[name](grad).abs().amax() > 0)
    return result


def _shapes(output: object) -> object:
    if isinstance(output, (tuple, list)):
        return [tuple(o.shape) if isinstance(o, Tensor) else type(o).__name__ for o in output]
    if isinstance(output, Mapping):
        return {k: tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for k, v in output.items()}
    return type(output).__name__
