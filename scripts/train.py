#!/usr/bin/env python
"""Train a reference model: ``python scripts/train.py --model vae --data digits --epochs 30 --out runs/vae``.

Thin CLI over :func:`models.train.train`: writes ``OUT/epoch_001.pt`` ... (load with ``models.load``) and
``OUT/metrics.json``, shows a tqdm bar, and is deterministic for a given ``--seed`` and ``--threads``.
"""

from __future__ import annotations

import argparse
import ast
import json

from areacam import models
from areacam.models.train import DATASETS, train


def _kv(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed: object = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return key, parsed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--model", required=True, choices=models.names(), help="registered model name")
    p.add_argument("--data", required=True, choices=DATASETS, help="training data")
    p.add_argument("--out", required=True, help="output directory (checkpoints + metrics.json)")
    p.add_argument("--epochs", type=int, default=None, help="default: per model/data (see docs/models.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument(
        "--size", type=int, default=None, help="image side (digits 32, shapes 64/128), volume side or signal length"
    )
    p.add_argument("--n-train", type=int, default=None, help="training images (default: per data set)")
    p.add_argument("--n-test", type=int, default=None, help="test images (default: per data set)")
    p.add_argument("--backbone", default=None, help="fcn only: alexnet | vgg16")
    p.add_argument("--head", default=None, help="fcn only: 8s | 32s")
    p.add_argument(
        "--model-arg",
        type=_kv,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra model constructor argument, repeatable (e.g. latent_dim=8)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads (fixed for reproducibility)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model_kwargs = dict(args.model_arg)
    for key in ("backbone", "head"):
        value = getattr(args, key)
        if value is not None:
            if args.model != "fcn":
                raise SystemExit(f"--{key} only applies to --model fcn, got --model {args.model}")
            model_kwargs[key] = value
    try:
        metrics = train(
            args.model,
            args.data,
            epochs=args.epochs,
            out=args.out,
            random_state=args.seed,
            batch_size=args.batch_size,
            lr=args.lr,
            size=args.size,
            n_train=args.n_train,
            n_test=args.n_test,
            model_kwargs=model_kwargs,
            threads=args.threads,
            device=args.device,
            progress=not args.no_progress,
        )
    except (ValueError, TypeError) as err:
        raise SystemExit(f"error: {err}") from err
    final = {k: v for k, v in metrics["final"].items() if not isinstance(v, list)}
    print(json.dumps({"final": final, "time_s": round(metrics["time_s"], 1)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
