"""The volume explorer: its data and, in headless Chromium, a box dragged in any of the three slice views give
the library's map of that 3-D box (within the float16 coding bound); its size is bounded and stated.

The browser tests skip where no Chromium is installed (``make browser`` installs Debian's package).
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _numerics import assert_close, float16_allowed

import areacam as ac
from areacam.app.cli import main
from areacam.data import volumes
from areacam.inspect import volume_explorer
from areacam.inspect.volume_explorer import VOLUME_PAGE_LIMIT, page_bytes, volume_data
from areacam.models import create

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_report", ROOT / "scripts" / "check_report.py")
check_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_report)
CHROMIUM = check_report.find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make browser installs it)")

SIDE = 32
LAYER = "dec1"  # C = 8 at full resolution: the layer the size statement of docs/fields.md names


@pytest.fixture(scope="module")
def unet3d():
    torch.manual_seed(0)
    model = create("unet3d", num_classes=3).eval()
    x, _, _ = volumes(1, size=SIDE, random_state=3)
    return model, x


@pytest.fixture(scope="module")
def field(unet3d):
    model, x = unet3d
    return ac.GradCAM(model, LAYER).field(x)


@pytest.fixture(scope="module")
def page(unet3d, tmp_path_factory):
    model, x = unet3d
    path = tmp_path_factory.mktemp("volume") / "unet3d.html"
    text = ac.explorer(model, x, LAYER, path=path, show="argmax", class_names=["background", "sphere", "cube"])
    return path, text


def library_map(model, x, box, channel):
    return ac.GradCAM(model, LAYER, mode="backward")(x, ac.Area(box=box, channel=channel)).maps[0, 0]


def _decode(text: str, scales: list[float]) -> torch.Tensor:
    values = np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float64)
    return torch.from_numpy(values.reshape(len(scales), -1) * np.asarray(scales)[:, None])


def test_page_data_reproduces_the_library_map(unet3d, field):
    """The page's float16 field and activations, reduced as its script does, give the library's 3-D box map."""
    model, x = unet3d
    data = volume_data(field, show="argmax")
    c, co = data["channels"], data["outChannels"]
    assert (c, co, data["shape"], data["actShape"], data["inShape"]) == (8, 3, [SIDE] * 3, [SIDE] * 3, [SIDE] * 3)
    values = _decode(data["field"], data["fieldScales"]).view(c, co, SIDE, SIDE, SIDE)
    acts = _decode(data["acts"], data["actScales"]).view(c, SIDE, SIDE, SIDE)
    box, channel = (4, 3, 5, 19, 20, 17), 1
    weights = values[:, channel, box[0] : box[3], box[1] : box[4], box[2] : box[5]].sum(dim=(1, 2, 3))
    raw = torch.relu(torch.einsum("c,cdhw->dhw", weights, acts))[None, None]
    got = (raw - raw.min()) / (raw.max() - raw.min())
    assert_close(got[0, 0], library_map(model, x, box, channel), float16_allowed(field, box, channel), "page data map")
    labels = np.frombuffer(base64.b64decode(data["output"]), dtype=np.uint8).reshape(SIDE, SIDE, SIDE)
    assert np.array_equal(labels, field.output[0].argmax(dim=0).numpy())
    assert data["palette"][1] == [230, 60, 60]


def test_page_size_is_bounded_and_stated(page):
    """The 32^3 page is the size docs/fields.md states; the estimate the refusal uses bounds the real size."""
    _, text = page
    estimate = page_bytes(8, 3, (SIDE,) * 3, (SIDE,) * 3)
    assert len(text) <= estimate < len(text) + volume_explorer._TEMPLATE_BYTES
    assert 2.8e6 < len(text) < 3.0e6  # "2.9 MB"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text and "<script src" not in text and "@import" not in text


def test_too_large_a_page_is_refused_before_the_field(unet3d, tmp_path, monkeypatch):
    model, x = unet3d

    def no_field(*args, **kwargs):
        raise AssertionError("the field was computed for a page that is refused")

    monkeypatch.setattr(volume_explorer.GradCAM, "field", no_field)
    path = tmp_path / "big.html"
    with pytest.raises(ValueError, match=r"would be 2\.9 MB \(8 layer channels x 3 output channels x 32x32x32"):
        ac.explorer(model, x, LAYER, path=path, show="argmax", max_page_bytes=1_000_000)
    assert not path.exists()
    big = torch.zeros(1, 1, 96, 96, 96)  # 96^3 at dec1: 78 MB
    with pytest.raises(ValueError, match=r"would be 7\d\.\d MB .* over the limit of 64\.0 MB"):
        ac.explorer(model, big, LAYER, show="argmax")
    assert VOLUME_PAGE_LIMIT == 64_000_000


def test_bad_input(unet3d):
    model, x = unet3d
    with pytest.raises(ValueError, match="one image or volume"):
        ac.explorer(model, x.expand(2, -1, -1, -1, -1), LAYER)
    two = create("unet3d", num_classes=2).eval()
    with pytest.raises(ValueError, match="show='image' needs a \\(B, 1 or 3, D, H, W\\) output, got \\(1, 2, 32"):
        ac.explorer(two, x, LAYER, show="image")
    with pytest.raises(ValueError, match="class_names has 2 names for an output of 3 channels"):
        ac.explorer(model, x, LAYER, show="argmax", class_names=["a", "b"])
    with pytest.raises(ValueError, match="max_page_bytes must be a positive int"):
        ac.explorer(model, x, LAYER, max_page_bytes=0)
    image_model = create("unet", num_classes=3).eval()
    with pytest.raises(ValueError, match="whose convolutions are 2-D"):
        ac.explorer(image_model, torch.rand(1, 3, 16, 16, 16), "decoder.blocks.3")  # a 2-D model, a volume


def _drag(page: Path, fragment: str) -> dict:
    dom = check_report._run(
        CHROMIUM, ["--virtual-time-budget=10000", "--dump-dom"], page.resolve().as_uri() + fragment, 120.0
    )
    match = check_report.CHECK.search(dom.stdout)
    assert match is not None and "data-done" in match.group(1), "the page's load handler did not run"
    console = [line for line in dom.stderr.splitlines() if check_report.CONSOLE.search(line)]
    assert console == []
    verdict = json.loads(html.unescape(match.group(2)))
    assert verdict["errors"] == []
    return verdict


# (view, slice, slab half-thickness k, rectangle in the view's rows and columns, class) -> the 3-D box.
DRAGS = [
    ((0, 12, 2, (3, 5, 20, 17), 1), (10, 3, 5, 15, 20, 17)),  # axial: rows y, columns x; slab z 10..14
    ((1, 1, 3, (6, 2, 25, 30), 2), (6, 0, 2, 25, 5, 30)),  # coronal: rows z, columns x; slab y 0..4 (clipped)
    ((2, 20, 0, (9, 14, 10, 15), -1), (9, 14, 20, 10, 15, 21)),  # sagittal: one voxel (rows z, columns y)
]


@needs_chromium
@pytest.mark.parametrize(("drag", "box"), DRAGS, ids=["axial-slab", "coronal-clipped", "sagittal-voxel"])
def test_dragged_box_in_chromium_gives_the_library_map(unet3d, field, page, drag, box):
    model, x = unet3d
    view, slice_, slab, rect, channel = drag
    fragment = "#view={}&slice={}&slab={}&drag={},{},{},{}&class={}".format(view, slice_, slab, *rect, channel)
    verdict = _drag(page[0], fragment)
    assert verdict["box"] == list(box) and verdict["outChannel"] == channel and not verdict["degenerate"]
    target = None if channel < 0 else channel
    expected_call = "ac.Pixel(9, 14, 20)" if box[3] - box[0] == 1 else f"ac.Area(box={box}, channel={channel})"
    assert verdict["call"] == expected_call
    got = torch.tensor(verdict["map"]).view(SIDE, SIDE, SIDE)
    assert_close(got, library_map(model, x, box, target), float16_allowed(field, box, target), "in-page map")


def test_trilinear_upsampling_of_a_coarse_layer(unet3d, tmp_path):
    """At the bottleneck (8^3 for 32^3) the page's separable linear resize is torch's trilinear one."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make browser installs it)")
    model, x = unet3d
    path = tmp_path / "bottleneck.html"
    ac.explorer(model, x, "bottleneck", path=path, show="argmax")
    verdict = _drag(path, "#view=0&slice=16&slab=4&drag=2,3,30,29&class=2")
    box = (12, 2, 3, 21, 30, 29)
    assert verdict["box"] == list(box)
    got = torch.tensor(verdict["map"]).view(SIDE, SIDE, SIDE)
    expected = ac.GradCAM(model, "bottleneck", mode="backward")(x, ac.Area(box=box, channel=2)).maps[0, 0]
    field = ac.GradCAM(model, "bottleneck").field(x)
    assert_close(got, expected, float16_allowed(field, box, 2), "in-page map (trilinear)")


def test_command_line(unet3d, tmp_path, capsys):
    model, x = unet3d
    weights = tmp_path / "unet3d.pt"
    torch.save(model.state_dict(), weights)
    volume = tmp_path / "scan.npy"
    np.save(volume, x[0, 0].numpy())  # (D, H, W)
    out = tmp_path / "v.html"
    args = ["explore", "--model", "unet3d", "--weights", str(weights), "--layer", LAYER]
    assert main([*args, "--volume", str(volume), "--out", str(out)]) == 0
    assert "areacam explore: wrote" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "areacam volume explorer: UNet3D at dec1" in text
    np.save(tmp_path / "two.npy", np.zeros((2, 8, 8, 8), dtype=np.float32))
    assert main([*args, "--volume", str(tmp_path / "two.npy"), "--out", str(tmp_path / "x.html")]) == 2
    assert "has 2 channels" in capsys.readouterr().err
    assert main([*args, "--volume", str(volume), "--size", "8", "8", "--out", str(tmp_path / "x.html")]) == 2
    assert "--size resizes images" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
