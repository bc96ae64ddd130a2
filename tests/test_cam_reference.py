"""The CAM family against captum and pytorch-grad-cam on the same models (random weights).

Both are dev extras, imported plainly: a missing one fails the suite instead of skipping it. The models
run in float64, so the peers' results are float64 references and the bounds are those of
tests/_numerics.py: areacam's one rounding to float32, pytorch-grad-cam's epsilons.
"""

from __future__ import annotations

import captum.attr as captum_attr
import numpy as np
import pytest
import torch
from _modules import peers
from _numerics import assert_close, assert_identical, maps_allowed, rounded
from pytorch_grad_cam.utils.model_targets import (
    ClassifierOutputTarget,
    SemanticSegmentationTarget,
)

import areacam as ac

BOX = (8, 16, 24, 40)


def _box_mask(shape: tuple[int, int], box) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.float32)
    top, left, bottom, right = box
    mask[top:bottom, left:right] = 1
    return mask


@pytest.mark.parametrize("layer", ["layer4", "layer3"])
def test_gradcam_raw_equals_captum_class(resnet64, images, layer):
    images = images.double()
    expl = ac.GradCAM(resnet64, layer)(images, [ac.Class(3), ac.Class(7)])
    captum_cam = captum_attr.LayerGradCam(resnet64, getattr(resnet64, layer))
    for k, cls in enumerate((3, 7)):
        ref = captum_cam.attribute(images, target=cls, relu_attributions=True)
        assert_close(expl.raw[:, k : k + 1], ref, rounded(ref), f"raw of Class({cls})")


def test_gradcam_raw_equals_captum_region(unet64):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    top, left, bottom, right = BOX

    def region_score(inp):
        return unet64(inp)[:, 1, top:bottom, left:right].sum(dim=(1, 2))

    expl = ac.GradCAM(unet64, "encoder.layer3")(x, ac.Area(box=BOX, channel=1))
    ref = captum_attr.LayerGradCam(region_score, unet64.encoder.layer3).attribute(x, relu_attributions=True)
    assert_close(expl.raw, ref, rounded(ref), "raw")
    score = region_score(x).detach()[:, None]
    assert_close(expl.scores, score, rounded(score, leading=1), "scores")


# Every registered gradient CAM with a pytorch-grad-cam peer (areacam.methods.registry).
GRADIENT_CAMS = peers("pytorch_grad_cam", family=ac.CAM)


def _ids(value: object) -> str:
    return getattr(value, "__name__", str(value))


def test_the_gradient_cams_have_their_peers():
    assert {ours.__name__ for ours, _ in GRADIENT_CAMS} == {
        "GradCAM",
        "GradCAMPlusPlus",
        "HiResCAM",
        "LayerCAM",
        "XGradCAM",
    }


@pytest.mark.parametrize(("ours", "theirs"), GRADIENT_CAMS, ids=_ids)
def test_maps_equal_pytorch_grad_cam_class(resnet64, images, ours, theirs):
    images = images.double()
    expl = ours(resnet64, "layer4")(images, ac.Class([2, 5]))
    with theirs(model=resnet64, target_layers=[resnet64.layer4]) as cam:
        ref = cam(input_tensor=images, targets=[ClassifierOutputTarget(2), ClassifierOutputTarget(5)])
    assert_close(expl.maps, torch.from_numpy(ref)[:, None], maps_allowed(expl.raw, (64, 64), pgc=True), "maps")


@pytest.mark.parametrize(("ours", "theirs"), GRADIENT_CAMS, ids=_ids)
def test_maps_equal_pytorch_grad_cam_region(unet64, ours, theirs):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mask = _box_mask((64, 64), BOX)
    expl = ours(unet64, "encoder.layer4")(x, ac.Area(box=BOX, channel=2))
    with theirs(model=unet64, target_layers=[unet64.encoder.layer4]) as cam:
        ref = cam(input_tensor=x, targets=[SemanticSegmentationTarget(2, mask)])
    assert_close(expl.maps, torch.from_numpy(ref)[:, None], maps_allowed(expl.raw, (64, 64), pgc=True), "maps")


@pytest.mark.parametrize(("ours", "theirs"), GRADIENT_CAMS, ids=_ids)
def test_segment_equals_semantic_segmentation_target(unet64, ours, theirs):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        predicted = unet64(x).argmax(1)[0].numpy()
    cls = int(np.bincount(predicted.ravel()).argmax())
    expl = ours(unet64, "encoder.layer4")(x, ac.Segment(cls))
    with theirs(model=unet64, target_layers=[unet64.encoder.layer4]) as cam:
        ref = cam(input_tensor=x, targets=[SemanticSegmentationTarget(cls, (predicted == cls).astype(np.float32))])
    assert not expl.degenerate.any()
    assert_close(expl.maps, torch.from_numpy(ref)[:, None], maps_allowed(expl.raw, (64, 64), pgc=True), "maps")


def test_k_targets_in_one_call_equal_k_single_calls(unet64):
    """One call of K targets and K calls of one: the same float64 numbers, each rounded once (the channel
    sums run as one batched product of K rows or K products of one, in different orders)."""
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    weights = _box_mask((64, 64), BOX) * 0.5
    targets = [ac.Area(box=BOX), ac.Pixel(30, 30, channel=0), ac.Segment(1), ac.Area(mask=weights)]
    for method in (ac.GradCAM, ac.GradCAMPlusPlus, ac.HiResCAM, ac.LayerCAM):
        explainer = method(unet64, "encoder.layer4")
        together = explainer(x, targets)
        for k, target in enumerate(targets):
            alone = explainer(x, target)
            name = f"{method.__name__} {target!r}"
            assert_close(together.raw[:, k : k + 1], alone.raw, rounded(alone.raw), f"{name} raw")
            assert_close(together.maps[:, k : k + 1], alone.maps, maps_allowed(alone.raw, (64, 64)), f"{name} maps")
            assert_identical(together.scores[:, k], alone.scores[:, 0], f"{name} scores")


def test_batched_vjp_equals_loop(unet64):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    targets = [ac.Area(box=BOX, channel=c) for c in range(3)]
    looped = ac.GradCAM(unet64, "encoder.layer4", batched=False)(x, targets)
    batched = ac.GradCAM(unet64, "encoder.layer4", batched=True)(x, targets)
    assert_close(batched.raw, looped.raw, rounded(looped.raw), "raw")


def test_torchvision_dict_output_reads_out():
    import torchvision

    torch.manual_seed(0)
    model = (
        torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3)
        .eval()
        .double()
    )
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    expl = ac.GradCAM(model, "backbone.16")(x, ac.Area(box=BOX, channel=1))
    with torch.no_grad():
        expected = model(x)["out"][:, 1, 8:24, 16:40].sum().view(1, 1)
    assert_close(expl.scores, expected, rounded(expected, leading=1), "score")
    assert expl.maps.shape == (1, 1, 64, 64)
