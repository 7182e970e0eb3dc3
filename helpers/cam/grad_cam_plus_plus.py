"""Grad-CAM++.

Chattopadhay, Sarkar, Howlader, Balasubramanian. "Grad-CAM++: Generalized
Gradient-based Visual Explanations for Deep Convolutional Networks." WACV 2018.
"""

from __future__ import annotations

from . import _base
from ._base import tf
from .grad_cam import gradients


def grad_cam_plus_plus(model, images, class_index=None, layer=None, return_class=False):
    """Grad-CAM++: pixel-wise weighted positive gradients.

    With ``g = dy^c/dA`` and an exponential score, the closed form of the paper
    (Eq. 19) gives ``a_ij^k = g^2 / (2 g^2 + sum_ab A_ab^k g^3)`` and channel
    weights ``w_k = sum_ij a_ij^k ReLU(g_ij^k)``. Same contract as ``grad_cam``.
    """

    def build(taps, _layer):
        def fn(images, class_index):
            feats, g, idx = gradients(taps, images, class_index)
            g2 = tf.square(g)
            denom = 2.0 * g2 + tf.reduce_sum(feats, axis=(1, 2), keepdims=True) * g2 * g
            alpha = tf.where(g != 0.0, g2 / (denom + _base.EPS), 0.0)
            weights = tf.reduce_sum(alpha * tf.nn.relu(g), axis=(1, 2))
            return _base.normalize(tf.einsum("bhwc,bc->bhw", feats, weights)), idx

        return fn

    return _base.run(model, images, class_index, layer, "grad_cam_plus_plus", build, return_class)
