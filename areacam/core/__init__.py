"""The core every explainer stands on: the call protocol (an :class:`Explainer` holds a model; a call runs
it in eval mode with gradients on and leaves it as found), the :class:`Explanation` it returns, the checks
of what a caller passes in, the one walker of structured model outputs, and the gradients of K scores
from one forward pass."""
