"""NIfTI volumes for the command line: read a scan (and its label volume), run the ``--transform`` hook,
write maps on the scan's grid (nibabel, the ``[medical]`` extra).

Axes are the stored voxel axes ``(i, j, k)`` as nibabel's ``get_fdata()`` returns them, read as ``(D, H,
W)``: a SPEC's ``Z`` is ``i``, ``Y`` is ``j``, ``X`` is ``k``; nothing is reoriented unless the transform
does it. 4-D data ``(i, j, k, n)`` is read with its last axis as channels (MONAI's and the Medical
Segmentation Decathlon's convention) when ``n`` equals the channels the model reads, or whatever ``n``
when a ``--transform`` is given (it gets ``(n, i, j, k)`` and returns what the model reads); any other
4-D, and any 5-D or more, is refused naming the shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from areacam._util.errors import one_line
from areacam._util.optional import require
from areacam.app.loading import InputError, import_factory

__all__ = [
    "SUFFIXES",
    "Scan",
    "is_nifti",
    "load_transform",
    "nifti_writer",
    "read_label_volume",
    "read_scan",
    "without_suffix",
]

#: File name endings read as NIfTI.
SUFFIXES = (".nii", ".nii.gz")

#: ``FN(array (C, D, H, W) float32, affine (4, 4)) -> array`` or ``(array, affine)``.
Transform = Callable[[np.ndarray, np.ndarray], Any]


def is_nifti(path: str | Path) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``, any case)."""
    return str(path).lower().endswith(SUFFIXES)


def without_suffix(path: str) -> str:
    """``path`` without its file extension, ``.nii.gz`` counting as one (``a/scan.nii.gz`` -> ``a/scan``)."""
    return path[: -len(".nii.gz")] if path.lower().endswith(".nii.gz") else path.rsplit(".", 1)[0]


def _nibabel() -> Any:
    return require("nibabel", "reading and writing NIfTI volumes", extra="medical")


@dataclass(frozen=True)
class Scan:
    """One volume as the model reads it.

    ``array`` ``(C, D, H, W)`` float32 (after the transform); ``affine`` ``(4, 4)`` of that grid (the
    file's, unless the transform returned a new one); ``header`` the file's NIfTI header, kept for the
    maps when the grid is the file's (``None`` when the transform changed it); ``path`` the file.
    """

    array: np.ndarray
    affine: np.ndarray
    header: Any
    path: str

    @property
    def spatial(self) -> tuple[int, int, int]:
        """``(D, H, W)``: the grid the maps are written on."""
        d, h, w = self.array.shape[1:]
        return int(d), int(h), int(w)

    def tensor(self) -> torch.Tensor:
        """``(1, C, D, H, W)`` float32."""
        return torch.from_numpy(np.ascontiguousarray(self.array))[None]


def _load(path: str, flag: str) -> Any:
    """The nibabel image of ``path`` (its data not read yet)."""
    nib = _nibabel()
    if not Path(path).is_file():
        raise InputError(f"{flag} {path!r}: no such file")
    try:
        return nib.load(path)
    except Exception as err:
        detail = f"{type(err).__name__}: {one_line(err)}"
        raise InputError(f"{flag} {path!r}: not a readable NIfTI file ({detail})") from None


def _check_shape(shape: tuple[int, ...], path: str, channels: int | None, flag: str) -> None:
    """Refuse data that is neither 3-D nor 4-D with ``channels`` last (any count when ``None``), naming the shape."""
    if len(shape) == 4 and channels is not None and shape[3] != channels:
        raise InputError(
            f"{flag} {path!r} holds 4-D data of shape {shape}: its last axis is read as channels only "
            f"when it equals the {channels} channel(s) the model reads; pick the volume you mean "
            f"(e.g. one time point) into a 3-D file, or pick it with --transform"
        )
    if len(shape) not in (3, 4):
        raise InputError(f"{flag} {path!r} holds {len(shape)}-D data of shape {shape}; need a 3-D volume (i, j, k)")
    if 0 in shape:
        raise InputError(f"{flag} {path!r}: the volume is empty (shape {shape})")


