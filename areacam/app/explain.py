"""``areacam explain``: explain targets of a model on image files; overlays, raw maps and scores at once."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from areacam.app.forward import add_forward_arg, parse_forward_args
from areacam.app.loading import (
    InputError,
    default_size,
    forward_error,
    input_channels,
    load_model,
    read_images,
    read_labels,
)
from areacam.app.nifti import is_nifti, load_transform, nifti_writer, read_label_volume, read_scan, without_suffix
from areacam.app.spec import (
    NO_TRUTH_YET,
    SPEC_HELP,
    get_method,
    make_explainer,
    method_layer,
    needs_truth,
    parse_targets,
)
from areacam.core.forward import ForwardArgs
from areacam.methods.registry import METHODS, Method
from areacam.viz.images import COLORMAPS, save_figure, save_png
from areacam.viz.volumes import volume_figure

__all__ = ["add_parser", "run_explain", "slug", "write_all"]

EXPLAIN_EXAMPLE = (
    """examples:
  areacam explain --model vae --weights demo_out/checkpoints/vae-full/epoch_010.pt --image digit.png \\
      --method gradcam --layer encoder.relu3 --target area:8,8,24,24 recon-error --out expl
  areacam explain --model mypkg.nets:build --image cat.jpg --size 224 224 \\
      --method gradcam++ --layer layer4 --target class class:281
  areacam explain --model mypkg.nets:unet3d --weights unet3d.pt --image scan.nii.gz \\
      --transform mypkg.prep:scale --method gradcam --layer model.decoder --target area:10,20,20,30,40,40:1

NIfTI volumes (.nii, .nii.gz; pip install 'areacam[medical]') are read at their own grid, values as
stored, axes (Z, Y, X) = the stored voxel axes (i, j, k); each map is written as NIfTI with the scan's
affine and shape, beside a PNG of three slices through the target.

