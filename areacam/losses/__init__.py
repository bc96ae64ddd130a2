"""Losses on explanations, for training a model to look where it should (``ac.losses``).

Each takes what an explainer built with ``create_graph=True`` returns (and a mask of the allowed
region, or the model for GAIN's attention mining), and gives a ``(B, K)`` tensor that carries the graph
to the model's parameters.
"""

from areacam.losses.mining import attention_mining, erase
from areacam.losses.regions import mask_error, outside_gradient, outside_mass

__all__ = ["attention_mining", "erase", "mask_error", "outside_gradient", "outside_mass"]
