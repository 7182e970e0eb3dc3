"""Filter patterns: the input each filter responds to most, by gradient ascent.

Plain method: Erhan, Bengio, Courville, Vincent, "Visualizing Higher-Layer
Features of a Deep Network" (2009), as taught by Chollet, *Deep Learning with
Python* (2nd ed., Sec. 9.4.2): start from noise, follow the L2-normalised
gradient of the filter's mean activation. Regularised method: Olah, Mordvintsev,
Schubert, "Feature Visualization", Distill 2017 — a Fourier-space,
colour-decorrelated parametrisation with random jitter and scaling each step.

All filters of one call are optimised together, one image per filter, in one
compiled step, one batched forward+backward pass per step (whether that makes 64 filters cost
little more than one depends on the hardware: on a 2-core CPU the batch costs about what the
filters cost one at a time; the benchmarks measure it).

The regularised method delegates to :mod:`helpers.featureviz` (lucent's parametrisation and
transformation robustness).
"""

from __future__ import annotations

import weakref

import numpy as np

from ._quiet import import_tensorflow
from .graph import find_layer, tap_model

tf = import_tensorflow()

_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _progress(iterable, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, disable=not enabled)


def _feature_fn(model, layer, size: int):
    lay = find_layer(model, layer)
    taps = tap_model(model, [lay], logits=False, input_shape=(size, size, model.inputs[0].shape[-1]))
    return taps, lay


