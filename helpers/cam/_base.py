"""The shared base of the CAM family, in the way of pytorch-grad-cam's ``BaseCAM``.

Every method differs only in how it weighs the feature maps ``A`` of one layer
(pytorch-grad-cam's ``get_cam_weights``): gradient methods hand
:func:`gradient_cam` a ``weights(feats, grads)`` function; CAM and Score-CAM
build their own compiled function with :func:`run`. What is here: the gradient
step (:func:`feature_gradients`), the weighted sum, :func:`run` (checks, one
compiled function per (model, layer, method, output), maps back as numpy) and
:func:`upsample`. The model itself (argument checks, classes, the output and its
pre-softmax scores, tapping the layer, the compile cache) belongs to
:mod:`helpers._core`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import _core
from .._core import EPS, relu_max_scale, tf
from ..graph import find_layer, output_index

__all__ = ["EPS", "feature_gradients", "gradient_cam", "relu_max_scale", "run", "tf", "upsample", "weighted_sum"]


def feature_gradients(taps, images, class_index):
    """Feature maps ``A``, ``dy^c/dA`` of the pre-softmax score ``y^c``, and the class used."""
    with tf.GradientTape() as tape:
        feats, logits = taps(images, training=False)
        scores, idx = _core.pick_scores(logits, class_index)
        # Images of a batch are independent in inference mode, so d(sum)/dA_i = dy_i/dA_i.
        total = tf.reduce_sum(scores)
    grads = tape.gradient(total, feats)
    return tf.cast(feats, tf.float32), tf.cast(grads, tf.float32), idx


def weighted_sum(feats, weights):
    """``sum_k w_k A_k``: ``weights`` per channel ``(B, C)`` or per location ``(B, h, w, C)``."""
    if weights.shape.rank == 2:
        weights = weights[:, None, None, :]
    return tf.reduce_sum(weights * feats, axis=-1)


def gradient_cam(
    model,
    images,
    class_index,
    layer,
    weights: Callable,
    method: str,
    return_class: bool = False,
    *,
    output=None,
):
    """The gradient step shared by Grad-CAM, Grad-CAM++ and Layer-CAM.

    One compiled function computes ``A`` and ``g = dy^c/dA`` and returns
    ``relu_max_scale(sum_k W * A_k)`` with ``W = weights(A, g)``, of shape ``(B, C)``
    (a weight per channel) or ``(B, h, w, C)`` (a weight per location).
    """

    def build(taps, _layer):
        def fn(images, class_index):
            feats, grads, idx = feature_gradients(taps, images, class_index)
            return relu_max_scale(weighted_sum(feats, weights(feats, grads))), idx

        return fn

    return run(model, images, class_index, layer, method, build, return_class, output=output)


def compiled_method(model, layer, method: str, build: Callable, output=None) -> Callable:
    """The compiled function of ``method`` at ``layer`` of ``model``, built once (in :func:`helpers._core.compiled`).

    ``build(taps, layer)`` receives the flat model returning ``[A, logits]`` and
    the resolved layer, and returns the function to compile:
    ``fn(images (B, H, W, C) float32, class_index (B,) int32) -> (maps, idx)``.
    """
    layer = find_layer(model, layer)
    key = ("cam", layer.name, method, output_index(model, output))

    def make():
        taps, lay = _core.taps_model(model, layer, output)
        return build(taps, lay)

    return _core.compiled(model, key, make, [_core.input_spec(model), _core.CLASSES_SPEC])


def run(
    model,
    images,
    class_index,
    layer,
    method: str,
    build: Callable,
    return_class: bool = False,
    *,
    output=None,
    inspect: Callable | None = None,
):
    """Check arguments, call the compiled method, return numpy maps ``(B, h, w)`` (and classes).

    With ``inspect``, the compiled function returns ``(maps, idx, *extra)`` and
    ``inspect(layer, *extra)`` is called with the resolved layer (to warn about it).
    """
    x, idx = _core.prepare(model, images, class_index, output)
    fn = compiled_method(model, layer, method, build, output)
    maps, used, *extra = fn(x, tf.constant(idx))
    if inspect is not None:
        inspect(find_layer(model, layer), *extra)
    maps = maps.numpy().astype(np.float32)
    return (maps, used.numpy()) if return_class else maps


def upsample(heatmaps, size) -> np.ndarray:
    """Bilinear resize of maps ``(B, h, w)`` or ``(h, w)`` to ``size`` = (H, W) or an int.

    The result is clipped to [0, 1]: bilinear interpolation is a convex
    combination, so for maps in [0, 1] the clip only removes float round-off
    (pytorch-grad-cam resizes with OpenCV and tf-keras-vis with scipy's
    ``zoom``, then both min-max rescale; we keep the maps' own scale instead).

    Raises:
        ValueError: maps that are not 2-D/3-D, have no pixel or hold NaN/inf, or a
            ``size`` that is not one or two ints >= 1.
    """
    h = np.asarray(heatmaps, np.float32)
    if h.ndim not in (2, 3) or 0 in h.shape[-2:]:
        raise ValueError(f"heatmaps must be (B, h, w) or (h, w) with at least one pixel, got shape {h.shape}")
    if not np.isfinite(h).all():
        raise ValueError("heatmaps contain NaN or inf; normalise them with max + eps")
    single = h.ndim == 2
    if single:
        h = h[None]
    size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in size):
        raise ValueError(f"size must be an int or (H, W) of ints >= 1, got {size!r}")
    size = tuple(int(v) for v in size)
    out = tf.image.resize(h[..., None], size, method="bilinear")[..., 0].numpy()
    out = np.clip(out, 0.0, 1.0)
    return out[0] if single else out
