"""``areacam evaluate`` and ``areacam layers --rank``: is an explanation right, and which layer to read?

``evaluate`` explains the targets of a model on image files with one method, scores the maps with
:mod:`areacam.metrics` (deletion/insertion against a random ranking, localisation against ground-truth
masks, complexity) and runs the cascading randomisation sanity check; it writes ``evaluation.json``,
``curves.png`` and one ``randomisation_*.png`` strip per target, all at once or nothing.
``layers --rank`` ranks the candidate layers of a CAM method for an image and targets by a metric.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import metrics
from ..layers import resolve_layer
from .loading import InputError, default_size, input_channels, load_model, read_images
from .spec import Method, get_method, make_explainer, method_layer, parse_targets

__all__ = ["BASELINES", "EVAL_METRICS", "RANK_METRICS", "read_masks", "run_evaluate", "run_rank"]

#: Metrics ``areacam evaluate --metrics`` accepts (localisation ones need ``--mask``).
EVAL_METRICS = ("deletion", "insertion", "road", "pointing_game", "relevance_mass", "relevance_rank", "iou",
                "sparseness", "entropy")
LOCALISATION = ("pointing_game", "relevance_mass", "relevance_rank", "iou")
#: Metrics ``areacam layers --rank --metric`` accepts.
RANK_METRICS = ("deletion", "insertion", "road", *LOCALISATION)
BASELINES = ("blur", "mean", "zero", "noisy_linear")
RANDOMISATION = ("cascading", "independent", "none")

EVALUATE_EXAMPLE = """examples:
  areacam evaluate --model classifier --weights demo_out/checkpoints/shapes_classifier-full/epoch_010.pt \\
      --image shape.png --mask shape_mask.png --method gradcam --layer features.block4.relu \\
      --target class --out eval_out
  areacam evaluate --model vae --weights vae.pt --image digit.png --method guided-backprop \\
      --target area:4,8,14,24 recon-error --randomisation none --out eval_vae

writes evaluation.json (means, per-target and per-sample values, curve AUCs beside a random ranking's,
randomisation Spearman/SSIM per step), curves.png and randomisation_<k>-<target>.png into --out."""

RANK_EXAMPLE = (
    "  areacam layers --model unet --weights unet.pt --rank --image a.png b.png --target segment:1 "
    "--mask a_mask.png b_mask.png --metric pointing_game"
)


def add_evaluate_args(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``areacam evaluate`` after the model ones."""
    parser.add_argument("--image", nargs="+", required=True, metavar="PATH", help="image files (PNG, JPEG...)")
    parser.add_argument("--method", required=True, metavar="NAME", help="an 'areacam explain' method")
    parser.add_argument("--layer", metavar="NAME", help="layer for CAM methods (see 'areacam layers --rank')")
    parser.add_argument("--target", nargs="+", required=True, metavar="SPEC", help="target SPECs as for explain")
    _mask_arg(parser)
    parser.add_argument("--metrics", nargs="+", metavar="NAME", choices=EVAL_METRICS,
                        help="default: deletion insertion sparseness entropy, plus pointing_game relevance_mass "
                        "relevance_rank iou with --mask; also: road")
    parser.add_argument("--steps", type=int, default=20, metavar="N", help="points of the deletion/insertion "
                        "curves minus one (default 20)")
    parser.add_argument("--baseline", default="blur", choices=BASELINES,
                        help="what replaces removed pixels (default blur)")
    parser.add_argument("--randomisation", default="cascading", choices=RANDOMISATION,
                        help="model-parameter randomisation sanity check (default cascading, from the output "
                        "layer down)")
    parser.add_argument("--out", default="areacam_eval", metavar="DIR", help="output folder (default: areacam_eval)")


def add_rank_args(parser: argparse.ArgumentParser) -> None:
    """The ``--rank`` arguments of ``areacam layers``."""
    group = parser.add_argument_group("ranking layers by measurement (--rank)")
    group.add_argument("--rank", action="store_true", help="rank the candidate layers of --method for --image "
                       "and --target by --metric instead of listing modules")
    group.add_argument("--image", nargs="+", metavar="PATH", help="images to explain (with --rank)")
    group.add_argument("--target", nargs="+", metavar="SPEC", help="target SPECs as for explain (with --rank)")
    group.add_argument("--method", default="gradcam", metavar="NAME", help="a CAM method (default gradcam)")
    group.add_argument("--metric", choices=RANK_METRICS, help="default: deletion (AUC, lower is better); "
                       "pointing_game with --mask")
    _mask_arg(group)
    group.add_argument("--candidates", nargs="+", metavar="LAYER", help="layers to compare (default: the "
                       "output of every resolution stage)")
    group.add_argument("--steps", type=int, default=10, metavar="N", help="steps of the deletion/insertion "
                       "curves (default 10)")


