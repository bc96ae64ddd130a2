"""Inputs of ``areacam run``: a folder of images or NIfTI volumes, ``MODULE:FACTORY`` or an embedded
dataset, as samples.

Every dataset here yields dicts ``{"index", "image" (C, H, W) float32, "label" int (-1: none),
"mask" (H, W) int64 or None, "error" None}`` (``(C, D, H, W)`` and ``(D, H, W)`` for volumes; and
``"columns" {name: number}`` when per-sample ``--labels`` columns are asked for); a sample that cannot
be read yields ``{"index", "error": "PATH: why"}`` instead, so one bad file never stops a run.
:func:`collate` keeps the readable samples as a batch and the bad ones as a list.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from areacam.app.loading import InputError, conform_image, import_factory, read_array
from areacam.app.nifti import Transform, is_nifti, read_label_volume, read_scan, without_suffix
from areacam.app.run.table import Columns, read_labels

__all__ = ["IMAGE_EXTENSIONS", "RunData", "collate", "holds_volumes", "open_data"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")
EMBEDDED = ("shapes", "digits")
EMBEDDED_HELP = (
    "shapes[:START-STOP] (default: 2000-2500, the test split of areacam.models.train), digits[:test|train|all]"
)


class Samples(Dataset, ABC):
    """A run's samples: item ``i`` is ``{"index", "error", "image", "label", "mask"}``.

    ``size`` is the ``(H, W)`` images are resized to (``None``: as read; set once the first readable
    image gave it).
    """

    size: tuple[int, ...] | None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> dict: ...


@dataclass
class RunData:
    """A dataset ready to run: samples, their ids and file paths, and whether they carry labels/masks."""

    dataset: Samples
    ids: list[str]
    paths: list[str]
    has_labels: bool
    has_masks: bool
    describe: str


def _bad(index: int, where: str, why: object) -> dict:
    text = " ".join(str(why).split())
    return {"index": index, "error": f"{where}: {text}"}


def _check_mask(mask: np.ndarray, where: str, shape: tuple[int, ...]) -> np.ndarray:
    if mask.ndim == 3 and mask.shape[2] in (1, 3, 4) and (mask == mask[..., :1]).all():
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise InputError(f"the mask must be one channel (H, W), got shape {mask.shape}")
    if tuple(mask.shape) != tuple(shape):
        raise InputError(f"the mask is {mask.shape[0]}x{mask.shape[1]}, the image {shape[0]}x{shape[1]}")
    if np.issubdtype(mask.dtype, np.floating):
        if not np.isfinite(mask).all() or (mask != np.round(mask)).any():
            raise InputError("a float mask must hold whole class numbers")
    return mask.astype(np.int64)


def _resize_mask(mask: np.ndarray, size: tuple[int, ...] | None) -> np.ndarray:
    import cv2

    if size is None or tuple(mask.shape) == tuple(size):
        return mask
    return cv2.resize(mask.astype(np.int32), (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(np.int64)


# ------------------------------------------------------------------------------------------- folder


class FolderDataset(Samples):
    """Image files, optionally with masks (same relative path, any image extension) and CSV labels."""

    def __init__(
        self,
        root: Path,
        files: list[str],
        size,
        channels: int,
        masks: list[str | None] | None,
        labels: list[int] | None,
        columns: Columns | None = None,
    ):
        self.root, self.files, self.size, self.channels = root, files, size, channels
        self.masks, self.labels, self.columns = masks, labels, columns or {}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path = str(self.root / self.files[index])
        try:
            raw = read_array(path)
            image = conform_image(raw, path, self.size, self.channels)
        except Exception as err:
            return _bad(index, path, _message(err))
        sample = _new_sample(index, torch.from_numpy(image), path, self.labels, self.columns)
        if sample["error"] is not None:
            return sample
        if self.masks is not None:
            mask_path = self.masks[index]
            if mask_path is None:
                return _bad(index, path, "no mask with the same relative path in the mask folder")
            try:
                mask = _check_mask(read_array(mask_path), mask_path, raw.shape[:2])
            except Exception as err:
                return _bad(index, mask_path, _message(err))
            sample["mask"] = torch.from_numpy(_resize_mask(mask, self.size))
        return _label_from_mask(sample)


class VolumeFolder(Samples):
    """NIfTI scans (:func:`~areacam.app.nifti.read_scan`, through ``transform``), optionally with NIfTI label
    volumes on the explained grid and CSV labels. Every scan must give the grid of the first (one store
    shape); one that does not is a bad sample."""

    def __init__(
        self,
        root: Path,
        files: list[str],
        channels: int,
        masks: list[str | None] | None,
        labels: list[int] | None,
        transform: Transform | None,
        columns: Columns | None = None,
    ):
        self.root, self.files, self.channels, self.transform = root, files, channels, transform
        self.masks, self.labels, self.size, self.columns = masks, labels, None, columns or {}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path = str(self.root / self.files[index])
        try:
            scan = read_scan(path, self.channels, self.transform)
        except Exception as err:
            return _bad(index, path, _message(err))
        if self.size is not None and scan.spatial != tuple(self.size):
            why = f"its grid {scan.spatial} is not the run's {tuple(self.size)} (one grid per store; resample it)"
            return _bad(index, path, why)
        sample = _new_sample(index, scan.tensor()[0], path, self.labels, self.columns)
        if sample["error"] is not None:
            return sample
        if self.masks is not None:
            mask_path = self.masks[index]
            if mask_path is None:
                return _bad(index, path, "no label volume with the same relative path in the mask folder")
            try:
                sample["mask"] = read_label_volume(mask_path, scan.spatial)
            except Exception as err:
                return _bad(index, mask_path, _message(err))
        return _label_from_mask(sample)


def _new_sample(index: int, image: torch.Tensor, path: str, labels: list[int] | None, columns: Columns) -> dict:
    """A read sample with its label (-1: none) and ``--labels`` column values; a bad sample if a column
    value it needs is missing."""
    sample: dict[str, Any] = {"index": index, "image": image, "label": -1, "mask": None, "error": None}
    if labels is not None:
        sample["label"] = labels[index]
    if columns:
        sample["columns"] = {name: values[index] for name, values in columns.items()}
        absent = [name for name, value in sample["columns"].items() if value is None]
        if absent:
            return _bad(index, path, f"no value of column {absent[0]!r} in --labels (a --forward-arg reads it)")
    return sample


def _label_from_mask(sample: dict) -> dict:
    """Without a label, a sample's class is the one its mask marks (the largest class number in it)."""
    if sample["label"] < 0 and sample["mask"] is not None and int(sample["mask"].max()) > 0:
        sample["label"] = int(sample["mask"].max())
    return sample


