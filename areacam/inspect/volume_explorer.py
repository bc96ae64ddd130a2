"""The volume explorer: the region explorer page for ``(1, C, D, H, W)`` volumes and their dense outputs.

The page shows three slice views (axial: a ``(H, W)`` plane at depth ``z``; coronal: ``(D, W)`` at
row ``y``; sagittal: ``(D, H)`` at column ``x``), each with a slice slider. A rectangle dragged (or a
voxel hovered) in one view explains a **3-D box**: the rectangle extended across the view's slice
axis over the *slab* ``[s - k, s + k]`` around the slice ``s`` it was drawn in (clipped to the volume;
``k`` is the page's "slab half-thickness" slider, 0 = that slice only, its maximum = the whole depth).
The box's map is ``ac.GradCAM(model, layer)(x, ac.Area(box=(z0, y0, x0, z1, y1, x1), channel=o))``'s.

Why the field and not precomputed per-slice maps: a box of any size and any slab in any of the three
views is a different target, and there are ``O(D^2 H^2 W^2)`` of them. The field (``C``
forward-mode products, :mod:`areacam.methods.field`, which works on volumes as on images) answers
all of them: the page holds ``F`` ``(C, Co, D, H, W)`` and the activations ``A`` ``(C, d, h, w)`` as
float16 (each plane scaled to its maximum first); the weights of a box are its sum over ``F[c, o]``
from the eight corners of a summed-volume table (O(C) per box), the map
``ReLU(sum_c w_c A_c)``, trilinear upsampling (``align_corners=False``) and min-max normalisation
over the whole volume, as the library computes it. Per-slice maps would fix the boxes in advance.

Size: about ``8/3 (C Co + C d h w / (D H W) + 1) D H W`` bytes (base64 float16). The demo's
``UNet3D`` at ``dec1`` (``C = 8``, 3 classes) on a 32^3 volume makes a 2.9 MB page; 64^3 is 23 MB; a
page over ``max_page_bytes`` (default :data:`VOLUME_PAGE_LIMIT`, 64 MB) is refused before the field
is computed, naming both numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from areacam.core.forward import ForwardArgs
from areacam.core.forward import forward_args as pack_forward_args
from areacam.core.inputs import check_input
from areacam.core.outputs import OutputSelector, select_output
from areacam.core.state import explaining
from areacam.inspect.explorer_page import PALETTE, base64_bytes, choose_show, dense_field, float16, page
from areacam.layers.capture import LayerCapture
from areacam.methods.cam import GradCAM
from areacam.methods.field import Field

__all__ = ["VOLUME_PAGE_LIMIT", "page_bytes", "volume_data", "volume_page"]

#: Largest volume page written by default (bytes): the browser holds the field as float64, 4x more.
VOLUME_PAGE_LIMIT = 64_000_000

_TEMPLATE_BYTES = 30_000  # the page around the data: markup, style, script


def page_bytes(channels: int, out_channels: int, size: tuple[int, ...], act_size: tuple[int, ...]) -> int:
    """Bytes of a volume page: base64 float16 field and activations, base64 uint8 input and output, markup."""
    voxels, act_voxels = int(np.prod(size)), int(np.prod(act_size))
    raw = 2 * channels * out_channels * voxels + 2 * channels * act_voxels + 2 * voxels
    return 4 * raw // 3 + _TEMPLATE_BYTES


def _grey(volume: Tensor) -> np.ndarray:
    """``(C, D, H, W)`` as ``(D, H, W)`` uint8: the channel mean, min-max scaled (a constant volume is black)."""
    mean = volume.detach().double().mean(dim=0).cpu().numpy()
    low, high = mean.min(), mean.max()
    scaled = (mean - low) / (high - low) if high > low else np.zeros_like(mean)
    return np.round(scaled * 255).astype(np.uint8)


def _output_volume(out: Tensor, x: Tensor, show: str | None) -> tuple[np.ndarray, bool, str]:
    """The output panel's ``(D, H, W)`` uint8 voxels, whether they are palette labels, and what they show."""
    if choose_show(out, x, show) == "image":
        if out.dim() != 5 or out.shape[1] not in (1, 3):
            raise ValueError(f"show='image' needs a (B, 1 or 3, D, H, W) output, got {tuple(out.shape)}")
        grey = out[0].detach().double().clamp(0, 1).mean(dim=0).cpu().numpy()
        return np.round(grey * 255).astype(np.uint8), False, "reconstruction"
    dense = out[0] if out.dim() == 5 else out[:1]
    if dense.shape[0] == 1:
        return (dense[0] > 0).to(torch.uint8).cpu().numpy(), True, "prediction (logit > 0)"
    labels = dense.argmax(dim=0).cpu().numpy() % len(PALETTE)
    return labels.astype(np.uint8), True, "prediction (argmax)"


