"""Fields: Grad-CAM of 16, 256 and 4,096 box targets on one image, field vs backward passes vs pytorch-grad-cam.

smp U-Net (ResNet-18 encoder, random weights, 3 classes), one 160x160 image, box targets of output
channel 1 (32x32 boxes at random positions). Two layers: a decoder layer, picked by measurement as the
decoder block that localises best (relevance mass of Segment maps in the true shape's mask, on the same
architecture briefly trained on synthetic shapes: random weights localise nowhere), and
``encoder.layer4``. For each layer:

- field: ``GradCAM(...).field(x)`` (C forward-mode products, once) plus answering the K targets;
- backward: ``GradCAM(..., mode="backward")`` (one forward, K backward passes), measured at 16 and
  256 targets; at 4,096 extrapolated linearly (a forward plus K equal backward passes, fitted on the
  16- and 256-target times), measured with ``--full``;
- pytorch-grad-cam: one ``GradCAM`` call per target with ``SemanticSegmentationTarget`` (each call
  is its own forward and backward), measured on 16 targets and extrapolated linearly to 256 and 4,096;
- the break-even K where the field's total time equals the backward passes', and the cost of one
  field channel in backward passes (recorded in ``areacam.field.JVP_VJP_COST``).

    python scripts/bench_field.py --threads 2 [--repeats 3] [--full] [--no-record]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import segmentation_models_pytorch as smp
import torch
from benchlib import machine, record, timeit
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

import areacam as ac

SIZE, SIDE, CHANNEL = 160, 32, 1
COUNTS = (16, 256, 4096)
DECODER = [f"decoder.blocks.{i}" for i in range(5)]


def random_boxes(count: int, seed: int = 0) -> list[tuple[int, int, int, int]]:
    """``count`` SIDE x SIDE boxes at random positions inside the image."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, SIZE - SIDE + 1, size=(count, 2))
    return [(int(t), int(c), int(t) + SIDE, int(c) + SIDE) for t, c in corners]


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def localisation() -> dict[str, float]:
    """Relevance mass per decoder block of a briefly trained U-Net R18 (64x64 synthetic shapes).

    Random weights do not localise at any layer (every share sits near the box's share of the
    image), so the blocks are compared on the same architecture trained for 2 epochs on 300 shapes:
    for each test image, the share of the Grad-CAM map of ``Segment(true class)`` inside the true
    shape's mask, averaged.
    """
    import tempfile

    from areacam import models
    from areacam.models.train import load_data, train

    with tempfile.TemporaryDirectory() as folder:
        train(
            "unet",
            "shapes",
            epochs=2,
            size=64,
            n_train=300,
            n_test=24,
            batch_size=16,
            lr=1e-3,
            model_kwargs=dict(encoder_name="resnet18"),
            progress=False,
            out=folder,
            seed=0,
        )
        model = models.load(sorted(Path(folder).glob("epoch_*.pt"))[-1])
    data = load_data("shapes", 64, 300, 24)
    x, y, masks = data["x_test"], data["y_test"], data["m_test"] > 0
    targets = [ac.Segment(int(c) + 1) for c in y]
    shares = {}
    for layer in DECODER:
        maps = ac.GradCAM(model, layer, mode="backward", layout="nchw")(x, targets).maps  # (N, N, 64, 64)
        own = maps[torch.arange(len(y)), torch.arange(len(y))]
        inside = (own * masks).flatten(1).sum(1) / own.flatten(1).sum(1).clamp_min(1e-12)
        shares[layer] = float(inside.mean())
    return shares


