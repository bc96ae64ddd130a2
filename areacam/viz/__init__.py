"""Pictures: heatmap overlays, signed-gradient images, grid figures, volume slices and signal bands.

Everything here draws arrays (tensors are read once, to numpy) and returns
``matplotlib.figure.Figure`` objects built without pyplot; files are written atomically. Pictures know
nothing of models: a target is drawn through the region it carries.
"""

from areacam.viz.images import gradient_image, grid_figure, overlay, region_figure
from areacam.viz.training import across_epochs_figure
from areacam.viz.volumes import signal_figure, slice_grid, volume_figure

__all__ = [
    "across_epochs_figure",
    "gradient_image",
    "grid_figure",
    "overlay",
    "region_figure",
    "signal_figure",
    "slice_grid",
    "volume_figure",
]
