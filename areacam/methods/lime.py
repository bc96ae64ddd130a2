"""LIME over superpixels for any target: class scores and regions of dense outputs alike.

The sampling, kernel, distance and surrogate are those of the ``lime`` package's image explainer
(``LimeImageExplainer.explain_instance``): binary masks drawn with ``random_state.randint(0, 2)``,
the first one all ones; cosine distance to it; the exponential kernel ``sqrt(exp(-d**2 / w**2))``
with ``w = 0.25``; a weighted ``Ridge(alpha=1)``. What changes is the plumbing: perturbations are
built on the model's device, and all ``K`` targets of a perturbation batch come from one forward
pass and one multi-output fit.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from areacam._util.checks import check_int
from areacam._util.filters import gaussian_blur
from areacam._util.optional import require
from areacam._util.progress import progress_bar
from areacam.core.autograd import score_targets
from areacam.core.explainer import Explainer
from areacam.core.explanation import Explanation, normalize_maps, working_dtype
from areacam.core.forward import ForwardArgs
from areacam.core.inputs import check_input
from areacam.core.state import explaining
from areacam.methods.registry import register
from areacam.targets.base import Target, as_target_list

__all__ = ["SEGMENTATIONS", "Lime", "segment_image"]

#: Superpixel algorithms by name (lime's ``SegmentationAlgorithm`` types) and their default parameters.
SEGMENTATIONS: dict[str, dict[str, Any]] = {
    "quickshift": {"kernel_size": 4, "max_dist": 200, "ratio": 0.2},  # lime's default
    "slic": {"n_segments": 50, "compactness": 10.0, "start_label": 0},
}
HIDES = ("mean", "blur")

Segmentation = str | Callable[[np.ndarray], np.ndarray]
Hide = str | float | Sequence[float]


def segment_image(
    image: np.ndarray, segmentation: Segmentation = "quickshift", params: dict[str, Any] | None = None
) -> np.ndarray:
    """Superpixels of one ``(H, W, 3)`` float image in ``[0, 1]``: ``(H, W)`` int64 labels ``0..S-1``.

    ``segmentation`` is ``"quickshift"`` or ``"slic"`` (run through lime's ``SegmentationAlgorithm``
    with :data:`SEGMENTATIONS` defaults updated by ``params``) or a callable ``image -> labels``.
    """
    if callable(segmentation):
        labels = np.asarray(segmentation(image))
    else:
        SegmentationAlgorithm = require("lime.wrappers.scikit_image", "ac.Lime", extra="lime").SegmentationAlgorithm
        labels = np.asarray(
            SegmentationAlgorithm(segmentation, **{**SEGMENTATIONS[segmentation], **(params or {})})(image)
        )
    if labels.shape != image.shape[:2]:
        raise ValueError(f"segmentation returned labels of shape {labels.shape}, expected {image.shape[:2]}")
    _, inverse = np.unique(labels, return_inverse=True)  # contiguous 0..S-1, order kept
    return inverse.reshape(labels.shape).astype(np.int64)


def _check_segmentation(segmentation: Segmentation, params: dict[str, Any] | None) -> None:
    if callable(segmentation):
        return
    if segmentation not in SEGMENTATIONS:
        raise ValueError(
            f"unknown segmentation {segmentation!r}; choose from {sorted(SEGMENTATIONS)} or pass a callable "
            "(H, W, 3) image -> (H, W) int labels"
        )
    sk = require("skimage.segmentation", "ac.Lime", extra="lime")
    accepted = inspect.signature(getattr(sk, segmentation)).parameters
    bad = [name for name in (params or {}) if name not in accepted or name == "image"]
    if bad:
        raise ValueError(f"segmentation_params {bad} are not parameters of skimage's {segmentation}")


def _check_hide(hide: Hide) -> None:
    if isinstance(hide, str):
        if hide not in HIDES:
            raise ValueError(f"unknown hide policy {hide!r}; choose 'mean', 'blur', a float or one float per channel")
    elif isinstance(hide, bool) or not isinstance(hide, (int, float, Sequence)):
        raise TypeError(f"hide must be 'mean', 'blur', a float or a sequence of floats, got {hide!r}")
    elif isinstance(hide, Sequence) and not all(isinstance(v, (int, float)) for v in hide):
        raise TypeError(f"hide colour must hold numbers, got {hide!r}")


def _cli(model: nn.Module, layer: nn.Module | None, size: tuple[int, ...]) -> Lime:
    if min(size) < 64:  # quickshift finds too few superpixels on small images
        segments = max(4, min(50, size[0] * size[1] // 16))
        return Lime(
            model,
            num_samples=300,
            batch_size=50,
            random_state=0,
            segmentation="slic",
            segmentation_params={"n_segments": segments},
            progress=False,
        )
    return Lime(model, num_samples=300, batch_size=50, random_state=0, progress=False)


@register(
    "lime",
    layer=False,
    summary="LIME over superpixels (300 samples)",
    build=_cli,
    peer="lime.lime_image.LimeImageExplainer",
)
class Lime(Explainer):
    """LIME over superpixels, one weighted linear fit per target, for class and region targets.

    Args:
        model: the model; called on batches of ``batch_size`` perturbed copies of one image.
        num_samples: perturbations per image (the first is the unperturbed image).
        batch_size: perturbations per forward pass.
        random_state: int seed, ``np.random.RandomState`` or ``None``; drawn exactly as lime draws.
        segmentation: ``"quickshift"`` (lime's default), ``"slic"`` or a callable
            ``(H, W, 3) float image in [0, 1] -> (H, W) int labels``; run once per image.
        segmentation_params: overrides of :data:`SEGMENTATIONS` defaults (skimage argument names).
        hide: what replaces a hidden superpixel: ``"mean"`` (its mean colour, lime's default),
            ``"blur"`` (a Gaussian blur of the image, sigma ``blur_sigma``), a float or one float
            per channel (a fixed colour, in the model's input space).
        blur_sigma: sigma in pixels of ``hide="blur"`` (default ``max(1, max(H, W) / 16)``).
        kernel_width: width of the exponential kernel on the distance.
        kernel: ``kernel(distances, kernel_width) -> weights``; default lime's exponential kernel.
        distance: metric of ``sklearn.metrics.pairwise_distances`` between masks.
        regressor: an sklearn regressor with ``coef_`` and ``fit(..., sample_weight)`` (cloned per
            call); default ``Ridge(alpha=1)``, fitted once for all targets.
        progress: tqdm progress bar; ``None`` shows it only on a terminal.

    Per-sample choices are fixed at the unperturbed image: ``Class()`` explains that image's argmax,
    ``Segment(cls)`` the pixels predicted as ``cls`` there (so hiding a superpixel changes the
    logits over a fixed region). The result's ``raw`` is ``(B, K, S)`` signed weights (``S`` = the
    largest superpixel count of the batch, padded with 0) and ``segments`` ``(B, H, W)``.
    """

    def __init__(
        self,
        model: nn.Module,
        num_samples: int = 1000,
        batch_size: int = 64,
        random_state: int | np.random.RandomState | None = None,
        segmentation: Segmentation = "quickshift",
        segmentation_params: dict[str, Any] | None = None,
        hide: Hide = "mean",
        blur_sigma: float | None = None,
        kernel_width: float = 0.25,
        kernel: Callable[[np.ndarray, float], np.ndarray] | None = None,
        distance: str = "cosine",
        regressor: Any = None,
        progress: bool | None = None,
        *,
        create_graph: bool = False,
    ):
        super().__init__(model, create_graph)
        for module in ("lime", "skimage", "sklearn"):
            require(module, "ac.Lime", extra="lime")
        self.num_samples = check_int("num_samples", num_samples)
        self.batch_size = check_int("batch_size", batch_size)
        if random_state is not None and not isinstance(random_state, (int, np.integer, np.random.RandomState)):
            raise TypeError(f"random_state must be an int, a numpy RandomState or None, got {random_state!r}")
        _check_segmentation(segmentation, segmentation_params)
        _check_hide(hide)
        if blur_sigma is not None and not blur_sigma > 0:
            raise ValueError(f"blur_sigma must be > 0, got {blur_sigma}")
        if not kernel_width > 0:
            raise ValueError(f"kernel_width must be > 0, got {kernel_width}")
        if kernel is not None and not callable(kernel):
            raise TypeError(f"kernel must be callable (distances, kernel_width) -> weights, got {kernel!r}")
        if regressor is not None and not hasattr(regressor, "fit"):
            raise TypeError(f"regressor must be an sklearn regressor with fit(), got {regressor!r}")
        self.random_state = random_state
        self.segmentation = segmentation
        self.segmentation_params = dict(segmentation_params or {})
        self.hide = hide
        self.blur_sigma = blur_sigma
        self.kernel_width = float(kernel_width)
        self.kernel = kernel
        self.distance = distance
        self.regressor = regressor
        self.progress = progress

    def __call__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, H, W)`` batch ``x``.

        ``forward_args`` / ``forward_kwargs``: extra model arguments; a per-sample one follows the
        perturbed copies of its sample.
        """
        check_random_state = require("sklearn.utils", "ac.Lime", extra="lime").check_random_state
        targets = as_target_list(targets)
        x = check_input(self.model, x, spatial=(2,), method="Lime (superpixels of 2-D images)")
        fwd = self.forward_args(x, forward_args, forward_kwargs)
        batch, channels, height, width = x.shape
        self._check_colour(channels)
        rng = check_random_state(self.random_state)
        if isinstance(self.random_state, (int, np.integer)):
            rng = np.random.RandomState(int(self.random_state))  # fresh per call: reproducible
        steps = -(-self.num_samples // self.batch_size)
        weights, segments = [], []
        with explaining(self.model), torch.no_grad():
            output = fwd.run(self.model, x)
            scores = score_targets(targets, output, x)
            with progress_bar(batch * steps, "Lime", enabled=self.progress, unit="batch") as bar:
                for b in range(batch):
                    bound = [target.bind(b, output) for target in targets]
                    labels = self._segments(x[b], rng)
                    data, preds = self._sample(x[b], labels, bound, rng, bar, fwd.take([b]))
                    weights.append(self._fit(data, preds))
                    segments.append(torch.from_numpy(labels))
        count = max(w.shape[1] for w in weights)
        raw = torch.zeros(batch, len(targets), count, dtype=torch.float64)  # the ridge fit's float64 weights
        for b, w in enumerate(weights):
            raw[b, :, : w.shape[1]] = torch.from_numpy(w)
        segments_t = torch.stack(segments)
        maps = raw.gather(2, segments_t.view(batch, 1, -1).expand(batch, len(targets), -1))
        maps, degenerate = normalize_maps(maps.view(batch, len(targets), height, width))
        return Explanation(  # one rounding to float32, at the end
            maps=maps.float().to(x.device),
            raw=raw.float().to(x.device),
            scores=scores.detach().float(),
            degenerate=degenerate.to(x.device),
            segments=segments_t.to(x.device),
            targets=targets,
        )

    def _check_colour(self, channels: int) -> None:
        if isinstance(self.hide, Sequence) and not isinstance(self.hide, str) and len(self.hide) != channels:
            raise ValueError(f"hide colour {tuple(self.hide)} has {len(self.hide)} values for {channels} channels")

    def _segments(self, image: Tensor, rng: np.random.RandomState) -> np.ndarray:
        """Superpixels of one ``(C, H, W)`` image: ``(H, W)`` int64 labels."""
        seed = rng.randint(0, high=1000)  # lime draws a segmentation seed here: keep the stream aligned
        del seed  # skimage's quickshift seeds itself (rng=42); lime's random_seed does not reach it
        params = dict(self.segmentation_params)
        rgb = image.detach().to(working_dtype(image.dtype)).cpu().permute(1, 2, 0).numpy()
        if rgb.shape[2] == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        elif rgb.shape[2] != 3:
            rgb = np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2)
        low, high = float(rgb.min()), float(rgb.max())
        if low < 0 or high > 1:  # e.g. a normalised input: stretch for the segmentation only
            rgb = (rgb - low) / (high - low) if high > low else np.zeros_like(rgb)
        return segment_image(np.ascontiguousarray(rgb), self.segmentation, params)

    def _hidden(self, image: Tensor, onehot: Tensor) -> Tensor:
        """The image every superpixel falls back to when hidden: ``(C, H*W)``."""
        flat = image.flatten(1)
        if self.hide == "mean":  # per-channel means computed exactly as lime does (numpy, the image's dtype)
            pixels = image.detach().to(working_dtype(image.dtype)).cpu().flatten(1).numpy()
            labels = onehot.argmax(0).cpu().numpy()
            means = np.stack([[channel[labels == s].mean() for s in range(onehot.shape[0])] for channel in pixels])
            return (torch.from_numpy(means).to(image.device, image.dtype) @ onehot).to(image.dtype)
        if self.hide == "blur":
            sigma = self.blur_sigma or max(1.0, max(image.shape[1:]) / 16)
            return gaussian_blur(image, sigma).flatten(1)
        colour = torch.as_tensor(self.hide, dtype=image.dtype, device=image.device).reshape(-1, 1)
        return colour.expand(flat.shape).clone()

    def _sample(
        self,
        image: Tensor,
        labels: np.ndarray,
        targets: list[Target],
        rng: np.random.RandomState,
        bar: Any,
        fwd: ForwardArgs,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(N, S)`` as lime draws them and the ``(N, K)`` target scores of the perturbations.

        ``fwd``: the image's own extra model arguments (one row), repeated for each batch of perturbations.
        """
        count = int(labels.max()) + 1
        data = rng.randint(0, 2, self.num_samples * count).reshape((self.num_samples, count))
        data[0, :] = 1
        index = torch.from_numpy(labels).to(image.device).flatten()
        onehot = F.one_hot(index, count).T.to(image.dtype)  # (S, H*W)
        hidden = self._hidden(image, onehot)
        shown = image.flatten(1)
        masks = torch.from_numpy(data).to(device=image.device, dtype=image.dtype)
        preds = []
        for start in range(0, self.num_samples, self.batch_size):
            keep = (masks[start : start + self.batch_size] @ onehot).unsqueeze(1) > 0.5  # (n, 1, H*W)
            batch = torch.where(keep, shown, hidden).view(-1, *image.shape)
            output = fwd.row(0, batch.shape[0]).run(self.model, batch)
            preds.append(score_targets(targets, output, batch).double().cpu())
            bar.update(1)
        return data, torch.cat(preds).numpy()

    def _fit(self, data: np.ndarray, preds: np.ndarray) -> np.ndarray:
        """Signed superpixel weights ``(K, S)``: the weighted linear fit of each target's scores."""
        clone = require("sklearn.base", "ac.Lime", extra="lime").clone
        Ridge = require("sklearn.linear_model", "ac.Lime", extra="lime").Ridge
        pairwise_distances = require("sklearn.metrics", "ac.Lime", extra="lime").pairwise_distances
        distances = pairwise_distances(data, data[0].reshape(1, -1), metric=self.distance).ravel()
        kernel = self.kernel or (lambda d, kernel_width: np.sqrt(np.exp(-(d**2) / kernel_width**2)))
        sample_weight = kernel(distances, self.kernel_width)
        if self.regressor is None:
            model = Ridge(alpha=1, fit_intercept=True).fit(data, preds, sample_weight=sample_weight)
            return np.asarray(model.coef_).reshape(preds.shape[1], data.shape[1])
        coefs = []
        for k in range(preds.shape[1]):
            model = clone(self.regressor).fit(data, preds[:, k], sample_weight=sample_weight)
            coefs.append(np.asarray(model.coef_).reshape(-1))
        return np.stack(coefs)
