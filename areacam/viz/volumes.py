"""Pictures of volumes and signals: orthogonal slices, slice grids and signal bands.

Every function takes one sample (no batch dim) and returns a ``matplotlib.figure.Figure`` built
without pyplot (no global figure state, no backend switch); ``path`` saves it as PNG atomically.

* :func:`volume_figure` -- axial / coronal / sagittal slices through the target's region, the map
  overlaid, the region outlined: one row per map.
* :func:`slice_grid` -- evenly spaced slices along one axis through the region, the map overlaid.
* :func:`signal_figure` -- the signal with the map as a coloured band and the region shaded; with
  ``recon``, the reconstruction and its squared error beside it.

A ``region`` is a target with a box or mask (``ac.Area``, ``ac.Segment``, ``ac.ReconstructionError``,
``ac.Pixel``), a box ``(z0, y0, x0, z1, y1, x1)`` / ``(start, stop)``, a mask of the sample's spatial
shape, or ``None`` (slices through the map's maximum, nothing shaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from areacam._util.checks import check_box
from areacam.viz.images import save_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["AXES", "signal_figure", "slice_grid", "volume_figure"]

#: Slicing axes of a ``(D, H, W)`` volume: name -> (axis cut, rows shown, columns shown).
AXES = {"axial": (0, "y", "x"), "coronal": (1, "z", "x"), "sagittal": (2, "z", "y")}


def _numpy(values: Tensor | np.ndarray, what: str) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().float().cpu().numpy()
    array = np.asarray(values, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or inf")
    return array


def _sample(values: Tensor | np.ndarray, spatial: int, what: str) -> np.ndarray:
    """One sample as ``(C, *spatial)`` (a channel-less ``(*spatial)`` gains C=1)."""
    array = _numpy(values, what)
    if array.ndim == spatial:
        array = array[None]
    if array.ndim != spatial + 1:
        shape = {1: "(C, L) or (L,)", 3: "(C, D, H, W) or (D, H, W)"}[spatial]
        raise ValueError(f"{what} must be one sample {shape}, got shape {array.shape}; index the batch first")
    return array


def _maps(maps: Tensor | np.ndarray, spatial: tuple[int, ...], what: str = "maps") -> np.ndarray:
    """``(K, *spatial)`` maps (one map may drop K), checked against the sample's shape."""
    array = _numpy(maps, what)
    if array.ndim == len(spatial):
        array = array[None]
    if array.ndim != len(spatial) + 1 or array.shape[1:] != spatial:
        raise ValueError(
            f"{what} must be (K, {', '.join(map(str, spatial))}) or ({', '.join(map(str, spatial))}) like the "
            f"sample, got shape {array.shape}; index the batch first (expl.maps[i])"
        )
    return array


def _is_target(region: Any) -> bool:
    """A target (it scores outputs and may carry a ``region``), not a box, a mask or ``None``: pictures draw
    arrays and know targets only by what they are called with."""
    return callable(region) and not isinstance(region, (Tensor, np.ndarray))


def _region_mask(region: Any, spatial: tuple[int, ...], sample: int = 0) -> np.ndarray | None:
    """The region as a bool mask of ``spatial`` (``None``: no region)."""
    if region is None:
        return None
    if _is_target(region):
        inner = getattr(region, "region", None)
        if inner is None:
            return None
        if inner.box is not None:
            region = inner.box
        elif inner.mask is not None:
            region = inner.mask
            if region.dim() == len(spatial) + 1:
                region = region[sample if region.shape[0] > 1 else 0]
        else:
            return None
    if isinstance(region, (Tensor, np.ndarray)):
        mask = _numpy(region, "region mask") > 0
        if mask.shape != spatial:
            raise ValueError(f"region mask of shape {mask.shape} does not fit the sample's {spatial}")
        return mask
    box = check_box(region)
    half = len(box) // 2
    if half != len(spatial):
        raise ValueError(f"box {box} has {half} spatial dims, the sample has {len(spatial)}: {spatial}")
    mask = np.zeros(spatial, dtype=bool)
    mask[tuple(slice(a, b) for a, b in zip(box[:half], box[half:]))] = True
    return mask


def _centre(mask: np.ndarray | None, heat: np.ndarray) -> tuple[int, ...]:
    """Voxel to slice through: the region's centroid, else the map's maximum."""
    if mask is not None and mask.any():
        return tuple(round(float(v.mean())) for v in np.nonzero(mask))
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(heat)), heat.shape))


def _grey(volume: np.ndarray) -> np.ndarray:
    """Channel mean of ``(C, *spatial)``, scaled to ``[0, 1]`` over the whole sample."""
    grey = volume.mean(0)
    low, high = float(grey.min()), float(grey.max())
    return (grey - low) / (high - low) if high > low else np.zeros_like(grey)


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _cut(axis: int, position: int) -> tuple[int | slice, ...]:
    """The index of the 2-D slice at ``position`` along ``axis`` of a 3-D array."""
    return tuple(position if dim == axis else slice(None) for dim in range(3))


