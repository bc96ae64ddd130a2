"""The "which method to trust" table of docs/quality.md: reference models x explainers x metrics.

Uses the demo's trained models (checkpoints under ``--out``, trained first if missing, exactly as
``areacam demo`` trains them) and the demo's measurement code (``areacam.app.demo.quality``):

    python scripts/quality_table.py --out demo_out                 # full demo models
    python scripts/quality_table.py --out /tmp/q --quick           # the quick ones (seconds)
    python scripts/quality_table.py --out demo_out --checkpoint unet=run/epoch_002.pt --markdown table.md

Prints (and with ``--markdown`` writes) the layer each model's Grad-CAM reads, measured on held-out
images (pointing game against the exact masks; the VAE by deletion AUC), the table of every explainer
x metric at that layer, and the sentences that say what it shows.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="the demo's output folder (checkpoints reused)")
    parser.add_argument("--quick", action="store_true", help="the quick demo's models")
    parser.add_argument("--count", type=int, default=None, help="held-out images per model (default: the demo's)")
    parser.add_argument("--steps", type=int, default=10, help="deletion/insertion steps (default 10)")
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="use this checkpoint for model KEY (e.g. unet=run/epoch_005.pt) instead of the demo's",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables to FILE")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)

    import torch

    from areacam import models
    from areacam._util.io import atomic_write
    from areacam.app.demo import cases, layer_choice, quality, trust_tables
    from areacam.app.demo.common import MODELS, Context

    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = Context(out=Path(args.out), quick=args.quick, progress=False)
    sources = {}
    for item in args.checkpoint:
        key, _, path = item.partition("=")
        if key not in MODELS or not path:
            parser.error(f"--checkpoint {item!r}: expected KEY=PATH with KEY one of {', '.join(MODELS)}")
        ctx._models[key] = models.load(path).eval()
        sources[key] = path
    count = args.count or (6 if args.quick else 12)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        choices = {key: layer_choice.measured_layer(ctx, key) for key in cases.CASCADES}
        results = [(case, quality.measure(ctx, case, steps=args.steps)) for case in quality.cases(ctx, count)]
    seconds = time.perf_counter() - start
    lines = [
        f"Models: {'quick' if args.quick else 'full'} demo settings, checkpoints in `{args.out}`"
        + "".join(f"; {key} from `{path}`" for key, path in sources.items())
        + f". {count} held-out images per model, {args.steps} deletion/insertion steps; "
        f"{seconds:.0f} s on {torch.get_num_threads()} thread(s).",
        "",
        "Layer choice (Grad-CAM, held-out images):",
        "",
    ]
    lines += ["| model | metric | chosen layer | its score | every candidate |", "| --- | --- | --- | ---: | --- |"]
    for key, choice in choices.items():
        every = ", ".join(
            f"`{name}` {value:.2f}"
            for name, value in sorted(choice.scores.items(), key=lambda kv: kv[1], reverse=choice.metric != "deletion")
        )
        lines.append(
            f"| {cases.TITLES[key]} | {choice.metric} ({choice.count} images) | `{choice.layer}` | "
            f"{choice.scores[choice.layer]:.2f} | {every} |"
        )
    lines += ["", trust_tables.markdown_table(results), ""]
    lines += [f"- {sentence}" for sentence in trust_tables.which_method(results)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        atomic_write(args.markdown, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
