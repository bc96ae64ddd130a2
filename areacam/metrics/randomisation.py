"""Sanity checks (Adebayo et al. 2018): do the maps change when what they should depend on changes?

- :func:`randomisation`: model-parameter randomisation, cascading from the output layer down (each
  step keeps the layers above randomised) or one layer at a time (``"independent"``).
- :func:`random_logit`: the map of each class target beside the map of a random other class.

Both report Spearman rank correlation and SSIM to the original maps; a method whose maps stay
similar (Spearman near 1) does not depend on what it claims to explain. The model passed in is
never modified: the checks randomise a deep copy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from areacam._util.progress import progress_bar, shown
from areacam.core.explainer import Explainer
from areacam.core.forward import NO_ARGS, ForwardArgs
from areacam.core.forward import forward_args as pack_forward_args
from areacam.core.inputs import check_input
from areacam.core.state import explaining
from areacam.layers.find import resolve_layer
from areacam.layers.hooks import Hooks
from areacam.metrics.maps import as_maps, flat_maps
from areacam.metrics.similarity import spearman, ssim
from areacam.targets.base import Target, as_target_list
from areacam.targets.scalar import Class

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["Randomisation", "Similarity", "random_logit", "randomisable_layers", "randomisation"]

ExplainerFactory = Callable[[nn.Module], Any] | Explainer


@dataclass
class Randomisation:
    """Maps after each randomisation step and their similarity to the original maps.

    - ``order``: ``"cascading"`` or ``"independent"``; ``layers``: the ``L`` randomised layers in
      order (cascading: step ``i`` has layers ``0..i`` randomised).
    - ``maps`` ``(L + 1, B, K, H, W)``: the original maps, then those after each step.
    - ``spearman``, ``ssim`` ``(L, B, K)``: similarity of each step's maps to the original ones.
    - ``degenerate`` ``(L + 1, B, K)``: the map is constant (Spearman is then 0).
    """

    order: str
    layers: list[str]
    maps: Tensor
    spearman: Tensor
    ssim: Tensor
    degenerate: Tensor
    targets: list = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Plain numbers for JSON: mean Spearman and SSIM per step (over samples and targets)."""
        return {
            "order": self.order,
            "layers": list(self.layers),
            "spearman": self.spearman.flatten(1).mean(1).tolist(),
            "ssim": self.ssim.flatten(1).mean(1).tolist(),
            "degenerate": self.degenerate.flatten(1).float().mean(1).tolist(),
            "targets": [repr(t) for t in self.targets],
        }

    def plot(self, images: Any = None, sample: int = 0, target: int = 0, path: str | Path | None = None) -> Figure:
        """The strip of maps (original, then each step) for one sample and target, and the similarity curves."""
        from areacam.metrics.plots import randomisation_figure

        return randomisation_figure(self, images=images, sample=sample, target=target, path=path)


@dataclass
class Similarity:
    """``spearman`` and ``ssim`` ``(B, K)`` between two sets of maps, and the targets compared with."""

    spearman: Tensor
    ssim: Tensor
    others: list = field(default_factory=list)


def _execution_order(model: nn.Module, x: Tensor, fwd: ForwardArgs = NO_ARGS) -> list[str]:
    """Names of the modules in the order their forward calls finish on ``x``."""
    names: list[str] = []
    with Hooks() as hooks:
        for name, module in model.named_modules():
            if name:
                hooks.add(module.register_forward_hook(lambda m, i, o, name=name: names.append(name)))
        with explaining(model), torch.no_grad():
            fwd.run(model, x)
    return list(dict.fromkeys(names))


