"""Every registered method and every metric that runs the model hands forward arguments on, row by row.

The model takes a per-sample condition ``t`` (``(B,)``). Reference: the same model with the condition of
sample ``b`` built in (``Baked``), run on the same batch: row ``b`` of the conditioned call must be
bit-identical to row ``b`` of the baked call. Both run the same ops on the same shapes (the baked model
expands its one value to the batch), so any row of ``t`` that reached the wrong perturbed input, or no
input at all, changes the numbers. float64 model (tests/README.md, rule 1: same computation, two routes).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import areacam as ac
from areacam.methods.registry import METHODS, Method


class Conditioned(nn.Module):
    """A tiny segmenter whose features are scaled and shifted by a per-sample condition ``t``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 3, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor, *, shift: float = 0.0) -> Tensor:
        scale = t.to(x.dtype).reshape(-1, 1, 1, 1)
        return self.conv2(self.relu(self.conv1(x) * scale + shift))


class Baked(nn.Module):
    """``Conditioned`` with one sample's condition built in, expanded to whatever batch it is given."""

    def __init__(self, model: Conditioned, t: Tensor) -> None:
        super().__init__()
        self.model, self.t = model, t

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x, self.t.expand(x.shape[0]), shift=0.5)


SIZE = 16
LAYER = "conv1"


def _build(method: Method, model: nn.Module) -> object:
    layer = model.model.conv1 if isinstance(model, Baked) else model.conv1
    if method.name == "lime":
        return ac.Lime(model, num_samples=24, batch_size=10, random_state=0)
    if method.name == "occlusion":
        return ac.Occlusion(model, 4, 4, batch_size=5)
    if method.name in ("scorecam", "ablationcam"):
        return method.cls(model, layer, batch_size=4)
    if method.name == "smoothgrad":
        return ac.SmoothGrad(model, num_samples=3, batch_size=2, random_state=0)
    return method.build(model, layer if method.needs_layer else None, (SIZE, SIZE))


@pytest.fixture(scope="module")
def setup():
    model = Conditioned().double().eval()
    x = torch.rand(2, 3, SIZE, SIZE, dtype=torch.float64)
    t = torch.tensor([0.5, 2.0], dtype=torch.float64)
    return model, x, t


TARGETS = [ac.Area(box=(2, 3, 10, 12), channel=1), ac.Segment(2)]


@pytest.mark.parametrize("method", list(METHODS.values()), ids=list(METHODS))
def test_every_method_routes_each_rows_arguments(setup, method):
    model, x, t = setup
    got = _build(method, model)(x, TARGETS, forward_args=(t,), forward_kwargs={"shift": 0.5})
    for b in range(2):
        baked = _build(method, Baked(model, t[b : b + 1]))(x, TARGETS)
        for name in ("raw", "maps", "scores"):
            assert torch.equal(getattr(got, name)[b], getattr(baked, name)[b]), (method.name, name, b)


def _metric_calls(model: nn.Module, x: Tensor, targets: list, maps: object, **extra):
    return {
        "deletion": lambda: ac.metrics.deletion(model, x, targets, maps, steps=4, batch_size=5, **extra).scores,
        "insertion": lambda: ac.metrics.insertion(model, x, targets, maps, steps=4, batch_size=5, **extra).scores,
        "road": lambda: ac.metrics.road(model, x, targets, maps, percentiles=(30, 70), random_state=0, **extra),
    }


def test_metrics_route_each_rows_arguments(setup):
    model, x, t = setup
    maps = torch.rand(2, len(TARGETS), SIZE, SIZE)
    passed = {"forward_args": (t,), "forward_kwargs": {"shift": 0.5}}
    for name, call in _metric_calls(model, x, TARGETS, maps, **passed).items():
        got = call()
        for b in range(2):
            baked = _metric_calls(Baked(model, t[b : b + 1]), x, TARGETS, maps)[name]()
            assert torch.equal(got[b], baked[b]), (name, b)


