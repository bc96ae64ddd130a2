"""Targets: turn a model output into one score per sample, shape ``(B,)``.

A target is a small callable ``target(output, inputs) -> (B,)``. ``output`` is whatever the model
returned (tensor, tuple, dict); ``inputs`` is the explained ``(B, C, *spatial)`` batch: dense targets read its number of
spatial dims (1: signals, 2: images, 3: volumes) to read the output as ``(B, C, *spatial)``, and
:class:`ReconstructionError` compares against it. Every explainer accepts one target or a list of ``K``
targets and evaluates all of them on the same forward pass.

Regions are boxes with one ``(start, stop)`` pair per spatial dim, starts first: ``(start, stop)``
for a signal, ``(top, left, bottom, right)`` for an image, ``(z0, y0, x0, z1, y1, x1)`` for a
volume; or masks of the output's spatial shape, shared ``(*spatial)`` or per sample ``(B, *spatial)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .state import SPATIAL_SHAPES

OutputSelector = int | str | Callable[[Any], Tensor] | None
MaskLike = Tensor | np.ndarray
Box = tuple[int, ...]
Samples = int | Sequence[int] | Tensor

__all__ = [
    "Area",
    "Class",
    "Latent",
    "Pixel",
    "ReconstructionError",
    "Score",
    "Segment",
    "Target",
    "as_target_list",
    "check_samples",
    "select_output",
]


def select_output(output: Any, selector: OutputSelector) -> Tensor:
    """Pick the tensor a target reads from a model output.

    ``None`` takes a tensor as is, a mapping's ``"out"`` entry (torchvision segmentation models),
    else its ``"logits"`` (Hugging Face ``ModelOutput``), or element 0 of a tuple/list; an int or
    str indexes a tuple/list/mapping; a callable is applied to the whole output.
    """
    if callable(selector):
        picked = selector(output)
    elif selector is None:
        if isinstance(output, Tensor):
            picked = output
        elif isinstance(output, Mapping):
            key = next((k for k in ("out", "logits") if k in output), None)
            if key is None:
                raise KeyError(
                    f"model returned a {type(output).__name__} with neither an 'out' nor a 'logits' entry (keys: "
                    f"{sorted(map(str, output))}); pass output=<key> to the target"
                )
            picked = output[key]
        elif isinstance(output, (tuple, list)) and len(output) > 0:
            picked = output[0]
        else:
            raise TypeError(f"cannot read a tensor from a model output of type {type(output).__name__}")
    elif isinstance(output, Tensor):
        raise TypeError(
            f"output={selector!r} reads part of a structured output, but the model returned a single "
            f"tensor of shape {tuple(output.shape)}; use output=None"
        )
    elif isinstance(output, Mapping):
        if selector not in output:
            raise KeyError(f"output={selector!r} is not a key of the model output (keys: {list(output)})")
        picked = output[selector]
    elif isinstance(output, (tuple, list)):
        if not isinstance(selector, int):
            raise TypeError(f"output={selector!r}: a {type(output).__name__} output is indexed by int")
        if not -len(output) <= selector < len(output):
            raise IndexError(f"output={selector} is out of range for a model output of {len(output)} parts")
        picked = output[selector]
    else:
        raise TypeError(f"cannot index a model output of type {type(output).__name__} with {selector!r}")
    if not isinstance(picked, Tensor):
        raise TypeError(f"the selected model output is a {type(picked).__name__}, not a tensor")
    return picked


BOX_NAMES = {1: "(start, stop)", 2: "(top, left, bottom, right)", 3: "(z0, y0, x0, z1, y1, x1)"}


def check_box(box: Sequence[int]) -> Box:
    """A box as ints: one ``(start, stop)`` pair per spatial dim, starts first (``ValueError``).

    ``(start, stop)`` for signals, ``(top, left, bottom, right)`` for images, ``(z0, y0, x0, z1,
    y1, x1)`` for volumes; stops are exclusive, like slicing. Checked non-negative and non-empty.
    """
    if (
        isinstance(box, (str, bytes))
        or not isinstance(box, Sequence)
        or len(box) not in (2, 4, 6)
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in box)
    ):
        raise ValueError(
            f"box must be 4 ints {BOX_NAMES[2]} for an image, 6 {BOX_NAMES[3]} for a volume or 2 "
            f"{BOX_NAMES[1]} for a signal, got {box!r}"
        )
    values = tuple(int(v) for v in box)
    half = len(values) // 2
    starts, stops = values[:half], values[half:]
    if any(v < 0 for v in starts):
        raise ValueError(f"box {box!r} has a negative corner")
    if any(stop <= start for start, stop in zip(starts, stops)):
        raise ValueError(f"box {box!r} is empty: each stop is exclusive and must exceed its start")
    return values


def check_samples(samples: Samples) -> int | list[int]:
    """``samples`` of :meth:`Target.bind` as an int or a list of ints (``TypeError``/``ValueError``)."""
    if isinstance(samples, Tensor):
        samples = samples.tolist()
    if isinstance(samples, (int, np.integer)) and not isinstance(samples, bool):
        return int(samples)
    if isinstance(samples, Sequence) and not isinstance(samples, str):
        values = list(samples)
        if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            return [int(v) for v in values]
    raise TypeError(f"samples must be an int or a non-empty sequence of ints, got {samples!r}")


def _take_rows(values: Tensor, samples: int | list[int], what: str) -> Tensor:
    """Rows ``samples`` of a per-sample tensor; an int drops the batch dim."""
    count = values.shape[0]
    wanted = [samples] if isinstance(samples, int) else samples
    bad = [v for v in wanted if not -count <= v < count]
    if bad:
        raise IndexError(f"sample {bad[0]} is out of range for {what} of {count} samples")
    return values[samples]


class Target:
    """Base class: ``target(output, inputs)`` returns a ``(B,)`` score tensor.

    ``field_seed``: the score reads nothing but the model output and the inputs, so its gradient with
    respect to the output (autograd through the target alone) is exact for fields (areacam.field).
    """

    output: OutputSelector = None
    field_seed: bool = True

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Score of the selected output ``out``: ``(B,)``."""
        raise NotImplementedError

    def select(self, output: Any) -> Tensor:
        """The part of the model output this target reads."""
        return select_output(output, self.output)

    def bind(self, samples: Samples, output: Any = None) -> Target:
        """This target for a new batch drawn from the samples it was written for.

        ``samples`` is one sample index (the new batch holds only copies or perturbations of that
        sample, any number of them) or a 1-D sequence of indices (sample ``i`` of the new batch is
        sample ``samples[i]`` of the original one). Per-sample arguments (a list of class indices,
        a ``(B, H, W)`` mask) are taken at those indices. With ``output``, the model output on the
        original batch, per-sample choices made from the output are frozen there: ``Class()``'s
        argmax and ``Segment``'s predicted pixels. The default returns the target itself.
        """
        check_samples(samples)
        return self

    def __call__(self, output: Any, inputs: Tensor) -> Tensor:
        scores = self.score(self.select(output), inputs)
        batch = inputs.shape[0]
        if not isinstance(scores, Tensor) or scores.shape != (batch,):
            shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ValueError(f"{self!r} returned scores of shape {shape}; expected ({batch},)")
        return scores


