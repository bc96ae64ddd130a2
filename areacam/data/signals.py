"""Synthetic signals with one injected anomaly each, the clean signals and exact anomaly masks."""

from __future__ import annotations

import numpy as np
import torch

from areacam._util.checks import check_int

__all__ = ["ANOMALY_KINDS", "MIN_SIGNAL_LENGTH", "signals"]

#: Kinds of anomaly :func:`signals` injects.
ANOMALY_KINDS: tuple[str, ...] = ("spike", "shift", "burst", "flat")

#: Shortest signal :func:`signals` accepts.
MIN_SIGNAL_LENGTH = 64


def signals(n: int, length: int = 256, random_state: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded synthetic signals, each with one anomaly injected at a known window.

    A clean signal is the sum of two sines (random periods of 16-64 samples, phases and amplitudes)
    plus Gaussian noise (sigma 0.05). One window of 8-24 samples, fully inside, is replaced by an
    anomaly of a random kind (:data:`ANOMALY_KINDS`): a ``spike`` (a triangle of height 1.5-2.5), a level
    ``shift`` (+-1-1.5), a high-frequency ``burst`` (period 4) or a ``flat`` line at the window's first
    value. Signal ``i`` depends only on ``(random_state, i, length)``.

    Returns:
        ``signals`` ``(n, 1, L)`` float32 with the anomaly, ``clean`` ``(n, 1, L)`` the same signals
        without it, ``masks`` ``(n, L)`` bool: exactly the window where the anomaly was injected.
    """
    n = check_int("n", n, 1)
    length = check_int("length", length, MIN_SIGNAL_LENGTH)
    random_state = check_int("random_state", random_state, 0)
    t = np.arange(length, dtype=np.float32)
    clean = np.empty((n, 1, length), dtype=np.float32)
    noisy = np.empty((n, 1, length), dtype=np.float32)
    masks = np.zeros((n, length), dtype=bool)
    for i in range(n):
        rng = np.random.default_rng([random_state, i, length, 1])
        wave = np.zeros(length, dtype=np.float32)
        for amplitude in (rng.uniform(0.5, 1.0), rng.uniform(0.1, 0.4)):
            period, phase = rng.uniform(16, 64), rng.uniform(0, 2 * np.pi)
            wave += amplitude * np.sin(2 * np.pi * t / period + phase)
        wave += rng.normal(0.0, 0.05, size=length).astype(np.float32)
        width = int(rng.integers(8, 25))
        start = int(rng.integers(0, length - width + 1))
        kind = ANOMALY_KINDS[int(rng.integers(len(ANOMALY_KINDS)))]
        part = wave[start : start + width].copy()
        if kind == "spike":
            part += rng.uniform(1.5, 2.5) * (1 - np.abs(np.linspace(-1, 1, width, dtype=np.float32)))
        elif kind == "shift":
            part += rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 1.5)
        elif kind == "burst":
            part += 0.8 * np.sin(2 * np.pi * np.arange(width, dtype=np.float32) / 4 + rng.uniform(0, 2 * np.pi))
        else:
            part[:] = part[0]
        clean[i, 0] = wave
        noisy[i, 0] = wave
        noisy[i, 0, start : start + width] = part
        masks[i, start : start + width] = True
    return torch.from_numpy(noisy), torch.from_numpy(clean), torch.from_numpy(masks)
