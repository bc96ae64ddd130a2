"""Faithfulness: do the pixels a map ranks first drive the target's score?

- :func:`deletion` / :func:`insertion` (Petsiuk et al. 2018, RISE): remove (insert) the pixels from
  the most relevant down in ``steps`` equal shares, replaced by a baseline, and score the target at
  each step; beside the same curve for a random ranking of the pixels.
- :func:`road` (Rong et al. 2022): the target's score change when the most (least) relevant pixels
  are replaced by noisy linear imputation, as pytorch-grad-cam's ``ROADMostRelevantFirst`` /
  ``ROADLeastRelevantFirst``.

All ``K`` targets are scored from shared forward passes in batches of ``batch_size`` on the model's
device (an input several targets need, such as the fully perturbed image, a random ranking or the
steps of a map that several targets share, runs once for all of them); targets are bound at the
unperturbed batch (``Class()`` keeps its argmax, ``Segment`` its predicted pixels), and a
:class:`~areacam.ReconstructionError` compares the output with the perturbed input the model saw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from areacam._util.checks import check_int
from areacam.metrics.baselines import Baseline, check_removal_baseline, fill_image, impute_rows
from areacam.metrics.catalog import describe
from areacam.metrics.maps import MapsLike, resolve_maps
from areacam.metrics.result import Curves
from areacam.metrics.scoring import Scorer
from areacam.targets.base import Target

__all__ = ["deletion", "insertion", "removal_ranks", "road"]

MapsOrExplainer = MapsLike | Callable[..., Any]


def _generator(random_state: int | torch.Generator | None) -> torch.Generator | None:
    if random_state is None or isinstance(random_state, torch.Generator):
        return random_state
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise TypeError(f"random_state must be an int, a torch.Generator or None, got {random_state!r}")
    return torch.Generator().manual_seed(int(random_state))


def removal_ranks(maps: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Position of each pixel in the removal order, most relevant first: ``(B, K, H*W)`` long.

    Ties (e.g. the zeros of a CAM after its ReLU) are ordered at random, so a plateau is not
    removed in raster order.
    """
    flat = maps.flatten(2).cpu()
    shuffle = torch.rand(flat.shape, generator=generator).argsort(dim=2)
    order = shuffle.gather(2, flat.gather(2, shuffle).argsort(dim=2, descending=True, stable=True))
    ranks = torch.empty_like(order)
    ranks.scatter_(2, order, torch.arange(order.shape[2]).expand_as(order).contiguous())
    return ranks.to(maps.device)


