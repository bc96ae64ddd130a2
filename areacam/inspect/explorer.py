"""The region explorer: one self-contained HTML page answering the Grad-CAM of any box of an output.

The page carries the field of one image at one layer (:mod:`areacam.field`): ``F`` ``(C, Co, H, W)``
and the activations ``A`` ``(C, h, w)``, as float16 (each ``(c, o)`` plane and each channel scaled to
its own maximum first, so small values keep their precision). In the browser, a dragged box or a
hovered pixel of output channel ``o`` (or of all channels) gives the channel weights ``w_c`` as the sum
of ``F[c, o]`` over the box (a summed-area table: O(C) per box), and the map as Grad-CAM computes it:
``ReLU(sum_c w_c A_c)``, bilinear upsampling to the input size (``align_corners=False``), min-max
normalisation (a constant map is all zeros). No server, no external URL.

A volume ``(1, C, D, H, W)`` gets the volume explorer (:mod:`areacam.inspect.volume_explorer`: three
slice views, a dragged rectangle explains a 3-D box); both pages share :mod:`areacam.inspect.explorer_page`
and one script, ``explorer.js``.

    ac.explorer(model, x, "decoder.blocks.3", path="explorer.html")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor, nn

from areacam._util.io import atomic_write
from areacam.core.outputs import OutputSelector
from areacam.inspect.explorer_page import PALETTE, SHOWS, choose_show, dense_field, float16, page, png
from areacam.inspect.volume_explorer import VOLUME_PAGE_LIMIT, volume_page
from areacam.methods.cam import GradCAM
from areacam.methods.field import Field
from areacam.viz.images import to_rgb

__all__ = ["SHOWS", "explorer", "explorer_data"]


def _output_picture(out: Tensor, x: Tensor, show: str | None) -> tuple[np.ndarray, str]:
    """What the output panel shows: ``"image"`` (a reconstruction) or ``"argmax"`` (segmentation colours)."""
    if choose_show(out, x, show) == "image":
        if out.dim() != 4 or out.shape[1] not in (1, 3):
            raise ValueError(f"show='image' needs a (B, 1 or 3, H, W) output, got {tuple(out.shape)}")
        return to_rgb(out[:1].float().clamp(0, 1))[0], "reconstruction"
    dense = out[0] if out.dim() == 4 else out[:1]
    if dense.shape[0] == 1:
        return PALETTE[(dense[0] > 0).long().cpu().numpy()], "prediction (logit > 0)"
    labels = dense.argmax(dim=0).cpu().numpy()
    return PALETTE[labels % len(PALETTE)], "prediction (argmax)"


def explorer_data(
    field: Field, output: OutputSelector = None, class_names: list[str] | None = None, show: str | None = None
) -> dict:
    """The image page's data for sample 0 of ``field``: images, float16 field and activations, and metadata."""
    selected, derivative, names = dense_field(field, output, class_names, spatial=2)
    channels, out_channels, height, width = derivative.shape
    acts = field.activations[0]
    field_data, field_scales = float16(derivative, channels * out_channels)
    act_data, act_scales = float16(acts, channels)
    picture, what = _output_picture(selected, field.x, show)
    return {
        "layer": field.layer,
        "method": type(field.explainer).__name__,
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
        "input": png(to_rgb(field.x[:1])[0]),
        "output": png(picture),
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
    max_page_bytes: int = VOLUME_PAGE_LIMIT,
    forward_args: Sequence[Any] = (),
    forward_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """A self-contained HTML page exploring the area Grad-CAM of any box or pixel of ``model``'s output.

    ``x`` is one image ``(1, C, H, W)`` or one volume ``(1, C, D, H, W)`` on the model's device (a
    volume gets the volume explorer: three slice views, a box dragged in one slice explains a 3-D
    box; see :mod:`areacam.inspect.volume_explorer`). ``layer`` is a module or dotted name (a layer of
    few channels keeps the page small: it holds ``C x Co x *S`` float16 numbers, ``S`` the output's
    spatial size); ``output`` picks a dense part of a structured output (as for targets); ``show``
    draws it as an ``"image"`` (a reconstruction) or by its ``"argmax"`` classes (``None``: argmax,
    unless the output has the input's shape, which is ambiguous and raises); ``class_names`` names the
    output channels. ``max_page_bytes`` bounds a volume page (default 64 MB; a larger one raises
    ``ValueError`` naming its size before the field is computed). ``forward_args`` / ``forward_kwargs``:
    the model's extra arguments, as for an explainer call (the page answers the model so called). Returns
    the HTML; with ``path``
    also writes it (atomically). Raises :class:`~areacam.field.FieldUnavailable` where the model has
    no forward-mode rule.
    """
    if not isinstance(x, Tensor) or x.dim() not in (4, 5) or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(
            f"the explorer shows one image or volume: x must be (1, C, H, W) or (1, C, D, H, W), got {shape}; "
            "pass x[i:i + 1]"
        )
    if show not in (None, *SHOWS):
        raise ValueError(f"show must be one of {SHOWS} or None, got {show!r}")
    if class_names is not None and (isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names)):
        raise TypeError(f"class_names must be a list of str, got {class_names!r}")
    if x.dim() == 5:
        text = volume_page(
            model, x, layer, output, show, class_names, max_memory, title, max_page_bytes, forward_args, forward_kwargs
        )
    else:
        field = GradCAM(model, layer).field(
            x, max_memory=max_memory, strict=True, forward_args=forward_args, forward_kwargs=forward_kwargs
        )
        data = explorer_data(field, output, class_names, show)
        text = page("explorer.html", data, title or f"areacam explorer: {type(model).__name__} at {data['layer']}")
    if path is not None:
        atomic_write(path, text)
    return text
