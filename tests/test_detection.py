"""ac.Detection: pytorch-grad-cam's FasterRCNNBoxScoreTarget on torchvision Faster R-CNN, and DETR outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_convert, box_iou

import areacam as ac

LAYER = "backbone.body.12"


@pytest.fixture(scope="module")
def detector():
    """torchvision's smallest Faster R-CNN, random weights, 64 px; every proposal kept (score > 0)."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=5,
        box_score_thresh=0.0,
        min_size=64,
        max_size=64,
        box_detections_per_img=10,
        rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=50,
    ).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        found = model(x)[0]
    return model, x, found


def hand_score(found: dict, box: list[float], label: int | None, iou: float = 0.5) -> float:
    """pytorch-grad-cam's rule, written out: the best-IoU detection, if over ``iou`` and of ``label``."""
    ious = box_iou(torch.tensor([box]), found["boxes"].detach())[0]
    best = int(ious.argmax())
    if ious[best] > iou and (label is None or int(found["labels"][best]) == label):
        return float(ious[best] + found["scores"][best])
    return 0.0


def test_maps_equal_pytorch_grad_cam(detector):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget

    model, x, found = detector
    picks = [0, 3]
    boxes = [found["boxes"][i].tolist() for i in picks]
    labels = [int(found["labels"][i]) for i in picks]
    expl = ac.GradCAM(model, LAYER)(x, [ac.Detection(b, label=lab) for b, lab in zip(boxes, labels)])
    assert not expl.degenerate.any()
    for k, (box, label) in enumerate(zip(boxes, labels)):
        cam = pgc.GradCAM(model, [model.get_submodule(LAYER)])
        theirs = cam(x, targets=[FasterRCNNBoxScoreTarget([label], [np.array(box)])])[0]
        ours = expl.maps[0, k].double().numpy()
        assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.999  # both upsampled, differently
        assert expl.scores[0, k].item() == pytest.approx(hand_score(found, box, label), rel=1e-6)


def test_score_is_iou_plus_score_or_zero(detector):
    model, x, found = detector
    with torch.no_grad():
        out = model(x)
    box = found["boxes"][1].clone()
    box[2] -= 0.2 * (box[2] - box[0])  # IoU 0.8 with its detection
    box = box.tolist()
    label = int(found["labels"][1])
    got = ac.Detection(box, label=label)(out, x).item()
    assert 1.0 < got == pytest.approx(hand_score(found, box, label), rel=1e-6)
    assert ac.Detection(box)(out, x).item() == pytest.approx(hand_score(found, box, None), rel=1e-6)
    assert ac.Detection(box, label=label, iou=0.9)(out, x).item() == 0.0  # best IoU 0.8 is not over 0.9
    other = next(
        c for c in range(5) if c != int(found["labels"][int(box_iou(torch.tensor([box]), found["boxes"]).argmax())])
    )
    assert ac.Detection(box, label=other)(out, x).item() == 0.0  # the best match has another label
    missed = ac.GradCAM(model, LAYER)(x, ac.Detection(box, label=label, iou=0.9))
    assert missed.degenerate.all() and (missed.maps == 0).all()


def test_per_sample_boxes_and_bind():
    out = [
        {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]), "scores": torch.tensor([0.9, 0.8]),
         "labels": torch.tensor([1, 2])},
        {"boxes": torch.tensor([[20.0, 20.0, 30.0, 30.0]]), "scores": torch.tensor([0.7]), "labels": torch.tensor([2])},
    ]  # fmt: skip
    x = torch.zeros(2, 3, 32, 32)
    target = ac.Detection([[0, 0, 10, 10], [20, 20, 30, 30]])
    assert target(out, x).tolist() == pytest.approx([1.9, 1.7])
    assert ac.Detection([20, 20, 30, 30], label=2)(out, x).tolist() == pytest.approx([1.8, 1.7])
    bound = target.bind([1])
    assert bound(out[1:], x[1:]).tolist() == pytest.approx([1.7])
    assert target.bind(0)(out[:1] * 3, x[:1].expand(3, -1, -1, -1)).tolist() == pytest.approx([1.9] * 3)
    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    assert ac.Detection([0, 0, 5, 5])(empty, x[:1]).tolist() == [0.0]


@pytest.fixture(scope="module")
def detr():
    transformers = pytest.importorskip("transformers")
    config = transformers.DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone=None,
        backbone_config=transformers.ResNetConfig(
            embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1], out_features=["stage4"]
        ),
        d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=16, decoder_ffn_dim=16, num_queries=6, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.DetrForObjectDetection(config).eval()
    with torch.no_grad():  # spread the random weights so that queries differ
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    return model


def test_detr_query_matching(detr):
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        out = detr(x)
    probs = out.logits.softmax(-1)[..., :-1]
    xyxy = box_convert(out.pred_boxes, "cxcywh", "xyxy") * torch.tensor([48, 64, 48, 64])
    box = xyxy[0, 2].clamp(0, 48).tolist()
    ious = box_iou(torch.tensor([box]), xyxy[1])[0]
    want = []
    for b in range(2):
        ious = box_iou(torch.tensor([box]), xyxy[b])[0]
        q = int(ious.argmax())
        want.append(float(ious[q] + probs[b, q].max()) if ious[q] > 0.5 else 0.0)
    assert ac.Detection(box)(out, x).tolist() == pytest.approx(want, rel=1e-6)
    expl = ac.GradCAM(detr, "model.backbone.model.encoder.stages.3")(x[:1], [ac.Detection(box)])
    assert expl.scores[0, 0].item() == pytest.approx(want[0], rel=1e-6) and torch.isfinite(expl.maps).all()


def test_detection_bad_input():
    x = torch.zeros(1, 3, 32, 32)
    out = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    with pytest.raises(ValueError, match=r"0 <= x1 < x2"):
        ac.Detection([10, 0, 5, 5])
    with pytest.raises(ValueError, match=r"0 <= x1 < x2"):
        ac.Detection([-1, 0, 5, 5])
    with pytest.raises(ValueError, match="must be \\(4,\\) or \\(B, 4\\)"):
        ac.Detection([1, 2, 3])
    with pytest.raises(ValueError, match="reaches outside the 32x32 image"):
        ac.Detection([0, 0, 40, 5])(out, x)
    with pytest.raises(TypeError, match="needs a detector's output"):
        ac.Detection([0, 0, 5, 5])(torch.zeros(1, 10), x)
    with pytest.raises(TypeError, match="keys \\['out'\\]"):
        ac.Detection([0, 0, 5, 5])({"out": torch.zeros(1, 10)}, x)
    with pytest.raises(ValueError, match="2 boxes for a batch of 1"):
        ac.Detection([[0, 0, 5, 5], [0, 0, 6, 6]])(out, x)
    with pytest.raises(TypeError, match="label must be an int"):
        ac.Detection([0, 0, 5, 5], label=1.5)  # type: ignore[arg-type]
