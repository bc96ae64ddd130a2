"""The region explorer: its data reproduces the library's maps, and in headless Chromium a dragged box does too.

The browser tests skip where no Chromium is installed (``make report-check`` installs Debian's package).
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _numerics import float16_allowed as field16_allowed
from torch import nn

import areacam as ac
from areacam._util.pages import CHECK_ID
from areacam.app.cli import main
from areacam.inspect.explorer import explorer, explorer_data
from areacam.models import create

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_report", ROOT / "scripts" / "check_report.py")
check_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_report)
CHROMIUM = check_report.find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (make report-check installs it)"
)


def float16_allowed(model, x, layer: str, box, channel) -> float:
    """The page's float16 bound (:func:`_numerics.float16_allowed`) for ``Area(box, channel)`` at ``layer``."""
    return field16_allowed(ac.GradCAM(model, layer).field(x), box, channel)


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return create("unet", num_classes=3).eval(), torch.rand(1, 3, 32, 32)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(1)
    return create("vae").eval(), torch.rand(1, 1, 32, 32)


def library_map(model, x, layer, box, channel):
    return ac.GradCAM(model, layer, mode="backward")(x, ac.Area(box=box, channel=channel)).maps[0, 0]


def _decode(text: str, scales: list[float]) -> torch.Tensor:
    values = np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float64)
    return torch.from_numpy(values.reshape(len(scales), -1) * np.asarray(scales)[:, None])


