"""What a layer looks for: filter visualisation by gradient ascent, feature maps, first-layer kernels."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from areacam._util.checks import check_int, check_positive
from areacam._util.filters import gaussian_blur
from areacam.core.explanation import normalize_maps
from areacam.core.inputs import check_input
from areacam.core.state import explaining
from areacam.layers.capture import LayerCapture
from areacam.layers.find import layer_name, resolve_layer, unwrap_model
from areacam.layers.layout import LayerView
from areacam.viz.images import COLORMAPS, grid_figure, save_figure, to_rgb

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["PARAMETRIZATIONS", "FilterVisualizer", "feature_maps", "filter_weights"]

PARAMETRIZATIONS = ("fourier", "pixel")

# Square root of the colour correlation of natural images (Lucid), columns scaled to max norm 1.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR_SQRT = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


def _feature_map(capture: LayerCapture) -> Tensor:
    """The captured activation, checked to be a ``(B, C, h, w)`` feature map."""
    acts = capture.activation()
    if acts.dim() != 4:
        raise ValueError(
            f"{capture.where} gives an output of shape {tuple(capture.captured().shape)}, read as {capture.layout}; "
            "a (B, C, h, w) feature map is needed"
        )
    return acts


def _colorize(maps: Tensor, colormap: str) -> np.ndarray:
    """``(..., h, w)`` maps in ``[0, 1]`` -> ``(..., h, w, 3)`` uint8 RGB through an OpenCV colormap."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose from {sorted(COLORMAPS)}")
    flat = np.round(maps.detach().float().cpu().numpy().reshape(-1, *maps.shape[-2:]) * 255).astype(np.uint8)
    rgb = [cv2.cvtColor(cv2.applyColorMap(m, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB) for m in flat]
    return np.stack(rgb).reshape(*maps.shape, 3)


def _tile(images: np.ndarray, ncols: int) -> np.ndarray:
    """``(F, H, W, 3)`` uint8 tiles as ``(rows, ncols, H, W, 3)`` for :func:`grid_figure` (white padding)."""
    ncols = max(1, min(ncols, len(images)))
    rows = math.ceil(len(images) / ncols)
    padded = np.full((rows * ncols, *images.shape[1:]), 255, dtype=np.uint8)
    padded[: len(images)] = images
    return padded.reshape(rows, ncols, *images.shape[1:])


def _check_2d_model(model: nn.Module) -> None:
    """``ValueError`` for a model of signals or volumes: filter visualisation optimises 2-D images."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose3d)):
            raise ValueError(
                f"FilterVisualizer optimises 2-D images (B, C, H, W) only, but layer {name!r} of "
                f"{type(model).__name__} is a {type(module).__name__}: signals and volumes are not supported"
            )


class FilterVisualizer:
    """Images that maximise the mean activation of channels of ``layer``, by gradient ascent.

    All requested filters are optimised together, one batch element per filter, in chunks of
    ``batch_size``. The image is parametrised in Fourier space with decorrelated colours
    (``"fourier"``, Lucid's parametrisation) or as plain pixels (``"pixel"``), squashed to
    ``[0, 1]`` by a sigmoid, and regularised by random jitter, an optional Gaussian ``blur``
    (sigma in pixels), an L2 penalty on the distance to grey and total variation. ``transform``
    maps the ``[0, 1]`` image to the model's input (e.g. a normalisation). Only the image
    parameters are differentiated: the model's ``.grad``, flags and hooks stay as they were.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str,
        size: int = 64,
        channels: int = 3,
        steps: int = 128,
        lr: float = 0.05,
        parametrization: str = "fourier",
        jitter: int = 4,
        blur: float = 0.0,
        l2: float = 0.0,
        tv: float = 0.0,
        batch_size: int = 64,
        random_state: int = 0,
        transform: Callable[[Tensor], Tensor] | None = None,
        *,
        layout: str | None = None,
        grid: Sequence[int] | None = None,
        prefix_tokens: int | None = None,
        layer_output: object = None,
        reshape: Callable[[Tensor], Tensor] | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = unwrap_model(model)
        self.layer = resolve_layer(model, layer)
        self.view = LayerView(layout, grid, prefix_tokens, layer_output, reshape)
        self.name = layer_name(model, self.layer)
        _check_2d_model(model)
        for name, value in (("size", size), ("channels", channels), ("steps", steps), ("batch_size", batch_size)):
            check_int(name, value)
        check_positive("lr", lr)
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"unknown parametrization {parametrization!r}; choose from {PARAMETRIZATIONS}")
        for name, amount in (("jitter", jitter), ("blur", blur), ("l2", l2), ("tv", tv)):
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
                raise ValueError(f"{name} must be a number >= 0, got {amount!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {transform!r}")
        self.size, self.channels, self.steps, self.lr = size, channels, steps, float(lr)
        self.parametrization, self.jitter, self.blur = parametrization, int(jitter), float(blur)
        self.l2, self.tv, self.batch_size, self.random_state = float(l2), float(tv), batch_size, int(random_state)
        self.transform = transform

    def __repr__(self) -> str:
        return f"FilterVisualizer({type(self.model).__name__}, {self.name!r})"

    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        for tensor in (*self.model.parameters(), *self.model.buffers()):
            if tensor.is_floating_point():
                return tensor.device, tensor.dtype
        return torch.device("cpu"), torch.float32

    def _capture(self, mode: str) -> LayerCapture:
        return LayerCapture(self.model, self.layer, self.view, mode=mode, stop=True)

    def _forward(self, images: Tensor, capture: LayerCapture) -> Tensor:
        capture.run(self.transform(images) if self.transform is not None else images)
        return _feature_map(capture)

    def num_filters(self) -> int:
        """Channel count of the layer (one probe forward pass at ``size``)."""
        device, dtype = self._device_dtype()
        probe = torch.full((1, self.channels, self.size, self.size), 0.5, device=device, dtype=dtype)
        with explaining(self.model), self._capture("value") as capture:
            return self._forward(probe, capture).shape[1]

    def _check_filters(self, filters: int | Sequence[int] | None) -> list[int]:
        count = self.num_filters()
        if filters is None:
            return list(range(count))
        values = [filters] if isinstance(filters, (int, np.integer)) else list(filters)
        if not values:
            raise ValueError("no filters given")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"filter indices must be ints, got {value!r}")
            if not 0 <= value < count:
                raise IndexError(f"filter {value} is out of range for layer {self.name!r} with {count} channels")
        return [int(v) for v in values]

    def __call__(self, filters: int | Sequence[int] | None = None) -> Tensor:
        """Optimise one image per filter (default: all): ``(F, C, size, size)`` float32 in ``[0, 1]``."""
        filters = self._check_filters(filters)
        generator = torch.Generator().manual_seed(self.random_state)
        chunks = [filters[i : i + self.batch_size] for i in range(0, len(filters), self.batch_size)]
        return torch.cat([self._optimise(chunk, generator) for chunk in chunks])

    def _params(self, count: int, generator: torch.Generator) -> Tensor:
        shape: tuple[int, ...] = (count, self.channels, self.size, self.size)
        if self.parametrization == "fourier":
            shape = (count, self.channels, self.size, self.size // 2 + 1, 2)
        return torch.randn(shape, generator=generator) * 0.01

    def image(self, params: Tensor) -> Tensor:
        """Image parameters -> ``(F, C, size, size)`` images in ``[0, 1]``."""
        if self.parametrization == "fourier":
            img = _irfft2(params.float(), self.size) / 4.0
            if self.channels == 3:
                img = torch.einsum("dc,bchw->bdhw", _COLOR_SQRT.to(img.device), img)
        else:
            img = params.float()
        return torch.sigmoid(img)

    def _optimise(self, filters: list[int], generator: torch.Generator) -> Tensor:
        device, dtype = self._device_dtype()
        params = self._params(len(filters), generator).to(device).requires_grad_(True)
        moment, square = torch.zeros_like(params), torch.zeros_like(params)  # Adam state (betas 0.9, 0.999)
        index = torch.tensor(filters, device=device)
        with explaining(self.model), self._capture("graph") as capture:
            for step in range(1, self.steps + 1):
                img = self.image(params)
                loss = -self._objective(self._augment(img, generator).to(dtype), index, capture).sum()
                if self.l2:
                    loss = loss + self.l2 * ((img - 0.5) ** 2).mean(dim=(1, 2, 3)).sum()
                if self.tv:
                    tv = (img[..., 1:, :] - img[..., :-1, :]).abs().mean((1, 2, 3))
                    loss = loss + self.tv * (tv + (img[..., 1:] - img[..., :-1]).abs().mean((1, 2, 3))).sum()
                (grad,) = torch.autograd.grad(loss, params)  # parameters of the model get no .grad
                with torch.no_grad():
                    moment.lerp_(grad, 0.1)
                    square.mul_(0.999).addcmul_(grad, grad, value=0.001)
                    update = (moment / (1 - 0.9**step)) / ((square / (1 - 0.999**step)).sqrt() + 1e-8)
                    params.sub_(self.lr * update)
        with torch.no_grad():
            return self.image(params).detach().cpu()

    def _augment(self, img: Tensor, generator: torch.Generator) -> Tensor:
        if self.blur > 0:
            img = gaussian_blur(img, self.blur, truncate=2.0, padding="reflect")
        if self.jitter > 0:
            dy, dx = torch.randint(-self.jitter, self.jitter + 1, (2,), generator=generator).tolist()
            img = torch.roll(img, shifts=(dy, dx), dims=(2, 3))
        return img

    def _objective(self, images: Tensor, index: Tensor, capture: LayerCapture) -> Tensor:
        acts = self._forward(images, capture)
        return acts[torch.arange(len(index), device=acts.device), index].float().mean(dim=(1, 2))

    def activations(self, images: Tensor, filters: int | Sequence[int]) -> Tensor:
        """Mean activation of filter ``filters[i]`` on ``images[i]``: ``(F,)`` float32 (no jitter)."""
        filters = self._check_filters(filters)
        if images.dim() != 4 or images.shape[0] != len(filters):
            raise ValueError(
                f"need one (C, H, W) image per filter: got images {tuple(images.shape)}, {len(filters)} filters"
            )
        device, dtype = self._device_dtype()
        index = torch.tensor(filters, device=device)
        with explaining(self.model), self._capture("value") as capture:
            return self._objective(images.to(device, dtype), index, capture).cpu()

    def plot(
        self, images: Tensor, filters: Sequence[int] | None = None, path: str | Path | None = None, ncols: int = 8
    ) -> Figure:
        """Grid of the optimised ``(F, C, H, W)`` images, ``ncols`` per row; saved as PNG if ``path``."""
        rgb = _tile(to_rgb(images.clamp(0, 1)), ncols)
        fig = grid_figure(rgb, path=None, cell=1.6)
        if filters is not None:
            for ax, f in zip(fig.axes, filters):
                ax.set_title(f"{self.name}[{f}]", fontsize=7)
        if path is not None:
            save_figure(fig, path)
        return fig


def _irfft2(params: Tensor, size: int) -> Tensor:
    """``torch.fft.irfft2(norm="ortho")`` of the ``1/f``-scaled spectrum ``(..., size, size//2+1, 2)``.

    Written as two small matrix products (cos/sin bases): on CPUs and GPUs this beats the FFT for
    the image sizes used here, and it needs no complex autograd.
    """
    fy = torch.fft.fftfreq(size, device=params.device)[:, None]
    fx = torch.fft.rfftfreq(size, device=params.device)[None, :]
    scale = 1.0 / torch.sqrt(fx**2 + fy**2).clamp(min=1.0 / size)
    real, imag = params[..., 0] * scale, params[..., 1] * scale
    n = torch.arange(size, device=params.device, dtype=torch.float32)
    angle = 2 * math.pi * torch.outer(n, n) / size
    cy, sy = torch.cos(angle) / math.sqrt(size), torch.sin(angle) / math.sqrt(size)  # ifft along y
    half = size // 2 + 1
    weight = torch.full((half,), 2.0, device=params.device)
    weight[0] = 1.0
    if size % 2 == 0:
        weight[-1] = 1.0
    cx, sx = cy[:, :half] * weight, sy[:, :half] * weight  # Hermitian irfft along x
    yr, yi = cy @ real - sy @ imag, sy @ real + cy @ imag
    return yr @ cx.T - yi @ sx.T


def feature_maps(
    model: nn.Module,
    layer: nn.Module | str,
    x: Tensor,
    channels: int = 16,
    path: str | Path | None = None,
    colormap: str = "viridis",
    *,
    layout: str | None = None,
    grid: Sequence[int] | None = None,
    prefix_tokens: int | None = None,
    layer_output: object = None,
    reshape: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Figure]:
    """The layer's activations for ``x`` and a figure of the first ``channels`` maps per image.

    Returns ``(acts, fig)``: ``acts`` is ``(B, C, h, w)`` float32, detached; the figure has one row
    per image (input first), each map min-max scaled on its own. Saved as PNG if ``path``. The
    forward pass stops at the layer; the layout keywords read its output as in the CAM explainers.
    """
    x = check_input(model, x, spatial=(2,), method="feature_maps (a figure of 2-D maps)")
    check_int("channels", channels)
    view = LayerView(layout, grid, prefix_tokens, layer_output, reshape)
    with explaining(model), LayerCapture(model, layer, view, mode="value", stop=True) as capture:
        capture.run(x)
        acts = _feature_map(capture).float()
    shown, _ = normalize_maps(acts[:, :channels])
    titles = [f"ch {c}" for c in range(shown.shape[1])]
    fig = grid_figure(_colorize(shown, colormap), images=x, titles=titles, path=path)
    return acts, fig


def filter_weights(
    conv: nn.Module, path: str | Path | None = None, ncols: int = 8, scale: int = 8
) -> tuple[np.ndarray, Figure]:
    """First-layer kernels as RGB tiles: ``(F, kh * scale, kw * scale, 3)`` uint8 and a grid figure.

    ``conv`` is an ``nn.Conv2d`` or a model (its first ``nn.Conv2d`` is drawn). Weights are centred
    on grey and scaled by the layer's largest magnitude, so tiles compare; kernels with 3 input
    channels are drawn in colour, others as the grey of their channel mean.
    """
    if not isinstance(conv, nn.Module):
        raise TypeError(f"conv must be an nn.Conv2d or a model containing one, got {type(conv).__name__}")
    if not isinstance(conv, nn.Conv2d):
        first = next((m for m in conv.modules() if isinstance(m, nn.Conv2d)), None)
        if first is None:
            raise ValueError(f"no nn.Conv2d layer in {type(conv).__name__}: nothing to draw")
        conv = first
    check_int("ncols", ncols)
    check_int("scale", scale)
    weight = conv.weight.detach().float().cpu()
    if weight.shape[1] != 3:
        weight = weight.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    peak = float(weight.abs().max())
    tiles = 0.5 + 0.5 * weight / peak if peak > 0 else torch.full_like(weight, 0.5)
    tiles = (tiles.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    fig = grid_figure(_tile(tiles, ncols), path=path, cell=1.2)
    return tiles, fig