def test_evaluate_and_rank_layers_hand_arguments_to_the_explainer(setup):
    model, x, t = setup
    passed = {"forward_args": (t,), "forward_kwargs": {"shift": 0.5}}
    explainer = ac.GradCAM(model, LAYER)
    got = ac.metrics.evaluate(model, x, TARGETS, explainer, metrics=["deletion", "sparseness"], steps=4, **passed)
    ranking = ac.metrics.rank_layers(model, x, TARGETS, layers=["conv1", "relu"], steps=4, **passed)
    for b in range(2):
        baked = Baked(model, t[b : b + 1])
        ref = ac.metrics.evaluate(
            baked, x, TARGETS, ac.GradCAM(baked, "model.conv1"), metrics=["deletion", "sparseness"], steps=4
        )
        for key in ("deletion_auc", "sparseness"):
            assert torch.equal(got.values[key][b], ref.values[key][b]), key
        ref_rank = ac.metrics.rank_layers(baked, x, TARGETS, layers=["model.conv1", "model.relu"], steps=4)
        for layer, values in zip(ranking.layers, ranking.values):
            assert torch.equal(values[b], ref_rank.values[ref_rank.layers.index(f"model.{layer}")][b]), layer


def test_randomisation_hands_arguments_to_every_explainer_call(setup):
    model, x, t = setup
    got = ac.metrics.randomisation(
        lambda m: ac.GradCAM(m, LAYER),
        model,
        x,
        TARGETS,
        layers=["conv2"],
        forward_args=(t,),
        forward_kwargs={"shift": 0.5},
    )
    for b in range(2):
        baked = Baked(model, t[b : b + 1])
        ref = ac.metrics.randomisation(
            lambda m: ac.GradCAM(m, "model.conv1"), baked, x, TARGETS, layers=["model.conv2"]
        )
        assert torch.equal(got.maps[:, b], ref.maps[:, b])


def test_arguments_the_forward_does_not_take_name_the_call(setup):
    model, x, _ = setup
    with pytest.raises(TypeError, match=r"GradCAM\(\.\.\.\) call: Conditioned.forward\(\) does not take"):
        ac.GradCAM(model, LAYER)(x, TARGETS, forward_kwargs={"colour": 1})
    with pytest.raises(TypeError, match=r"deletion\(\.\.\.\): Conditioned.forward\(\) does not take"):
        ac.metrics.deletion(model, x, TARGETS, torch.rand(2, 2, SIZE, SIZE), forward_args=(1, 2, 3))


def test_cvae_conditioned_through_forward_args_equals_a_hand_reference():
    """Grad-CAM of the reconstruction error of a CVAE given each sample's label: hook, one backward pass."""
    from _numerics import assert_close, rounded

    from areacam.models import create

    torch.manual_seed(0)
    cvae = create("cvae", in_channels=1, input_size=16, latent_dim=4, width=8).double().eval()
    x = torch.rand(3, 1, 16, 16, dtype=torch.float64)
    labels = torch.tensor([1, 7, 3])
    expl = ac.GradCAM(cvae, "encoder.relu2")(x, ac.ReconstructionError(), forward_args=(labels,))
    store: dict = {}
    handle = cvae.encoder.relu2.register_forward_hook(lambda m, i, o: store.update(act=o))
    try:
        recon = cvae(x, labels)[0]
        scores = ((recon - x) ** 2).flatten(1).sum(1)
        (grad,) = torch.autograd.grad(scores.sum(), store["act"])
    finally:
        handle.remove()
    act = store["act"].detach()
    ref = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(1))
    assert_close(expl.raw[:, 0], ref, rounded(ref, leading=1), "raw")
    assert_close(expl.scores[:, 0], scores.detach(), rounded(scores.detach(), leading=1), "scores")
    unconditioned = ac.GradCAM(cvae, "encoder.relu2")(x, ac.ReconstructionError())
    assert not torch.equal(unconditioned.raw, expl.raw)  # the labels reached the model
