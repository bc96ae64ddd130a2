"""report.html in a real headless Chromium: images load, no console errors, a screenshot is written.

Skipped when no Chromium is installed (``make report-check`` installs Debian's package).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from areacam.app.demo.common import Figure
from areacam.app.demo.report import write_report
from areacam.viz.images import panel_grid

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_report", ROOT / "scripts" / "check_report.py")
check_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_report)

CHROMIUM = check_report.find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make report-check installs it)")


def _report(folder: Path, missing: bool = False) -> Path:
    rng = np.random.default_rng(0)
    figures = []
    for i, group in enumerate(["autoencoder", "segmentation", "classifier"]):
        file = f"fig{i}.png"
        panel_grid([[rng.random((16, 16)), rng.random((16, 16, 3))]], path=folder / "figures" / file)
        figures.append(Figure(file, group, f"Figure {i}", "A caption long enough to read."))
    if missing:
        figures.append(Figure("not_there.png", "classifier", "Missing", "This image does not exist."))
    return write_report(folder, figures, ["test"], {})


def test_report_loads_in_chromium(tmp_path):
    report = _report(tmp_path)
    result = check_report.check_report(report, tmp_path / "shot.png", CHROMIUM)
    assert result["problems"] == []
    assert (result["images"], result["loaded"], result["broken"], result["errors"]) == (3, 3, [], [])
    shot = cv2.imread(str(tmp_path / "shot.png"))
    assert shot is not None and shot.shape[1] == 1280 and float(shot.std()) > 5


def test_broken_image_is_caught(tmp_path):
    report = _report(tmp_path, missing=True)
    result = check_report.check_report(report, tmp_path / "shot.png", CHROMIUM)
    assert not result["ok"]
    assert result["broken"] == ["figures/not_there.png"]
    assert any("1 images did not load" in p for p in result["problems"])


def test_script_error_is_caught(tmp_path):
    report = _report(tmp_path)
    page = report.read_text().replace("</body>", "<script>console.error('bad thing'); undefinedCall();</script></body>")
    report.write_text(page)
    result = check_report.check_report(report, tmp_path / "shot.png", CHROMIUM)
    assert not result["ok"]
    assert "bad thing" in result["errors"]
    assert any("undefinedCall" in e for e in result["errors"])


def test_quick_demo_report_in_chromium(tmp_path_factory):
    """The real report of ``areacam demo --quick`` (shared run with test_demo.py)."""
    from _demo_run import quick_demo

    from areacam.app import demo

    out, status, _, _ = quick_demo(tmp_path_factory)
    assert status == 0
    result = check_report.check_report(out / "report.html", out / "report.png", CHROMIUM)
    assert result["problems"] == []
    assert result["images"] == result["loaded"] == len(demo.expected_figures())
    assert (out / "report.png").stat().st_size > 10_000


def test_command_line(tmp_path, capsys):
    report = _report(tmp_path)
    assert check_report.main([str(report), "--screenshot", str(tmp_path / "s.png")]) == 0
    assert capsys.readouterr().out.startswith("check_report: ok: 3/3 images loaded, no console errors")
    assert check_report.main([str(tmp_path / "nope.html")]) == 2