class Class(Target):
    """``logits[:, index]`` of a ``(B, N)`` output; ``index=None``: each sample's argmax.

    ``index`` is an int or a sequence of exactly ``B`` ints (one per sample).
    """

    def __init__(self, index: int | Sequence[int] | Tensor | None = None, output: OutputSelector = None):
        if isinstance(index, Tensor):
            index = index.tolist()
        if isinstance(index, (bool, float)) or (
            index is not None and not isinstance(index, (int, np.integer, Sequence))
        ):
            raise TypeError(f"Class index must be an int, a sequence of ints or None, got {index!r}")
        self.index = index
        self.output = output

    def __repr__(self) -> str:
        return "Class(argmax)" if self.index is None else f"Class({self.index!r})"

    def bind(self, samples: Samples, output: Any = None) -> Target:
        samples = check_samples(samples)
        if isinstance(self.index, (int, np.integer)):
            return self
        if self.index is None:
            if output is None:
                return self  # argmax of each new sample
            logits = self.select(output).detach()
            if logits.dim() != 2:
                raise ValueError(f"Class needs a (B, N) output, got shape {tuple(logits.shape)}")
            index = _take_rows(logits, samples, "an output").argmax(dim=-1).tolist()
        else:
            index = _take_rows(torch.tensor([int(v) for v in self.index]), samples, "Class indices").tolist()
        return Class(index, output=self.output)

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        if out.dim() != 2:
            raise ValueError(
                f"Class needs a (B, N) output, got shape {tuple(out.shape)}; for a dense output use "
                "Area, Pixel or Segment"
            )
        batch, classes = out.shape
        if self.index is None:
            idx = out.detach().argmax(dim=1)
        else:
            values = [self.index] if isinstance(self.index, (int, np.integer)) else list(self.index)
            if not isinstance(self.index, (int, np.integer)) and len(values) != batch:
                raise ValueError(f"Class got {len(values)} indices for a batch of {batch}; give one per sample")
            bad = [v for v in values if not -classes <= int(v) < classes]
            if bad:
                raise IndexError(f"class index {bad[0]} is out of range for an output of {classes} classes")
            idx = torch.tensor([int(v) % classes for v in values], device=out.device).expand(batch)
        return out.gather(1, idx.view(batch, 1)).squeeze(1)


