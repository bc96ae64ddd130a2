"""Reference models for areacam: a classifier, an autoencoder, VAEs, a VAE-GAN, FCN-8s/32s, U-Nets, a 1-D autoencoder.

```python
from areacam import models
model = models.create("fcn", num_classes=4, head="8s", backbone="vgg16")
models.save(model, "fcn.pt"); model = models.load("fcn.pt")
```

The source lives in the repository's top-level ``models/`` folder and installs as ``areacam.models``.
Training: :func:`areacam.models.train.train` (CLI: ``scripts/train.py``). Layer names for the explainers
are listed in each class's docstring and in ``docs/models.md``.
"""

from .classifier import Classifier
from .registry import TASKS, create, load, load_checkpoint, names, save
from .segmentation import BACKBONES, FCN, HEADS, unet
from .vae import AE, CVAE, DVAE, VAE, VAEGAN, LinearVAE
from .volumes import SignalAE, UNet3D

__all__ = [
    "AE",
    "BACKBONES",
    "CVAE",
    "DVAE",
    "FCN",
    "HEADS",
    "TASKS",
    "VAE",
    "VAEGAN",
    "Classifier",
    "LinearVAE",
    "SignalAE",
    "UNet3D",
    "create",
    "load",
    "load_checkpoint",
    "names",
    "save",
    "unet",
]
