"""The areacam command: target SPECs, explain end to end, layers, one-line errors, no partial output."""

from __future__ import annotations

import inspect
import json
import subprocess
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
from areacam.app.spec import SpecError, get_method, parse_target
from areacam.layers import layer_table
from areacam.methods.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("spec", "cls", "attrs"),
    [
        ("class", ac.Class, {"index": None}),
        ("class:7", ac.Class, {"index": 7}),
        ("area:1,2,10,12", ac.Area, {"channel": None}),
        ("area:1,2,10,12:0", ac.Area, {"channel": 0}),
        ("pixel:3,4", ac.Pixel, {"y": 3, "x": 4, "channel": None}),
        ("pixel:3,4:2", ac.Pixel, {"y": 3, "x": 4, "channel": 2}),
        ("segment:2", ac.Segment, {"cls": 2}),
        ("latent:5", ac.Latent, {"index": 5}),
        ("recon-error", ac.ReconstructionError, {}),
    ],
)
def test_parse_target_kinds(spec, cls, attrs):
    target = parse_target(spec)
    assert type(target) is cls
    for name, value in attrs.items():
        assert getattr(target, name) == value


def test_parse_target_boxes():
    assert parse_target("area:1,2,10,12").region.box == (1, 2, 10, 12)
    assert parse_target("recon-error:0,0,4,8").region.box == (0, 0, 4, 8)
    assert parse_target("recon-error").region.box is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("area:1,2,3", "4 comma-separated ints"),
        ("area:1,2,3,x", "4 comma-separated ints"),
        ("area:5,5,5,9", "empty"),
        ("segment:x", "CLS must be an int"),
        ("segment:-1", ">= 0"),
        ("latent", "expected latent:K"),
        ("pixel:1", "2 comma-separated ints"),
        ("class:1:2", "class:INDEX"),
        ("blob:3", "unknown target kind 'blob'"),
        ("", "empty target spec"),
    ],
)
def test_parse_target_rejects(spec, words):
    with pytest.raises(SpecError, match=words) as info:
        parse_target(spec)
    assert "\n" not in str(info.value)


def test_methods_table():
    assert sorted(METHODS) == sorted(
        [
            "gradcam",
            "gradcam++",
            "hirescam",
            "layercam",
            "xgradcam",
            "scorecam",
            "ablationcam",
            "eigencam",
            "guided-gradcam",
            "saliency",
            "guided-backprop",
            "smoothgrad",
            "inputxgradient",
            "integrated-gradients",
            "occlusion",
            "lime",
        ]
    )
    assert sorted(m for m in METHODS if METHODS[m].needs_layer) == sorted(
        [
            "gradcam",
            "gradcam++",
            "hirescam",
            "layercam",
            "xgradcam",
            "scorecam",
            "ablationcam",
            "eigencam",
            "guided-gradcam",
        ]
    )
    assert get_method("GradCAM_pp".replace("_pp", "++")).name == "gradcam++"
    assert get_method("Score_CAM").name == "scorecam" and get_method("IG").name == "integrated-gradients"
    with pytest.raises(SpecError, match="valid methods: gradcam"):
        get_method("gradcam+++")


# ------------------------------------------------------------------------------------------ images


def _write_png(path: Path, array: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), array)
    return path


def test_read_images_scales_resizes_and_matches_channels(tmp_path):
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[..., 2] = 255  # pure red in BGR order
    path = _write_png(tmp_path / "red.png", rgb)
    x = read_images([str(path)], (10, 15), 3)
    assert x.shape == (1, 3, 10, 15) and x.dtype == torch.float32
    # 255 / 255, 51 / 255 and 0.299 * 1 are each one correctly rounded float32: exact (rule 1)
    assert torch.equal(x[0, 0], torch.ones(10, 15)) and float(x[0, 1:].abs().max()) == 0.0
    grey = read_images([str(path)], None, 1)
    assert grey.shape == (1, 1, 20, 30)
    assert torch.equal(grey, torch.full((1, 1, 20, 30), 0.299))  # luminance of pure red
    gray_png = _write_png(tmp_path / "g.png", np.full((8, 8), 51, dtype=np.uint8))
    assert torch.equal(read_images([str(gray_png)], None, 3), torch.full((1, 3, 8, 8), 0.2))


# -------------------------------------------------------------------------------------- user model


class TinyNet(nn.Module):
    """4-D conv stages then a linear head: (B, 3, 16, 16) -> (B, 4)."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.stage2 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))

    def forward(self, x):
        return self.head(self.stage2(self.pool(self.stage1(x))))


# The user's module: the same class, written to a file with a factory function.
FACTORY = "\n".join(
    [
        "import torch",
        "from torch import nn",
        "",
        inspect.getsource(TinyNet),
        "def build():",
        "    torch.manual_seed(0)",
        "    return TinyNet()",
        "",
    ]
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A factory module importable by name from the working directory; returns its name."""
    name = f"usernet_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def photo(tmp_path):
    """A 24x20 picture of four flat colour quadrants plus mild noise (superpixels find the quadrants)."""
    rng = np.random.default_rng(0)
    img = np.zeros((24, 20, 3), dtype=np.float64)
    img[:12, :10], img[:12, 10:] = (200, 30, 30), (30, 200, 30)
    img[12:, :10], img[12:, 10:] = (30, 30, 200), (220, 220, 40)
    img += rng.normal(0, 8, img.shape)
    return _write_png(tmp_path / "photo.png", img.clip(0, 255).astype(np.uint8))


