"""``areacam run``: the store equals direct explainer calls, torchrun with 2 processes equals 1, a run killed
with SIGKILL resumes to the same store, bad inputs get clear messages, memory stays flat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _numerics import assert_close, assert_identical, maps_allowed, reduction, rounded

import areacam as ac
from areacam.app.cli import main
from areacam.app.run import run
from areacam.data import shapes
from areacam.runs import open_run

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest

MODEL = '''
import os, time
import torch
import torch.nn.functional as F
from torch import nn


class TinySeg(nn.Module):
    """4-class segmenter: two 3x3 convolutions and a 1x1 head.

    Its parameters are float32 but it computes in float64: then the batch a sample is explained in
    changes nothing at float32 precision, and the stored maps equal direct calls up to one rounding
    (tests/README.md, rule 2).
    """

    in_channels = 3

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        if os.environ.get("TINYSEG_SLEEP"):
            time.sleep(float(os.environ["TINYSEG_SLEEP"]))
        h = self.relu1(self._conv(self.conv1, x.double()))
        return self._conv(self.head, self.relu2(self._conv(self.conv2, h)))

    @staticmethod
    def _conv(conv, h):
        return F.conv2d(h, conv.weight.double(), conv.bias.double(), padding=conv.padding)


def build():
    torch.manual_seed(0)
    return TinySeg()


class Noise(torch.utils.data.Dataset):
    """2,000 seeded 32x32 images with a square mask each."""

    def __len__(self):
        return 2000

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        mask = torch.zeros(32, 32, dtype=torch.int64)
        mask[8:20, 10:24] = 1
        return torch.rand(3, 32, 32, generator=g), mask


def noise():
    return Noise()
'''

N = 240  # generated images
ARGS = [
    "--size",
    "16",
    "16",
    "--method",
    "layercam",
    "--layer",
    "relu2",
    "--target",
    "segment:label",
    "area:mask:label",
    "area:0,0,8,8:1",
    "--metrics",
    "pointing-game",
    "relevance-mass",
    "--chunk-size",
    "16",
    "--batch-size",
    "8",
    "--no-progress",
]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    """A folder of PNG shapes with a parallel mask folder, one unreadable file and one mask of the wrong size."""
    root = tmp_path_factory.mktemp("runs")
    (root / "tinyseg.py").write_text(MODEL)
    images, _, masks = shapes(N, size=16, random_state=3)
    for i in range(N):
        sub = f"part{i % 3}"
        (root / "images" / sub).mkdir(parents=True, exist_ok=True)
        (root / "masks" / sub).mkdir(parents=True, exist_ok=True)
        rgb = np.round(images[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        cv2.imwrite(str(root / "images" / sub / f"{i:03d}.png"), rgb[..., ::-1])
        mask = masks[i].numpy().astype(np.uint8)
        if i == 7:
            mask = np.zeros((12, 12), np.uint8)  # wrong size
        cv2.imwrite(str(root / "masks" / sub / f"{i:03d}.png"), mask)
    (root / "images" / "part0" / "broken.png").write_bytes(b"not a png at all")
    (root / "masks" / "part0" / "broken.png").write_bytes(b"nor this")
    common = ["--model", f"{root / 'tinyseg.py'}:build", "--data", str(root / "images"), "--masks", str(root / "masks")]
    return {"root": root, "args": common + ARGS}


@pytest.fixture(scope="module")
def single(dataset) -> Path:
    """The uninterrupted single-process run (in this process, one DataLoader worker)."""
    out = dataset["root"] / "single"
    assert main(["run", *dataset["args"], "--workers", "1", "--out", str(out)]) == 0
    return out


def _cli(args: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "areacam", *args], env=env or _env(), capture_output=True, text=True, timeout=300, **kw
    )


def _assert_same(a: Path, b: Path) -> None:
    ra, rb = open_run(a), open_run(b)
    assert ra.complete and rb.complete
    assert ra.ids == rb.ids
    assert len(set(rb.ids)) == len(rb.ids)
    # Every process cuts its chunks into the same batches: the same computations, bit for bit (rule 1).
    assert_identical(torch.from_numpy(np.asarray(ra.maps)), torch.from_numpy(np.asarray(rb.maps)), "maps")
    ta, tb = ra.table, rb.table
    assert list(ta.columns) == list(tb.columns)
    assert_identical(torch.from_numpy(ta["score_0"].to_numpy()), torch.from_numpy(tb["score_0"].to_numpy()))
    assert (ta["pointing_game_1"] == tb["pointing_game_1"]).all()
    chunks = sorted(int(p.name[6:12]) for p in (b / "manifest").glob("chunk-*.json"))
    assert chunks == list(range(json.loads((b / "run.json").read_text())["chunks"]))


def test_store_holds_the_explainers_maps(dataset, single):
    """Every stored map equals a direct GradCAM call with the same per-sample targets; bad files are skipped."""
    result = open_run(single)
    assert len(result.ids) == N - 1  # 241 files: one unreadable, one mask of the wrong size
    assert result.maps.shape == (N - 1, 3, 16, 16)
    skipped = {Path(s["path"]).name: s["error"] for s in result.skipped}
    assert set(skipped) == {"broken.png", "007.png"}
    assert "not a readable image" in skipped["broken.png"]
    assert "the mask is 12x12, the image 16x16" in skipped["007.png"]
    log = (single / "run.log").read_text()
    assert "broken.png" in log and "007.png" in log
    summary = json.loads((single / "summary.json").read_text())
    assert (summary["explained"], summary["skipped"]) == (N - 1, 2)
    assert result.table["id"].tolist() == result.ids
    assert result.ids[:2] == ["part0/000.png", "part0/003.png"]
    sys.path.insert(0, str(dataset["root"]))
    try:
        import tinyseg
    finally:
        sys.path.remove(str(dataset["root"]))
    model = tinyseg.build().eval()
    rows = [0, 1, 100, N - 2]
    root = dataset["root"]
    x = (
        torch.stack(
            [
                torch.from_numpy(cv2.imread(str(root / "images" / i))[..., ::-1].copy()).permute(2, 0, 1)
                for i in (result.ids[r] for r in rows)
            ]
        ).float()
        / 255
    )
    masks = torch.stack(
        [
            torch.from_numpy(cv2.imread(str(root / "masks" / i), cv2.IMREAD_UNCHANGED).astype(np.int64))
            for i in (result.ids[r] for r in rows)
        ]
    )
    labels = masks.flatten(1).max(1).values
    expected = []
    for b in range(len(rows)):
        label = int(labels[b])
        region = (masks[b] > 0).float()
        targets = [ac.Segment(label), ac.Area(mask=region, channel=label), ac.Area(box=(0, 0, 8, 8), channel=1)]
        expected.append(ac.LayerCAM(model, "relu2")(x[b : b + 1], targets))
    maps = torch.cat([e.maps for e in expected])
    allowed = torch.cat([maps_allowed(e.raw, (16, 16)) for e in expected])  # float64 in other batches (rule 2)
    assert_close(torch.from_numpy(result.maps[rows]), maps, allowed, "stored maps")
    scores = torch.cat([e.scores for e in expected])
    stored = torch.from_numpy(result.table["score_0"].to_numpy()[rows])
    assert_close(stored, scores[:, 0], rounded(scores[:, 0], leading=1), "stored scores")
    inside = masks > 0
    peak = maps.flatten(2).argmax(2)
    hit = inside.flatten(1).gather(1, peak).float()
    np.testing.assert_array_equal(result.table["pointing_game_1"].to_numpy()[rows], hit[:, 1].numpy())
    mass = ((maps * inside[:, None]).flatten(2).sum(2) / maps.flatten(2).sum(2)).nan_to_num(0.0)  # 0 for a zero map
    assert (mass[:, 1:] > 0).all()
    # the stored maps differ from these by at most `allowed`; mass = sum(inside) / sum(all) moves by at most
    # 2 * sum|dm| / sum(m), plus float32 sums of 256 values on each side (rule 3)
    moved = 2 * (allowed * torch.ones_like(maps)).flatten(2).sum(2) / maps.flatten(2).sum(2).clamp(min=1e-30)
    for column in range(3):
        table = torch.from_numpy(result.table[f"relevance_mass_{column}"].to_numpy()[rows])
        bound = moved[:, column] + 4 * reduction(256) * mass[:, column]
        assert_close(table, mass[:, column], bound, f"relevance mass {column}")


def test_torchrun_two_processes_equal_one(dataset, single):
    out = dataset["root"] / "two"
    env = _env()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "areacam",
            "run",
            *dataset["args"],
            "--float16",
            "--workers",
            "1",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 processes" in proc.stdout
    ranks = {json.loads(p.read_text())["rank"] for p in (out / "manifest").glob("chunk-*.json")}
    assert ranks == {0, 1}
    two, one = open_run(out), open_run(single)
    assert two.maps.dtype == np.float16
    assert two.ids == one.ids
    # The same batches on each rank (rule 1); --float16 rounds the same maps to float16 once.
    half = torch.from_numpy(np.asarray(two.maps))
    assert_identical(half, torch.from_numpy(np.asarray(one.maps).astype(np.float16)), "float16 maps")
    scores = [torch.from_numpy(run.table["score_0"].to_numpy()) for run in (two, one)]
    assert_identical(*scores, "scores")


def test_sigkill_then_resume_gives_the_same_store(dataset, single, capsys):
    out = dataset["root"] / "killed"
    args = ["run", *dataset["args"], "--workers", "0", "--out", str(out)]
    slow = {**_env(), "TINYSEG_SLEEP": "0.05"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "areacam", *args], env=slow, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.time() + 120
        while len(list((out / "manifest").glob("chunk-*.json"))) < 2 and time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    partial = open_run(out)
    assert not partial.complete and 0 < len(partial.ids) < N - 1
    assert not (out / "summary.json").exists()
    capsys.readouterr()
    assert main(args) == 0
    assert "resuming" in capsys.readouterr().err
    _assert_same(single, out)
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_changed_argument_is_refused(dataset, single, capsys):
    before = sorted(p.name for p in (single / "manifest").iterdir())
    args = [a if a != "area:0,0,8,8:1" else "area:0,0,4,4:1" for a in dataset["args"]]
    assert main(["run", *args, "--out", str(single)]) == 2
    err = capsys.readouterr().err
    assert "holds a run with other arguments" in err and "'area:0,0,4,4:1'" in err
    assert sorted(p.name for p in (single / "manifest").iterdir()) == before


def test_unwritable_out_writes_nothing(dataset, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["run", *dataset["args"], "--out", str(blocker / "store")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            assert main(["run", *dataset["args"], "--out", str(locked / "store")]) == 2
            assert "cannot write" in capsys.readouterr().err
            assert not list(locked.iterdir())
        finally:
            locked.chmod(0o700)


def test_bad_targets_fail_before_writing(dataset, tmp_path, capsys):
    out = tmp_path / "store"
    args = [a if a != "segment:label" else "segment:9" for a in dataset["args"]]
    assert main(["run", *args, "--out", str(out)]) == 2
    assert "failed" in capsys.readouterr().err
    assert not out.exists()
    no_masks = dataset["args"][:4] + dataset["args"][6:]
    assert main(["run", *no_masks, "--out", str(out)]) == 2
    assert "needs a mask per sample" in capsys.readouterr().err
    assert not out.exists()


def test_memory_stays_flat_over_2000_samples(dataset, tmp_path, monkeypatch):
    """2,000 samples of 32x32, 4 maps each (32 MB of float32 maps): RSS at the 40th chunk commit equals the 10th's."""
    import psutil

    from areacam.app.run import chunks

    process = psutil.Process()
    rss: list[int] = []
    commit = chunks.commit_chunk

    def measured(*args, **kwargs):
        rss.append(process.memory_info().rss)
        return commit(*args, **kwargs)

    monkeypatch.setattr(chunks, "commit_chunk", measured)
    monkeypatch.syspath_prepend(str(dataset["root"]))
    summary = run(
        "tinyseg:build",
        "tinyseg:noise",
        ["gradcam", "layercam"],
        ["area:mask", "segment:1"],
        tmp_path / "big",
        layer="relu2",
        chunk_size=50,
        batch_size=25,
        workers=0,
        progress=False,
        max_memory="500KB",
    )  # 1 target per explainer call: the K-splitting path runs too
    assert summary["explained"] == 2000
    assert len(rss) == 40
    growth = max(rss[10:]) - rss[10]
    assert growth < 16 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB between chunks 10 and 40"
    assert open_run(tmp_path / "big").maps.shape == (2000, 4, 32, 32)


