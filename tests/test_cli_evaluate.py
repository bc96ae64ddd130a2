"""``areacam evaluate`` and ``areacam layers --rank``: the numbers equal the library's, bad input writes nothing."""

from __future__ import annotations

import inspect
import json
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import areacam as ac
from areacam.app.cli import main
from areacam.app.loading import read_images


class TwoStageNet(nn.Module):
    """(B, 3, 16, 16) -> (B, 3) logits through a 16x16 and an 8x8 stage."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.stage2 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))

    def forward(self, x):
        return self.head(self.stage2(self.pool(self.stage1(x))))


def build() -> nn.Module:
    torch.manual_seed(0)
    return TwoStageNet().eval()


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Two 16x16 images with their object masks, and the factory importable as MODULE:build."""
    name = f"evalnet_{uuid.uuid4().hex[:8]}"
    source = [inspect.getsource(TwoStageNet), inspect.getsource(build)]
    (tmp_path / f"{name}.py").write_text("import torch\nfrom torch import nn\n\n\n" + "\n\n".join(source))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    rng = np.random.default_rng(0)
    paths = {"model": f"{name}:build", "images": [], "masks": []}
    for i, (top, left) in enumerate([(2, 3), (7, 6)]):
        img = rng.uniform(0, 80, (16, 16, 3))
        img[top : top + 6, left : left + 6] = (40, 200, 220)
        mask = np.zeros((16, 16), np.uint8)
        mask[top : top + 6, left : left + 6] = 255
        assert cv2.imwrite(str(tmp_path / f"img{i}.png"), img.astype(np.uint8))
        assert cv2.imwrite(str(tmp_path / f"mask{i}.png"), mask)
        paths["images"].append(f"img{i}.png")
        paths["masks"].append(f"mask{i}.png")
    yield paths
    sys.modules.pop(name, None)


def _evaluate_argv(files: dict, **change: list[str]) -> list[str]:
    args = {
        "--model": [files["model"]],
        "--image": files["images"],
        "--mask": files["masks"],
        "--method": ["gradcam"],
        "--layer": ["stage1"],
        "--target": ["class:1", "class"],
        "--steps": ["8"],
        "--out": ["ev"],
    }
    args.update(change)
    return ["evaluate"] + [item for key, values in args.items() if values for item in [key, *values]]