def test_explain_user_factory_end_to_end(user_module, photo, tmp_path):
    out = tmp_path / "out"
    rc = main(
        [
            "explain",
            "--model",
            f"{user_module}:build",
            "--image",
            str(photo),
            "--size",
            "16",
            "16",
            "--method",
            "gradcam",
            "--layer",
            "stage2",
            "--target",
            "class:1",
            "class",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads((out / "scores.json").read_text())
    torch.manual_seed(0)
    model = TinyNet().eval()
    x = read_images([str(photo)], (16, 16), 3)
    expected = ac.GradCAM(model, "stage2")(x, [ac.Class(1), ac.Class()])
    entry = report["images"][0]
    assert [t["spec"] for t in entry["targets"]] == ["class:1", "class"]
    # the command line makes the same call on the same image: the same numbers (rule 1)
    assert [t["score"] for t in entry["targets"]] == expected.scores[0].tolist()
    for k, target in enumerate(entry["targets"]):
        raw = np.load(out / target["raw"])
        assert raw.shape == (8, 8)
        np.testing.assert_array_equal(raw, expected.raw[0, k].numpy())
        heat = np.load(out / target["map"])
        assert heat.shape == (16, 16) and heat.min() >= 0 and heat.max() <= 1
        png = cv2.imread(str(out / target["overlay"]))
        assert png.shape == (16, 16, 3)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["scores.json"] + [t[f] for t in entry["targets"] for f in ("overlay", "map", "raw")]
    )


def test_explain_user_factory_by_file_path_with_weights(user_module, photo, tmp_path):
    torch.manual_seed(3)
    weights = tmp_path / "w.pt"
    torch.save(TinyNet().state_dict(), weights)
    out = tmp_path / "out2"
    rc = main(
        [
            "explain",
            "--model",
            f"{tmp_path / (user_module + '.py')}:build",
            "--weights",
            str(weights),
            "--image",
            str(photo),
            "--size",
            "16",
            "16",
            "--method",
            "saliency",
            "--target",
            "class:2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    torch.manual_seed(3)
    model = TinyNet().eval()
    x = read_images([str(photo)], (16, 16), 3)
    score = json.loads((out / "scores.json").read_text())["images"][0]["targets"][0]["score"]
    with torch.no_grad():
        assert score == float(model(x)[0, 2])  # the same forward pass (rule 1)
    assert np.load(next(out.glob("*_raw.npy"))).shape == (3, 16, 16)


def test_explain_registry_vae_checkpoint(tmp_path):
    from areacam import models

    torch.manual_seed(0)
    vae = models.create("vae", width=8, latent_dim=4)
    models.save(vae, tmp_path / "vae.pt")
    digit = _write_png(tmp_path / "digit.png", (np.eye(32)[::-1] * 255).astype(np.uint8))
    out = tmp_path / "vae_out"
    rc = main(
        [
            "explain",
            "--model",
            "vae",
            "--weights",
            str(tmp_path / "vae.pt"),
            "--image",
            str(digit),
            "--method",
            "gradcam++",
            "--layer",
            "encoder.relu2",
            "--target",
            "area:8,8,24,24",
            "recon-error",
            "latent:1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    model = models.load(tmp_path / "vae.pt")
    x = read_images([str(digit)], (32, 32), 1)
    targets = [ac.Area(box=(8, 8, 24, 24)), ac.ReconstructionError(), ac.Latent(1)]
    expected = ac.GradCAMPlusPlus(model, "encoder.relu2")(x, targets).scores[0]
    got = [t["score"] for t in json.loads((out / "scores.json").read_text())["images"][0]["targets"]]
    assert got == expected.tolist()  # the same call (rule 1)
    assert len(list(out.glob("*.png"))) == 3


# ---------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"--target": ["area:1,2,3"]}, "4 comma-separated ints"),
        ({"--target": ["segment:x"]}, "CLS must be an int"),
        ({"--method": ["gradcamm"]}, "unknown method 'gradcamm'"),
        ({"--layer": ["stage3"]}, "no layer named 'stage3'"),
        ({"--image": ["missing.png"]}, "no such file"),
        ({"--image": ["notes.png"]}, "not a readable image"),
        ({"--model": ["nosuchmodule_xyz:build"]}, "cannot import module"),
        ({"--model": ["vea"]}, "not a registry name"),
        ({"--target": ["area:0,0,9,9"]}, "Area needs a dense (B, C, H, W) output, got shape (1, 4)"),
        ({"--target": ["class:9"]}, "out of range"),
        ({"--weights": ["notes.png"]}, "not a readable torch checkpoint"),
    ],
)
def test_explain_bad_input_exits_2_and_writes_nothing(user_module, photo, tmp_path, capsys, change, words):
    (tmp_path / "notes.png").write_text("not an image")
    args = {
        "--model": [f"{user_module}:build"],
        "--image": [str(photo)],
        "--size": ["16", "16"],
        "--method": ["gradcam"],
        "--layer": ["stage2"],
        "--target": ["class:1"],
        "--out": ["out"],
    }
    args.update(change)
    argv = ["explain"] + [item for key, values in args.items() for item in [key, *values]]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("areacam explain: error: ") and words in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out/, no temp folder left


def test_cam_method_without_layer_is_a_usage_error(user_module, photo, capsys):
    assert (
        main(
            [
                "explain",
                "--model",
                f"{user_module}:build",
                "--image",
                str(photo),
                "--method",
                "hirescam",
                "--target",
                "class",
            ]
        )
        == 2
    )
    assert "needs --layer NAME" in capsys.readouterr().err


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["explain", "--model", "vae"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "required" in err and "--image" in err


def test_real_command_bad_spec_no_traceback(tmp_path):
    png = _write_png(tmp_path / "d.png", np.zeros((32, 32), dtype=np.uint8))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "areacam",
            "explain",
            "--model",
            "vae",
            "--image",
            str(png),
            "--method",
            "gradcam",
            "--layer",
            "encoder.relu2",
            "--target",
            "area:1,2,3",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr == "areacam explain: error: bad target 'area:1,2,3': the box TOP,LEFT,BOTTOM,RIGHT must "
        "be 4 comma-separated ints, got '1,2,3'\n"
    )
    assert proc.stdout == "" and not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------- layers


def test_layer_table_shapes_suggestions_and_no_hooks_left():
    model = TinyNet().eval()
    rows = {r["name"]: r for r in layer_table(model, torch.rand(1, 3, 16, 16))}
    assert rows["stage1"]["shape"] == (1, 4, 16, 16)
    assert rows["stage2.1"]["shape"] == (1, 6, 8, 8)
    assert rows["head"]["shape"] == (1, 4)
    assert {n for n, r in rows.items() if r["suggested"]} == {"stage1", "stage2"}
    assert all(not m._forward_hooks for m in model.modules())


def test_layer_table_removes_hooks_when_forward_raises():
    model = TinyNet().eval()
    with pytest.raises(RuntimeError):
        layer_table(model, torch.rand(1, 5, 16, 16))  # wrong channel count
    assert all(not m._forward_hooks for m in model.modules())


def test_layers_command(user_module, capsys):
    assert main(["layers", "--model", f"{user_module}:build", "--size", "16", "16"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "input (1, 3, 16, 16); '*' = usual CAM layer choice"
    assert out[-1] == "suggested --layer: stage1, stage2"
    assert any(line.startswith("* stage2 ") and "(1,6,8,8)" in line for line in out)


def test_layers_bad_size_is_one_line(capsys):
    assert main(["layers", "--model", "classifier", "--size", "40", "40"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dummy forward pass of shape (1, 3, 40, 40) failed" in err


def test_help_has_an_example_per_subcommand(capsys):
    for command, example in [
        ("demo", "areacam demo --out"),
        ("explain", "areacam explain --model vae"),
        ("layers", "areacam layers --model classifier"),
    ]:
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert example in capsys.readouterr().out


RAW_SHAPES = {
    "gradcam": (8, 8),
    "gradcam++": (8, 8),
    "hirescam": (8, 8),
    "layercam": (8, 8),
    "xgradcam": (8, 8),
    "scorecam": (8, 8),
    "ablationcam": (8, 8),
    "eigencam": (8, 8),
    "guided-gradcam": (3, 16, 16),
    "saliency": (3, 16, 16),
    "guided-backprop": (3, 16, 16),
    "smoothgrad": (3, 16, 16),
    "inputxgradient": (3, 16, 16),
    "integrated-gradients": (3, 16, 16),
    "occlusion": (3, 16, 16),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_from_the_command_line(user_module, photo, tmp_path, method):
    out = tmp_path / "m"
    rc = main(
        [
            "explain",
            "--model",
            f"{user_module}:build",
            "--image",
            str(photo),
            "--size",
            "16",
            "16",
            "--method",
            method,
            "--layer",
            "stage2",
            "--target",
            "class:3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    entry = json.loads((out / "scores.json").read_text())["images"][0]["targets"][0]
    torch.manual_seed(0)
    with torch.no_grad():
        logit = float(TinyNet().eval()(read_images([str(photo)], (16, 16), 3))[0, 3])
    if method != "smoothgrad":  # SmoothGrad reports the mean score over noisy copies
        assert entry["score"] == logit  # the same forward pass of the same image (rule 1)
    raw = np.load(out / entry["raw"])
    if method == "lime":
        segments = int(raw.shape[0])
        assert raw.ndim == 1 and segments >= 2
    else:
        assert raw.shape == RAW_SHAPES[method]
