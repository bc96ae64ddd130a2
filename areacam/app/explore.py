"""``areacam explore``: write the region explorer page (:func:`areacam.explorer`) of one image or volume of a model."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from areacam.app.forward import add_forward_arg, parse_forward_args
from areacam.app.loading import InputError, default_size, input_channels, load_model, read_images
from areacam.inspect.explorer import explorer
from areacam.methods.field import FieldUnavailable

__all__ = ["add_parser", "read_volume", "run_explore"]

EXAMPLE = """examples:
  areacam explore --model unet --weights demo_out/checkpoints/unet/epoch_008.pt --image shapes.png \\
      --layer decoder.blocks.3 --class-names background circle square triangle --out unet_explorer.html
  areacam explore --model vae --image digit.png --layer encoder.relu2 --show image --out vae_explorer.html
  areacam explore --model unet3d --weights unet3d.pt --volume scan.npy --layer dec1 \\
      --class-names background sphere cube --out unet3d_explorer.html
"""


def add_parser(sub: argparse._SubParsersAction, model_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``explore`` subcommand; ``model_args`` adds ``--model/--weights/--size``."""
    explore = sub.add_parser(
        "explore",
        help="write a self-contained HTML page: the Grad-CAM of any box you drag on the model's output",
        description="Compute the forward-mode field of one image at one layer and write a self-contained HTML "
        "page (no server, no external URL) that recomputes the Grad-CAM of any dragged box or hovered pixel "
        "of the output in the browser; a volume (--volume) gets three slice views where a dragged rectangle "
        "explains a 3-D box. Pick a layer with few channels (a decoder block): the page holds "
        "channels x output channels x H x W (x D) float16 numbers.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model_args(explore)
    source = explore.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="PATH", help="one image file (PNG, JPEG...)")
    source.add_argument(
        "--volume",
        metavar="PATH",
        help="one volume as .npy, (D, H, W) or (C, D, H, W), values as the model reads them (no rescaling)",
    )
    explore.add_argument("--layer", required=True, metavar="NAME", help="layer (see 'areacam layers')")
    explore.add_argument("--output", metavar="KEY", help="part of a structured model output (index or key)")
    explore.add_argument(
        "--show",
        choices=("image", "argmax"),
        help="draw the output as an image (reconstruction) or by its argmax classes",
    )
    explore.add_argument("--class-names", nargs="+", metavar="NAME", help="one name per output channel")
    add_forward_arg(explore)
    explore.add_argument(
        "--out", default="areacam_explorer.html", metavar="HTML", help="page to write (default: areacam_explorer.html)"
    )


def read_volume(path: str, channels: int) -> torch.Tensor:
    """A ``.npy`` volume ``(D, H, W)`` or ``(C, D, H, W)`` as a ``(1, C, D, H, W)`` float32 batch, values as stored."""
    if not str(path).lower().endswith(".npy"):
        raise InputError(f"--volume {path!r}: give a .npy file holding a (D, H, W) or (C, D, H, W) array")
    if not Path(path).is_file():
        raise InputError(f"--volume {path!r}: no such file")
    try:
        volume = np.load(path, allow_pickle=False)
    except Exception as err:
        raise InputError(f"--volume {path!r}: not a readable .npy file ({type(err).__name__})") from None
    if volume.ndim == 3:
        volume = volume[None]
    if volume.ndim != 4 or volume.size == 0 or not (np.issubdtype(volume.dtype, np.number) or volume.dtype == bool):
        raise InputError(f"--volume {path!r}: need a (D, H, W) or (C, D, H, W) array of numbers, got {volume.shape}")
    volume = volume.astype(np.float32)
    if not np.isfinite(volume).all():
        raise InputError(f"--volume {path!r} holds NaN or inf")
    if volume.shape[0] != channels:
        raise InputError(
            f"--volume {path!r} has {volume.shape[0]} channels (shape {volume.shape}); the model reads {channels}"
        )
    return torch.from_numpy(np.ascontiguousarray(volume))[None]


def run_explore(args: argparse.Namespace) -> int:
    """``areacam explore``: check the inputs, compute the field, write the page atomically."""
    out = Path(args.out)
    if out.is_dir():
        raise InputError(f"--out {args.out!r} is a folder; give an .html file name")
    model = load_model(args.model, args.weights)
    if args.volume is not None:
        if args.size:
            raise InputError("--size resizes images; give the volume at the size the model reads")
        x = read_volume(args.volume, input_channels(model))
    else:
        size = tuple(args.size) if args.size else default_size(model)
        x = read_images([args.image], size, input_channels(model))
    output = int(args.output) if args.output is not None and args.output.lstrip("-").isdigit() else args.output
    forward_kwargs = parse_forward_args(args.forward_arg, 1)
    try:
        explorer(
            model,
            x,
            args.layer,
            path=out,
            output=output,
            show=args.show,
            class_names=args.class_names,
            forward_kwargs=forward_kwargs,
        )
    except FieldUnavailable as err:
        raise InputError(str(err)) from None
    except TypeError as err:  # the model's forward refused a --forward-arg (named by the explorer's check)
        if "does not take these arguments" not in str(err):
            raise
        raise InputError(str(err)) from None
    except RuntimeError as err:
        raise InputError(f"the model failed on inputs of shape {tuple(x.shape)}: {err}") from None
    print(f"areacam explore: wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
