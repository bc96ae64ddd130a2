"""areacam: explain any region of any dense output.

Targets turn a model output into per-sample scores; explainers turn scores into maps::

    import areacam as ac
    expl = ac.GradCAM(model, "encoder.layer4")(x, [ac.Area(box=(8, 8, 24, 24)), ac.Segment(2)])
    expl.maps  # (B, K, H, W) in [0, 1]
"""

from . import metrics
from .cam import CAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from .cam_free import AblationCAM, EigenCAM, ScoreCAM
from .embed import Embedding, embed
from .explanation import Explanation
from .explorer import explorer
from .features import FilterVisualizer, feature_maps, filter_weights
from .gradients import GuidedBackprop, GuidedGradCAM, InputXGradient, Saliency, SmoothGrad
from .integrated import IntegratedGradients
from .lime import Lime
from .perturbation import Occlusion
from .store import Run, open_run
from .targets import Area, Class, Latent, Pixel, ReconstructionError, Score, Segment, Target
from .viz import gradient_image, grid_figure, overlay, region_figure
from .viz_nd import signal_figure, slice_grid, volume_figure

__version__ = "0.1.0"

__all__ = [
    "CAM",
    "AblationCAM",
    "Area",
    "Class",
    "EigenCAM",
    "Embedding",
    "Explanation",
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
    "SmoothGrad",
    "Target",
    "XGradCAM",
    "embed",
    "explorer",
    "feature_maps",
    "filter_weights",
    "gradient_image",
    "grid_figure",
    "metrics",
    "open_run",
    "overlay",
    "region_figure",
    "signal_figure",
    "slice_grid",
    "volume_figure",
]