def _curves(
    kind: str,
    model: nn.Module,
    x: Tensor,
    targets: Target | Sequence[Target],
    maps: MapsOrExplainer,
    steps: int,
    baseline: Baseline,
    batch_size: int,
    random: bool,
    random_state: int | torch.Generator | None,
    noise: float,
    progress: bool | None,
    forward_args: Sequence[Any],
    forward_kwargs: Mapping[str, Any] | None,
) -> Curves:
    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size)
    scorer = Scorer(model, x, targets, batch_size, forward_args, forward_kwargs, f"{kind}(...)")
    x = scorer.x
    check_removal_baseline(baseline, x)
    maps = resolve_maps(maps, x, scorer.targets, scorer.fwd)
    if maps.shape[1] != len(scorer.targets):
        raise ValueError(f"maps hold {maps.shape[1]} targets but {len(scorer.targets)} targets were given")
    generator = _generator(random_state)
    batch, count = maps.shape[:2]
    pixels = maps.shape[2] * maps.shape[3]
    device = x.device
    ranks = removal_ranks(maps, generator).flatten(0, 1)  # (B*K, HW): row b*K + k
    if random:
        shuffled = torch.stack([torch.randperm(pixels, generator=generator) for _ in range(batch)]).to(device)
        ranks = torch.cat([ranks, shuffled])  # random ranking of sample b: row B*K + b
    removed = torch.round(torch.arange(steps + 1, dtype=torch.float64) * pixels / steps).long().to(device)
    inner = torch.arange(1, steps, device=device)

    # Rows: the fully perturbed image of each sample and its random ranking, scored for all
    # targets; then the steps of each distinct map of a sample, scored for every target with that
    # map (targets whose maps are equal, e.g. a target-independent EigenCAM, share their inputs).
    samples: list[Tensor] = []
    ranking: list[Tensor] = []
    step: list[Tensor] = []
    needs: list[Tensor] = []
    first_row = torch.zeros(batch, count, dtype=torch.long)  # row of step 1 of each (b, k) curve
    rows = 0

    def add(b: int, rank_row: int, at: Tensor, need: Tensor) -> None:
        nonlocal rows
        samples.append(torch.full_like(at, b))
        ranking.append(torch.full_like(at, rank_row))
        step.append(at)
        needs.append(need.expand(len(at), count))
        rows += len(at)

    everyone = torch.ones(count, dtype=torch.bool, device=device)
    for b in range(batch):
        add(b, -1, torch.tensor([steps if kind == "deletion" else 0], device=device), everyone)
    if random:
        for b in range(batch):
            add(b, batch * count + b, inner, everyone)
    for k in range(count):
        for b in range(batch):
            same = next((j for j in range(k) if torch.equal(maps[b, j], maps[b, k])), None)
            if same is not None:
                first_row[b, k] = first_row[b, same]
                continue
            group = torch.tensor([torch.equal(maps[b, j], maps[b, k]) for j in range(count)], device=device)
            first_row[b, k] = rows
            add(b, b * count + k, inner, group)
    row_sample, row_ranking, row_step = torch.cat(samples), torch.cat(ranking), torch.cat(step)
    row_needs = torch.cat(needs)
    fill = fill_image(baseline, x)
    height, width = x.shape[2:]

    def build(start: int, stop: int) -> Tensor:
        rows = slice(start, stop)
        rank = ranks[row_ranking[rows].clamp(min=0)]
        gone = removed[row_step[rows]][:, None]
        # Deletion shows the pixels not removed yet, insertion those put back; the fully perturbed
        # rows (deletion's last step, insertion's first) show none whatever ranking they read.
        shown = (rank >= gone if kind == "deletion" else rank < gone).view(-1, 1, height, width)
        if fill is None:
            return impute_rows(x, row_sample[rows], shown[:, 0], noise, generator)
        return torch.where(shown, x[row_sample[rows]], fill[row_sample[rows]])

    scores = scorer.score(row_sample, row_needs, build, desc=kind.capitalize(), progress=progress)
    original = scorer.original
    empty = scores[:batch]  # (B, K)
    at = (first_row[..., None] + torch.arange(steps - 1)).to(device)  # (B, K, steps - 1) rows
    own = scores[at, torch.arange(count, device=device)[None, :, None].expand_as(at)]
    first, last = (original, empty) if kind == "deletion" else (empty, original)
    curve = torch.cat([first[..., None], own, last[..., None]], dim=2)
    random_curve = None
    if random:
        rand = scores[batch : batch + batch * (steps - 1)].view(batch, steps - 1, count).transpose(1, 2)
        random_curve = torch.cat([first[..., None], rand, last[..., None]], dim=2)
    return Curves.build(kind, curve, random_curve, original, empty, baseline, scorer.targets)


@describe("deletion", "faithfulness", higher_is_better=False)
def deletion(
    model: nn.Module,
    x: Tensor,
    targets: Target | Sequence[Target],
    maps: MapsOrExplainer,
    steps: int = 20,
    baseline: Baseline = "blur",
    batch_size: int = 64,
    random: bool = True,
    random_state: int | torch.Generator | None = 0,
    noise: float = 0.01,
    progress: bool | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: Mapping[str, Any] | None = None,
) -> Curves:
    """Deletion curves: the target's score as the most relevant pixels are removed first.

    Args:
        model: the model (left as found; run in eval mode without gradients).
        x: ``(B, C, H, W)`` inputs on the model's device.
        targets: one target or ``K``.
        maps: ``(B, K, H, W)`` maps (an :class:`~areacam.Explanation` or its ``maps``), or an
            explainer, called as ``maps(x, targets)``.
        steps: the pixels are removed in ``steps`` equal shares: the curve has ``steps + 1`` points,
            from the intact image (fraction 0) to the fully removed one (fraction 1).
        baseline: what replaces a removed pixel: ``"blur"`` (a Gaussian blur of the image, sigma
            ``max(H, W) / 32``), ``"mean"`` (the image's per-channel mean), ``"zero"``,
            ``"noisy_linear"`` (ROAD's imputation from the remaining pixels, noise ``noise``), a
            float or a ``(C, H, W)`` / ``(B, C, H, W)`` tensor.
        batch_size: perturbed inputs per forward pass (all targets and steps are mixed in batches).
        random: also score a random ranking of the pixels (one per sample, shared by its targets).
        random_state: seeds the random ranking, the tie-breaking among equal map values and the
            imputation noise (``None``: torch's global generator).
        progress: tqdm bar; ``None`` shows it for 20 batches or more.
        forward_args, forward_kwargs: extra model arguments, ``model(x, *forward_args,
            **forward_kwargs)``; a per-sample tensor (leading dim ``B``) follows its sample into every
            perturbed input, and an explainer given as ``maps`` receives them too.

    Returns:
        :class:`Curves` with ``scores`` ``(B, K, steps + 1)`` (raw target scores), ``curves``
        (normalised: 1 at the intact image, 0 at the fully removed one), ``auc`` ``(B, K)``
        (lower = more faithful), ``defined`` ``(B, K)`` (where the normalisation means something:
        AUCs then lie in ``[-1, 2]``; see :class:`Curves`) and the same for the random ranking.
    """
    return _curves(
        "deletion",
        model,
        x,
        targets,
        maps,
        steps,
        baseline,
        batch_size,
        random,
        random_state,
        noise,
        progress,
        forward_args,
        forward_kwargs,
    )


