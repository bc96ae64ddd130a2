"""The ``areacam`` command: ``demo``, ``explain``, ``explore``, ``evaluate``, ``layers``, ``run`` and ``report``.

Every bad input ends with a one-line ``areacam <command>: error: ...`` on stderr and exit status 2;
nothing is written before all inputs are checked and all maps are computed. Set ``AREACAM_DEBUG=1``
to see tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..layers import layer_table
from .explore import add_explore_parser, run_explore
from .loading import InputError, default_size, input_channels, load_model, read_images
from .spec import METHODS, SPEC_HELP, SpecError, get_method, make_explainer, method_layer, parse_targets

__all__ = ["build_parser", "main", "run_explain"]

USER_ERRORS = (InputError, SpecError, ValueError, TypeError, IndexError, KeyError, FileNotFoundError, ImportError)

EXPLAIN_EXAMPLE = """examples:
  areacam explain --model vae --weights demo_out/checkpoints/vae-full/epoch_010.pt --image digit.png \\
      --method gradcam --layer encoder.relu3 --target area:8,8,24,24 recon-error --out expl
  areacam explain --model mypkg.nets:build --image cat.jpg --size 224 224 \\
      --method gradcam++ --layer layer4 --target class class:281

target SPECs: """ + SPEC_HELP


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``areacam`` command."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="areacam",
        description="Explain any region of any dense output.",
        epilog="example: areacam demo --out demo_out --quick",
        formatter_class=fmt,
    )
    commands = "{demo,explain,explore,evaluate,layers,run,report}"
    sub = parser.add_subparsers(dest="command", metavar=commands, parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        help="train the reference models on embedded data and write every figure plus report.html",
        description="Train (or reuse) the reference models on the embedded data, write every figure type "
        "and a static report.html grouped by use case.",
        epilog="example:\n  areacam demo --out demo_out --quick   # under 3 minutes on 2 CPU cores",
        formatter_class=fmt,
    )
    demo.add_argument(
        "--out", default="demo_out", help="output folder (default: demo_out); checkpoints in it are reused"
    )
    demo.add_argument("--quick", action="store_true", help="tiny models, few epochs and samples")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    explain = sub.add_parser(
        "explain",
        help="explain targets of your own model on image files",
        description="Explain one or more targets of a model on image files; writes overlay PNGs, raw maps "
        "(.npy) and scores.json into --out.",
        epilog=EXPLAIN_EXAMPLE,
        formatter_class=fmt,
    )
    _model_args(explain)
    explain.add_argument("--image", nargs="+", required=True, metavar="PATH", help="image files (PNG, JPEG...)")
    explain.add_argument(
        "--method", required=True, metavar="NAME", help=f"one of: {', '.join(METHODS)}"
    )
    explain.add_argument("--layer", metavar="NAME", help="layer for CAM methods (see 'areacam layers')")
    explain.add_argument("--target", nargs="+", required=True, metavar="SPEC", help=SPEC_HELP)
    explain.add_argument("--out", default="areacam_out", metavar="DIR", help="output folder (default: areacam_out)")
    explain.add_argument("--colormap", default="jet", help="OpenCV colormap of the overlays (default: jet)")

    add_explore_parser(sub, _model_args)

    from .evaluate import EVALUATE_EXAMPLE, RANK_EXAMPLE, add_evaluate_args, add_rank_args

    evaluate = sub.add_parser(
        "evaluate",
        help="is the explanation right? faithfulness, localisation and randomisation checks of a method",
        description="Explain targets of a model on image files with one method and score the maps: deletion "
        "and insertion curves beside a random ranking, localisation against --mask files, sparseness, and "
        "the cascading model-randomisation sanity check (Adebayo et al. 2018).",
        epilog=EVALUATE_EXAMPLE,
        formatter_class=fmt,
    )
    _model_args(evaluate)
    add_evaluate_args(evaluate)

    layers = sub.add_parser(
        "layers",
        help="list the model's modules with output shapes and the usual CAM layers",
        description="Run one dummy forward and backward pass and list every named module with its output "
        "shape and how areacam reads it (e.g. 'nchw 7x7, C=512', 'tokens 1+14x14, C=192'); '*' marks the "
        "usual CAM choices (per grid size, the last feature map the output depends on).",
        epilog="examples:\n  areacam layers --model classifier\n"
        "  areacam layers --model mypkg.nets:build --size 224 224\n" + RANK_EXAMPLE,
        formatter_class=fmt,
    )
    _model_args(layers)
    add_rank_args(layers)

    from .run import RUN_EXAMPLE, add_run_args

    run = sub.add_parser(
        "run",
        help="explain every sample of a dataset into a resumable store (also under torchrun)",
        description="Explain every sample of a dataset: maps into a zarr store chunked by sample, scores and "
        "metrics into a table. A rerun with the same arguments resumes; under 'torchrun --nproc_per_node=N "
        "-m areacam run ...' the processes share the work.",
        epilog=RUN_EXAMPLE,
        formatter_class=fmt,
    )
    add_run_args(run)

    from .run_report import add_report_args

    report = sub.add_parser(
        "report",
        help="write an HTML page of the worst and best samples of a run by any column",
        description="Write RUN/report/report.html: the worst and best samples of a run by a column of its "
        "table (a score, a metric), each with its maps over the image.",
        epilog="example:\n  areacam report run.zarr --by pointing_game_0 --count 8",
        formatter_class=fmt,
    )
    add_report_args(report)
    return parser


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, metavar="MODEL",
        help="registry name (vae, classifier, fcn, unet...) or MODULE:FACTORY",
    )
    parser.add_argument("--weights", metavar="CKPT", help="checkpoint: models.save() file or a state dict")
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="input size (default: the model's)")


# ------------------------------------------------------------------------------------------ layers


def _dummy(model: nn.Module, size: list[int] | None) -> torch.Tensor:
    hw = tuple(size) if size else default_size(model) or (224, 224)
    if min(hw) < 1:
        raise InputError(f"--size must be two positive ints H W, got {list(hw)}")
    return torch.rand(1, input_channels(model), *hw)


def run_layers(args: argparse.Namespace) -> int:
    """``areacam layers``: print the layer table (``--rank``: the layers ranked by a metric)."""
    if args.rank or args.image or args.target or args.mask or args.candidates:
        from .evaluate import run_rank

        if not args.rank:
            raise InputError("--image, --target, --mask and --candidates go with --rank")
        return run_rank(args)
    model = load_model(args.model, args.weights)
    x = _dummy(model, args.size)
    try:
        rows = layer_table(model, x)
    except (*USER_ERRORS, RuntimeError) as err:
        shape = tuple(x.shape)
        raise InputError(f"a dummy forward pass of shape {shape} failed ({one_line(err)}); pass --size H W") from None
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


# ----------------------------------------------------------------------------------------- explain


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "target"


def run_explain(args: argparse.Namespace) -> int:
    """``areacam explain``: check everything, compute all maps, then write them at once."""
    from ..viz import COLORMAPS, save_png

    method = get_method(args.method)
    targets = parse_targets(args.target)
    if args.colormap not in COLORMAPS:
        raise InputError(f"unknown --colormap {args.colormap!r}; e.g. jet, viridis, inferno")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {args.out!r} exists and is not a folder")
    model = load_model(args.model, args.weights)
    layer = method_layer(method, model, args.layer)
    size = tuple(args.size) if args.size else default_size(model)
    x = read_images(args.image, size, input_channels(model))
    explainer = make_explainer(method, model, layer, tuple(x.shape[-2:]))
    try:
        expl = explainer(x, targets)
    except RuntimeError as err:
        raise InputError(f"the model failed on inputs of shape {tuple(x.shape)}: {one_line(err)}") from None
    overlays = expl.overlay(x, colormap=args.colormap)
    report = {"model": args.model, "weights": args.weights, "method": method.name, "layer": args.layer,
              "size": list(x.shape[-2:]), "images": []}
    files: dict[str, object] = {}
    stems = _unique_stems(args.image)
    for b, path in enumerate(args.image):
        entry = {"image": path, "targets": []}
        for k, spec in enumerate(args.target):
            base = f"{stems[b]}_{method.name.replace('+', 'p')}_{k}_{slug(spec)}"
            files[f"{base}.png"] = overlays[b, k]
            files[f"{base}_map.npy"] = expl.maps[b, k].numpy().astype(np.float32)
            files[f"{base}_raw.npy"] = expl.raw[b, k].detach().float().numpy()
            entry["targets"].append(
                {"spec": spec, "target": repr(expl.targets[k]), "score": float(expl.scores[b, k]),
                 "degenerate": bool(expl.degenerate[b, k]), "overlay": f"{base}.png",
                 "map": f"{base}_map.npy", "raw": f"{base}_raw.npy"}
            )
        report["images"].append(entry)
    files["scores.json"] = report
    write_all(out, files, save_png)
    print(f"areacam explain: wrote {len(files)} files to {out}")
    return 0


def _unique_stems(paths: list[str]) -> list[str]:
    stems: list[str] = []
    for path in paths:
        stem = slug(Path(path).stem)
        stems.append(stem if stem not in stems else f"{stem}-{len(stems)}")
    return stems


def write_all(out: Path, files: dict[str, object], save_png) -> None:
    """Write every file into a temp folder next to ``out``, then move them in (no partial output)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".areacam-", dir=out.parent))
    try:
        for name, value in files.items():
            if name.endswith(".png"):
                save_png(tmp / name, value)
            elif name.endswith(".npy"):
                np.save(tmp / name, value)
            else:
                (tmp / name).write_text(json.dumps(value, indent=2))
        if not out.exists():
            os.replace(tmp, out)
            return
        for name in files:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -------------------------------------------------------------------------------------------- main


def one_line(err: BaseException) -> str:
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    text = " ".join(str(text).split())
    return text if len(text) <= 400 else text[:397] + "..."


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input, 1 unexpected failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    prog = f"areacam {args.command}"
    try:
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args.out, quick=args.quick, progress=not args.no_progress)
        if args.command == "explain":
            return run_explain(args)
        if args.command == "explore":
            return run_explore(args)
        if args.command == "run":
            from .run import run_from_args

            return run_from_args(args)
        if args.command == "report":
            from .run_report import report_from_args

            return report_from_args(args)
        if args.command == "evaluate":
            from .evaluate import run_evaluate

            return run_evaluate(args)
        return run_layers(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if os.environ.get("AREACAM_DEBUG"):
            raise
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:
        if os.environ.get("AREACAM_DEBUG"):
            raise
        print(f"{prog}: failed: {type(err).__name__}: {one_line(err)} (AREACAM_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