def _message(err: BaseException) -> str:
    text = str(err.args[0]) if err.args else type(err).__name__
    return re.sub(r"^--image '[^']*'(: )?", "", text) or type(err).__name__


def _list_images(root: Path) -> list[str]:
    files = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if (p.suffix.lower() in IMAGE_EXTENSIONS or is_nifti(p)) and p.is_file() and not p.name.startswith(".")
    ]
    return sorted(files)


def holds_volumes(data: str) -> bool:
    """Whether ``--data`` is a folder holding NIfTI volumes (a run of volumes)."""
    return Path(data).is_dir() and any(is_nifti(f) for f in _list_images(Path(data)))


def _find_masks(files: list[str], folder: Path) -> list[str | None]:
    by_stem: dict[str, str] = {}
    for rel in _list_images(folder):
        by_stem.setdefault(without_suffix(rel), str(folder / rel))
    return [by_stem.get(without_suffix(rel)) for rel in files]


def _folder(
    root: Path,
    size,
    channels: int,
    masks: str | None,
    labels: str | None,
    transform: Transform | None = None,
    columns: Sequence[str] = (),
) -> RunData:
    files = _list_images(root)
    if not files:
        raise InputError(f"--data {str(root)!r}: no images ({', '.join(IMAGE_EXTENSIONS)}) in it or below it")
    volumes = [is_nifti(f) for f in files]
    if any(volumes) and not all(volumes):
        raise InputError(f"--data {str(root)!r} mixes NIfTI volumes and 2-D images; give a folder of one kind")
    if any(volumes) and size is not None:
        raise InputError("--size resizes images; volumes are read on their own grid (resample them in --transform)")
    if transform is not None and not any(volumes):
        raise InputError("--transform is the preprocessing of NIfTI volumes; --data holds none")
    mask_paths = None
    if masks is not None:
        if not Path(masks).is_dir():
            raise InputError(f"--masks {masks!r}: no such folder")
        mask_paths = _find_masks(files, Path(masks))
    if labels is not None and not Path(labels).is_file():
        raise InputError(f"--labels {labels!r}: no such file")
    label_list, column_values = read_labels(Path(labels), files, columns) if labels is not None else (None, {})
    dataset: Samples = (
        VolumeFolder(root, files, channels, mask_paths, label_list, transform, column_values)
        if any(volumes)
        else FolderDataset(root, files, size, channels, mask_paths, label_list, column_values)
    )
    paths = [str(root / f) for f in files]
    has_labels = label_list is not None or masks is not None
    what = "NIfTI volumes" if any(volumes) else "images"
    return RunData(dataset, files, paths, has_labels, masks is not None, f"{len(files)} {what} in {root}")