def bench_layer(model, x, layer: str, repeats: int, full: bool, build_repeats: int) -> dict:
    boxes = random_boxes(max(COUNTS))
    targets = [ac.Area(box=box, channel=CHANNEL) for box in boxes]
    explainer = ac.GradCAM(model, layer, mode="backward", layout="nchw")  # 32 channels on 32x32 read either way
    field = explainer.field(x)
    check = field(targets[:16])
    reference = explainer(x, targets[:16])
    error = float((check.maps - reference.maps).abs().max())
    assert error < 1e-4, f"field and backward maps differ by {error} at {layer}"
    t_field = timeit(lambda: explainer.field(x), build_repeats, warmup=0)
    progress(f"{layer}: field {t_field:.2f} s")
    result = {"layer": layer, "channels": field.channels, "error": error, "field build": t_field}
    for count in COUNTS:
        result[f"answer {count}"] = timeit(lambda count=count: field(targets[:count]), repeats)
        result[f"field {count}"] = t_field + result[f"answer {count}"]
    progress(f"{layer}: answers {[round(result[f'answer {c}'], 3) for c in COUNTS]}")
    result["backward 16"] = timeit(lambda: explainer(x, targets[:16]), repeats)
    result["backward 256"] = timeit(lambda: explainer(x, targets[:256]), max(1, repeats // 3), warmup=0)
    progress(f"{layer}: backward 16 {result['backward 16']:.2f} s, 256 {result['backward 256']:.2f} s")
    per_target = (result["backward 256"] - result["backward 16"]) / 240
    fixed = max(result["backward 16"] - 16 * per_target, 0.0)
    result["backward per target"], result["backward fixed"] = per_target, fixed
    if full:
        result["backward 4096"] = once(lambda: explainer(x, targets))
        result["backward 4096 measured"] = True
    else:
        result["backward 4096"] = fixed + 4096 * per_target
        result["backward 4096 measured"] = False
    progress(f"{layer}: backward 4096 {result['backward 4096']:.2f} s")
    pgc = PgcGradCAM(model=model, target_layers=[model.get_submodule(layer)])
    masks = []
    for top, left, bottom, right in boxes[:16]:
        mask = np.zeros((SIZE, SIZE), np.float32)
        mask[top:bottom, left:right] = 1
        masks.append(mask)
    pgc_maps = np.concatenate([pgc(input_tensor=x, targets=[SemanticSegmentationTarget(CHANNEL, m)]) for m in masks])
    assert np.abs(pgc_maps - reference.maps[0].numpy()).max() < 1e-3, "areacam and pytorch-grad-cam disagree"
    t_pgc = timeit(
        lambda: [pgc(input_tensor=x, targets=[SemanticSegmentationTarget(CHANNEL, m)]) for m in masks],
        max(1, repeats // 2),
    )
    for count in COUNTS:
        result[f"pgc {count}"] = t_pgc * count / 16
    # Break-even: field build + K answers = backward fixed + K backward passes.
    answer_per = result["answer 4096"] / 4096
    result["break-even"] = int(np.ceil(max(t_field - fixed, 0.0) / max(per_target - answer_per, 1e-12)))
    result["jvp/vjp"] = (t_field / field.channels) / per_target
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="measure 4,096 backward passes, do not extrapolate")
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, classes=3).eval()
    x = torch.rand(1, 3, SIZE, SIZE)

    shares = localisation()
    progress(f"localisation {shares}")
    decoder = max(shares, key=shares.get)
    results = [
        bench_layer(model, x, decoder, args.repeats, full=args.full, build_repeats=args.repeats),
        bench_layer(model, x, "encoder.layer4", args.repeats, full=args.full, build_repeats=1),
    ]

    lines = [
        "## Fields: `python scripts/bench_field.py --threads 2`",
        "",
        f"Measured on {machine()}; median of {args.repeats} runs. smp U-Net (ResNet-18, random weights), one "
        f"160x160 image, {SIDE}x{SIDE} box targets of output channel {CHANNEL}. *field* = `GradCAM(...).field(x)` "
        '(C forward-mode products) + answering the K targets; *backward* = `GradCAM(..., mode="backward")` '
        "(one forward, K backward passes; at 4,096 extrapolated from the 16- and 256-target times unless "
        "`--full`); *pgc* = one pytorch-grad-cam call per target "
        "(`SemanticSegmentationTarget`), measured for 16 targets and scaled linearly to 256 and 4,096. "
        "Field maps equal the backward maps (max abs difference on 16 boxes in the table).",
        "",
        "Decoder layer chosen by measurement: random weights localise at no layer, so the same U-Net R18 was "
        "trained for 2 epochs on 300 synthetic 64x64 shapes and each decoder block scored by the mean share of "
        "the Grad-CAM map of `Segment(true class)` inside the true shape's mask over 24 test images "
        "(relevance mass; higher localises better): "
        + ", ".join(f"`{layer}` {share:.3f}" for layer, share in shares.items())
        + f" -> `{decoder}`.",
        "",
        "| layer (C) | K | field | backward | pytorch-grad-cam | backward / field | pgc / field |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for count in COUNTS:
            back = r[f"backward {count}"]
            note = "" if count < 4096 or r["backward 4096 measured"] else " (extrapolated)"
            lines.append(
                f"| `{r['layer']}` ({r['channels']}) | {count:,} | {r[f'field {count}']:.3f} s | {back:.3f} s{note} | "
                f"{r[f'pgc {count}']:.2f} s{'' if count == 16 else ' (scaled)'} | "
                f"**{back / r[f'field {count}']:.1f}x** | {r[f'pgc {count}'] / r[f'field {count}']:.1f}x |"
            )
    lines.append("")
    for r in results:
        lines.append(
            f"- `{r['layer']}`: field build {r['field build']:.3f} s for {r['channels']} channels; one backward pass "
            f"{1000 * r['backward per target']:.1f} ms; one field channel costs {r['jvp/vjp']:.2f} backward passes; "
            f"answering 4,096 boxes from the field {r['answer 4096']:.3f} s; **break-even K = {r['break-even']}**; "
            f"max |field - backward| on the maps {r['error']:.1e}."
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record("bench_field", text)


if __name__ == "__main__":
    main()
