"""Is the explanation right? Faithfulness, localisation, complexity and sanity checks for any target.

```python
import areacam as ac
expl = ac.GradCAM(model, "decoder.blocks.4")(x, targets)
ac.metrics.deletion(model, x, targets, expl.maps).auc          # (B, K), lower = more faithful
ac.metrics.relevance_mass(expl.maps, masks)                     # (B, K) share of the map in the mask
ac.metrics.randomisation(lambda m: ac.GradCAM(m, "features.block4"), model, x, targets).spearman
ac.metrics.rank_layers(model, x, targets, method=ac.GradCAM)    # candidate layers, best first
```
"""

from .checks import boxes_to_masks
from .complexity import entropy, sparseness
from .evaluation import Evaluation, evaluate
from .faithfulness import deletion, insertion, removal_ranks, road
from .imputation import noisy_linear_impute
from .localisation import iou, pointing_game, relevance_mass, relevance_rank
from .randomisation import Randomisation, Similarity, random_logit, randomisable_layers, randomisation
from .ranking import LayerRanking, candidate_layers, rank_layers
from .result import Curves
from .similarity import spearman, ssim

__all__ = [
    "Curves",
    "Evaluation",
    "LayerRanking",
    "Randomisation",
    "Similarity",
    "boxes_to_masks",
    "candidate_layers",
    "deletion",
    "entropy",
    "evaluate",
    "insertion",
    "iou",
    "noisy_linear_impute",
    "pointing_game",
    "random_logit",
    "randomisable_layers",
    "randomisation",
    "rank_layers",
    "relevance_mass",
    "relevance_rank",
    "removal_ranks",
    "road",
    "sparseness",
    "spearman",
    "ssim",
]
