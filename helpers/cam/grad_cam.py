"""Grad-CAM.

Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra. "Grad-CAM: Visual
Explanations from Deep Networks via Gradient-based Localization." ICCV 2017.
"""

from __future__ import annotations

from . import _base
from ._base import tf


def gradients(taps, images, class_index):
    """Feature maps ``A``, ``dy^c/dA`` of the pre-softmax score, and the class used."""
    with tf.GradientTape() as tape:
        feats, logits = taps(images, training=False)
        scores, idx = _base.pick_scores(logits, class_index)
        # Images of a batch are independent in inference mode, so d(sum)/dA_i = dy_i/dA_i.
        total = tf.reduce_sum(scores)
    grads = tape.gradient(total, feats)
    return tf.cast(feats, tf.float32), tf.cast(grads, tf.float32), idx


def grad_cam(model, images, class_index=None, layer=None, return_class=False):
    """Grad-CAM: feature maps weighted by their spatially averaged gradients.

    ``alpha_k^c = mean_ij dy^c/dA_k(i, j)``, ``L^c = ReLU(sum_k alpha_k^c A_k)``
    (Selvaraju et al., 2017, Eqs. 1-2), with ``y^c`` the pre-softmax score.

    Args:
        model: any Keras 3 model (nested sub-models included).
        images: preprocessed batch ``(B, H, W, 3)``.
        class_index: None (top-1 per image), an int, or one int per image.
        layer: name or layer; None is the last layer with a spatial output.
        return_class: also return the class index each map explains.

    Returns:
        float32 ``(B, h, w)`` in [0, 1] (and int32 ``(B,)`` classes with ``return_class``).
    """

    def build(taps, _layer):
        def fn(images, class_index):
            feats, grads, idx = gradients(taps, images, class_index)
            weights = tf.reduce_mean(grads, axis=(1, 2))
            return _base.normalize(tf.einsum("bhwc,bc->bhw", feats, weights)), idx

        return fn

    return _base.run(model, images, class_index, layer, "grad_cam", build, return_class)
