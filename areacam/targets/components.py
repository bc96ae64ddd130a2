"""Connected components of a mask (:func:`components`): each blob of a prediction as its own target."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from areacam._util.optional import require
from areacam.targets.region import MaskLike

__all__ = ["components"]


def components(mask: MaskLike, connectivity: int | None = None, min_size: int = 1) -> Tensor:
    """The connected components of one ``(H, W)`` or ``(D, H, W)`` mask, largest first: ``(N, *spatial)`` bool.

    ``connectivity`` is the number of orthogonal steps two neighbours may be apart, 1 to the number
    of dims (2-D: 1 = 4-connected, 2 = 8-connected; 3-D: 1 = 6, 2 = 18, 3 = 26); ``None`` is full
    connectivity. Components of fewer than ``min_size`` pixels are dropped; equal sizes keep the
    order of their first pixel in raster order. Returned on the mask's device (``N`` may be 0). Uses
    ``scipy.ndimage.label``. Explain each blob::

        pred = model(x).argmax(1)[0]
        targets = [ac.Segment(c, mask=m) for m in ac.components(pred == c)]
    """
    device = mask.device if isinstance(mask, Tensor) else torch.device("cpu")
    array = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    if array.ndim not in (2, 3):
        raise ValueError(f"components needs one (H, W) or (D, H, W) mask, got shape {array.shape}")
    if array.dtype != np.bool_:
        if not np.isin(array, (0, 1)).all():
            raise ValueError("components needs a bool or 0/1 mask; for labels pass labels == c")
        array = array.astype(bool)
    if connectivity is None:
        connectivity = array.ndim
    if isinstance(connectivity, bool) or not isinstance(connectivity, (int, np.integer)):
        raise TypeError(f"connectivity must be an int or None, got {connectivity!r}")
    if not 1 <= connectivity <= array.ndim:
        raise ValueError(f"connectivity must be 1 to {array.ndim} for a {array.ndim}-D mask, got {connectivity}")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1:
        raise ValueError(f"min_size must be an int >= 1, got {min_size!r}")
    ndimage = require("scipy.ndimage", "ac.components")
    structure = ndimage.generate_binary_structure(array.ndim, int(connectivity))
    labels, count = ndimage.label(array, structure=structure)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = [int(i) for i in np.argsort(-sizes, kind="stable") if sizes[i] >= min_size]
    labels_t = torch.from_numpy(labels.astype(np.int64))
    wanted = torch.tensor([i + 1 for i in order], dtype=torch.int64)
    blobs = labels_t.unsqueeze(0) == wanted.view(-1, *(1,) * array.ndim)
    return blobs.to(device)
