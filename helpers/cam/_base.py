"""The shared base of the CAM family.

Argument checks, one compiled function per (model, layer, method),
target-class selection and normalisation live here.

Every method differs only in how it weighs the feature maps ``A`` of one layer;
this module does everything else once.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from .._quiet import import_tensorflow
from ..graph import find_layer, tap_model

tf = import_tensorflow()

EPS = 1e-7
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def normalize(maps):
    """ReLU, then divide each map by its own ``max + eps``: values in [0, 1], never NaN.

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
    """
    x = tf.cast(images, tf.float32) if tf.is_tensor(images) else tf.constant(np.asarray(images, dtype=np.float32))
    if x.shape.rank != 4:
        raise ValueError(
            f"images must be a preprocessed batch (B, H, W, C), got shape {tuple(x.shape)}; "
            "for one image use x[None] or models.preprocess(name, image)"
        )
    return x


def class_indices(class_index, batch: int, num_classes: int) -> np.ndarray:
    """Normalise ``class_index`` (None, an int, or one per image) to int32 ``(B,)``."""
    if class_index is None:
        return np.full(batch, -1, np.int32)
    idx = np.asarray(class_index)
    if idx.ndim == 0:
        idx = np.full(batch, int(idx))
    if idx.shape != (batch,):
        raise ValueError(f"class_index must be None, an int or {batch} ints; got shape {idx.shape}")
    bad = idx[(idx < 0) | (idx >= num_classes)]
    if bad.size:
        raise ValueError(f"class index {int(bad[0])} is out of range [0, {num_classes})")
    return idx.astype(np.int32)


def compiled(model, layer, method: str, build: Callable) -> tuple[Callable, object]:
    """The compiled function of ``method`` at ``layer`` of ``model``, built once.

    ``build(taps, layer)`` receives the flat model returning ``[A, logits]`` and
    returns the function to compile: ``fn(images, class_index) -> (maps, idx)``.
    """
    layer = find_layer(model, layer)
    per_model = _COMPILED.setdefault(model, {})
    key = (layer.name, method)
    if key not in per_model:
        taps = tap_model(model, [layer], logits=True)
        fn = build(taps, layer)
        per_model[key] = tf.function(
            fn,
            input_signature=[
                tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32),
                tf.TensorSpec([None], tf.int32),
            ],
            reduce_retracing=True,
        )
    return per_model[key], layer


def num_classes(model) -> int:
    return int(model.outputs[0].shape[-1])


def run(model, images, class_index, layer, method: str, build: Callable, return_class: bool = False):
    """Check arguments, call the compiled method, return numpy maps ``(B, h, w)``."""
    x = check_images(images)
    want = tuple(model.inputs[0].shape[1:])
    if any(w is not None and w != g for w, g in zip(want, x.shape[1:])):
        raise ValueError(
            f"images are {tuple(x.shape[1:])} but the model expects {want}; "
            "resize and normalise them with models.preprocess(name, images)"
        )
    idx = class_indices(class_index, int(x.shape[0]), num_classes(model))
    fn, _ = compiled(model, layer, method, build)
    maps, used = fn(x, tf.constant(idx))
    maps = maps.numpy().astype(np.float32)
    return (maps, used.numpy()) if return_class else maps


def upsample(heatmaps, size) -> np.ndarray:
    """Bilinear resize of maps ``(B, h, w)`` or ``(h, w)`` to ``size`` = (H, W) or an int."""
    h = np.asarray(heatmaps, np.float32)
    single = h.ndim == 2
    if single:
        h = h[None]
    size = (size, size) if isinstance(size, int) else tuple(size)
    out = tf.image.resize(h[..., None], size, method="bilinear")[..., 0].numpy()
    out = np.clip(out, 0.0, 1.0)
    return out[0] if single else out
