"""embed: pooled features of a trained classifier separate synthetic shapes; export and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _numerics import assert_close, rounded
from sklearn.metrics import silhouette_score
from torch import nn

from areacam.inspect.embed import embed, pooled_features

pytestmark = pytest.mark.usefixtures("one_thread")


def shapes(n: int, size: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Circles (label 0) and squares (label 1) of random colour, size and place on dark noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.uniform(0, 0.15, (n, 3, size, size)).astype(np.float32)
    labels = np.arange(n) % 2
    for i, label in enumerate(labels):
        r = rng.uniform(4, 7)
        cy, cx = rng.uniform(r + 1, size - r - 1, 2)
        square = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
        mask = square if label else (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        images[i][:, mask] = rng.uniform(0.3, 1.0, (3, 1))
    return torch.from_numpy(images), torch.from_numpy(labels)


def net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 2),
    )


@pytest.fixture(scope="module")
def models() -> tuple[nn.Module, nn.Module]:
    x, y = shapes(256)
    torch.manual_seed(0)
    untrained, trained = net(), net()
    trained.load_state_dict(untrained.state_dict())
    optimizer = torch.optim.Adam(trained.parameters(), lr=1e-2)
    for _ in range(80):
        idx = torch.randint(0, len(x), (64,))
        loss = nn.functional.cross_entropy(trained(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for p in trained.parameters():
        p.grad = None
    return untrained.eval(), trained.eval()


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_trained_features_separate_the_classes(models, method):
    x, y = shapes(100, seed=1)  # held-out images
    untrained, trained = models
    assert (trained(x).argmax(1) == y).float().mean() > 0.9
    score = {
        name: silhouette_score(embed(model, "7", x, method=method, labels=y, perplexity=20).coords, y.numpy())
        for name, model in (("untrained", untrained), ("trained", trained))
    }
    assert score["trained"] > 0.3
    assert score["trained"] > score["untrained"] + 0.2


def test_pooled_features_are_the_mean_activation(models):
    import copy

    model = copy.deepcopy(models[1]).double()  # float64: batches of 4 and of 10 agree to float64 (rule 2)
    x = shapes(10, seed=2)[0].double()
    feats = pooled_features(model, model[7], x, batch_size=4)
    with torch.no_grad():
        expected = model[:8](x).mean(dim=(2, 3))
        assert torch.equal(pooled_features(model, "10", x), model(x).float())  # a (B, D) output is taken as is
    assert_close(feats, expected, rounded(expected, leading=1), "pooled features")


def test_pca_coords_match_sklearn_and_3d(models):
    from sklearn.decomposition import PCA

    x, _y = shapes(20, seed=3)
    result = embed(models[1], "7", x, method="pca", dims=3)
    expected = PCA(n_components=3, random_state=0).fit_transform(result.features.astype(np.float64))
    np.testing.assert_array_equal(result.coords, expected)  # the same fit of the same features (rule 1)
    assert result.coords.shape == (20, 3) and result.labels is None
    fig = result.plot()
    assert fig.axes[0].name == "3d"


def test_export_for_the_projector_and_figure(models, tmp_path):
    x, y = shapes(10, seed=4)
    result = embed(models[1], "7", x, method="pca", labels=y, thumbnail=16)
    out = result.export(tmp_path / "proj", names=["circle", "square"])
    tensors = np.loadtxt(out / "tensors.tsv", delimiter="\t")
    # written with 6 significant digits: off by at most half a unit of the 6th, 5e-6 of the value
    np.testing.assert_array_less(np.abs(tensors - result.features), 5e-6 * np.abs(result.features) + 1e-45)
    lines = (out / "metadata.tsv").read_text().splitlines()
    assert lines[0] == "index\tlabel" and lines[1:3] == ["0\tcircle", "1\tsquare"] and len(lines) == 11
    import cv2

    sprite = cv2.imread(str(out / "sprite.png"))
    assert sprite.shape == (64, 64, 3)  # ceil(sqrt(10)) = 4 thumbnails of 16 px per side
    config = (out / "projector_config.pbtxt").read_text()
    assert 'tensor_path: "tensors.tsv"' in config and "single_image_dim: 16" in config
    result.plot(path=tmp_path / "scatter.png")
    assert (tmp_path / "scatter.png").stat().st_size > 1000


def test_state_is_left_as_found(models):
    model = models[1]
    model.train()
    embed(model, "7", shapes(8)[0], method="pca")
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())
    model.eval()


def test_bad_arguments_name_the_value(models):
    model = models[1]
    x, _ = shapes(10)
    with pytest.raises(ValueError, match=r"perplexity=30\.0 needs more than 30 images, got 10"):
        embed(model, "7", x)
    with pytest.raises(ValueError, match="'umap'"):
        embed(model, "7", x, method="umap")
    with pytest.raises(ValueError, match="dims must be 2 or 3, got 4"):
        embed(model, "7", x, dims=4)
    with pytest.raises(ValueError, match="3 labels for 10 images"):
        embed(model, "7", x, method="pca", labels=[0, 1, 0])
    with pytest.raises(ValueError, match="closest valid names"):
        embed(model, "layer9", x, method="pca")
    with pytest.raises(ValueError, match=r"shape \(10, 2, 1\)"):
        embed(nn.Sequential(model, nn.Unflatten(1, (2, 1))), "1", x, method="pca")
