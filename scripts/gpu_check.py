"""On a CUDA machine: areacam on the GPU equals the CPU, and the batched VJP vs the loop.

    python scripts/gpu_check.py

Prints max differences and timings; exits non-zero if the GPU and CPU results disagree. TF32 is
switched off for the comparison (cuDNN uses it for convolutions by default, which alone moves
deep-network gradients by up to ~10% against float32 on the CPU).
"""

from __future__ import annotations

import sys
import time

import torch
import torchvision

import areacam as ac


def timed(fn, repeats: int = 10) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 1
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    cpu_model = torchvision.models.resnet50(weights=None).eval()
    gpu_model = torchvision.models.resnet50(weights=None).eval()
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_model = gpu_model.cuda()
    x = torch.rand(4, 3, 224, 224)
    targets = [ac.Class(k) for k in range(16)]
    worst = 0.0
    for name, make in [
        ("GradCAM", lambda m: ac.GradCAM(m, "layer4")),
        ("GradCAM++", lambda m: ac.GradCAMPlusPlus(m, "layer4")),
        ("GuidedBackprop", ac.GuidedBackprop),
    ]:
        on_cpu = make(cpu_model)(x, targets[:2])
        on_gpu = make(gpu_model)(x.cuda(), targets[:2])
        assert on_gpu.maps.device.type == "cuda"
        diff = (on_gpu.raw.cpu() - on_cpu.raw).abs().max().item() / on_cpu.raw.abs().max().item()
        worst = max(worst, diff)
        print(f"{name}: max relative difference GPU vs CPU {diff:.2e}")
    xg = x.cuda()
    for name, make in [
        ("GradCAM layer4", lambda b: ac.GradCAM(gpu_model, "layer4", batched=b)),
        ("GradCAM layer2", lambda b: ac.GradCAM(gpu_model, "layer2", batched=b)),
        ("Saliency", lambda b: ac.Saliency(gpu_model, batched=b)),
    ]:
        looped = make(False)(xg, targets)
        batched = make(True)(xg, targets)
        diff = (batched.raw - looped.raw).abs().max().item() / looped.raw.abs().max().item()
        t_loop = timed(lambda make=make: make(False)(xg, targets))
        t_batch = timed(lambda make=make: make(True)(xg, targets))
        print(
            f"{name}, 16 targets, batch 4: loop {t_loop * 1e3:.1f} ms, batched {t_batch * 1e3:.1f} ms, "
            f"loop/batched {t_loop / t_batch:.2f}x, max rel diff {diff:.1e}"
        )
        worst = max(worst, diff)
    return 0 if worst < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
