"""Where is the anomaly? Train the AE, VAE and VAE-GAN on normal textures and score each anomaly map.

    python scripts/anomaly_table.py                 # writes the table into docs/quality.md
    python scripts/anomaly_table.py --threads 2     # 1 thread by default: 17 min on a shared 2-core machine
    python scripts/anomaly_table.py --quick --no-write

Data: ``ac.data.anomalies`` (normal textures for training, seed 0; a validation set, seed 2, only to
pick each explainer's layer; the test set, seed 1, half of it abnormal). Every map is the method's
unnormalised output at the input's size (an explanation's ``maps`` are min-max normalised per image,
which would erase the image-level score): see ``areacam.app.demo.anomaly.anomaly_maps`` (shared with the
demo's anomaly figure) -- each row is a few lines of areacam.
Metrics: ``ac.metrics.pixel_auroc``, ``aupro`` (FPR limit 0.3) and ``image_auroc`` over the test set.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

import areacam as ac
from areacam import models
from areacam._util.io import atomic_write
from areacam.app.demo.anomaly import anomaly_maps, pick_layers
from areacam.models.families import FAMILIES, Batch

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- anomaly-table:start -->", "<!-- anomaly-table:end -->"
FAMILY = {"ae": "autoencoder", "vae": "vae", "vaegan": "vaegan"}


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


def table(results: dict[str, dict[str, dict[str, float]]], layers: dict[str, dict[str, str]]) -> str:
    lines = [
        "| model | anomaly map | pixel AUROC | AUPRO (FPR <= 0.3) | image AUROC |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for model, rows in results.items():
        for row, r in rows.items():
            cell = row.replace("|", "\\|")  # sum(|mu|): a bare pipe would split the Markdown cell
            lines.append(f"| {model} | {cell} | {r['pixel_auroc']:.3f} | {r['aupro']:.3f} | {r['image_auroc']:.3f} |")
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