def border(h: int, w: int) -> int:
    """Cells excluded at each side of an ``h x w`` map: 2, fewer on maps under 5 cells, never all."""
    return max(0, min(2, (min(h, w) - 1) // 2))


def _objective(taps, images, filters, b: int):
    """Mean activation of each image's own filter, ``b`` border cells excluded on each side."""
    act = tf.cast(taps(images, training=False), tf.float32)
    act = tf.gather(act, filters, axis=-1, batch_dims=1)  # (B, h, w)
    h, w = tf.shape(act)[1], tf.shape(act)[2]
    inner = act[:, b : h - b, b : w - b]
    return tf.reduce_mean(inner, axis=(1, 2))


def map_size(model, layer, size: int) -> tuple[int, int]:
    """``(h, w)`` of ``layer``'s maps for a ``size x size`` input."""
    taps, _ = _feature_fn(model, layer, size)
    shape = taps.outputs[0].shape
    return int(shape[1]), int(shape[2])


def _compile(model, layer, size: int, method: str, value_range):
    per_model = _STEPS.setdefault(model, {})
    lay = find_layer(model, layer)
    key = (lay.name, size, method, tuple(value_range))
    if key in per_model:
        return per_model[key]
    taps, _ = _feature_fn(model, lay, size)
    shape = taps.outputs[0].shape
    h, w = int(shape[1]), int(shape[2])
    if min(h, w) <= 2:
        raise ValueError(
            f"layer {lay.name!r} has {h}x{w} maps at a {size}px input: the mean over its inner cells is "
            "undefined (no cell left once the border is excluded); use a larger size or an earlier layer"
        )
    b = border(h, w)
    lo, hi = value_range

    if method == "plain":

        @tf.function(reduce_retracing=True)
        def step(images, filters, lr):
            with tf.GradientTape() as tape:
                tape.watch(images)
                loss = _objective(taps, images, filters, b)
                total = tf.reduce_sum(loss)
            g = tape.gradient(total, images)
            g = g / (tf.norm(tf.reshape(g, (tf.shape(g)[0], -1)), axis=1)[:, None, None, None] + 1e-8)
            return images + lr * g, loss

        per_model[key] = (step, None, tf.function(lambda images, filters: _objective(taps, images, filters, b)))
        return per_model[key]
    raise ValueError(f"unknown method {method!r}")


def deprocess(images, crop: int) -> np.ndarray:
    """Standardise each image, map to uint8 (mean 128, 64 per std), crop the border."""
    x = np.asarray(images, np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) / (std + 1e-5) * 64 + 128
    x = np.clip(x, 0, 255).astype(np.uint8)
    return x[:, crop : x.shape[1] - crop, crop : x.shape[2] - crop] if crop else x


def filter_patterns(
    model,
    layer,
    filters=range(64),
    steps: int = 30,
    learning_rate: float | None = None,
    size: int = 200,
    seed: int = 0,
    method: str = "plain",
    value_range=(-1.0, 1.0),
    progress: bool = True,
    return_loss: bool = False,
):
    """The input pattern that maximises each filter's mean activation.

    Args:
        model: any Keras 3 convnet; the part up to ``layer`` is re-traced at
            ``size x size`` input.
        layer: name or layer whose channels are the filters.
        filters: channel indices; all are optimised together in one batch.
        steps: gradient-ascent steps.
        learning_rate: step size; None is 10.0 for ``"plain"`` (the lesson's value)
            and 0.05 (Adam, lucent's default) for ``"fourier"``.
        size: side of the optimised image in pixels.
        seed: the same seed gives the same patterns.
        method: ``"plain"`` or ``"fourier"`` (regularised, Olah et al. 2017: decorrelated
            colour, 1/f spectrum, lucent's transformations; :func:`helpers.featureviz.visualize`
            with a channel objective, the mean over the whole map).
        value_range: the model's input range that [0, 1] images map to
            (``(-1, 1)`` for the embedded model).
        progress: show a progress bar over the steps.
        return_loss: also return each filter's objective on the final image.

    Returns:
        uint8 ``(len(filters), size - 2*crop, size - 2*crop, 3)``, border cropped
        (``crop = size // 8``); with ``return_loss``, ``(patterns, activations)``.

    Raises:
        ValueError: unknown method, filter out of range, ``steps < 1``, or a layer whose maps are
            2 cells wide or less at ``size`` (nothing would be left once the border is excluded).
    """
    if method not in ("plain", "fourier"):
        raise ValueError(f"method must be 'plain' or 'fourier', not {method!r}")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    lay = find_layer(model, layer)
    channels = int(lay.output.shape[-1])
    idx = np.asarray(list(filters), np.int32)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= channels:
        raise ValueError(f"filters must be non-empty indices in [0, {channels}) for layer {lay.name!r}")
    crop = size // 8
    if method == "fourier":
        from . import featureviz

        vis = featureviz.visualize(
            model,
            featureviz.channel(lay.name, idx.tolist()),
            steps=steps,
            size=size,
            learning_rate=featureviz.LEARNING_RATE if learning_rate is None else learning_rate,
            seed=seed,
            value_range=value_range,
            progress=progress,
        )
        out = vis.images[:, crop : size - crop, crop : size - crop]
        return (out, vis.values) if return_loss else out
    step, _, evaluate = _compile(model, lay, size, method, value_range)
    n = len(idx)
    f = tf.constant(idx)
    rng = np.random.default_rng(seed)
    lr = tf.constant(10.0 if learning_rate is None else learning_rate, tf.float32)
    img = tf.constant(rng.uniform(0.4, 0.6, (n, size, size, 3)).astype(np.float32))
    for _ in _progress(range(steps), progress, f"{lay.name} ({n} filters)"):
        img, _ = step(img, f, lr)
    out = deprocess(img.numpy(), crop=crop)
    if not return_loss:
        return out
    return out, evaluate(img, f).numpy()  # each filter's objective on the final image


def stitch(patterns, rows: int | None = None, margin: int = 5) -> np.ndarray:
    """Tile ``(N, h, w, 3)`` patterns into one uint8 grid with a black margin."""
    p = np.asarray(patterns, np.uint8)
    n, h, w, c = p.shape
    rows = rows or int(np.ceil(np.sqrt(n)))
    cols = -(-n // rows)
    grid = np.zeros((rows * h + (rows - 1) * margin, cols * w + (cols - 1) * margin, c), np.uint8)
    for i in range(n):  # tiling N small images; not a hot path
        r, q = divmod(i, cols)
        grid[r * (h + margin) : r * (h + margin) + h, q * (w + margin) : q * (w + margin) + w] = p[i]
    return grid