@describe("insertion", "faithfulness", higher_is_better=True)
def insertion(
    model: nn.Module,
    x: Tensor,
    targets: Target | Sequence[Target],
    maps: MapsOrExplainer,
    steps: int = 20,
    baseline: Baseline = "blur",
    batch_size: int = 64,
    random: bool = True,
    random_state: int | torch.Generator | None = 0,
    noise: float = 0.01,
    progress: bool | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: Mapping[str, Any] | None = None,
) -> Curves:
    """Insertion curves: the target's score as the most relevant pixels are put back first.

    Starts from the fully removed image (the ``baseline`` everywhere) and restores the pixels in
    the map's order; arguments as :func:`deletion`. Normalised curves run from 0 (nothing inserted)
    to 1 (the intact image); a higher ``auc`` is more faithful.
    """
    return _curves(
        "insertion",
        model,
        x,
        targets,
        maps,
        steps,
        baseline,
        batch_size,
        random,
        random_state,
        noise,
        progress,
        forward_args,
        forward_kwargs,
    )


def _check_percentiles(percentiles: Sequence[float]) -> list[float]:
    if isinstance(percentiles, (int, float)):
        percentiles = [percentiles]
    values = list(percentiles)
    if not values:
        raise ValueError("percentiles is empty: give at least one value in (0, 100)")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"percentiles must be numbers in (0, 100), got {value!r}")
        if not 0 < value < 100:
            raise ValueError(f"percentile {value} is outside (0, 100)")
    return [float(v) if not float(v).is_integer() else int(v) for v in values]


@describe("road", "faithfulness", higher_is_better=True)
def road(
    model: nn.Module,
    x: Tensor,
    targets: Target | Sequence[Target],
    maps: MapsOrExplainer,
    percentiles: Sequence[float] = (10, 20, 30, 40, 50, 60, 70, 80, 90),
    order: str = "most",
    noise: float = 0.01,
    random_state: int | torch.Generator | None = None,
    batch_size: int = 64,
    progress: bool | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: Mapping[str, Any] | None = None,
) -> Tensor:
    """ROAD: target score on the imputed input minus the original score, ``(B, K, P)``.

    As pytorch-grad-cam: for percentile ``p`` and ``order="most"`` the pixels below the map's
    ``p``-th percentile (``np.percentile``) are kept and the others (the most relevant
    ``100 - p`` %) replaced by noisy linear imputation; ``order="least"`` does the same on
    ``1 - map``, removing the least relevant pixels. A faithful map makes the score drop fast under
    ``"most"`` and little under ``"least"``. With ``random_state=None`` the noise comes from torch's
    global generator drawn in the reference's order (percentile, then sample, then target), so
    ``torch.manual_seed`` reproduces pytorch-grad-cam's numbers exactly. ``forward_args`` /
    ``forward_kwargs``: extra model arguments, as :func:`deletion`.
    """
    if order not in ("most", "least"):
        raise ValueError(f"order must be 'most' or 'least' (relevant first), got {order!r}")
    percentiles = _check_percentiles(percentiles)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        raise ValueError(f"noise must be a number >= 0, got {noise!r}")
    batch_size = check_int("batch_size", batch_size)
    scorer = Scorer(model, x, targets, batch_size, forward_args, forward_kwargs, "road(...)")
    x = scorer.x
    maps = resolve_maps(maps, x, scorer.targets, scorer.fwd)
    if maps.shape[1] != len(scorer.targets):
        raise ValueError(f"maps hold {maps.shape[1]} targets but {len(scorer.targets)} targets were given")
    generator = _generator(random_state)
    batch, count = maps.shape[:2]
    cpu_maps = maps.float().cpu()
    grid = torch.cartesian_prod(
        torch.arange(len(percentiles)), torch.arange(batch), torch.arange(count)
    )  # rows in the reference's order: percentile, sample, target
    samples = grid[:, 1].to(x.device)
    needs = torch.nn.functional.one_hot(grid[:, 2], count).bool().to(x.device)

    def build(start: int, stop: int) -> Tensor:
        keep = []
        for p, b, k in grid[start:stop].tolist():
            relevance = cpu_maps[b, k] if order == "most" else 1 - cpu_maps[b, k]
            keep.append(relevance < np.percentile(relevance.numpy(), percentiles[p]))
        return impute_rows(x, samples[start:stop], torch.stack(keep), noise, generator)

    scores = scorer.score(samples, needs, build, desc="ROAD", progress=progress).sum(1)
    scores = scores.view(len(percentiles), batch, count).permute(1, 2, 0)
    return (scores - scorer.original[..., None]).float()
