"""Filter patterns: the input each filter responds to most, by gradient ascent.

Plain method: Erhan, Bengio, Courville, Vincent, "Visualizing Higher-Layer
Features of a Deep Network" (2009), as taught by Chollet, *Deep Learning with
Python* (2nd ed., Sec. 9.4.2): start from noise, follow the L2-normalised
gradient of the filter's mean activation. Regularised method: Olah, Mordvintsev,
Schubert, "Feature Visualization", Distill 2017 — a Fourier-space,
colour-decorrelated parametrisation with random jitter and scaling each step.

All filters of one call are optimised together, one image per filter, in one
compiled step: the cost of 64 filters is one batched forward+backward per step.
"""

from __future__ import annotations

import weakref

import numpy as np

from ._quiet import import_tensorflow
from .graph import find_layer, tap_model

tf = import_tensorflow()

_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# Square root of the ImageNet colour correlation matrix (Olah et al., 2017; lucid).
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOR_SQRT /= np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


def _feature_fn(model, layer, size: int):
    lay = find_layer(model, layer)
    taps = tap_model(model, [lay], logits=False, input_shape=(size, size, model.inputs[0].shape[-1]))
    return taps, lay


def _objective(taps, images, filters):
    """Mean activation of each image's own filter, border excluded (2 cells)."""
    act = tf.cast(taps(images, training=False), tf.float32)
    act = tf.gather(act, filters, axis=-1, batch_dims=1)  # (B, h, w)
    h, w = tf.shape(act)[1], tf.shape(act)[2]
    inner = act[:, 2 : tf.maximum(h - 2, 3), 2 : tf.maximum(w - 2, 3)]
    return tf.reduce_mean(inner, axis=(1, 2))


def _fourier_basis(size: int):
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    return (size / np.maximum(freqs, 1.0 / size)).astype(np.float32)  # 1/f, times sqrt(h*w)


def _compile(model, layer, size: int, method: str, value_range):
    per_model = _STEPS.setdefault(model, {})
    lay = find_layer(model, layer)
    key = (lay.name, size, method, tuple(value_range))
    if key in per_model:
        return per_model[key]
    taps, _ = _feature_fn(model, lay, size)
    lo, hi = value_range

    if method == "plain":

        @tf.function(reduce_retracing=True)
        def step(images, filters, lr):
            with tf.GradientTape() as tape:
                tape.watch(images)
                loss = _objective(taps, images, filters)
                total = tf.reduce_sum(loss)
            g = tape.gradient(total, images)
            g = g / (tf.norm(tf.reshape(g, (tf.shape(g)[0], -1)), axis=1)[:, None, None, None] + 1e-8)
            return images + lr * g, loss

        per_model[key] = (step, None, tf.function(lambda images, filters: _objective(taps, images, filters)))
        return per_model[key]

    scale = tf.constant(_fourier_basis(size))
    color = tf.constant(_COLOR_SQRT)

    def to_image(spec):
        """(B, 3, size, size//2+1, 2) spectrum -> (B, size, size, 3) image in [0, 1]."""
        c = tf.complex(spec[..., 0] * scale, spec[..., 1] * scale)
        img = tf.signal.irfft2d(c, fft_length=[size, size]) / 4.0  # (B, 3, H, W)
        img = tf.einsum("bchw,dc->bhwd", img, color)
        return tf.sigmoid(img)

    @tf.function(reduce_retracing=True)
    def step(spec, m, v, t, filters, lr, seed):
        with tf.GradientTape() as tape:
            tape.watch(spec)
            img = to_image(spec)
            # transformation robustness: pad, random scale, random jitter
            pad = size // 16
            x = tf.pad(img, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
            s = tf.random.stateless_uniform([], seed, 0.9, 1.1)
            new = tf.cast(tf.cast(size + 2 * pad, tf.float32) * s, tf.int32)
            x = tf.image.resize(x, [new, new])
            off = tf.random.stateless_uniform([2], seed + 1, 0, tf.maximum(new - size, 1), dtype=tf.int32)
            x = x[:, off[0] : off[0] + size, off[1] : off[1] + size]
            x = tf.image.resize_with_crop_or_pad(x, size, size)
            loss = _objective(taps, lo + (hi - lo) * x, filters)
            total = tf.reduce_sum(loss)
        g = -tape.gradient(total, spec)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        mhat = m / (1 - 0.9**t)
        vhat = v / (1 - 0.999**t)
        return spec - lr * mhat / (tf.sqrt(vhat) + 1e-8), m, v, loss

    evaluate = tf.function(lambda images, filters: _objective(taps, lo + (hi - lo) * images, filters))
    per_model[key] = (step, to_image, evaluate)
    return per_model[key]


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
            and 0.1 (Adam) for ``"fourier"``.
        size: side of the optimised image in pixels.
        seed: the same seed gives the same patterns.
        method: ``"plain"`` or ``"fourier"`` (regularised, Olah et al. 2017).
        value_range: the model's input range that [0, 1] images map to
            (``(-1, 1)`` for the embedded model).
        progress: show a progress bar over the steps.
        return_loss: also return each filter's mean activation (border excluded) on the
            final image.

    Returns:
        uint8 ``(len(filters), size - 2*crop, size - 2*crop, 3)``, border cropped
        (``crop = size // 8``); with ``return_loss``, ``(patterns, activations)``.
    """
    if method not in ("plain", "fourier"):
        raise ValueError(f"method must be 'plain' or 'fourier', not {method!r}")
    lay = find_layer(model, layer)
    channels = int(lay.output.shape[-1])
    idx = np.asarray(list(filters), np.int32)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= channels:
        raise ValueError(f"filters must be non-empty indices in [0, {channels}) for layer {lay.name!r}")
    step, to_image, evaluate = _compile(model, lay, size, method, value_range)
    n = len(idx)
    f = tf.constant(idx)
    rng = np.random.default_rng(seed)
    if method == "plain":
        lr = tf.constant(10.0 if learning_rate is None else learning_rate, tf.float32)
        img = tf.constant(rng.uniform(0.4, 0.6, (n, size, size, 3)).astype(np.float32))
        for _ in _progress(range(steps), progress, f"{lay.name} ({n} filters)"):
            img, _ = step(img, f, lr)
        final = img
        out = deprocess(img.numpy(), crop=size // 8)
    else:
        lr = tf.constant(0.1 if learning_rate is None else learning_rate, tf.float32)
        shape = (n, 3, size, size // 2 + 1, 2)
        spec = tf.constant((rng.standard_normal(shape) * 0.01).astype(np.float32))
        m, v = tf.zeros(shape), tf.zeros(shape)
        for t in _progress(range(1, steps + 1), progress, f"{lay.name} ({n} filters, fourier)"):
            spec, m, v, _ = step(spec, m, v, tf.constant(float(t)), f, lr, tf.constant([seed, t], tf.int32))
        final = to_image(spec)
        img = final.numpy()
        crop = size // 8
        out = (img[:, crop : size - crop, crop : size - crop] * 255).round().astype(np.uint8)
    if not return_loss:
        return out
    return out, evaluate(final, f).numpy()  # each filter's objective on the final, untransformed image


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
