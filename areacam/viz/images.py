"""Pictures: heatmap overlays, signed-gradient images and grid figures (numpy only from here on)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import Tensor

from areacam._util.io import atomic_save, atomic_write

__all__ = [
    "COLORMAPS",
    "draw_box",
    "gradient_image",
    "grid_figure",
    "overlay",
    "panel_grid",
    "png_bytes",
    "region_figure",
    "save_figure",
    "save_png",
    "to_rgb",
]

COLORMAPS = {
    name.removeprefix("COLORMAP_").lower(): getattr(cv2, name) for name in dir(cv2) if name.startswith("COLORMAP_")
}


def to_rgb(images: Tensor | np.ndarray) -> np.ndarray:
    """Images as ``(B, H, W, 3)`` uint8 RGB.

    Accepts ``(B, C, H, W)`` / ``(C, H, W)`` tensors or arrays with C = 1 or 3 (float in [0, 1], or
    any float range, which is min-max scaled per image; uint8 as is) and ``(B, H, W, 3)`` /
    ``(H, W, 3)`` / ``(H, W)`` arrays.
    """
    if isinstance(images, Tensor):
        images = images.detach().float().cpu().numpy()
    images = np.asarray(images)
    channels_first = images.ndim >= 3 and images.shape[-3] in (1, 3) and images.shape[-1] not in (1, 3)
    if images.ndim == 2:
        images = images[None, :, :, None]
    elif images.ndim == 3:
        images = images[None]
        images = np.moveaxis(images, 1, -1) if channels_first else images
    elif images.ndim == 4:
        images = np.moveaxis(images, 1, -1) if channels_first else images
    else:
        raise ValueError(f"cannot draw images of shape {images.shape}")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if images.shape[-1] != 3:
        raise ValueError(f"images need 1 or 3 channels, got shape {images.shape}")
    if images.dtype == np.uint8:
        return images
    images = images.astype(np.float32)
    out = np.empty(images.shape, dtype=np.uint8)
    for i, img in enumerate(images):
        low, high = float(img.min()), float(img.max())
        if low < 0 or high > 1:  # not in [0, 1]: stretch this image
            img = (img - low) / (high - low) if high > low else np.zeros_like(img)
        out[i] = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    return out


def overlay(
    image: Tensor | np.ndarray, map: Tensor | np.ndarray, colormap: str = "jet", alpha: float = 0.5
) -> np.ndarray:
    """Blend a ``[0, 1]`` heatmap over an image: ``(H, W, 3)`` uint8 RGB.

    ``image`` is ``(H, W, 3)`` / ``(H, W)`` / ``(C, H, W)``; ``map`` is ``(h, w)`` in ``[0, 1]``,
    resized to the image if needed. ``colormap`` names an OpenCV colormap (``"jet"``, ``"viridis"``...),
    ``alpha`` is the heatmap's weight.
    """
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose from {sorted(COLORMAPS)}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = to_rgb(image)[0]
    if isinstance(map, Tensor):
        map = map.detach().float().cpu().numpy()
    heat: np.ndarray = np.asarray(map, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"map must be (H, W), got shape {heat.shape}")
    if not np.isfinite(heat).all():
        raise ValueError("map contains NaN or inf")
    if heat.shape != rgb.shape[:2]:
        heat = cv2.resize(heat, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = np.round(np.clip(heat, 0, 1) * 255).astype(np.uint8)
    colored = cv2.cvtColor(cv2.applyColorMap(heat, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)
    blended = (1 - alpha) * rgb.astype(np.float32) + alpha * colored.astype(np.float32)
    return np.round(blended).clip(0, 255).astype(np.uint8)


def gradient_image(raw: Tensor | np.ndarray) -> np.ndarray:
    """The usual guided-backprop picture of a signed ``(C, H, W)`` gradient: ``(H, W, 3)`` uint8.

    The gradient is centred on 0.5 grey and scaled so that its largest magnitude reaches 0 or 1.
    """
    if isinstance(raw, Tensor):
        raw = raw.detach().float().cpu().numpy()
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 3:
        raise ValueError(f"gradient must be (C, H, W), got shape {raw.shape}")
    peak = float(np.abs(raw).max())
    img = 0.5 + 0.5 * raw / peak if peak > 0 else np.full_like(raw, 0.5)
    return to_rgb(img[None])[0]


def panel_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    col_titles: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    titles: Sequence[Sequence[str]] | None = None,
    cell: float = 1.7,
    path: str | Path | None = None,
):
    """Figure of a grid of panels: each row a list of ``(H, W, 3)`` uint8 or ``(H, W)`` float images.

    Rows may differ in length and a ``None`` panel stays empty. ``titles[r][c]`` titles one panel,
    else ``col_titles`` title the first row; ``row_titles`` label each row. Saved as PNG to ``path``
    if given. Returns a ``matplotlib.figure.Figure`` (no pyplot state, no backend switch).
    """
    from matplotlib.figure import Figure

    if not rows or not any(len(row) for row in rows):
        raise ValueError("panel_grid needs at least one panel")
    nrows, ncols = len(rows), max(len(row) for row in rows)
    fig = Figure(figsize=(cell * ncols + (0.6 if row_titles else 0), cell * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            panel = row[c] if c < len(row) else None
            if panel is not None:
                ax.imshow(panel, cmap="gray" if np.asarray(panel).ndim == 2 else None, interpolation="nearest")
            title: str | None
            if titles and r < len(titles) and c < len(titles[r]):
                title = titles[r][c]
            else:
                title = col_titles[c] if col_titles and r == 0 and c < len(col_titles) else None
            if title:
                ax.set_title(str(title), fontsize=8)
            if row_titles and c == 0 and r < len(row_titles):
                ax.set_ylabel(str(row_titles[r]), fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def grid_figure(
    panels: np.ndarray,
    images: Tensor | np.ndarray | None = None,
    titles: Sequence[str] | None = None,
    path: str | Path | None = None,
    cell: float = 2.2,
):
    """Figure of ``panels`` ``(B, K, H, W, 3)``: rows = images, columns = targets.

    With ``images`` a first column shows the input. Saved as PNG to ``path`` if given.
    """
    panels = np.asarray(panels)
    if panels.ndim != 5:
        raise ValueError(f"panels must be (B, K, H, W, 3), got shape {panels.shape}")
    rows = [list(row) for row in panels]
    col_titles = list(titles) if titles is not None else None
    if images is not None:
        inputs = to_rgb(images)
        if inputs.shape[0] != len(rows):
            raise ValueError(f"got {inputs.shape[0]} images for {len(rows)} rows of panels")
        rows = [[image, *row] for image, row in zip(inputs, rows)]
        col_titles = ["input", *(col_titles or [])]
    return panel_grid(rows, col_titles=col_titles, cell=cell, path=path)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Save ``fig`` atomically (a temp file renamed into place); the format follows the suffix (PNG without one).

    Figures made by areacam are plain ``matplotlib.figure.Figure`` objects, not registered with
    pyplot: they need no backend and no closing. A pyplot figure passed in is closed after saving.
    """
    path = Path(path)
    kind = (path.suffix or ".png").lstrip(".")
    try:
        return atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=kind))
    finally:
        if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure: release it
            import matplotlib.pyplot as plt

            plt.close(fig)


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 RGB array as PNG atomically."""
    return atomic_write(path, png_bytes(rgb))


def png_bytes(rgb: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 RGB array encoded as PNG."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode an image of shape {rgb.shape} as PNG")
    return data.tobytes()


def draw_box(image: np.ndarray, box: Sequence[int], color: tuple[int, int, int] = (255, 0, 0)) -> np.ndarray:
    """A copy of the ``(H, W, 3)`` uint8 image with the ``(top, left, bottom, right)`` box outlined."""
    top, left, bottom, right = (int(v) for v in box)
    out = np.ascontiguousarray(image).copy()
    cv2.rectangle(out, (left, top), (right - 1, bottom - 1), color, thickness=1)
    return out


def region_figure(
    image: Tensor | np.ndarray,
    recon: Tensor | np.ndarray,
    box: Sequence[int] | Sequence[Sequence[int]],
    guided: Tensor | np.ndarray,
    cam_map: Tensor | np.ndarray,
    path: str | Path | None = None,
    alpha: float = 0.5,
):
    """How a region of a reconstruction is read: input with the box | reconstruction | guided
    backprop | area Grad-CAM, one row per image.

    ``image`` and ``recon`` are ``(C, H, W)`` (one row) or ``(N, C, H, W)``; ``box`` is one
    ``(top, left, bottom, right)`` or one per row; ``guided`` is the signed gradient shaped like
    ``image``; ``cam_map`` is the ``(H, W)`` or ``(N, H, W)`` map in ``[0, 1]``. Saved as PNG to
    ``path`` if given.
    """
    images, recons = to_rgb(image), to_rgb(recon)
    count = images.shape[0]
    boxes: list[Any] = [box] * count if isinstance(box[0], (int, np.integer)) else list(box)
    guided = guided.detach().float().cpu().numpy() if isinstance(guided, Tensor) else np.asarray(guided)
    cam_map = cam_map.detach().float().cpu().numpy() if isinstance(cam_map, Tensor) else np.asarray(cam_map)
    guided = guided.reshape(-1, *guided.shape[-3:])
    cam_map = cam_map.reshape(-1, *cam_map.shape[-2:])
    if not (len(boxes) == recons.shape[0] == guided.shape[0] == cam_map.shape[0] == count):
        raise ValueError(
            f"region_figure got {count} images, {recons.shape[0]} reconstructions, {len(boxes)} boxes, "
            f"{guided.shape[0]} gradients and {cam_map.shape[0]} maps; give one of each per row"
        )
    rows = [
        [draw_box(rgb, b), draw_box(rec, b), gradient_image(g), draw_box(overlay(rgb, m, alpha=alpha), b)]
        for rgb, rec, b, g, m in zip(images, recons, boxes, guided, cam_map)
    ]
    titles = ["input + region", "reconstruction", "guided backprop", "area Grad-CAM"]
    return panel_grid(rows, col_titles=titles, cell=2.2, path=path)
