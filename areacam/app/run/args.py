"""The arguments of ``areacam run`` and :class:`RunConfig`, the checked form every run starts from."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from areacam.app.forward import COLUMN, RUN_FORWARD_ARG_HELP, add_forward_arg, is_column, parse_forward_args
from areacam.app.loading import InputError
from areacam.app.run.datasets import EMBEDDED_HELP, holds_volumes
from areacam.app.run.targets import RUN_SPEC_HELP, parse_run_target
from areacam.app.run.work import METRICS
from areacam.app.spec import SpecError, get_method
from areacam.methods.registry import METHODS, Method

__all__ = [
    "RUN_EXAMPLE",
    "RunConfig",
    "add_run_args",
    "check_run_forward_kwargs",
    "config_from_args",
    "manifest_forward_kwargs",
    "parse_memory",
]

RUN_EXAMPLE = (
    """examples:
  areacam run --model unet --weights unet.pt --data shapes:0-200 --size 32 32 --method gradcam \\
      --layer decoder.blocks.1 --target segment:label area:mask --metrics pointing-game --out run.zarr
  torchrun --nproc_per_node=2 -m areacam run ...the same arguments...   # 2 processes, one store
  areacam report run.zarr --by pointing_game_0

DATA: a folder of images (recursive: PNG, JPEG, TIFF, BMP, .npy) with optional --masks/--labels, or a
folder of NIfTI volumes (.nii, .nii.gz; one grid for all, SPECs in (Z, Y, X), --masks: NIfTI label
volumes, --transform: the model's preprocessing);
MODULE:FACTORY returning a Dataset of image tensors or (image, label_or_mask); or """
    + EMBEDDED_HELP
    + """

target SPECs: """
    + RUN_SPEC_HELP
)


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``areacam run``."""
    parser.add_argument("--model", required=True, metavar="MODEL", help="registry name or MODULE:FACTORY")
    parser.add_argument("--weights", metavar="CKPT", help="checkpoint: models.save() file or a state dict")
    parser.add_argument("--data", required=True, metavar="DATA", help="folder, MODULE:FACTORY, shapes or digits")
    parser.add_argument("--masks", metavar="DIR", help="folder of masks, same relative paths as --data")
    parser.add_argument("--labels", metavar="CSV", help="CSV with columns id (relative path) and label")
    parser.add_argument(
        "--transform",
        metavar="MODULE:FN",
        help="the model's preprocessing of NIfTI volumes: FN(array (C, D, H, W), affine (4, 4)) returns the "
        "array on the same grid, or (array, affine)",
    )
    parser.add_argument(
        "--size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="resize every image (default: the model's size, else the first image's)",
    )
    parser.add_argument(
        "--method", nargs="+", required=True, metavar="NAME", help=f"one or more of: {', '.join(METHODS)}"
    )
    parser.add_argument("--layer", metavar="NAME", help="layer for CAM methods (see 'areacam layers')")
    parser.add_argument("--target", nargs="+", required=True, metavar="SPEC", help=RUN_SPEC_HELP)
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=[],
        metavar="NAME",
        choices=list(METRICS),
        help=f"per-sample metrics against each sample's mask: {', '.join(METRICS)}",
    )
    parser.add_argument(
        "--tolerance",
        type=int,
        default=0,
        metavar="PX",
        help="pointing game: pixels a peak may lie outside the mask and still hit (0)",
    )
    parser.add_argument("--out", required=True, metavar="STORE", help="store folder (created; a rerun resumes it)")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N", help="samples per forward pass (16)")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=32,
        metavar="N",
        help="samples per committed chunk (32): the unit of resumption",
    )
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="DataLoader workers per process (2)")
    parser.add_argument("--float16", action="store_true", help="store the maps as float16 (half the space)")
    parser.add_argument(
        "--max-memory",
        default="1GB",
        metavar="SIZE",
        help="budget for one batch's maps, e.g. 512MB, 2GB (1GB); targets are split to fit",
    )
    add_forward_arg(parser, RUN_FORWARD_ARG_HELP)
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: each process's GPU if any, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def parse_memory(text: str | int) -> int:
    """``"512MB"``, ``"2GB"``, ``"1.5G"`` or a number of bytes -> bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)i?b?\s*", str(text).lower())
        if match is None:
            raise InputError(f"--max-memory {text!r}: expected a size such as 512MB or 2GB")
        value = int(float(match[1]) * 1024 ** " kmgt".index(match[2] or " "))
    if value < 1:
        raise InputError(f"--max-memory {text!r}: must be positive")
    return value


@dataclass
class RunConfig:
    """The arguments of one run, checked (``InputError`` / ``SpecError`` naming the bad value) on creation.

    ``model`` is a registry name, ``MODULE:FACTORY`` or a module; ``methods`` and ``targets`` the
    method names and target SPECs; ``max_memory`` is bytes once checked. ``forward_kwargs``: the
    model's extra keyword arguments, each the same for every batch or ``"column:NAME"``, the sample's
    value in column ``NAME`` of the ``--labels`` table (a per-sample ``(B,)`` tensor per batch). The
    other fields are the command's options (``areacam run --help``).
    """

    model: str | nn.Module
    data: str
    methods: list[str]
    targets: list[str]
    out: Path
    weights: str | None = None
    layer: str | None = None
    masks: str | None = None
    labels: str | None = None
    transform: str | None = None
    size: tuple[int, ...] | None = None
    metrics: list[str] = field(default_factory=list)
    tolerance: int = 0
    batch_size: int = 16
    chunk_size: int = 32
    workers: int = 2
    float16: bool = False
    max_memory: int = 1 << 30
    device: str | None = None
    progress: bool = True
    forward_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.forward_kwargs = check_run_forward_kwargs(self.forward_kwargs)
        if not self.methods:
            raise SpecError(f"no --method given; valid methods: {', '.join(METHODS)}")
        if not self.targets:
            raise SpecError(f"no --target given; expected one or more of: {RUN_SPEC_HELP}")
        #: The samples' spatial dims: 3 for a folder of NIfTI volumes, else 2.
        self.dims = 3 if holds_volumes(self.data) else 2
        if self.transform is not None and self.dims != 3:
            raise InputError("--transform is the preprocessing of NIfTI volumes: give a folder of them as --data")
        for spec in self.targets:
            parse_run_target(spec, self.dims)
        self.method_specs: list[Method] = [get_method(name) for name in self.methods]
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise InputError(f"unknown metric {unknown[0]!r}; valid: {', '.join(METRICS)}")
        if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, int) or self.tolerance < 0:
            raise InputError(f"--tolerance must be an int >= 0 (pixels), got {self.tolerance!r}")
        for name, value in (("--batch-size", self.batch_size), ("--chunk-size", self.chunk_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive int, got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise InputError(f"--workers must be an int >= 0, got {self.workers!r}")
        if self.size is not None and self.dims == 3:
            raise InputError("--size resizes images; volumes are read on their own grid (resample them in --transform)")
        if self.size is not None:
            if len(self.size) != 2 or min(self.size) < 1:
                raise InputError(f"--size must be two positive ints H W, got {list(self.size)}")
            self.size = tuple(self.size)
        self.max_memory = parse_memory(self.max_memory)


def check_run_forward_kwargs(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The forward keywords of a run, checked: a tensor with a leading dim is refused unless wrapped in
    :class:`areacam.Shared` (a run's batches are cut from the dataset, so no tensor is "one row per
    sample" of them; per-sample values come from a ``--labels`` column as ``"column:NAME"``)."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) and k.isidentifier() for k in kwargs):
        raise InputError(f"forward_kwargs must be a dict with Python identifiers as keys, got {kwargs!r}")
    for name, value in kwargs.items():
        if isinstance(value, Tensor) and value.dim() > 0:
            raise InputError(
                f"forward_kwargs[{name!r}] is a tensor of shape {tuple(value.shape)}: in a run it could be per "
                f"sample of the dataset or the same for every batch; wrap it in ac.Shared(...) for the latter, or "
                f"give per-sample values as a --labels column, {name}='{COLUMN}NAME'"
            )
        if is_column(value) and not value[len(COLUMN) :]:
            raise InputError(f"forward_kwargs[{name!r}] = {value!r}: name the column, e.g. '{COLUMN}label'")
    return dict(kwargs)


def manifest_forward_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The forward keywords as the store's manifest records them (numbers, bools and columns as they are,
    anything else by its ``repr``), so a resumed run with other arguments is refused."""
    plain = (bool, int, float, str, type(None))
    return {k: v if isinstance(v, plain) else repr(v) for k, v in kwargs.items()}


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed ``areacam run`` arguments."""
    return RunConfig(
        model=args.model,
        data=args.data,
        methods=list(args.method),
        targets=list(args.target),
        out=args.out,
        weights=args.weights,
        layer=args.layer,
        masks=args.masks,
        labels=args.labels,
        transform=args.transform,
        size=tuple(args.size) if args.size else None,
        metrics=list(args.metrics),
        tolerance=args.tolerance,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        workers=args.workers,
        float16=args.float16,
        max_memory=parse_memory(args.max_memory),
        device=args.device,
        progress=not args.no_progress,
        forward_kwargs=parse_forward_args(args.forward_arg, None, columns=True),
    )
