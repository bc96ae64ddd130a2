"""``areacam evaluate``: is an explanation right?

It explains the targets of a model on image files with one method, scores the maps with
:mod:`areacam.metrics` (deletion/insertion against a random ranking, localisation against ground-truth
masks, complexity) and runs the cascading randomisation sanity check; it writes ``evaluation.json``,
``curves.png`` and one ``randomisation_*.png`` strip per target, all at once or nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from torch import nn

from areacam import metrics
from areacam.app.explain import slug, write_all
from areacam.app.forward import add_forward_arg, parse_forward_args
from areacam.app.layers import mask_arg
from areacam.app.loading import (
    InputError,
    default_size,
    forward_error,
    input_channels,
    load_model,
    positive,
    read_images,
    read_masks,
)
from areacam.app.spec import get_method, make_explainer, method_layer, parse_targets
from areacam.methods.registry import Method
from areacam.metrics.baselines import BASELINES
from areacam.metrics.catalog import names as metric_names
from areacam.viz.images import to_rgb

__all__ = ["EVAL_METRICS", "add_parser", "run_evaluate"]

#: Metrics ``areacam evaluate --metrics`` accepts (localisation ones need ``--mask``).
EVAL_METRICS = metric_names()
LOCALISATION = metric_names(needs_masks=True)
RANDOMISATION = ("cascading", "independent", "none")

EVALUATE_EXAMPLE = """examples:
  areacam evaluate --model classifier --weights demo_out/checkpoints/shapes_classifier-full/epoch_010.pt \\
      --image shape.png --mask shape_mask.png --method gradcam --layer features.block4.relu \\
      --target class --out eval_out
  areacam evaluate --model vae --weights vae.pt --image digit.png --method guided-backprop \\
      --target area:4,8,14,24 recon-error --randomisation none --out eval_vae

writes evaluation.json (means, per-target and per-sample values, curve AUCs beside a random ranking's,
randomisation Spearman/SSIM per step), curves.png and randomisation_<k>-<target>.png into --out."""


def add_evaluate_args(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``areacam evaluate`` after the model ones."""
    parser.add_argument("--image", nargs="+", required=True, metavar="PATH", help="image files (PNG, JPEG...)")
    parser.add_argument("--method", required=True, metavar="NAME", help="an 'areacam explain' method")
    parser.add_argument("--layer", metavar="NAME", help="layer for CAM methods (see 'areacam layers --rank')")
    parser.add_argument("--target", nargs="+", required=True, metavar="SPEC", help="target SPECs as for explain")
    mask_arg(parser)
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="NAME",
        choices=EVAL_METRICS,
        help="default: deletion insertion sparseness entropy, plus pointing_game relevance_mass "
        "relevance_rank iou with --mask; also: road",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=20,
        metavar="N",
        help="points of the deletion/insertion curves minus one (default 20)",
    )
    parser.add_argument(
        "--baseline", default="blur", choices=BASELINES, help="what replaces removed pixels (default blur)"
    )
    parser.add_argument(
        "--randomisation",
        default="cascading",
        choices=RANDOMISATION,
        help="model-parameter randomisation sanity check (default cascading, from the output layer down)",
    )
    add_forward_arg(parser)
    parser.add_argument("--out", default="areacam_eval", metavar="DIR", help="output folder (default: areacam_eval)")


def _check_out(out: str) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {out!r} exists and is not a folder")
    return path


def _layer_factory(method: Method, layer: str | None, size: tuple[int, ...]):
    """``model -> explainer`` resolving ``layer`` by name on whatever model it gets (e.g. a copy)."""

    def build(model: nn.Module):
        return make_explainer(method, model, method_layer(method, model, layer), size)

    return build


# ---------------------------------------------------------------------------------------- evaluate