target SPECs: """
    + SPEC_HELP
)


def add_parser(sub: argparse._SubParsersAction, model_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``explain`` subcommand; ``model_args`` adds ``--model/--weights/--size``."""
    explain = sub.add_parser(
        "explain",
        help="explain targets of your own model on image files",
        description="Explain one or more targets of a model on image files; writes overlay PNGs, raw maps "
        "(.npy) and scores.json into --out.",
        epilog=EXPLAIN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model_args(explain)
    explain.add_argument(
        "--image", nargs="+", required=True, metavar="PATH", help="image files (PNG, JPEG...) or NIfTI volumes"
    )
    explain.add_argument("--method", required=True, metavar="NAME", help=f"one of: {', '.join(METHODS)}")
    explain.add_argument("--layer", metavar="NAME", help="layer for CAM methods (see 'areacam layers')")
    explain.add_argument("--target", nargs="+", required=True, metavar="SPEC", help=SPEC_HELP)
    explain.add_argument(
        "--mask",
        nargs="+",
        metavar="PATH",
        help="the truth of fp:/fn: targets: label images (pixel value = class), one per --image; "
        "NIfTI label volumes on the explained grid for NIfTI inputs",
    )
    explain.add_argument(
        "--transform",
        metavar="MODULE:FN",
        help="the model's preprocessing of NIfTI volumes: FN(array (C, D, H, W), affine (4, 4)) returns the "
        "array on the same grid, or (array, affine) when it changes the grid",
    )
    add_forward_arg(explain)
    explain.add_argument("--out", default="areacam_out", metavar="DIR", help="output folder (default: areacam_out)")
    explain.add_argument("--colormap", default="jet", help="OpenCV colormap of the overlays (default: jet)")


def slug(text: str) -> str:
    """``text`` as a file-name part: runs of anything but letters and digits become one ``-``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "target"


def run_explain(args: argparse.Namespace) -> int:
    """``areacam explain``: check everything, compute all maps, then write them at once."""
    method = get_method(args.method)
    volumes = [is_nifti(path) for path in args.image]
    if any(volumes):
        if not all(volumes):
            raise InputError("--image mixes NIfTI volumes and 2-D images; explain them in separate calls")
        return _explain_volumes(args, method)
    if getattr(args, "transform", None):
        raise InputError("--transform is the preprocessing of NIfTI volumes; no .nii/.nii.gz --image was given")
    truth_given, out = _check_args(args, dims=2)
    model = load_model(args.model, args.weights)
    layer = method_layer(method, model, args.layer)
    size = tuple(args.size) if args.size else default_size(model)
    x = read_images(args.image, size, input_channels(model))
    truth = read_labels(args.mask, args.image, (int(x.shape[-2]), int(x.shape[-1]))) if truth_given else None
    targets = parse_targets(args.target, truth=truth)
    forward_kwargs = parse_forward_args(args.forward_arg, x.shape[0])
    explainer = make_explainer(method, model, layer, tuple(x.shape[-2:]))
    try:
        expl = explainer(x, targets, forward_kwargs=forward_kwargs)
    except RuntimeError as err:
        raise forward_error(err, x) from None
    overlays = expl.overlay(x, colormap=args.colormap)
    report = {
        "model": args.model,
        "weights": args.weights,
        "method": method.name,
        "layer": args.layer,
        "size": list(x.shape[-2:]),
        "forward_args": list(args.forward_arg),
        "images": [],
    }
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
                {
                    "spec": spec,
                    "target": repr(expl.targets[k]),
                    "score": float(expl.scores[b, k]),
                    "degenerate": bool(expl.degenerate[b, k]),
                    "overlay": f"{base}.png",
                    "map": f"{base}_map.npy",
                    "raw": f"{base}_raw.npy",
                }
            )
        report["images"].append(entry)
    files["scores.json"] = report
    write_all(out, files)
    print(f"areacam explain: wrote {len(files)} files to {out}")
    return 0


def _check_args(args: argparse.Namespace, dims: int) -> tuple[bool, Path]:
    """The checks before anything is loaded (``dims``: 2 for images, 3 for volumes): ``--mask`` against the
    SPECs, the SPECs themselves, ``--size`` (images only), ``--colormap`` and ``--out``. Returns whether
    the truth is given and the output folder."""
    truth_given = bool(getattr(args, "mask", None))
    if truth_given and not needs_truth(args.target):
        raise InputError("--mask is the truth of fp:CLS / fn:CLS targets; no such --target was given")
    if dims == 3 and truth_given and len(args.mask) != len(args.image):
        raise InputError(f"--mask takes one file per --image: got {len(args.mask)} masks for {len(args.image)} volumes")
    no_truth_yet = NO_TRUTH_YET if dims == 2 else NO_TRUTH_YET[None]
    parse_targets(args.target, truth=no_truth_yet if truth_given else None, dims=dims)
    if dims == 3 and args.size:
        raise InputError("--size resizes images; a volume is read on its own grid (resample it in --transform)")
    if args.colormap not in COLORMAPS:
        raise InputError(f"unknown --colormap {args.colormap!r}; e.g. jet, viridis, inferno")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {args.out!r} exists and is not a folder")
    return truth_given, out


def _explain_volumes(args: argparse.Namespace, method: Method) -> int:
    """``areacam explain`` on NIfTI volumes: one call per volume, each map written as NIfTI on its grid."""
    truth_given, out = _check_args(args, dims=3)
    transform = load_transform(args.transform) if args.transform else None
    model = load_model(args.model, args.weights)
    layer = method_layer(method, model, args.layer)
    channels = input_channels(model)
    scans = [read_scan(path, channels, transform) for path in args.image]
    labels = [read_label_volume(m, s.spatial) for m, s in zip(args.mask, scans)] if truth_given else None
    # a per-volume (count,) value gives each volume its row, as ForwardArgs.take does for a batch
    per_volume = ForwardArgs(kwargs=parse_forward_args(args.forward_arg, len(scans)), batch=len(scans))
    results = []
    for b, scan in enumerate(scans):
        targets = parse_targets(args.target, truth=labels[b][None] if labels else None, dims=3)
        x = scan.tensor()
        explainer = make_explainer(method, model, layer, scan.spatial)
        try:
            results.append(explainer(x, targets, forward_kwargs=per_volume.take([b]).kwargs))
        except RuntimeError as err:
            raise forward_error(err, x) from None
    report: dict[str, object] = {
        "model": args.model,
        "weights": args.weights,
        "method": method.name,
        "layer": args.layer,
        "transform": args.transform,
        "forward_args": list(args.forward_arg),
    }
    files: dict[str, object] = {}
    entries: list[dict] = []
    for b, (stem, scan, expl) in enumerate(zip(_unique_stems(args.image), scans, results)):
        entry = {"volume": args.image[b], "shape": list(scan.spatial), "affine": scan.affine.tolist(), "targets": []}
        for k, spec in enumerate(args.target):
            base = f"{stem}_{method.name.replace('+', 'p')}_{k}_{slug(spec)}"
            files[f"{base}.png"] = volume_figure(
                scan.array, expl.maps[0, k : k + 1], expl.targets[k], titles=[spec], colormap=args.colormap
            )
            files[f"{base}_map.nii.gz"] = nifti_writer(expl.maps[0, k].numpy(), scan)
            files[f"{base}_raw.npy"] = expl.raw[0, k].detach().float().numpy()
            entry["targets"].append(
                {
                    "spec": spec,
                    "target": repr(expl.targets[k]),
                    "score": float(expl.scores[0, k]),
                    "degenerate": bool(expl.degenerate[0, k]),
                    "slices": f"{base}.png",
                    "map": f"{base}_map.nii.gz",
                    "raw": f"{base}_raw.npy",
                }
            )
        entries.append(entry)
    files["scores.json"] = {**report, "volumes": entries}
    write_all(out, files)
    print(f"areacam explain: wrote {len(files)} files to {out}")
    return 0


def _unique_stems(paths: list[str]) -> list[str]:
    stems: list[str] = []
    for path in paths:
        name = Path(path).name
        stem = slug(without_suffix(name) if is_nifti(name) else Path(path).stem)
        stems.append(stem if stem not in stems else f"{stem}-{len(stems)}")
    return stems


def write_all(out: Path, files: dict[str, object]) -> None:
    """Write every file into a temp folder next to ``out``, then move them in (no partial output).

    A callable value is called with the file's path (a NIfTI writer, :func:`areacam.app.nifti.nifti_writer`);
    any other value is drawn by its file's suffix: ``.png`` a matplotlib figure or an ``(H, W, 3)`` uint8
    image, ``.npy`` an array, anything else JSON.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".areacam-", dir=out.parent))
    try:
        for name, value in files.items():
            if callable(value):
                value(tmp / name)
            elif name.endswith(".png") and hasattr(value, "savefig"):
                save_figure(value, tmp / name)
            elif name.endswith(".png"):
                save_png(tmp / name, np.asarray(value))
            elif name.endswith(".npy"):
                np.save(tmp / name, np.asarray(value))
            else:
                (tmp / name).write_text(json.dumps(value, indent=2))
        if not out.exists():
            os.replace(tmp, out)
            return
        for name in files:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
