"""scikit-learn's bundled handwritten digits as ``(N, 1, S, S)`` images (no download)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from areacam._util.checks import check_int
from areacam._util.optional import require

__all__ = ["digits"]


def digits(
    split: str = "train",
    size: int = 32,
    test_fraction: float = 0.25,
    random_state: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 handwritten digits (1797 images), upsampled bilinearly to ``size x size``.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``; the split is stratified and fixed by ``random_state``.
        size: output side (``>= 8``).
        test_fraction: share of the test split, in ``(0, 1)``.
        random_state: seed of the split.

    Returns:
        ``images`` ``(N, 1, size, size)`` float32 in ``[0, 1]`` and ``labels`` ``(N,)`` int64 in ``0..9``.
    """
    load_digits = require("sklearn.datasets", "areacam.data.digits").load_digits
    train_test_split = require("sklearn.model_selection", "areacam.data.digits").train_test_split

    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    size = check_int("size", size, 8)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.clamp_(0.0, 1.0)
    if split == "all":
        return images.contiguous(), labels
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=random_state, stratify=bunch.target
    )
    idx = torch.from_numpy(np.sort(train_idx if split == "train" else test_idx))
    return images[idx].contiguous(), labels[idx]
