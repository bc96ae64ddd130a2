"""Step time of training with a loss on the explanation vs plain training, on the demo classifier.

The quick demo's shapes classifier (``models.create("classifier")``, width 8, 32x32 inputs, 3 classes),
batches of 32, Adam; each loss of ``scripts/shortcut.py`` (``ac.losses`` on Grad-CAM or the input
gradient, built with ``create_graph=True``) against the cross-entropy alone, all in one process.

    python scripts/bench_training.py [--repeats 5] [--no-record]
"""

from __future__ import annotations

import torch
from benchlib import machine, parse_record_args, record, timeit
from shortcut import LOSSES, classifier, marked_shapes, step


def main() -> None:
    args = parse_record_args(__doc__)
    batch = marked_shapes(32, 0, shuffled=False)
    rows, plain = [], None
    for loss in LOSSES:
        torch.manual_seed(0)
        model = classifier().train()
        optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
        seconds = timeit(
            lambda model=model, optimiser=optimiser, loss=loss: step(model, optimiser, batch, loss), args.repeats
        )
        plain = seconds if loss == "plain" else plain
        assert plain is not None
        rows.append(f"| {loss} | {seconds * 1000:.1f} ms | **{seconds / plain:.2f}x** |")
    text = "\n".join(
        [
            "## Training with a loss on the explanation: `python scripts/bench_training.py`",
            "",
            "One training step (forward, loss, backward, Adam) of the quick demo's shapes classifier (width 8, "
            f"32x32, batch 32). Measured on {machine()}; median of {args.repeats} steps, all in one process.",
            "",
            "| loss | step time | ratio to plain |",
            "| --- | --- | --- |",
            *rows,
            "",
            "A loss on Grad-CAM runs the explainer's own forward pass, one backward pass to the layer that keeps",
            "its graph, and then the training backward through both: about one extra forward and a double",
            "backward. RRR's `outside_gradient` does the same to the input. `gain` adds GAIN's attention mining",
            "to `mask_error`: one more forward pass, on the erased images, and the backward through it.",
        ]
    )
    print(text)
    if not args.no_record:
        record("bench_training", text)


if __name__ == "__main__":
    main()