def _show(ax, grey: np.ndarray, heat: np.ndarray, mask: np.ndarray | None, colormap: str, alpha: float) -> None:
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.imshow(heat, cmap=colormap, vmin=0, vmax=1, alpha=alpha, interpolation="nearest")
    if mask is not None and mask.any() and not mask.all():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors="white", linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])


def _check_look(colormap: str, alpha: float) -> None:
    from matplotlib import colormaps

    if colormap not in colormaps:
        raise ValueError(f"unknown colormap {colormap!r}; e.g. 'jet', 'viridis', 'inferno'")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


def volume_figure(
    volume: Tensor | np.ndarray,
    maps: Tensor | np.ndarray,
    region: Any = None,
    titles: Sequence[str] | None = None,
    center: Sequence[int] | None = None,
    sample: int = 0,
    path: str | Path | None = None,
    colormap: str = "jet",
    alpha: float = 0.45,
) -> Figure:
    """Axial, coronal and sagittal slices through ``region``, each map overlaid: one row per map.

    ``volume`` is one ``(C, D, H, W)`` or ``(D, H, W)`` sample; ``maps`` ``(K, D, H, W)`` in ``[0, 1]``
    (an Explanation's ``maps[i]``). ``region`` (one for all rows, or one per row, e.g.
    ``expl.targets``) sets the slices (its centroid) and is outlined in white; ``center`` ``(z, y, x)``
    overrides the slices; ``sample`` picks the row of a per-sample ``(B, D, H, W)`` mask.
    """
    _check_look(colormap, alpha)
    grey = _grey(_sample(volume, 3, "volume"))
    heats = _maps(maps, grey.shape)
    regions = _per_map(region, len(heats))
    if titles is not None and len(titles) != len(heats):
        raise ValueError(f"got {len(titles)} titles for {len(heats)} maps")
    fig = _new_figure(3 * 2.4, 2.4 * len(heats) + 0.3)
    axes = fig.subplots(len(heats), 3, squeeze=False)
    for row, (heat, reg) in enumerate(zip(heats, regions)):
        mask = _region_mask(reg, grey.shape, sample)
        point = tuple(center) if center is not None else _centre(mask, heat)
        if len(point) != 3 or not all(0 <= p < s for p, s in zip(point, grey.shape)):
            raise ValueError(f"center {point} is not a voxel (z, y, x) of a volume of shape {grey.shape}")
        for col, (name, (axis, rows, cols)) in enumerate(AXES.items()):
            cut = _cut(axis, point[axis])
            ax = axes[row, col]
            _show(ax, grey[cut], heat[cut], None if mask is None else mask[cut], colormap, alpha)
            label = "zyx"[axis]
            ax.set_title(f"{name} ({label}={point[axis]})", fontsize=8)
            ax.set_ylabel(rows, fontsize=7)
            ax.set_xlabel(cols, fontsize=7)
        if titles is not None:
            axes[row, 0].set_ylabel(f"{titles[row]}\n{AXES['axial'][1]}", fontsize=8)
        elif _is_target(reg):
            axes[row, 0].set_ylabel(f"{reg!r}\n{AXES['axial'][1]}", fontsize=8)
    if path is not None:
        save_figure(fig, path)
    return fig


def _is_box(region: Any) -> bool:
    return isinstance(region, (tuple, list)) and all(isinstance(v, (int, np.integer)) for v in region)


def _per_map(region: Any, count: int) -> list:
    """One region per map: a list/tuple of regions as is, anything else repeated."""
    if isinstance(region, (list, tuple)) and not _is_box(region):
        regions = list(region)
    else:
        regions = [region] * count
    if len(regions) != count:
        raise ValueError(f"got {len(regions)} regions for {count} maps")
    return regions