class _Region:
    """A region of a dense ``(B, C, *spatial)`` output: a box, a mask, or everything.

    The number of spatial dims is read from the output when the region is used, so the same
    region type serves signals, images and volumes; a box or mask that does not match raises.
    """

    def __init__(self, mask: MaskLike | None, box: Sequence[int] | None):
        if mask is not None and box is not None:
            raise ValueError("give a mask or a box, not both")
        self.box = check_box(box) if box is not None else None
        self.mask = _as_mask(mask) if mask is not None else None
        self.samples: int | list[int] | None = None  # rows of a per-sample mask, set by take()

    def crop(self, *tensors: Tensor) -> tuple[list[Tensor], Tensor | None]:
        """The ``(B, C, *spatial)`` tensors cut to the box, and the mask weights (``None``: all ones).

        Slicing a box instead of multiplying by a box mask gives the same scores and gradients and
        touches only the region.
        """
        if self.box is None:
            return list(tensors), self.weights(tensors[0])
        slices = self._slices(tensors[0])
        return [tensor[slices] for tensor in tensors], None

    def _slices(self, out: Tensor) -> tuple:
        """``(..., slice, ...)`` indexing the box in ``out``, checked to fit its spatial dims."""
        spatial = tuple(out.shape[2:])
        half = len(self.box) // 2
        if half != len(spatial):
            raise ValueError(
                f"box {self.box} is a {half}-D box {BOX_NAMES[half]}, but the output of shape "
                f"{tuple(out.shape)} has {len(spatial)} spatial dims: give a box "
                f"{BOX_NAMES.get(len(spatial), f'of {2 * len(spatial)} ints')}"
            )
        starts, stops = self.box[:half], self.box[half:]
        if any(stop > size for stop, size in zip(stops, spatial)):
            raise ValueError(f"box {self.box} reaches outside the output of size {spatial}")
        return (Ellipsis, *(slice(start, stop) for start, stop in zip(starts, stops)))

    def weights(self, out: Tensor) -> Tensor | None:
        """Region weights broadcastable to ``out`` ``(B, C, *spatial)``, or ``None`` for everything."""
        spatial = tuple(out.shape[2:])
        if self.box is not None:
            slices = self._slices(out)
            weights = out.new_zeros((1, 1, *spatial))
            weights[slices] = 1
            return weights
        if self.mask is None:
            return None
        mask = self.mask
        batch = out.shape[0]
        if mask.dim() == len(spatial) + 1 and tuple(mask.shape[1:]) == spatial:
            if self.samples is not None and mask.shape[0] != 1:
                mask = _take_rows(mask, self.samples, "a mask")
                mask = mask.unsqueeze(0) if isinstance(self.samples, int) else mask
            if mask.shape[0] not in (1, batch):
                raise ValueError(
                    f"mask of shape {tuple(mask.shape)} does not fit the output: {mask.shape[0]} rows for a "
                    f"batch of {batch}"
                )
        elif tuple(mask.shape) != spatial:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not fit the output: expected {spatial} or "
                f"({batch}, {', '.join(map(str, spatial))})"
            )
        mask = mask.to(device=out.device, dtype=out.dtype)
        return mask.view(-1, 1, *spatial)

    def take(self, samples: int | list[int]) -> _Region:
        """This region for the batch ``samples`` (see :meth:`Target.bind`).

        A per-sample ``(B, *spatial)`` mask is indexed when used (whether a mask is shared or per
        sample depends on the output's spatial dims); a box, a shared mask or everything stay.
        """
        if self.mask is None or self.mask.dim() == 1 or self.mask.shape[0] == 1:
            return self
        region = copy.copy(self)
        region.samples = samples if self.samples is None else _compose(self.samples, samples)
        if self.mask.dim() == 4:  # only a per-sample volume mask can be 4-D: check the rows now
            _take_rows(self.mask[:, :1, :1, :1], region.samples, "a mask")
        return region

    def describe(self) -> str:
        if self.box is not None:
            return f"box={self.box}"
        return "mask" if self.mask is not None else "all"


