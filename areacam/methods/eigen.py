"""Eigen-CAM (Muhammad & Yeasin 2020): the first principal component of a layer's activations.

Target-independent: one forward pass, no backward pass; every target gets the same map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from areacam.core.explanation import Explanation
from areacam.layers.layout import ViewArgs
from areacam.methods.base import LayerExplainer
from areacam.methods.passes import finish, layer_activations
from areacam.methods.registry import register
from areacam.targets.base import Target

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = ["EigenCAM", "eigen_projection"]


def eigen_projection(acts: Tensor) -> Tensor:
    """Projection of ``(B, C, h, w)`` activations on their first principal component: ``(B, h, w)``.

    Per image, the ``(h*w, C)`` activations are centred per channel and projected on the first right
    singular vector, exactly as pytorch-grad-cam's ``get_2d_projection``. The SVD runs in numpy on
    the CPU (in the activations' dtype, as pytorch-grad-cam's) so that its sign, which the SVD leaves
    arbitrary, is pytorch-grad-cam's.
    """
    batch, channels = acts.shape[:2]
    if channels < 2:
        raise ValueError(
            f"Eigen-CAM needs a layer with at least 2 channels, got {channels}: the principal component "
            "of one channel is that channel up to an arbitrary sign"
        )
    flat = acts.detach().cpu().flatten(2).transpose(1, 2).numpy()  # (B, h*w, C)
    projections = []
    for matrix in flat:
        centred = matrix - matrix.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projections.append(centred @ vt[0])
    out = torch.from_numpy(np.stack(projections).astype(flat.dtype))
    return out.view(batch, *acts.shape[2:]).to(acts.device)


@register(
    "eigencam",
    layer=True,
    summary="Eigen-CAM (the same map for every target)",
    aliases=("eigen-cam",),
    peer="pytorch_grad_cam.EigenCAM",
)
class EigenCAM(LayerExplainer):
    """Eigen-CAM (Muhammad & Yeasin 2020): the first principal component of the activations.

    The map does not depend on the target: every target column of ``raw`` and ``maps`` is the same
    map (``scores`` are still each target's). One forward pass, no backward pass. The component's
    sign is the SVD's own, as in pytorch-grad-cam (see :func:`eigen_projection`); with
    ``sign_correction=True`` it is flipped where the projection's largest magnitude is negative
    (pytorch-grad-cam's Seg-Eigen-CAM correction), so the salient side is the positive one.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str,
        sign_correction: bool = False,
        *,
        create_graph: bool = False,
        **view: Unpack[ViewArgs],
    ):
        super().__init__(model, layer, create_graph, **view)
        self.sign_correction = bool(sign_correction)

    def __call__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, H, W)`` batch ``x``; all K maps are equal."""
        fwd = self.forward_args(x, forward_args, forward_kwargs)
        layer = layer_activations(self.model, self.layer, x, targets, self.view, fwd)
        scores, targets = layer.scores, layer.targets
        projection = eigen_projection(layer.acts)
        if self.sign_correction:
            flat = projection.flatten(1)
            flip = flat.amin(dim=1).abs() > flat.amax(dim=1).abs()
            projection = torch.where(flip.view(-1, *(1,) * (projection.dim() - 1)), -projection, projection)
        raw = torch.relu(projection).unsqueeze(1).expand(-1, len(targets), *projection.shape[1:]).contiguous()
        return finish(raw, raw, scores, targets, x.shape[2:], str(layer.layout))
