"""Optional dependencies: import them where a feature needs them, naming the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "maybe", "require"]

#: Which ``pip install 'areacam[EXTRA]'`` brings each optional top-level module.
EXTRAS = {
    "lime": "lime",
    "skimage": "data",
    "sklearn": "data",
    "segmentation_models_pytorch": "seg",
    "tqdm": "demo",
    "zarr": "run",
    "pyarrow": "run",
    "pandas": "run",
    "scipy": "metrics",
    "lightning": "lightning",
    "tensorboard": "lightning",
    "nibabel": "medical",
}


def require(module: str, feature: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` (dotted names allowed) for ``feature``, or raise an ``ImportError`` naming the extra.

    ``extra`` overrides the default extra of :data:`EXTRAS` (e.g. scikit-image for ``ac.Lime`` comes
    with ``[lime]``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        if err.name is not None and err.name.split(".")[0] != top:
            raise  # the package is there but one of its own imports failed: show that error
        extra = extra or EXTRAS.get(top, "all")
        raise ImportError(f"{feature} needs the optional package {top!r}: pip install 'areacam[{extra}]'") from err


def maybe(module: str) -> ModuleType | None:
    """Import ``module`` when it is installed, else ``None``: for features with a fallback (a CSV table
    without pyarrow, a dict of columns without pandas)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if err.name is not None and err.name.split(".")[0] != module.split(".")[0]:
            raise  # installed, but broken: show that error
        return None