def _compose(first: int | list[int], then: int | list[int]) -> int | list[int]:
    """Sample indices of taking ``then`` from a batch that was taken as ``first``."""
    if isinstance(first, int):
        return first  # every row of the first batch is that one sample
    return _take_rows(torch.tensor(first), then, "a bound batch").tolist()


def _as_mask(mask: MaskLike) -> Tensor:
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a tensor or numpy array, got {type(mask).__name__}")
    if mask.dim() not in (1, 2, 3, 4):
        raise ValueError(
            "mask must be (L) or (B, L) for signals, (H, W) or (B, H, W) for images, (D, H, W) or "
            f"(B, D, H, W) for volumes, got shape {tuple(mask.shape)}"
        )
    mask = mask.detach().float()
    if not torch.isfinite(mask).all():
        raise ValueError("mask contains NaN or inf")
    if (mask < 0).any():
        raise ValueError("mask weights must be >= 0")
    if not (mask > 0).any():
        raise ValueError("mask is empty: no pixel has a positive weight")
    return mask


def _dense(out: Tensor, name: str, inputs: Tensor) -> Tensor:
    """``out`` as ``(B, C, *spatial)`` with the input's number of spatial dims (``(B, *spatial)`` gains C=1)."""
    spatial = inputs.dim() - 2
    if out.dim() == spatial + 1:
        return out.unsqueeze(1)
    if out.dim() != spatial + 2:
        shape = SPATIAL_SHAPES.get(spatial, "(B, C, *spatial)")
        raise ValueError(
            f"{name} needs a dense {shape} output, got shape {tuple(out.shape)} (the input "
            f"{tuple(inputs.shape)} has {spatial} spatial dims)"
        )
    return out


def _check_channel(channel: int | None, channels: int, what: str = "channel") -> None:
    if channel is not None and not -channels <= channel < channels:
        raise IndexError(f"{what} {channel} is out of range for an output of {channels} channels")


class _RegionTarget(Target):
    """A target with a ``region``: binding indexes a per-sample mask."""

    region: _Region

    def bind(self, samples: Samples, output: Any = None) -> Target:
        region = self.region.take(check_samples(samples))
        if region is self.region:
            return self
        bound = copy.copy(self)
        bound.region = region
        return bound


class Area(_RegionTarget):
    """Sum (or mean) of a ``(B, C, *spatial)`` output over a region.

    ``box=(top, left, bottom, right)`` slices ``out[..., top:bottom, left:right]`` (volumes:
    ``(z0, y0, x0, z1, y1, x1)``, signals: ``(start, stop)``); ``mask`` is a ``(*spatial)`` or
    ``(B, *spatial)`` bool/float array at the output's size (floats are weights); neither means the
    whole output. ``channel`` picks one channel, ``None`` sums all.
    """

    def __init__(
        self,
        mask: MaskLike | None = None,
        box: Sequence[int] | None = None,
        channel: int | None = None,
        reduce: str = "sum",
        output: OutputSelector = None,
    ):
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        if channel is not None and not isinstance(channel, (int, np.integer)):
            raise TypeError(f"channel must be an int or None, got {channel!r}")
        self.region = _Region(mask, box)
        self.channel = channel
        self.reduce = reduce
        self.output = output

    def __repr__(self) -> str:
        channel = "" if self.channel is None else f", channel={self.channel}"
        return f"{type(self).__name__}({self.region.describe()}{channel})"

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        out = _dense(out, type(self).__name__, inputs)
        _check_channel(self.channel, out.shape[1])
        if self.channel is not None:
            channel = self.channel % out.shape[1]  # -1 is the last channel, as in indexing
            out = out[:, channel : channel + 1]
        (out,), weights = self.region.crop(out)
        if weights is None:
            total = out.flatten(1).sum(1)
            count = out[0].numel()
        else:
            total = (out * weights).flatten(1).sum(1)
            count = weights.flatten(1).sum(1) * out.shape[1]
        return total / count if self.reduce == "mean" else total


