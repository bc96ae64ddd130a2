"""Figures of the metrics, built on ``matplotlib.figure.Figure`` (no pyplot, no global backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from areacam.metrics.means import masked_mean
from areacam.viz.images import save_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from areacam.metrics.randomisation import Randomisation
    from areacam.metrics.result import Curves

__all__ = ["curves_figure", "randomisation_figure"]


def curves_figure(
    results: Sequence[Curves], titles: Sequence[str] | None = None, path: str | Path | None = None, cell: float = 2.6
) -> Figure:
    """Rows = the given curve sets (e.g. deletion, insertion), columns = targets.

    Each panel shows the mean normalised curve over the samples whose curve is defined (solid) and
    the random ranking's (dashed), with both AUCs in the legend; a target defined on no sample says
    so instead of drawing a curve.
    """
    from matplotlib.figure import Figure

    count = results[0].curves.shape[1]
    names = (
        list(titles)
        if titles is not None
        else [repr(t) for t in results[0].targets] or [f"target {k}" for k in range(count)]
    )
    fig = Figure(figsize=(cell * count, cell * len(results)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(results), count, squeeze=False))
    for row, result in enumerate(results):
        x = result.fractions.numpy()
        valid = result.defined[..., None].cpu()
        mean = masked_mean(result.curves.cpu(), valid, dim=0).numpy()
        auc = result.mean_auc.cpu().numpy()
        shown = result.mean_defined.cpu().numpy()
        for k in range(count):
            ax = axes[row, k]
            if not shown[k]:
                ax.text(
                    0.5,
                    0.5,
                    "undefined: the score hardly changes\nfrom intact to fully perturbed",
                    ha="center",
                    va="center",
                    fontsize=7,
                    transform=ax.transAxes,
                )
            else:
                ax.plot(x, mean[k], color="C0", label=f"map, AUC {auc[k]:.3f}")
            rand_auc = result.mean_random_auc
            if result.random_curves is not None and rand_auc is not None and shown[k]:
                rand = masked_mean(result.random_curves.cpu(), valid, dim=0).numpy()
                ax.plot(x, rand[k], color="C1", linestyle="--", label=f"random, AUC {float(rand_auc[k]):.3f}")
            ax.set_xlabel(f"fraction {'removed' if result.kind == 'deletion' else 'inserted'}", fontsize=8)
            if k == 0:
                ax.set_ylabel(f"{result.kind} (normalised score)", fontsize=8)
            if row == 0 and k < len(names):
                ax.set_title(str(names[k]), fontsize=9)
            ax.tick_params(labelsize=7)
            if shown[k]:
                ax.legend(fontsize=7)
    if path is not None:
        save_figure(fig, path)
    return fig


def randomisation_figure(
    result: Randomisation,
    images=None,
    sample: int = 0,
    target: int = 0,
    path: str | Path | None = None,
    cell: float = 1.6,
) -> Figure:
    """Adebayo et al.'s cascading strip for one sample and target, and the similarity per step.

    Top row: the original map, then the map after each randomisation step (over the image if
    ``images`` ``(B, C, H, W)`` is given), titled with the randomised layer; bottom: Spearman and
    SSIM to the original per step, averaged over all samples and targets.
    """
    from matplotlib.figure import Figure

    from areacam.viz.images import overlay

    maps = result.maps[:, sample, target].detach().float().cpu().numpy()  # (L + 1, H, W)
    steps = maps.shape[0]
    fig = Figure(figsize=(cell * steps, cell * 2.4), layout="constrained")
    grid = fig.add_gridspec(2, steps, height_ratios=[1, 1.2])
    for i in range(steps):
        ax = fig.add_subplot(grid[0, i])
        if images is not None:
            ax.imshow(overlay(images[sample], maps[i]))
        else:
            ax.imshow(maps[i], cmap="jet", vmin=0, vmax=1)
        title = "original" if i == 0 else result.layers[i - 1]
        ax.set_title(title if len(title) <= 18 else "…" + title[-17:], fontsize=6)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    x = np.arange(1, steps)
    ax.plot(x, result.spearman.flatten(1).mean(1).cpu().numpy(), marker="o", label="Spearman")
    ax.plot(x, result.ssim.flatten(1).mean(1).cpu().numpy(), marker="s", label="SSIM")
    ax.set_xticks(x, [name if len(name) <= 14 else "…" + name[-13:] for name in result.layers], rotation=60, fontsize=6)
    ax.set_ylabel("similarity to original", fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.legend(fontsize=7)
    ax.set_title(f"{result.order} randomisation, from the output down", fontsize=8)
    if path is not None:
        save_figure(fig, path)
    return fig
