"""Feature visualisation by optimisation, as in Olah, Mordvintsev, Schubert, "Feature Visualization" (Distill 2017).

A port of the method of lucid/lucent (github.com/greentfrapp/lucent) to Keras 3:

- **Objectives** (:func:`channel`, :func:`neuron`, :func:`class_logit`, :func:`diversity`) say what to
  maximise; they combine by weighted sums (``channel("L", 3) + 50 * diversity("L")``). Each image of a
  batch may have its own target: ``channel("L", [0, 1, 2])`` optimises three images, one per channel.
- **Parametrisations**: ``"pixel"`` (raw values through a sigmoid) or ``"fourier"`` (a spectrum scaled by
  1/frequency, colours decorrelated with lucid's ImageNet colour matrix, then a sigmoid) — lucent's
  ``param.image(fft=True, decorrelate=True)``, same constants.
- **Transformation robustness**: lucent's ``standard_transforms`` — pad 12 (grey), jitter 8, random scale
  in {0.90, 0.92, ..., 1.10}, random rotation in {-10..10} degrees (0 more often), jitter 4 — drawn per image
  and per step and applied as *one* projective warp per image inside the compiled step.
- :func:`dataset_examples`: the real-image patches that excite a channel most, from one batched pass.

The whole batch is one compiled step (one forward + backward pass); no Python loop over images or channels.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from ._quiet import import_tensorflow
from .graph import find_layer, tap_model

tf = import_tensorflow()

# lucent/optvis/param/color.py (from lucid): square root of the ImageNet colour correlation matrix,
# normalised by its largest column norm.
COLOR_CORRELATION_SVD_SQRT = np.asarray([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
COLOR_CORRELATION_NORMALIZED = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))
# lucent/optvis/param/spatial.py: "magic constant from Lucid library".
FOURIER_MAGIC = 4.0
# lucent/optvis/transform.py: standard_transforms.
PAD = 12
JITTER_1, JITTER_2 = 8, 4
SCALES = tuple(1 + (i - 5) / 50.0 for i in range(11))
ANGLES = tuple(range(-10, 11)) + (0,) * 5
LEARNING_RATE = 0.05  # lucent's default Adam step

Visualization = namedtuple("Visualization", ["images", "values"])
Visualization.__doc__ = "``images``: uint8 ``(B, size, size, 3)``; ``values``: each image's objective, untransformed."

PARAMETRISATIONS = ("pixel", "fourier")


# --------------------------------------------------------------------------- objectives
@dataclass(frozen=True)
class Objective:
    """A weighted sum of terms ``(weight, kind, layer, index)``; build with the functions below."""

    terms: tuple

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + other.terms)

    __radd__ = __add__

    def __mul__(self, w):
        if not isinstance(w, (int, float, np.floating, np.integer)):
            return NotImplemented
        return Objective(tuple((float(w) * a, k, lay, i) for a, k, lay, i in self.terms))

    __rmul__ = __mul__

    def __neg__(self):
        return -1.0 * self

    def __sub__(self, other):
        return self + (-1.0 * other)

    def __repr__(self):
        return " + ".join(f"{a:g}*{k}({lay!r}, {i})" if lay else f"{a:g}*{k}({i})" for a, k, lay, i in self.terms)


def _index(index):
    if isinstance(index, (int, np.integer)):
        return int(index)
    values = tuple(int(i) for i in index)
    if not values:
        raise ValueError("an objective needs at least one index")
    return values


def channel(layer, index) -> Objective:
    """Mean activation of channel ``index`` over the whole map (lucent ``objectives.channel``).

    ``index`` is an int (every image) or a sequence (one channel per image).
    """
    return Objective(((1.0, "channel", _name(layer), _index(index)),))


def neuron(layer, index) -> Objective:
    """Activation of channel ``index`` at the centre cell of the map (lucent ``objectives.neuron``)."""
    return Objective(((1.0, "neuron", _name(layer), _index(index)),))


def class_logit(index) -> Objective:
    """Pre-softmax score of an ImageNet class (an index or a name, or one per image).

    Optimising the softmax would push other classes down instead of this one up (Simonyan et al., 2014).
    """
    if isinstance(index, str):
        from .models import class_index

        index = class_index(index)
    elif not isinstance(index, (int, np.integer)):
        from .models import class_index

        index = [class_index(i) if isinstance(i, str) else i for i in index]
    return Objective(((1.0, "logit", None, _index(index)),))


def diversity(layer) -> Objective:
    """Dissimilarity of the batch's images at ``layer`` (Olah et al. 2017, "Diversity"; lucent ``diversity``).

    Each image's Gram matrix of channel activations is normalised to unit Frobenius norm; the term for
    image ``i`` is ``-sum_{j != i} <G_i, G_j>``, so the sum over the batch is lucent's value times the batch.
    """
    return Objective(((1.0, "diversity", _name(layer), 0),))


def _name(layer):
    return layer if isinstance(layer, str) else layer.name


# --------------------------------------------------------------------------- parametrisations
def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """2-D spectrum frequencies of ``rfft2d`` (lucid/lucent ``rfft2d_freqs``)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 2] if w % 2 == 1 else np.fft.fftfreq(w)[: w // 2 + 1]
    return np.sqrt(fx * fx + fy * fy)


def fourier_scale(h: int, w: int, decay_power: float = 1.0) -> np.ndarray:
    """Lucent's ``1 / max(f, 1/max(h, w)) ** decay_power`` spectrum scaling."""
    return (1.0 / np.maximum(rfft2d_freqs(h, w), 1.0 / max(w, h)) ** decay_power).astype(np.float32)


def _to_rgb01(param, size: int, kind: str):
    """Parameters -> ``(B, size, size, 3)`` images in (0, 1) (lucent ``to_valid_rgb`` with a sigmoid)."""
    if kind == "pixel":
        return tf.sigmoid(param)
    scale = tf.constant(fourier_scale(size, size))
    spec = tf.complex(param[..., 0] * scale, param[..., 1] * scale)  # (B, 3, h, w//2+1)
    # orthonormal inverse FFT as torch.fft.irfftn(norm="ortho"): TF's inverse divides by h*w
    img = tf.signal.irfft2d(spec, fft_length=[size, size]) * float(size) / FOURIER_MAGIC
    img = tf.einsum("bchw,dc->bhwd", img, tf.constant(COLOR_CORRELATION_NORMALIZED))
    return tf.sigmoid(img)


def _init_param(rng, n: int, size: int, kind: str) -> np.ndarray:
    if kind == "pixel":
        return (rng.standard_normal((n, size, size, 3)) * 0.01).astype(np.float32)
    return (rng.standard_normal((n, 3, size, size // 2 + 1, 2)) * 0.01).astype(np.float32)


# --------------------------------------------------------------------------- transformation robustness
def random_transforms(images, seed, pad: int = PAD):
    """Lucent's standard transforms on each image with its own random draw, as one warp per image.

    Pad ``pad`` pixels with grey (0.5), then jitter (8 px), scale, rotate about the centre, jitter (4 px),
    composed into one projective transform per image. ``images``: ``(B, H, W, 3)`` in [0, 1];
    ``seed``: a stateless seed ``(2,)``. Returns ``(B, H + 2 pad, W + 2 pad, 3)``.
    """
    b = tf.shape(images)[0]
    x = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=0.5) if pad else images
    h, w = tf.cast(tf.shape(x)[1], tf.float32), tf.cast(tf.shape(x)[2], tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
    j1 = tf.cast(tf.random.stateless_uniform([b, 2], seeds[0], 0, JITTER_1, tf.int32), tf.float32)
    j2 = tf.cast(tf.random.stateless_uniform([b, 2], seeds[1], 0, JITTER_2, tf.int32), tf.float32)
    j1, j2 = j1 - JITTER_1 // 2, j2 - JITTER_2 // 2  # centred shifts
    s = tf.gather(tf.constant(SCALES, tf.float32), tf.random.stateless_uniform([b], seeds[2], 0, len(SCALES), tf.int32))
    a = tf.gather(tf.constant(ANGLES, tf.float32), tf.random.stateless_uniform([b], seeds[3], 0, len(ANGLES), tf.int32))
    a = a * (np.pi / 180.0)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    # forward map: p_out = R S (p_in + j1 - c) + c + j2; the op wants the inverse (output -> input)
    cos, sin = tf.cos(a) / s, tf.sin(a) / s
    ux, uy = -(j2[:, 0]), -(j2[:, 1])  # p_out - c - j2 = (x + ux - cx, y + uy - cy)
    a0, a1 = cos, sin
    b0, b1 = -sin, cos
    a2 = -a0 * (cx - ux) - a1 * (cy - uy) + cx - j1[:, 0]
    b2 = -b0 * (cx - ux) - b1 * (cy - uy) + cy - j1[:, 1]
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x,
        transforms=transforms,
        output_shape=tf.shape(x)[1:3],
        fill_value=0.5,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


# --------------------------------------------------------------------------- compiled step
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _gram_dissimilarity(act):
    """(B, h, w, C) -> (B,) ``-sum_{j != i} <G_i, G_j>`` with unit-norm Gram matrices."""
    shape = tf.shape(act)
    flat = tf.reshape(act, (shape[0], -1, shape[3]))
    gram = tf.einsum("bpc,bpd->bcd", flat, flat)
    gram = gram / (tf.norm(tf.reshape(gram, (shape[0], -1)), axis=1)[:, None, None] + 1e-12)
    sim = tf.einsum("bcd,ecd->be", gram, gram)
    return -(tf.reduce_sum(sim, axis=1) - tf.linalg.diag_part(sim))


def _term_values(kind, act, idx):
    """Per-image value of one term; ``idx``: (B,) int32."""
    if kind == "logit":
        return tf.gather(act, idx, axis=1, batch_dims=1)
    if kind == "diversity":
        return _gram_dissimilarity(act)
    chan = tf.gather(act, idx, axis=-1, batch_dims=1)  # (B, h, w)
    if kind == "channel":
        return tf.reduce_mean(chan, axis=(1, 2))
    h, w = tf.shape(chan)[1], tf.shape(chan)[2]
    return chan[:, h // 2, w // 2]  # neuron: the centre unit


class _Program:
    """The tapped model and compiled functions for one (model, objective structure, size, options)."""

    def __init__(self, model, objective, size, param, transforms, value_range):
        layers = []
        for _, _kind, lay, _ in objective.terms:
            if lay is not None and lay not in [x.name for x in layers]:
                layers.append(find_layer(model, lay))
        needs_logits = any(k == "logit" for _, k, _, _ in objective.terms)
        channels = model.inputs[0].shape[-1]
        # fully convolutional up to the taps; a pooled classifier head also accepts any size
        taps = tap_model(model, layers, logits=needs_logits, input_shape=(None, None, channels))
        self.taps, self.layers = taps, [x.name for x in layers]
        self.kinds = [(a, k, lay) for a, k, lay, _ in objective.terms]
        lo, hi = value_range
        self.size, self.param, self.transforms = size, param, transforms
        probe = taps(tf.zeros((1, size, size, channels)), training=False)
        probe = probe if isinstance(probe, (list, tuple)) else [probe]
        self.shapes = {name: tuple(int(d) for d in p.shape[1:]) for name, p in zip(self.layers, probe)}
        self.num_classes = int(probe[-1].shape[-1]) if needs_logits else None

        def values(images01, idx):
            outs = taps(lo + (hi - lo) * images01, training=False)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            by_layer = dict(zip(self.layers, outs))
            total = 0.0
            for t, (weight, kind, lay) in enumerate(self.kinds):
                act = tf.cast(outs[-1] if kind == "logit" else by_layer[lay], tf.float32)
                total += weight * _term_values(kind, act, idx[t])
            return total

        def step(p, m, v, t, idx, lr, seed):
            with tf.GradientTape() as tape:
                tape.watch(p)
                img = _to_rgb01(p, size, param)
                if transforms:
                    img = random_transforms(img, seed)
                val = values(img, idx)
                total = tf.reduce_sum(val)
            g = -tape.gradient(total, p)  # Adam minimises the negated objective
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            mhat = m / (1 - 0.9**t)
            vhat = v / (1 - 0.999**t)
            return p - lr * mhat / (tf.sqrt(vhat) + 1e-8), m, v, val

        self.step = tf.function(step, reduce_retracing=True)
        self.values = tf.function(values, reduce_retracing=True)
        self.to_image = tf.function(lambda p: _to_rgb01(p, size, param), reduce_retracing=True)


def _program(model, objective, size, param, transforms, value_range) -> _Program:
    per_model = _CACHE.setdefault(model, {})
    key = (tuple((a, k, lay) for a, k, lay, _ in objective.terms), size, param, transforms, tuple(value_range))
    if key not in per_model:
        per_model[key] = _Program(model, objective, size, param, transforms, value_range)
    return per_model[key]


def _targets(objective, batch, program) -> tuple[int, np.ndarray]:
    sizes = {len(i) for _, _, _, i in objective.terms if isinstance(i, tuple)}
    if len(sizes) > 1:
        raise ValueError(f"per-image index lists of different lengths in {objective!r}")
    n = sizes.pop() if sizes else (batch or 1)
    if batch is not None and batch != n:
        raise ValueError(f"batch={batch} but the objective has one target per image for {n} images")
    rows = []
    for _, kind, lay, index in objective.terms:
        idx = np.broadcast_to(np.asarray(index, np.int32), (n,))
        if kind == "logit":
            high, what = program.num_classes, "class index"
        elif kind == "diversity":
            if n < 2:
                raise ValueError("diversity compares the images of a batch: use batch >= 2")
            high, what = 1, None
        else:
            high, what = program.shapes[lay][-1], f"channel of layer {lay!r}"
        if what and (idx.min() < 0 or idx.max() >= high):
            raise ValueError(f"{what} out of range: {sorted(set(idx.tolist()))} not all in [0, {high})")
        rows.append(idx)
    return n, np.stack(rows)


def _check_maps(program, size):
    for lay, shape in program.shapes.items():
        h, w = shape[0], shape[1]
        if min(h, w) <= 2:
            raise ValueError(
                f"layer {lay!r} has {h}x{w} maps at a {size}px image: a channel objective over 2 cells or "
                "fewer is a single unit at the border; use a larger size or an earlier layer"
            )


def _progress(iterable, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, disable=not enabled)


def visualize(
    model,
    objective: Objective,
    *,
    batch: int | None = None,
    steps: int = 256,
    size: int = 128,
    param: str = "fourier",
    transforms: bool = True,
    learning_rate: float = LEARNING_RATE,
    seed: int = 0,
    value_range=(-1.0, 1.0),
    progress: bool = True,
) -> Visualization:
    """Optimise a batch of images to maximise ``objective`` (Olah et al. 2017; lucent ``render_vis``).

    Args:
        model: a Keras 3 convnet (nested sub-models are traced through).
        objective: from :func:`channel`, :func:`neuron`, :func:`class_logit`, :func:`diversity`, combined
            with ``+`` and scalar ``*``. Index lists give each image its own target.
        batch: number of images when no term has an index list (default 1).
        steps: Adam steps (one compiled forward + backward pass of the whole batch each).
        size: image side in pixels; with ``transforms`` the network sees ``size + 24``.
        param: ``"fourier"`` (decorrelated colour, 1/f spectrum) or ``"pixel"``.
        transforms: lucent's standard transformation robustness, drawn per image and step.
        learning_rate: Adam step size (lucent: 0.05).
        seed: the same seed gives the same images.
        value_range: the model input range that images in [0, 1] are mapped to
            (``(-1, 1)`` for the embedded model).
        progress: a tqdm bar over the steps.

    Returns:
        :data:`Visualization` ``(images, values)``: uint8 images and each image's objective on the final,
        untransformed image.

    Raises:
        ValueError: unknown layer or parametrisation, index out of range, maps 2 cells wide or less,
            ``steps < 1``, diversity with one image.
    """
    if not isinstance(objective, Objective):
        raise ValueError(f"objective must be built with channel/neuron/class_logit/diversity, not {objective!r}")
    if param not in PARAMETRISATIONS:
        raise ValueError(f"param must be one of {PARAMETRISATIONS}, not {param!r}")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if int(size) < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    prog = _program(model, objective, int(size), param, bool(transforms), value_range)
    _check_maps(prog, size)
    n, idx = _targets(objective, batch, prog)
    rng = np.random.default_rng(seed)
    p = tf.constant(_init_param(rng, n, size, param))
    m, v = tf.zeros_like(p), tf.zeros_like(p)
    lr, idx_t = tf.constant(learning_rate, tf.float32), tf.constant(idx)
    for t in _progress(range(1, int(steps) + 1), progress, f"visualize ({n} images)"):
        p, m, v, _ = prog.step(p, m, v, tf.constant(float(t)), idx_t, lr, tf.constant([seed, t], tf.int32))
    img = prog.to_image(p)
    values = prog.values(img, idx_t).numpy()
    return Visualization((img.numpy() * 255).round().astype(np.uint8), values)


def objective_values(model, objective: Objective, images, value_range=(-1.0, 1.0)) -> np.ndarray:
    """Each image's objective value; ``images``: uint8 ``(B, H, W, 3)`` (or floats in [0, 1])."""
    x = np.asarray(images)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    prog = _program(model, objective, x.shape[1], "pixel", False, value_range)
    _, idx = _targets(objective, x.shape[0] if all(isinstance(i, int) for *_, i in objective.terms) else None, prog)
    return prog.values(tf.constant(x), tf.constant(idx)).numpy()


def random_views(images, views: int = 20, seed: int = 0) -> np.ndarray:
    """``views`` random views of each image (lucent's standard transforms), all drawn in one batch.

    ``images``: uint8 ``(B, H, W, 3)``. Returns uint8 ``(B, views, H + 24, W + 24, 3)``.
    """
    x = tf.constant(np.asarray(images, np.float32) / 255.0)
    b = x.shape[0]
    warped = random_transforms(tf.repeat(x, views, axis=0), tf.constant([seed, 10**6], tf.int32)).numpy()
    return (warped * 255).round().astype(np.uint8).reshape(b, views, *warped.shape[1:])


def recognition_rate(model, images, class_indices, views: int = 20, seed: int = 0, value_range=(-1.0, 1.0)):
    """Share of random views (:func:`random_views`) of each image classified as its target class.

    All ``len(images) * views`` views go through the model in one batch. ``images``: uint8 ``(B, H, W, 3)``.

    Returns:
        ``(B,)`` floats in [0, 1].
    """
    v = random_views(images, views, seed)
    b = v.shape[0]
    lo, hi = value_range
    x = v.reshape(-1, *v.shape[2:]).astype(np.float32) * ((hi - lo) / 255.0) + lo
    logits = _logits_model(model)(tf.constant(x), training=False)
    pred = tf.argmax(logits, axis=-1, output_type=tf.int32).numpy().reshape(b, views)
    target = np.broadcast_to(np.asarray(class_indices).reshape(-1, 1), (b, views))
    return (pred == target).mean(axis=1)


def layer_activations(model, layer, images, value_range=(-1.0, 1.0)) -> np.ndarray:
    """``layer``'s maps ``(N, h, w, C)`` for uint8 images ``(N, H, W, 3)`` of any size, in one pass."""
    lay = find_layer(model, layer)
    lo, hi = value_range
    x = np.asarray(images).astype(np.float32) * ((hi - lo) / 255.0) + lo
    return _layer_fn(model, lay)(tf.constant(x)).numpy()


def _logits_model(model):
    per_model = _CACHE.setdefault(model, {})
    if "logits" not in per_model:
        per_model["logits"] = tap_model(model, [], logits=True, input_shape=(None, None, model.inputs[0].shape[-1]))
    return per_model["logits"]


# --------------------------------------------------------------------------- dataset examples
def dataset_examples(
    model,
    layer,
    channels,
    images,
    top: int = 1,
    patch: int | None = None,
    batch_size: int = 32,
    value_range=(-1.0, 1.0),
    per_image: int | None = None,
):
    """The image patches that excite each channel most (Olah et al. 2017, "dataset examples").

    One batched forward pass to ``layer`` over all ``images``; for each channel the ``top`` cells with the
    highest activation anywhere in the set, and the square patch of the input centred on each cell.

    Args:
        model: the embedded model (inputs preprocessed with ``models.preprocess``).
        layer: layer name or layer.
        channels: channel indices.
        images: uint8 ``(N, H, W, 3)`` at the model's input size.
        top: patches per channel.
        patch: patch side in pixels (default: 3 cells of the layer's stride, at least 32 px).
        batch_size: images per forward pass.
        value_range: the model input range that pixel values 0..255 map to, as in :func:`visualize`.
        per_image: at most this many cells per image and channel (``1``: the ``top`` patches come from ``top``
            different images); default: no limit, neighbouring cells of one photo may fill the top.

    Returns:
        ``(patches, values, where)``: uint8 ``(C, top, patch, patch, 3)``; the activations ``(C, top)``;
        ``(C, top, 3)`` int ``(image, row, col)`` of each cell.
    """
    lay = find_layer(model, layer)
    x = np.asarray(images)
    if x.ndim != 4 or x.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}")
    ch = np.asarray(list(channels), np.int32)
    n_ch = int(lay.output.shape[-1])
    if ch.size == 0 or ch.min() < 0 or ch.max() >= n_ch:
        raise ValueError(f"channels must be non-empty indices in [0, {n_ch}) for layer {lay.name!r}")
    fn = _layer_fn(model, lay)
    lo, hi = value_range
    chunks = [x[i : i + batch_size].astype(np.float32) * ((hi - lo) / 255.0) + lo for i in range(0, len(x), batch_size)]
    acts = np.concatenate([fn(tf.constant(c)).numpy() for c in chunks])  # (N, h, w, C): one pass, in chunks
    n, h, w, _ = acts.shape
    per = acts[..., ch].reshape(n, h * w, len(ch))  # (N, h*w, C)
    k = h * w if per_image is None else min(int(per_image), h * w)
    if k < 1:
        raise ValueError(f"per_image must be at least 1, got {per_image}")
    cells = np.argsort(-per, axis=1, kind="stable")[:, :k]  # (N, k, C): each image's best cells per channel
    cand = (np.arange(n)[:, None, None] * (h * w) + cells).reshape(n * k, len(ch)).T  # (C, N*k) flat cell ids
    cand_vals = np.take_along_axis(per, cells, axis=1).reshape(n * k, len(ch)).T
    pick = np.argsort(-cand_vals, axis=1, kind="stable")[:, :top]
    values = np.take_along_axis(cand_vals, pick, axis=1)
    img_i, rows, cols = np.unravel_index(np.take_along_axis(cand, pick, axis=1), (n, h, w))
    stride = x.shape[1] / h
    side = patch or int(max(32, 3 * stride))
    half = side // 2
    padded = np.pad(x, ((0, 0), (half, half), (half, half), (0, 0)), mode="reflect")
    cy = ((rows + 0.5) * stride).astype(int)
    cx = ((cols + 0.5) * (x.shape[2] / w)).astype(int)
    oy, ox = np.arange(side)[:, None], np.arange(side)[None, :]
    patches = padded[img_i[..., None, None], (cy[..., None, None] + oy), (cx[..., None, None] + ox)]
    return patches, values, np.stack([img_i, rows, cols], axis=-1)


def _layer_fn(model, lay):
    per_model = _CACHE.setdefault(model, {})
    key = ("layer", lay.name)
    if key not in per_model:
        taps = tap_model(model, [lay], logits=False, input_shape=(None, None, model.inputs[0].shape[-1]))
        per_model[key] = tf.function(lambda x: taps(x, training=False), reduce_retracing=True)
    return per_model[key]
