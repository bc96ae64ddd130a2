"""The explainers, one family per module, each registered once (:mod:`areacam.methods.registry`).

==============================  ======================================================================
module                          methods
==============================  ======================================================================
:mod:`~.cam`                    gradient CAMs: Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM, XGrad-CAM
:mod:`~.field`                  the forward-mode field of the CAMs that have one (Grad-CAM, XGrad-CAM)
:mod:`~.perturbation_cams`      Score-CAM, Ablation-CAM
:mod:`~.eigen`                  Eigen-CAM
:mod:`~.gradients`              Saliency, InputXGradient, GuidedBackprop, SmoothGrad
:mod:`~.guided_gradcam`         Guided Grad-CAM
:mod:`~.integrated`             Integrated Gradients
:mod:`~.occlusion`              Occlusion
:mod:`~.lime`                   LIME
==============================  ======================================================================

A new method is one module here (a class on the base of its kind: :mod:`~.cam`, :mod:`~.base` or
:class:`~areacam.core.explainer.Explainer`) with one ``@register(...)`` line; the command line, the
docs' method table and the tests that run every method read the registry. ``areacam/__init__.py``
imports each family module, which registers its methods, and exports the public classes.
"""
