"""The region explorer: one self-contained HTML page answering the Grad-CAM of any box of an output.

The page carries the field of one image at one layer (:mod:`areacam.field`): ``F`` ``(C, Co, H, W)``
and the activations ``A`` ``(C, h, w)``, as float16 (each ``(c, o)`` plane and each channel scaled to
its own maximum first, so small values keep their precision). In the browser, a dragged box or a
hovered pixel of output channel ``o`` (or of all channels) gives the channel weights ``w_c`` as the sum
of ``F[c, o]`` over the box (a summed-area table: O(C) per box), and the map as Grad-CAM computes it:
``ReLU(sum_c w_c A_c)``, bilinear upsampling to the input size (``align_corners=False``), min-max
normalisation (a constant map is all zeros). No server, no external URL.

    ac.explorer(model, x, "decoder.blocks.3", path="explorer.html")
"""

from __future__ import annotations

import base64
import html
import json
import os
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from areacam._util.io import atomic_write
from areacam._util.pages import CHECK_BLOCK, CHECK_ID, ERROR_COLLECTOR
from areacam.core.outputs import OutputSelector, leaves, select_output
from areacam.methods.cam import GradCAM
from areacam.methods.field import Field, FieldUnavailable
from areacam.viz.images import png_bytes, to_rgb

__all__ = ["SHOWS", "explorer", "explorer_data"]

_PALETTE = np.array(
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


def _png(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


def _float16(values: Tensor, planes: int) -> tuple[str, list[float]]:
    """``values`` split into ``planes`` planes, each divided by its max |value|: base64 float16 + scales."""
    flat = values.detach().double().cpu().reshape(planes, -1)
    scales = flat.abs().amax(dim=1)
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    data = (flat / scales[:, None]).numpy().astype("<f2")
    return base64.b64encode(data.tobytes()).decode("ascii"), [float(s) for s in scales]


SHOWS = ("image", "argmax")


def _output_picture(out: Tensor, x: Tensor, show: str | None) -> tuple[np.ndarray, str]:
    """What the output panel shows: ``"image"`` (a reconstruction) or ``"argmax"`` (segmentation colours).

    ``None`` decides from the shapes: an output shaped like the input could be either, so it raises.
    """
    if show is None:
        if out.shape == x.shape:
            raise ValueError(
                f"the output {tuple(out.shape)} has the input's shape: a reconstruction or a segmentation? "
                "pass show='image' (draw it as an image) or show='argmax' (draw its argmax classes)"
            )
        show = "argmax"
    if show not in SHOWS:
        raise ValueError(f"show must be one of {SHOWS} or None, got {show!r}")
    if show == "image":
        if out.dim() != 4 or out.shape[1] not in (1, 3):
            raise ValueError(f"show='image' needs a (B, 1 or 3, H, W) output, got {tuple(out.shape)}")
        return to_rgb(out[:1].float().clamp(0, 1))[0], "reconstruction"
    dense = out[0] if out.dim() == 4 else out[:1]
    if dense.shape[0] == 1:
        return _PALETTE[(dense[0] > 0).long().cpu().numpy()], "prediction (logit > 0)"
    labels = dense.argmax(dim=0).cpu().numpy()
    return _PALETTE[labels % len(_PALETTE)], "prediction (argmax)"


def explorer_data(
    field: Field, output: OutputSelector = None, class_names: list[str] | None = None, show: str | None = None
) -> dict:
    """The page's data for sample 0 of ``field``: images, float16 field and activations, and metadata."""
    if field.fallback is not None:
        raise FieldUnavailable(field.fallback)
    selected = select_output(field.output, output)
    index = next((i for i, leaf in enumerate(leaves(field.output)) if leaf is selected), None)
    if index is None or selected.dim() not in (3, 4):
        raise ValueError(
            f"the explorer needs a dense (B, C, H, W) or (B, H, W) model output; output={output!r} selects "
            f"shape {tuple(selected.shape)}"
        )
    derivative = field.derivatives[index][0]  # (C, Co, H, W) or (C, H, W)
    if selected.dim() == 3:
        derivative = derivative.unsqueeze(1)
    channels, out_channels, height, width = derivative.shape
    acts = field.activations[0]
    if class_names is not None and len(class_names) != out_channels:
        raise ValueError(f"class_names has {len(class_names)} names for an output of {out_channels} channels")
    names = list(class_names) if class_names is not None else [f"channel {o}" for o in range(out_channels)]
    field_data, field_scales = _float16(derivative, channels * out_channels)
    act_data, act_scales = _float16(acts, channels)
    picture, what = _output_picture(selected, field.x, show)
    explainer = type(field.explainer).__name__
    return {
        "layer": field.layer,
        "method": explainer,
        "reading": f"{field.layer}: activations (C={channels}, h={acts.shape[1]}, w={acts.shape[2]}), "
        f"channels first (nchw); field of the output {tuple(selected.shape[1:])}",
        "channels": channels,
        "outChannels": out_channels,
        "height": height,
        "width": width,
        "actHeight": acts.shape[1],
        "actWidth": acts.shape[2],
        "inHeight": field.x.shape[-2],
        "inWidth": field.x.shape[-1],
        "classNames": names,
        "outputKind": what,
        "field": field_data,
        "fieldScales": field_scales,
        "acts": act_data,
        "actScales": act_scales,
        "input": _png(to_rgb(field.x[:1])[0]),
        "output": _png(picture),
    }


def explorer(
    model: nn.Module,
    x: Tensor,
    layer: nn.Module | str,
    path: str | os.PathLike | None = None,
    output: OutputSelector = None,
    show: str | None = None,
    class_names: list[str] | None = None,
    max_memory: int | None = None,
    title: str | None = None,
) -> str:
    """A self-contained HTML page exploring the area Grad-CAM of any box or pixel of ``model``'s output.

    ``x`` is one image ``(1, C, H, W)`` on the model's device; ``layer`` a module or dotted name (a
    layer of few channels keeps the page small: it holds ``C x Co x H x W`` float16 numbers);
    ``output`` picks a dense part of a structured output (as for targets); ``show`` draws it as an
    ``"image"`` (a reconstruction) or by its ``"argmax"`` classes (``None``: argmax, unless the output
    has the input's shape, which is ambiguous and raises); ``class_names`` names the output channels.
    Returns the HTML; with ``path`` also writes it (atomically). Raises
    :class:`~areacam.field.FieldUnavailable` where the model has no forward-mode rule.
    """
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"the explorer shows one image: x must be (1, C, H, W), got {shape}; pass x[i:i + 1]")
    if show not in (None, *SHOWS):
        raise ValueError(f"show must be one of {SHOWS} or None, got {show!r}")
    if class_names is not None and (isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names)):
        raise TypeError(f"class_names must be a list of str, got {class_names!r}")
    field = GradCAM(model, layer).field(x, max_memory=max_memory, strict=True)
    data = explorer_data(field, output, class_names, show)
    page = _page(data, title or f"areacam explorer: {type(model).__name__} at {data['layer']}")
    if path is not None:
        atomic_write(path, page)
    return page


def _page(data: dict[str, Any], title: str) -> str:
    template = resources.files("areacam.inspect").joinpath("explorer.html").read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    for key, value in (
        ("__ERROR_COLLECTOR__", ERROR_COLLECTOR),
        ("__CHECK_BLOCK__", CHECK_BLOCK),
        ("__CHECK_ID__", CHECK_ID),  # the self-check (errors; the map of a scripted drag): areacam._util.pages
        ("__TITLE__", html.escape(title)),
    ):
        template = template.replace(key, value)
    return template.replace("__DATA__", payload)  # last: the data may hold any text