class Pixel(Area):
    """One output element, one coordinate per spatial dim: ``Pixel(y, x)``, ``Pixel(z, y, x)``, ``Pixel(t)``.

    An :class:`Area` of a single pixel, voxel or signal sample; ``channel`` is keyword-only.
    """

    def __init__(self, *coords: int, channel: int | None = None, output: OutputSelector = None):
        if not 1 <= len(coords) <= 3:
            raise TypeError(f"Pixel takes 1 to 3 coordinates (t), (y, x) or (z, y, x), got {coords!r}")
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in coords):
            raise ValueError(f"Pixel coordinates must be ints, got {coords!r}")
        coords = tuple(int(v) for v in coords)
        super().__init__(box=(*coords, *(v + 1 for v in coords)), channel=channel, output=output)
        self.coords = coords
        if len(coords) >= 2:
            self.y, self.x = coords[-2:]  # the image coordinates, as 2-D code reads them

    def __repr__(self) -> str:
        channel = "" if self.channel is None else f", channel={self.channel}"
        return f"Pixel({', '.join(map(str, self.coords))}{channel})"


class Segment(_RegionTarget):
    """Seg-Grad-CAM: sum of ``logits[:, cls]`` over the pixels predicted as ``cls`` inside a region.

    Prediction is the argmax over channels; for a single-channel binary output, ``cls`` must be 0
    and the predicted pixels are those with logit > 0. The region is a ``box`` or ``mask`` as for
    :class:`Area` (default: the whole image). No predicted pixel gives a zero score and a
    degenerate map.
    """

    def __init__(
        self,
        cls: int,
        mask: MaskLike | None = None,
        box: Sequence[int] | None = None,
        output: OutputSelector = None,
    ):
        if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)):
            raise TypeError(f"Segment class must be an int, got {cls!r}")
        self.cls = int(cls)
        self.region = _Region(mask, box)
        self.output = output
        self.frozen: Tensor | None = None  # the output rows bind() froze the prediction at

    def __repr__(self) -> str:
        region = "" if self.region.describe() == "all" else f", {self.region.describe()}"
        return f"Segment({self.cls}{region})"

    def predicted(self, out: Tensor, inputs: Tensor) -> Tensor:
        """``(B, 1, *spatial)`` float mask of the pixels predicted as ``cls`` (``inputs`` gives the spatial dims)."""
        out = _dense(out, "Segment", inputs)
        channels = out.shape[1]
        if channels == 1:
            if self.cls != 0:
                raise IndexError(f"a single-channel output has only class 0, got Segment({self.cls})")
            return (out.detach() > 0).to(out.dtype)
        _check_channel(self.cls, channels, "Segment class")
        if self.cls < 0:
            raise IndexError(f"Segment class {self.cls} must be >= 0")
        return (out.detach().argmax(dim=1, keepdim=True) == self.cls).to(out.dtype)

    def bind(self, samples: Samples, output: Any = None) -> Target:
        """With ``output``: the pixels predicted as ``cls`` there stay fixed, whatever the new output predicts.

        The selected output rows are kept (one row, broadcast, for an int ``samples``) and the
        prediction is read from them when the bound target scores, where the input tells the spatial
        dims. A target bound before keeps its frozen rows and ignores ``output``.
        """
        bound = super().bind(samples)
        if output is None and self.frozen is None:
            return bound
        samples = check_samples(samples)
        rows = self.select(output).detach() if self.frozen is None else self.frozen
        if rows.shape[0] != 1 or self.frozen is None:
            rows = _take_rows(rows, samples, "an output")
            rows = rows.unsqueeze(0) if isinstance(samples, int) else rows
        bound = copy.copy(bound)
        bound.frozen = rows
        return bound

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        if self.frozen is not None:
            return self._frozen_score(self.frozen, out, inputs)
        pixels = self.predicted(out, inputs)
        out = _dense(out, "Segment", inputs)
        (logits, pixels), weights = self.region.crop(out[:, self.cls : self.cls + 1], pixels)
        if weights is not None:
            pixels = pixels * weights
        return (logits * pixels).flatten(1).sum(1)

    def _frozen_score(self, frozen: Tensor, out: Tensor, inputs: Tensor) -> Tensor:
        """Sum of ``out[:, cls]`` over the pixels predicted in ``frozen`` (the output :meth:`bind` saw)."""
        pixels = self.predicted(frozen.to(out.device), inputs)
        weights = self.region.weights(pixels)
        if weights is not None:
            pixels = pixels * weights
        out = _dense(out, "Segment", inputs)
        if out.shape[2:] != pixels.shape[2:]:
            raise ValueError(
                f"the output of shape {tuple(out.shape)} does not match the bound Segment's output "
                f"{tuple(frozen.shape)}"
            )
        return (out[:, self.cls : self.cls + 1] * pixels).flatten(1).sum(1)


