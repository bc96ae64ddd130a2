"""``areacam layers``: the model's modules with their outputs and the usual CAM layers; with ``--rank``,
the candidate layers of a CAM method ranked by a metric on images."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn

from areacam import metrics
from areacam._util.errors import one_line
from areacam.app.forward import add_forward_arg, parse_forward_args
from areacam.app.loading import (
    USER_ERRORS,
    InputError,
    default_size,
    forward_error,
    input_channels,
    load_model,
    positive,
    read_images,
    read_masks,
)
from areacam.app.spec import get_method, make_explainer, parse_targets
from areacam.layers.find import resolve_layer
from areacam.layers.table import layer_table
from areacam.metrics.catalog import METRICS as METRIC_INFO
from areacam.metrics.catalog import names as metric_names

__all__ = ["RANK_EXAMPLE", "RANK_METRICS", "add_parser", "mask_arg", "run_layers", "run_rank"]

#: Metrics ``areacam layers --rank --metric`` accepts.
RANK_METRICS = metric_names(layer_ranking=True)

RANK_EXAMPLE = (
    "  areacam layers --model unet --weights unet.pt --rank --image a.png b.png --target segment:1 "
    "--mask a_mask.png b_mask.png --metric pointing_game"
)


def add_parser(sub: argparse._SubParsersAction, model_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``layers`` subcommand (with its ``--rank`` arguments)."""
    layers = sub.add_parser(
        "layers",
        help="list the model's modules with output shapes and the usual CAM layers",
        description="Run one dummy forward and backward pass and list every named module with its output "
        "shape and how areacam reads it (e.g. 'nchw 7x7, C=512', 'tokens 1+14x14, C=192'); '*' marks the "
        "usual CAM choices (per grid size, the last feature map the output depends on).",
        epilog="examples:\n  areacam layers --model classifier\n"
        "  areacam layers --model mypkg.nets:build --size 224 224\n" + RANK_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model_args(layers)
    add_rank_args(layers)


def add_rank_args(parser: argparse.ArgumentParser) -> None:
    """The ``--rank`` arguments of ``areacam layers``."""
    group = parser.add_argument_group("ranking layers by measurement (--rank)")
    group.add_argument(
        "--rank",
        action="store_true",
        help="rank the candidate layers of --method for --image and --target by --metric instead of listing modules",
    )
    group.add_argument("--image", nargs="+", metavar="PATH", help="images to explain (with --rank)")
    group.add_argument("--target", nargs="+", metavar="SPEC", help="target SPECs as for explain (with --rank)")
    group.add_argument("--method", default="gradcam", metavar="NAME", help="a CAM method (default gradcam)")
    group.add_argument(
        "--metric", choices=RANK_METRICS, help="default: deletion (AUC, lower is better); pointing_game with --mask"
    )
    mask_arg(group)
    group.add_argument(
        "--candidates",
        nargs="+",
        metavar="LAYER",
        help="layers to compare (default: the output of every resolution stage)",
    )
    group.add_argument(
        "--steps", type=int, default=10, metavar="N", help="steps of the deletion/insertion curves (default 10)"
    )
    add_forward_arg(group)


def mask_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--mask",
        nargs="+",
        metavar="PATH",
        help="ground-truth masks, one image file per --image "
        "(non-zero pixels = the object), for the localisation metrics",
    )


def _dummy(model: nn.Module, size: list[int] | None) -> torch.Tensor:
    hw = tuple(size) if size else default_size(model) or (224, 224)
    if min(hw) < 1:
        raise InputError(f"--size must be two positive ints H W, got {list(hw)}")
    return torch.rand(1, input_channels(model), *hw)


def run_layers(args: argparse.Namespace) -> int:
    """``areacam layers``: print the layer table (``--rank``: the layers ranked by a metric)."""
    if args.rank or args.image or args.target or args.mask or args.candidates:
        if not args.rank:
            raise InputError("--image, --target, --mask and --candidates go with --rank")
        return run_rank(args)
    model = load_model(args.model, args.weights)
    x = _dummy(model, args.size)
    try:
        rows = layer_table(model, x)
    except (*USER_ERRORS, RuntimeError) as err:
        raise InputError(
            f"a dummy forward pass of shape {tuple(x.shape)} failed ({one_line(err)}); pass --size H W"
        ) from None
    width = max(len(r["name"]) for r in rows) if rows else 4
    shapes = ["-" if r["shape"] is None else str(r["shape"]).replace(" ", "") for r in rows]
    shape_width = min(max(map(len, shapes), default=1), 40)
    print(f"input {tuple(x.shape)}; '*' = usual CAM layer choice")
    for r, shape in zip(rows, shapes):
        runs = f" (runs {r['calls']}x: not usable as a CAM layer)" if r["calls"] > 1 else ""
        layout = f"  {r['layout']}" if r["layout"] and not runs else ""
        mark = "*" if r["suggested"] else " "
        print(f"{mark} {r['name']:<{width}}  {r['type']:<20} {shape:<{shape_width}}{layout}{runs}")
    picks = [r["name"] for r in rows if r["suggested"]]
    print(f"suggested --layer: {', '.join(picks) if picks else '(none: no feature maps the output depends on)'}")
    return 0


def run_rank(args: argparse.Namespace) -> int:
    """``areacam layers --rank``: rank the candidate layers of a CAM method by a metric, best first."""
    if not args.image or not args.target:
        raise InputError("--rank needs --image PATH... and --target SPEC...")
    method = get_method(args.method)
    if not method.needs_layer:
        raise InputError(
            f"--rank compares layers of a CAM method; {method.name!r} has no layer (e.g. --method gradcam)"
        )
    targets = parse_targets(args.target)
    steps = positive(args.steps, "--steps")
    metric = args.metric or ("pointing_game" if args.mask else "deletion")
    if METRIC_INFO[metric].needs_masks and not args.mask:
        raise InputError(f"--metric {metric} compares maps with ground truth: pass --mask, one file per --image")
    model = load_model(args.model, args.weights)
    for name in args.candidates or []:
        resolve_layer(model, name)
    size = tuple(args.size) if args.size else default_size(model)
    x = read_images(args.image, size, input_channels(model))
    size = tuple(x.shape[-2:])
    masks = read_masks(args.mask, args.image, size) if args.mask else None
    forward_kwargs = parse_forward_args(args.forward_arg, x.shape[0])
    try:
        ranking = metrics.rank_layers(
            model,
            x,
            targets,
            method=lambda m, name: make_explainer(method, m, resolve_layer(m, name), size),
            metric=metric,
            masks=masks,
            layers=args.candidates,
            steps=steps,
            progress=False,
            forward_kwargs=forward_kwargs,
        )
    except RuntimeError as err:
        raise forward_error(err, x) from None
    better = "higher" if ranking.higher_is_better else "lower"
    print(
        f"{len(ranking.layers)} candidate layers of {method.name} ranked by {metric} ({better} is better) on "
        f"{x.shape[0]} image(s) x {len(targets)} target(s), input {tuple(x.shape)}:"
    )
    print(ranking.table())
    print(f"best --layer: {ranking.best}")
    return 0
