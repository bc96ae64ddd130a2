"""Score-CAM, Ablation-CAM, XGrad-CAM, Eigen-CAM, Integrated Gradients and Occlusion against the peers.

pytorch-grad-cam and captum run on the same models (random weights) in float64, so their results are
float64 references (tests/README.md, rule 2); inputs are small (32-64 px) and the perturbation CAMs
explain early layers (64 channels) to keep the forward passes few.
"""

from __future__ import annotations

import captum.attr as captum_attr
import numpy as np
import pytest
import torch
from _modules import ChannelsFirst, ChannelsLast, RegionSum, peers
from _numerics import FLOAT64, U32, assert_close, assert_identical, ig_magnitude, maps_allowed, rounded
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget
from torch import nn

import areacam as ac
from areacam.methods.perturbation_cams import PerturbationCAM

BOX = (4, 8, 20, 28)

# (ours, theirs, ResNet-18 layer and input size, U-Net layer) for every registered CAM with a
# pytorch-grad-cam peer that is not a gradient CAM (those: test_cam_reference.py). The perturbation CAMs
# run one forward pass per channel, so they explain 64- and 16-channel layers.
CAMS = [
    (ours, theirs, "layer1", 16, "decoder.blocks.4.conv2")
    if issubclass(ours, PerturbationCAM)
    else (ours, theirs, "layer3", 64, "encoder.layer3")
    for ours, theirs in peers("pytorch_grad_cam", exclude=ac.CAM)
]


def test_the_other_cams_have_their_peers():
    assert {ours.__name__ for ours, *_ in CAMS} == {"EigenCAM", "ScoreCAM", "AblationCAM"}


def _pgc(theirs, model, layer, x, targets) -> np.ndarray:
    with theirs(model=model, target_layers=[layer]) as cam:
        cam.batch_size = 64  # Score-CAM reads the attribute; Ablation-CAM's constructor default is 32
        return cam(input_tensor=x, targets=targets)


def _box_mask(shape: tuple[int, int], box) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.float32)
    top, left, bottom, right = box
    mask[top:bottom, left:right] = 1
    return mask


def _ids(value: object) -> str:
    return getattr(value, "__name__", str(value))


@pytest.mark.parametrize(("ours", "theirs", "layer", "size", "unet_layer"), CAMS, ids=_ids)
def test_cams_equal_pytorch_grad_cam_on_resnet(resnet64, ours, theirs, layer, size, unet_layer):
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expl = ours(resnet64, layer)(x, ac.Class([3, 1]))
    targets = [ClassifierOutputTarget(3), ClassifierOutputTarget(1)]
    ref = torch.from_numpy(_pgc(theirs, resnet64, getattr(resnet64, layer), x, targets))[:, None]
    assert not expl.degenerate.any()
    assert_close(expl.maps, ref, maps_allowed(expl.raw, (size, size), pgc=True), "maps")


@pytest.mark.parametrize(("ours", "theirs", "layer", "size", "unet_layer"), CAMS, ids=_ids)
def test_segment_equals_semantic_segmentation_target_on_unet(unet64, ours, theirs, layer, size, unet_layer):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        predicted = unet64(x).argmax(1)[0].numpy()
    cls = int(np.bincount(predicted.ravel()).argmax())
    module = unet64.get_submodule(unet_layer)
    expl = ours(unet64, unet_layer)(x, [ac.Segment(cls), ac.Area(box=BOX, channel=2)])
    ref = _pgc(
        theirs,
        unet64,
        module,
        x.repeat(2, 1, 1, 1),  # pytorch-grad-cam: one target per image
        [
            SemanticSegmentationTarget(cls, (predicted == cls).astype(np.float32)),
            SemanticSegmentationTarget(2, _box_mask((32, 32), BOX)),
        ],
    )
    assert not expl.degenerate.any()
    assert_close(expl.maps, torch.from_numpy(ref)[None], maps_allowed(expl.raw, (32, 32), pgc=True), "maps")


