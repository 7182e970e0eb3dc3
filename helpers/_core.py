"""The model core under every explainer: one place owns the model.

:mod:`helpers.cam`, :mod:`helpers.attribution` and :mod:`helpers.faithfulness`
all start the same way: check the batch, resolve which output of the model
holds the class scores (``output=``) and reach its *pre-softmax* scores
wherever the softmax sits (:func:`helpers.graph.tap_model`), turn
``class_index`` into one class per image, and compile one function per model
and job. That is done here, once, in the way of pytorch-grad-cam's
``BaseCAM`` + ``ActivationsAndGradients`` and captum's ``forward_func``:

* :func:`prepare`: the checked float32 batch and int32 classes (-1 = top-1),
  after :func:`check_images`, the model's input size, :func:`warn_if_raw_pixels`
  and :func:`class_indices`.
* :func:`logits_model` / :func:`logits`: the model returning the pre-softmax
  scores of the chosen output; :func:`taps_model`: the same with inner layers
  tapped (the CAM family's ``[A, logits]``).
* :func:`pick_scores`, :func:`class_scores`, :func:`resolve_classes`,
  :func:`class_probabilities`: scores, top-1 classes and softmax probabilities
  of the explained classes.
* :func:`compiled`: the one compile cache, ``tf.function`` per
  ``(model, key)``, held weakly on the model. Weights are captured as variables,
  so assigning new values (the sanity checks do) reuses the same function.

Internal: the explainers import these public names; learners call the
explainers.
"""

from __future__ import annotations

import sys
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from ._quiet import import_tensorflow
from .graph import find_layer, iter_layers, output_index, tap_model

tf = import_tensorflow()

EPS = 1e-7
RAW_PIXEL_THRESHOLD = 10.0
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------- maps
def relu_max_scale(maps):
    """ReLU, then divide each map by its own ``max + eps``: values in [0, 1], never NaN.

    The minimum is not subtracted (pytorch-grad-cam's ``scale_cam_image`` does),
    so 0 keeps meaning "no positive evidence" and an all-zero map stays zero.

    Args:
        maps: float tensor ``(B, h, w)``.
    """
    maps = tf.nn.relu(tf.cast(maps, tf.float32))
    peak = tf.reduce_max(maps, axis=(1, 2), keepdims=True)
    return maps / (peak + EPS)


# --------------------------------------------------------------------------- the batch
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
        stacklevel=user_stacklevel(),
    )


def user_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside the ``helpers`` package (the learner's line)."""
    package = str(Path(__file__).resolve().parent)
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def check_batch_size(batch_size) -> int:
    """``batch_size`` as an int >= 1 (images or perturbed copies per model call)."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


# --------------------------------------------------------------------------- classes
def _as_class(value, num_classes: int) -> int:
    if isinstance(value, str):
        if num_classes != 1000:
            raise ValueError(
                f"class name {value!r} needs a 1000-class ImageNet model; this model has {num_classes} "
                "classes: pass an int class index"
            )
        from . import models

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
    sequence/array of those, one per image. Floats and bools are refused, and
    so is every int outside ``[0, num_classes)``: a negative index is an error,
    never "the top-1 class".
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


def num_classes(model, output=None) -> int:
    """The number of class scores of ``output`` (None: the model's only output)."""
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


# --------------------------------------------------------------------------- the one compile cache
def compiled(model, key: tuple, build: Callable, signature: list) -> Callable:
    """``tf.function(build())`` with ``signature``, built once per ``(model, key)``.

    The weights are captured as variables, so assigning new values (as the
    sanity checks of :mod:`helpers.faithfulness` do) reuses the same function.
    """
    per_model = _COMPILED.setdefault(model, {})
    if key not in per_model:
        per_model[key] = tf.function(build(), input_signature=signature, reduce_retracing=True)
    return per_model[key]


def compiled_functions(model) -> dict:
    """A copy of everything compiled for ``model`` so far, ``{key: function}`` (to check nothing is rebuilt)."""
    return dict(_COMPILED.get(model, {}))


def input_spec(model):
    """The ``tf.TensorSpec`` of a float32 batch of the model's input, any batch size."""
    return tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)


CLASSES_SPEC = tf.TensorSpec([None], tf.int32)


# --------------------------------------------------------------------------- pre-softmax scores
def logits_model(model, output=None) -> keras.Model:
    """The model returning the pre-softmax scores of ``output`` (a softmax, nested too, removed), built once."""
    out = output_index(model, output)
    per_model = _COMPILED.setdefault(model, {})
    key = ("logits_model", out)
    if key not in per_model:
        per_model[key] = tap_model(model, [], logits=True, output=out)
    return per_model[key]


def logits(net, x):
    """The pre-softmax scores of a :func:`logits_model` (or :func:`taps_model`: its last output), float32."""
    out = net(x, training=False)
    out = out[-1] if isinstance(out, (list, tuple)) else out
    return tf.cast(out, tf.float32)


def taps_model(model, layer, output=None):
    """``(taps, layer)``: a flat model returning ``[A, logits]`` for ``layer`` (resolved) and ``output``."""
    layer = find_layer(model, layer)
    return tap_model(model, [layer], logits=True, output=output_index(model, output)), layer


def pick_scores(logits, class_index):
    """Score of each image's target class; ``class_index < 0`` means its top-1 class."""
    logits = tf.cast(logits, tf.float32)
    top = tf.argmax(logits, axis=-1, output_type=tf.int32)
    idx = tf.where(class_index < 0, top, class_index)
    onehot = tf.one_hot(idx, tf.shape(logits)[-1], dtype=logits.dtype)
    return tf.reduce_sum(logits * onehot, axis=-1), idx


def class_probabilities(net, x, cls):
    """Softmax probability of class ``cls[i]`` for image ``i``, from the pre-softmax scores of ``net``."""
    p = tf.nn.softmax(logits(net, x), axis=-1)
    return tf.gather(p, cls, axis=1, batch_dims=1)


def class_scores(model, x, idx, batch_size: int, output=None):
    """Pre-softmax scores and resolved classes of a checked batch (``idx`` -1 = top-1), ``batch_size`` at a time.

    Returns:
        ``(scores (B,), classes (B,))`` as numpy float32 / int32.
    """
    net = logits_model(model, output)

    def build():
        def fn(x, cls):
            return pick_scores(logits(net, x), cls)

        return fn

    fn = compiled(model, ("scores", output_index(model, output)), build, [input_spec(model), CLASSES_SPEC])
    bs = batch_size
    outs = [fn(x[i : i + bs], tf.constant(idx[i : i + bs])) for i in range(0, int(x.shape[0]), bs)]
    return (
        np.concatenate([o[0].numpy() for o in outs]).astype(np.float32),
        np.concatenate([o[1].numpy() for o in outs]).astype(np.int32),
    )


def resolve_classes(model, x, idx, batch_size: int, output=None) -> np.ndarray:
    """Class indices with -1 (top-1) resolved on the clean images."""
    return class_scores(model, x, idx, batch_size, output)[1] if (idx < 0).any() else idx


__all__ = [
    "CLASSES_SPEC",
    "EPS",
    "RAW_PIXEL_THRESHOLD",
    "check_batch_size",
    "check_images",
    "class_indices",
    "class_probabilities",
    "class_scores",
    "compiled",
    "compiled_functions",
    "input_spec",
    "logits",
    "logits_model",
    "num_classes",
    "pick_scores",
    "prepare",
    "relu_max_scale",
    "resolve_classes",
    "taps_model",
    "user_stacklevel",
    "warn_if_raw_pixels",
]
