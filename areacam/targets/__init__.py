"""What to explain: targets turn a model output into one score per sample (see :mod:`areacam.targets.base`).

A new target is a :class:`Target` subclass with a ``score(out, inputs) -> (B,)`` method in the module of
its kind (:mod:`~areacam.targets.scalar` for one number per sample, :mod:`~areacam.targets.dense` for
regions of dense outputs, :mod:`~areacam.targets.errors` for segmentation errors,
:mod:`~areacam.targets.detection` for detectors), exported here and from :mod:`areacam`.
"""

from areacam.targets.base import Target, as_target_list
from areacam.targets.components import components
from areacam.targets.dense import Area, Pixel, ReconstructionError, Segment
from areacam.targets.detection import Detection
from areacam.targets.errors import FalseNegative, FalsePositive
from areacam.targets.scalar import Class, Latent, Score

__all__ = [
    "Area",
    "Class",
    "Detection",
    "FalseNegative",
    "FalsePositive",
    "Latent",
    "Pixel",
    "ReconstructionError",
    "Score",
    "Segment",
    "Target",
    "as_target_list",
    "components",
]