@pytest.mark.parametrize("method", ac.methods.integrated.RULES)
@pytest.mark.parametrize("steps", [2, 7, 50])
def test_quadrature_equals_captum(method, steps):
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters(method)
    weights, nodes = ac.methods.integrated.quadrature(method, steps)
    for ours, theirs in ((weights, step_sizes(steps)), (nodes, alphas(steps))):  # float64 both: rule 2
        expected = torch.tensor(theirs, dtype=torch.float64)
        assert_close(torch.tensor(ours, dtype=torch.float64), expected, FLOAT64 * expected.abs().max())


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def _check_ig(expl: ac.Explanation, k: int, ref: torch.Tensor, delta: torch.Tensor, magnitude: torch.Tensor) -> None:
    """Attributions and convergence delta of target ``k`` against captum's in float64 (rule 2), plus one
    float32 rounding of each quadrature weight: captum multiplies by ``torch.tensor(step_sizes).float()``,
    which moves an attribution by up to ``u`` of its terms' ``magnitude``. The delta is a difference of
    sums of the attributions: its error is relative to their magnitudes."""
    assert_close(expl.raw[:, k], ref, rounded(ref, leading=1) + U32 * magnitude, "attributions")
    total = magnitude.flatten(1).sum(1)
    allowed = rounded(delta, leading=1) + FLOAT64 * ref.abs().flatten(1).sum(1) + U32 * total
    assert_close(expl.delta[:, k], delta, allowed, "delta")


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_equal_captum_class(resnet64, method):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    baseline = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    explainer = ac.IntegratedGradients(resnet64, baseline=baseline, steps=6, method=method)
    expl = explainer(x, [ac.Class([2, 5]), ac.Class(7)])
    ig = captum_attr.IntegratedGradients(resnet64)
    for k, target in enumerate(([2, 5], 7)):
        ref, delta = ig.attribute(
            x, baselines=baseline, target=target, n_steps=6, method=method, return_convergence_delta=True
        )
        _check_ig(expl, k, ref, delta, ig_magnitude(resnet64, x, baseline, ac.Class(target), 6, method))


def test_integrated_gradients_equal_captum_region(unet64):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expl = ac.IntegratedGradients(unet64, baseline=0.25, steps=3, batch_size=2)(x, ac.Area(box=BOX, channel=1))
    ref, delta = captum_attr.IntegratedGradients(RegionSum(unet64, BOX, 1)).attribute(
        x, baselines=0.25, n_steps=3, return_convergence_delta=True
    )
    magnitude = ig_magnitude(unet64, x, 0.25, ac.Area(box=BOX, channel=1), 3, "gausslegendre")
    _check_ig(expl, 0, ref, delta, magnitude)


