"""``areacam demo``: train the reference models on embedded data, write every figure and report.html.

Each stage is a function ``stage(ctx) -> list[Figure]``; a stage whose optional module is missing is
skipped with a message, a stage that fails is reported, and the others still run.

Check the report in a real browser with ``make report-check`` (installs Debian's chromium if missing and
runs ``python scripts/check_report.py demo_out/report.html``: every image loads, no console errors,
screenshot in ``demo_out/report.png``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from areacam.app.demo.common import Context, Figure
from areacam.app.demo.settings import MODELS

__all__ = ["STAGES", "Stage", "expected_figures", "run_demo"]


@dataclass(frozen=True)
class Stage:
    """A named group of figure steps; ``files`` are the figures it writes."""

    name: str
    steps: tuple[Callable[[Context], list[Figure]], ...]
    files: tuple[str, ...]


def _train_all(ctx: Context) -> list[Figure]:
    for key in MODELS:
        ctx.model(key)
    return []


def _stages() -> list[Stage]:
    from areacam.app.demo import (
        anomaly,
        autoencoder,
        classifier,
        errors,
        features,
        layer_choice,
        lime_panels,
        quality,
        segmentation,
        volumes,
    )

    return [
        Stage("train models", (_train_all,), ()),
        Stage("measure cam layers", (layer_choice.pick_layers,), ()),
        Stage("saliency per class", (classifier.saliency_per_class,), ("saliency_per_class.png",)),
        Stage("filters by depth", (features.filters_by_depth,), ("filters_by_depth.png", "first_layer_kernels.png")),
        Stage("feature maps by depth", (features.feature_maps_by_depth,), ("feature_maps_by_depth.png",)),
        Stage(
            "grad-cam vs grad-cam++",
            (classifier.gradcam_by_layer, segmentation.cams_across_architectures),
            ("gradcam_vs_gradcampp_layers.png", "gradcam_vs_gradcampp_architectures.png"),
        ),
        Stage(
            "area grad-cam on autoencoders",
            (partial(autoencoder.area_gradcam, key="vae"), partial(autoencoder.area_gradcam, key="vaegan")),
            ("area_gradcam_vae.png", "area_gradcam_vaegan.png"),
        ),
        Stage(
            "methods on a vae's reconstruction error",
            (autoencoder.method_comparison,),
            ("methods_vae_recon_error.png",),
        ),
        Stage("where is the anomaly", (anomaly.anomaly_panel,), ("anomaly_textures.png",)),
        Stage(
            "segmentation debugging",
            (
                partial(segmentation.segment_debugging, key="fcn"),
                partial(segmentation.segment_debugging, key="unet"),
                errors.segmentation_errors,
            ),
            ("segment_fcn.png", "segment_unet.png", "segment_errors.png"),
        ),
        Stage(
            "lime panels",
            (lime_panels.lime_classifier, lime_panels.lime_autoencoder),
            ("lime_classifier.png", "lime_vae_area.png"),
        ),
        Stage("explanations by epoch", (classifier.explanations_by_epoch,), ("explanations_by_epoch.png",)),
        Stage("t-sne of features", (features.tsne_features,), ("tsne_features.png",)),
        Stage(
            "volumes and signals",
            (volumes.volume_segmentation, volumes.signal_anomaly),
            ("volume_segmentation.png", "signal_anomaly.png"),
        ),
        Stage("which method to trust", (quality.trust_table,), ("trust_metrics.png", "randomisation_classifier.png")),
    ]


STAGES: list[Stage] = _stages()


def expected_figures() -> list[str]:
    """Every figure file a complete demo run writes under ``figures/``."""
    return [file for stage in STAGES for file in stage.files]


def run_demo(out: str | Path = "demo_out", quick: bool = False, progress: bool = True) -> int:
    """Run every stage into ``out``; returns 0 when all stages ran, 1 when one failed or was skipped."""
    from areacam.app.demo.report import write_report

    start = time.perf_counter()
    ctx = Context(out=Path(out), quick=quick, progress=progress)
    ctx.out.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    problems: dict[str, str] = {}
    for stage in STAGES:
        t0 = time.perf_counter()
        with ctx.bar(stage.name, total=len(stage.steps)) as bar:
            for step in stage.steps:
                try:
                    figures += step(ctx)
                except ImportError as err:  # an extra is missing: the message names it
                    problems[stage.name] = f"skipped: {err}"
                    break
                except Exception as err:
                    problems[stage.name] = f"failed: {type(err).__name__}: {' '.join(str(err).split())}"
                    break
                bar.update(1)
        ctx.log.append(f"stage {stage.name!r}: {time.perf_counter() - t0:.1f} s")
    elapsed = time.perf_counter() - start
    summary = [f"mode: {'quick' if quick else 'full'}; {len(figures)} figures; {elapsed:.1f} s", *ctx.log]
    report = write_report(ctx.out, figures, summary, problems)
    for name, why in problems.items():
        print(f"areacam demo: stage {name!r} {why}", file=sys.stderr)
    status = "with problems in " + ", ".join(problems) if problems else "ok"
    print(f"areacam demo: {len(figures)} figures in {elapsed:.1f} s ({status}) -> {report.resolve()}")
    return 1 if problems else 0
