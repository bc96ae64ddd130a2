"""The ``areacam`` command: ``demo``, ``explain``, ``explore``, ``evaluate``, ``layers``, ``run`` and ``report``.

One module per command (:mod:`~areacam.app.explain`, :mod:`~areacam.app.explore`,
:mod:`~areacam.app.evaluate`, :mod:`~areacam.app.layers`, :mod:`~areacam.app.run`,
:mod:`~areacam.app.report`, :mod:`~areacam.app.demo`); this module assembles the parser and runs one.

Every bad input ends with a one-line ``areacam <command>: error: ...`` on stderr and exit status 2;
nothing is written before all inputs are checked and all maps are computed. Set ``AREACAM_DEBUG=1``
to see tracebacks.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from areacam._util.errors import one_line
from areacam.app import evaluate, explain, explore, layers, report
from areacam.app.loading import USER_ERRORS

__all__ = ["USER_ERRORS", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help="registry name (vae, classifier, fcn, unet...) or MODULE:FACTORY",
    )
    parser.add_argument("--weights", metavar="CKPT", help="checkpoint: models.save() file or a state dict")
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="input size (default: the model's)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``areacam`` command."""
    from areacam.app.run import RUN_EXAMPLE, add_run_args

    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="areacam",
        description="Explain any region of any dense output.",
        epilog="example: areacam demo --out demo_out --quick",
        formatter_class=fmt,
    )
    commands = "{demo,explain,explore,evaluate,layers,run,report}"
    sub = parser.add_subparsers(dest="command", metavar=commands, parser_class=_Parser)
    demo = sub.add_parser(
        "demo",
        help="train the reference models on embedded data and write every figure plus report.html",
        description="Train (or reuse) the reference models on the embedded data, write every figure type "
        "and a static report.html grouped by use case.",
        epilog="example:\n  areacam demo --out demo_out --quick   # under 3 minutes on 2 CPU cores",
        formatter_class=fmt,
    )
    demo.add_argument(
        "--out", default="demo_out", help="output folder (default: demo_out); checkpoints in it are reused"
    )
    demo.add_argument("--quick", action="store_true", help="tiny models, few epochs and samples")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    explain.add_parser(sub, _model_args)
    explore.add_parser(sub, _model_args)
    evaluate.add_parser(sub, _model_args)
    layers.add_parser(sub, _model_args)
    run = sub.add_parser(
        "run",
        help="explain every sample of a dataset into a resumable store (also under torchrun)",
        description="Explain every sample of a dataset: maps into a zarr store chunked by sample, scores and "
        "metrics into a table. A rerun with the same arguments resumes; under 'torchrun --nproc_per_node=N "
        "-m areacam run ...' the processes share the work.",
        epilog=RUN_EXAMPLE,
        formatter_class=fmt,
    )
    add_run_args(run)
    report.add_parser(sub)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from areacam.app.demo import run_demo

        return run_demo(args.out, quick=args.quick, progress=not args.no_progress)
    if args.command == "run":
        from areacam.app.run import run_from_args

        return run_from_args(args)
    commands = {
        "explain": explain.run_explain,
        "explore": explore.run_explore,
        "evaluate": evaluate.run_evaluate,
        "layers": layers.run_layers,
        "report": report.report_from_args,
    }
    return commands[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input, 1 unexpected failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    prog = f"areacam {args.command}"
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if os.environ.get("AREACAM_DEBUG"):
            raise
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:
        if os.environ.get("AREACAM_DEBUG"):
            raise
        print(
            f"{prog}: failed: {type(err).__name__}: {one_line(err)} (AREACAM_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