def randomisable_layers(model: nn.Module, x: Tensor, fwd: ForwardArgs = NO_ARGS) -> list[str]:
    """Modules holding their own parameters, from the output down (reverse order of execution on ``x``).

    These are the layers Quantus's ``ModelParameterRandomisation`` resets (every module with
    parameters and ``reset_parameters``, e.g. convolutions, linear and normalisation layers),
    ordered by when they run rather than by registration. ``fwd``: the model's extra arguments for ``x``.
    """
    modules = dict(model.named_modules())
    ran = _execution_order(model, x[:1], fwd.take(slice(0, 1)))
    owning = [name for name in ran if any(True for _ in modules[name].parameters(recurse=False))]
    return owning[::-1]


def _randomise(module: nn.Module, seed: int) -> None:
    """Re-initialise every parameterised submodule of ``module`` (its ``reset_parameters``, or a
    normal draw with the parameter's own standard deviation), seeded."""
    device = next(module.parameters()).device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for sub in module.modules():
            own = list(sub.parameters(recurse=False))
            if not own:
                continue
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()
            else:
                for param in own:
                    param.copy_(torch.randn_like(param) * param.std().clamp(min=1e-3))


def _copy_with_explainer(explainer_factory: ExplainerFactory, model: nn.Module) -> tuple[nn.Module, Any]:
    """A deep copy of ``model`` and an explainer bound to it (from a factory, or a copied explainer)."""
    memo: dict[int, Any] = {}
    copied = copy.deepcopy(model, memo)
    if isinstance(explainer_factory, Explainer):
        if explainer_factory.model is not model:
            raise ValueError("the explainer explains a different model from the one given")
        return copied, copy.deepcopy(explainer_factory, memo)  # its model and layer map onto the copy
    if not callable(explainer_factory):
        raise TypeError(
            f"explainer_factory must be an explainer or a callable model -> explainer, got {explainer_factory!r}; "
            'e.g. lambda m: ac.GradCAM(m, "layer4")'
        )
    return copied, explainer_factory(copied)