def test_integrated_gradients_of_reconstruction_error_add_up():
    """Completeness, exactly: a linear autoencoder's box reconstruction error is quadratic in the input,
    so its gradient is linear along the path and one Gauss-Legendre node integrates it exactly; the
    attributions add up to the error's change from the baseline up to float64 rounding (rule 2)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 4, stride=2, padding=1), nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1))
    model = model.eval().double()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    target = ac.ReconstructionError(box=(8, 8, 24, 24), output=None)  # compares each reconstruction with x
    for steps in (1, 5):
        expl = ac.IntegratedGradients(model, steps=steps)(x, target)
        with torch.no_grad():
            at_baseline = ((model(torch.zeros_like(x)) - x)[..., 8:24, 8:24] ** 2).sum()
        with torch.no_grad():
            change = (((model(x) - x)[..., 8:24, 8:24] ** 2).sum() - at_baseline).view(1)
        magnitude = expl.raw.double().abs().sum()  # the float32 attributions: one rounding each
        assert_close(
            expl.raw.double().sum().view(1),
            change,
            rounded(change, leading=1) + U32 * magnitude,
            f"sum of attributions, {steps} steps",
        )
        assert abs(float(expl.delta[0, 0])) <= FLOAT64 * float(magnitude)  # computed in float64, then rounded


@pytest.mark.parametrize(
    ("window", "stride", "captum_window", "captum_stride"),
    [((5, 7), (3, 4), (3, 5, 7), (3, 3, 4)), (6, 4, (3, 6, 6), 4), ((1, 6, 6), (1, 5, 5), (1, 6, 6), (1, 5, 5))],
)
def test_occlusion_equals_captum_class(resnet64, window, stride, captum_window, captum_stride):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    baseline = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    expl = ac.Occlusion(resnet64, window, stride, baseline=baseline)(x, [ac.Class([2, 5]), ac.Class(1)])
    occlusion = captum_attr.Occlusion(resnet64)
    for k, target in enumerate(([2, 5], 1)):
        ref = occlusion.attribute(
            x,
            sliding_window_shapes=captum_window,
            strides=captum_stride,
            baselines=baseline,
            target=target,
            perturbations_per_eval=16,
        )
        assert_close(expl.raw[:, k], ref, rounded(ref, leading=1), f"target {target}")


def test_occlusion_equals_captum_region(unet64):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    expl = ac.Occlusion(unet64, (6, 6), (4, 4), baseline=0.5)(x, ac.Area(box=BOX, channel=1))
    ref = captum_attr.Occlusion(RegionSum(unet64, BOX, 1)).attribute(
        x, sliding_window_shapes=(3, 6, 6), strides=(3, 4, 4), baselines=0.5, perturbations_per_eval=16
    )
    assert_close(expl.raw[:, 0], ref, rounded(ref, leading=1), "raw")


METHODS = [
    lambda m: ac.ScoreCAM(m, "encoder.3", batch_size=8),
    lambda m: ac.AblationCAM(m, "encoder.3", batch_size=8),
    lambda m: ac.XGradCAM(m, "encoder.3"),
    lambda m: ac.EigenCAM(m, "encoder.3"),
    lambda m: ac.IntegratedGradients(m, steps=3, batch_size=4),
    lambda m: ac.Occlusion(m, 12, 10),
]
NAMES = ["ScoreCAM", "AblationCAM", "XGradCAM", "EigenCAM", "IntegratedGradients", "Occlusion"]


@pytest.mark.parametrize("make", METHODS, ids=NAMES)
def test_k_targets_in_one_call_equal_k_single_calls(autoencoder, make):
    # the (recon, mu, logvar) autoencoder in float64: region targets of the reconstruction and a latent
    autoencoder = autoencoder.double()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    weights = _box_mask((32, 32), BOX) * 0.5
    targets = [
        ac.Area(box=BOX),
        ac.Pixel(20, 12, channel=0),
        ac.Segment(1),
        ac.Area(mask=weights),
        ac.ReconstructionError(box=BOX),
        ac.Latent(1),
    ]
    explainer = make(autoencoder)
    together = explainer(x, targets)
    assert together.raw.shape[:2] == (2, len(targets))
    for k, target in enumerate(targets):
        alone = explainer(x, target)
        assert_close(together.raw[:, k : k + 1], alone.raw, rounded(alone.raw), f"{target!r} raw")
        allowed = maps_allowed(alone.raw if alone.raw.dim() == 4 else alone.raw.abs().amax(2))
        assert_close(together.maps[:, k : k + 1], alone.maps, allowed, f"{target!r} maps")
        assert_close(together.scores[:, k : k + 1], alone.scores, rounded(alone.scores, leading=1), f"{target!r}")
        if together.delta is not None:
            magnitude = alone.raw.double().abs().flatten(2).sum(2)
            allowed = rounded(alone.delta, leading=2) + FLOAT64 * magnitude
            assert_close(together.delta[:, k : k + 1], alone.delta, allowed, f"{target!r} delta")


def test_eigen_cam_is_the_same_map_for_every_target(unet):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(11))
    expl = ac.EigenCAM(unet, "encoder.layer3")(x, [ac.Area(box=BOX), ac.Segment(0), ac.Pixel(3, 3)])
    assert torch.equal(expl.raw[:, 0], expl.raw[:, 1]) and torch.equal(expl.raw[:, 0], expl.raw[:, 2])
    assert not torch.equal(expl.scores[:, 0], expl.scores[:, 1])


def test_eigen_cam_sign_correction_keeps_the_larger_side_positive(resnet, images):
    plain = ac.EigenCAM(resnet, "layer3")(images, ac.Class(0))
    corrected = ac.EigenCAM(resnet, "layer3", sign_correction=True)(images, ac.Class(0))
    captured = []
    handle = resnet.layer3.register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    try:
        with torch.no_grad():
            resnet(images)
    finally:
        handle.remove()
    projection = ac.methods.eigen.eigen_projection(captured[0])
    flip = projection.flatten(1).amin(1).abs() > projection.flatten(1).amax(1).abs()
    for b in range(images.shape[0]):
        expected = torch.relu(-projection[b] if flip[b] else projection[b])
        assert_identical(corrected.raw[b, 0], expected)  # the same projection of the same activations
        assert_identical(plain.raw[b, 0], torch.relu(projection[b]))


def test_ablation_cam_zero_score_gives_no_nan(unet):
    # a Segment with no predicted pixel scores 0: the weights fall back to the plain drop, all 0
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        predicted = unet(x).argmax(1)
    absent = [c for c in range(3) if not (predicted == c).any()]
    target = ac.Segment(absent[0]) if absent else ac.Score(lambda out: out.sum(dim=(1, 2, 3)) * 0)
    expl = ac.AblationCAM(unet, "decoder.blocks.4.conv2", batch_size=16)(x, target)
    assert torch.isfinite(expl.raw).all() and expl.degenerate.all()


def test_bad_input_gives_clear_errors(resnet, images):
    with pytest.raises(ValueError, match=r"window \(3, 80, 80\) is larger than the input"):
        ac.Occlusion(resnet, 80, 8)(images, ac.Class(0))
    with pytest.raises(ValueError, match=r"stride .* is larger than the window"):
        ac.Occlusion(resnet, 4, 8)(images, ac.Class(0))
    with pytest.raises(ValueError, match=r"window .* has 4 values"):
        ac.Occlusion(resnet, (1, 3, 4, 4), 2)(images, ac.Class(0))
    with pytest.raises(ValueError, match="window must be >= 1"):
        ac.Occlusion(resnet, 0, 1)
    with pytest.raises(ValueError, match=r"steps \(method 'gausslegendre'\) must be >= 1, got 0"):
        ac.IntegratedGradients(resnet, steps=0)
    with pytest.raises(ValueError, match=r"steps \(method 'riemann_left'\) must be >= 2"):
        ac.IntegratedGradients(resnet, steps=1, method="riemann_left")
    with pytest.raises(ValueError, match="unknown integration method 'simpson'"):
        ac.IntegratedGradients(resnet, method="simpson")
    wrong = torch.zeros(1, 3, 32, 32)
    for explainer in (ac.IntegratedGradients(resnet, baseline=wrong), ac.Occlusion(resnet, 8, 8, baseline=wrong)):
        with pytest.raises(ValueError, match=r"baseline of shape \(1, 3, 32, 32\) does not fit x of shape"):
            explainer(images, ac.Class(0))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        ac.ScoreCAM(resnet, "layer4", batch_size=0)
    one_channel = nn.Sequential(nn.Conv2d(3, 1, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    one_channel(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="Eigen-CAM needs a layer with at least 2 channels, got 1"):
        ac.EigenCAM(one_channel.eval(), "1")(torch.rand(1, 3, 8, 8), ac.Class(0))


@pytest.mark.parametrize("method", [ac.ScoreCAM, ac.AblationCAM, ac.EigenCAM, ac.XGradCAM])
def test_channels_last_layer_equals_the_same_layer_channels_first(method):
    # Ablation-CAM zeroes the channel in the layer's own layout; the others read it as (B, C, h, w)
    torch.manual_seed(0)
    model = (
        nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), ChannelsLast(), ChannelsFirst(), nn.Conv2d(6, 4, 3, padding=1)
        )
        .eval()
        .double()
    )
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    targets = [ac.Area(box=(2, 2, 8, 8), channel=1), ac.Pixel(5, 5)]
    first = method(model, "1")(x, targets)
    last = method(model, "2", layout="nhwc")(x, targets)
    assert (first.layout, last.layout) == ("nchw", "nhwc")
    assert not first.degenerate.all()
    # the same numbers in another memory order (a permuted view): float64 sums in other orders (rule 2)
    assert_close(last.raw, first.raw, rounded(first.raw), "raw")
    assert_close(last.scores, first.scores, rounded(first.scores, leading=2), "scores")