def volume_data(
    field: Field, output: OutputSelector = None, class_names: list[str] | None = None, show: str | None = None
) -> dict:
    """The volume page's data for sample 0 of ``field`` (of a ``(B, C, D, H, W)`` input): float16 field and
    activations, uint8 input and output voxels, shapes and names."""
    if field.x.dim() != 5:
        raise ValueError(f"the volume explorer needs a (B, C, D, H, W) input, got {tuple(field.x.shape)}")
    selected, derivative, names = dense_field(field, output, class_names, spatial=3)
    channels, out_channels = derivative.shape[:2]
    acts = field.activations[0]
    field_data, field_scales = float16(derivative, channels * out_channels)
    act_data, act_scales = float16(acts, channels)
    voxels, labels, what = _output_volume(selected, field.x, show)
    return {
        "layer": field.layer,
        "method": type(field.explainer).__name__,
        "reading": f"{field.layer}: activations (C={channels}, d, h, w={tuple(acts.shape[1:])}), read as "
        f"{field.layout}; field of the output {tuple(selected.shape[1:])}",
        "channels": channels,
        "outChannels": out_channels,
        "shape": list(derivative.shape[2:]),
        "actShape": list(acts.shape[1:]),
        "inShape": list(field.x.shape[2:]),
        "classNames": names,
        "outputKind": what,
        "field": field_data,
        "fieldScales": field_scales,
        "acts": act_data,
        "actScales": act_scales,
        "input": base64_bytes(_grey(field.x[0])),
        "output": base64_bytes(voxels),
        "palette": PALETTE.tolist() if labels else None,
    }


def _probe(
    model: nn.Module, x: Tensor, layer: nn.Module | str, output: OutputSelector, fwd: ForwardArgs
) -> tuple[int, int, Tensor]:
    """One forward pass without gradients: the layer's channels, its spatial size, and the selected output."""
    with explaining(model), torch.no_grad(), LayerCapture(model, layer, mode="value") as capture:
        out = capture.run(x, fwd)
        acts = capture.activation()
    return acts.shape[1], int(np.prod(acts.shape[2:])), select_output(out, output)


def volume_page(
    model: nn.Module,
    x: Tensor,
    layer: nn.Module | str,
    output: OutputSelector = None,
    show: str | None = None,
    class_names: list[str] | None = None,
    max_memory: int | None = None,
    title: str | None = None,
    max_page_bytes: int = VOLUME_PAGE_LIMIT,
    forward_args: Sequence[Any] = (),
    forward_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """The volume explorer's HTML for one volume ``x`` ``(1, C, D, H, W)`` (see :func:`areacam.explorer`).

    Raises ``ValueError`` naming the page's size when it would exceed ``max_page_bytes``.
    """
    if isinstance(max_page_bytes, bool) or not isinstance(max_page_bytes, int) or max_page_bytes <= 0:
        raise ValueError(f"max_page_bytes must be a positive int, got {max_page_bytes!r}")
    x = check_input(model, x, spatial=(3,), method="the volume explorer")
    fwd = pack_forward_args(model, x, forward_args, forward_kwargs, "explorer(...) call")
    channels, act_voxels, selected = _probe(model, x, layer, output, fwd)
    if selected.dim() in (4, 5):
        _output_volume(selected, x, show)  # a bad show raises before the field
    size = tuple(selected.shape[-3:])
    out_channels = selected.shape[1] if selected.dim() == 5 else 1
    expected = page_bytes(channels, out_channels, size, (act_voxels,))
    if expected > max_page_bytes:
        raise ValueError(
            f"the volume explorer page would be {expected / 1e6:.1f} MB ({channels} layer channels x "
            f"{out_channels} output channels x {'x'.join(map(str, size))} voxels as float16), over the limit of "
            f"{max_page_bytes / 1e6:.1f} MB; pick a layer with fewer channels, explore a cropped or downsampled "
            "volume, or raise max_page_bytes"
        )
    field = GradCAM(model, layer).field(
        x, max_memory=max_memory, strict=True, forward_args=fwd.args, forward_kwargs=fwd.kwargs
    )
    data = volume_data(field, output, class_names, show)
    return page(
        "volume_explorer.html", data, title or f"areacam volume explorer: {type(model).__name__} at {field.layer}"
    )
