"""The shared base of the CAM family.

Argument checks, one compiled function per (model, layer, method, output),
target-class selection, the gradient step and normalisation live here.

Every method differs only in how it weighs the feature maps ``A`` of one layer
(pytorch-grad-cam's ``get_cam_weights``): gradient methods hand
:func:`gradient_cam` a ``weights(feats, grads)`` function; CAM and Score-CAM
build their own compiled function with :func:`run`.
"""

from __future__ import annotations

import sys
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from .._quiet import import_tensorflow
from ..graph import find_layer, iter_layers, output_index, tap_model

tf = import_tensorflow()

EPS = 1e-7
RAW_PIXEL_THRESHOLD = 10.0
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def normalize(maps):
    """ReLU, then divide each map by its own ``max + eps``: values in [0, 1], never NaN.

    The minimum is not subtracted (pytorch-grad-cam's ``scale_cam_image`` does),
    so 0 keeps meaning "no positive evidence" and an all-zero map stays zero.

    Args:
        maps: float tensor ``(B, h, w)``.
    """
    maps = tf.nn.relu(tf.cast(maps, tf.float32))
    peak = tf.reduce_max(maps, axis=(1, 2), keepdims=True)
    return maps / (peak + EPS)


def pick_scores(logits, class_index):
    """Score of each image's target class; ``class_index < 0`` means its top-1 class."""
    logits = tf.cast(logits, tf.float32)
    top = tf.argmax(logits, axis=-1, output_type=tf.int32)
    idx = tf.where(class_index < 0, top, class_index)
    onehot = tf.one_hot(idx, tf.shape(logits)[-1], dtype=logits.dtype)
    return tf.reduce_sum(logits * onehot, axis=-1), idx


def check_images(images):
    """A preprocessed batch as a float32 tensor ``(B, H, W, C)``; anything else is a clear error.

    Tensors pass through without a copy to numpy and back.

    Raises:
        ValueError: not 4-D, an empty batch, or NaN/inf values.
    """
    x = tf.cast(images, tf.float32) if tf.is_tensor(images) else tf.constant(np.asarray(images, dtype=np.float32))
    if x.shape.rank != 4:
        raise ValueError(
            f"images must be a preprocessed batch (B, H, W, C), got shape {tuple(x.shape)}; "
            "for one image use x[None] or models.preprocess(name, image)"
        )
    if x.shape[0] == 0:
        raise ValueError("images is an empty batch (0 images); pass at least one image")
    if not bool(tf.reduce_all(tf.math.is_finite(x))):
        raise ValueError("images contain NaN or inf values; the maps would be NaN. Check the preprocessing")
    return x


