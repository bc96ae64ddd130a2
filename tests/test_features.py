"""FilterVisualizer, feature_maps and filter_weights on hand-set filters; state and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _numerics import U32, assert_close, assert_identical, reduction, rounded
from torch import nn

from areacam.inspect.features import FilterVisualizer, _irfft2, feature_maps, filter_weights

pytestmark = pytest.mark.usefixtures("one_thread")


def edges() -> nn.Sequential:
    """Conv with a vertical (filter 0) and a horizontal (filter 1) edge detector, then ReLU."""
    conv = nn.Conv2d(3, 2, 5, bias=False)
    kernel = torch.zeros(5, 5)
    kernel[:, :2], kernel[:, 3:] = -1, 1
    with torch.no_grad():
        conv.weight[0] = kernel / 10
        conv.weight[1] = kernel.T / 10
    return nn.Sequential(conv, nn.ReLU())


@pytest.mark.parametrize(
    ("parametrization", "extra"), [("pixel", {"tv": 0.05, "l2": 0.05, "blur": 0.5}), ("fourier", {})]
)
def test_optimised_image_drives_its_filter(parametrization, extra):
    model = edges()
    viz = FilterVisualizer(model, "1", size=32, steps=64, parametrization=parametrization, **extra)
    images = viz([0, 1])
    assert images.shape == (2, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    noise = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    own = viz.activations(images, [0, 1])
    assert (own > 4 * viz.activations(noise, [0, 1])).all()
    assert (own > 1.5 * viz.activations(images.flip(0), [0, 1])).all()  # each image is for its own filter
    if parametrization == "pixel":  # a vertical edge detector wants vertical stripes: columns vary, rows don't
        grey = images[0].mean(0)
        assert grey.diff(dim=1).abs().mean() > 3 * grey.diff(dim=0).abs().mean()
    assert torch.equal(viz([0, 1]), images)  # fixed seed


def test_batch_equals_its_parts_without_jitter():
    """The images are float32 and optimised image by image; the model (float64) sees them in batches of 3 or
    1, which changes its gradients by float64 rounding only. That can flip at most a rounding of each step's
    float32 gradient, and an ascent step contracts it (the sigmoid's slope is at most 1/4): at most one
    rounding per step (rule 2)."""
    model = edges().double()
    viz = FilterVisualizer(model, model[1], size=16, steps=10, jitter=0, batch_size=64)
    together = viz([0, 1, 1])
    viz.batch_size = 1
    assert_close(viz([0, 1, 1]), together, rounded(together, leading=1, roundings=2 * 10), "images")


def test_fourier_basis_is_the_inverse_fft():
    for size in (8, 9, 32):
        params = torch.randn(2, 3, size, size // 2 + 1, 2, generator=torch.Generator().manual_seed(size))
        fy, fx = torch.fft.fftfreq(size)[:, None], torch.fft.rfftfreq(size)[None, :]
        spectrum = torch.view_as_complex(params.double()) / torch.sqrt(fx**2 + fy**2).double().clamp(min=1 / size)
        expected = torch.fft.irfft2(spectrum, s=(size, size), norm="ortho")  # float64: the exact answer
        # two float32 matrix products of `size` terms each (rule 3), over the bases' own rounding; every
        # pixel's terms are at most the whole spectrum's magnitude, twice (the Hermitian half), over `size`
        magnitude = 2 * spectrum.abs().flatten(-2).sum(-1)[..., None, None] / size
        allowed = (2 * reduction(size) + 4 * U32) * magnitude
        assert_close(_irfft2(params, size), expected, allowed, f"size {size}")


def test_state_is_left_as_found():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3), nn.ReLU())
    model.train()
    model[1].eval()
    model[3].bias.requires_grad_(False)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    FilterVisualizer(model, "3", size=16, steps=3)([0, 3])
    feature_maps(model, "2", torch.rand(2, 3, 16, 16))
    assert [m.training for m in model.modules()] == [True, True, False, True, True, True]
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, True, True, False]
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(buffers[k], v) for k, v in model.state_dict().items())


def test_hook_is_removed_when_the_model_raises():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x):
            raise RuntimeError("boom")

    model = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        FilterVisualizer(model, "conv", size=8, steps=1)([0])
    assert not model.conv._forward_hooks


def test_feature_maps_return_activations_and_figure(tmp_path):
    model = edges()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    acts, fig = feature_maps(model, "1", x, channels=1, path=tmp_path / "maps.png")
    with torch.no_grad():
        assert_identical(acts, model(x))  # the same forward pass (rule 1)
    assert len([ax for ax in fig.axes if ax.images]) == 4  # 2 rows: input + 1 channel
    assert (tmp_path / "maps.png").stat().st_size > 500


def test_filter_weights_tiles(tmp_path):
    model = edges()
    tiles, _fig = filter_weights(model, path=tmp_path / "w.png", scale=2)
    assert tiles.shape == (2, 10, 10, 3) and tiles.dtype == np.uint8
    # -0.1 -> 0, 0 -> 128 (grey), +0.1 -> 255, same in all three colour channels
    assert tiles[0, 0, 0].tolist() == [0, 0, 0] and tiles[0, 0, 9].tolist() == [255, 255, 255]
    assert tiles[0, 0, 4].tolist() == [128, 128, 128] and tiles[1, 9, 0].tolist() == [255, 255, 255]
    assert (tmp_path / "w.png").exists()
    grey, _ = filter_weights(nn.Conv2d(1, 3, 3))
    assert grey.shape == (3, 24, 24, 3) and (grey[..., 0] == grey[..., 2]).all()


def test_bad_arguments_name_the_value():
    model = edges()
    with pytest.raises(IndexError, match="filter 2 is out of range for layer '1' with 2 channels"):
        FilterVisualizer(model, "1", size=16)([0, 2])
    with pytest.raises(ValueError, match="shape \\(1, 1568\\)"):
        FilterVisualizer(nn.Sequential(edges(), nn.Flatten()), "1", size=32)([0])
    with pytest.raises(ValueError, match="'wavelet'"):
        FilterVisualizer(model, "1", parametrization="wavelet")
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        FilterVisualizer(model, "1", steps=0)
    with pytest.raises(ValueError, match="closest valid names"):
        FilterVisualizer(model, "conv9")
    with pytest.raises(ValueError, match=r"no nn\.Conv2d layer in Sequential"):
        filter_weights(nn.Sequential(nn.Linear(3, 3)))
    with pytest.raises(ValueError, match="shape \\(2, 1568\\)"):
        feature_maps(nn.Sequential(edges(), nn.Flatten()), "1", torch.rand(2, 3, 32, 32))