# ------------------------------------------------------------------------------------- user datasets


class ItemDataset(Samples):
    """Wraps a user Dataset whose items are an image tensor or ``(image, label_or_mask)``."""

    def __init__(self, inner: Any, name: str, size, kind: list[str]):
        self.inner, self.name, self.size, self.kind = inner, name, size, kind  # inner: has __getitem__, __len__

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict:
        where = f"{self.name}[{index}]"
        try:
            return _label_from_mask({"index": index, "error": None, **_item(self.inner[index], self.size)})
        except Exception as err:
            return _bad(index, where, _message(err))


def _as_tensor(value: object, what: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise InputError(f"the {what} must be a tensor or array, got {type(value).__name__}")
    return value


def _item(item: object, size) -> dict:
    extra = None
    if isinstance(item, (tuple, list)):
        if len(item) != 2:
            raise InputError(f"an item must be an image or (image, label_or_mask), got a {len(item)}-tuple")
        item, extra = item
    image = _as_tensor(item, "image").float()
    if image.dim() == 2:
        image = image[None]
    if image.dim() != 3:
        raise InputError(f"the image must be (C, H, W), got shape {tuple(image.shape)}")
    if not torch.isfinite(image).all():
        raise InputError("the image holds NaN or inf")
    shape = tuple(image.shape[1:])
    if size is not None and shape != tuple(size):
        image = F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=True)[0]
    out = {"image": image.contiguous(), "label": -1, "mask": None}
    if extra is None:
        return out
    if isinstance(extra, (int, np.integer)) or (isinstance(extra, (torch.Tensor, np.ndarray)) and extra.ndim == 0):
        out["label"] = int(extra)
        return out
    mask = _check_mask(_as_tensor(extra, "mask").cpu().numpy(), "", shape)
    out["mask"] = torch.from_numpy(_resize_mask(mask, size))
    return out


def _factory(spec: str, size) -> RunData:
    try:
        factory = import_factory(spec)
    except InputError as err:
        raise InputError(str(err).replace("--model", "--data")) from None
    data: Any = factory() if callable(factory) and not isinstance(factory, Dataset) else factory
    if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise InputError(f"--data {spec!r}: the factory returned {type(data).__name__}, not a map-style Dataset")
    n = len(data)
    if n == 0:
        raise InputError(f"--data {spec!r}: the dataset is empty")
    first = _item(data[0], size)
    ids = [f"{i:06d}" for i in range(n)]
    has_mask = first["mask"] is not None
    return RunData(
        ItemDataset(data, spec, size, []),
        ids,
        [""] * n,
        first["label"] >= 0 or has_mask,
        has_mask,
        f"{n} samples of {spec}",
    )


# ----------------------------------------------------------------------------------------- embedded