def warn_if_raw_pixels(model, x) -> None:
    """Warn when a batch looks like raw 0..255 pixels given to a model that expects preprocessed ones.

    Rule: every value is >= 0 and some value is above ``RAW_PIXEL_THRESHOLD`` (10),
    and the model has no ``Rescaling``/``Normalization`` layer of its own.
    Preprocessed inputs of the course's models are either about [-1, 1]
    (EfficientNet-Lite0, Xception) or mean-subtracted with negative values
    (VGG16, ResNet50 "caffe" mode), so they never trigger it; raw photos do.
    """
    lo, hi = float(tf.reduce_min(x)), float(tf.reduce_max(x))  # one pass each over the batch
    if lo < 0 or hi <= RAW_PIXEL_THRESHOLD:
        return
    if any(isinstance(lay, (keras.layers.Rescaling, keras.layers.Normalization)) for lay in iter_layers(model)):
        return
    warnings.warn(
        f"images range over [{lo:g}, {hi:g}]: that looks like raw 0..255 pixels, but model {model.name!r} "
        "expects preprocessed inputs; use models.preprocess(name, images). Maps of raw pixels are meaningless.",
        UserWarning,
        stacklevel=_user_stacklevel(),
    )


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside the ``helpers`` package (the learner's line)."""
    package = str(Path(__file__).resolve().parents[1])
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _as_class(value, num_classes: int) -> int:
    if isinstance(value, str):
        if num_classes != 1000:
            raise ValueError(
                f"class name {value!r} needs a 1000-class ImageNet model; this model has {num_classes} "
                "classes: pass an int class index"
            )
        from .. import models

        return models.class_index(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"class_index must be an int (or an ImageNet class name), not {value!r}")
    if not 0 <= int(value) < num_classes:
        raise ValueError(f"class index {int(value)} is out of range [0, {num_classes})")
    return int(value)


def class_indices(class_index, batch: int, num_classes: int) -> np.ndarray:
    """Normalise ``class_index`` to int32 ``(B,)``; -1 means "the top-1 class".

    Accepted: None (top-1 per image), an int (numpy ints included), an ImageNet
    class name (for 1000-class models, via ``models.class_index``), or a
    sequence/array of those, one per image. Floats and bools are refused.
    """
    if class_index is None:
        return np.full(batch, -1, np.int32)
    if tf.is_tensor(class_index):
        class_index = class_index.numpy()
    if isinstance(class_index, np.ndarray):
        if class_index.dtype.kind not in "iuUS":
            raise ValueError(f"class_index must hold ints, got an array of {class_index.dtype}")
        class_index = class_index.item() if class_index.ndim == 0 else class_index.tolist()
    if isinstance(class_index, (list, tuple)):
        if len(class_index) != batch:
            raise ValueError(f"class_index must be None, an int or {batch} ints; got {len(class_index)} values")
        return np.array([_as_class(v, num_classes) for v in class_index], np.int32)
    return np.full(batch, _as_class(class_index, num_classes), np.int32)


def gradients(taps, images, class_index):
    """Feature maps ``A``, ``dy^c/dA`` of the pre-softmax score ``y^c``, and the class used."""
    with tf.GradientTape() as tape:
        feats, logits = taps(images, training=False)
        scores, idx = pick_scores(logits, class_index)
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
    ``normalize(sum_k W * A_k)`` with ``W = weights(A, g)``, of shape ``(B, C)``
    (a weight per channel) or ``(B, h, w, C)`` (a weight per location).
    """

    def build(taps, _layer):
        def fn(images, class_index):
            feats, grads, idx = gradients(taps, images, class_index)
            return normalize(weighted_sum(feats, weights(feats, grads))), idx

        return fn

    return run(model, images, class_index, layer, method, build, return_class, output=output)


def compiled(model, layer, method: str, build: Callable, output=None) -> Callable:
    """The compiled function of ``method`` at ``layer`` of ``model``, built once.

    ``build(taps, layer)`` receives the flat model returning ``[A, logits]`` and
    the resolved layer, and returns the function to compile:
    ``fn(images (B, H, W, C) float32, class_index (B,) int32) -> (maps, idx)``.
    """
    layer = find_layer(model, layer)
    out = output_index(model, output)
    per_model = _COMPILED.setdefault(model, {})
    key = (layer.name, method, out)
    if key not in per_model:
        taps = tap_model(model, [layer], logits=True, output=out)
        per_model[key] = tf.function(
            build(taps, layer),
            input_signature=[
                tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32),
                tf.TensorSpec([None], tf.int32),
            ],
            reduce_retracing=True,
        )
    return per_model[key]


def num_classes(model, output=None) -> int:
    return int(model.outputs[output_index(model, output)].shape[-1])


def prepare(model, images, class_index, output=None):
    """Every argument check of the library's explanation methods, in one call.

    Returns:
        ``(x, idx)``: the batch as a float32 tensor ``(B, H, W, C)`` and int32
        class indices ``(B,)`` (-1 = "the top-1 class"), after
        :func:`check_images`, the model's input size, :func:`warn_if_raw_pixels`
        and :func:`class_indices` (``output`` picks the scores of a model with
        several outputs).
    """
    x = check_images(images)
    want = tuple(model.inputs[0].shape[1:])
    if any(w is not None and w != g for w, g in zip(want, x.shape[1:])):
        raise ValueError(
            f"images are {tuple(x.shape[1:])} but the model expects {want}; "
            "resize and normalise them with models.preprocess(name, images)"
        )
    warn_if_raw_pixels(model, x)
    return x, class_indices(class_index, int(x.shape[0]), num_classes(model, output))


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
    x, idx = prepare(model, images, class_index, output)
    fn = compiled(model, layer, method, build, output)
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
