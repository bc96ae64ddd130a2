"""The base of every explainer: it holds the model it explains, unwrapped from compile and parallel wrappers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from .explanation import Explanation
from .forward import ForwardArgs, forward_args

__all__ = ["Explainer", "unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile`` or ``(Distributed)DataParallel`` wrapper runs (repeatedly unwrapped).

    Explainers run this module eagerly on the input's device: it is the same function, and hooks
    on its layers then fire once per forward pass (a DataParallel replica would fire them once per
    device, a compiled graph would break at them).
    """
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and isinstance(
            orig := getattr(model, "_orig_mod", None), nn.Module
        ):
            model = orig
        else:
            return model


class Explainer(ABC):
    """Base of all explainers: holds the model, checked to be an ``nn.Module``.

    A ``torch.compile``d or ``(Distributed)DataParallel`` model is explained through the module it
    wraps (:func:`unwrap_model`): the same function, run eagerly on one device. A call
    (``explainer(x, targets)``) returns an :class:`~areacam.Explanation` and leaves the model as it
    found it (see :func:`~areacam.core.state.explaining`).

    ``create_graph=True`` (explainers whose class has ``keeps_graph = True``: the gradient CAMs and
    the gradient methods) keeps the graph: ``maps``, ``raw`` and ``scores`` can be differentiated with
    respect to the parameters and the input, and the model runs in the caller's train/eval mode.
    Other explainers raise ``ValueError`` naming the method.
    """

    #: Whether this method's result can carry a graph (``create_graph=True``).
    keeps_graph: bool = False

    def __init__(self, model: nn.Module, create_graph: bool = False):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if create_graph and not self.keeps_graph:
            raise ValueError(
                f"{type(self).__name__} cannot keep a graph (create_graph=True): its maps come from forward "
                "passes on perturbed inputs, a decomposition or a fit, not from gradients; use a gradient CAM "
                "(GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM) or a gradient method"
            )
        self.model = unwrap_model(model)
        self.create_graph = bool(create_graph)

    @abstractmethod
    def __call__(
        self,
        x: Tensor,
        targets: Any,
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Explain ``targets`` (a :class:`~areacam.Target` or one per column) for the input batch ``x``.

        The model runs as ``model(x, *forward_args, **forward_kwargs)``. A tensor argument whose leading
        dim is ``B`` is per sample: it follows its rows of ``x`` wherever a method repeats, perturbs or
        batches them; :class:`~areacam.Shared` keeps a tensor as it is.
        """

    def forward_args(self, x: Tensor, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> ForwardArgs:
        """The call's extra model arguments, checked against the model's forward (``TypeError`` naming this call)."""
        return forward_args(self.model, x, args, kwargs, f"{type(self).__name__}(...) call")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__})"
