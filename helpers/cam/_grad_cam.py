"""Grad-CAM.

Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra. "Grad-CAM: Visual
Explanations from Deep Networks via Gradient-based Localization." ICCV 2017.
"""

from __future__ import annotations

from . import _base
from ._base import tf


def weights(feats, grads):
    """``alpha_k^c = mean_ij dy^c/dA_k(i, j)`` (Selvaraju et al., 2017, Eq. 1): one weight per channel."""
    del feats
    return tf.reduce_mean(grads, axis=(1, 2))


def grad_cam(model, images, class_index=None, layer=None, return_class=False, *, output=None):
    """Grad-CAM: feature maps weighted by their spatially averaged gradients.

    ``alpha_k^c = mean_ij dy^c/dA_k(i, j)``, ``L^c = ReLU(sum_k alpha_k^c A_k)``
    (Selvaraju et al., 2017, Eqs. 1-2), with ``y^c`` the pre-softmax score, then
    divided by ``max + eps``.

    Args:
        model: any Keras 3 model (nested sub-models included).
        images: preprocessed batch ``(B, H, W, 3)``.
        class_index: None (top-1 per image), an int, an ImageNet class name
            (1000-class models), or one of those per image.
        layer: name or layer; None is the last layer with a spatial output.
        return_class: also return the class index each map explains.
        output: the output holding the class scores (name or index); required
            for models with several outputs.

    Returns:
        float32 ``(B, h, w)`` in [0, 1] (and int32 ``(B,)`` classes with ``return_class``).
    """
    return _base.gradient_cam(model, images, class_index, layer, weights, "grad_cam", return_class, output=output)
