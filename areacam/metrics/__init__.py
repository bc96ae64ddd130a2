"""Is the explanation right? Faithfulness, localisation, complexity and sanity checks for any target.

```python
import areacam as ac
expl = ac.GradCAM(model, "decoder.blocks.4")(x, targets)
ac.metrics.deletion(model, x, targets, expl.maps).auc          # (B, K), lower = more faithful
ac.metrics.relevance_mass(expl.maps, masks)                     # (B, K) share of the map in the mask
ac.metrics.randomisation(lambda m: ac.GradCAM(m, "features.block4"), model, x, targets).spearman
ac.metrics.rank_layers(model, x, targets, method=ac.GradCAM)    # candidate layers, best first
ac.metrics.aupro(anomaly_maps, masks)                            # (N, H, W) maps of a set: one float
```

One module per category (:mod:`~.faithfulness`, :mod:`~.localisation`, :mod:`~.complexity`,
:mod:`~.similarity`, :mod:`~.randomisation`; set-level anomaly localisation in :mod:`~.anomaly`, streamed
over a set too large to hold in :mod:`~.anomaly_stream`); a
new metric goes into the module of its category with ``@describe(name, category,
higher_is_better=...)`` (:mod:`~.catalog`), which the rankings, the evaluation report and the
command line read.
"""

from areacam.metrics.anomaly import aupro, image_auroc, pixel_auroc
from areacam.metrics.anomaly_stream import AnomalyAccumulator
from areacam.metrics.catalog import METRICS, MetricInfo
from areacam.metrics.complexity import entropy, sparseness
from areacam.metrics.evaluation import Evaluation, evaluate
from areacam.metrics.faithfulness import deletion, insertion, removal_ranks, road
from areacam.metrics.imputation import noisy_linear_impute
from areacam.metrics.localisation import iou, pointing_game, relevance_mass, relevance_rank
from areacam.metrics.maps import boxes_to_masks
from areacam.metrics.randomisation import Randomisation, Similarity, random_logit, randomisable_layers, randomisation
from areacam.metrics.ranking import LayerRanking, candidate_layers, rank_layers
from areacam.metrics.result import Curves
from areacam.metrics.similarity import spearman, ssim

__all__ = [
    "METRICS",
    "AnomalyAccumulator",
    "Curves",
    "Evaluation",
    "LayerRanking",
    "MetricInfo",
    "Randomisation",
    "Similarity",
    "aupro",
    "boxes_to_masks",
    "candidate_layers",
    "deletion",
    "entropy",
    "evaluate",
    "image_auroc",
    "insertion",
    "iou",
    "noisy_linear_impute",
    "pixel_auroc",
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
