"""areacam: explain any region of any dense output.

Targets turn a model output into per-sample scores; explainers turn scores into maps::

    import areacam as ac
    expl = ac.GradCAM(model, "encoder.layer4")(x, [ac.Area(box=(8, 8, 24, 24)), ac.Segment(2)])
    expl.maps  # (B, K, H, W) in [0, 1]

The package is a house of folders by role (docs/architecture.md): ``core`` (the call protocol and the
result), ``targets``, ``layers``, ``methods``, ``metrics``, ``inspect``, ``viz``, ``runs``, ``data``,
``losses`` (losses on explanations), ``callbacks`` (explanations during training), ``models`` (the
reference models) and ``app`` (the command line), over the private ``_util``.
"""

import importlib
from typing import Any

from areacam import data, losses, metrics
from areacam._version import __version__
from areacam.core.explanation import Explanation
from areacam.core.forward import Shared
from areacam.inspect import Embedding, FilterVisualizer, embed, explorer, feature_maps, filter_weights
from areacam.layers.windows import SlidingWindow
from areacam.methods.cam import CAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from areacam.methods.eigen import EigenCAM
from areacam.methods.gradients import GuidedBackprop, InputXGradient, Saliency, SmoothGrad
from areacam.methods.guided_gradcam import GuidedGradCAM
from areacam.methods.integrated import IntegratedGradients
from areacam.methods.lime import Lime
from areacam.methods.occlusion import Occlusion
from areacam.methods.perturbation_cams import AblationCAM, ScoreCAM
from areacam.runs import Run, open_run
from areacam.targets import (
    Area,
    Class,
    Detection,
    FalseNegative,
    FalsePositive,
    Latent,
    Pixel,
    ReconstructionError,
    Score,
    Segment,
    Target,
    components,
)
from areacam.viz import (
    across_epochs_figure,
    gradient_image,
    grid_figure,
    overlay,
    region_figure,
    signal_figure,
    slice_grid,
    volume_figure,
)

__all__ = [
    "CAM",
    "AblationCAM",
    "Area",
    "Class",
    "Detection",
    "EigenCAM",
    "Embedding",
    "Explanation",
    "FalseNegative",
    "FalsePositive",
    "FilterVisualizer",
    "GradCAM",
    "GradCAMPlusPlus",
    "GuidedBackprop",
    "GuidedGradCAM",
    "HiResCAM",
    "InputXGradient",
    "IntegratedGradients",
    "Latent",
    "LayerCAM",
    "Lime",
    "Occlusion",
    "Pixel",
    "ReconstructionError",
    "Run",
    "Saliency",
    "Score",
    "ScoreCAM",
    "Segment",
    "Shared",
    "SlidingWindow",
    "SmoothGrad",
    "Target",
    "XGradCAM",
    "__version__",
    "across_epochs_figure",
    "callbacks",
    "components",
    "data",
    "embed",
    "explorer",
    "feature_maps",
    "filter_weights",
    "gradient_image",
    "grid_figure",
    "losses",
    "metrics",
    "open_run",
    "overlay",
    "region_figure",
    "signal_figure",
    "slice_grid",
    "volume_figure",
]


def __getattr__(name: str) -> Any:
    # areacam.callbacks is imported on first use (ac.callbacks), so that `import areacam` stays light.
    if name == "callbacks":
        return importlib.import_module("areacam.callbacks")
    raise AttributeError(f"module 'areacam' has no attribute {name!r}")