def slice_grid(
    volume: Tensor | np.ndarray,
    map: Tensor | np.ndarray,
    region: Any = None,
    axis: str = "axial",
    count: int = 8,
    columns: int = 4,
    sample: int = 0,
    path: str | Path | None = None,
    colormap: str = "jet",
    alpha: float = 0.45,
) -> Figure:
    """``count`` evenly spaced slices along ``axis`` (``"axial"``, ``"coronal"``, ``"sagittal"``), one map overlaid.

    The slices span ``region`` along that axis (the whole volume without one); the region is
    outlined in white on each slice.
    """
    _check_look(colormap, alpha)
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; choose from {list(AXES)}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an int >= 1, got {count!r}")
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be an int >= 1, got {columns!r}")
    grey = _grey(_sample(volume, 3, "volume"))
    heat = _maps(map, grey.shape, "map")
    if heat.shape[0] != 1:
        raise ValueError(f"slice_grid draws one map, got {heat.shape[0]}; pass expl.maps[i, k]")
    heat = heat[0]
    mask = _region_mask(region, grey.shape, sample)
    dim = AXES[axis][0]
    if mask is not None and mask.any():
        present = np.nonzero(mask.any(axis=tuple(d for d in range(3) if d != dim)))[0]
        low, high = int(present[0]), int(present[-1])
    else:
        low, high = 0, grey.shape[dim] - 1
    positions = sorted({round(float(v)) for v in np.linspace(low, high, count)})
    rows = -(-len(positions) // columns)
    cols = min(columns, len(positions))
    fig = _new_figure(2.0 * cols, 2.0 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, position in zip(axes.flat, positions):
        cut = _cut(dim, position)
        ax.axis("on")
        _show(ax, grey[cut], heat[cut], None if mask is None else mask[cut], colormap, alpha)
        ax.set_title(f"{'zyx'[dim]}={position}", fontsize=8)
    fig.suptitle(f"{axis} slices" + (f" through {region!r}" if _is_target(region) else ""), fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig


def signal_figure(
    signal: Tensor | np.ndarray,
    maps: Tensor | np.ndarray,
    region: Any = None,
    recon: Tensor | np.ndarray | None = None,
    titles: Sequence[str] | None = None,
    sample: int = 0,
    path: str | Path | None = None,
    colormap: str = "jet",
) -> Figure:
    """The signal with each map as a coloured band beneath it and the region shaded: one row per map.

    ``signal`` is one ``(C, L)`` or ``(L,)`` sample; ``maps`` ``(K, L)`` in ``[0, 1]``. With ``recon``
    (an autoencoder's ``(C, L)`` reconstruction) a panel beside the rows shows the signal, the
    reconstruction and their squared error, with the first row's region shaded.
    """
    _check_look(colormap, 0.5)
    values = _sample(signal, 1, "signal")
    heats = _maps(maps, values.shape[1:])
    regions = _per_map(region, len(heats))
    if titles is not None and len(titles) != len(heats):
        raise ValueError(f"got {len(titles)} titles for {len(heats)} maps")
    rebuilt = None if recon is None else _sample(recon, 1, "recon")
    if rebuilt is not None and rebuilt.shape != values.shape:
        raise ValueError(f"recon of shape {rebuilt.shape} does not match the signal's {values.shape}")
    length = values.shape[1]
    t = np.arange(length)
    cols = 1 if rebuilt is None else 2
    fig = _new_figure(5.5 * cols, 2.2 * len(heats) + 0.3)
    grid = fig.add_gridspec(2 * len(heats), cols, height_ratios=[4, 1] * len(heats))
    low, high = float(values.min()), float(values.max())
    for row, (heat, reg) in enumerate(zip(heats, regions)):
        mask = _region_mask(reg, (length,), sample)
        ax = fig.add_subplot(grid[2 * row, 0])
        band = fig.add_subplot(grid[2 * row + 1, 0], sharex=ax)
        for channel in values:
            ax.plot(t, channel, color="black", linewidth=0.8)
        _shade(ax, mask)
        ax.set_xlim(0, length - 1)
        ax.set_ylim(low - 0.05 * (high - low + 1e-6), high + 0.05 * (high - low + 1e-6))
        band.imshow(heat[None], cmap=colormap, vmin=0, vmax=1, aspect="auto", extent=(-0.5, length - 0.5, 0, 1))
        band.set_yticks([])
        _shade(band, mask, edge_only=True)
        title = titles[row] if titles is not None else (repr(reg) if _is_target(reg) else "map")
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelbottom=False, labelsize=7)
        band.tick_params(labelsize=7)
    if rebuilt is not None:  # one panel beside all rows: the signal, the reconstruction, their error
        right = fig.add_subplot(grid[:, 1])
        for channel, again in zip(values, rebuilt):
            right.plot(t, channel, color="black", linewidth=0.8, label="signal")
            right.plot(t, again, color="tab:blue", linewidth=0.8, label="reconstruction")
        error = ((rebuilt - values) ** 2).sum(0)
        right.fill_between(t, 0, error, color="tab:red", alpha=0.35, label="squared error")
        _shade(right, _region_mask(regions[0], (length,), sample))
        right.set_xlim(0, length - 1)
        right.set_title("signal, reconstruction, squared error", fontsize=8)
        right.tick_params(labelsize=7)
        handles, labels = right.get_legend_handles_labels()
        keep = dict(zip(labels, handles))
        right.legend(keep.values(), keep.keys(), fontsize=6, loc="upper right")
    if path is not None:
        save_figure(fig, path)
    return fig


def _shade(ax, mask: np.ndarray | None, edge_only: bool = False) -> None:
    """Shade (or outline) each run of ``True`` in a 1-D region mask."""
    if mask is None or not mask.any():
        return
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    starts = np.nonzero(np.diff(padded) == 1)[0]
    stops = np.nonzero(np.diff(padded) == -1)[0]
    for start, stop in zip(starts, stops):
        if edge_only:
            ax.axvline(start - 0.5, color="white", linewidth=1.0)
            ax.axvline(stop - 0.5, color="white", linewidth=1.0)
        else:
            ax.axvspan(start - 0.5, stop - 0.5, color="tab:orange", alpha=0.25, linewidth=0)