def run_evaluate(args: argparse.Namespace) -> int:
    """``areacam evaluate``: check every input, compute maps, metrics and checks, then write everything."""
    method = get_method(args.method)
    targets = parse_targets(args.target)
    steps = positive(args.steps, "--steps")
    chosen = list(dict.fromkeys(args.metrics)) if args.metrics else None
    if chosen and not args.mask and any(m in LOCALISATION for m in chosen):
        raise InputError(
            f"--metrics {' '.join(m for m in chosen if m in LOCALISATION)} compare maps with "
            "ground truth: pass --mask, one file per --image"
        )
    out = _check_out(args.out)
    model = load_model(args.model, args.weights)
    layer = method_layer(method, model, args.layer)
    size = tuple(args.size) if args.size else default_size(model)
    x = read_images(args.image, size, input_channels(model))
    size = tuple(x.shape[-2:])
    masks = read_masks(args.mask, args.image, size) if args.mask else None
    forward_kwargs = parse_forward_args(args.forward_arg, x.shape[0])
    explainer = make_explainer(method, model, layer, size)
    try:
        expl = explainer(x, targets, forward_kwargs=forward_kwargs)
        evaluation = metrics.evaluate(
            model,
            x,
            targets,
            expl,
            masks=masks,
            metrics=chosen,
            steps=steps,
            baseline=args.baseline,
            progress=False,
            forward_kwargs=forward_kwargs,
        )
        sanity = None
        if args.randomisation != "none":
            sanity = metrics.randomisation(
                _layer_factory(method, args.layer, size),
                model,
                x,
                targets,
                order=args.randomisation,
                progress=False,
                forward_kwargs=forward_kwargs,
            )
    except RuntimeError as err:
        raise forward_error(err, x) from None
    names = [f"{k}-{slug(spec)}" for k, spec in enumerate(args.target)]
    files: dict[str, object] = {}
    if evaluation.curves:
        files["curves.png"] = evaluation.plot(titles=list(args.target))
    if sanity is not None:
        for k, name in enumerate(names):
            files[f"randomisation_{name}.png"] = sanity.plot(images=to_rgb(x), sample=0, target=k)
    report = {
        "model": args.model,
        "weights": args.weights,
        "method": method.name,
        "layer": args.layer,
        "size": list(size),
        "forward_args": list(args.forward_arg),
        "images": list(args.image),
        "masks": list(args.mask) if args.mask else None,
        "targets": [{"spec": spec, "target": repr(t)} for spec, t in zip(args.target, targets)],
        "steps": steps,
        "baseline": args.baseline,
        "scores": expl.scores.tolist(),
        "metrics": evaluation.to_dict(),
        "randomisation": _randomisation_summary(sanity),
        "figures": sorted(files),
    }
    files["evaluation.json"] = report
    write_all(out, files)
    means = evaluation.means()
    shown = ", ".join(
        f"{key} {_shown(means[key])}"
        for key in (
            "deletion_auc",
            "deletion_random_auc",
            "insertion_auc",
            "insertion_random_auc",
            "pointing_game",
            "relevance_mass",
            "mask_share",
        )
        if key in means
    )
    print(f"areacam evaluate: {method.name} on {len(args.image)} image(s) x {len(targets)} target(s): {shown}")
    if sanity is not None:
        rho = sanity.spearman.flatten(1).mean(1)
        print(
            f"areacam evaluate: {args.randomisation} randomisation of {len(sanity.layers)} layers: Spearman to "
            f"the original maps {float(rho[0]):.2f} after the first, {float(rho[-1]):.2f} after the last"
        )
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


def add_parser(sub: argparse._SubParsersAction, model_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``evaluate`` subcommand; ``model_args`` adds ``--model/--weights/--size``."""
    evaluate = sub.add_parser(
        "evaluate",
        help="is the explanation right? faithfulness, localisation and randomisation checks of a method",
        description="Explain targets of a model on image files with one method and score the maps: deletion "
        "and insertion curves beside a random ranking, localisation against --mask files, sparseness, and "
        "the cascading model-randomisation sanity check (Adebayo et al. 2018).",
        epilog=EVALUATE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model_args(evaluate)
    add_evaluate_args(evaluate)
