"""areacam.metrics on a small segmenter trained in the test on generated shapes with exact masks:
a real map beats a deliberately bad one, Grad-CAM fails randomisation as it should, layers rank."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from _numerics import assert_close, assert_identical, reduction
from torch import nn

import areacam as ac
from areacam import data, metrics

pytestmark = pytest.mark.usefixtures("one_thread")

LAYER = "5"  # the last hidden ReLU of the segmenter below, at full resolution


def _segmenter() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 12, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(12, 12, 3, padding=2, dilation=2),
        nn.ReLU(),
        nn.Conv2d(12, 12, 3, padding=4, dilation=4),
        nn.ReLU(),
        nn.Conv2d(12, 2, 1),
    )


@pytest.fixture(scope="module")
def trained(one_thread):
    """A foreground/background segmenter of the shapes (test IoU ~0.9 after 2-3 s), and 8 unseen images."""
    images, _, labels = data.shapes(168, size=32, random_state=0)
    foreground = (labels > 0).long()
    torch.manual_seed(0)
    model = _segmenter()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(80):
        batch = torch.randint(0, 160, (16,), generator=generator)
        loss = F.cross_entropy(model(images[batch]), foreground[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    x, masks = images[160:], foreground[160:].bool()
    with torch.no_grad():
        predicted = model(x).argmax(1).bool()
    assert ((predicted & masks).sum() / (predicted | masks).sum()) > 0.7  # it did learn the shapes
    return model, x, masks


def test_a_real_map_beats_its_flip_and_a_random_map(trained):
    model, x, masks = trained
    target = ac.Segment(1)
    maps = ac.HiResCAM(model, LAYER)(x, target).maps
    bad = {
        "flip": torch.flip(maps, dims=(2, 3)),
        "random": torch.rand(maps.shape, generator=torch.Generator().manual_seed(0)),
    }
    scores = {}
    for name, candidate in {"true": maps, **bad}.items():
        evaluation = metrics.evaluate(
            model,
            x,
            target,
            candidate,
            masks=masks,
            steps=8,
            metrics=["deletion", "insertion", "road", *metrics.catalog.names(needs_masks=True)],
            percentiles=(30, 70),
        )
        scores[name] = evaluation.means()
    for name in bad:
        assert scores["true"]["deletion_auc"] < scores[name]["deletion_auc"], name
        for metric in ("insertion_auc", "road", "pointing_game", "relevance_mass", "relevance_rank", "iou"):
            assert scores["true"][metric] > scores[name][metric], (name, metric)
    assert scores["true"]["deletion_auc"] < scores["true"]["deletion_random_auc"]
    assert scores["true"]["relevance_mass"] > scores["true"]["mask_share"]  # better than chance
    json.dumps(evaluation.to_dict())


def test_gradcam_maps_change_under_cascading_randomisation_and_the_model_does_not(trained):
    model, x, _ = trained
    before = copy.deepcopy(model.state_dict())
    result = metrics.randomisation(lambda m: ac.GradCAM(m, LAYER), model, x, ac.Segment(1))
    assert result.layers == ["6", "4", "2", "0"]  # parameterised layers, output first
    assert result.spearman.shape == result.ssim.shape == (4, 8, 1)
    assert result.maps.shape == (5, 8, 1, 32, 32)
    assert result.spearman[1:].mean(dim=(1, 2)).lt(0.5).all()  # below the top layer the maps are gone
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    independent = metrics.randomisation(ac.GradCAM(model, LAYER), model, x, ac.Segment(1), order="independent")
    # Randomising the top layer alone is the first cascading step: the same maps.
    assert_identical(independent.maps[:2], result.maps[:2])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    fig = result.plot(x)
    assert len(fig.axes) == 5 + 1


def test_rank_layers_orders_by_the_metric_it_reports(trained):
    model, x, masks = trained
    assert metrics.candidate_layers(model, x) == [LAYER]  # one resolution: the last hidden ReLU
    layers = ["1", "3", "5"]
    ranking = metrics.rank_layers(model, x, ac.Segment(1), masks=masks, metric="relevance_mass", layers=layers)
    assert sorted(ranking.layers) == layers and ranking.higher_is_better
    assert (ranking.scores[:-1] >= ranking.scores[1:]).all()
    maps = ac.GradCAM(model, ranking.best)(x, ac.Segment(1)).maps
    mass = metrics.relevance_mass(maps, masks)  # the same 8 values, averaged in another order (rule 3)
    assert_close(ranking.scores[:1], mass.mean().view(1), reduction(mass.numel()) * mass.abs().mean(), "mean")
    assert set(ranking.extra) == {"pointing_game"} and "| 1 |" in ranking.table()
    deletion = metrics.rank_layers(model, x, ac.Segment(1), layers=layers, steps=4)
    assert not deletion.higher_is_better and (deletion.scores[:-1] <= deletion.scores[1:]).all()
    with pytest.raises(ValueError, match="masks"):
        metrics.rank_layers(model, x, ac.Segment(1), metric="iou")
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.rank_layers(model, x, ac.Segment(1), metric="auc")


def test_random_logit_explains_another_class():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(96, 5)
    ).eval()
    x = torch.rand(6, 3, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = metrics.random_logit(ac.GradCAM(model, "1"), x, [ac.Class(), ac.Class(2)])
    assert result.spearman.shape == result.ssim.shape == (6, 2)
    chosen = model(x).argmax(1).tolist()
    assert all(o != c for o, c in zip(result.others[0].index, chosen))
    assert all(o != 2 for o in result.others[1].index)
    with pytest.raises(ValueError, match="others"):
        metrics.random_logit(ac.GradCAM(model, "1"), x, ac.Score(lambda out: out[:, 0]))
