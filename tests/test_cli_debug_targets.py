"""The command line's debugging SPECs: detection:X1,Y1,X2,Y2[:LABEL], fp:CLS and fn:CLS (truth from --mask)."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import areacam as ac
from areacam import models
from areacam.app.cli import main
from areacam.app.loading import read_images, read_labels
from areacam.app.spec import SpecError, parse_target

LAYER = "decoder.blocks.3"


def test_parse_debugging_specs():
    found = parse_target("detection:10,20,30,44:3")
    assert type(found) is ac.Detection and found.box.tolist() == [10, 20, 30, 44] and found.label == 3
    assert parse_target("detection:0,0,5,5").label is None
    truth = torch.zeros(1, 8, 8, dtype=torch.long)
    for spec, kind in (("fp:2", ac.FalsePositive), ("fn:0", ac.FalseNegative)):
        target = parse_target(spec, truth)
        assert type(target) is kind and target.cls == int(spec[-1]) and target.truth.mask is not None
    for spec, words in (
        ("fp:1", "pass --mask label images"),
        ("fn:x", "CLS must be an int"),
        ("fp:-1", "must be >= 0"),
        ("fp:1:2", "expected fp:CLS"),
        ("detection:30,20,10,44", "0 <= X1 < X2"),
        ("detection:1,2,3", "4 comma-separated ints"),
        ("detection:0,0,4,4:a", "LABEL must be an int"),
    ):
        with pytest.raises(SpecError, match=words):
            parse_target(spec, None if spec == "fp:1" else truth)


@pytest.fixture
def segmentation_case(tmp_path):
    """A 3-class reference U-Net checkpoint, an image and its label image (values 0, 1, 2)."""
    torch.manual_seed(0)
    model = models.create("unet", num_classes=3).eval()
    models.save(model, tmp_path / "unet.pt")
    rng = np.random.default_rng(0)
    image = tmp_path / "scene.png"
    assert cv2.imwrite(str(image), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    labels = np.zeros((32, 32), dtype=np.uint8)
    labels[4:20, 6:22], labels[20:30, 2:12] = 1, 2
    truth = tmp_path / "scene_labels.png"
    assert cv2.imwrite(str(truth), labels)
    return tmp_path, image, truth


def _explain(folder: Path, image: Path, targets: list[str], extra: list[str]) -> int:
    model = ["--model", "unet", "--weights", str(folder / "unet.pt"), "--image", str(image)]
    method = ["--method", "gradcam", "--layer", LAYER, "--target", *targets, "--out", str(folder / "out")]
    return main(["explain", *model, *method, *extra])


def test_explain_fp_fn_equal_the_library_call(segmentation_case):
    folder, image, truth = segmentation_case
    assert _explain(folder, image, ["fp:1", "fn:1", "fn:2"], ["--mask", str(truth)]) == 0
    model = models.load(folder / "unet.pt")
    x = read_images([str(image)], (32, 32), 3)
    labels = torch.from_numpy(cv2.imread(str(truth), cv2.IMREAD_UNCHANGED).astype(np.int64))[None]
    assert (read_labels([str(truth)], [str(image)], (32, 32)) == labels).all()
    targets = [ac.FalsePositive(1, labels), ac.FalseNegative(1, labels), ac.FalseNegative(2, labels)]
    expected = ac.GradCAM(model, LAYER)(x, targets)
    report = json.loads((folder / "out" / "scores.json").read_text())
    assert [t["score"] for t in report["images"][0]["targets"]] == expected.scores[0].tolist()
    for k, name in enumerate(("fp-1", "fn-1", "fn-2")):
        saved = np.load(folder / "out" / f"scene_gradcam_{k}_{name}_map.npy")
        assert (torch.from_numpy(saved) == expected.maps[0, k]).all()
    # this random U-Net paints class 1 everywhere: nothing of class 1 is missed, an empty region's map is flat 0
    assert (expected.scores[0] != 0).tolist() == [True, False, True]
    assert expected.degenerate[0].tolist() == [False, True, False] and (expected.maps[0, 1] == 0).all()


@pytest.mark.parametrize(
    ("targets", "extra", "words"),
    [
        (["fp:1"], [], "pass --mask label images"),
        (["segment:1"], ["--mask", "LABELS"], "--mask is the truth of fp:CLS / fn:CLS targets"),
        (["fp:1"], ["--mask", "MASK255"], "truth holds label 255, but the output has 3 channel(s)"),
        (["fn:1"], ["--mask", "LABELS", "LABELS"], "--mask takes one file per --image"),
        (["fp:3"], ["--mask", "LABELS"], "class 3 is out of range"),
    ],
)
def test_explain_bad_truth_is_one_line_and_writes_nothing(segmentation_case, capsys, targets, extra, words):
    folder, image, truth = segmentation_case
    mask_255 = folder / "mask255.png"
    assert cv2.imwrite(str(mask_255), (cv2.imread(str(truth), cv2.IMREAD_UNCHANGED) > 0).astype(np.uint8) * 255)
    extra = [{"LABELS": str(truth), "MASK255": str(mask_255)}.get(item, item) for item in extra]
    assert _explain(folder, image, targets, extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err
    assert not (folder / "out").exists()


DETECTOR = """
import torch
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn


