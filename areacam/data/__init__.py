"""Embedded data: digits, synthetic shapes with exact masks, and the photos shipped with skimage/sklearn.

Nothing here downloads anything: digits come from scikit-learn's bundled ``load_digits``, photos from the
files bundled with scikit-image and scikit-learn, shapes are generated.

* :func:`digits` -- ``(N, 1, 32, 32)`` float images in ``[0, 1]`` and ``(N,)`` labels, seeded split.
* :func:`shapes` -- ``(N, 3, S, S)`` images of a circle, square or triangle on a textured background,
  ``(N,)`` labels and exact ``(N, S, S)`` masks (``0`` background, ``1 + label`` shape).
* :func:`volumes` -- ``(N, 1, S, S, S)`` noisy volumes holding one sphere or cube, ``(N,)`` labels and exact
  ``(N, S, S, S)`` masks (``0`` background, ``1 + label`` object).
* :func:`signals` -- ``(N, 1, L)`` smooth periodic signals with one injected anomaly each, the clean
  signals, and exact ``(N, L)`` anomaly masks.
* :func:`anomalies` -- ``(N, 3, S, S)`` generated textures (stripes, grain, cells, weave), a share with
  one anomaly each (blob, scratch, colour spot, missing texture) and exact ``(N, S, S)`` bool masks.
* :func:`photo` / :func:`photo_names` -- ``(3, H, W)`` float photos, optionally resized.
"""

from areacam.data.anomalies import ANOMALY_TYPES, MIN_ANOMALY_SIZE, TEXTURE_FAMILIES, anomalies
from areacam.data.digits import digits
from areacam.data.photos import photo, photo_names
from areacam.data.shapes import MIN_SHAPE_SIZE, SHAPE_CLASSES, SHAPE_COLORS, draw_shape, shapes
from areacam.data.signals import ANOMALY_KINDS, MIN_SIGNAL_LENGTH, signals
from areacam.data.volumes import MIN_VOLUME_SIZE, VOLUME_CLASSES, volumes

__all__ = [
    "ANOMALY_KINDS",
    "ANOMALY_TYPES",
    "MIN_ANOMALY_SIZE",
    "MIN_SHAPE_SIZE",
    "MIN_SIGNAL_LENGTH",
    "MIN_VOLUME_SIZE",
    "SHAPE_CLASSES",
    "SHAPE_COLORS",
    "TEXTURE_FAMILIES",
    "VOLUME_CLASSES",
    "anomalies",
    "digits",
    "draw_shape",
    "photo",
    "photo_names",
    "shapes",
    "signals",
    "volumes",
]
