"""Layer-CAM.

Jiang, Zhang, Hou, Cheng, Wei. "LayerCAM: Exploring Hierarchical Class
Activation Maps for Localization." IEEE TIP 2021.
"""

from __future__ import annotations

from . import _base
from ._base import tf
from .grad_cam import gradients


def layer_cam(model, images, class_index=None, layer=None, return_class=False):
    """Layer-CAM: every location weighted by its own positive gradient.

    ``L^c = ReLU(sum_k ReLU(g_k) * A_k)`` elementwise (Jiang et al., 2021, Eq. 5),
    which keeps fine detail at shallow layers where Grad-CAM's averaged weights
    blur. Same contract as ``grad_cam``.
    """

    def build(taps, _layer):
        def fn(images, class_index):
            feats, g, idx = gradients(taps, images, class_index)
            return _base.normalize(tf.reduce_sum(tf.nn.relu(g) * feats, axis=-1)), idx

        return fn

    return _base.run(model, images, class_index, layer, "layer_cam", build, return_class)
