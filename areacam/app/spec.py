"""Parsing the command line's target SPECs and method names into areacam objects.

SPEC grammar (one target per SPEC)::

    class[:INDEX]                      Class(INDEX); no INDEX: each image's top class
    area:TOP,LEFT,BOTTOM,RIGHT[:CH]    Area(box=...), bottom/right exclusive; CH: one channel
    pixel:Y,X[:CH]                     Pixel(Y, X)
    segment:CLS                        Segment(CLS)
    latent:K                           Latent(K): mu[:, K] of a (recon, mu, logvar) output
    recon-error[:TOP,LEFT,BOTTOM,RIGHT] ReconstructionError(box=...); no box: the whole image
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..targets import Area, Class, Latent, Pixel, ReconstructionError, Segment, Target, check_box

__all__ = [
    "METHODS",
    "SPEC_HELP",
    "Method",
    "SpecError",
    "get_method",
    "make_explainer",
    "parse_target",
    "parse_targets",
]

SPEC_HELP = (
    "class[:INDEX] | area:TOP,LEFT,BOTTOM,RIGHT[:CH] | pixel:Y,X[:CH] | segment:CLS | latent:K | "
    "recon-error[:TOP,LEFT,BOTTOM,RIGHT]"
)


class SpecError(ValueError):
    """A SPEC or method name that cannot be parsed; the message is one line."""


def _ints(text: str, count: int, what: str, spec: str) -> list[int]:
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(parts) != count or len(values) != count:
        raise SpecError(f"bad target {spec!r}: {what} must be {count} comma-separated ints, got {text!r}")
    return values


def _int(text: str, what: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SpecError(f"bad target {spec!r}: {what} must be an int, got {text!r}") from None


def _box(text: str, spec: str) -> tuple[int, int, int, int]:
    try:
        return check_box(_ints(text, 4, "the box TOP,LEFT,BOTTOM,RIGHT", spec))
    except ValueError as error:  # the targets' own box check, reworded for the command line
        if isinstance(error, SpecError):
            raise
        raise SpecError(f"bad target {spec!r}: {error}") from None


def parse_target(spec: str) -> Target:
    """Turn one SPEC string into a :class:`~areacam.targets.Target` (``SpecError`` if malformed)."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"empty target spec; expected one of: {SPEC_HELP}")
    kind, _, rest = spec.strip().partition(":")
    kind = kind.lower()
    args = rest.split(":") if rest else []
    if kind == "class":
        if len(args) > 1:
            raise SpecError(f"bad target {spec!r}: expected class or class:INDEX")
        return Class(_int(args[0], "INDEX", spec) if args else None)
    if kind in ("area", "pixel"):
        if not 1 <= len(args) <= 2:
            form = "area:TOP,LEFT,BOTTOM,RIGHT[:CH]" if kind == "area" else "pixel:Y,X[:CH]"
            raise SpecError(f"bad target {spec!r}: expected {form}")
        channel = _int(args[1], "CH", spec) if len(args) == 2 else None
        if kind == "area":
            return Area(box=_box(args[0], spec), channel=channel)
        y, x = _ints(args[0], 2, "Y,X", spec)
        if min(y, x) < 0:
            raise SpecError(f"bad target {spec!r}: pixel coordinates must be >= 0")
        return Pixel(y, x, channel=channel)
    if kind in ("segment", "latent"):
        if len(args) != 1:
            raise SpecError(f"bad target {spec!r}: expected {kind}:{'CLS' if kind == 'segment' else 'K'}")
        value = _int(args[0], "CLS" if kind == "segment" else "K", spec)
        if value < 0:
            raise SpecError(f"bad target {spec!r}: the index must be >= 0")
        return Segment(value) if kind == "segment" else Latent(value)
    if kind in ("recon-error", "recon_error", "reconstruction-error"):
        if len(args) > 1:
            raise SpecError(f"bad target {spec!r}: expected recon-error or recon-error:TOP,LEFT,BOTTOM,RIGHT")
        return ReconstructionError(box=_box(args[0], spec) if args else None)
    raise SpecError(f"unknown target kind {kind!r} in {spec!r}; expected one of: {SPEC_HELP}")


def parse_targets(specs: list[str]) -> list[Target]:
    """Parse every SPEC (all are checked before anything runs)."""
    if not specs:
        raise SpecError(f"no --target given; expected one or more of: {SPEC_HELP}")
    return [parse_target(spec) for spec in specs]


Size = tuple[int, ...]
Builder = Callable[[nn.Module, "nn.Module | None", Size], Callable]