def test_page_data_reproduces_the_library_map(unet):
    """The page's float16 field and activations, reduced as the page's script does, give the library's map."""
    model, x = unet
    field = ac.GradCAM(model, "decoder.blocks.3").field(x)
    data = explorer_data(field, show="argmax")
    c, co, hh, ww = data["channels"], data["outChannels"], data["height"], data["width"]
    values = _decode(data["field"], data["fieldScales"]).view(c, co, hh, ww)
    acts = _decode(data["acts"], data["actScales"]).view(c, data["actHeight"], data["actWidth"])
    box, channel = (3, 5, 20, 17), 1
    weights = values[:, channel, box[0] : box[2], box[1] : box[3]].sum(dim=(1, 2))
    raw = torch.relu(torch.einsum("c,chw->hw", weights, acts))[None, None]
    up = F.interpolate(raw, size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
    got = (up - up.min()) / (up.max() - up.min())
    allowed = float16_allowed(model, x, "decoder.blocks.3", box, channel)
    assert float((got - library_map(model, x, "decoder.blocks.3", box, channel).double()).abs().max()) <= allowed
    assert data["reading"].startswith("decoder.blocks.3: activations (C=32")


def test_page_is_self_contained(unet, tmp_path):
    model, x = unet
    page = explorer(
        model, x, "decoder.blocks.3", path=tmp_path / "e.html", show="argmax", class_names=["background", "a", "b"]
    )
    assert (tmp_path / "e.html").read_text(encoding="utf-8") == page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "<script src" not in page and "@import" not in page
    # an empty src resolves to the page itself; Chromium may fire its load error before the script sets it
    assert not re.search(r"""(src|href)\s*=\s*(""|'')""", page)
    assert f'<pre id="{CHECK_ID}">pending</pre>' in page


def test_bad_input(unet, vae):
    model, x = unet
    with pytest.raises(ValueError, match="one image"):
        explorer(model, x.expand(2, -1, -1, -1), "decoder.blocks.3")
    with pytest.raises(ValueError, match="reconstruction or a segmentation"):
        explorer(model, x, "decoder.blocks.3")  # a 3-class output of a 3-channel input: ambiguous
    with pytest.raises(ValueError, match="class_names has 2 names"):
        explorer(model, x, "decoder.blocks.3", show="argmax", class_names=["a", "b"])
    with pytest.raises(ValueError, match="show must be"):
        explorer(model, x, "decoder.blocks.3", show="heatmap")
    vae_model, vae_x = vae
    with pytest.raises(ValueError, match="dense"):
        explorer(vae_model, vae_x, "encoder.relu3", output=1)  # mu: (B, D)


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


@needs_chromium
def test_dragged_box_in_chromium_gives_the_library_map(unet, vae, tmp_path):
    model, x = unet
    page = tmp_path / "unet.html"
    explorer(model, x, "decoder.blocks.3", path=page, show="argmax")
    for box, channel in (((3, 5, 20, 17), 1), ((30, 2, 31, 3), 2)):  # a dragged box; a one-pixel drag
        verdict = _drag(page, "#drag={},{},{},{}&class={}".format(*box, channel))
        assert verdict["box"] == list(box) and verdict["outChannel"] == channel
        got = torch.tensor(verdict["map"]).view(32, 32)
        allowed = float16_allowed(model, x, "decoder.blocks.3", box, channel)
        assert float((got - library_map(model, x, "decoder.blocks.3", box, channel)).abs().max()) <= allowed
    vae_model, vae_x = vae
    page = tmp_path / "vae.html"
    explorer(vae_model, vae_x, "encoder.relu2", path=page, show="image")
    verdict = _drag(page, "#drag=4,8,14,24")
    got = torch.tensor(verdict["map"]).view(32, 32)
    allowed = float16_allowed(vae_model, vae_x, "encoder.relu2", (4, 8, 14, 24), None)
    assert float((got - library_map(vae_model, vae_x, "encoder.relu2", (4, 8, 14, 24), None)).abs().max()) <= allowed


def test_command_line(tmp_path, capsys):
    image = tmp_path / "digit.png"
    cv2.imwrite(str(image), (np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8))
    out = tmp_path / "vae.html"
    args = ["explore", "--model", "vae", "--image", str(image), "--layer", "encoder.relu2", "--show", "image"]
    assert main([*args, "--out", str(out)]) == 0
    assert "areacam explore: wrote" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert (
        main(
            [
                "explore",
                "--model",
                "vae",
                "--image",
                str(image),
                "--layer",
                "encoder.nope",
                "--out",
                str(tmp_path / "x.html"),
            ]
        )
        == 2
    )
    assert "no layer named 'encoder.nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_demo_report_links_the_explorers(tmp_path_factory):
    """The quick demo (shared run with test_demo.py) writes and links a U-Net and a VAE explorer."""
    from _demo_run import quick_demo

    out, _, _, _ = quick_demo(tmp_path_factory)  # its exit status is test_demo.py's concern
    page = (out / "report.html").read_text()
    links = re.findall(r'<a href="(explorers/[^"]+)">', page)
    assert links == ["explorers/vae.html", "explorers/unet.html"]
    for link in links:
        text = (out / link).read_text(encoding="utf-8")
        assert "var DATA = {" in text and len(text) < 8_000_000


@pytest.mark.parametrize("dims", [2, 3], ids=["image", "volume"])
def test_explorer_hands_forward_arguments_to_the_model(dims):
    """The page of a model given forward_kwargs equals the page of the same model with them built in."""
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    offset = (-1,) + (1,) * (dims + 1)

    class Conditioned(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv1 = conv(3, 4, 3, padding=1)
            self.conv2 = conv(4, 2, 3, padding=1)

        def forward(self, x, t=None):
            # an offset before the ReLU: a scale would only scale the map, which the page normalises away
            return self.conv2(torch.relu(self.conv1(x) - t.reshape(offset)))

    class Baked(Conditioned):
        def forward(self, x, t=None):
            return super().forward(x, torch.full((x.shape[0],), 0.1))

    x = torch.rand(1, 3, *(16 if dims == 2 else 8,) * dims, generator=torch.Generator().manual_seed(1))
    given = ac.explorer(Conditioned(), x, "conv1", title="t", forward_kwargs={"t": torch.tensor([0.1])})
    baked = ac.explorer(Baked(), x, "conv1", title="t")
    assert given == baked
    assert given != ac.explorer(Conditioned(), x, "conv1", title="t", forward_kwargs={"t": torch.tensor([0.3])})
    refused = r"Conditioned.forward\(\) does not take these arguments: .*unexpected keyword argument 's'"
    with pytest.raises(TypeError, match=refused):
        ac.explorer(Conditioned(), x, "conv1", forward_kwargs={"s": torch.tensor([0.1])})
