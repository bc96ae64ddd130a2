"""Signals (B, C, L) and volumes (B, C, D, H, W): equality with captum, exact receptive fields, errors."""

from __future__ import annotations

import captum.attr as captum_attr
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _modules import RegionSum
from _numerics import U32, assert_close, assert_identical, ig_magnitude, maps_allowed, reduction, rounded
from torch import nn

import areacam as ac

CONV = {1: nn.Conv1d, 3: nn.Conv3d}
POOL = {1: nn.AdaptiveAvgPool1d, 3: nn.AdaptiveAvgPool3d}
SHAPES = {1: (2, 2, 40), 3: (2, 2, 6, 8, 10)}
BOXES = {1: (5, 17), 3: (1, 2, 3, 4, 6, 7)}


def classifier(dims: int, dtype: torch.dtype = torch.float64) -> nn.Module:
    """Two convolutions, global pooling, 5 classes (out-of-place ReLUs, as captum's hooks need); float64
    by default, so that captum gives float64 references (tests/README.md, rule 2)."""
    torch.manual_seed(0)
    conv = CONV[dims]
    return (
        nn.Sequential(
            conv(2, 6, 3, padding=1),
            nn.ReLU(),
            conv(6, 8, 3, padding=1),
            nn.ReLU(),
            POOL[dims](1),
            nn.Flatten(),
            nn.Linear(8, 5),
        )
        .eval()
        .to(dtype)
    )


def dense(dims: int, dtype: torch.dtype = torch.float64) -> nn.Module:
    """Three convolutions to a 3-channel dense output of the input's size."""
    torch.manual_seed(1)
    conv = CONV[dims]
    layers = [conv(2, 6, 3, padding=1), nn.ReLU(), conv(6, 6, 3, padding=1), nn.ReLU(), conv(6, 3, 1)]
    return nn.Sequential(*layers).eval().to(dtype)


