"""Photos bundled with scikit-image and scikit-learn, as ``(3, H, W)`` tensors (no download)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from areacam._util.optional import require

__all__ = ["photo", "photo_names"]

_SKIMAGE_PHOTOS = ("astronaut", "camera", "cat", "chelsea", "coffee", "coins", "immunohistochemistry", "rocket")
_SKLEARN_PHOTOS = ("china", "flower")


def photo_names() -> list[str]:
    """Names accepted by :func:`photo` (all bundled with scikit-image / scikit-learn, no download)."""
    return sorted(_SKIMAGE_PHOTOS + _SKLEARN_PHOTOS)


def photo(name: str, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """A bundled photo as a ``(3, H, W)`` float32 tensor in ``[0, 1]`` (grey images repeated to 3 channels).

    Args:
        name: one of :func:`photo_names` (``"astronaut"``, ``"coffee"``, ``"chelsea"``, ``"camera"``, ...;
            ``"china"`` and ``"flower"`` are scikit-learn's ``load_sample_images``).
        size: ``None`` (original size), an int (square ``size x size``) or ``(H, W)``; bilinear resize with
            antialiasing.
    """
    if name not in photo_names():
        raise ValueError(f"unknown photo {name!r}; valid names: {', '.join(photo_names())}")
    if name in _SKIMAGE_PHOTOS:
        arr = np.asarray(getattr(require("skimage.data", "areacam.data.photo"), name)())
    else:
        bunch = require("sklearn.datasets", "areacam.data.photo").load_sample_images()
        index = [f.replace("\\", "/").rsplit("/", 1)[-1] for f in bunch.filenames].index(f"{name}.jpg")
        arr = np.asarray(bunch.images[index])
    img = torch.from_numpy(arr.astype(np.float32) / 255.0)
    img = img.unsqueeze(0).repeat(3, 1, 1) if img.dim() == 2 else img[..., :3].permute(2, 0, 1)
    if size is not None:
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            hw = (int(size), int(size))
        elif (
            isinstance(size, (tuple, list))
            and len(size) == 2
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
        ):
            hw = (int(size[0]), int(size[1]))
        else:
            raise TypeError(f"size must be None, an int or (H, W), got {size!r}")
        if min(hw) < 1:
            raise ValueError(f"size must be positive, got {size!r}")
        img = F.interpolate(img[None], size=hw, mode="bilinear", align_corners=False, antialias=True)[0]
        img = img.clamp_(0.0, 1.0)
    return img.contiguous()
