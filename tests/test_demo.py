"""``areacam demo --quick``: every figure is a real, non-blank PNG and report.html shows each of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from _demo_run import quick_demo

from areacam._util.pages import CHECK_ID
from areacam.app import demo
from areacam.app.demo.common import Context, Figure
from areacam.app.demo.settings import MODELS
from areacam.viz.images import panel_grid

EXPECTED = [
    "saliency_per_class.png",
    "filters_by_depth.png",
    "first_layer_kernels.png",
    "feature_maps_by_depth.png",
    "gradcam_vs_gradcampp_layers.png",
    "gradcam_vs_gradcampp_architectures.png",
    "area_gradcam_vae.png",
    "area_gradcam_vaegan.png",
    "methods_vae_recon_error.png",
    "anomaly_textures.png",
    "segment_fcn.png",
    "segment_unet.png",
    "segment_errors.png",
    "lime_classifier.png",
    "lime_vae_area.png",
    "explanations_by_epoch.png",
    "tsne_features.png",
    "volume_segmentation.png",
    "signal_anomaly.png",
    "trust_metrics.png",
    "randomisation_classifier.png",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return quick_demo(tmp_path_factory)


def test_quick_demo_succeeds(run):
    out, status, seconds, stdout = run
    assert status == 0
    print(f"areacam demo --quick: {seconds:.1f} s")
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(f"areacam demo: {len(EXPECTED)} figures in ") and "(ok)" in last
    assert last.endswith(str((out / "report.html").resolve()))


def test_expected_figure_list_is_the_stage_list():
    assert demo.expected_figures() == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_figure_is_a_non_blank_png(run, name):
    path = run[0] / "figures" / name
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] >= 100 and img.shape[1] >= 100
    assert float(img.std()) > 20.0  # far from a blank page
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # real pictures, not a few flat colours


def test_report_references_every_figure_once_grouped_by_use_case(run):
    page = (run[0] / "report.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(sources) == sorted(f"figures/{name}" for name in EXPECTED)
    sections = re.findall(r'<section id="(\w+)"><h2>([^<]+)</h2>', page)
    assert [s[0] for s in sections][:3] == ["autoencoder", "segmentation", "classifier"]
    autoencoder = page[page.index('<section id="autoencoder">') : page.index('<section id="segmentation">')]
    assert "figures/area_gradcam_vae.png" in autoencoder and "figures/area_gradcam_vaegan.png" in autoencoder
    assert f'<pre id="{CHECK_ID}">pending</pre>' in page
    assert 'id="skipped"' not in page
    assert len(re.findall(r"<figcaption>[^<]{40,}</figcaption>", page)) == len(EXPECTED)


def test_which_method_to_trust_section(run):
    """The report's last section: the explainer x metric table of four models and the sanity-check strip.

    Its numbers come from models trained in the test run, so the test checks what holds on any kernels:
    the table's structure, that every number shown is finite and in its metric's documented range, and that
    an undefined value (a deletion AUC whose curve cannot be normalised) is shown as undefined.
    """
    page = (run[0] / "report.html").read_text()
    section = page[page.index('<section id="quality">') :]
    section = section[: section.index("</section>")]
    assert "<h2>Which method to trust</h2>" in section
    assert "figures/trust_metrics.png" in section and "figures/randomisation_classifier.png" in section
    table = section[section.index('<table class="trust">') : section.index("</table>")]
    assert table.count('<td rowspan="9">') == 4  # chance + 8 methods per model
    for model in ("shapes classifier", "U-Net (ResNet-18)", "FCN-8s (AlexNet)", "VAE (digits)"):
        assert model in table
    heads = re.findall(r"<th>([^<]+)</th>", table)
    assert heads[:2] == ["model", "method"] and len(heads) == 8
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("</thead>")[1])
    assert len(rows) == 4 * 9
    ranges = {
        "deletion": (-1.0, 2.0),
        "insertion": (-1.0, 2.0),
        "pointing": (0.0, 1.0),
        "relevance": (0.0, 1.0),
        "Spearman,": (-1.0, 1.0),
    }
    limits = [ranges[head.split()[0]] for head in heads[2:]]
    for i, row in enumerate(rows):
        cells = re.findall(r"<td(?: [^>]*)?>(.*?)</td>", row)
        values = [re.sub(r"</?b>", "", c) for c in cells[-len(limits) :]]
        chance = i % 9 == 0
        for value, (low, high) in zip(values, limits):
            if chance and value == "":
                continue  # the chance row has no sanity columns
            assert value == "undefined" or re.fullmatch(r"-?\d+\.\d\d", value), value
            if value != "undefined":
                assert low <= float(value) <= high, (value, low, high)
    caption = re.search(
        r"Sanity check, cascading randomisation \(Adebayo et al\. 2018\): with only the top stage "
        r"re-initialised, [^<]*; with every stage re-initialised, Grad-CAM (-?\d\.\d\d|undefined)",
        section,
    )
    assert caption, "the caption states which methods pass the sanity check"
    strip = re.search(
        r"Grad-CAM at (\S+) keeps Spearman (-?\d\.\d\d) to its trained map once the dense head is "
        r"random and (-?\d\.\d\d)",
        section,
    )
    assert strip and -1 <= float(strip.group(2)) <= 1 and -1 <= float(strip.group(3)) <= 1


def test_the_trust_table_shows_undefined_values_as_undefined():
    """The exploding case of the quick demo (a U-Net region sum that perturbation hardly changes in total):
    an undefined mean is written "undefined", never as a number, in the HTML and Markdown tables."""
    from areacam.app.demo.cases import Case, Row
    from areacam.app.demo.trust_tables import html_table, markdown_table, which_method

    case = Case("unet", "U-Net", "Segment", "decoder", [], [])
    rows = [
        Row("unet", "chance", {"deletion": None, "insertion": 0.4, "pointing_game": 0.1, "relevance_mass": 0.1}),
        Row(
            "unet",
            "Grad-CAM",
            {
                "deletion": None,
                "insertion": 0.5,
                "pointing_game": 0.9,
                "relevance_mass": 0.6,
                "spearman_top": 0.1,
                "spearman_all": None,
            },
        ),
    ]
    html_text, markdown = html_table([(case, rows)]), markdown_table([(case, rows)])
    assert html_text.count("<td>undefined</td>") == 3 and markdown.count("| undefined |") == 3
    assert "nan" not in html_text.lower() and "nan" not in markdown.lower()
    said = " ".join(which_method([(case, rows)]))
    assert "deletion AUC is undefined for every method" in said and "Grad-CAM undefined" in said


def test_captions_state_measured_numbers(run):
    page = (run[0] / "report.html").read_text()
    vae = re.search(
        r"Share of each map&#x27;s mass inside its box, rows 1-4: Grad-CAM (\d+)%, (\d+)%, (\d+)%, (\d+)%", page
    )
    assert vae, "the VAE caption states the measured mass inside each box"
    assert "a map spread at random would put 16%, 14%, 16%, 28% there" in page  # the boxes' shares of 32x32
    assert re.search(r"Grad-CAM&#x27;s maximum lies on the shape for: block2 \d+%.*block5 \d+%", page)
    assert len(re.findall(r"its map&#x27;s maximum lies on the shape for \d+% of \d+ held-out images", page)) == 2


def test_checkpoints_per_epoch_and_reuse(run):
    out = run[0]
    for key, spec in MODELS.items():
        folder = out / "checkpoints" / f"{key}-quick"
        epochs = spec.quick["epochs"]
        assert sorted(p.name for p in folder.glob("epoch_*.pt")) == [f"epoch_{e:03d}.pt" for e in range(1, epochs + 1)]
        assert len(json.loads((folder / "metrics.json").read_text())["history"]) == epochs
    ctx = Context(out=out, quick=True, progress=False)
    stamp = (out / "checkpoints" / "vae-quick" / "epoch_004.pt").stat().st_mtime_ns
    model = ctx.model("vae")
    assert ctx.log == [f"reused checkpoints of vae from {out / 'checkpoints' / 'vae-quick'}"]
    assert (out / "checkpoints" / "vae-quick" / "epoch_004.pt").stat().st_mtime_ns == stamp
    assert not model.training and [e for e, _ in ctx.epochs("vae")] == [1, 2, 3, 4]


def _fake_stage(ctx: Context) -> list[Figure]:
    rng = np.random.default_rng(0)
    panel_grid([[rng.random((8, 8))]], path=ctx.path("fake.png"))
    return [Figure("fake.png", "classifier", "Fake", "A fake figure used to test the stage plumbing.")]


def _skipping_stage(ctx: Context) -> list[Figure]:
    raise ImportError("ac.Nothing needs the optional package 'nothing': pip install 'areacam[nothing]'")


def _failing_stage(ctx: Context) -> list[Figure]:
    raise ValueError("boom\nsecond line")


def test_missing_and_failing_stages_degrade_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        demo,
        "STAGES",
        [
            demo.Stage("fake", (_fake_stage,), ("fake.png",)),
            demo.Stage("needs nothing", (_skipping_stage,), ()),
            demo.Stage("breaks", (_failing_stage, _fake_stage), ()),
        ],
    )
    assert demo.run_demo(tmp_path, quick=True, progress=False) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "areacam demo: stage 'needs nothing' skipped: ac.Nothing needs the optional package 'nothing': pip install "
        "'areacam[nothing]'",
        "areacam demo: stage 'breaks' failed: ValueError: boom second line",
    ]
    assert "1 figures" in captured.out and "with problems in needs nothing, breaks" in captured.out
    page = (tmp_path / "report.html").read_text()
    assert re.findall(r'<img src="([^"]+)"', page) == ["figures/fake.png"]
    assert "needs nothing: skipped: ac.Nothing needs the optional package &#x27;nothing&#x27;" in page


def test_report_html_escapes_text(tmp_path):
    from areacam.app.demo.report import write_report

    path = write_report(tmp_path, [Figure("a.png", "segmentation", "<b>x</b>", "1 < 2 & 3")], ["ok"], {})
    page = path.read_text()
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "1 &lt; 2 &amp; 3" in page and "<b>x</b>" not in page


def test_demo_help_example(capsys):
    from areacam.app.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "areacam demo --out demo_out --quick" in capsys.readouterr().out


def test_guides_run_as_written(tmp_path, monkeypatch):
    """Every python block of each docs/guide-*.md runs, in order, in a fresh folder."""
    guides = sorted((Path(__file__).resolve().parents[1] / "docs").glob("guide-*.md"))
    assert [g.name for g in guides] == [
        "guide-autoencoder.md",
        "guide-classifier.md",
        "guide-datasets.md",
        "guide-detection.md",
        "guide-generative.md",
        "guide-medical.md",
        "guide-segmentation.md",
        "guide-training.md",
        "guide-transformers.md",
        "guide-volumes-signals.md",
    ]
    for guide in guides:
        folder = tmp_path / guide.stem
        folder.mkdir()
        monkeypatch.chdir(folder)
        blocks = re.findall(r"```python\n(.*?)```", guide.read_text(), re.S)
        assert len(blocks) >= 2, guide.name
        namespace: dict = {"__name__": f"guide_{guide.stem}"}
        for block in blocks:
            exec(compile(block, f"{guide.name}", "exec"), namespace)
        assert list(folder.glob("*.png")), f"{guide.name} wrote no figure"


def test_readme_quickstart_runs(tmp_path, monkeypatch):
    """The README's python quickstart runs as written and draws its figure."""
    monkeypatch.chdir(tmp_path)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README.md has no python quickstart"
    namespace: dict = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["expl"].maps.shape == (4, 2, 32, 32)
    assert namespace["guided"].raw.shape == (4, 1, 1, 32, 32)
    assert (tmp_path / "classifier.png").stat().st_size > 0
