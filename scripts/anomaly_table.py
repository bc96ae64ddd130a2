"""Where is the anomaly? Train the AE, VAE and VAE-GAN on normal textures and score each anomaly map.

    python scripts/anomaly_table.py                 # ~5 min on 2 cores; writes the table into docs/quality.md
    python scripts/anomaly_table.py --quick --no-write

Data: ``ac.data.anomalies`` (normal textures for training, seed 0; a validation set, seed 2, only to
pick each explainer's layer; the test set, seed 1, half of it abnormal). Every map is the method's
unnormalised output at the input's size (an explanation's ``maps`` are min-max normalised per image,
which would erase the image-level score): see :func:`anomaly_maps` -- each row is a few lines of areacam.
Metrics: ``ac.metrics.pixel_auroc``, ``aupro`` (FPR limit 0.3) and ``image_auroc`` over the test set.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import areacam as ac
from areacam import models
from areacam._util.io import atomic_write
from areacam.models.families import FAMILIES, Batch

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- anomaly-table:start -->", "<!-- anomaly-table:end -->"
FAMILY = {"ae": "autoencoder", "vae": "vae", "vaegan": "vaegan"}
ENCODER = ("encoder.relu1", "encoder.relu2", "encoder.relu3")
LAYERS = (*ENCODER, "decoder.relu1", "decoder.relu2")


def train(name: str, x: torch.Tensor, epochs: int, seed: int, latent: int, width: int) -> nn.Module:
    """The reference model ``name`` trained on the normal images ``x`` (Adam, cosine decay, seeded)."""
    family = FAMILIES[FAMILY[name]]
    torch.manual_seed(seed)
    net = models.create(name, in_channels=3, input_size=x.shape[-1], latent_dim=latent, width=width)
    opts = family.optimizers(net, 5e-4 if name == "vaegan" else 1e-3)
    batch, gen = 64, torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(x) / batch)
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=steps) for o in opts]
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            family.step(net, Batch(x[idx], torch.zeros(len(idx), dtype=torch.long)), opts, family.forward)
            for s in scheds:
                s.step()
    return net.eval()


def upsampled(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, h, w)`` raw CAMs at the input's size, unnormalised (bilinear, as ``Explanation.maps``)."""
    return F.interpolate(raw[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def latent_sum(out: object) -> torch.Tensor:
    return out[1].sum(1)  # type: ignore[index]


def latent_abs_sum(out: object) -> torch.Tensor:
    return out[1].abs().sum(1)  # type: ignore[index]


def anomaly_maps(net: nn.Module, x: torch.Tensor, layer: dict[str, str], steps: int) -> dict[str, torch.Tensor]:
    """``{row: (N, H, W)}``: every method's anomaly map of ``x``, higher = more abnormal."""
    size = (x.shape[-2], x.shape[-1])
    with torch.no_grad():
        recon = net(x)[0]
    rows = {"squared reconstruction error (baseline)": ((recon - x) ** 2).sum(1)}
    rows["random map"] = torch.rand(x.shape[0], *size, generator=torch.Generator().manual_seed(0))
    latent = [ac.Score(latent_sum, pure=True), ac.Score(latent_abs_sum, pure=True)]
    dims = [ac.Latent(i) for i in range(net.latent_dim)]
    cam = ac.GradCAM(net, layer["latent"], layout="nchw")(x, latent + dims)
    rows["Liu et al.: Grad-CAM of sum(mu)"] = upsampled(cam.raw[:, 0], size)
    rows["Liu et al.: Grad-CAM of sum(|mu|)"] = upsampled(cam.raw[:, 1], size)
    rows["Liu et al.: mean of per-dim Grad-CAMs"] = upsampled(cam.raw[:, 2:].mean(1), size)
    error = ac.ReconstructionError()
    rows["Grad-CAM of ReconstructionError"] = upsampled(
        ac.GradCAM(net, layer["gradcam"], layout="nchw")(x, error).raw[:, 0], size
    )
    rows["LayerCAM of ReconstructionError"] = upsampled(
        ac.LayerCAM(net, layer["layercam"], layout="nchw")(x, error).raw[:, 0], size
    )
    rows["Saliency of ReconstructionError"] = ac.Saliency(net)(x, error).raw[:, 0].abs().amax(1)
    ig = ac.IntegratedGradients(net, steps=steps)(x, error)
    rows["Integrated Gradients of ReconstructionError"] = ig.raw[:, 0].abs().sum(1)
    return rows


def nchw(method: Callable[..., ac.CAM]) -> Callable[[nn.Module, str], ac.CAM]:
    """The explainer factory for ``rank_layers``: these models' layers are channels-first."""
    return lambda model, layer: method(model, layer, layout="nchw")


def pick_layers(net: nn.Module, x: torch.Tensor, masks: torch.Tensor) -> dict[str, str]:
    """Each CAM's layer, ranked by relevance mass on the validation set's abnormal images."""
    keep = masks.flatten(1).any(1)
    x, masks = x[keep], masks[keep]
    latent = ac.Score(latent_sum, pure=True)
    best: dict[str, str] = {}
    for key, method, target, candidates in (
        ("latent", ac.GradCAM, latent, ENCODER),
        ("gradcam", ac.GradCAM, ac.ReconstructionError(), LAYERS),
        ("layercam", ac.LayerCAM, ac.ReconstructionError(), LAYERS),
    ):
        ranking = ac.metrics.rank_layers(
            net, x, target, method=nchw(method), metric="relevance_mass", masks=masks, layers=candidates
        )
        best[key] = ranking.layers[0]
    return best


def table(results: dict[str, dict[str, dict[str, float]]], layers: dict[str, dict[str, str]]) -> str:
    lines = [
        "| model | anomaly map | pixel AUROC | AUPRO (FPR <= 0.3) | image AUROC |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for model, rows in results.items():
        for row, r in rows.items():
            lines.append(f"| {model} | {row} | {r['pixel_auroc']:.3f} | {r['aupro']:.3f} | {r['image_auroc']:.3f} |")
    picked = "; ".join(f"{m}: " + ", ".join(f"{k} `{v}`" for k, v in layers[m].items()) for m in results)
    return "\n".join(lines) + f"\n\nLayers (best relevance mass on the validation set): {picked}.\n"


def write_table(text: str, path: Path) -> None:
    doc = path.read_text()
    if START not in doc or END not in doc:
        raise SystemExit(f"{path} has no {START} ... {END} markers")
    head, rest = doc.split(START, 1)
    atomic_write(path, head + START + "\n" + text + END + rest.split(END, 1)[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sets and few epochs (a smoke run)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    args = parser.parse_args(argv)
    n_train, n_val, n_test, epochs, steps = (64, 16, 32, 1, 4) if args.quick else (2000, 40, 200, 15, 16)
    size, latent, width = 64, 32, 32
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    x_train, _ = ac.data.anomalies(n_train, size=size, random_state=0, share=0.0)
    x_val, m_val = ac.data.anomalies(n_val, size=size, random_state=2, share=0.5)
    x_test, m_test = ac.data.anomalies(n_test, size=size, random_state=1, share=0.5)
    results: dict[str, dict[str, dict[str, float]]] = {}
    layers: dict[str, dict[str, str]] = {}
    label = {"ae": "AE", "vae": "VAE", "vaegan": "VAE-GAN"}
    for name in ("ae", "vae", "vaegan"):
        t0 = time.perf_counter()
        net = train(name, x_train, epochs, seed=0, latent=latent, width=width)
        layers[label[name]] = pick_layers(net, x_val, m_val)
        maps = anomaly_maps(net, x_test, layers[label[name]], steps)
        results[label[name]] = {
            row: {
                "pixel_auroc": ac.metrics.pixel_auroc(m, m_test),
                "aupro": ac.metrics.aupro(m, m_test, fpr_limit=0.3),
                "image_auroc": ac.metrics.image_auroc(m, m_test),
            }
            for row, m in maps.items()
        }
        print(f"{name}: trained and scored in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    command = "python scripts/anomaly_table.py" + (" --quick" if args.quick else "")
    threads = torch.get_num_threads()
    setup = (
        f"`{command}` ({time.perf_counter() - start:.0f} s, torch {torch.__version__}, "
        f"{threads} thread{'s' if threads > 1 else ''}): {n_train} normal textures of {size}x{size} for training "
        f"({epochs} epochs, latent {latent}, width {width}), {n_test} test images "
        f"({int(m_test.flatten(1).any(1).sum())} abnormal), IG with {steps} steps.\n\n"
    )
    text = setup + table(results, layers)
    print(text)
    if args.json is not None:
        atomic_write(args.json, json.dumps({"results": results, "layers": layers}, indent=2) + "\n")
    if not args.no_write:
        write_table(text, ROOT / "docs" / "quality.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