def test_evaluate_writes_the_library_numbers_and_figures(files, tmp_path, capsys):
    assert main(_evaluate_argv(files)) == 0
    out = tmp_path / "ev"
    assert sorted(p.name for p in out.iterdir()) == [
        "curves.png",
        "evaluation.json",
        "randomisation_0-class-1.png",
        "randomisation_1-class.png",
    ]
    for png in out.glob("*.png"):
        img = cv2.imread(str(png))
        assert img is not None and img.shape[0] > 100 and float(img.std()) > 10
    report = json.loads((out / "evaluation.json").read_text())
    model = build()
    x = read_images(files["images"], (16, 16), 3)
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 2:8, 3:9] = masks[1, 7:13, 6:12] = True
    targets = [ac.Class(1), ac.Class()]
    expl = ac.GradCAM(model, "stage1")(x, targets)
    expected = ac.metrics.evaluate(model, x, targets, expl, masks=masks, steps=8, progress=False)
    got = report["metrics"]["means"]
    assert (
        set(got)
        == set(expected.means())
        >= {"deletion_auc", "insertion_random_auc", "pointing_game", "relevance_mass", "mask_share", "sparseness"}
    )
    # the command line makes the same calls on the same images: the same numbers (tests/README.md, rule 1)
    assert got == expected.means()
    assert got["mask_share"] == 36 / 256
    sanity = ac.metrics.randomisation(lambda m: ac.GradCAM(m, "stage1"), model, x, targets)
    assert report["randomisation"]["layers"] == ["head.2", "stage2.0", "stage1.0"] == sanity.layers
    assert report["randomisation"]["spearman"] == sanity.spearman.flatten(1).mean(1).tolist()
    assert report["scores"] == expl.scores.tolist()
    assert [t["spec"] for t in report["targets"]] == ["class:1", "class"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"areacam evaluate: wrote 4 files to {Path('ev')}"
    assert f"pointing_game {expected.means()['pointing_game']:.3f}" in lines[0]


def test_evaluate_without_masks_or_randomisation(files, tmp_path):
    argv = _evaluate_argv(
        files,
        **{
            "--mask": [],
            "--method": ["saliency"],
            "--layer": [],
            "--metrics": ["deletion", "road"],
            "--randomisation": ["none"],
        },
    )
    assert main(argv) == 0
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert report["randomisation"] is None and report["masks"] is None
    assert sorted(report["metrics"]["means"]) == [
        "deletion_auc",
        "deletion_random_auc",
        "road",
        "road_least",
        "road_most",
    ]
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["curves.png", "evaluation.json"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"--mask": ["mask0.png"]}, "one file per --image: got 1 masks for 2 images"),
        ({"--mask": ["mask0.png", "blank.png"]}, "is empty at size (16, 16)"),
        ({"--mask": ["mask0.png", "nope.png"]}, "--mask 'nope.png': no such file"),
        ({"--mask": [], "--metrics": ["deletion", "iou"]}, "--metrics iou compare maps with ground truth"),
        ({"--steps": ["0"]}, "--steps must be >= 1, got 0"),
        ({"--layer": ["stage9"]}, "no layer named 'stage9'"),
        ({"--target": ["class:7"]}, "out of range"),
        ({"--out": ["img0.png"]}, "exists and is not a folder"),
    ],
)
def test_evaluate_bad_input_exits_2_and_writes_nothing(files, tmp_path, capsys, change, words):
    cv2.imwrite(str(tmp_path / "blank.png"), np.zeros((16, 16), np.uint8))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(_evaluate_argv(files, **change)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("areacam evaluate: error: ") and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_evaluate_unknown_metric_is_a_one_line_usage_error(files, capsys):
    with pytest.raises(SystemExit) as info:
        main(_evaluate_argv(files, **{"--metrics": ["faithfulness"]}))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'faithfulness'" in err


def test_layers_rank_prints_the_library_ranking(files, capsys):
    argv = [
        "layers",
        "--model",
        files["model"],
        "--rank",
        "--image",
        *files["images"],
        "--target",
        "class:1",
        "--mask",
        *files["masks"],
        "--metric",
        "relevance_mass",
    ]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    model = build()
    x = read_images(files["images"], (16, 16), 3)
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 2:8, 3:9] = masks[1, 7:13, 6:12] = True
    ranking = ac.metrics.rank_layers(model, x, ac.Class(1), metric="relevance_mass", masks=masks)
    assert ranking.layers == ["stage1", "stage2"] or ranking.layers == ["stage2", "stage1"]
    assert lines[0] == (
        "2 candidate layers of gradcam ranked by relevance_mass (higher is better) on 2 image(s) "
        "x 1 target(s), input (2, 3, 16, 16):"
    )
    assert lines[1:-1] == ranking.table().splitlines()
    assert lines[-1] == f"best --layer: {ranking.best}"
    assert lines[3].startswith(f"| 1 | `{ranking.best}` | {float(ranking.scores[0]):.3f} |")


def test_layers_rank_defaults_to_deletion_without_masks(files, capsys):
    argv = [
        "layers",
        "--model",
        files["model"],
        "--rank",
        "--image",
        files["images"][0],
        "--target",
        "class",
        "--candidates",
        "stage2",
        "stage1.1",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ranked by deletion (lower is better)" in out
    assert {line.split("`")[1] for line in out.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")} == {
        "stage2",
        "stage1.1",
    }


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--rank", "--target", "class"], "--rank needs --image PATH... and --target SPEC..."),
        (["--image", "img0.png", "--target", "class"], "go with --rank"),
        (["--rank", "--image", "img0.png", "--target", "class", "--method", "saliency"], "has no layer"),
        (["--rank", "--image", "img0.png", "--target", "class", "--metric", "iou"], "pass --mask"),
        (["--rank", "--image", "img0.png", "--target", "class", "--candidates", "stage7"], "no layer named 'stage7'"),
    ],
)
def test_layers_rank_bad_input_is_one_line(files, capsys, extra, words):
    assert main(["layers", "--model", files["model"], *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("areacam layers: error: ") and words in err, err
