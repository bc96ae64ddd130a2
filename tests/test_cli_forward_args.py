"""``--forward-arg NAME=VALUE`` on the command line: a diffusers denoiser ``UNet2DModel(x, timestep)``."""

from __future__ import annotations

import json
import sys
import uuid

import cv2
import numpy as np
import pytest
import torch

import areacam as ac
from areacam.app.cli import main
from areacam.app.forward import parse_forward_args
from areacam.app.loading import InputError, read_images

pytest.importorskip("diffusers")

FACTORY = """
import torch
import diffusers


def build():
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
"""
LAYER = "up_blocks.1.resnets.0"


@pytest.fixture
def denoiser(tmp_path, monkeypatch):
    name = f"denoiser_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    images = []
    for i in range(2):
        path = tmp_path / f"noisy{i}.png"
        cv2.imwrite(str(path), np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8))
        images.append(str(path))
    yield name, images
    sys.modules.pop(name, None)


def _explain(name: str, images: list[str], out, *forward: str) -> int:
    argv = ["explain", "--model", f"{name}:build", "--image", *images, "--size", "16", "16", "--method", "gradcam"]
    argv += ["--layer", LAYER, "--target", "area:2,2,10,10", "--out", str(out)]
    return main(argv + (["--forward-arg", *forward] if forward else []))


def test_explain_passes_a_timestep_and_equals_the_library_call(denoiser, tmp_path):
    name, images = denoiser
    assert _explain(name, images, tmp_path / "out", "timestep=10") == 0
    model = sys.modules[name].build()
    x = read_images(images, (16, 16), 3)
    ref = ac.GradCAM(model, LAYER)(x, ac.Area(box=(2, 2, 10, 10)), forward_kwargs={"timestep": 10})
    report = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert report["forward_args"] == ["timestep=10"]
    for b, entry in enumerate(report["images"]):
        raw = np.load(tmp_path / "out" / entry["targets"][0]["raw"])
        assert np.array_equal(raw, ref.raw[b, 0].numpy())  # the same computation (rule 1)
        assert entry["targets"][0]["score"] == float(ref.scores[b, 0])


def test_explain_takes_one_timestep_per_image(denoiser, tmp_path):
    name, images = denoiser
    assert _explain(name, images, tmp_path / "out", "timestep=1,500") == 0
    model = sys.modules[name].build()
    x = read_images(images, (16, 16), 3)
    target = ac.Area(box=(2, 2, 10, 10))
    per_sample = ac.GradCAM(model, LAYER)(x, target, forward_kwargs={"timestep": torch.tensor([1, 500])})
    same = ac.GradCAM(model, LAYER)(x, target, forward_kwargs={"timestep": 1})
    report = json.loads((tmp_path / "out" / "scores.json").read_text())
    raws = [np.load(tmp_path / "out" / entry["targets"][0]["raw"]) for entry in report["images"]]
    for b in range(2):
        assert np.array_equal(raws[b], per_sample.raw[b, 0].numpy())  # the same computation (rule 1)
    assert not np.array_equal(raws[1], same.raw[1, 0].numpy())  # image 1 saw timestep 500, not 1


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        ("timestep", "must be NAME=VALUE"),
        ("timestep=ten", "'ten' is not a number"),
        ("timestep=1,2,3", "has 3 rows for a batch of 2"),
        ("colour=1", "UNet2DModel.forward() does not take these arguments"),
    ],
)
def test_bad_forward_args_are_one_line_errors_and_write_nothing(denoiser, tmp_path, capsys, forward, message):
    name, images = denoiser
    assert _explain(name, images, tmp_path / "out", forward) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_parse_forward_args_values():
    parsed = parse_forward_args(["t=3", "g=7.5", "flag=true", "y=1,7,3", "w=0.5,1,2"], batch=3)
    assert parsed["t"] == 3 and isinstance(parsed["t"], int) and parsed["g"] == 7.5 and parsed["flag"] is True
    assert torch.equal(parsed["y"], torch.tensor([1, 7, 3])) and parsed["y"].dtype == torch.long
    assert torch.equal(parsed["w"], torch.tensor([0.5, 1.0, 2.0]))
    assert parse_forward_args(["y=column:label"], batch=None, columns=True) == {"y": "column:label"}
    for items, message in (
        (["t=1", "t=2"], "given twice"),
        (["t=inf"], "not a finite number"),
        (["y=column:label"], "column values are read from a run's --labels table"),
        (["2t=1"], "Python identifier"),
    ):
        with pytest.raises(InputError, match=message):
            parse_forward_args(items, batch=3)