def _mask_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--mask", nargs="+", metavar="PATH", help="ground-truth masks, one image file per --image "
                        "(non-zero pixels = the object), for the localisation metrics")


# ------------------------------------------------------------------------------------------ inputs


def read_masks(paths: list[str], images: list[str], size: tuple[int, int]) -> torch.Tensor:
    """``(B, H, W)`` bool masks from image files (non-zero = inside), one per image, resized to ``size``."""
    import cv2

    if len(paths) != len(images):
        raise InputError(f"--mask takes one file per --image: got {len(paths)} masks for {len(images)} images")
    masks = []
    for path, image in zip(paths, images):
        if not Path(path).is_file():
            raise InputError(f"--mask {path!r}: no such file")
        mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if mask is None or mask.size == 0:
            raise InputError(f"--mask {path!r}: not a readable image (PNG, BMP, TIFF...)")
        mask = mask.reshape(mask.shape[0], mask.shape[1], -1).max(axis=2) if mask.ndim == 3 else mask
        if tuple(mask.shape) != tuple(size):
            mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        mask = mask > 0
        if not mask.any():
            raise InputError(f"--mask {path!r} (for {image!r}) is empty at size {tuple(size)}: a mask needs "
                             "at least one non-zero pixel")
        masks.append(torch.from_numpy(np.ascontiguousarray(mask)))
    return torch.stack(masks)


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise InputError(f"{flag} must be >= 1, got {value}")
    return value


def _check_out(out: str) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {out!r} exists and is not a folder")
    return path


def _forward_error(err: RuntimeError, x: torch.Tensor) -> InputError:
    from .cli import one_line

    return InputError(f"the model failed on inputs of shape {tuple(x.shape)}: {one_line(err)}")


def _layer_factory(method: Method, layer: str | None, size: tuple[int, ...]):
    """``model -> explainer`` resolving ``layer`` by name on whatever model it gets (e.g. a copy)."""

    def build(model: nn.Module):
        return make_explainer(method, model, resolve_layer(model, layer) if method.needs_layer else None, size)

    return build


# ---------------------------------------------------------------------------------------- evaluate


def run_evaluate(args: argparse.Namespace) -> int:
    """``areacam evaluate``: check every input, compute maps, metrics and checks, then write everything."""
    from .cli import slug, write_all

    method = get_method(args.method)
    targets = parse_targets(args.target)
    steps = _positive(args.steps, "--steps")
    chosen = list(dict.fromkeys(args.metrics)) if args.metrics else None
    if chosen and not args.mask and any(m in LOCALISATION for m in chosen):
        raise InputError(f"--metrics {' '.join(m for m in chosen if m in LOCALISATION)} compare maps with "
                         "ground truth: pass --mask, one file per --image")
    out = _check_out(args.out)
    model = load_model(args.model, args.weights)
    layer = method_layer(method, model, args.layer)
    size = tuple(args.size) if args.size else default_size(model)
    x = read_images(args.image, size, input_channels(model))
    size = tuple(x.shape[-2:])
    masks = read_masks(args.mask, args.image, size) if args.mask else None
    explainer = make_explainer(method, model, layer, size)
    try:
        expl = explainer(x, targets)
        evaluation = metrics.evaluate(model, x, targets, expl, masks=masks, metrics=chosen, steps=steps,
                                      baseline=args.baseline, progress=False)
        sanity = None
        if args.randomisation != "none":
            sanity = metrics.randomisation(_layer_factory(method, args.layer, size), model, x, targets,
                                           order=args.randomisation, progress=False)
    except RuntimeError as err:
        raise _forward_error(err, x) from None
    names = [f"{k}-{slug(spec)}" for k, spec in enumerate(args.target)]
    files: dict[str, object] = {}
    if evaluation.curves:
        files["curves.png"] = evaluation.plot(titles=list(args.target))
    if sanity is not None:
        for k, name in enumerate(names):
            files[f"randomisation_{name}.png"] = sanity.plot(images=_rgb(x), sample=0, target=k)
    report = {
        "model": args.model, "weights": args.weights, "method": method.name, "layer": args.layer,
        "size": list(size), "images": list(args.image), "masks": list(args.mask) if args.mask else None,
        "targets": [{"spec": spec, "target": repr(t)} for spec, t in zip(args.target, targets)],
        "steps": steps, "baseline": args.baseline,
        "scores": expl.scores.tolist(),
        "metrics": evaluation.to_dict(),
        "randomisation": _randomisation_summary(sanity),
        "figures": sorted(files),
    }
    files["evaluation.json"] = report
    write_all(out, files, _save_any)
    means = evaluation.means()
    shown = ", ".join(f"{key} {_shown(means[key])}" for key in ("deletion_auc", "deletion_random_auc", "insertion_auc",
                                                           "insertion_random_auc", "pointing_game",
                                                           "relevance_mass", "mask_share") if key in means)
    print(f"areacam evaluate: {method.name} on {len(args.image)} image(s) x {len(targets)} target(s): {shown}")
    if sanity is not None:
        rho = sanity.spearman.flatten(1).mean(1)
        print(f"areacam evaluate: {args.randomisation} randomisation of {len(sanity.layers)} layers: Spearman to "
              f"the original maps {float(rho[0]):.2f} after the first, {float(rho[-1]):.2f} after the last")
    print(f"areacam evaluate: wrote {len(files)} files to {out}")
    return 0