@dataclass(frozen=True)
class Method:
    """A method the command line offers: its name, whether it needs ``--layer``, and a builder.

    Every builder has one signature: ``build(model, layer, size)`` with ``layer`` the resolved
    module (``None`` for methods without a layer) and ``size`` the input's spatial size.
    """

    name: str
    needs_layer: bool
    build: Builder
    help: str


def _lime(model: nn.Module, layer: nn.Module | None, size: Size) -> Callable:
    try:
        from ..lime import Lime
    except ImportError as err:  # pragma: no cover - depends on the install
        raise SpecError(f"method 'lime' is unavailable: {err}") from None
    if min(size) < 64:  # quickshift finds too few superpixels on small images
        segments = max(4, min(50, size[0] * size[1] // 16))
        return Lime(model, num_samples=300, batch_size=50, random_state=0, segmentation="slic",
                    segmentation_params={"n_segments": segments}, progress=False)
    return Lime(model, num_samples=300, batch_size=50, random_state=0, progress=False)


def _occlusion(model: nn.Module, layer: nn.Module | None, size: Size) -> Callable:
    from ..perturbation import Occlusion

    window = max(1, min(size) // 8)  # 8 windows across the shorter side, overlapping by half
    return Occlusion(model, window, max(1, window // 2))


def _methods() -> dict[str, Method]:
    from ..cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
    from ..cam_free import AblationCAM, EigenCAM, ScoreCAM
    from ..gradients import GuidedBackprop, GuidedGradCAM, InputXGradient, Saliency, SmoothGrad
    from ..integrated import IntegratedGradients

    def cam(cls: type, **kw: object) -> Builder:
        return lambda model, layer, size: cls(model, layer, **kw)

    def grad(cls: type, **kw: object) -> Builder:
        return lambda model, layer, size: cls(model, **kw)

    table = [
        Method("gradcam", True, cam(GradCAM), "Grad-CAM"),
        Method("gradcam++", True, cam(GradCAMPlusPlus), "Grad-CAM++"),
        Method("hirescam", True, cam(HiResCAM), "HiResCAM"),
        Method("layercam", True, cam(LayerCAM), "LayerCAM"),
        Method("xgradcam", True, cam(XGradCAM), "XGrad-CAM"),
        Method("scorecam", True, cam(ScoreCAM), "Score-CAM (a forward pass per layer channel)"),
        Method("ablationcam", True, cam(AblationCAM), "Ablation-CAM (a forward pass per layer channel)"),
        Method("eigencam", True, cam(EigenCAM), "Eigen-CAM (the same map for every target)"),
        Method("guided-gradcam", True, cam(GuidedGradCAM), "guided backprop x Grad-CAM"),
        Method("saliency", False, grad(Saliency), "input gradient"),
        Method("guided-backprop", False, grad(GuidedBackprop), "guided backpropagation"),
        Method("smoothgrad", False, grad(SmoothGrad, num_samples=16, random_state=0), "SmoothGrad (16 samples)"),
        Method("inputxgradient", False, grad(InputXGradient), "input x gradient"),
        Method("integrated-gradients", False, grad(IntegratedGradients, batch_size=32),
               "Integrated Gradients (zero baseline, 50 Gauss-Legendre steps)"),
        Method("occlusion", False, _occlusion, "Occlusion (window 1/8 of the image, stride half of it)"),
        Method("lime", False, _lime, "LIME over superpixels (300 samples)"),
    ]
    return {m.name: m for m in table}


METHODS: dict[str, Method] = _methods()


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name`` (``SpecError`` listing valid names otherwise)."""
    key = name.lower().replace("_", "-")
    aliases = {"gradcampp": "gradcam++", "grad-cam": "gradcam", "guided-backpropagation": "guided-backprop",
               "score-cam": "scorecam", "ablation-cam": "ablationcam", "xgrad-cam": "xgradcam",
               "eigen-cam": "eigencam", "ig": "integrated-gradients", "integratedgradients": "integrated-gradients"}
    key = aliases.get(key, key)
    if key not in METHODS:
        raise SpecError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[key]


def method_layer(method: Method, model: nn.Module, layer: str | None) -> nn.Module | None:
    """Resolve ``--layer`` once for ``method``: the module, or ``None`` for methods without a layer."""
    if not method.needs_layer:
        return None
    if not layer:
        raise SpecError(f"method {method.name!r} needs --layer NAME; list candidates with 'areacam layers --model ...'")
    from ..layers import resolve_layer

    return resolve_layer(model, layer)


def make_explainer(method: Method, model: nn.Module, layer: nn.Module | None, size: Size) -> Callable:
    """Build the explainer from the layer :func:`method_layer` resolved and the input's spatial ``size``."""
    return method.build(model, layer, tuple(size))
