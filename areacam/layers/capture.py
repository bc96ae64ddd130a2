"""Capturing one layer's output during a forward pass: the capture every layer-based method uses."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor, nn

from areacam.core.forward import NO_ARGS, ForwardArgs
from areacam.core.outputs import replace_part
from areacam.layers.find import layer_name, resolve_layer, unwrap_model
from areacam.layers.hooks import Hooks, StopForward
from areacam.layers.layout import LayerView, Layout
from areacam.layers.provenance import Source, probe, read_or_defer

__all__ = ["LayerCapture"]


class LayerCapture:
    """A forward hook on one layer that captures its output during :meth:`run`.

    ``mode`` says what is captured and how gradients flow:

    - ``"leaf"`` (CAM methods): the picked output part becomes a fresh leaf that requires grad and
      the model continues from a clone of it (in-place ops after the layer never touch it). The
      pass runs under ``no_grad`` until the layer, with autograd on from the layer to the output,
      so no graph is built below it. The caller's grad mode is restored when :meth:`run` returns.
    - ``"value"``: the output under ``no_grad``, detached (feature maps, embeddings).
    - ``"graph"``: the output as computed, inside the caller's grad mode (gradient ascent).
    - ``"tape"`` (CAM methods with ``create_graph=True``): the output as computed, on the graph to
      the parameters and the input; the model continues from a clone of it, as in ``"leaf"`` mode.

    ``stop=True`` ends the forward pass once the layer ran (:meth:`run` then returns ``None``).
    After a run, ``value`` is the picked part as captured, ``layout`` its :class:`Layout` for the
    input (read when first used; in ``"leaf"`` mode inside the hook, so a layer that is no feature
    map fails before the rest of the model runs) and :meth:`activation` the ``(B, C, *spatial)``
    view. A shape that ties channels-first and channels-last is settled on first use from the layer's
    autograd graph (:func:`~areacam.layers.provenance.probe`: one more pass up to the layer, with this
    capture's hooks paused). Hooks come off in ``remove()`` (safe twice) and on leaving the ``with`` block, also when
    the model raises.
    """

    MODES = ("leaf", "value", "graph", "tape")

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str,
        view: LayerView | None = None,
        mode: str = "leaf",
        stop: bool = False,
    ):
        if mode not in self.MODES:
            raise ValueError(f"unknown capture mode {mode!r}; choose from {self.MODES}")
        self.model = unwrap_model(model)
        self.module = resolve_layer(model, layer)
        self.name = layer_name(model, self.module)
        self.view = view if view is not None else LayerView()
        self.mode, self.stop = mode, stop
        self.value: Tensor | None = None
        self._layout: Layout | None = None
        self.calls = 0
        self._input_size: tuple[int, ...] = ()
        self._ran: tuple[Tensor, ForwardArgs] | None = None  # the last run's input, for a tie's probe
        self._paused = False
        self._hooks = Hooks()

    @property
    def where(self) -> str:
        return f"layer {self.name!r}"

    def __enter__(self) -> LayerCapture:
        self._hooks.add(self.module.register_forward_hook(self._hook))
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the hook; safe to call more than once."""
        self._hooks.remove()

    def run(self, x: Tensor, fwd: ForwardArgs = NO_ARGS) -> object:
        """Run the model on ``x`` and the extra arguments ``fwd`` (inside ``with``); the model's output, or
        ``None`` when stopped.

        Raises ``ValueError`` when the layer did not run.
        """
        self.value, self._layout, self.calls = None, None, 0
        self._input_size = tuple(x.shape[2:])
        self._ran = (x, fwd)
        grad = torch.no_grad() if self.mode in ("leaf", "value") else nullcontext()
        output = None
        with grad:
            try:
                output = fwd.run(self.model, x)
            except StopForward:
                pass
        if self.value is None:
            raise ValueError(f"{self.where} did not run in the model's forward pass")
        return output

    @property
    def layout(self) -> Layout:
        """The :class:`Layout` of the captured output (read on first use; ``ValueError`` if it has none)."""
        if self._layout is None:
            shape = self.captured().shape
            self._layout = self.view.read(
                shape, self._input_size, self.where, self.module, self.model, settle=self._provenance
            )
        return self._layout

    def _provenance(self) -> Source | None:
        """A tied shape's layout from the layer's autograd graph (one pass up to the layer, hooks paused)."""
        if self._ran is None:
            return None
        self._paused = True
        try:
            return probe(self.model, self.module, self.view, *self._ran, self.where)
        finally:
            self._paused = False

    def _read_now(self, part: Tensor) -> Layout | None:
        """The reading of ``part`` inside the hook; ``None`` for a tie, settled after the pass (:attr:`layout`)."""
        return read_or_defer(self.view, tuple(part.shape), self._input_size, self.where, self.module, self.model)

    def activation(self) -> Tensor:
        """The captured output read as ``(B, C, *spatial)`` (a view of :attr:`value` where possible)."""
        return self.layout(self.captured())

    def captured(self) -> Tensor:
        """The captured output as the model computed it (``ValueError`` before :meth:`run`)."""
        if self.value is None:
            raise ValueError(f"{self.where} has not been captured: call run() first")
        return self.value

    def _hook(self, module: nn.Module, inputs: tuple, output: object) -> object:
        if self._paused:
            return None
        self.calls += 1
        if self.calls > 1:
            raise ValueError(
                f"{self.where} ran more than once in one forward pass; pick a module that runs once "
                "(e.g. a stage or block output, not a shared activation); inside ac.SlidingWindow, only the "
                "gradient CAMs stitch a layer that runs once per patch"
            )
        part, key = self.view.pick(output, self.where)
        if self.mode in ("leaf", "tape"):
            self._layout = self._read_now(part)
            torch.set_grad_enabled(True)  # inside run()'s no_grad: restored when run() returns
            self.value = part.detach().requires_grad_(True) if self.mode == "leaf" else part
            if self.stop:
                raise StopForward
            return replace_part(output, key, self.value.clone())
        self.value = part.detach() if self.mode == "value" else part
        if self.stop:
            raise StopForward
        return None
