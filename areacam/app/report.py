"""``areacam report RUN``: an HTML page of a run's worst and best samples by one column of its table.

Each sample is one picture: the image, its mask (when the data has masks) and every map of the run over
the image. The images are read again from the run's ``--data`` (the store keeps maps, not inputs); a
sample whose image is gone is drawn as its maps alone. Same page style and self-check as the demo report.
"""

from __future__ import annotations

import argparse
import html
import re
from pathlib import Path
from typing import Any

import numpy as np

from areacam._util.io import atomic_write
from areacam.app.loading import InputError
from areacam.app.pages import figure_html, html_page
from areacam.app.run.datasets import open_data
from areacam.runs.reader import open_run
from areacam.viz.images import COLORMAPS, overlay, save_png, to_rgb

__all__ = ["add_parser", "report_from_args", "write_run_report"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``report`` subcommand."""
    parser = sub.add_parser(
        "report",
        help="write an HTML page of the worst and best samples of a run by any column",
        description="Write RUN/report/report.html: the worst and best samples of a run by a column of its "
        "table (a score, a metric), each with its maps over the image.",
        epilog="example:\n  areacam report run.zarr --by pointing_game_0 --count 8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN", help="the store folder of an 'areacam run'")
    parser.add_argument(
        "--by", metavar="COLUMN", help="table column to rank by (default: the first metric column, else score_0)"
    )
    parser.add_argument("--count", type=int, default=8, metavar="N", help="samples shown at each end (8)")
    parser.add_argument(
        "--higher-is-worse",
        action="store_true",
        default=None,
        help="the worst samples have the highest values (default for error_pixels_* columns)",
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (default: RUN/report)")
    parser.add_argument("--colormap", default="jet", help="OpenCV colormap of the overlays (default: jet)")


def report_from_args(args: argparse.Namespace) -> int:
    path = write_run_report(
        args.run,
        by=args.by,
        count=args.count,
        higher_is_worse=args.higher_is_worse,
        out=args.out,
        colormap=args.colormap,
    )
    print(f"areacam report: wrote {path}")
    return 0


def _columns(table: Any) -> dict[str, np.ndarray]:
    """The run's table (a pandas DataFrame, or a dict of arrays without pandas) as a dict of arrays."""
    if hasattr(table, "to_dict"):
        return {name: table[name].to_numpy() for name in table.columns}
    return dict(table)


def _default_column(columns: dict[str, np.ndarray]) -> str:
    for prefix in ("pointing_game_", "relevance_mass_", "relevance_rank_", "error_pixels_", "score_"):
        names = [c for c in columns if c.startswith(prefix)]
        if names:
            return names[0]
    raise InputError("the run's table has no score column yet (no chunk committed)")


def _images(config: dict, indices: list[int]) -> dict[int, tuple[np.ndarray | None, np.ndarray | None]]:
    """Image ``(C, H, W)`` and mask of each index, read again from the run's data (``None`` if unreadable)."""
    try:
        data = open_data(
            config["data"], tuple(config["size"]), config["channels"], masks=config["masks"], labels=config["labels"]
        )
        data.dataset.size = tuple(config["size"])
    except Exception:
        return {i: (None, None) for i in indices}
    out: dict[int, tuple[np.ndarray | None, np.ndarray | None]] = {}
    for i in indices:
        sample: dict[str, Any] = (
            data.dataset[i] if i < len(data.ids) and data.ids[i] == config["ids"][i] else {"error": "moved"}
        )
        if sample.get("error"):
            out[i] = (None, None)
        else:
            mask = sample["mask"]
            out[i] = (sample["image"].numpy(), None if mask is None else mask.numpy())
    return out


def _picture(image: np.ndarray | None, mask: np.ndarray | None, maps: np.ndarray, colormap: str) -> np.ndarray:
    """``(H, (2 + K) * W + gaps, 3)`` uint8: image, mask, and each map over the image."""
    import cv2

    height, width = maps.shape[-2:]
    grey = np.full((3, height, width), 0.5, dtype=np.float32)
    base = image if image is not None else grey
    panels = [to_rgb(base)[0]]
    if mask is not None:
        scaled = np.uint8(mask * (255 // max(1, int(mask.max()))))
        panels.append(cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS)[..., ::-1])
    panels += [overlay(base, np.nan_to_num(m.astype(np.float32)), colormap=colormap) for m in maps]
    scale = max(1, 128 // max(height, width))
    gap = np.full((height * scale, 4, 3), 255, dtype=np.uint8)
    row = []
    for panel in panels:
        row += [np.kron(panel, np.ones((scale, scale, 1), dtype=np.uint8)), gap]
    return np.concatenate(row[:-1], axis=1)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "sample"


def write_run_report(
    run: str | Path,
    by: str | None = None,
    count: int = 8,
    higher_is_worse: bool | None = None,
    out: str | Path | None = None,
    colormap: str = "jet",
) -> Path:
    """Write ``report.html`` (default ``RUN/report/``) of the ``count`` worst and best samples by ``by``.

    ``higher_is_worse=None`` ranks an ``error_pixels_*`` column (the size of an ``fp:``/``fn:`` target's
    error region) largest first as the worst, and any other column lowest first.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"--count must be a positive int, got {count!r}")
    if colormap not in COLORMAPS:
        raise InputError(f"unknown --colormap {colormap!r}; e.g. jet, viridis, inferno")
    result = open_run(run)
    columns = _columns(result.table)
    by = by or _default_column(columns)
    if by not in columns:
        numeric = [c for c, v in columns.items() if np.issubdtype(np.asarray(v).dtype, np.number)]
        raise InputError(f"--by {by!r}: no such column; the table has {', '.join(numeric)}")
    if higher_is_worse is None:
        higher_is_worse = by.startswith("error_pixels_")
    values = np.asarray(columns[by], dtype=np.float64)
    order = np.argsort(-values if higher_is_worse else values, kind="stable")
    worst, best = list(order[:count]), list(order[::-1][:count])
    folder = Path(out) if out is not None else Path(run) / "report"
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    store_rows = [int(i) for i in columns["index"]]
    images = _images(result.config, sorted({store_rows[i] for i in worst + best}))
    names = ["image"] + (["mask"] if result.config.get("masks") or _has_masks(images) else []) + result.targets
    shown = [
        c
        for c in columns
        if c.startswith(("score_", "error_pixels_", "pointing_game_", "relevance_mass_", "relevance_rank_"))
    ]
    body = [
        f"<h1>areacam run: {html.escape(str(run))}</h1>",
        f'<p class="meta">{len(result.ids)} samples, ranked by <code>{html.escape(by)}</code> '
        f"({'highest' if higher_is_worse else 'lowest'} first as the worst). Panels: "
        f"{html.escape(', '.join(names))}. Model {html.escape(str(result.config['model']))}, "
        f"data {html.escape(str(result.config['data']))}.</p>",
        '<nav><a href="#worst">Worst</a><a href="#best">Best</a></nav>',
    ]
    for key, picks in (("worst", worst), ("best", best)):
        title = f"{key.title()} {len(picks)} by {by}"
        body.append(f'<section id="{key}"><h2>{html.escape(title)}</h2>')
        for rank, i in enumerate(picks):
            index = store_rows[i]
            image, mask = images[index]
            file = f"{key}-{rank:02d}-{_slug(result.ids[i])}.png"
            save_png(folder / "figures" / file, _picture(image, mask, result.maps[int(i)], colormap))
            caption = ", ".join(f"{c} {float(columns[c][i]):.3g}" for c in shown)
            where = columns["path"][i] if "path" in columns and columns["path"][i] else ""
            caption = f"{by} = {values[i]:.4g}. {caption}." + (f" File {where}." if where else "")
            body.append(figure_html("figures/" + file, f"{rank + 1}. {result.ids[i]}", caption, f"{key}-{rank}"))
        body.append("</section>")
    return atomic_write(folder / "report.html", html_page(f"areacam run report: {run}", body))


def _has_masks(images: dict) -> bool:
    return any(mask is not None for _, mask in images.values())
