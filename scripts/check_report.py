"""Open the demo's report.html in headless Chromium: every image loads, no console errors, a screenshot.

Usage::

    python scripts/check_report.py [demo_out/report.html] [--screenshot PATH] [--chromium BIN]

No Python dependency: Chromium's ``--dump-dom`` prints the DOM after the page's inline script has written
its verdict (images loaded with ``naturalWidth > 0``, errors and ``console.error`` calls seen) into
``<pre id="areacam-check">``; console messages Chromium logs to stderr are scanned too; ``--screenshot``
writes a PNG. Exit status: 0 ok, 1 check failed, 2 Chromium or the report missing.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--allow-file-access-from-files",
)
CHECK = re.compile(r'<pre id="areacam-check"([^>]*)>(.*?)</pre>', re.S)
CONSOLE = re.compile(r"(CONSOLE\(\d+\)|Uncaught|console\.error|ERR_FILE_NOT_FOUND|Failed to load resource)", re.I)


def find_chromium(explicit: str | None = None) -> str | None:
    """Path of a Chromium/Chrome binary, or ``None``."""
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(chromium: str, extra: list[str], url: str, timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="areacam-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def check_report(report: Path, screenshot: Path, chromium: str, timeout: float = 120.0) -> dict:
    """Load ``report`` twice (DOM dump, screenshot); return the verdict with ``ok`` and ``problems``."""
    url = report.resolve().as_uri()
    dom = _run(
        chromium, ["--virtual-time-budget=10000", "--run-all-compositor-stages-before-draw", "--dump-dom"], url, timeout
    )
    problems: list[str] = []
    match = CHECK.search(dom.stdout)
    verdict: dict = {}
    if dom.returncode != 0:
        problems.append(f"chromium --dump-dom exited with {dom.returncode}")
    if match is None:
        problems.append("the page's check element <pre id='areacam-check'> is missing from the DOM")
    elif "data-done" not in match.group(1):
        problems.append("the page's load handler never ran (the page did not finish loading)")
    else:
        verdict = json.loads(html.unescape(match.group(2)))
        if verdict["images"] == 0:
            problems.append("the report has no images")
        if verdict["broken"]:
            problems.append(f"{len(verdict['broken'])} images did not load: {verdict['broken']}")
        if verdict["errors"]:
            problems.append(f"page errors: {verdict['errors']}")
    console = [line.strip() for line in dom.stderr.splitlines() if CONSOLE.search(line)]
    if console:
        problems.append(f"console errors: {console[:5]}")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    if screenshot.exists():
        screenshot.unlink()
    shot = _run(
        chromium,
        [
            "--hide-scrollbars",
            "--window-size=1280,4000",
            "--virtual-time-budget=10000",
            f"--screenshot={screenshot.resolve()}",
        ],
        url,
        timeout,
    )
    if not screenshot.is_file() or screenshot.stat().st_size == 0:
        problems.append(f"no screenshot written (chromium exited with {shot.returncode})")
    return {**verdict, "screenshot": str(screenshot), "problems": problems, "ok": not problems}


def main(argv: list[str] | None = None) -> int:
    """Command line; prints one summary line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", nargs="?", default="demo_out/report.html", help="report.html to open")
    parser.add_argument("--screenshot", help="PNG to write (default: next to the report, report.png)")
    parser.add_argument("--chromium", help="browser binary (default: chromium on PATH)")
    args = parser.parse_args(argv)
    report = Path(args.report)
    if not report.is_file():
        print(f"check_report: no report at {report}; run 'areacam demo --out {report.parent}' first", file=sys.stderr)
        return 2
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print(
            "check_report: chromium not found; install it with 'apt-get install -y chromium chromium-driver' "
            "or run 'make report-check'",
            file=sys.stderr,
        )
        return 2
    screenshot = Path(args.screenshot) if args.screenshot else report.with_name("report.png")
    result = check_report(report, screenshot, chromium)
    if result["ok"]:
        print(
            f"check_report: ok: {result['loaded']}/{result['images']} images loaded, no console errors; "
            f"screenshot {screenshot}"
        )
        return 0
    print("check_report: FAILED: " + "; ".join(result["problems"]), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
