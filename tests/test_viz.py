"""Pictures: overlay arithmetic, gradient images, figures written whole."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import areacam as ac
from areacam.core.explanation import normalize_maps
from areacam.viz.images import draw_box, save_png, to_rgb


def test_overlay_blends_opencv_jet():
    image = np.full((4, 4, 3), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    out = ac.overlay(image, heat, colormap="jet", alpha=0.5)
    jet = cv2.cvtColor(cv2.applyColorMap(np.array([[255, 0]], np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    np.testing.assert_array_equal(out[0, 0], np.round(0.5 * 100 + 0.5 * jet[0, 0].astype(float)).astype(np.uint8))
    np.testing.assert_array_equal(out[1, 1], np.round(0.5 * 100 + 0.5 * jet[0, 1].astype(float)).astype(np.uint8))
    np.testing.assert_array_equal(ac.overlay(image, heat, alpha=0.0), image)


def test_overlay_resizes_map_and_accepts_tensors():
    image = torch.rand(3, 16, 16)
    out = ac.overlay(image, torch.rand(4, 4))
    assert out.shape == (16, 16, 3)


def test_overlay_errors():
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown colormap 'nope'"):
        ac.overlay(image, np.zeros((4, 4)), colormap="nope")
    with pytest.raises(ValueError, match="alpha"):
        ac.overlay(image, np.zeros((4, 4)), alpha=2)
    with pytest.raises(ValueError, match="NaN"):
        ac.overlay(image, np.full((4, 4), np.nan))


def test_to_rgb_layouts():
    gray = torch.linspace(0, 1, 16).view(1, 1, 4, 4)
    rgb = to_rgb(gray)
    assert rgb.shape == (1, 4, 4, 3) and rgb[0, 3, 3, 0] == 255 and rgb[0, 0, 0, 1] == 0
    wide = np.linspace(-1, 3, 48, dtype=np.float32).reshape(3, 4, 4)  # outside [0, 1]: stretched
    assert to_rgb(wide).min() == 0 and to_rgb(wide).max() == 255


def test_gradient_image_centres_on_grey():
    raw = torch.zeros(3, 2, 2)
    raw[0, 0, 0] = 2.0
    raw[1, 1, 1] = -2.0
    img = ac.gradient_image(raw)
    assert img[0, 1].tolist() == [128, 128, 128]
    assert img[0, 0, 0] == 255 and img[1, 1, 1] == 0
    assert ac.gradient_image(torch.zeros(3, 2, 2)).max() == 128


def test_normalize_maps_exact():
    maps = torch.tensor([[[[1.0, 3.0], [2.0, 5.0]], [[4.0, 4.0], [4.0, 4.0]]]])
    normalized, degenerate = normalize_maps(maps)
    assert torch.equal(normalized[0, 0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))  # small integers: exact
    assert torch.equal(normalized[0, 1], torch.zeros(2, 2))
    assert degenerate.tolist() == [[False, True]]


def test_explanation_overlay_and_figure(tmp_path, resnet, images):
    expl = ac.GradCAM(resnet, "layer3")(images, [ac.Class(0), ac.Class(1)])
    panels = expl.overlay(images)
    assert panels.shape == (2, 2, 64, 64, 3) and panels.dtype == np.uint8
    path = tmp_path / "grid.png"
    expl.plot(images, path=path)
    picture = cv2.imread(str(path))
    assert picture is not None and picture.std() > 10
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temp file left behind
    with pytest.raises(ValueError, match="got 1 images for an explanation of 2"):
        expl.overlay(images[:1])


def test_region_figure_and_box(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    boxed = draw_box(image, (2, 3, 6, 7))
    assert boxed[2, 3].tolist() == [255, 0, 0] and boxed[5, 6].tolist() == [255, 0, 0]
    assert boxed[4, 4].tolist() == [0, 0, 0] and image.max() == 0
    ac.region_figure(
        torch.rand(3, 16, 16),
        torch.rand(3, 16, 16),
        (2, 2, 8, 8),
        torch.randn(3, 16, 16),
        torch.rand(16, 16),
        path=tmp_path / "region.png",
    )
    assert cv2.imread(str(tmp_path / "region.png")).std() > 10


def test_save_png_round_trip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (5, 6, 3), dtype=np.uint8)
    path = save_png(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), rgb)


def test_figures_leave_pyplot_alone(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    before = plt.get_fignums()
    fig = ac.grid_figure(np.zeros((1, 2, 8, 8, 3), np.uint8), titles=["a", "b"], path=tmp_path / "g.png")
    assert type(fig).__name__ == "Figure" and len(fig.axes) == 2
    assert plt.get_fignums() == before  # not registered with pyplot: nothing to close, no leak
    assert matplotlib.get_backend() == backend
