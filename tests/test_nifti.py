"""``areacam explain`` on NIfTI volumes: maps written on the scan's grid, equal to the library's."""

from __future__ import annotations

import json
import sys
import uuid

import numpy as np
import pytest
import torch
from _numerics import assert_identical

import areacam as ac
from areacam.app.cli import main

nib = pytest.importorskip("nibabel")

# The user's module: a small 3-D segmenter (two output channels), a 2-channel variant, the same one inside a
# sliding window, and preprocessing hooks.
MODULE = """
import numpy as np
import torch
from torch import nn

import areacam as ac


def build(in_channels=1):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 4, 3, padding=1), nn.ReLU(),
        nn.Conv3d(4, 2, 1),
    )


def build2():
    return build(2)


def windowed():
    return ac.SlidingWindow(build(), roi_size=(8, 8, 8), overlap=0.25, mode="gaussian")


def scale(array, affine):
    return array * 2.0 - 1.0


def crop(array, affine):  # drops the first plane of axis i: a new grid, said with its affine
    shifted = affine.copy()
    shifted[:3, 3] += affine[:3, 0]
    return array[:, 1:], shifted


def crop_silently(array, affine):
    return array[:, 1:]


def broken(array, affine):
    raise KeyError("no such intensity window")


class Gained(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = build()

    def forward(self, x, gain):
        return self.net(x) * gain.view(-1, 1, 1, 1, 1)


def gained():
    return Gained()


not_a_function = 3
"""

SHAPE = (12, 10, 8)


@pytest.fixture
def user(tmp_path, monkeypatch):
    """The name of the user's module, importable from the working directory (``tmp_path``)."""
    name = f"volnets_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def _affine() -> np.ndarray:
    """A rotation about z, anisotropic voxels and a translation: nothing an identity default would match."""
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.diag([1.5, 0.8, 2.5, 1.0])
    affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ affine[:3, :3]
    affine[:3, 3] = (-20.0, 14.5, 3.25)
    return affine


def _write(path, data: np.ndarray, affine: np.ndarray | None = None) -> str:
    nib.save(nib.Nifti1Image(data, _affine() if affine is None else affine), str(path))
    return str(path)


@pytest.fixture
def scan(tmp_path) -> str:
    rng = np.random.default_rng(0)
    return _write(tmp_path / "scan.nii.gz", rng.normal(size=SHAPE).astype(np.float32))


def _library(module: str, factory: str, x: torch.Tensor, targets: list, layer: str) -> ac.Explanation:
    model = getattr(sys.modules[module], factory)().eval()
    return ac.GradCAM(model, layer)(x, targets)


def _read(path) -> torch.Tensor:
    """``(1, 1, D, H, W)`` float32, the values as the command reads them."""
    return torch.from_numpy(np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32)))[None, None]


SPECS = ["area:2,3,1,8,7,6:1", "pixel:5,5,4:0", "segment:1"]
TARGETS = [ac.Area(box=(2, 3, 1, 8, 7, 6), channel=1), ac.Pixel(5, 5, 4, channel=0), ac.Segment(1)]


def _explain(user: str, factory: str, images: list[str], out, *extra: str, layer: str = "3") -> int:
    argv = ["explain", "--model", f"{user}:{factory}", "--image", *images, "--method", "gradcam", "--layer", layer]
    return main([*argv, "--target", *SPECS, "--out", str(out), *extra])


def _maps(out, stem: str) -> list:
    """The written NIfTI maps of one volume, by target."""
    return [nib.load(str(next(out.glob(f"{stem}_gradcam_{k}_*_map.nii.gz")))) for k in range(len(SPECS))]


