"""What the image and the volume region explorers share: the float16 coding, the field's dense part, the page.

The pages themselves share one script, ``explorer.js`` (decoding, summed-volume tables, the map as
Grad-CAM computes it, mouse boxes, the self-check), inlined into ``explorer.html`` (images) and
``volume_explorer.html`` (volumes).
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import Tensor

from areacam._util.pages import CHECK_BLOCK, CHECK_ID, ERROR_COLLECTOR
from areacam.core.outputs import OutputSelector, leaves, select_output
from areacam.methods.field import Field, FieldUnavailable
from areacam.viz.images import png_bytes

__all__ = ["PALETTE", "SHOWS", "base64_bytes", "choose_show", "dense_field", "float16", "page", "png"]

#: The colours of argmax classes (class ``k`` takes ``PALETTE[k % 10]``).
PALETTE = np.array(
    [
        [0, 0, 0],
        [230, 60, 60],
        [60, 200, 60],
        [70, 110, 255],
        [240, 200, 40],
        [200, 80, 220],
        [60, 210, 210],
        [255, 140, 0],
        [150, 150, 150],
        [120, 60, 20],
    ],
    dtype=np.uint8,
)

#: How the output panel draws the output: as an image (a reconstruction) or by its argmax classes.
SHOWS = ("image", "argmax")


def png(rgb: np.ndarray) -> str:
    """An ``(H, W, 3)`` uint8 picture as a PNG data URL."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


def base64_bytes(values: np.ndarray) -> str:
    """A uint8 array, flattened in C order, as base64."""
    return base64.b64encode(np.ascontiguousarray(values, dtype=np.uint8).tobytes()).decode("ascii")


def float16(values: Tensor, planes: int) -> tuple[str, list[float]]:
    """``values`` split into ``planes`` planes, each divided by its max |value|: base64 float16 + scales."""
    flat = values.detach().double().cpu().reshape(planes, -1)
    scales = flat.abs().amax(dim=1)
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    data = (flat / scales[:, None]).numpy().astype("<f2")
    return base64.b64encode(data.tobytes()).decode("ascii"), [float(s) for s in scales]


def choose_show(out: Tensor, x: Tensor, show: str | None) -> str:
    """``"image"`` or ``"argmax"``; ``None`` decides from the shapes (an output shaped like the input raises)."""
    if show is None:
        if out.shape == x.shape:
            raise ValueError(
                f"the output {tuple(out.shape)} has the input's shape: a reconstruction or a segmentation? "
                "pass show='image' (draw it as an image) or show='argmax' (draw its argmax classes)"
            )
        return "argmax"
    if show not in SHOWS:
        raise ValueError(f"show must be one of {SHOWS} or None, got {show!r}")
    return show


def dense_field(
    field: Field, output: OutputSelector, class_names: list[str] | None, spatial: int
) -> tuple[Tensor, Tensor, list[str]]:
    """Sample 0's dense output part and its field: ``(selected, F (C, Co, *S), names)``.

    ``spatial`` is the number of spatial dims of the output (2: images, 3: volumes); a part without a
    channel dim (``(B, *S)``) has ``Co = 1``.
    """
    if field.fallback is not None:
        raise FieldUnavailable(field.fallback)
    selected = select_output(field.output, output)
    index = next((i for i, leaf in enumerate(leaves(field.output)) if leaf is selected), None)
    if index is None or selected.dim() not in (spatial + 1, spatial + 2):
        dims = ", ".join("DHW"[3 - spatial :])
        raise ValueError(
            f"the explorer needs a dense (B, C, {dims}) or (B, {dims}) model output; output={output!r} selects "
            f"shape {tuple(selected.shape)}"
        )
    derivative = field.derivatives[index][0]  # (C, Co, *S) or (C, *S)
    if selected.dim() == spatial + 1:
        derivative = derivative.unsqueeze(1)
    out_channels = derivative.shape[1]
    if class_names is not None and len(class_names) != out_channels:
        raise ValueError(f"class_names has {len(class_names)} names for an output of {out_channels} channels")
    names = list(class_names) if class_names is not None else [f"channel {o}" for o in range(out_channels)]
    return selected, derivative, names


def page(template: str, data: dict[str, Any], title: str) -> str:
    """The page ``template`` (a file of this package) with the shared script, the self-check and ``data``."""
    folder = resources.files("areacam.inspect")
    text = folder.joinpath(template).read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    for key, value in (
        ("__EXPLORER_JS__", folder.joinpath("explorer.js").read_text(encoding="utf-8")),  # first: it names the check
        ("__ERROR_COLLECTOR__", ERROR_COLLECTOR),
        ("__CHECK_BLOCK__", CHECK_BLOCK),
        ("__CHECK_ID__", CHECK_ID),  # the self-check (errors; the map of a scripted drag): areacam._util.pages
        ("__TITLE__", html.escape(title)),
    ):
        text = text.replace(key, value)
    return text.replace("__DATA__", payload)  # last: the data may hold any text
