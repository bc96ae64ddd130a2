"""Regions of a dense ``(B, C, *spatial)`` output: a box, a mask, or everything; and the checks of a
dense output and its channels that every region target shares.

Regions are boxes with one ``(start, stop)`` pair per spatial dim, starts first: ``(start, stop)``
for a signal, ``(top, left, bottom, right)`` for an image, ``(z0, y0, x0, z1, y1, x1)`` for a
volume; or masks of the output's spatial shape, shared ``(*spatial)`` or per sample ``(B, *spatial)``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from areacam._util.checks import BOX_NAMES, check_box
from areacam.core.inputs import SPATIAL_SHAPES
from areacam.targets.base import take_rows

__all__ = [
    "Channels",
    "MaskLike",
    "Region",
    "as_channels",
    "as_mask",
    "channel_rows",
    "check_channel",
    "compose_samples",
    "dense_output",
    "pick_channel",
]

MaskLike = Tensor | np.ndarray
#: A channel of a dense output: one for every sample (an int), or one per sample (a tuple of B ints).
Channels = int | tuple[int, ...]


class Region:
    """A region of a dense ``(B, C, *spatial)`` output: a box, a mask, or everything.

    The number of spatial dims is read from the output when the region is used, so the same
    region type serves signals, images and volumes; a box or mask that does not match raises.
    """

    def __init__(self, mask: MaskLike | None, box: Sequence[int] | None):
        if mask is not None and box is not None:
            raise ValueError("give a mask or a box, not both")
        self.box = check_box(box) if box is not None else None
        self.mask = as_mask(mask) if mask is not None else None
        self.samples: int | list[int] | None = None  # rows of a per-sample mask, set by take()

    def crop(self, *tensors: Tensor) -> tuple[list[Tensor], Tensor | None]:
        """The ``(B, C, *spatial)`` tensors cut to the box, and the mask weights (``None``: all ones).

        Slicing a box instead of multiplying by a box mask gives the same scores and gradients and
        touches only the region.
        """
        if self.box is None:
            return list(tensors), self.weights(tensors[0])
        slices = self._slices(tensors[0], self.box)
        return [tensor[slices] for tensor in tensors], None

    @staticmethod
    def _slices(out: Tensor, box: tuple[int, ...]) -> tuple:
        """``(..., slice, ...)`` indexing ``box`` in ``out``, checked to fit its spatial dims."""
        spatial = tuple(out.shape[2:])
        half = len(box) // 2
        if half != len(spatial):
            raise ValueError(
                f"box {box} is a {half}-D box {BOX_NAMES[half]}, but the output of shape "
                f"{tuple(out.shape)} has {len(spatial)} spatial dims: give a box "
                f"{BOX_NAMES.get(len(spatial), f'of {2 * len(spatial)} ints')}"
            )
        starts, stops = box[:half], box[half:]
        if any(stop > size for stop, size in zip(stops, spatial)):
            raise ValueError(f"box {box} reaches outside the output of size {spatial}")
        return (Ellipsis, *(slice(start, stop) for start, stop in zip(starts, stops)))

    def weights(self, out: Tensor) -> Tensor | None:
        """Region weights broadcastable to ``out`` ``(B, C, *spatial)``, or ``None`` for everything."""
        spatial = tuple(out.shape[2:])
        if self.box is not None:
            slices = self._slices(out, self.box)
            weights = out.new_zeros((1, 1, *spatial))
            weights[slices] = 1
            return weights
        if self.mask is None:
            return None
        mask = self.mask
        batch = out.shape[0]
        if mask.dim() == len(spatial) + 1 and tuple(mask.shape[1:]) == spatial:
            if self.samples is not None and mask.shape[0] != 1:
                mask = take_rows(mask, self.samples, "a mask")
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

    def take(self, samples: int | list[int]) -> Region:
        """This region for the batch ``samples`` (see :meth:`Target.bind`).

        A per-sample ``(B, *spatial)`` mask is indexed when used (whether a mask is shared or per
        sample depends on the output's spatial dims); a box, a shared mask or everything stay.
        """
        if self.mask is None or self.mask.dim() == 1 or self.mask.shape[0] == 1:
            return self
        region = copy.copy(self)
        region.samples = samples if self.samples is None else compose_samples(self.samples, samples)
        if self.mask.dim() == 4:  # only a per-sample volume mask can be 4-D: check the rows now
            take_rows(self.mask[:, :1, :1, :1], region.samples, "a mask")
        return region

    def describe(self) -> str:
        if self.box is not None:
            return f"box={self.box}"
        return "mask" if self.mask is not None else "all"


def compose_samples(first: int | list[int], then: int | list[int]) -> int | list[int]:
    """Sample indices of taking ``then`` from a batch that was taken as ``first``."""
    if isinstance(first, int):
        return first  # every row of the first batch is that one sample
    return take_rows(torch.tensor(first), then, "a bound batch").tolist()


def as_mask(mask: MaskLike) -> Tensor:
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


def dense_output(out: Tensor, name: str, inputs: Tensor) -> Tensor:
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


def check_channel(channel: int | None, channels: int, what: str = "channel") -> None:
    if channel is not None and not -channels <= channel < channels:
        raise IndexError(f"{what} {channel} is out of range for an output of {channels} channels")


def as_channels(value: object, what: str) -> Channels:
    """``value`` as an int, or a tuple of ints (one per sample); ``TypeError`` otherwise."""
    if isinstance(value, Tensor):
        value = value.tolist()
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        values = list(value)
        if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            return tuple(int(v) for v in values)
    raise TypeError(f"{what} must be an int or a sequence of ints (one per sample), got {value!r}")


def pick_channel(out: Tensor, channel: Channels, what: str = "channel") -> Tensor:
    """``(B, 1, *spatial)``: channel ``channel`` of ``out`` ``(B, C, *spatial)``, or each sample's own channel."""
    batch, channels = out.shape[:2]
    if isinstance(channel, int):
        check_channel(channel, channels, what)
        index = channel % channels  # -1 is the last channel, as in indexing
        return out[:, index : index + 1]
    if len(channel) != batch:
        raise ValueError(f"{what} holds {len(channel)} values for a batch of {batch}; give one per sample")
    for value in channel:
        check_channel(value, channels, what)
    rows = torch.tensor([v % channels for v in channel], device=out.device)
    return out.gather(1, rows.view(batch, 1, *(1,) * (out.dim() - 2)).expand(batch, 1, *out.shape[2:]))


def channel_rows(channel: Channels, samples: int | list[int]) -> Channels:
    """Per-sample channels taken at ``samples`` (see :meth:`~areacam.Target.bind`); an int stays."""
    if isinstance(channel, int):
        return channel
    rows = take_rows(torch.tensor(channel), samples, "the per-sample channels")
    return int(rows) if rows.dim() == 0 else tuple(rows.tolist())
