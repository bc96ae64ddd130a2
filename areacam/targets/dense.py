"""Targets of dense outputs: a region's sum (:class:`Area`, :class:`Pixel`), Seg-Grad-CAM
(:class:`Segment`) and the reconstruction error of an autoencoder (:class:`ReconstructionError`)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from areacam.core.outputs import OutputSelector
from areacam.targets.base import Samples, Target, check_samples, take_rows
from areacam.targets.region import (
    Channels,
    MaskLike,
    Region,
    as_channels,
    channel_rows,
    check_channel,
    dense_output,
    pick_channel,
)

__all__ = ["Area", "Pixel", "ReconstructionError", "RegionTarget", "Segment"]

_Bound = TypeVar("_Bound", bound="RegionTarget")


class RegionTarget(Target):
    """A target with a ``region``: binding indexes a per-sample mask."""

    region: Region

    def bind(self, samples: Samples, output: Any = None) -> Target:
        return self._take_region(check_samples(samples))

    def _take_region(self: _Bound, samples: int | list[int]) -> _Bound:
        """This target with its region taken at ``samples`` (itself when the region is shared)."""
        region = self.region.take(samples)
        if region is self.region:
            return self
        bound = copy.copy(self)
        bound.region = region
        return bound


class Area(RegionTarget):
    """Sum (or mean) of a ``(B, C, *spatial)`` output over a region.

    ``box=(top, left, bottom, right)`` slices ``out[..., top:bottom, left:right]`` (volumes:
    ``(z0, y0, x0, z1, y1, x1)``, signals: ``(start, stop)``); ``mask`` is a ``(*spatial)`` or
    ``(B, *spatial)`` bool/float array at the output's size (floats are weights); neither means the
    whole output. ``channel`` picks one channel (an int), each sample's own channel (a sequence of
    ``B`` ints), or ``None`` sums all.
    """

    def __init__(
        self,
        mask: MaskLike | None = None,
        box: Sequence[int] | None = None,
        channel: int | Sequence[int] | Tensor | None = None,
        reduce: str = "sum",
        output: OutputSelector = None,
    ):
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        self.region = Region(mask, box)
        self.channel: Channels | None = None if channel is None else as_channels(channel, "channel")
        self.reduce = reduce
        self.output = output

    def __repr__(self) -> str:
        channel = "" if self.channel is None else f", channel={self.channel}"
        return f"{type(self).__name__}({self.region.describe()}{channel})"

    def bind(self, samples: Samples, output: Any = None) -> Target:
        rows = check_samples(samples)
        bound = self._take_region(rows)
        if self.channel is None or isinstance(self.channel, int):
            return bound
        bound = copy.copy(bound)
        bound.channel = channel_rows(self.channel, rows)
        return bound

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        out = dense_output(out, type(self).__name__, inputs)
        if self.channel is not None:
            out = pick_channel(out, self.channel)
        (out,), weights = self.region.crop(out)
        if weights is None:
            total = out.flatten(1).sum(1)
            count: int | Tensor = out[0].numel()
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


class Segment(RegionTarget):
    """Seg-Grad-CAM: sum of ``logits[:, cls]`` over the pixels predicted as ``cls`` inside a region.

    Prediction is the argmax over channels; for a single-channel binary output, ``cls`` must be 0
    and the predicted pixels are those with logit > 0. ``cls`` is one class (an int) or each
    sample's own class (a sequence of ``B`` ints). The region is a ``box`` or ``mask`` as for
    :class:`Area` (default: the whole image). No predicted pixel gives a zero score and a
    degenerate map.
    """

    def __init__(
        self,
        cls: int | Sequence[int] | Tensor,
        mask: MaskLike | None = None,
        box: Sequence[int] | None = None,
        output: OutputSelector = None,
    ):
        self.cls: Channels = as_channels(cls, "Segment class")
        self.region = Region(mask, box)
        self.output = output
        self.frozen: Tensor | None = None  # the output rows bind() froze the prediction at

    def __repr__(self) -> str:
        region = "" if self.region.describe() == "all" else f", {self.region.describe()}"
        return f"Segment({self.cls}{region})"

    def predicted(self, out: Tensor, inputs: Tensor) -> Tensor:
        """``(B, 1, *spatial)`` float mask of the pixels predicted as ``cls`` (``inputs`` gives the spatial dims)."""
        out = dense_output(out, "Segment", inputs)
        batch, channels = out.shape[:2]
        classes = [self.cls] if isinstance(self.cls, int) else list(self.cls)
        if channels == 1:
            if any(c != 0 for c in classes):
                raise IndexError(f"a single-channel output has only class 0, got Segment({self.cls})")
            return (out.detach() > 0).to(out.dtype)
        if not isinstance(self.cls, int) and len(classes) != batch:
            raise ValueError(f"Segment holds {len(classes)} classes for a batch of {batch}; give one per sample")
        for c in classes:
            check_channel(c, channels, "Segment class")
            if c < 0:
                raise IndexError(f"Segment class {c} must be >= 0")
        wanted = torch.tensor(classes, device=out.device).view(-1, 1, *(1,) * (out.dim() - 2))
        return (out.detach().argmax(dim=1, keepdim=True) == wanted).to(out.dtype)

    def bind(self, samples: Samples, output: Any = None) -> Target:
        """With ``output``: the pixels predicted as ``cls`` there stay fixed, whatever the new output predicts.

        The selected output rows are kept (one row, broadcast, for an int ``samples``) and the
        prediction is read from them when the bound target scores, where the input tells the spatial
        dims. A target bound before keeps its frozen rows and ignores ``output``.
        """
        samples = check_samples(samples)
        bound = self._take_region(samples)
        if not isinstance(self.cls, int):
            bound = copy.copy(bound)
            bound.cls = channel_rows(self.cls, samples)
        if output is None and self.frozen is None:
            return bound
        rows = self.select(output).detach() if self.frozen is None else self.frozen
        if rows.shape[0] != 1 or self.frozen is None:
            rows = take_rows(rows, samples, "an output")
            rows = rows.unsqueeze(0) if isinstance(samples, int) else rows
        bound = copy.copy(bound)
        bound.frozen = rows
        return bound

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        if self.frozen is not None:
            return self._frozen_score(self.frozen, out, inputs)
        pixels = self.predicted(out, inputs)
        out = dense_output(out, "Segment", inputs)
        (logits, pixels), weights = self.region.crop(pick_channel(out, self.cls, "Segment class"), pixels)
        if weights is not None:
            pixels = pixels * weights
        return (logits * pixels).flatten(1).sum(1)

    def _frozen_score(self, frozen: Tensor, out: Tensor, inputs: Tensor) -> Tensor:
        """Sum of ``out[:, cls]`` over the pixels predicted in ``frozen`` (the output :meth:`bind` saw)."""
        pixels = self.predicted(frozen.to(out.device), inputs)
        weights = self.region.weights(pixels)
        if weights is not None:
            pixels = pixels * weights
        out = dense_output(out, "Segment", inputs)
        if out.shape[2:] != pixels.shape[2:]:
            raise ValueError(
                f"the output of shape {tuple(out.shape)} does not match the bound Segment's output "
                f"{tuple(frozen.shape)}"
            )
        return (pick_channel(out, self.cls, "Segment class") * pixels).flatten(1).sum(1)


class ReconstructionError(RegionTarget):
    """Sum of squared error between the output and the input over a region.

    The input is the fixed reference (no gradient flows through it): the explanation shows which
    inputs make the model's reconstruction of the region go wrong.
    """

    def __init__(self, mask: MaskLike | None = None, box: Sequence[int] | None = None, output: OutputSelector = 0):
        self.region = Region(mask, box)
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
