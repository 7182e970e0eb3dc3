"""Layer-CAM.

Jiang, Zhang, Hou, Cheng, Wei. "LayerCAM: Exploring Hierarchical Class
Activation Maps for Localization." IEEE TIP 2021.
"""

from __future__ import annotations

from . import _base
from ._base import tf


def weights(feats, grads):
    """``w_ij^k = ReLU(g_ij^k)`` (Jiang et al., 2021, Eq. 5): one weight per channel *and* location."""
    del feats
    return tf.nn.relu(grads)


def layer_cam(model, images, class_index=None, layer=None, return_class=False, *, output=None):
    """Layer-CAM: every location weighted by its own positive gradient.

    ``L^c = ReLU(sum_k ReLU(g_k) * A_k)`` elementwise (Jiang et al., 2021,
    Eqs. 5-6, as in pytorch-grad-cam's ``LayerCAM``), which keeps fine detail at
    shallow layers where Grad-CAM's averaged weights blur. Same arguments and
    result as :func:`grad_cam`.
    """
    return _base.gradient_cam(model, images, class_index, layer, weights, "layer_cam", return_class, output=output)
