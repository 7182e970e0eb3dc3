"""Grad-CAM++.

Chattopadhay, Sarkar, Howlader, Balasubramanian. "Grad-CAM++: Generalized
Gradient-based Visual Explanations for Deep Convolutional Networks." WACV 2018.
"""

from __future__ import annotations

import warnings

from .. import _core
from . import _base
from ._base import tf


def weights(feats, grads):
    """``w_k = sum_ij alpha_ij^k ReLU(g_ij^k)`` with the closed-form ``alpha`` of Eq. 19.

    ``alpha_ij^k = g^2 / (2 g^2 + sum_ab A_ab^k g^3)`` (0 where ``g = 0``), per
    channel and location, exactly as pytorch-grad-cam computes it.
    """
    g2 = tf.square(grads)
    denom = 2.0 * g2 + tf.reduce_sum(feats, axis=(1, 2), keepdims=True) * g2 * grads
    alpha = tf.where(grads != 0.0, g2 / (denom + _base.EPS), 0.0)
    # alpha * ReLU(g), written so that an infinite alpha (denominator 0) at g <= 0 gives 0, not inf * 0 = NaN
    return tf.reduce_sum(tf.where(grads > 0.0, alpha * grads, 0.0), axis=(1, 2))


def grad_cam_plus_plus(model, images, class_index=None, layer=None, return_class=False, *, output=None):
    """Grad-CAM++: channels weighted by pixel-wise weighted positive gradients.

    With ``g = dy^c/dA`` of the pre-softmax score and the exponential output
    ``Y^c = exp(y^c)`` the paper assumes, its closed form (Chattopadhay et al.,
    2018, Eq. 19, with Eq. 7's ReLU) gives
    ``alpha_ij^k = g^2 / (2 g^2 + sum_ab A_ab^k g^3)`` and
    ``w_k = sum_ij alpha_ij^k ReLU(g_ij^k)``; then ``ReLU(sum_k w_k A_k)``.

    Variant: the per-location ``alpha`` is used as is, as in pytorch-grad-cam
    (``GradCAMPlusPlus.get_cam_weights``). tf-keras-vis (``GradcamPlusPlus``)
    additionally divides ``alpha`` by its spatial sum per channel and multiplies
    the gradients by ``exp(y^c)``; that changes the channel weights and so the
    map. Same arguments and result as :func:`grad_cam`.

    Warns (``UserWarning``) when the layer has negative activations (a layer
    before its ReLU, a BatchNorm or an ``Add`` output): the paper's weights
    assume post-ReLU maps, and there they can explode or flip sign.
    """

    def build(taps, _layer):
        def fn(images, class_index):
            feats, grads, idx = _base.feature_gradients(taps, images, class_index)
            return _base.relu_max_scale(_base.weighted_sum(feats, weights(feats, grads))), idx, tf.reduce_min(feats)

        return fn

    return _base.run(
        model,
        images,
        class_index,
        layer,
        "grad_cam_plus_plus",
        build,
        return_class,
        output=output,
        inspect=_warn_if_signed,
    )


def _warn_if_signed(layer, lowest) -> None:
    """Warn when the layer's maps go negative: Eq. 19's denominator can then cross zero.

    With ``S_k = sum_ab A_ab^k``, ``alpha = 1 / (2 + S_k g)``: for ``S_k < 0`` it
    blows up at ``g = -2 / S_k`` and changes sign beyond (a 2 x 2 channel with
    ``S_k = -4`` and the same ``g`` everywhere: the weight goes 49, then 5e6, then
    -51 as ``g`` goes 0.49, 0.5, 0.51). Chattopadhay et al. derive it for post-ReLU
    maps (``A >= 0``), where the denominator stays positive.
    """
    lowest = float(lowest)
    if lowest < 0:
        warnings.warn(
            f"Grad-CAM++ at layer {layer.name!r}: its activations go negative (min {lowest:.3g}), but the "
            "closed-form weights of Chattopadhay et al. (2018, Eq. 19) assume post-ReLU maps (A >= 0); "
            "their denominator 2 + sum(A) * dy/dA can cross zero here and give huge or sign-flipped weights. "
            "Pick a layer after a ReLU, or use grad_cam / layer_cam.",
            UserWarning,
            stacklevel=_core.user_stacklevel(),
        )