def build():
    torch.manual_seed(0)
    return fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=5, box_score_thresh=0.0, min_size=64, max_size=64
    ).eval()
"""


@pytest.fixture
def detector_module(tmp_path, monkeypatch):
    name = f"userdet_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(DETECTOR)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_explain_detection_equals_the_library_call(detector_module, tmp_path):
    module = sys.modules.get(detector_module) or __import__(detector_module)
    model = module.build()
    image = tmp_path / "street.png"
    assert cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    x = read_images([str(image)], (64, 64), 3)
    with torch.no_grad():
        found = model(x)[0]
    box = found["boxes"][0].round().int().tolist()
    spec = "detection:{},{},{},{}".format(*box)  # no label: the best-IoU detection of the rounded box scores
    layer = "backbone.body.12"
    inputs = ["--model", f"{detector_module}:build", "--image", str(image), "--size", "64", "64"]
    rc = main(
        ["explain", *inputs, "--method", "gradcam", "--layer", layer, "--target", spec, "--out", str(tmp_path / "out")]
    )
    assert rc == 0
    expected = ac.GradCAM(model, layer)(x, ac.Detection(box))
    report = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert [t["score"] for t in report["images"][0]["targets"]] == expected.scores[0].tolist()
    assert expected.scores[0, 0] > 1.0 and not expected.degenerate.any()  # IoU > 0.5, plus the score


def test_run_fp_fn_read_each_samples_mask_as_its_truth(tmp_path, capsys):
    from areacam.data import shapes
    from areacam.runs import open_run

    torch.manual_seed(0)
    model = models.create("unet", num_classes=4).eval()  # shapes' masks: 0 background, 1..3 the classes
    models.save(model, tmp_path / "unet.pt")
    images, _, masks = shapes(8, size=32, random_state=5)
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for i in range(8):
        rgb = np.round(images[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), rgb[..., ::-1])
        cv2.imwrite(str(tmp_path / "masks" / f"{i}.png"), masks[i].numpy().astype(np.uint8))
    out = tmp_path / "run"
    args = ["run", "--model", "unet", "--weights", str(tmp_path / "unet.pt"), "--data", str(tmp_path / "images")]
    args += ["--masks", str(tmp_path / "masks"), "--method", "gradcam", "--layer", LAYER, "--target", "fp:1", "fn:2"]
    assert main([*args, "--batch-size", "8", "--no-progress", "--out", str(out)]) == 0
    result = open_run(out)
    order = [int(name.split(".")[0]) for name in result.ids]
    x = read_images([str(tmp_path / "images" / f"{i}.png") for i in order], (32, 32), 3)
    truth = masks[order].long()
    expected = ac.GradCAM(models.load(tmp_path / "unet.pt"), LAYER)(
        x, [ac.FalsePositive(1, truth), ac.FalseNegative(2, truth)]
    )
    for k in range(2):
        assert result.table[f"score_{k}"].tolist() == expected.scores[:, k].tolist()
    assert (torch.from_numpy(np.asarray(result.maps)) == expected.maps).all()
    with torch.no_grad():
        predicted = models.load(tmp_path / "unet.pt")(x).argmax(1)
    hand = {0: (predicted == 1) & (truth != 1), 1: (truth == 2) & (predicted != 2)}  # fp:1, fn:2 by definition
    for k, region in hand.items():
        assert result.table[f"error_pixels_{k}"].tolist() == region.flatten(1).sum(1).float().tolist()
    assert main(["report", str(out), "--by", "error_pixels_0", "--count", "2"]) == 0  # largest error first
    page = (out / "report" / "report.html").read_text()
    ranked = result.table.sort_values("error_pixels_0", ascending=False, kind="stable")["id"].tolist()
    assert "highest first as the worst" in page and page.index(ranked[0]) < page.index(ranked[1]) < page.index(
        ranked[-1]
    )
    no_masks = [a for a in args if a not in ("--masks", str(tmp_path / "masks"))]
    assert main([*no_masks, "--no-progress", "--out", str(tmp_path / "r2")]) == 2
    assert "fp:1, fn:2 needs a mask per sample" in capsys.readouterr().err and not (tmp_path / "r2").exists()
