"""8 box targets on torchvision Faster R-CNN: areacam's one call against 8 pytorch-grad-cam calls.

torchvision ``fasterrcnn_mobilenet_v3_large_320_fpn`` (random weights, ``box_score_thresh=0``), one
224x224 image, Grad-CAM at ``backbone.body.16`` of 8 detections: one ``ac.GradCAM`` call with 8
``ac.Detection`` targets vs 8 pytorch-grad-cam calls with ``FasterRCNNBoxScoreTarget``; the maps are
checked equal (correlation > 0.999). Beside the ratio it prints the bound of a loop of backward
passes, ``8 (F + B_full) / (F + 8 B_layer)``, from the forward F, a full backward B_full and a
backward to the layer B_layer measured in the same run.

    python scripts/bench_detection.py [--repeats 5] [--no-record]
"""

from __future__ import annotations

import numpy as np
import torch
from benchlib import machine, parse_record_args, record, timeit
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

import areacam as ac

LAYER = "backbone.body.16"
COUNT = 8


def main() -> None:
    args = parse_record_args(__doc__ or "")
    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, box_score_thresh=0.0).eval()
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        found = model(x)[0]
    boxes = [found["boxes"][i].tolist() for i in range(COUNT)]
    labels = [int(found["labels"][i]) for i in range(COUNT)]
    targets = [ac.Detection(b, label=lab) for b, lab in zip(boxes, labels)]
    explainer = ac.GradCAM(model, LAYER)
    layer = model.get_submodule(LAYER)
    pgc = PgcGradCAM(model, [layer])

    def ours() -> ac.Explanation:
        return explainer(x, targets)

    def theirs() -> list[np.ndarray]:
        return [pgc(x, targets=[FasterRCNNBoxScoreTarget([lab], [np.array(b)])])[0] for b, lab in zip(boxes, labels)]

    expl, maps = ours(), theirs()
    for k in range(COUNT):
        corr = np.corrcoef(expl.maps[0, k].numpy().ravel(), maps[k].ravel())[0, 1]
        assert expl.degenerate[0, k] or corr > 0.999, f"box {k}: correlation {corr}"

    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: captured.append(o))

    def score() -> torch.Tensor:
        captured.clear()
        return targets[0](model(x), x)[0]

    def forward_only() -> None:
        captured.clear()
        model(x)  # with the graph, as the loop's forward pays it

    forward = timeit(forward_only, args.repeats)
    full = timeit(lambda: score().backward(), args.repeats) - forward
    to_layer = timeit(lambda: torch.autograd.grad(score(), captured[0]), args.repeats) - forward
    handle.remove()
    model.zero_grad(set_to_none=True)
    t_ours, t_theirs = timeit(ours, args.repeats), timeit(theirs, args.repeats)
    bound = COUNT * (forward + full) / (forward + COUNT * to_layer)
    body = (
        f"**Detection** (`scripts/bench_detection.py`, {machine()}): {COUNT} boxes on torchvision "
        f"`fasterrcnn_mobilenet_v3_large_320_fpn` at 224 px, Grad-CAM at `{LAYER}`.\n\n"
        "| areacam, one call | pytorch-grad-cam, 8 calls | ratio | loop bound 8(F + B_full) / (F + 8 B_layer) |\n"
        "| --- | --- | --- | --- |\n"
        f"| {t_ours * 1e3:.0f} ms | {t_theirs * 1e3:.0f} ms | {t_theirs / t_ours:.2f}x | {bound:.2f}x "
        f"(F {forward * 1e3:.0f} ms, B_full {full * 1e3:.0f} ms, B_layer {to_layer * 1e3:.0f} ms) |\n"
    )
    print(body)
    if not args.no_record:
        record("detection", body)


if __name__ == "__main__":
    main()