@pytest.mark.parametrize(("factory", "layer"), [("build", "3"), ("windowed", "model.3")])
def test_maps_on_the_scans_grid_equal_the_library(user, scan, tmp_path, factory, layer):
    out = tmp_path / "out"
    assert _explain(user, factory, [scan], out, layer=layer) == 0
    source = nib.load(scan)
    # Rule 1: the command runs GradCAM on the same array with the same targets; the maps are stored as float32.
    expected = _library(user, factory, _read(scan), TARGETS, layer)
    for k, image in enumerate(_maps(out, "scan")):
        assert image.shape == source.shape == SHAPE
        assert np.array_equal(image.affine, source.affine), "the map's affine is the scan's"
        assert int(image.header["sform_code"]) == int(source.header["sform_code"])
        assert image.get_data_dtype() == np.float32
        got = torch.from_numpy(np.asarray(image.dataobj))
        assert_identical(got, expected.maps[0, k], f"NIfTI map of {SPECS[k]}")
    report = json.loads((out / "scores.json").read_text())
    entry = report["volumes"][0]
    assert entry["shape"] == list(SHAPE) and np.allclose(entry["affine"], source.affine)
    assert [t["score"] for t in entry["targets"]] == [float(v) for v in expected.scores[0]]
    assert len(list(out.glob("scan_gradcam_*.png"))) == len(SPECS)


def test_two_scans_and_an_intensity_transform(user, scan, tmp_path):
    rng = np.random.default_rng(1)
    other = _write(tmp_path / "other.nii", rng.normal(size=(9, 11, 10)).astype(np.float32), np.diag([2, 2, 2, 1.0]))
    out = tmp_path / "out"
    assert _explain(user, "build", [scan, other], out, "--transform", f"{user}:scale") == 0
    for path, stem in ((scan, "scan"), (other, "other")):
        expected = _library(user, "build", _read(path) * 2.0 - 1.0, TARGETS, "3")
        for k, image in enumerate(_maps(out, stem)):
            assert image.shape == nib.load(path).shape and np.array_equal(image.affine, nib.load(path).affine)
            assert_identical(torch.from_numpy(np.asarray(image.dataobj)), expected.maps[0, k], f"{stem} {SPECS[k]}")


def test_a_transform_that_changes_the_grid_and_says_so(user, scan, tmp_path):
    out = tmp_path / "out"
    assert _explain(user, "build", [scan], out, "--transform", f"{user}:crop") == 0
    expected = _library(user, "build", _read(scan)[:, :, 1:], TARGETS, "3")
    shifted = nib.load(scan).affine.copy()
    shifted[:3, 3] += shifted[:3, 0]
    for k, image in enumerate(_maps(out, "scan")):
        assert image.shape == (SHAPE[0] - 1, *SHAPE[1:])
        assert np.allclose(image.affine, shifted, rtol=0, atol=1e-5)  # stored as float32 in the sform
        assert_identical(torch.from_numpy(np.asarray(image.dataobj)), expected.maps[0, k], SPECS[k])


def test_per_volume_forward_args(user, scan, tmp_path):
    other = _write(tmp_path / "other.nii.gz", np.random.default_rng(4).normal(size=SHAPE).astype(np.float32))
    out = tmp_path / "out"
    assert _explain(user, "gained", [scan, other], out, "--forward-arg", "gain=2,3", layer="net.3") == 0
    entries = json.loads((out / "scores.json").read_text())["volumes"]
    for path, gain, entry in zip((scan, other), (2, 3), entries):
        model = sys.modules[user].gained().eval()
        kwargs = {"gain": torch.tensor([gain])}
        expected = ac.GradCAM(model, "net.3")(_read(path), TARGETS, forward_kwargs=kwargs)
        assert [t["score"] for t in entry["targets"]] == [float(v) for v in expected.scores[0]]


def test_four_d_data_with_channels_last(user, tmp_path):
    rng = np.random.default_rng(2)
    path = _write(tmp_path / "two.nii.gz", rng.normal(size=(*SHAPE, 2)).astype(np.float32))
    out = tmp_path / "out"
    assert _explain(user, "build2", [path], out) == 0
    x = torch.from_numpy(np.moveaxis(np.asarray(nib.load(path).get_fdata(dtype=np.float32)), 3, 0))[None]
    expected = _library(user, "build2", x, TARGETS, "3")
    for k, image in enumerate(_maps(out, "two")):
        assert image.shape == SHAPE
        assert_identical(torch.from_numpy(np.asarray(image.dataobj)), expected.maps[0, k], SPECS[k])