def _shown(value: float | None) -> str:
    """A mean for the summary line: three decimals, or "undefined" (see ``Curves.defined``)."""
    return "undefined" if value is None else f"{value:.3f}"


def _randomisation_summary(sanity: metrics.Randomisation | None) -> dict | None:
    if sanity is None:
        return None
    summary = sanity.summary()
    summary["spearman_per_sample"] = sanity.spearman.tolist()
    summary["ssim_per_sample"] = sanity.ssim.tolist()
    return summary


def _rgb(x: torch.Tensor) -> np.ndarray:
    from ..viz import to_rgb

    return to_rgb(x)


def _save_any(path: Path, value: object) -> None:
    """A matplotlib figure through ``savefig``, an image array through :func:`areacam.viz.save_png`."""
    if hasattr(value, "savefig"):
        value.savefig(path, dpi=100)
        return
    from ..viz import save_png

    save_png(path, value)


# -------------------------------------------------------------------------------------------- rank


def run_rank(args: argparse.Namespace) -> int:
    """``areacam layers --rank``: rank the candidate layers of a CAM method by a metric, best first."""
    if not args.image or not args.target:
        raise InputError("--rank needs --image PATH... and --target SPEC...")
    method = get_method(args.method)
    if not method.needs_layer:
        raise InputError(f"--rank compares layers of a CAM method; {method.name!r} has no layer (e.g. --method "
                         "gradcam)")
    targets = parse_targets(args.target)
    steps = _positive(args.steps, "--steps")
    metric = args.metric or ("pointing_game" if args.mask else "deletion")
    if metric in LOCALISATION and not args.mask:
        raise InputError(f"--metric {metric} compares maps with ground truth: pass --mask, one file per --image")
    model = load_model(args.model, args.weights)
    for name in args.candidates or []:
        resolve_layer(model, name)
    size = tuple(args.size) if args.size else default_size(model)
    x = read_images(args.image, size, input_channels(model))
    size = tuple(x.shape[-2:])
    masks = read_masks(args.mask, args.image, size) if args.mask else None
    try:
        ranking = metrics.rank_layers(
            model, x, targets, method=lambda m, name: make_explainer(method, m, resolve_layer(m, name), size),
            metric=metric, masks=masks, layers=args.candidates, steps=steps, progress=False,
        )
    except RuntimeError as err:
        raise _forward_error(err, x) from None
    better = "higher" if ranking.higher_is_better else "lower"
    print(f"{len(ranking.layers)} candidate layers of {method.name} ranked by {metric} ({better} is better) on "
          f"{x.shape[0]} image(s) x {len(targets)} target(s), input {tuple(x.shape)}:")
    print(ranking.table())
    print(f"best --layer: {ranking.best}")
    return 0
