"""Models that take more than ``x`` (forward_args / forward_kwargs) and their output containers (diffusers)."""

from __future__ import annotations

import pytest
import torch
from _modules import tiny_unet2d
from _numerics import assert_close
from torch import nn

import areacam as ac

diffusers = pytest.importorskip("diffusers")


def _bound(expected: torch.Tensor) -> torch.Tensor:
    """float64 computations rounded once to float32: a few units of 2**-24 of the value and of the largest value."""
    expected = expected.double()
    return 2.0**-22 * (expected.abs() + expected.abs().max())


def _reference(model: nn.Module, layer: nn.Module, x: torch.Tensor, t: torch.Tensor, box: tuple) -> torch.Tensor:
    """Grad-CAM by hand: a hook, one backward pass, channel weights = spatial mean of the gradient."""
    store: dict = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.update(act=o[0] if isinstance(o, tuple) else o))
    try:
        out = model(x, t).sample
        act = store["act"]
        y0, x0, y1, x1 = box
        score = out[:, :, y0:y1, x0:x1].sum()
        (grad,) = torch.autograd.grad(score, act)
    finally:
        handle.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * act).sum(1)).detach()


def test_unet_timestep_per_sample_equals_reference_and_single_rows():
    model = tiny_unet2d()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    t = torch.tensor([1, 10, 50])
    box = (2, 2, 10, 10)
    layer = "up_blocks.1.resnets.0"
    expl = ac.GradCAM(model, layer, layout="nchw")(x, ac.Area(box=box), forward_kwargs={"timestep": t})
    ref = _reference(model, model.up_blocks[1].resnets[0], x, t, box)
    assert_close(expl.raw[:, 0], ref, _bound(ref))
    for b in range(3):
        alone = ac.GradCAM(model, layer, layout="nchw")(
            x[b : b + 1], ac.Area(box=box), forward_kwargs={"timestep": t[b : b + 1]}
        )
        assert torch.equal(alone.raw[0], expl.raw[b])
    assert not any(p.grad is not None for p in model.parameters())


def test_integrated_gradients_per_sample_kwargs_equal_a_loop():
    model = tiny_unet2d()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    t = torch.tensor([3, 40])
    ig = ac.IntegratedGradients(model, steps=4)
    expl = ig(x, ac.Area(box=(0, 0, 8, 8)), forward_kwargs={"timestep": t})
    for b in range(2):
        alone = ig(x[b : b + 1], ac.Area(box=(0, 0, 8, 8)), forward_kwargs={"timestep": t[b : b + 1]})
        assert_close(alone.raw[0], expl.raw[b], _bound(expl.raw[b]))


def test_shared_keeps_a_batch_sized_table_unexpanded():
    seen: list = []

    class Cond(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x, table):
            seen.append(table.shape)
            return self.conv(x) * table.sum()

    x = torch.randn(2, 1, 8, 8)
    table = torch.arange(2.0)  # (B,) but a table, not per sample
    ac.SmoothGrad(Cond(), num_samples=3)(x, ac.Area(), forward_args=(ac.Shared(table),))
    assert seen and all(shape == (2,) for shape in seen)
    seen.clear()
    ac.SmoothGrad(Cond(), num_samples=3)(x, ac.Area(), forward_args=(table,))  # per sample: follows x's copies
    assert seen and all(shape == (6,) for shape in seen)


def test_unknown_keyword_names_the_call():
    model = tiny_unet2d()
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"GradCAM\(\.\.\.\) call: UNet2DModel.forward\(\) does not take"):
        ac.GradCAM(model, "up_blocks.1", layout="nchw")(x, ac.Area(), forward_kwargs={"timestep": 1, "nope": 2})


def test_autoencoder_kl_reconstruction_and_field_equal_backward():
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=2,
        norm_num_groups=4,
        sample_size=16,
    ).double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        recon = vae(x).sample
    score = ac.ReconstructionError()(vae(x), x)
    expected = ((recon - x) ** 2).flatten(1).sum(1)
    assert_close(score, expected, _bound(expected))
    boxes = [ac.Area(box=(i, j, i + 4, j + 4)) for i in range(0, 16, 4) for j in range(0, 16, 4)]
    cam = ac.GradCAM(vae, "decoder.up_blocks.0", layout="nchw")
    field = cam.field(x)(boxes)
    back = cam.backward(x, boxes)
    assert_close(field.raw, back.raw, _bound(back.raw))