def read_scan(path: str, channels: int, transform: Transform | None = None, flag: str = "--image") -> Scan:
    """The NIfTI volume ``path`` as a :class:`Scan` of ``channels`` channels, through ``transform`` if given.

    Values are as stored (scaled by the header's slope and intercept), not rescaled: intensity scaling is
    the transform's job. ``InputError`` for an unreadable file, 4-D data that is not ``channels``, NaN or
    inf, and a transform that breaks its contract (:func:`load_transform`).
    """
    image = _load(path, flag)
    shape = tuple(int(n) for n in image.shape)
    _check_shape(shape, path, None if transform is not None else channels, flag)
    volume = np.asarray(image.get_fdata(dtype=np.float32))
    volume = volume[None] if volume.ndim == 3 else np.moveaxis(volume, 3, 0)
    affine, header = np.asarray(image.affine, dtype=np.float64), image.header
    if transform is not None:
        volume, new_affine = _apply(transform, volume, affine.copy(), path)
        if new_affine is not None:
            affine, header = new_affine, None
    volume = np.ascontiguousarray(volume, dtype=np.float32)
    if not np.isfinite(volume).all():
        raise InputError(f"{flag} {path!r} holds NaN or inf{' after --transform' if transform else ''}")
    if volume.shape[0] != channels:
        raise InputError(
            f"{flag} {path!r} gives {volume.shape[0]} channel(s) (shape {volume.shape}); the model reads {channels}"
        )
    return Scan(volume, affine, header, path)


def load_transform(spec: str) -> Transform:
    """The ``--transform MODULE:FN`` hook: ``FN(array, affine)``, called on each volume before the model.

    ``array`` is ``(C, D, H, W)`` float32 as read, ``affine`` its ``(4, 4)`` voxel-to-world matrix. ``FN``
    returns the array the model reads, ``(C', D, H, W)`` or ``(D, H, W)`` on the same grid, or
    ``(array, affine)`` when it changes the grid (resampling, reorienting, cropping): the maps are then
    written on the returned grid with the returned affine. A changed grid without an affine is refused.
    """
    fn = import_factory(spec, flag="--transform", form="MODULE:FN")
    if not callable(fn):
        raise InputError(f"--transform {spec!r}: {type(fn).__name__} object is not callable")
    return fn


def _apply(fn: Transform, volume: np.ndarray, affine: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray | None]:
    where = f"--transform on {path!r}"
    try:
        result = fn(volume, affine)
    except Exception as err:
        raise InputError(f"{where} failed: {type(err).__name__}: {one_line(err)}") from None
    new_affine = None
    if isinstance(result, tuple):
        if len(result) != 2:
            raise InputError(f"{where} returned a tuple of {len(result)}; return an array or (array, affine)")
        result, new_affine = result
        new_affine = np.asarray(new_affine, dtype=np.float64)
        if new_affine.shape != (4, 4) or not np.isfinite(new_affine).all():
            raise InputError(f"{where} returned an affine of shape {new_affine.shape}; need a finite (4, 4) matrix")
    if isinstance(result, torch.Tensor):
        result = result.detach().cpu().numpy()
    if not isinstance(result, np.ndarray) or not np.issubdtype(result.dtype, np.number):
        raise InputError(f"{where} returned {type(result).__name__}; return a numeric array or (array, affine)")
    if result.ndim == 3:
        result = result[None]
    if result.ndim != 4 or result.size == 0:
        raise InputError(f"{where} returned shape {result.shape}; need (D, H, W) or (C, D, H, W)")
    if new_affine is None and result.shape[1:] != volume.shape[1:]:
        raise InputError(
            f"{where} changed the grid from {volume.shape[1:]} to {result.shape[1:]} without saying so: "
            f"return (array, affine) with the new grid's affine, or keep the shape"
        )
    return result, new_affine


def read_label_volume(path: str, spatial: tuple[int, ...]) -> torch.Tensor:
    """``(D, H, W)`` int64 labels from a NIfTI label volume on the explained grid ``spatial`` (``InputError``)."""
    data = np.asarray(_load(path, "--mask").dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if tuple(data.shape) != tuple(spatial):
        raise InputError(
            f"--mask {path!r} has shape {data.shape}; the labels must lie on the explained grid {tuple(spatial)}"
        )
    values = np.asarray(data)
    if not np.isfinite(values).all() or (values != np.round(values)).any() or (values < 0).any():
        raise InputError(f"--mask {path!r}: a label volume holds non-negative integer classes")
    return torch.from_numpy(np.ascontiguousarray(values).astype(np.int64))


def nifti_writer(values: np.ndarray, scan: Scan) -> Callable[[Path], None]:
    """A writer of ``values`` ``(D, H, W)`` as a float32 NIfTI file on ``scan``'s grid (its affine and, when
    the grid is the file's, a copy of its header), for :func:`areacam.app.explain.write_all`."""
    nib = _nibabel()
    values = np.asarray(values, dtype=np.float32)
    if values.shape != scan.spatial:
        raise ValueError(f"a map of shape {values.shape} is not on the scan's grid {scan.spatial}")

    def write(path: Path) -> None:
        header = None
        if scan.header is not None:
            header = scan.header.copy()
            header.set_data_dtype(np.float32)
        cls = nib.Nifti2Image if isinstance(scan.header, nib.Nifti2Header) else nib.Nifti1Image
        image = cls(values, scan.affine, header=header)
        image.header.set_data_dtype(np.float32)
        nib.save(image, str(path))

    return write