class Latent(Target):
    """``out[:, index]`` of a ``(B, D)`` part of a structured output, e.g. a VAE's ``mu``."""

    def __init__(self, index: int, output: OutputSelector = 1):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Latent index must be an int, got {index!r}")
        self.index = int(index)
        self.output = output

    def __repr__(self) -> str:
        return f"Latent({self.index})"

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        if out.dim() != 2:
            raise ValueError(f"Latent needs a (B, D) output part, got shape {tuple(out.shape)}")
        if not -out.shape[1] <= self.index < out.shape[1]:
            raise IndexError(f"latent index {self.index} is out of range for {out.shape[1]} dimensions")
        return out[:, self.index]


class ReconstructionError(_RegionTarget):
    """Sum of squared error between the output and the input over a region.

    The input is the fixed reference (no gradient flows through it): the explanation shows which
    inputs make the model's reconstruction of the region go wrong.
    """

    def __init__(
        self, mask: MaskLike | None = None, box: Sequence[int] | None = None, output: OutputSelector = 0
    ):
        self.region = _Region(mask, box)
        self.output = output

    def __repr__(self) -> str:
        return f"ReconstructionError({self.region.describe()})"

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        if out.shape != inputs.shape:
            raise ValueError(
                f"ReconstructionError needs an output shaped like the input {tuple(inputs.shape)}, "
                f"got {tuple(out.shape)}"
            )
        (out, reference), weights = self.region.crop(out, inputs.detach().to(out.dtype))
        error = (out - reference) ** 2
        if weights is not None:
            error = error * weights
        return error.flatten(1).sum(1)


class Score(Target):
    """Any score: ``fn(output)`` must return a ``(B,)`` tensor (``output`` is the selected part).

    ``pure=True`` promises that ``fn`` reads nothing but its argument (no tensor stored by a hook, no
    state of the model): fields (``mode="field"``) may then differentiate ``fn`` alone. Otherwise a
    field cannot know what ``fn`` reads, and the explainer answers it with backward passes.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], output: OutputSelector = None, pure: bool = False):
        if not callable(fn):
            raise TypeError(f"Score needs a callable, got {fn!r}")
        if not isinstance(pure, bool):
            raise TypeError(f"Score pure must be a bool, got {pure!r}")
        self.fn = fn
        self.output = output
        self.field_seed = pure

    def __repr__(self) -> str:
        return f"Score({getattr(self.fn, '__name__', 'fn')})"

    def select(self, output: Any) -> Any:
        # A custom score may read any structure: by default it sees the whole model output.
        return output if self.output is None else select_output(output, self.output)

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        return self.fn(out)


def as_target_list(targets: Target | Sequence[Target]) -> list[Target]:
    """Normalise one target or a sequence of them to a non-empty list, checking types."""
    if isinstance(targets, Target):
        return [targets]
    if targets is None or isinstance(targets, (str, bytes)) or not isinstance(targets, Sequence):
        raise TypeError(
            f"targets must be a Target or a list of them, got {type(targets).__name__}; "
            "e.g. ac.Class(3) or [ac.Area(box=(0, 0, 8, 8))]"
        )
    targets = list(targets)
    if not targets:
        raise ValueError("no targets given: pass at least one Target")
    for target in targets:
        if not isinstance(target, Target):
            raise TypeError(f"{target!r} is not a Target; wrap a function as ac.Score(fn)")
    return targets
