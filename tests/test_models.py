"""Reference models: forward contracts, registry, checkpoints, and use with the areacam explainers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _numerics import assert_close, rounded
from torch import nn

from areacam import models

# Small configurations: every test here runs in milliseconds to a second.
SMALL = {
    "classifier": dict(num_classes=3, in_channels=3, width=4, input_size=32, hidden=16),
    "ae": dict(in_channels=3, input_size=32, latent_dim=4, width=4),
    "vae": dict(in_channels=1, input_size=32, latent_dim=4, width=4),
    "cvae": dict(in_channels=1, input_size=32, latent_dim=4, width=4, num_classes=10, embed_dim=3),
    "dvae": dict(in_channels=1, input_size=32, latent_dim=4, width=4, noise_std=0.3),
    "linear_vae": dict(in_channels=1, input_size=16, latent_dim=4, hidden=16),
    "vaegan": dict(in_channels=1, input_size=32, latent_dim=4, width=4, disc_width=4),
    "fcn": dict(num_classes=4, head="8s", backbone="alexnet", head_width=16),
    "unet": dict(num_classes=3, encoder_name="resnet18", encoder_depth=3, decoder_channels=[16, 8, 8]),
    "unet3d": dict(num_classes=3, in_channels=1, width=2),
    "signal_ae": dict(in_channels=2, width=4, code_channels=2),
}
INPUT = {
    "classifier": (2, 3, 32, 32),
    "ae": (2, 3, 32, 32),
    "vae": (2, 1, 32, 32),
    "cvae": (2, 1, 32, 32),
    "dvae": (2, 1, 32, 32),
    "linear_vae": (2, 1, 16, 16),
    "vaegan": (2, 1, 32, 32),
    "fcn": (2, 3, 64, 64),
    "unet": (2, 3, 32, 32),
    "unet3d": (2, 1, 8, 12, 16),
    "signal_ae": (2, 2, 64),
}
VAES = ("vae", "cvae", "dvae", "linear_vae", "vaegan")


pytestmark = pytest.mark.usefixtures("one_thread")


def make(name: str, seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    return models.create(name, **{**SMALL[name], **overrides}).eval()


def batch(name: str, seed: int = 1) -> torch.Tensor:
    return torch.rand(*INPUT[name], generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ registry


def test_names_are_the_registered_models():
    assert models.names() == [
        "ae",
        "classifier",
        "cvae",
        "dvae",
        "fcn",
        "linear_vae",
        "signal_ae",
        "unet",
        "unet3d",
        "vae",
        "vaegan",
    ]
    assert set(models.TASKS) == set(models.names())


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model") as err:
        models.create("vea")
    msg = str(err.value)
    assert "'vea'" in msg and "did you mean 'vae'" in msg
    for name in models.names():
        assert name in msg


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(backbone="resnet50"), ["'resnet50'", "alexnet", "vgg16"]),
        (dict(head="16s"), ["'16s'", "8s", "32s"]),
    ],
)
def test_unknown_backbone_or_head_lists_valid_names(kwargs, words):
    with pytest.raises(ValueError, match="unknown") as err:
        models.create("fcn", **kwargs)
    for word in words:
        assert word in str(err.value)


def test_unknown_keyword_is_a_type_error_naming_the_model():
    with pytest.raises(TypeError, match="'vae'"):
        models.create("vae", depth=3)


def test_create_records_the_spec_for_checkpoints():
    model = models.create("vae", latent_dim=3, width=4)
    assert model.areacam_spec == {
        "name": "vae",
        "kwargs": dict(in_channels=1, input_size=32, latent_dim=3, width=4),
    }


# ------------------------------------------------------------------------------------------ classifier


def test_classifier_forward_contract():
    model = make("classifier")
    out = model(batch("classifier"))
    assert out.shape == (2, 3) and out.dtype == torch.float32
    names = dict(model.named_modules())
    for layer in ("features.block1.conv", "features.block5.relu", "classifier.fc1", "classifier.fc3"):
        assert layer in names
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 3
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 5
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [4, 8, 16, 32, 32]


def test_classifier_wrong_input_size_names_expected_and_actual():
    model = make("classifier")  # built for 32x32
    with pytest.raises(ValueError, match="was built for inputs") as err:
        model(torch.rand(1, 3, 64, 64))
    msg = str(err.value)
    assert "(B, 3, 32, 32)" in msg and "(1, 3, 64, 64)" in msg
    with pytest.raises(ValueError, match=r"\(1, 1, 32, 32\)"):
        model(torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize("size", [0, 48, 100])
def test_classifier_input_size_must_be_multiple_of_32(size):
    with pytest.raises(ValueError, match=f"got {size}"):
        models.Classifier(input_size=size)


# ------------------------------------------------------------------------------------------ VAEs


@pytest.mark.parametrize("name", VAES)
def test_vae_forward_contract(name):
    model = make(name)
    x = batch(name)
    recon, mu, logvar = model(x)
    assert recon.shape == x.shape and recon.dtype == torch.float32
    assert mu.shape == (2, 4) and logvar.shape == (2, 4)
    assert float(recon.detach().min()) >= 0.0 and float(recon.detach().max()) <= 1.0
    # Eval mode: z = mu, so the reconstruction is decode(mu) and two calls agree exactly.
    recon2, mu2, _ = model(x)
    assert torch.equal(recon, recon2) and torch.equal(mu, mu2)
    decoded = model.decode(mu) if name != "cvae" else model.decode(mu, None)
    assert torch.equal(decoded, recon)


@pytest.mark.parametrize("name", ["vae", "linear_vae", "vaegan"])
def test_vae_samples_z_in_train_mode_only(name):
    model = make(name).train()
    x = batch(name)
    torch.manual_seed(0)
    r1, mu1, _ = model(x)
    r2, mu2, _ = model(x)
    assert torch.equal(mu1, mu2)  # the encoder is deterministic
    assert not torch.equal(r1, r2)  # z is sampled
    assert not torch.equal(r1, model.decode(mu1))


def test_dvae_adds_noise_in_train_mode_only():
    dvae = make("dvae")
    vae = make("vae")
    vae.load_state_dict(dvae.state_dict())
    x = batch("dvae")
    out_d, out_v = dvae(x), vae(x)
    for a, b in zip(out_d, out_v):
        assert torch.equal(a, b)  # eval: no noise, same as a VAE with the same weights
    dvae.train()
    _, mu1, _ = dvae(x)
    _, mu2, _ = dvae(x)
    assert not torch.equal(mu1, mu2)  # the encoder sees a fresh noisy input each call
    with pytest.raises(ValueError, match="noise_std"):
        models.DVAE(noise_std=-0.1)


def test_cvae_labels_and_unknown_label():
    model = make("cvae")
    x = batch("cvae")
    unconditional = model(x)
    explicit_unknown = model(x, torch.tensor([10, 10]))
    assert torch.equal(unconditional[0], explicit_unknown[0])
    three = model(x, 3)
    assert torch.equal(three[0], model(x, torch.tensor([3, 3]))[0])
    assert not torch.equal(three[0], unconditional[0])
    assert not hasattr(model, "default_label")  # explainers condition it through forward_args
    with pytest.raises(ValueError, match=r"\[11, 0\]"):
        model(x, torch.tensor([11, 0]))
    with pytest.raises(ValueError, match=r"\(2,\)"):
        model(x, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="float"):
        model(x, 1.5)


def test_vaegan_discriminator_is_separate_from_forward():
    model = make("vaegan")
    x = batch("vaegan")
    calls = []
    handle = model.discriminator.register_forward_hook(lambda *a: calls.append(1))
    try:
        model(x)
        assert calls == []
        logits = model.discriminate(x)
        assert calls == [1]
    finally:
        handle.remove()
    assert logits.shape == (2,)
    logits2, features = model.discriminate(x, return_features=True)
    assert torch.equal(logits, logits2) and features.shape == (2, 4 * 4 * 4 * 4)
    assert {"encoder", "decoder", "discriminator"} <= {n for n, _ in model.named_children()}


@pytest.mark.parametrize("name", VAES)
def test_vae_wrong_input_names_expected_shape(name):
    model = make(name)
    with pytest.raises(ValueError, match=r"got \(2, 3, 32, 32\)"):
        model(torch.rand(2, 3, 32, 32))


@pytest.mark.parametrize("name", ["vae", "linear_vae", "vaegan", "cvae"])
def test_sample_decodes_prior_draws(name):
    model = make(name)
    out = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, *INPUT[name][1:])
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        model.sample(0)


# ------------------------------------------------------------------------------------------ FCN / U-Net


@pytest.mark.parametrize(
    ("backbone", "head", "size"),
    [("alexnet", "8s", (70, 90)), ("alexnet", "32s", (64, 64)), ("vgg16", "8s", (40, 52)), ("vgg16", "32s", (32, 32))],
)
def test_fcn_output_is_at_input_size(backbone, head, size):
    torch.manual_seed(0)
    model = models.FCN(num_classes=5, head=head, backbone=backbone, head_width=8).eval()
    out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 5, *size) and out.dtype == torch.float32
    names = dict(model.named_modules())
    assert {"backbone.features", "head.fc6", "head.relu7", "head.score_fr", "normalize"} <= set(names)
    assert ("score_pool3" in names) == (head == "8s") and ("score_pool4" in names) == (head == "8s")


def test_fcn_backbone_is_torchvisions_features():
    import torchvision

    for backbone, ctor in (("alexnet", torchvision.models.alexnet), ("vgg16", torchvision.models.vgg16)):
        model = models.FCN(backbone=backbone, head_width=8)
        with torch.device("meta"):
            reference = ctor(weights=None).features
        ours = [(type(m), getattr(m, "weight", torch.empty(0)).shape) for m in model.backbone.features]
        ref = [(type(m), getattr(m, "weight", torch.empty(0)).shape) for m in reference]
        assert ours == ref


def test_fcn8s_skip_scorers_start_at_zero_and_32s_weights_load_into_8s():
    torch.manual_seed(0)
    fcn8 = models.FCN(head="8s", head_width=8)
    for m in (fcn8.score_pool3, fcn8.score_pool4):
        assert not m.weight.detach().any() and not m.bias.detach().any()
    fcn32 = models.FCN(head="32s", head_width=8)
    missing, unexpected = fcn8.load_state_dict(fcn32.state_dict(), strict=False)
    assert sorted(missing) == ["score_pool3.bias", "score_pool3.weight", "score_pool4.bias", "score_pool4.weight"]
    assert unexpected == []


def test_fcn_backbone_weights_from_a_state_dict():
    torch.manual_seed(0)
    source = models.FCN(backbone="alexnet", head_width=8)
    state = {f"features.{k}": v for k, v in source.backbone.features.state_dict().items()}
    torch.manual_seed(1)
    target = models.FCN(backbone="alexnet", head_width=8, backbone_weights=state)
    for (k, a), (_, b) in zip(
        source.backbone.features.state_dict().items(), target.backbone.features.state_dict().items()
    ):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="do not match"):
        models.FCN(backbone="vgg16", head_width=8, backbone_weights=state)


def test_fcn_rejects_too_small_or_wrong_channel_inputs():
    model = models.FCN(backbone="alexnet", head_width=8)
    with pytest.raises(ValueError, match="at least 63x63"):
        model(torch.rand(1, 3, 40, 40))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 64, 64))


def test_fcn_single_channel_input():
    model = models.FCN(backbone="vgg16", in_channels=1, head_width=8, num_classes=2).eval()
    assert isinstance(model.normalize, nn.Identity)
    assert model(torch.rand(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_unet_factory_has_no_pretrained_weights_and_dense_output():
    model = make("unet")
    assert model(batch("unet")).shape == (2, 3, 32, 32)
    assert "encoder.layer2" in dict(model.named_modules())
    with pytest.raises(ValueError, match="encoder_weights must be None"):
        models.create("unet", encoder_weights="imagenet")


# ------------------------------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("name", sorted(SMALL))
def test_checkpoint_round_trip(name, tmp_path):
    model = make(name, seed=3)
    path = tmp_path / f"{name}.pt"
    models.save(model, path, epoch=2, metrics={"loss": 1.5})
    loaded = models.load(path)
    assert type(loaded) is type(model) and loaded.training is False
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = batch(name)
    out_a, out_b = model(x), loaded(x)
    if isinstance(out_a, tuple):
        assert all(torch.equal(p, q) for p, q in zip(out_a, out_b))
    else:
        assert torch.equal(out_a, out_b)
    ckpt = models.load_checkpoint(path)
    assert ckpt["name"] == name and ckpt["extra"] == {"epoch": 2, "metrics": {"loss": 1.5}}


def test_load_rejects_foreign_files_and_save_rejects_foreign_models(tmp_path):
    torch.save({"weight": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not an areacam model checkpoint"):
        models.load(tmp_path / "plain.pt")
    with pytest.raises(TypeError, match="Linear"):
        models.save(nn.Linear(2, 2), tmp_path / "x.pt")


# ------------------------------------------------------------------------------------------ explainers


def _score(model: nn.Module, x: torch.Tensor, target: str) -> torch.Tensor:
    """The ``(B,)`` score each test target stands for, computed by hand from the model output."""
    out = model(x)
    if target == "class1":
        return out[:, 1]
    if target == "argmax":
        return out.gather(1, out.argmax(1, keepdim=True)).squeeze(1)
    if target == "latent0":
        return out[1][:, 0]
    if target == "recon":
        return ((out[0] - x) ** 2).flatten(1).sum(1)
    if target == "box":
        rec = out[0] if isinstance(out, tuple) else out
        return rec[..., 4:12, 6:14].flatten(1).sum(1)
    if target == "box_ch1":
        return out[:, 1, 4:12, 6:14].flatten(1).sum(1)
    raise AssertionError(target)


def _target(ac, key: str):
    return {
        "class1": lambda: ac.Class(1),
        "argmax": lambda: ac.Class(),
        "latent0": lambda: ac.Latent(0),
        "recon": lambda: ac.ReconstructionError(),
        "box": lambda: ac.Area(box=(4, 6, 12, 14)),
        "box_ch1": lambda: ac.Area(box=(4, 6, 12, 14), channel=1),
    }[key]()


# (model, usual CAM layer, targets)
EXPLAIN_CASES = [
    ("classifier", "features.block5.relu", ["class1", "argmax"]),
    ("vae", "encoder.conv3", ["latent0", "recon", "box"]),
    ("cvae", "encoder.relu3", ["latent0", "recon", "box"]),
    ("dvae", "encoder.conv3", ["latent0", "recon"]),
    ("vaegan", "encoder.conv3", ["latent0", "recon", "box"]),
    ("vaegan", "decoder.deconv1", ["recon", "box"]),
    ("linear_vae", "decoder.unflatten", ["recon", "box"]),
    ("fcn", "backbone.features", ["box_ch1"]),
    ("fcn", "head.relu7", ["box_ch1"]),
    ("unet", "encoder.layer2", ["box_ch1"]),  # encoder_depth=3: layer2 is the deepest stage that runs
]


def _manual_gradcam(model: nn.Module, layer: str, x: torch.Tensor, target: str) -> torch.Tensor:
    """Reference Grad-CAM ``(B, h, w)``: ReLU(sum_c mean_hw(dS/dA_c) * A_c)."""
    module = dict(model.named_modules())[layer]
    store = {}
    handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        with torch.enable_grad():
            score = _score(model, x, target)
            grad = torch.autograd.grad(score.sum(), store["a"])[0]
    finally:
        handle.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * store["a"]).sum(1)).detach()


@pytest.mark.parametrize(("name", "layer", "targets"), EXPLAIN_CASES, ids=[f"{c[0]}-{c[1]}" for c in EXPLAIN_CASES])
def test_models_work_with_the_explainers(name, layer, targets):
    """In float64, against hand-written float64 references: one float32 rounding (tests/README.md, rule 2)."""
    import areacam as ac

    model = make(name).double()
    x = batch(name).double()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected_scores = torch.stack([_score(model, x, t).detach() for t in targets], 1)
    tlist = [_target(ac, t) for t in targets]
    b, _, h, w = x.shape

    cam = ac.GradCAM(model, layer)(x, tlist)
    assert cam.maps.shape == (b, len(targets), h, w)
    assert torch.isfinite(cam.maps).all() and float(cam.maps.min()) >= 0 and float(cam.maps.max()) <= 1
    assert_close(cam.scores, expected_scores, rounded(expected_scores, leading=2), "scores")
    for k, t in enumerate(targets):
        expected = _manual_gradcam(model, layer, x, t)
        assert_close(cam.raw[:, k], expected, rounded(expected, leading=1), f"Grad-CAM of {t}")

    for explainer in (ac.Saliency(model), ac.GuidedBackprop(model)):
        expl = explainer(x, tlist)
        assert expl.maps.shape == (b, len(targets), h, w)
        assert expl.raw.shape == (b, len(targets), *x.shape[1:])
        assert torch.isfinite(expl.raw).all()
        assert_close(expl.scores, expected_scores, rounded(expected_scores, leading=2), "scores")
    # Saliency's raw map is the plain input gradient of each score (targets that do not read the input
    # itself: how ReconstructionError treats its input term is the core's business).
    sal = ac.Saliency(model)(x, tlist)
    for k, t in enumerate(targets):
        if t == "recon":
            continue
        xg = x.clone().requires_grad_(True)
        with torch.enable_grad():
            grad = torch.autograd.grad(_score(model, xg, t).sum(), xg)[0]
        assert_close(sal.raw[:, k], grad, rounded(grad, leading=1), f"saliency of {t}")

    assert model.training is False
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_volume_and_signal_models_shapes_and_input_checks():
    seg = make("unet3d")
    assert seg(batch("unet3d")).shape == (2, 3, 8, 12, 16)
    recon, code = make("signal_ae")(batch("signal_ae"))
    assert recon.shape == (2, 2, 64) and code.shape == (2, 2, 4)
    with pytest.raises(ValueError, match=r"UNet3D expects \(B, 1, D, H, W\) with sides divisible by 4"):
        seg(torch.rand(1, 1, 8, 8, 6))
    with pytest.raises(ValueError, match=r"SignalAE expects \(B, 2, L\) with L divisible by 16"):
        make("signal_ae")(torch.rand(1, 2, 40))


def test_plain_autoencoder_returns_its_code_and_trains_on_mse():
    model = make("ae")
    x = batch("ae")
    recon, code = model(x)
    assert recon.shape == x.shape and code.shape == (2, 4)
    assert torch.equal(code, model.encode(x)[0]) and torch.equal(recon, model.decode(code))
    assert models.TASKS["ae"] == "reconstruction"