def inputs(dims: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.rand(SHAPES[dims], generator=torch.Generator().manual_seed(dims)).to(dtype)


def _check_raw(raw: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    assert_close(raw, ref, rounded(ref, leading=1), what)


@pytest.mark.parametrize("dims", [1, 3])
def test_gradcam_equals_captum_layergradcam(dims):
    model, x = classifier(dims), inputs(dims)
    expl = ac.GradCAM(model, "2")(x, [ac.Class(1), ac.Class(4)])
    reference = captum_attr.LayerGradCam(model, model[2])  # captum averages gradients over all trailing dims
    for k, cls in enumerate((1, 4)):
        ref = reference.attribute(x, target=cls, relu_attributions=True)[:, 0]
        _check_raw(expl.raw[:, k], ref, f"Class({cls})")
    assert expl.maps.shape == (2, 2, *x.shape[2:])
    # a dense region through the wrapper: the same Grad-CAM for a box of a dense output
    net = dense(dims)
    box = ac.Area(box=BOXES[dims], channel=2)
    region = captum_attr.LayerGradCam(RegionSum(net, BOXES[dims], 2), net[2])
    ref = region.attribute(x, relu_attributions=True)[:, 0]
    _check_raw(ac.GradCAM(net, "2")(x, box).raw[:, 0], ref, "Area")


@pytest.mark.parametrize("dims", [1, 3])
@pytest.mark.parametrize(("ours", "theirs"), [(ac.Saliency, "Saliency"), (ac.GuidedBackprop, "GuidedBackprop")])
def test_gradients_equal_captum_for_classes_and_regions(dims, ours, theirs):
    kwargs = {"abs": False} if theirs == "Saliency" else {}
    model, x = classifier(dims), inputs(dims)
    expl = ours(model)(x, [ac.Class(0), ac.Class(3)])
    method = getattr(captum_attr, theirs)(model)
    for k, cls in enumerate((0, 3)):
        _check_raw(expl.raw[:, k], method.attribute(x, target=cls, **kwargs), f"Class({cls})")
    net = dense(dims)
    expl = ours(net)(x, [ac.Area(box=BOXES[dims], channel=1), ac.Pixel(*(v + 1 for v in BOXES[dims][:dims]))])
    method = getattr(captum_attr, theirs)(RegionSum(net, BOXES[dims], 1))
    _check_raw(expl.raw[:, 0], method.attribute(x, **kwargs), "Area")
    assert expl.raw.shape == (2, 2, 2, *x.shape[2:])
    channel_max = expl.raw.abs().amax(2).double()  # float32 raw: one rounding off the float64 maps' input
    assert_close(expl.maps, _normalized(channel_max), maps_allowed(channel_max, raw_error=U32), "maps")


def _normalized(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(2)
    low, high = flat.amin(2, keepdim=True), flat.amax(2, keepdim=True)
    return ((flat - low) / (high - low)).view_as(maps)


def test_maps_upsample_trilinear_and_linear():
    for dims, mode in ((1, "linear"), (3, "trilinear")):
        model = nn.Sequential(
            CONV[dims](2, 4, 3, padding=1),
            nn.ReLU(),
            CONV[dims](4, 4, 3, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.LazyLinear(3),
        ).eval()
        x = inputs(dims, torch.float32)
        model(x)  # materialise the lazy layer
        expl = ac.LayerCAM(model, "3")(x, [ac.Class(0), ac.Class(1), ac.Class(2)])
        assert tuple(expl.raw.shape[2:]) != tuple(x.shape[2:]) and not expl.degenerate.any()
        raw = expl.raw.double()
        up = F.interpolate(raw, size=x.shape[2:], mode=mode, align_corners=False)
        # float32 interpolation: three roundings per axis (two products, one sum), relative to the largest raw
        error = (3 * (x.dim() - 2) + 1) * U32
        assert_close(expl.maps, _normalized(up), maps_allowed(raw, tuple(x.shape[2:]), raw_error=error), mode)


class TwoConvs3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(2, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(4, 3, 3, padding=1)

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(x)))


@pytest.mark.parametrize("make", [ac.Saliency, ac.GuidedBackprop, lambda m: ac.GuidedGradCAM(m, "conv1")])
@pytest.mark.parametrize("voxel", [(4, 5, 6), (0, 0, 9)])
def test_voxel_gradient_is_zero_outside_its_receptive_field(make, voxel):
    torch.manual_seed(0)
    model = TwoConvs3d().eval()
    with torch.no_grad():
        model.conv1.bias.fill_(0.5)  # most units active, so the window is really non-zero
    x = torch.rand(1, 2, 9, 10, 11, generator=torch.Generator().manual_seed(0)) + 0.1
    raw = make(model)(x, ac.Pixel(*voxel, channel=1)).raw[0, 0]
    inside = torch.zeros(9, 10, 11, dtype=torch.bool)
    inside[tuple(slice(max(v - 2, 0), v + 3) for v in voxel)] = True  # two 3x3x3 convolutions: 5x5x5
    assert torch.count_nonzero(raw[:, ~inside]) == 0
    nonzero = torch.count_nonzero(raw[:, inside])
    assert nonzero == raw[:, inside].numel() if make is ac.Saliency else nonzero > 0  # guided: some clamped


def test_targets_on_volumes_and_signals():
    # Integer values and weights: every sum is exact in float32 (below 2**24), whatever its order.
    out = torch.arange(2 * 3 * 4 * 5 * 6, dtype=torch.float32).view(2, 3, 4, 5, 6)
    x = torch.zeros(2, 1, 4, 5, 6)
    assert_identical(ac.Area(box=(1, 2, 3, 3, 4, 6))(out, x), out[:, :, 1:3, 2:4, 3:6].sum((1, 2, 3, 4)))
    assert_identical(ac.Pixel(3, 4, 5, channel=2)(out, x), out[:, 2, 3, 4, 5])
    mask = torch.zeros(2, 4, 5, 6)
    mask[0, 0, 0, 0] = mask[1, 3, 4, 5] = 2.0
    expected = 2 * torch.stack([out[0, 0, 0, 0, 0], out[1, 0, 3, 4, 5]])
    assert_identical(ac.Area(mask=mask, channel=0)(out, x), expected)
    assert_identical(ac.Area(mask=mask[1].bool())(out, x), out[..., 3, 4, 5].sum(1))
    # Segment on (B, N, D, H, W) logits: channel 1 wins on the first slice of sample 0 only
    logits = torch.zeros(2, 3, 4, 5, 6)
    logits[0, 1, 0] = 5.0
    assert_identical(ac.Segment(1)(logits, x), torch.tensor([5.0 * 30, 0.0]))
    assert_identical(ac.Segment(1, box=(0, 0, 0, 1, 2, 6))(logits, x), torch.tensor([5.0 * 12, 0.0]))
    # signals: a (start, stop) box, a (L,) mask, Pixel(t), the reconstruction error over a window
    signal = torch.arange(2 * 2 * 10, dtype=torch.float32).view(2, 2, 10)
    assert_identical(ac.Area(box=(3, 7))(signal, signal), signal[:, :, 3:7].sum((1, 2)))
    assert_identical(ac.Pixel(9, channel=1)(signal, signal), signal[:, 1, 9])
    weights = torch.linspace(0, 1, 10)
    terms = signal * weights  # 20 products of floats: a float32 reduction, any order (rule 3)
    allowed = reduction(20) * terms.abs().flatten(1).sum(1)
    assert_close(ac.Area(mask=weights)(signal, signal), terms.sum((1, 2)), allowed, "masked sum")
    recon = signal + 1.0
    assert ac.ReconstructionError(box=(2, 5))((recon,), signal).tolist() == [6.0, 6.0]


def test_bind_indexes_per_sample_masks_of_any_dims():
    masks = torch.zeros(3, 10)
    masks[2, 7] = 1
    area = ac.Area(mask=masks).bind([2, 2]).bind(1)  # a (B, L) mask: its row 2, then any batch
    signal = torch.arange(4 * 1 * 10.0).view(4, 1, 10)
    assert_identical(area(signal, signal), signal[:, 0, 7])  # integers: exact
    shared = ac.Area(mask=torch.ones(4, 5, 6)).bind(1)  # on a volume, a (D, H, W) mask is shared
    volume = torch.ones(2, 1, 4, 5, 6)
    assert_identical(shared(volume, volume), torch.full((2,), 120.0))
    logits = torch.zeros(2, 2, 3, 4, 4)
    logits[1, 1, 2] = 1.0  # sample 1 predicts class 1 on its last slice
    frozen = ac.Segment(1).bind(1, logits)
    new = torch.randn(5, 2, 3, 4, 4)
    terms = new[:, 1, 2].flatten(1)  # 16 floats summed in another layout (rule 3)
    allowed = reduction(16) * terms.abs().sum(1)
    assert_close(frozen(new, torch.zeros(5, 1, 3, 4, 4)), terms.sum(1), allowed, "frozen Segment")


def test_clear_errors_for_inputs_that_do_not_fit():
    net, x = dense(3), inputs(3)
    with pytest.raises(ValueError, match=r"2-D box \(top, left, bottom, right\).*3 spatial dims.*\(z0, y0, x0"):
        ac.Saliency(net)(x, ac.Area(box=(0, 0, 4, 4)))
    with pytest.raises(ValueError, match=r"mask of shape \(8, 10\) does not fit the output: expected \(6, 8, 10\)"):
        ac.GradCAM(net, "2")(x, ac.Area(mask=torch.ones(8, 10)))
    with pytest.raises(ValueError, match=r"reaches outside the output of size \(6, 8, 10\)"):
        ac.Saliency(net)(x, ac.Pixel(6, 0, 0))
    with pytest.raises(ValueError, match=r"Lime \(superpixels of 2-D images\) works on \(B, C, H, W\) inputs only"):
        ac.Lime(net, num_samples=4)(x, ac.Area())
    with pytest.raises(ValueError, match=r"FilterVisualizer optimises 2-D images.*Conv3d"):
        ac.FilterVisualizer(net, "0")
    with pytest.raises(ValueError, match=r"x must be 5-D \(B, C, D, H, W\).*3-D"):
        ac.Saliency(net)(torch.rand(1, 2, 8, 8), ac.Area())
    with pytest.raises(ValueError, match="draws 2-D images"):
        ac.Saliency(net)(x, ac.Area()).overlay(x)
    with pytest.raises(TypeError, match="1 to 3 coordinates"):
        ac.Pixel(1, 2, 3, 4)
    with pytest.raises(ValueError, match="4 ints"):
        ac.Area(box=(0, 1, 2))
    signal_net = dense(1)
    with pytest.raises(ValueError, match=r"mask of shape \(3, 40\) does not fit the output: 3 rows for a batch of 2"):
        ac.Saliency(signal_net)(inputs(1), ac.Area(mask=np.ones((3, 40))))


def test_small_signal_autoencoder_explains_the_anomaly_window(tmp_path):
    """Trained on clean signals only, its reconstruction error over each anomaly window is explained inside it."""
    from areacam import models
    from areacam.models.train import load_data, train

    metrics = train(
        "signal_ae",
        "signals",
        epochs=6,
        n_train=300,
        n_test=60,
        size=256,
        out=tmp_path,
        progress=False,
        threads=1,
        model_kwargs=dict(width=8),
    )
    assert metrics["final"]["mse_inside_anomaly"] > 3 * metrics["final"]["mse_outside_anomaly"]
    net = models.load(tmp_path / "epoch_006.pt")
    d = load_data("signals", 256, 300, 60)
    x, windows = d["x_test"], d["a_test"]
    maps = ac.Saliency(net)(x, ac.ReconstructionError(mask=windows)).maps[:, 0]  # one window per signal
    noise = torch.rand(maps.shape, generator=torch.Generator().manual_seed(0))
    fraction = float(windows.float().mean())
    found = {}
    for name, heat in (("saliency", maps), ("random", noise)):
        hits = float(windows.gather(1, heat.argmax(1, keepdim=True)).float().mean())
        mass = float(((heat * windows).sum(1) / heat.sum(1)).mean())
        found[name] = (hits, mass)
    assert found["saliency"][0] > 4 * fraction and found["saliency"][1] > 3 * fraction, (found, fraction)
    assert found["random"][0] < 2 * fraction and found["random"][1] < 1.5 * fraction, (found, fraction)


def test_volume_figure_slices_through_the_region_centroid(tmp_path):
    volume = torch.rand(1, 8, 10, 12, generator=torch.Generator().manual_seed(0))
    maps = torch.rand(2, 8, 10, 12, generator=torch.Generator().manual_seed(1))
    target = ac.Area(box=(2, 3, 4, 6, 7, 10))  # centroid (3.5, 4.5, 6.5) -> voxel (4, 4, 6), halves to even
    fig = ac.volume_figure(volume, maps, [target, (0, 0, 0, 1, 1, 1)], path=tmp_path / "v.png")
    axes = fig.axes
    assert len(axes) == 6 and (tmp_path / "v.png").stat().st_size > 0
    assert [ax.get_title() for ax in axes[:3]] == ["axial (z=4)", "coronal (y=4)", "sagittal (x=6)"]
    grey = volume[0].numpy()
    grey = (grey - grey.min()) / (grey.max() - grey.min())  # the figure's own float32 normalisation
    np.testing.assert_array_equal(axes[0].images[0].get_array(), grey[4])
    np.testing.assert_array_equal(axes[1].images[1].get_array(), maps[0, :, 4].numpy())
    np.testing.assert_array_equal(axes[5].images[1].get_array(), maps[1, :, :, 0].numpy())  # second box at x=0
    grid = ac.slice_grid(volume, maps[0], target, axis="coronal", count=4)
    assert [ax.get_title() for ax in grid.axes] == ["y=3", "y=4", "y=5", "y=6"]  # spans the box's rows
    with pytest.raises(ValueError, match="index the batch first"):
        ac.volume_figure(volume[None], maps)
    with pytest.raises(ValueError, match="has 2 spatial dims, the sample has 3"):
        ac.volume_figure(volume, maps[0], (0, 0, 2, 2))


def test_signal_figure_band_region_and_reconstruction(tmp_path):
    signal = torch.sin(torch.arange(64.0) / 4)[None]
    heat = torch.linspace(0, 1, 64)
    fig = ac.signal_figure(
        signal, heat, ac.ReconstructionError(box=(10, 20)), recon=signal * 0.9, path=tmp_path / "s.png"
    )
    line, band, right = fig.axes
    np.testing.assert_array_equal(band.images[0].get_array()[0], heat.numpy())  # drawn as given
    np.testing.assert_array_equal(line.lines[0].get_ydata(), signal[0].numpy())
    shaded = [p for p in line.patches]
    assert len(shaded) == 1 and shaded[0].get_x() == 9.5  # the region [10, 20) shaded
    np.testing.assert_array_equal(right.lines[1].get_ydata(), 0.9 * signal[0].numpy())
    assert (tmp_path / "s.png").stat().st_size > 0
    with pytest.raises(ValueError, match="recon of shape"):
        ac.signal_figure(signal, heat, recon=torch.zeros(1, 32))


@pytest.mark.parametrize("dims", [1, 3])
def test_integrated_gradients_equal_captum_for_classes_and_regions(dims):
    if not hasattr(ac, "IntegratedGradients"):
        pytest.skip("ac.IntegratedGradients (issue 13) is not in this checkout")
    model, x = classifier(dims), inputs(dims)
    expl = ac.IntegratedGradients(model, steps=16)(x, [ac.Class(0), ac.Class(3)])
    method = captum_attr.IntegratedGradients(model)
    for k, cls in enumerate((0, 3)):  # rule 2 plus captum's float32 quadrature weights (ig_magnitude)
        ref = method.attribute(x, target=cls, n_steps=16, method="gausslegendre")
        magnitude = ig_magnitude(model, x, 0.0, ac.Class(cls), 16, "gausslegendre")
        assert_close(expl.raw[:, k], ref, rounded(ref, leading=1) + U32 * magnitude, f"Class({cls})")
    net = dense(dims)
    box = ac.Area(box=BOXES[dims], channel=1)
    expl = ac.IntegratedGradients(net, steps=16)(x, box)
    ref = captum_attr.IntegratedGradients(RegionSum(net, BOXES[dims], 1)).attribute(x, n_steps=16)
    magnitude = ig_magnitude(net, x, 0.0, box, 16, "gausslegendre")
    assert_close(expl.raw[:, 0], ref, rounded(ref, leading=1) + U32 * magnitude, "Area")
    assert expl.maps.shape == (2, 1, *x.shape[2:])
