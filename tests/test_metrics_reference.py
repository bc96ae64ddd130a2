"""areacam.metrics equals the references on the same maps and inputs: pytorch-grad-cam's ROAD,
Quantus 0.6's localisation and sparseness metrics, scikit-image's SSIM, scipy's Spearman."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

import areacam as ac
from areacam.metrics.imputation import noisy_linear_impute

# pytorch-grad-cam's imputer calls np.argwhere on a torch tensor, which numpy 2 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")


@pytest.fixture(scope="module")
def classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4)
    ).eval()


@pytest.fixture(scope="module")
def segmenter() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)).eval()


def _maps(batch: int, count: int, size: int = 20, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand(batch, count, size, size, generator=generator)
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
    ours = ac.metrics.road(classifier, x, ac.Class(classes), maps, percentiles=percentiles, order=order)
    assert ours.shape == (3, 1, 3)
    np.testing.assert_allclose(ours[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_road_many_region_targets_equal_one_reference_call_per_target(segmenter):
    """K region targets in one call; the reference runs once per target (noise off in both)."""
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    boxes = [(0, 0, 8, 8), (4, 6, 12, 16)]
    targets = [ac.Area(box=box, channel=1) for box in boxes]
    maps = _maps(2, 2, size=16, seed=4)
    ours = ac.metrics.road(segmenter, x, targets, maps, percentiles=(30, 70), noise=0.0)
    for k, (top, left, bottom, right) in enumerate(boxes):
        for j, p in enumerate((30, 70)):
            metric = ROADMostRelevantFirst(p)
            metric.perturbation.imputer.noise = 0.0
            region = [lambda out, t=top, le=left, b=bottom, r=right: out[1, t:b, le:r].sum()] * 2
            expected = metric(x, maps[:, k].numpy(), region, segmenter)
            np.testing.assert_allclose(ours[:, k, j].numpy(), expected, rtol=1e-5, atol=1e-4)


def _quantus(metric, maps: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    return np.stack(
        [metric.evaluate_batch(a_batch=maps[:, k].numpy().copy(), s_batch=masks.numpy()) for k in range(maps.shape[1])],
        axis=1,
    )


def test_localisation_equals_quantus():
    maps, masks = _maps(4, 3), _masks(4)
    for ours, reference in [
        (ac.metrics.pointing_game, quantus.PointingGame(disable_warnings=True)),
        (ac.metrics.relevance_mass, quantus.RelevanceMassAccuracy(disable_warnings=True)),
        (ac.metrics.relevance_rank, quantus.RelevanceRankAccuracy(disable_warnings=True)),
    ]:
        expected = _quantus(reference, maps, masks)
        np.testing.assert_allclose(ours(maps, masks).numpy(), expected, rtol=1e-5, atol=1e-6)
    # The pointing game must score both hits and misses here, or the comparison proves little.
    assert 0 < ac.metrics.pointing_game(maps, masks).mean() < 1


def test_pointing_game_with_a_peak_on_the_mask():
    maps, masks = _maps(2, 1), _masks(2)
    maps[0, 0][masks[0]] += 2  # the peak inside sample 0's mask
    expected = _quantus(quantus.PointingGame(disable_warnings=True), maps, masks)
    assert expected[0, 0] == 1
    assert torch.equal(ac.metrics.pointing_game(maps, masks), torch.from_numpy(expected).float())


def test_sparseness_and_entropy_equal_quantus():
    maps = _maps(3, 2)
    x = np.zeros((3, 3, 20, 20), dtype=np.float32)
    for ours, reference in [
        (ac.metrics.sparseness, quantus.Sparseness(disable_warnings=True)),
        (ac.metrics.entropy, quantus.Complexity(disable_warnings=True)),
    ]:
        expected = np.stack(
            [reference.evaluate_batch(x_batch=x, a_batch=maps[:, k].numpy().astype(np.float64)) for k in range(2)],
            axis=1,
        )
        np.testing.assert_allclose(ours(maps).numpy(), expected, rtol=1e-5)


def test_ssim_equals_skimage_and_spearman_equals_scipy():
    first = _maps(2, 2, size=24, seed=1)
    second = (first + 0.3 * _maps(2, 2, size=24, seed=2)).clamp(0, 1)
    second[1, 1] = torch.round(second[1, 1] * 4) / 4  # ties: average ranks
    ours_ssim, ours_rho = ac.metrics.ssim(first, second), ac.metrics.spearman(first, second)
    for b in range(2):
        for k in range(2):
            a, c = first[b, k].numpy().astype(np.float64), second[b, k].numpy().astype(np.float64)
            assert ours_ssim[b, k].item() == pytest.approx(structural_similarity(a, c, data_range=1.0), abs=1e-6)
            assert ours_rho[b, k].item() == pytest.approx(spearmanr(a.ravel(), c.ravel())[0], abs=1e-6)
    assert ac.metrics.ssim(first, first).eq(1).all()
