"""The data each reference model trains on: embedded digits, generated shapes, volumes, signals and textures."""

from __future__ import annotations

import torch

from areacam import data as ac_data

__all__ = ["DATASETS", "DISTRACTOR_SHARE", "base_data", "load_data"]

DATASETS = ("digits", "shapes", "shapes-distractor", "volumes", "signals", "textures")

#: Share of ``shapes-distractor`` images that hold a distractor (``areacam.data.shapes(distractor=...)``).
DISTRACTOR_SHARE = 0.6


def base_data(data: str) -> str:
    """The data set ``data`` is a variant of: ``"shapes"`` for ``"shapes-distractor"``, else ``data``."""
    return "shapes" if data == "shapes-distractor" else data


def load_data(
    data: str,
    size: int,
    n_train: int | None = None,
    n_test: int | None = None,
    random_state: int = 0,
) -> dict[str, torch.Tensor]:
    """Train/test tensors: ``x_train (N, C, S, S)``, ``y_train (N,)``, ``x_test``, ``y_test`` and, for
    shapes, ``m_train``/``m_test`` ``(N, S, S)`` masks (``shapes-distractor``: the same shapes, with a
    background-labelled pentagon in :data:`DISTRACTOR_SHARE` of the images). The data does not depend on
    the training seed.

    Volumes: ``x (N, 1, S, S, S)``, ``y`` the object's class, ``m (N, S, S, S)`` masks. Signals (``size`` is
    the length): ``x_train`` the clean signals (an autoencoder learns normal data only), ``x_test`` the
    test signals with their anomaly, ``clean_test`` without it, ``a_test (N, L)`` bool anomaly windows;
    ``y`` all zero. Textures (``areacam.data.anomalies``): ``x_train`` normal textures only, ``x_test``
    half of them with an anomaly at ``m_test (N, S, S)`` bool masks (empty for normal ones); ``y`` all zero.
    """
    if data == "digits":
        x_tr, y_tr = ac_data.digits("train", size=size, random_state=random_state)
        x_te, y_te = ac_data.digits("test", size=size, random_state=random_state)
        out = dict(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
        if n_train is not None:
            out["x_train"], out["y_train"] = x_tr[:n_train], y_tr[:n_train]
        if n_test is not None:
            out["x_test"], out["y_test"] = x_te[:n_test], y_te[:n_test]
        return out
    if data in ("shapes", "shapes-distractor"):
        n_train = 2000 if n_train is None else n_train
        n_test = 500 if n_test is None else n_test
        share = DISTRACTOR_SHARE if data == "shapes-distractor" else 0.0
        x, y, m = ac_data.shapes(n_train + n_test, size=size, random_state=random_state, distractor=share)
        return dict(
            x_train=x[:n_train],
            y_train=y[:n_train],
            m_train=m[:n_train],
            x_test=x[n_train:],
            y_test=y[n_train:],
            m_test=m[n_train:],
        )
    if data == "volumes":
        n_train = 128 if n_train is None else n_train
        n_test = 32 if n_test is None else n_test
        x, y, m = ac_data.volumes(n_train + n_test, size=size, random_state=random_state)
        return dict(
            x_train=x[:n_train],
            y_train=y[:n_train],
            m_train=m[:n_train],
            x_test=x[n_train:],
            y_test=y[n_train:],
            m_test=m[n_train:],
        )
    if data == "signals":
        n_train = 1000 if n_train is None else n_train
        n_test = 200 if n_test is None else n_test
        x, clean, a = ac_data.signals(n_train + n_test, length=size, random_state=random_state)
        zeros = torch.zeros(n_train + n_test, dtype=torch.int64)
        return dict(
            x_train=clean[:n_train],
            y_train=zeros[:n_train],
            x_test=x[n_train:],
            y_test=zeros[n_train:],
            clean_test=clean[n_train:],
            a_test=a[n_train:],
        )
    if data == "textures":
        n_train = 1000 if n_train is None else n_train
        n_test = 200 if n_test is None else n_test
        x_tr, _ = ac_data.anomalies(n_train, size=size, random_state=random_state, share=0.0)
        x_te, m_te = ac_data.anomalies(n_test, size=size, random_state=random_state + 1, share=0.5)
        return dict(
            x_train=x_tr,
            y_train=torch.zeros(n_train, dtype=torch.int64),
            x_test=x_te,
            y_test=torch.zeros(n_test, dtype=torch.int64),
            m_test=m_te,
        )
    raise ValueError(f"unknown data {data!r}; valid data sets: {', '.join(DATASETS)}")