def test_false_positive_target_with_a_label_volume(user, scan, tmp_path):
    truth = np.zeros(SHAPE, dtype=np.uint8)
    truth[3:9, 2:8, 2:6] = 1
    labels = _write(tmp_path / "labels.nii.gz", truth)
    out = tmp_path / "out"
    argv = ["explain", "--model", f"{user}:build", "--image", scan, "--mask", labels, "--method", "gradcam"]
    assert main([*argv, "--layer", "3", "--target", "fp:1", "--out", str(out)]) == 0
    target = ac.FalsePositive(1, torch.from_numpy(truth.astype(np.int64))[None])
    expected = _library(user, "build", _read(scan), [target], "3")
    image = nib.load(str(next(out.glob("scan_gradcam_0_fp-1_map.nii.gz"))))
    assert_identical(torch.from_numpy(np.asarray(image.dataobj)), expected.maps[0, 0], "fp:1")


def _refused(capsys, out, argv: list[str], *words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("areacam explain: error:"), err
    for word in words:
        assert word in err, err
    assert not out.exists(), "nothing is written for a refused input"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".areacam-")], "no temp folder left"


@pytest.mark.parametrize(
    ("factory", "specs", "extra", "words"),
    [
        ("build", ["area:1,2,3,4"], [], ["Z0,Y0,X0,Z1,Y1,X1", "6 comma-separated"]),
        ("build", ["pixel:1,2"], [], ["Z,Y,X", "3 comma-separated"]),
        ("build", ["detection:1,2,3,4"], [], ["2-D"]),
        ("build", ["area:1,1,1,4,4,40"], [], ["reaches outside", "(12, 10, 8)"]),
        ("build", ["segment:1"], ["--transform", "{user}:crop_silently"], ["changed the grid", "(12, 10, 8)"]),
        ("build", ["segment:1"], ["--transform", "{user}:broken"], ["--transform", "KeyError"]),
        ("build", ["segment:1"], ["--transform", "{user}:not_a_function"], ["not callable"]),
        ("build", ["segment:1"], ["--transform", "{user}:missing"], ["has no attribute 'missing'"]),
        ("build", ["segment:1"], ["--size", "8", "8"], ["--size"]),
        ("build2", ["segment:1"], [], ["gives 1 channel", "the model reads 2"]),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(user, scan, tmp_path, capsys, factory, specs, extra, words):
    out = tmp_path / "out"
    argv = ["explain", "--model", f"{user}:{factory}", "--image", scan, "--method", "gradcam", "--layer", "3"]
    argv += ["--target", *specs, "--out", str(out), *(e.format(user=user) for e in extra)]
    _refused(capsys, out, argv, *words)


def test_four_d_data_is_refused_naming_its_shape(user, tmp_path, capsys):
    path = _write(tmp_path / "series.nii.gz", np.zeros((*SHAPE, 3), dtype=np.float32))
    out = tmp_path / "out"
    argv = ["explain", "--model", f"{user}:build", "--image", path, "--method", "gradcam", "--layer", "3"]
    _refused(capsys, out, [*argv, "--target", "segment:1", "--out", str(out)], "(12, 10, 8, 3)", "4-D")


def test_mixing_volumes_and_images_is_refused(user, scan, tmp_path, capsys):
    png = tmp_path / "a.png"
    png.write_bytes(b"")
    out = tmp_path / "out"
    argv = ["explain", "--model", f"{user}:build", "--image", scan, str(png), "--method", "gradcam"]
    _refused(capsys, out, [*argv, "--layer", "3", "--target", "segment:1", "--out", str(out)], "mixes NIfTI")


def test_missing_nibabel_names_the_extra(user, scan, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "nibabel", None)  # import nibabel now raises ImportError
    out = tmp_path / "out"
    argv = ["explain", "--model", f"{user}:build", "--image", scan, "--method", "gradcam", "--layer", "3"]
    _refused(capsys, out, [*argv, "--target", "segment:1", "--out", str(out)], "nibabel", "areacam[medical]")


def test_run_over_a_folder_of_scans_with_label_volumes(user, tmp_path):
    pytest.importorskip("zarr")
    rng = np.random.default_rng(3)
    folder, labels = tmp_path / "scans", tmp_path / "labels"
    names = [("a.nii.gz", "a.nii.gz"), ("b.nii.gz", "b.nii"), ("sub/c.nii", "sub/c.nii.gz")]
    truths = []
    for k, (scan_name, label_name) in enumerate(names):
        (folder / scan_name).parent.mkdir(parents=True, exist_ok=True)
        (labels / label_name).parent.mkdir(parents=True, exist_ok=True)
        _write(folder / scan_name, rng.normal(size=SHAPE).astype(np.float32))
        truth = np.zeros(SHAPE, dtype=np.uint8)
        truth[2 + k : 8, 3:9, 1 : 5 + k] = 1
        _write(labels / label_name, truth)
        truths.append(torch.from_numpy(truth.astype(np.int64)))
    _write(folder / "other_grid.nii.gz", rng.normal(size=(9, 9, 9)).astype(np.float32))
    _write(labels / "other_grid.nii.gz", np.zeros((9, 9, 9), dtype=np.uint8))
    store = tmp_path / "run.zarr"
    argv = ["run", "--model", f"{user}:build", "--data", str(folder), "--masks", str(labels), "--method", "gradcam"]
    argv += ["--layer", "3", "--target", "segment:1", "area:mask:1", "fp:1", "--out", str(store)]
    assert main([*argv, "--batch-size", "4", "--workers", "0", "--no-progress"]) == 0
    result = ac.open_run(store)
    assert list(result.ids) == ["a.nii.gz", "b.nii.gz", "sub/c.nii"]  # the scan on another grid is skipped
    maps = np.asarray(result.maps[:])
    assert maps.shape == (3, 3, *SHAPE)
    # Rule 1: the same batch of three scans (the one on another grid is a bad sample, left out of the batch)
    # and the same targets, built from each scan's label volume.
    x = torch.cat([_read(folder / name) for name, _ in names])
    truth = torch.stack(truths)
    targets = [ac.Segment(1), ac.Area(mask=(truth > 0).float(), channel=1), ac.FalsePositive(1, truth)]
    expected = _library(user, "build", x, targets, "3")
    assert_identical(torch.from_numpy(maps), expected.maps, "the run's maps of three scans")
    log = (store / "run.log").read_text()
    assert "other_grid.nii.gz: its grid (9, 9, 9) is not the run's (12, 10, 8)" in log, log


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--target", "area:1,2,3,4"], ["Z0,Y0,X0,Z1,Y1,X1"]),
        (["--target", "segment:1", "--size", "8", "8"], ["--size", "own grid"]),
        (["--target", "segment:1", "--transform", "{user}:crop_silently"], ["changed the grid"]),
    ],
)
def test_run_bad_input_is_one_line_and_writes_nothing(user, scan, tmp_path, capsys, extra, words):
    pytest.importorskip("zarr")
    store = tmp_path / "run.zarr"
    argv = ["run", "--model", f"{user}:build", "--data", str(tmp_path), "--method", "gradcam", "--layer", "3"]
    assert main([*argv, "--out", str(store), "--workers", "0", *(e.format(user=user) for e in extra)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("areacam run: error:"), err
    assert all(word in err for word in words), err
    assert not store.exists()


def test_run_transform_needs_volumes(user, tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8), dtype=np.uint8))
    argv = ["run", "--model", f"{user}:build", "--data", str(tmp_path), "--method", "gradcam", "--layer", "3"]
    argv += ["--target", "segment:1", "--transform", f"{user}:scale", "--out", str(tmp_path / "run.zarr")]
    assert main(argv) == 2
    assert "--transform is the preprocessing of NIfTI volumes" in capsys.readouterr().err
