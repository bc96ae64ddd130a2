"""``areacam explore``: write the region explorer page (:func:`areacam.explorer`) of one image of a model."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from areacam.app.loading import InputError, default_size, input_channels, load_model, read_images
from areacam.inspect.explorer import explorer
from areacam.methods.field import FieldUnavailable

__all__ = ["add_parser", "run_explore"]

EXAMPLE = """examples:
  areacam explore --model unet --weights demo_out/checkpoints/unet/epoch_008.pt --image shapes.png \\
      --layer decoder.blocks.3 --class-names background circle square triangle --out unet_explorer.html
  areacam explore --model vae --image digit.png --layer encoder.relu2 --show image --out vae_explorer.html
"""


def add_parser(sub: argparse._SubParsersAction, model_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``explore`` subcommand; ``model_args`` adds ``--model/--weights/--size``."""
    explore = sub.add_parser(
        "explore",
        help="write a self-contained HTML page: the Grad-CAM of any box you drag on the model's output",
        description="Compute the forward-mode field of one image at one layer and write a self-contained HTML "
        "page (no server, no external URL) that recomputes the Grad-CAM of any dragged box or hovered pixel "
        "of the output in the browser. Pick a layer with few channels (a decoder block): the page holds "
        "channels x output channels x H x W float16 numbers.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model_args(explore)
    explore.add_argument("--image", required=True, metavar="PATH", help="one image file (PNG, JPEG...)")
    explore.add_argument("--layer", required=True, metavar="NAME", help="layer (see 'areacam layers')")
    explore.add_argument("--output", metavar="KEY", help="part of a structured model output (index or key)")
    explore.add_argument(
        "--show",
        choices=("image", "argmax"),
        help="draw the output as an image (reconstruction) or by its argmax classes",
    )
    explore.add_argument("--class-names", nargs="+", metavar="NAME", help="one name per output channel")
    explore.add_argument(
        "--out", default="areacam_explorer.html", metavar="HTML", help="page to write (default: areacam_explorer.html)"
    )


def run_explore(args: argparse.Namespace) -> int:
    """``areacam explore``: check the inputs, compute the field, write the page atomically."""
    out = Path(args.out)
    if out.is_dir():
        raise InputError(f"--out {args.out!r} is a folder; give an .html file name")
    model = load_model(args.model, args.weights)
    size = tuple(args.size) if args.size else default_size(model)
    x = read_images([args.image], size, input_channels(model))
    output = int(args.output) if args.output is not None and args.output.lstrip("-").isdigit() else args.output
    try:
        explorer(model, x, args.layer, path=out, output=output, show=args.show, class_names=args.class_names)
    except FieldUnavailable as err:
        raise InputError(str(err)) from None
    except RuntimeError as err:
        raise InputError(f"the model failed on inputs of shape {tuple(x.shape)}: {err}") from None
    print(f"areacam explore: wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
