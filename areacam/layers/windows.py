"""Sliding-window inference as a module: a model run on overlapping patches of a volume and blended.

:class:`SlidingWindow` computes what MONAI's ``sliding_window_inference`` computes (the same windows in
the same order, the same importance weights, the same blending), written on torch so that MONAI stays
optional and every op is differentiable: gradient, Integrated-Gradients and occlusion methods run
through it as through any model. :class:`PatchCapture` collects a layer inside it once per patch, for
the stitched CAMs of :mod:`areacam.methods.stitched`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from areacam.core.forward import NO_ARGS, ForwardArgs
from areacam.core.inputs import conv_dims
from areacam.core.outputs import replace_part
from areacam.layers.capture import LayerCapture
from areacam.layers.find import resolve_layer
from areacam.layers.layout import LayerView

__all__ = ["MODES", "Patch", "PatchCapture", "SlidingWindow", "at", "inside_window"]

#: The blending modes: equal weights, or MONAI's Gaussian (sigma = 0.125 of the window per axis).
MODES = ("constant", "gaussian")
_SIGMA_SCALE = 0.125
_MIN_WEIGHT = 1e-3  # MONAI clamps the Gaussian's weights to at least this (never a zero weight)

#: One patch: the sample it is cut from and its slices along the spatial dims.
Patch = tuple[int, tuple[slice, ...]]


class SlidingWindow(nn.Module):
    """Run ``model`` on overlapping ``roi_size`` windows of the input and blend the outputs.

    The forward equals ``monai.inferers.sliding_window_inference(x, roi_size, batch_size, model,
    overlap=overlap, mode=mode)``: windows start every ``int(roi * (1 - overlap))`` voxels per axis and
    the last one is moved back to end at the volume's edge (so any size that is at least the window
    works, multiple of it or not); ``batch_size`` windows run in one model call; each output voxel is
    the weighted mean of the windows that cover it (``"constant"``: equal weights; ``"gaussian"``:
    MONAI's Gaussian importance map). ``model`` must return one tensor with the window's spatial size.

    ``roi_size`` is an int (the same for every spatial dim of the input) or one int per spatial dim.
    Unlike MONAI, which pads a volume smaller than the window, a window larger than the volume is a
    ``ValueError``. Layer explainers given a layer inside it (``"model.<name>"``) return the per-patch
    maps stitched into the volume (:mod:`areacam.methods.stitched`).
    """

    def __init__(
        self,
        model: nn.Module,
        roi_size: int | Sequence[int],
        overlap: float = 0.25,
        mode: str = "constant",
        batch_size: int = 1,
    ):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.roi_size = _check_roi(roi_size)
        if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not 0 <= overlap < 1:
            raise ValueError(f"overlap must be a number in [0, 1), got {overlap!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.overlap, self.mode, self.batch_size = float(overlap), mode, batch_size
        if isinstance(self.roi_size, tuple):
            _check_model_dims(model, len(self.roi_size))

    def extra_repr(self) -> str:
        return f"roi_size={self.roi_size}, overlap={self.overlap}, mode={self.mode!r}, batch_size={self.batch_size}"

    def window(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """The window for a volume of ``spatial`` size (``ValueError`` where it does not fit)."""
        spatial = tuple(int(n) for n in spatial)
        roi = self.roi_size if isinstance(self.roi_size, tuple) else (self.roi_size,) * len(spatial)
        if len(roi) != len(spatial):
            raise ValueError(
                f"the window {roi} has {len(roi)} spatial dims but the input has {len(spatial)} ({spatial}); "
                f"give roi_size one int per spatial dim of the input"
            )
        if any(r > n for r, n in zip(roi, spatial)):
            raise ValueError(f"the window {roi} is larger than the volume {spatial}: pick a roi_size <= {spatial}")
        return roi

    def patches(self, shape: Sequence[int]) -> list[list[Patch]]:
        """The patches of an input of ``shape`` ``(B, C, *spatial)``, grouped by model call (MONAI's order)."""
        spatial = tuple(shape[2:])
        roi = self.window(spatial)
        starts = [_starts(n, r, self.overlap) for n, r in zip(spatial, roi)]
        grid = torch.cartesian_prod(*[torch.tensor(s) for s in starts]).reshape(-1, len(spatial)).tolist()
        slices = [tuple(slice(a, a + r) for a, r in zip(corner, roi)) for corner in grid]
        flat = [(b, s) for b in range(int(shape[0])) for s in slices]
        return [flat[i : i + self.batch_size] for i in range(0, len(flat), self.batch_size)]

    def weights(self, roi: Sequence[int], dtype: torch.dtype, device: torch.device) -> Tensor:
        """The ``(1, 1, *roi)`` importance map of one window (MONAI's ``compute_importance_map``)."""
        if self.mode == "constant":
            return torch.ones((1, 1, *roi), dtype=dtype, device=device)
        weights = torch.ones((), device=device)
        for axis, n in enumerate(roi):
            position = torch.arange(-(n - 1) / 2.0, (n - 1) / 2.0 + 1, dtype=torch.float, device=device)
            profile = torch.exp(position**2 / (-2 * (n * _SIGMA_SCALE) ** 2))
            weights = weights.unsqueeze(-1) * profile[(None,) * axis] if axis > 0 else profile
        weights = weights.clamp(min=max(weights.min().item(), _MIN_WEIGHT))
        return weights.to(dtype)[None, None]

    def coverage(self, x: Tensor, patches: list[list[Patch]], weights: Tensor) -> Tensor:
        """``(1, 1, *spatial)``: the sum of the weights of the windows covering each voxel of one sample."""
        count = torch.zeros((1, 1, *x.shape[2:]), dtype=weights.dtype, device=x.device)
        for b, where in (patch for call in patches for patch in call):
            if b == 0:
                count[at(None, None, where)] += weights
        return count

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, *spatial)`` -> the blended ``(B, K, *spatial)`` output of the model on every window."""
        if not isinstance(x, Tensor) or x.dim() < 3:
            raise ValueError(f"SlidingWindow needs a (B, C, *spatial) tensor, got {_shape(x)}")
        patches = self.patches(x.shape)
        roi = self.window(x.shape[2:])
        _check_model_dims(self.model, len(roi))
        weights = self.weights(roi, x.dtype, x.device)
        blended: Tensor | None = None
        for call in patches:
            windows = [x[at(b, None, where)] for b, where in call]
            out = self.model(windows[0] if len(windows) == 1 else torch.cat(windows))
            out = _check_output(out, len(call), roi)
            if blended is None:
                blended = torch.zeros((x.shape[0], out.shape[1], *x.shape[2:]), dtype=x.dtype, device=x.device)
            for j, (b, where) in enumerate(call):
                blended[at(b, None, where)] += out[j : j + 1] * weights
        assert blended is not None, "a volume has at least one window"
        return blended / self.coverage(x, patches, weights)


def at(sample: int | None, channel: int | None, where: tuple[slice, ...]) -> tuple[slice, ...]:
    """The index of one patch ``where`` in ``(B, C, *spatial)``: one sample and channel, or all (``None``)."""
    return (_one(sample), _one(channel), *where)


def _one(index: int | None) -> slice:
    return slice(None) if index is None else slice(index, index + 1)


def _starts(size: int, roi: int, overlap: float) -> list[int]:
    """Window starts along one axis (MONAI's ``dense_patch_slices``): every ``interval``, the last at the edge."""
    interval = roi if roi == size else max(int(roi * (1 - overlap)), 1)
    count = next(i for i in range(math.ceil(size / interval)) if i * interval + roi >= size) + 1
    return [i * interval - max(i * interval + roi - size, 0) for i in range(count)]


def _check_roi(roi_size: object) -> int | tuple[int, ...]:
    def positive(n: object) -> bool:
        return isinstance(n, int) and not isinstance(n, bool) and n > 0

    if positive(roi_size):
        return int(roi_size)  # type: ignore[call-overload]  # checked to be an int just above
    if isinstance(roi_size, Sequence) and not isinstance(roi_size, str) and 1 <= len(roi_size) <= 3:
        if all(positive(n) for n in roi_size):
            return tuple(int(n) for n in roi_size)
    raise ValueError(f"roi_size must be a positive int or 1 to 3 positive ints, got {roi_size!r}")


def _check_model_dims(model: nn.Module, dims: int) -> None:
    n = conv_dims(model)
    if n is not None and n != dims:
        raise ValueError(
            f"a {dims}-D window (roi_size of {dims} ints) for {type(model).__name__}, whose convolutions are "
            f"{n}-D: give roi_size {n} ints"
        )


def _check_output(out: object, count: int, roi: tuple[int, ...]) -> Tensor:
    if not isinstance(out, Tensor):
        raise TypeError(f"SlidingWindow needs a model that returns one tensor, got {type(out).__name__}")
    if out.dim() != len(roi) + 2 or out.shape[0] != count or tuple(out.shape[2:]) != roi:
        raise ValueError(
            f"SlidingWindow needs outputs of the window's size (n, K, *{roi}) for {count} windows, got "
            f"{tuple(out.shape)} from the model"
        )
    return out


def _shape(x: object) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__


def inside_window(model: nn.Module, layer: nn.Module | str) -> SlidingWindow | None:
    """The :class:`SlidingWindow` ``model`` when ``layer`` is a module of the model it runs, else ``None``."""
    if not isinstance(model, SlidingWindow):
        return None
    module = resolve_layer(model, layer)
    return model if any(module is m for m in model.model.modules()) else None


class PatchCapture(LayerCapture):
    """The CAMs' capture (``"leaf"`` mode) of a layer inside a :class:`SlidingWindow`, once per model call.

    After :meth:`run`, ``values[i]`` is the leaf of model call ``i`` (``(n_i, ...)``, requiring grad)
    and ``patches[i]`` the ``n_i`` patches it ran on. The layer must run once per call.
    """

    def __init__(self, window: SlidingWindow, layer: nn.Module | str, view: LayerView | None = None):
        super().__init__(window, layer, view, mode="leaf")
        self.window = window
        self.values: list[Tensor] = []
        self.patches: list[list[Patch]] = []

    def run(self, x: Tensor, fwd: ForwardArgs = NO_ARGS) -> object:
        self.patches = self.window.patches(x.shape)
        self.values, self._layout = [], None
        self._input_size = self.window.window(x.shape[2:])
        self._ran = (x, fwd)
        with torch.no_grad():
            output = fwd.run(self.model, x)
        if len(self.values) != len(self.patches):
            raise ValueError(
                f"{self.where} ran {len(self.values)} times for {len(self.patches)} window calls; a stitched CAM "
                "needs a layer that runs once per call (a stage or block output)"
            )
        self.value = self.values[0]
        return output

    def __enter__(self) -> PatchCapture:
        super().__enter__()
        self._hooks.add(self.window.model.register_forward_pre_hook(self._below))
        return self

    def _below(self, module: nn.Module, inputs: tuple) -> None:
        if not self._paused:
            torch.set_grad_enabled(False)  # no graph below the layer for any call (run() restores the mode)

    def _hook(self, module: nn.Module, inputs: tuple, output: object) -> object:
        if self._paused:
            return None
        part, key = self.view.pick(output, self.where)
        if self._layout is None:
            self._layout = self._read_now(part)
        torch.set_grad_enabled(True)  # inside run()'s no_grad: restored when run() returns
        leaf = part.detach().requires_grad_(True)
        self.values.append(leaf)
        return replace_part(output, key, leaf.clone())
