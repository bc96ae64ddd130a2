"""The CAM family against captum and pytorch-grad-cam on the same models (random weights).

Both are dev extras, imported plainly: a missing one fails the suite instead of skipping it.
"""

from __future__ import annotations

import captum.attr as captum_attr
import numpy as np
import pytest
import pytorch_grad_cam as pgc
import torch
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
def test_gradcam_raw_equals_captum_class(resnet, images, layer):
    expl = ac.GradCAM(resnet, layer)(images, [ac.Class(3), ac.Class(7)])
    captum_cam = captum_attr.LayerGradCam(resnet, getattr(resnet, layer))
    for k, cls in enumerate((3, 7)):
        ref = captum_cam.attribute(images, target=cls, relu_attributions=True)
        torch.testing.assert_close(expl.raw[:, k], ref[:, 0], rtol=1e-4, atol=1e-7)


def test_gradcam_raw_equals_captum_region(unet):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    top, left, bottom, right = BOX

    def region_score(inp):
        return unet(inp)[:, 1, top:bottom, left:right].sum(dim=(1, 2))

    expl = ac.GradCAM(unet, "encoder.layer3")(x, ac.Area(box=BOX, channel=1))
    ref = captum_attr.LayerGradCam(region_score, unet.encoder.layer3).attribute(x, relu_attributions=True)
    torch.testing.assert_close(expl.raw[:, 0], ref[:, 0], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(expl.scores[:, 0], region_score(x).detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (ac.GradCAM, pgc.GradCAM),
        (ac.GradCAMPlusPlus, pgc.GradCAMPlusPlus),
        (ac.HiResCAM, pgc.HiResCAM),
        (ac.LayerCAM, pgc.LayerCAM),
    ],
)
def test_maps_equal_pytorch_grad_cam_class(resnet, images, ours, theirs):
    expl = ours(resnet, "layer4")(images, ac.Class([2, 5]))
    with theirs(model=resnet, target_layers=[resnet.layer4]) as cam:
        ref = cam(input_tensor=images, targets=[ClassifierOutputTarget(2), ClassifierOutputTarget(5)])
    np.testing.assert_allclose(expl.maps[:, 0].numpy(), ref, atol=2e-4)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(ac.GradCAMPlusPlus, pgc.GradCAMPlusPlus), (ac.HiResCAM, pgc.HiResCAM), (ac.LayerCAM, pgc.LayerCAM)],
)
def test_maps_equal_pytorch_grad_cam_region(unet, ours, theirs):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    mask = _box_mask((64, 64), BOX)
    expl = ours(unet, "encoder.layer4")(x, ac.Area(box=BOX, channel=2))
    with theirs(model=unet, target_layers=[unet.encoder.layer4]) as cam:
        ref = cam(input_tensor=x, targets=[SemanticSegmentationTarget(2, mask)])
    np.testing.assert_allclose(expl.maps[:, 0].numpy(), ref, atol=2e-4)


def test_segment_equals_semantic_segmentation_target(unet):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        predicted = unet(x).argmax(1)[0].numpy()
    cls = int(np.bincount(predicted.ravel()).argmax())
    expl = ac.GradCAM(unet, "encoder.layer4")(x, ac.Segment(cls))
    with pgc.GradCAM(model=unet, target_layers=[unet.encoder.layer4]) as cam:
        ref = cam(input_tensor=x, targets=[SemanticSegmentationTarget(cls, (predicted == cls).astype(np.float32))])
    assert not expl.degenerate.any()
    np.testing.assert_allclose(expl.maps[:, 0].numpy(), ref, atol=2e-4)


def test_k_targets_in_one_call_equal_k_single_calls(unet):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    weights = _box_mask((64, 64), BOX) * 0.5
    targets = [ac.Area(box=BOX), ac.Pixel(30, 30, channel=0), ac.Segment(1), ac.Area(mask=weights)]
    for method in (ac.GradCAM, ac.GradCAMPlusPlus, ac.HiResCAM, ac.LayerCAM):
        explainer = method(unet, "encoder.layer4")
        together = explainer(x, targets)
        for k, target in enumerate(targets):
            alone = explainer(x, target)
            torch.testing.assert_close(together.raw[:, k], alone.raw[:, 0], rtol=1e-5, atol=1e-8)
            torch.testing.assert_close(together.maps[:, k], alone.maps[:, 0], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(together.scores[:, k], alone.scores[:, 0])


def test_batched_vjp_equals_loop(unet):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    targets = [ac.Area(box=BOX, channel=c) for c in range(3)]
    looped = ac.GradCAM(unet, "encoder.layer4", batched=False)(x, targets)
    batched = ac.GradCAM(unet, "encoder.layer4", batched=True)(x, targets)
    torch.testing.assert_close(batched.raw, looped.raw, rtol=1e-4, atol=1e-7)


def test_torchvision_dict_output_reads_out():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3
    ).eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    expl = ac.GradCAM(model, "backbone.16")(x, ac.Area(box=BOX, channel=1))
    with torch.no_grad():
        expected = model(x)["out"][:, 1, 8:24, 16:40].sum()
    torch.testing.assert_close(expl.scores[0, 0], expected, rtol=1e-5, atol=1e-5)
    assert expl.maps.shape == (1, 1, 64, 64)