def randomisation(
    explainer_factory: ExplainerFactory,
    model: nn.Module,
    x: Tensor,
    targets: Target | Sequence[Target],
    order: str = "cascading",
    layers: Sequence[str] | None = None,
    random_state: int = 0,
    progress: bool | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: Mapping[str, Any] | None = None,
) -> Randomisation:
    """Model-parameter randomisation test: maps after re-initialising layers, compared with the originals.

    Args:
        explainer_factory: ``model -> explainer`` (e.g. ``lambda m: ac.GradCAM(m, "layer4")``),
            called once on a deep copy of ``model``; or an explainer of ``model``, copied with it.
        model: the trained model; never modified.
        x: the inputs to explain, as for an explainer call.
        targets: one target or ``K``, as for an explainer call.
        order: ``"cascading"`` (randomise from the output layer down, keeping the layers above
            randomised) or ``"independent"`` (one layer at a time, the others trained).
        layers: names of the modules to randomise, each step re-initialising everything inside one
            (e.g. ``["classifier", "features.block5", "features.block4"]``); default
            :func:`randomisable_layers`, every module with its own parameters from the output down.
        random_state: seeds the re-initialisation (step ``i`` uses ``random_state + i``).
        progress: tqdm bar over the steps; ``None`` shows it for 20 steps or more.
        forward_args, forward_kwargs: extra model arguments, handed on to every explainer call.

    Returns:
        :class:`Randomisation` with ``spearman`` and ``ssim`` ``(L, B, K)``.
    """
    if order not in ("cascading", "independent"):
        raise ValueError(f"order must be 'cascading' or 'independent', got {order!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    targets = as_target_list(targets)
    x = check_input(model, x)
    fwd = pack_forward_args(model, x, forward_args, forward_kwargs, "randomisation(...)")
    copied, explainer = _copy_with_explainer(explainer_factory, model)
    if layers is None:
        names = randomisable_layers(copied, x, fwd)
    else:
        if isinstance(layers, str):
            layers = [layers]
        names = list(layers)
        for name in names:
            if not any(True for _ in resolve_layer(copied, name).parameters()):
                raise ValueError(f"layer {name!r} has no parameters to randomise")
    if not names:
        raise ValueError("the model has no parameterised layer to randomise")
    original = as_maps(explainer(x, targets, **fwd.passed_on()))
    maps, rho, structure = [original], [], []
    with progress_bar(len(names), "Randomisation", shown(progress, len(names)), leave=False) as bar:
        for step, name in enumerate(names):
            module = resolve_layer(copied, name)
            saved = copy.deepcopy(module.state_dict()) if order == "independent" else None
            _randomise(module, random_state + step)
            current = as_maps(explainer(x, targets, **fwd.passed_on()))
            maps.append(current)
            rho.append(spearman(original, current))
            structure.append(ssim(original, current))
            if saved is not None:
                module.load_state_dict(saved)
            bar.update(1)
    stacked = torch.stack(maps)
    return Randomisation(
        order=order,
        layers=names,
        maps=stacked,
        spearman=torch.stack(rho),
        ssim=torch.stack(structure),
        degenerate=flat_maps(stacked.flatten(0, 1)).view(stacked.shape[:3]),
        targets=targets,
    )


def random_logit(
    explainer: Any,
    x: Tensor,
    targets: Class | Sequence[Class],
    others: Sequence[Target] | None = None,
    random_state: int = 0,
    forward_args: Sequence[Any] = (),
    forward_kwargs: Mapping[str, Any] | None = None,
) -> Similarity:
    """Random-logit test (Sixt et al. 2020): each class target's map beside a random other class's.

    ``targets`` are :class:`~areacam.Class` targets (the explained classes, ``Class()`` = the
    argmax); for each sample a different class is drawn uniformly (seeded by ``random_state``) and
    explained by the same explainer. ``others`` gives the K comparison targets instead (any target
    type). A map that hardly changes (Spearman, SSIM near 1) does not depend on the class.
    ``forward_args`` / ``forward_kwargs``: extra model arguments, handed on to the explainer.
    """
    columns = as_target_list(targets)
    model = getattr(explainer, "model", None)
    fwd = NO_ARGS
    if isinstance(model, nn.Module):
        x = check_input(model, x)
        fwd = pack_forward_args(model, x, forward_args, forward_kwargs, "random_logit(...)")
    elif forward_args or forward_kwargs:
        raise TypeError("random_logit passes forward arguments only to an explainer with a .model")
    if others is None:
        classes = [t for t in columns if isinstance(t, Class)]
        if len(classes) != len(columns):
            raise ValueError(
                "random_logit draws other classes only for Class targets; for region targets pass others=[...] "
                "(one comparison target per target)"
            )
        if not isinstance(model, nn.Module):
            raise TypeError("random_logit needs an explainer with a .model to read the class count from")
        with explaining(model), torch.no_grad():
            output = fwd.run(model, x)
        rng = np.random.default_rng(random_state)
        comparison: list[Target] = []
        for target in classes:
            logits = target.select(output)
            count = logits.shape[1]
            if count < 2:
                raise ValueError(f"random_logit needs at least 2 classes, the output has {count}")
            if target.index is None:
                chosen = logits.argmax(1).tolist()
            elif isinstance(target.index, (int, np.integer)):
                chosen = [int(target.index) % count] * x.shape[0]
            else:
                chosen = [int(v) % count for v in target.index]
            draws = rng.integers(0, count - 1, size=len(chosen))
            comparison.append(Class([int(d + (d >= c)) for d, c in zip(draws, chosen)], output=target.output))
    else:
        comparison = as_target_list(others)
        if len(comparison) != len(columns):
            raise ValueError(f"others holds {len(comparison)} targets for {len(columns)} targets; give one per target")
    passed = fwd.passed_on()
    first, second = as_maps(explainer(x, columns, **passed)), as_maps(explainer(x, comparison, **passed))
    return Similarity(spearman=spearman(first, second), ssim=ssim(first, second), others=comparison)
