"""``--forward-arg NAME=VALUE`` on the command line: a diffusers denoiser ``UNet2DModel(x, timestep)``."""

from __future__ import annotations

import importlib
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


def _run(name: str, data, out, *extra: str) -> int:
    argv = ["run", "--model", f"{name}:build", "--data", str(data), "--size", "16", "16", "--method", "gradcam"]
    argv += ["--layer", LAYER, "--target", "area:2,2,10,10", "--out", str(out), "--batch-size", "2"]
    return main([*argv, "--chunk-size", "2", "--workers", "0", "--no-progress", *extra])


@pytest.fixture
def noisy_folder(denoiser, tmp_path):
    """Four noisy images and a --labels table with a per-image timestep column ``t``."""
    name, _ = denoiser
    folder = tmp_path / "noisy"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"n{i}.png"), np.random.default_rng(10 + i).integers(0, 255, (16, 16, 3), np.uint8))
    table = tmp_path / "labels.csv"
    table.write_text("id,label,t\nn0.png,0,1\nn1.png,0,500\nn2.png,0,7\nn3.png,0,900\n")
    return name, folder, table


def test_run_reads_a_per_sample_timestep_from_the_labels_table(noisy_folder, tmp_path):
    """``--forward-arg timestep=column:t``: each batch of the run gets its samples' ``t`` as a ``(B,)`` tensor."""
    pytest.importorskip("zarr")
    from areacam.runs import open_run

    name, folder, table = noisy_folder
    assert _run(name, folder, tmp_path / "run", "--labels", str(table), "--forward-arg", "timestep=column:t") == 0
    store = open_run(tmp_path / "run")
    model = sys.modules[name].build()
    x = read_images([str(folder / f"n{i}.png") for i in range(4)], (16, 16), 3)
    target = ac.Area(box=(2, 2, 10, 10))
    timesteps = torch.tensor([1, 500, 7, 900])
    for rows in (slice(0, 2), slice(2, 4)):  # the run's two batches: the same computation (rule 1)
        ref = ac.GradCAM(model, LAYER)(x[rows], target, forward_kwargs={"timestep": timesteps[rows]})
        assert np.array_equal(np.asarray(store.maps[rows]), ref.maps.numpy())
        assert np.array_equal(store.table["score_0"].to_numpy()[rows], ref.scores[:, 0].numpy())
    one = ac.GradCAM(model, LAYER)(x[2:4], target, forward_kwargs={"timestep": 1})
    assert not np.array_equal(np.asarray(store.maps[3]), one.maps[1].numpy())  # sample 3 saw 900, not 1
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["forward_args"] == {"timestep": "column:t"}


def test_run_passes_a_constant_and_refuses_another_on_resume(noisy_folder, tmp_path, capsys):
    pytest.importorskip("zarr")
    from areacam.runs import open_run

    name, folder, _ = noisy_folder
    assert _run(name, folder, tmp_path / "run", "--forward-arg", "timestep=10") == 0
    model = sys.modules[name].build()
    x = read_images([str(folder / f"n{i}.png") for i in range(2)], (16, 16), 3)
    ref = ac.GradCAM(model, LAYER)(x, ac.Area(box=(2, 2, 10, 10)), forward_kwargs={"timestep": 10})
    assert np.array_equal(np.asarray(open_run(tmp_path / "run").maps[0:2]), ref.maps.numpy())
    capsys.readouterr()
    assert _run(name, folder, tmp_path / "run", "--forward-arg", "timestep=11") == 2
    assert "forward_args" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("forward", "labels", "message"),
    [
        ("timestep=column:t", False, "reads a column of the --labels table; give --labels"),
        ("timestep=column:step", True, "has no column 'step'"),
        ("timestep=1,2", True, "this command takes one value"),
        ("colour=1", True, "UNet2DModel.forward() does not take these arguments"),
    ],
)
def test_bad_run_forward_args_are_one_line_errors_and_write_nothing(
    noisy_folder, tmp_path, capsys, forward, labels, message
):
    pytest.importorskip("zarr")
    name, folder, table = noisy_folder
    extra = ["--labels", str(table)] if labels else []
    assert _run(name, folder, tmp_path / "run", *extra, "--forward-arg", forward) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_run_refuses_a_tensor_it_cannot_place_and_takes_it_shared(noisy_folder, tmp_path):
    pytest.importorskip("zarr")
    from areacam.app.run import run

    name, folder, _ = noisy_folder
    model = importlib.import_module(name).build()
    common = dict(data=str(folder), method="gradcam", target="area:2,2,10,10", layer=LAYER, size=(16, 16), workers=0)
    with pytest.raises(InputError, match=r"tensor of shape \(2,\).*ac.Shared"):
        run(model, out=tmp_path / "a", forward_kwargs={"timestep": torch.tensor([1, 2])}, **common)
    assert not (tmp_path / "a").exists()
    shared = run(model, out=tmp_path / "b", forward_kwargs={"timestep": ac.Shared(torch.tensor(10))}, **common)
    plain = run(model, out=tmp_path / "c", forward_kwargs={"timestep": 10}, **common)
    assert shared["explained"] == plain["explained"] == 4


def test_explore_passes_a_timestep_and_equals_the_library_page(denoiser, tmp_path, capsys):
    name, images = denoiser
    argv = ["explore", "--model", f"{name}:build", "--image", images[0], "--size", "16", "16", "--layer", LAYER]
    assert main([*argv, "--show", "image", "--forward-arg", "timestep=10", "--out", str(tmp_path / "e.html")]) == 0
    model = sys.modules[name].build()
    x = read_images(images[:1], (16, 16), 3)
    page = ac.explorer(model, x, LAYER, show="image", forward_kwargs={"timestep": 10})
    assert (tmp_path / "e.html").read_text(encoding="utf-8") == page
    assert page != ac.explorer(model, x, LAYER, show="image", forward_kwargs={"timestep": 900})
    capsys.readouterr()
    assert main([*argv, "--forward-arg", "colour=1", "--out", str(tmp_path / "f.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not take these arguments" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "f.html").exists()


def test_input_channels_reads_configs_without_deprecated_attributes():
    """diffusers warns on ``model.in_channels`` (a config entry read off the model); the config says it."""
    import warnings

    import diffusers
    from transformers import ViTConfig, ViTModel

    from areacam.app.loading import input_channels

    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8,),
        down_block_types=("DownBlock2D",), up_block_types=("UpBlock2D",), norm_num_groups=4,
    )  # fmt: skip
    vit = ViTModel(ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                             image_size=8, patch_size=4, num_channels=2))  # fmt: skip
    volume = torch.nn.Sequential(torch.nn.Conv3d(5, 4, 3), torch.nn.ReLU())
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert (input_channels(unet), input_channels(vit), input_channels(volume)) == (1, 2, 5)