class TensorDataset(Samples):
    """Images, labels and optional masks held as tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor | None, size):
        self.images, self.labels, self.masks, self.size = images, labels, masks, size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index]
        if self.size is not None and tuple(image.shape[1:]) != tuple(self.size):
            image = F.interpolate(image[None], size=tuple(self.size), mode="bilinear", align_corners=False)[0]
        mask = None if self.masks is None else self.masks[index]
        return {"index": index, "image": image, "label": int(self.labels[index]), "mask": mask, "error": None}


def _embedded(spec: str, size) -> RunData:
    from areacam import data as ac_data

    name, _, arg = spec.partition(":")
    if name == "shapes":
        match = re.fullmatch(r"(\d+)-(\d+)", arg) if arg else re.fullmatch(r"(\d+)-(\d+)", "2000-2500")
        if match is None or int(match[1]) >= int(match[2]):
            raise InputError(f"--data {spec!r}: expected shapes or shapes:START-STOP with START < STOP")
        start, stop = int(match[1]), int(match[2])
        side = int(size[0]) if size is not None else 64
        if size is not None and size[0] != size[1]:
            raise InputError(f"--data shapes draws square images; got --size {list(size)}")
        images, _, masks = ac_data.shapes(stop, size=side)
        images, masks = images[start:], masks[start:]
        # a segmenter's class of each sample is the class its mask marks (1 + shape)
        labels = masks.flatten(1).max(1).values
        ids = [f"shapes/{i:05d}" for i in range(start, stop)]
        return RunData(
            TensorDataset(images, labels, masks, None),
            ids,
            [""] * len(ids),
            True,
            True,
            f"{len(ids)} shapes images {start}-{stop}, {side}x{side}",
        )
    split = arg or "test"
    if split not in ("train", "test", "all"):
        raise InputError(f"--data {spec!r}: expected digits, digits:train, digits:test or digits:all")
    images, labels = ac_data.digits(split)
    ids = [f"digits-{split}/{i:04d}" for i in range(len(images))]
    return RunData(
        TensorDataset(images, labels, None, size), ids, [""] * len(ids), True, False, f"{len(ids)} digits ({split})"
    )


# -------------------------------------------------------------------------------------------- entry


def open_data(
    spec: str,
    size,
    channels: int,
    masks: str | None = None,
    labels: str | None = None,
    transform: Transform | None = None,
    columns: Sequence[str] = (),
) -> RunData:
    """The samples of ``--data SPEC``: a folder (of images, or of NIfTI volumes read through ``transform``),
    an embedded name or ``MODULE:FACTORY``.

    ``size`` ``(H, W)`` resizes every image (masks by nearest neighbour); ``None`` keeps them as stored.
    ``columns``: the ``--labels`` columns each sample carries as ``sample["columns"]`` (per-sample
    forward arguments); they need a folder with ``--labels``.
    """
    if columns and labels is None:
        raise InputError(
            f"--forward-arg ...=column:{columns[0]} reads a column of the --labels table; give --labels "
            "(and a folder of images as --data)"
        )
    if not isinstance(spec, str) or not spec:
        raise InputError(f"--data must be a folder, MODULE:FACTORY or one of {EMBEDDED_HELP}; got {spec!r}")
    if (masks is not None or labels is not None) and not Path(spec).is_dir():
        raise InputError("--masks and --labels go with a folder of images as --data")
    if transform is not None and not Path(spec).is_dir():
        raise InputError("--transform is the preprocessing of NIfTI volumes: give a folder of them as --data")
    if Path(spec).is_dir():
        return _folder(Path(spec), size, channels, masks, labels, transform, columns)
    if spec.partition(":")[0] in EMBEDDED:
        return _embedded(spec, size)
    if ":" in spec:
        return _factory(spec, size)
    raise InputError(f"--data {spec!r}: not a folder, MODULE:FACTORY nor an embedded dataset ({EMBEDDED_HELP})")


def collate(samples: Sequence[dict]) -> dict:
    """A batch of the readable samples (``image (B, C, H, W)``, ``label (B,)``, ``mask (B, H, W)`` or
    ``None``, ``columns`` ``{name: (B,)}``, ``index`` list) and ``bad``: the unreadable ones, ``(index,
    error)`` each."""
    good = [s for s in samples if s.get("error") is None]
    bad = [(s["index"], s["error"]) for s in samples if s.get("error") is not None]
    batch: dict = {
        "index": [s["index"] for s in good],
        "bad": bad,
        "image": None,
        "label": None,
        "mask": None,
        "columns": {},
    }
    if good:
        for name in good[0].get("columns", {}):
            values = [s["columns"][name] for s in good]
            batch["columns"][name] = torch.tensor(
                values, dtype=torch.int64 if isinstance(values[0], int) else torch.float32
            )
        batch["image"] = torch.stack([s["image"] for s in good])
        batch["label"] = torch.tensor([s["label"] for s in good], dtype=torch.int64)
        if all(s["mask"] is not None for s in good):
            batch["mask"] = torch.stack([s["mask"] for s in good])
    return batch


def image_size(data: RunData) -> tuple[int, ...] | None:
    """``(C, H, W)`` of the first readable sample (``None`` if none is readable)."""
    for i in range(min(len(data.ids), 64)):
        sample = data.dataset[i]
        if sample.get("error") is None:
            return tuple(sample["image"].shape)
    return None
