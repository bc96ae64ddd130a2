"""Reading a layer's output as a ``(B, C, *spatial)`` feature map: channels first, channels last, tokens.

:class:`LayerView` holds the explainers' layout keywords and decides a :class:`Layout` for one output
shape: from the arguments, from the module's type, from the shape when only one reading fits, from
``nn.Sequential`` semantics when two readings tie; otherwise it raises :class:`AmbiguousLayoutError`
naming both readings and the argument that settles it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from torch import Tensor, nn

from areacam.core.outputs import parts

__all__ = [
    "LAYOUTS",
    "MAX_PREFIX_TOKENS",
    "AmbiguousLayoutError",
    "LayerView",
    "Layout",
    "ViewArgs",
    "grid_matches",
    "module_layout",
]

LAYOUTS = ("nchw", "nhwc", "tokens")
# Largest count of class/distillation/register tokens read from the shape alone (DINOv2 with
# registers has 5; papers go up to 1 + 16). A larger count must be given as prefix_tokens=.
MAX_PREFIX_TOKENS = 32


class ViewArgs(TypedDict, total=False):
    """The layout keywords every layer explainer takes after ``layer`` (see :class:`LayerView`)."""

    layout: str | None
    grid: Sequence[int] | None
    prefix_tokens: int | None
    layer_output: Any
    reshape: Callable[[Tensor], Tensor] | None


class AmbiguousLayoutError(ValueError):
    """A layer's output shape allows two readings; the message names both and the argument that settles it.

    ``tie`` is true for a channels-first/channels-last tie, which the layer's autograd graph may settle
    (:mod:`areacam.layers.provenance`).
    """

    def __init__(self, message: str, tie: bool = False):
        super().__init__(message)
        self.tie = tie


def _grid_text(grid: Sequence[int]) -> str:
    return "x".join(str(v) for v in grid)


@dataclass(frozen=True)
class Layout:
    """How one activation shape was read: ``kind`` in ``"nchw"``, ``"nhwc"``, ``"tokens"``, ``"reshape"``.

    ``prefix`` and ``grid`` describe a token sequence ``(B, prefix + h*w, C)``; ``assumed`` marks a
    channels-first reading taken by convention because the grid matches the input in neither
    reading; ``source`` names the module whose output fixes a tied shape's layout (provenance).
    ``str(layout)`` is what :attr:`Explanation.layout` records, e.g. ``"nchw (from up_blocks.0.conv)"``.
    """

    kind: str
    prefix: int = 0
    grid: tuple[int, ...] = ()
    reshape: Callable[[Tensor], Tensor] | None = None
    assumed: bool = False
    source: str = ""

    def __str__(self) -> str:
        if self.source:
            return f"{self.kind} (from {self.source})"
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
        assert self.reshape is not None, "a reshape layout carries its function"
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
        how = f" (from {self.source})" if self.source else " (assumed)" if self.assumed else ""
        if self.kind == "nhwc":
            return f"nhwc {_grid_text(shape[1:-1])}, C={shape[-1]}{how}"
        if self.kind == "nchw":
            return f"nchw {_grid_text(shape[2:])}, C={shape[1]}{how}"
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
    found: list[tuple[int, tuple[int, ...]]] = []
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
            found = parts(output)
            tensors = [(k, v) for k, v in found if isinstance(v, Tensor)]
            if len(tensors) == 1:
                return tensors[0][1], tensors[0][0]
            what = f"keys {[k for k, _ in found]}" if isinstance(output, Mapping) else f"{len(found)} parts"
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
        settle: Callable[[], tuple[str, str] | None] | None = None,
    ) -> Layout:
        """Decide the :class:`Layout` of an output of ``shape`` for an input of spatial ``input_size``.

        With no layout argument, a ``module`` whose type fixes its output layout decides it (torch's
        convolutions, batch norms and pools are channels-first; ``nn.Linear`` and ``nn.LayerNorm``
        are channels-last); otherwise the shape must. When the shape allows both channels-first and
        channels-last (e.g. 16 channels on a 16x16 grid), the ``model`` breaks the tie where
        ``nn.Sequential`` semantics prove the layout (a ReLU right after a convolution; see
        :func:`_layout_up_to`), else ``settle`` does when given: it returns ``(layout, module name)``
        from the layer's autograd graph (:func:`areacam.layers.provenance.probe`) or ``None``. Raises
        ``ValueError`` when the shape allows two readings that nothing settles (naming both and the
        argument that settles it; :class:`AmbiguousLayoutError` with ``tie=True``) or none.
        """
        shape, input_size = tuple(shape), tuple(input_size)
        if self.reshape is not None:
            return Layout("reshape", reshape=self.reshape)
        spatial = len(input_size)
        known = module_layout(module) if self.layout is None and len(shape) == spatial + 2 else None
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
            if len(readings) == 2 and settle is not None and (found := settle()) is not None:
                return Layout(found[0], source=found[1])
            if len(readings) == 2:
                both = (
                    f"(nchw: C={shape[1]}, grid {_grid_text(shape[2:])}) or channels-last (nhwc: C={shape[-1]}, "
                    f"grid {_grid_text(shape[1:-1])})"
                    if shape[1] != shape[-1]
                    else f"(nchw) or channels-last (nhwc), C={shape[1]} and grid {_grid_text(shape[2:])} either way"
                )
                graph = (
                    "; its autograd graph does not settle it (a path back from it meets a permute, reshape or "
                    "other op before any convolution, norm or linear layer)"
                    if settle is not None
                    else ""
                )
                raise AmbiguousLayoutError(
                    f"{where} gives {shape} for an input of spatial size {input_size}: it reads as channels-first "
                    f"{both}{graph}; pass layout='nchw' or layout='nhwc'",
                    tie=True,
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
        for kind in (
            "Conv",
            "ConvTranspose",
            "BatchNorm",
            "InstanceNorm",
            "MaxPool",
            "AvgPool",
            "AdaptiveAvgPool",
            "AdaptiveMaxPool",
        )
        for d in (1, 2, 3)
    ),
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.Upsample,
    nn.PixelShuffle,
)


#: Modules whose output has their input's layout (elementwise, or the identity).
_LAYOUT_KEEPING = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Softplus,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.Identity,
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
    parents = {
        id(child): (parent, index)
        for parent in model.modules()
        if isinstance(parent, nn.Sequential)
        for index, child in enumerate(parent)
    }
    while True:
        known = module_layout(module)
        if known is not None:
            return known
        if isinstance(module, nn.Sequential) and len(module) > 0:
            module = module[-1]
        elif isinstance(module, _LAYOUT_KEEPING) and id(module) in parents and parents[id(module)][1] > 0:
            parent, index = parents[id(module)]
            module = parent[index - 1]
        else:
            return None


def module_layout(module: nn.Module | None) -> str | None:
    """The layout a module's type fixes for its output, if any."""
    if isinstance(module, _CHANNELS_FIRST):
        return "nchw"
    if isinstance(module, (nn.Linear, nn.LayerNorm)):
        return "nhwc"
    return None
