"""Training loop (models.train) and its CLI (scripts/train.py): determinism, outputs, metrics, errors."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

from areacam import models
from areacam.models import train as T

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(epochs=1, n_train=24, n_test=8, batch_size=8, progress=False)
TINY_VAE = dict(width=4, latent_dim=3)


pytestmark = pytest.mark.usefixtures("one_thread")


def _strip_times(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("time_s", "epoch_time_s")}


def test_same_seed_gives_identical_metrics_and_weights(tmp_path):
    a = T.train("vae", "digits", out=tmp_path / "a", random_state=7, model_kwargs=TINY_VAE, **TINY)
    b = T.train("vae", "digits", out=tmp_path / "b", random_state=7, model_kwargs=TINY_VAE, **TINY)
    c = T.train("vae", "digits", out=tmp_path / "c", random_state=8, model_kwargs=TINY_VAE, **TINY)
    assert _strip_times(a) == _strip_times(b)
    assert a["final"]["test_mse"] != c["final"]["test_mse"]
    sa = models.load_checkpoint(tmp_path / "a" / "epoch_001.pt")["state_dict"]
    sb = models.load_checkpoint(tmp_path / "b" / "epoch_001.pt")["state_dict"]
    sc = models.load_checkpoint(tmp_path / "c" / "epoch_001.pt")["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_train_restores_global_state():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    det = torch.are_deterministic_algorithms_enabled()
    T.train("vae", "digits", random_state=1, threads=2, model_kwargs=TINY_VAE, **TINY)
    assert torch.get_num_threads() == 1  # the fixture's setting, not the run's 2
    assert torch.are_deterministic_algorithms_enabled() == det
    assert torch.equal(torch.rand(3), expected_next)  # the global RNG stream is untouched


def test_outputs_checkpoints_and_metrics_json(tmp_path):
    metrics = T.train("vae", "digits", out=tmp_path, random_state=0, model_kwargs=TINY_VAE, **{**TINY, "epochs": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_001.pt", "epoch_002.pt", "metrics.json"]
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert [h["epoch"] for h in metrics["history"]] == [1, 2] and metrics["final"] == metrics["history"][-1]
    assert len(metrics["epoch_time_s"]) == 2 and metrics["time_s"] > 0
    assert metrics["config"]["n_train"] == 24 and metrics["config"]["n_test"] == 8
    assert metrics["config"]["model_kwargs"] == dict(in_channels=1, input_size=32, **TINY_VAE)
    # The last checkpoint reproduces the reported test metrics exactly.
    model = models.load(tmp_path / "epoch_002.pt")
    d = T.load_data("digits", 32, 24, 8)
    reported = {k: metrics["final"][k] for k in ("test_mse", "baseline_mse", "test_kl")}
    assert T.held_out_scores(model, "generative", d) == reported
    ckpt = models.load_checkpoint(tmp_path / "epoch_001.pt")
    assert ckpt["extra"]["epoch"] == 1 and ckpt["extra"]["metrics"] == metrics["history"][0]


def test_mean_image_baseline_is_the_mse_of_the_training_mean():
    metrics = T.train("linear_vae", "digits", random_state=0, model_kwargs=dict(hidden=8, latent_dim=2), **TINY)
    d = T.load_data("digits", 32, 24, 8)
    baseline = ((d["x_train"].mean(0, keepdim=True) - d["x_test"]) ** 2).mean()
    assert metrics["final"]["baseline_mse"] == float(baseline)  # the same formula on the same data (rule 1)


@pytest.mark.parametrize(
    ("model", "data", "kwargs", "keys"),
    [
        ("classifier", "digits", dict(width=2, hidden=8), {"test_accuracy", "test_loss", "train_loss"}),
        ("classifier", "shapes", dict(width=2, hidden=8, input_size=32), {"test_accuracy"}),
        ("cvae", "digits", TINY_VAE, {"test_mse", "train_bce", "train_kl"}),
        ("dvae", "shapes", TINY_VAE, {"test_mse", "baseline_mse"}),
        (
            "vaegan",
            "digits",
            dict(width=4, latent_dim=3, disc_width=4),
            {"test_mse", "train_disc", "train_adversarial", "train_feature_matching", "train_d_real", "train_d_fake"},
        ),
        (
            "fcn",
            "shapes",
            dict(backbone="alexnet", head="8s", head_width=8),
            {"mean_iou", "pixel_accuracy", "mean_pixel_accuracy", "class_iou"},
        ),
        ("unet3d", "volumes", dict(width=2), {"mean_iou", "pixel_accuracy", "class_iou"}),
        ("signal_ae", "signals", dict(width=4), {"test_mse", "anomaly_hit_rate", "mse_inside_anomaly"}),
        ("ae", "digits", TINY_VAE, {"test_mse"}),
    ],
)
def test_every_task_trains_one_epoch(model, data, kwargs, keys):
    size = {"digits": 32, "shapes": 64 if model == "fcn" else 32, "volumes": 16, "signals": 64}[data]
    metrics = T.train(model, data, random_state=0, size=size, model_kwargs=kwargs, **TINY)
    final = metrics["final"]
    assert keys <= set(final)
    for key, value in final.items():
        if isinstance(value, float):
            assert value == value and abs(value) < 1e6, key  # finite
    if "test_accuracy" in final:
        assert final["test_accuracy"] * 8 == round(final["test_accuracy"] * 8)
    if "mean_iou" in final:
        assert len(final["class_iou"]) == (3 if data == "volumes" else 4) and 0 <= final["mean_iou"] <= 1
    if "anomaly_hit_rate" in final:
        assert final["anomaly_hit_rate"] * 8 == round(final["anomaly_hit_rate"] * 8)


def test_segmentation_scores_on_a_hand_made_confusion_matrix():
    # rows: truth, columns: prediction
    conf = torch.tensor([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    s = T.segmentation_scores(conf)
    # ratios of small integers, each rounded once to float32 and again in a mean of two (rule 2)
    for got, exact in (
        (s["pixel_accuracy"], 11 / 14),
        (s["mean_pixel_accuracy"], (8 / 10 + 3 / 4) / 2),
        (s["mean_iou"], (8 / 11 + 3 / 6) / 2),
        *zip(s["class_iou"], [8 / 11, 3 / 6, 0.0]),
    ):
        assert abs(got - exact) <= 4 * 2**-24 * exact, (got, exact)  # class 2 absent: skipped in the means


def test_defaults_per_model_and_backbone():
    assert T.defaults("fcn", "shapes", {"backbone": "vgg16"})["size"] == 96
    assert T.defaults("fcn", "shapes")["size"] == 128
    assert T.defaults("vae", "digits") == dict(epochs=30, batch_size=64, lr=1e-3, size=32, n_train=None, n_test=None)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("resnet", "digits"), {}, ValueError, "unknown model 'resnet'"),
        (
            ("vae", "mnist"),
            {},
            ValueError,
            "unknown data 'mnist'; valid data sets: digits, shapes, shapes-distractor, volumes, signals",
        ),
        (("unet3d", "shapes"), {}, ValueError, "model 'unet3d' trains on data='volumes', got 'shapes'"),
        (("vae", "signals"), {}, ValueError, "data 'signals' is for model signal_ae, not for the image model 'vae'"),
        (("fcn", "digits"), {}, ValueError, "data='shapes'"),
        (("vae", "digits"), dict(epochs=0), ValueError, "epochs must be >= 1, got 0"),
        (("vae", "digits"), dict(lr=-1.0), ValueError, "lr must be > 0 and finite, got -1.0"),
        (("vae", "digits"), dict(threads=0), ValueError, "threads"),
    ],
)
def test_train_argument_errors(args, kwargs, error, match, tmp_path):
    with pytest.raises(error, match=match):
        T.train(*args, out=tmp_path / "x", progress=False, **kwargs)
    assert not (tmp_path / "x").exists()


def _cli(argv: list[str]) -> None:
    old = sys.argv
    sys.argv = [str(ROOT / "scripts" / "train.py"), *argv]
    try:
        runpy.run_path(str(ROOT / "scripts" / "train.py"), run_name="__main__")
    finally:
        sys.argv = old


def test_cli_writes_checkpoints_and_metrics(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli(
            [
                "--model",
                "vae",
                "--data",
                "digits",
                "--epochs",
                "1",
                "--out",
                str(tmp_path),
                "--seed",
                "3",
                "--n-train",
                "16",
                "--n-test",
                "8",
                "--batch-size",
                "8",
                "--threads",
                "1",
                "--no-progress",
                "--model-arg",
                "width=4",
                "--model-arg",
                "latent_dim=2",
            ]
        )
    assert exit_info.value.code == 0
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert printed["final"]["test_mse"] == metrics["final"]["test_mse"]
    assert metrics["config"]["seed"] == 3 and metrics["threads"] == 1
    assert models.load(tmp_path / "epoch_001.pt").latent_dim == 2


def test_cli_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli(["--model", "vae", "--data", "digits", "--out", str(tmp_path), "--backbone", "vgg16"])
    assert "--backbone only applies to --model fcn" in str(exit_info.value.code)
    with pytest.raises(SystemExit) as exit_info:
        _cli(["--model", "vea", "--data", "digits", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "invalid choice: 'vea'" in capsys.readouterr().err


def test_textures_train_on_normal_images_and_test_on_half_abnormal():
    """``"textures"``: the training textures are those of ``anomalies(share=0)``; the test set is another
    seed's, half abnormal, with its exact masks."""
    import areacam as ac

    d = T.load_data("textures", 32, 6, 8)
    assert torch.equal(d["x_train"], ac.data.anomalies(6, size=32, random_state=0, share=0.0)[0])
    x_test, m_test = ac.data.anomalies(8, size=32, random_state=1, share=0.5)
    assert torch.equal(d["x_test"], x_test) and torch.equal(d["m_test"], m_test)
    assert int(d["m_test"].flatten(1).any(1).sum()) == 4 and "m_train" not in d
    assert T.defaults("ae", "textures")["size"] == 64
