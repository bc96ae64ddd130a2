"""areacam.metrics equals the references on the same maps and inputs: pytorch-grad-cam's ROAD,
Quantus 0.6's localisation and sparseness metrics, scikit-image's SSIM, scipy's Spearman.

Models and maps are float64 so the references are float64 (tests/README.md, rule 2). pytorch-grad-cam's
imputer returns float32 images whatever its input: its models take float32 and compute in float64
(:class:`Float64`), and areacam, given the float64 input, imputes from the same float32 values.
"""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from _numerics import FLOAT64, U32, assert_close, assert_identical, rounded
from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

import areacam as ac
from areacam.metrics.imputation import noisy_linear_impute

# pytorch-grad-cam's imputer calls np.argwhere on a torch tensor, which numpy 2 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")


class Float64(nn.Module):
    """Casts its input to float64: pytorch-grad-cam's float32 imputations enter a float64 model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.double()


@pytest.fixture(scope="module")
def classifier() -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            Float64(), nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4)
        )
        .eval()
        .double()
    )


@pytest.fixture(scope="module")
def segmenter() -> nn.Module:
    torch.manual_seed(1)
    layers = [Float64(), nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)]
    return nn.Sequential(*layers).eval().double()


def _road_allowed(expected: np.ndarray, before: torch.Tensor) -> torch.Tensor:
    """A score change (after - before): areacam computes it in float64 and rounds once; pytorch-grad-cam
    rounds both scores to float32 first (``np.float32(scores)``), an error of ``u`` of each; the float64
    error is relative to the scores, not to their difference."""
    expected = torch.from_numpy(np.asarray(expected, dtype=np.float64))
    before = before.double().reshape(-1, *(1,) * (expected.dim() - 1))
    scores = before.abs() + (before + expected).abs()
    return rounded(expected, leading=expected.dim(), roundings=1) + (U32 + FLOAT64) * scores


def _maps(batch: int, count: int, size: int = 20, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand(batch, count, size, size, generator=generator, dtype=dtype)
    return torch.nn.functional.avg_pool2d(maps, 3, stride=1, padding=1)  # smooth, no ties


def _masks(batch: int, size: int = 20, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(batch, size, size, dtype=torch.bool)
    for b in range(batch):
        top, left = torch.randint(0, size - 8, (2,), generator=generator).tolist()
        masks[b, top : top + 4 + b, left : left + 6] = True
    return masks


def test_imputer_equals_pytorch_grad_cam():
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    generator = torch.Generator().manual_seed(0)
    for channels in (1, 3):
        image = torch.rand(channels, 13, 17, generator=generator)
        keep = torch.rand(13, 17, generator=generator) > 0.7
        torch.manual_seed(5)
        expected = NoisyLinearImputer()(image, keep.float())
        torch.manual_seed(5)
        assert torch.equal(noisy_linear_impute(image, keep), expected)


@pytest.mark.parametrize(("order", "reference"), [("most", ROADMostRelevantFirst), ("least", ROADLeastRelevantFirst)])
def test_road_equals_pytorch_grad_cam_with_its_noise(classifier, order, reference):
    x = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(2))
    maps = _maps(3, 1)
    classes = [0, 2, 3]
    percentiles = (10, 50, 80)
    torch.manual_seed(7)
    expected = np.stack(
        [
            reference(p)(x, maps[:, 0].numpy(), [ClassifierOutputTarget(c) for c in classes], classifier)
            for p in percentiles
        ],
        axis=1,
    )
    torch.manual_seed(7)
    ours = ac.metrics.road(classifier, x.double(), ac.Class(classes), maps, percentiles=percentiles, order=order)
    assert ours.shape == (3, 1, 3)
    with torch.no_grad():
        before = classifier(x)[torch.arange(3), classes]
    assert_close(ours[:, 0], torch.from_numpy(expected), _road_allowed(expected, before), "ROAD")


def test_road_many_region_targets_equal_one_reference_call_per_target(segmenter):
    """K region targets in one call; the reference runs once per target (noise off in both)."""
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    boxes = [(0, 0, 8, 8), (4, 6, 12, 16)]
    targets = [ac.Area(box=box, channel=1) for box in boxes]
    maps = _maps(2, 2, size=16, seed=4)
    ours = ac.metrics.road(segmenter, x.double(), targets, maps, percentiles=(30, 70), noise=0.0)
    for k, (top, left, bottom, right) in enumerate(boxes):
        for j, p in enumerate((30, 70)):
            metric = ROADMostRelevantFirst(p)
            metric.perturbation.imputer.noise = 0.0
            region = [lambda out, t=top, le=left, b=bottom, r=right: out[1, t:b, le:r].sum()] * 2
            expected = metric(x, maps[:, k].numpy(), region, segmenter)
            with torch.no_grad():
                before = segmenter(x)[:, 1, top:bottom, left:right].sum(dim=(1, 2))
            allowed = _road_allowed(expected, before)
            assert_close(ours[:, k, j], torch.from_numpy(expected), allowed, f"box {k}, percentile {p}")


def _quantus(metric, maps: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    return np.stack(
        [metric.evaluate_batch(a_batch=maps[:, k].numpy().copy(), s_batch=masks.numpy()) for k in range(maps.shape[1])],
        axis=1,
    )


def test_localisation_equals_quantus():
    maps, masks = _maps(4, 3, dtype=torch.float64), _masks(4)
    for ours, reference in [
        (ac.metrics.pointing_game, quantus.PointingGame(disable_warnings=True)),
        (ac.metrics.relevance_mass, quantus.RelevanceMassAccuracy(disable_warnings=True)),
        (ac.metrics.relevance_rank, quantus.RelevanceRankAccuracy(disable_warnings=True)),
    ]:
        expected = torch.from_numpy(_quantus(reference, maps, masks))
        assert_close(ours(maps, masks), expected, rounded(expected, leading=2), ours.__name__)
    # The pointing game must score both hits and misses here, or the comparison proves little.
    assert 0 < ac.metrics.pointing_game(maps, masks).mean() < 1


def test_pointing_game_with_a_peak_on_the_mask():
    maps, masks = _maps(2, 1), _masks(2)
    maps[0, 0][masks[0]] += 2  # the peak inside sample 0's mask
    expected = _quantus(quantus.PointingGame(disable_warnings=True), maps, masks)
    assert expected[0, 0] == 1
    assert torch.equal(ac.metrics.pointing_game(maps, masks), torch.from_numpy(expected).float())


def test_sparseness_and_entropy_equal_quantus():
    maps = _maps(3, 2, dtype=torch.float64)
    x = np.zeros((3, 3, 20, 20), dtype=np.float32)
    for ours, reference in [
        (ac.metrics.sparseness, quantus.Sparseness(disable_warnings=True)),
        (ac.metrics.entropy, quantus.Complexity(disable_warnings=True)),
    ]:
        expected = torch.from_numpy(
            np.stack(
                # a copy: Quantus adds 1e-7 to a_batch in place
                [reference.evaluate_batch(x_batch=x, a_batch=maps[:, k].numpy().copy()) for k in range(2)],
                axis=1,
            )
        )
        assert_close(ours(maps), expected, rounded(expected, leading=2), ours.__name__)


def test_ssim_equals_skimage_and_spearman_equals_scipy():
    """Both computed in float64 on each side, areacam's rounded to float32 once (rule 2)."""
    first = _maps(2, 2, size=24, seed=1)
    second = (first + 0.3 * _maps(2, 2, size=24, seed=2)).clamp(0, 1)
    second[1, 1] = torch.round(second[1, 1] * 4) / 4  # ties: average ranks
    ours_ssim, ours_rho = ac.metrics.ssim(first, second), ac.metrics.spearman(first, second)
    ssim, rho = torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)
    for b in range(2):
        for k in range(2):
            a, c = first[b, k].numpy().astype(np.float64), second[b, k].numpy().astype(np.float64)
            ssim[b, k] = structural_similarity(a, c, data_range=1.0)
            rho[b, k] = spearmanr(a.ravel(), c.ravel())[0]
    assert_close(ours_ssim, ssim, rounded(ssim, leading=2), "SSIM")
    assert_close(ours_rho, rho, rounded(rho, leading=2), "Spearman")
    assert ac.metrics.ssim(first, first).eq(1).all()


def test_average_ranks_equal_scipy_rankdata():
    from scipy.stats import rankdata

    values = torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    expected = torch.from_numpy(rankdata(values.numpy(), axis=1))
    assert_identical(ac.metrics.similarity.average_ranks(values), expected)  # halves and integers: exact