def test_missing_zarr_names_the_extra(single, monkeypatch):
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(ImportError, match=r"a run store needs the optional package .zarr.: pip install .areacam\[run"):
        open_run(single)


def test_import_areacam_needs_no_run_extra():
    code = "import sys, areacam; assert not {'zarr', 'pyarrow', 'pandas'} & set(sys.modules), sorted(sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=_env()).returncode == 0


def test_table_falls_back_to_csv_without_pyarrow(tmp_path, monkeypatch):
    from areacam.runs.writer import write_table

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    rows = [{"id": "a.png", "index": 0, "score_0": 1.5}, {"id": "b.png", "index": 1, "error": "b.png: unreadable"}]
    assert write_table(tmp_path, rows) == "table.csv"
    assert (tmp_path / "table.csv").read_text().splitlines() == ["id,index,score_0", "a.png,0,1.5"]


def test_report_pages_the_worst_and_best(dataset, single):
    assert main(["report", str(single), "--by", "relevance_mass_1", "--count", "3"]) == 0
    page = (single / "report" / "report.html").read_text()
    result = open_run(single)
    order = result.table.sort_values("relevance_mass_1", kind="stable")["id"].tolist()
    assert page.index(order[0]) < page.index(order[1]) < page.index(order[-1])
    figures = sorted((single / "report" / "figures").glob("*.png"))
    assert len(figures) == 6 and 'id="areacam-check"' in page
    picture = cv2.imread(str(figures[0]))
    assert picture.shape == (128, 5 * 128 + 4 * 4, 3)  # image, mask, 3 maps; 16 px scaled to 128
    assert main(["report", str(single), "--by", "nope"]) == 2
