"""Can you trust a heatmap? Faithfulness metrics and sanity checks for saliency maps.

* :func:`deletion`, :func:`insertion` (Petsiuk et al., RISE, BMVC 2018): the
  class probability as pixels are removed / inserted in order of saliency, and
  the area under that curve.
* :func:`average_drop_increase` (Chattopadhay et al., WACV 2018): the image
  masked by its explanation map, and how much confidence that keeps.
* :func:`road` (Rong et al., ICML 2022): remove most/least relevant pixels first
  and fill them by noisy linear imputation, which leaks less of the removed
  shape than a constant fill.
* :func:`cascading_randomization`, :func:`random_logit` (Adebayo et al.,
  NeurIPS 2018): does the map change when the model's weights, or the class,
  are randomised? Compared with Spearman rank correlation and SSIM.

Saliency maps are any ``(B, h, w)`` arrays (from :mod:`helpers.cam` or
:mod:`helpers.attribution`); they are resized bilinearly to the input size
where a pixel order is needed, pixels of equal saliency in a seeded random
order (``seed``). Probabilities are the softmax of the
pre-softmax scores (:func:`helpers._core.logits_model`), which equals the
output of a model that ends in a softmax. Every perturbed copy of a batch goes
through the model in chunks of ``batch_size``, in one compiled function per model
(:func:`helpers._core.compiled`, the cache every explainer shares). ``output=``
picks the class scores of a model with several outputs, as in :mod:`helpers.cam`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from . import _core
from ._core import (
    CLASSES_SPEC,
    check_batch_size,
    class_probabilities,
    compiled,
    input_spec,
    logits,
    logits_model,
    num_classes,
    resolve_classes,
    tf,
)
from .graph import iter_layers, output_index


# --------------------------------------------------------------------------- shared pieces
def _saliency_order(saliency, size, seed: int = 0) -> np.ndarray:
    """Rank of every pixel, 0 = most salient: int32 ``(B, H, W)``; ties broken at random (seeded).

    Pixels of equal saliency (the plateaus of a post-ReLU map, a constant map)
    are ordered by a random permutation of the pixels drawn per image from
    ``numpy.random.default_rng(seed)``, not in raster order, which would remove
    a plateau's top rows first (a spatial bias). Same seed, same order.
    """
    s = np.asarray(saliency, np.float32)
    if s.ndim == 2:
        s = s[None]
    if s.ndim != 3:
        raise ValueError(f"saliency must be maps (B, h, w), got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("saliency maps contain NaN or inf")
    if s.shape[1:] != tuple(size):
        s = tf.image.resize(s[..., None], size, method="bilinear")[..., 0].numpy()
    flat = s.reshape(len(s), -1)
    n = flat.shape[1]
    tiebreak = np.random.default_rng(seed).permuted(np.broadcast_to(np.arange(n), flat.shape), axis=1)
    order = np.lexsort((tiebreak, -flat), axis=1)  # by saliency, descending; ties by the random key
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n), flat.shape), axis=1)
    return rank.reshape(s.shape).astype(np.int32)


def _check_saliency_batch(saliency, batch):
    s = np.asarray(saliency)
    if s.ndim == 2:
        s = s[None]
    if s.ndim != 3 or s.shape[0] != batch:
        raise ValueError(f"saliency must be {batch} maps (B, h, w), one per image; got shape {np.shape(saliency)}")


def _mix_fn(model, output=None):
    """Compiled: probabilities of ``where(rank < count, finish, start)`` for (image, count) pairs."""
    net = logits_model(model, output)

    def build():
        def fn(start, finish, rank, img, count, cls):
            keep = tf.gather(rank, img) < count[:, None, None]
            mixed = tf.where(keep[..., None], tf.gather(finish, img), tf.gather(start, img))
            return class_probabilities(net, mixed, tf.gather(cls, img))

        return fn

    spec_i = CLASSES_SPEC
    sig = [input_spec(model), input_spec(model), tf.TensorSpec([None, None, None], tf.int32), spec_i, spec_i, spec_i]
    return compiled(model, ("faithfulness_mix", output_index(model, output)), build, sig)


def probabilities(model, images, class_index=None, *, batch_size: int = 64, output=None):
    """Softmax probability of each image's class (top-1 when None): ``(probs (B,), classes (B,))``."""
    x, idx = _core.prepare(model, images, class_index, output)
    bs = check_batch_size(batch_size)
    classes = resolve_classes(model, x, idx, bs, output)
    return _probabilities(model, x, classes, bs, output), classes


def _probabilities(model, x, classes, bs, output=None):
    fn = _mix_fn(model, output)
    b = int(x.shape[0])
    rank = tf.zeros(x.shape[:3], tf.int32)
    out = []
    for i in range(0, b, bs):
        img = np.arange(i, min(i + bs, b), dtype=np.int32)
        out.append(fn(x, x, rank, tf.constant(img), tf.zeros(len(img), tf.int32), tf.constant(classes)).numpy())
    return np.concatenate(out).astype(np.float32)


# --------------------------------------------------------------------------- RISE deletion / insertion
def gaussian_kernel(klen: int = 11, nsig: float = 5.0) -> np.ndarray:
    """RISE's blur kernel: ``scipy.ndimage.gaussian_filter`` of a ``klen × klen`` delta (their ``gkern``)."""
    from scipy.ndimage import gaussian_filter

    delta = np.zeros((klen, klen))
    delta[klen // 2, klen // 2] = 1
    return gaussian_filter(delta, nsig).astype(np.float32)


def blur(images, klen: int = 11, nsig: float = 5.0) -> np.ndarray:
    """RISE's insertion start: each channel convolved with :func:`gaussian_kernel`, zero padding.

    As their ``nn.functional.conv2d(x, kern, padding=klen // 2)`` on the
    preprocessed tensor, so the border darkens toward 0.
    """
    x = tf.cast(images, tf.float32)
    k = tf.constant(gaussian_kernel(klen, nsig))[:, :, None, None]
    k = tf.tile(k, [1, 1, int(x.shape[-1]), 1])
    return tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "SAME").numpy()


@dataclass(frozen=True)
class Curve:
    """A deletion/insertion curve per image.

    Attributes:
        fractions: ``(S + 1,)`` share of pixels removed (deletion) or inserted (insertion), 0..1.
        scores: ``(B, S + 1)`` softmax probability of the class at each fraction.
        auc: ``(B,)`` area under the curve by the trapezoid rule over [0, 1].
        classes: ``(B,)`` the class whose probability is followed.
    """

    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray
    classes: np.ndarray


def _substrate(kind, x):
    if isinstance(kind, str):
        if kind == "zeros":
            return tf.zeros_like(x)
        if kind == "blur":
            return tf.constant(blur(x))
        raise ValueError(f"substrate must be 'zeros', 'blur' or an array like the images, got {kind!r}")
    sub = np.broadcast_to(np.asarray(kind, np.float32), tuple(x.shape))
    return tf.constant(np.ascontiguousarray(sub))


def _check_steps(steps) -> int:
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    return int(steps)


def causal_curves(
    model,
    images,
    saliency,
    class_index=None,
    *,
    modes: Sequence[str] = ("deletion", "insertion"),
    steps: int = 224,
    deletion_substrate="zeros",
    insertion_substrate="blur",
    batch_size: int = 64,
    output=None,
    seed: int = 0,
) -> dict[str, Curve]:
    """Deletion and/or insertion curves, all perturbed copies in shared batches (see :func:`deletion`).

    ``seed`` orders pixels of equal saliency (a random permutation per image, as in :func:`deletion`).
    """
    x, idx = _core.prepare(model, images, class_index, output)
    b, h, w = (int(d) for d in x.shape[:3])
    _check_saliency_batch(saliency, b)
    steps = _check_steps(steps)
    bs = check_batch_size(batch_size)
    classes = resolve_classes(model, x, idx, bs, output)
    rank = tf.constant(_saliency_order(saliency, (h, w), seed))
    counts = (np.arange(steps + 1) * (h * w)) // steps
    fn = _mix_fn(model, output)
    out = {}
    for mode in modes:
        if mode == "deletion":  # start at the image, pixels become the substrate
            start, finish = x, _substrate(deletion_substrate, x)
        elif mode == "insertion":  # start at the substrate, pixels become the image's
            start, finish = _substrate(insertion_substrate, x), x
        else:
            raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
        img = np.repeat(np.arange(b, dtype=np.int32), steps + 1)
        cnt = np.tile(counts, b).astype(np.int32)
        cls = tf.constant(classes)
        probs = np.concatenate(
            [
                fn(start, finish, rank, tf.constant(img[i : i + bs]), tf.constant(cnt[i : i + bs]), cls).numpy()
                for i in range(0, img.size, bs)
            ]
        ).reshape(b, steps + 1)
        fractions = counts / float(h * w)
        out[mode] = Curve(fractions, probs, np.trapezoid(probs, fractions, axis=1).astype(np.float32), classes)
    return out


def deletion(
    model,
    images,
    saliency,
    class_index=None,
    *,
    steps: int = 224,
    substrate="zeros",
    batch_size: int = 64,
    output=None,
    seed: int = 0,
) -> Curve:
    """Deletion curve and AUC (Petsiuk, Das, Saenko, "RISE", BMVC 2018, Sec. 4.1; lower is better).

    Pixels are set to the substrate most-salient first, ``HW/steps`` pixels per
    step (RISE's reference code: 224 pixels per step at 224 × 224, i.e. 224
    steps; all colour channels of a pixel together), and the softmax
    probability of the class (top-1 of the clean image when None) is recorded
    at each of the ``steps + 1`` fractions. AUC: trapezoid rule over [0, 1].

    Args:
        model: a Keras classifier.
        images: preprocessed batch ``(B, H, W, 3)``.
        saliency: ``(B, h, w)`` maps, resized bilinearly to ``(H, W)``; pixels of
            equal saliency are removed in a random order (seeded by ``seed``), not
            in raster order, which would remove a plateau's top rows first.
        class_index: None (top-1 per image), an int or one per image.
        steps: number of removal steps S.
        substrate: ``"zeros"`` (RISE: ``torch.zeros_like`` of the *preprocessed*
            image; for EfficientNet-Lite0 a mid-grey), ``"blur"``, or an array
            broadcastable to the images.
        batch_size: perturbed images per model call.
        output: the output holding the class scores (name or index); required
            for models with several outputs.
        seed: seeds the order of pixels of equal saliency (a random permutation per image).
    """
    return causal_curves(
        model,
        images,
        saliency,
        class_index,
        modes=("deletion",),
        steps=steps,
        deletion_substrate=substrate,
        batch_size=batch_size,
        output=output,
        seed=seed,
    )["deletion"]


def insertion(
    model,
    images,
    saliency,
    class_index=None,
    *,
    steps: int = 224,
    substrate="blur",
    batch_size: int = 64,
    output=None,
    seed: int = 0,
) -> Curve:
    """Insertion curve and AUC (Petsiuk et al., RISE, BMVC 2018, Sec. 4.1; higher is better).

    Starts from :func:`blur` of the image (RISE: 11 × 11 Gaussian, σ = 5) and
    puts the image's pixels back most-salient first; otherwise as :func:`deletion`
    (``seed`` orders pixels of equal saliency).
    """
    return causal_curves(
        model,
        images,
        saliency,
        class_index,
        modes=("insertion",),
        steps=steps,
        insertion_substrate=substrate,
        batch_size=batch_size,
        output=output,
        seed=seed,
    )["insertion"]


# --------------------------------------------------------------------------- Average Drop / Increase
@dataclass(frozen=True)
class DropIncrease:
    """Average Drop % and Increase in Confidence % (Chattopadhay et al., 2018, Sec. 6.1).

    Attributes:
        drop: ``(B,)`` ``100 · max(0, Y − O) / Y`` per image.
        increase: ``(B,)`` whether ``O > Y``.
        average_drop: mean of ``drop`` (lower is better).
        increase_in_confidence: ``100 ·`` share of images with ``O > Y`` (higher is better).
        full, masked: ``(B,)`` probabilities ``Y`` (image) and ``O`` (explanation map).
        classes: ``(B,)``.
    """

    drop: np.ndarray
    increase: np.ndarray
    average_drop: float
    increase_in_confidence: float
    full: np.ndarray
    masked: np.ndarray
    classes: np.ndarray


def explanation_map(images, saliency) -> np.ndarray:
    """``E = L ∘ I``: each image times its map (ReLU, divided by its max, upsampled bilinearly)."""
    x = tf.cast(images, tf.float32)
    s = np.asarray(saliency, np.float32)
    if s.ndim != 3 or 0 in s.shape[1:]:
        raise ValueError(f"saliency must be maps (B, h, w) with at least one pixel, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("saliency maps contain NaN or inf")
    s = _core.relu_max_scale(tf.constant(s))
    s = tf.image.resize(s[..., None], tuple(x.shape[1:3]), method="bilinear")
    return (x * s).numpy()


def average_drop_increase(
    model, images, saliency, class_index=None, *, batch_size: int = 64, output=None
) -> DropIncrease:
    """Average Drop and Increase in Confidence (Chattopadhay, Sarkar, Howlader, Balasubramanian, WACV 2018).

    "Grad-CAM++: Generalized Gradient-Based Visual Explanations for Deep
    Convolutional Networks", Sec. 6.1: the explanation map ``E = L^c ∘ I``
    (:func:`explanation_map`; in the preprocessed space, so masked-out pixels go
    to 0) is classified; ``Y`` and ``O`` are the softmax probabilities of the
    class on the image and on ``E``. Average Drop = mean ``max(0, Y − O)/Y``
    ×100; Increase in Confidence = share of images with ``O > Y`` ×100.
    """
    x, idx = _core.prepare(model, images, class_index, output)
    _check_saliency_batch(saliency, int(x.shape[0]))
    bs = check_batch_size(batch_size)
    classes = resolve_classes(model, x, idx, bs, output)
    e = tf.constant(explanation_map(x, np.reshape(saliency, (int(x.shape[0]), *np.shape(saliency)[-2:]))))
    both = _probabilities(model, tf.concat([x, e], 0), np.concatenate([classes, classes]), bs, output)
    y, o = both[: len(classes)], both[len(classes) :]
    drop = 100.0 * np.maximum(0.0, y - o) / np.maximum(y, 1e-12)
    inc = o > y
    return DropIncrease(drop, inc, float(drop.mean()), float(100.0 * inc.mean()), y, o, classes)


# --------------------------------------------------------------------------- ROAD
# Rong et al.'s reference code (tleemann/road_evaluation, imputations.py): 8 neighbours,
# direct ones weighted 1/6, diagonal ones 1/12.
NEIGHBOUR_WEIGHTS = (
    ((1, 1), 1 / 12),
    ((0, 1), 1 / 6),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((0, -1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
)


def noisy_linear_impute(image, removed, *, noise: float = 0.01, rng=None) -> np.ndarray:
    """Fill ``removed`` pixels by noisy linear imputation (Rong et al., ICML 2022, Sec. 4).

    Each removed pixel equals the weighted mean of its in-image 8 neighbours
    (direct 1/6, diagonal 1/12), removed neighbours being unknowns too: one
    sparse linear system for all removed pixels (all channels at once), solved
    with ``scipy.sparse.linalg.spsolve``; then Gaussian noise of std ``noise``
    is added to the filled values, as in their ``NoisyLinearImputer``.

    Args:
        image: ``(H, W, C)`` preprocessed image.
        removed: ``(H, W)`` bool, True where the pixel is removed.
        noise: standard deviation of the added noise (their default 0.01).
        rng: a ``numpy.random.Generator`` (None: seeded 0).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    img = np.asarray(image, np.float64)
    rem = np.asarray(removed, bool)
    if rem.shape != img.shape[:2]:
        raise ValueError(f"removed must be a (H, W) mask like the image {img.shape[:2]}, got {rem.shape}")
    h, w, c = img.shape
    idx = np.flatnonzero(rem.ravel())
    n = idx.size
    if n == 0:
        return img.astype(np.float32)
    vidx = np.full(h * w, -1, np.int64)
    vidx[idx] = np.arange(n)
    r0, c0 = np.divmod(idx, w)
    flat = img.reshape(-1, c)
    rhs = np.zeros((n, c))
    diag = np.zeros(n)
    rows, cols, vals = [], [], []
    for (dy, dx), wt in NEIGHBOUR_WEIGHTS:
        r1, c1 = r0 + dy, c0 + dx
        ok = (r1 >= 0) & (r1 < h) & (c1 >= 0) & (c1 < w)
        nb = np.where(ok, r1 * w + c1, 0)
        diag += wt * ok
        unknown = ok & rem.ravel()[nb]
        known = ok & ~unknown
        rhs[known] -= wt * flat[nb[known]]
        rows.append(np.flatnonzero(unknown))
        cols.append(vidx[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), wt))
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(-diag)
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsc()
    sol = np.asarray(spsolve(a, rhs)).reshape(n, c)
    rng = np.random.default_rng(0) if rng is None else rng
    out = flat.copy()
    out[idx] = sol + noise * rng.standard_normal(sol.shape)
    return out.reshape(h, w, c).astype(np.float32)


@dataclass(frozen=True)
class Road:
    """ROAD curves (Rong et al., 2022).

    Attributes:
        fractions: ``(P,)`` share of pixels removed.
        morf: ``(B, P)`` class probability after removing the most relevant pixels first (lower: more faithful).
        lerf: ``(B, P)`` same, least relevant first (higher: more faithful).
        morf_correct, lerf_correct: ``(B, P)`` whether the class is still the top-1 (their accuracy).
        classes: ``(B,)``.
    """

    fractions: np.ndarray
    morf: np.ndarray
    lerf: np.ndarray
    morf_correct: np.ndarray
    lerf_correct: np.ndarray
    classes: np.ndarray


def road(
    model,
    images,
    saliency,
    class_index=None,
    *,
    fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    noise: float = 0.01,
    seed: int = 0,
    batch_size: int = 64,
    output=None,
) -> Road:
    """ROAD: RemOve And Debias (Rong, Leemann, Borisov, Kasneci, Kasneci, ICML 2022).

    "A Consistent and Efficient Evaluation Strategy for Attribution Methods":
    for each fraction ``p``, the ``p·HW`` most relevant (MoRF) or least relevant
    (LeRF) pixels are removed and filled by :func:`noisy_linear_impute`; the
    model (not retrained) then scores the imputed image. We record the softmax
    probability of the class and whether it is still the top-1 class.

    Args:
        model: a Keras classifier.
        images: preprocessed batch ``(B, H, W, 3)``.
        saliency: ``(B, h, w)`` maps, resized bilinearly to ``(H, W)``.
        class_index: None (top-1 per image), an int or one per image.
        fractions: shares of pixels removed, each in (0, 1).
        noise: imputation noise std (their default 0.01).
        seed: seeds the imputation noise and the order of pixels of equal
            saliency (a random permutation per image, see :func:`deletion`).
        batch_size: imputed images per model call.
        output: the output holding the class scores (name or index); required
            for models with several outputs.
    """
    x, idx = _core.prepare(model, images, class_index, output)
    b, h, w = (int(d) for d in x.shape[:3])
    _check_saliency_batch(saliency, b)
    fr = np.asarray(fractions, np.float64)
    if fr.ndim != 1 or fr.size == 0 or ((fr <= 0) | (fr >= 1)).any():
        raise ValueError(f"fractions must be a non-empty list of values in (0, 1), got {fractions}")
    bs = check_batch_size(batch_size)
    classes = resolve_classes(model, x, idx, bs, output)
    rank = _saliency_order(saliency, (h, w), seed)
    rng = np.random.default_rng(seed)
    xs = x.numpy()
    copies = []
    for i in range(b):  # the sparse solves are per image and fraction; the model sees all copies at once
        for order in ("morf", "lerf"):
            for p in fr:
                k = int(round(p * h * w))
                removed = rank[i] < k if order == "morf" else rank[i] >= h * w - k
                copies.append(noisy_linear_impute(xs[i], removed, noise=noise, rng=rng))
    batch = tf.constant(np.stack(copies))
    cls = np.repeat(classes, 2 * fr.size)
    net = logits_model(model, output)

    def build():
        def fn(x, cls):
            scores = logits(net, x)
            p = tf.gather(tf.nn.softmax(scores, axis=-1), cls, axis=1, batch_dims=1)
            return p, tf.argmax(scores, axis=-1, output_type=tf.int32)

        return fn

    fn = compiled(model, ("road", output_index(model, output)), build, [input_spec(model), CLASSES_SPEC])
    outs = [fn(batch[i : i + bs], tf.constant(cls[i : i + bs])) for i in range(0, len(cls), bs)]
    probs = np.concatenate([o[0].numpy() for o in outs]).reshape(b, 2, fr.size)
    correct = (np.concatenate([o[1].numpy() for o in outs]) == cls).reshape(b, 2, fr.size)
    return Road(fr, probs[:, 0], probs[:, 1], correct[:, 0], correct[:, 1], classes)


# --------------------------------------------------------------------------- sanity checks
def _check_map_pairs(a, b, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Two batches of maps ``(B, h, w)`` (or one ``(h, w)`` each) as float64, same shape, finite, not empty."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim == 2:
        a, b = a[None], b[None]
    if a.ndim != 3 or 0 in a.shape:
        raise ValueError(f"{what} needs maps (B, h, w) with at least one map and one pixel, got shape {a.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"{what}: the maps contain NaN or inf")
    return a, b


def spearman(a, b, *, absolute: bool = True, constant: str = "raise") -> np.ndarray:
    """Spearman rank correlation of each pair of maps ``(B, h, w)`` (Adebayo et al. 2018 use ``|map|``).

    Ranks with ties averaged (``scipy.stats.rankdata``), then Pearson correlation
    of the ranks.

    Args:
        a: maps ``(B, h, w)``, or one ``(h, w)``.
        b: maps of the same shape.
        absolute: compare ``|a|`` and ``|b|``.
        constant: a constant map has no ranking, so its correlation is undefined:
            ``"raise"`` (a ValueError) or ``"nan"`` (NaN for that pair, as the
            sanity checks record it).

    Raises:
        ValueError: shapes differ, no map or no pixel, NaN/inf values, or (with
            ``constant="raise"``) a constant map, after ``|.|`` with ``absolute``.
    """
    if constant not in ("raise", "nan"):
        raise ValueError(f"constant must be 'raise' or 'nan', got {constant!r}")
    from scipy.stats import rankdata

    a, b = _check_map_pairs(a, b, "spearman")
    if absolute:
        a, b = np.abs(a), np.abs(b)
    ra = rankdata(a.reshape(len(a), -1), axis=1)
    rb = rankdata(b.reshape(len(b), -1), axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = ((ra * rb).sum(1) / np.sqrt((ra**2).sum(1) * (rb**2).sum(1))).astype(np.float32)
    if constant == "raise" and np.isnan(rho).any():
        raise ValueError(
            f"maps {np.flatnonzero(np.isnan(rho))[:5].tolist()} of the batch are constant"
            + (" after |.|" if absolute else "")
            + ": a constant map has no ranking, so its rank correlation is undefined"
        )
    return rho


def _unit(m):
    m = np.abs(np.asarray(m, np.float64))
    peak = m.reshape(len(m), -1).max(1)
    return m / np.where(peak > 0, peak, 1.0)[:, None, None]


def ssim(a, b) -> np.ndarray:
    """SSIM of each pair of maps ``(B, h, w)``: ``skimage.metrics.structural_similarity``.

    Both maps are taken as ``|map|`` divided by its max (values in [0, 1],
    ``data_range=1``), as Adebayo et al. compare normalised absolute maps; the
    window is 7 × 7 (smaller, odd, for maps under 7 pixels a side).

    Raises:
        ValueError: shapes differ, no map, NaN/inf values, or maps under 3 × 3.
    """
    from skimage.metrics import structural_similarity

    a, b = _check_map_pairs(a, b, "ssim")
    win = min(7, *a.shape[1:])
    win -= 1 - win % 2
    if win < 3:
        raise ValueError(f"maps of {a.shape[1:]} pixels are too small for SSIM (needs at least 3 x 3)")
    a, b = _unit(a), _unit(b)
    return np.array([structural_similarity(p, q, data_range=1.0, win_size=win) for p, q in zip(a, b)], np.float32)


def layer_stages(model, stages="blocks") -> list[tuple[str, list]]:
    """Groups of layers with weights, from the top (output) down to the stem.

    Args:
        model: a Keras model (nested models flattened).
        stages: ``"blocks"`` groups consecutive layers by their name's prefix
            before the first ``_`` (``block6a_expand_conv`` → ``block6a``,
            ``logits``, ``top``, ``stem``); ``"layers"`` is one layer per stage;
            or an explicit list of lists of layer names, top first.

    Returns:
        ``[(stage name, [layers])]``, top first.
    """
    weighted = [lay for lay in iter_layers(model) if lay.weights]
    if isinstance(stages, str):
        if stages not in ("blocks", "layers"):
            raise ValueError(f"stages must be 'blocks', 'layers' or a list of lists of layer names, got {stages!r}")
        out: list[tuple[str, list]] = []
        for lay in reversed(weighted):
            name = lay.name if stages == "layers" else lay.name.split("_")[0]
            if out and out[-1][0] == name:
                out[-1][1].append(lay)
            else:
                out.append((name, [lay]))
        return out
    by_name = {lay.name: lay for lay in weighted}
    out = []
    for group in stages:
        names = [group] if isinstance(group, str) else list(group)
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"no layer with weights named {missing} in model {model.name!r}")
        out.append(("+".join(names), [by_name[n] for n in names]))
    return out


def _initializer(layer, var):
    name = var.name.split("/")[-1].split(":")[0]
    init = getattr(layer, f"{name}_initializer", None)
    if init is None and name == "kernel":
        init = getattr(layer, "depthwise_initializer", None)
    if init is None:
        init = keras.initializers.GlorotUniform() if len(var.shape) >= 2 else keras.initializers.Zeros()
    return init


def reinitialize(layers, seed: int = 0) -> None:
    """Assign every weight of ``layers`` a fresh draw of its layer's own initializer (in place).

    As Adebayo et al.'s code re-runs the variables' initializers: kernels get
    e.g. Glorot-uniform, biases and BatchNorm ``beta``/``moving_mean`` zeros,
    ``gamma``/``moving_variance`` ones.
    """
    k = 0
    for layer in layers:
        for var in layer.weights:
            init = _initializer(layer, var)
            cfg = init.get_config()
            if "seed" in cfg:
                init = type(init).from_config({**cfg, "seed": seed * 100003 + k})
            var.assign(tf.cast(init(shape=tuple(var.shape), dtype="float32"), var.dtype))
            k += 1


@dataclass(frozen=True)
class Sanity:
    """Result of a sanity check (Adebayo et al., 2018).

    Attributes:
        stages: names of the randomised stages; row ``k`` has stages ``0..k``
            randomised (cascading), or the single row ``"random logit"``.
        spearman: ``(S, B)`` rank correlation of ``|map|`` with the original's; NaN where
            either map is constant (no ranking: e.g. an all-zero Grad-CAM map).
        ssim: ``(S, B)`` SSIM of the normalised ``|map|`` with the original's.
        maps: ``(S, B, h, w)`` the maps after each stage.
        original: ``(B, h, w)`` the map of the untouched model.
        classes: ``(B,)`` the class explained in ``original`` (and, cascading, in every row).
    """

    stages: list
    spearman: np.ndarray
    ssim: np.ndarray
    maps: np.ndarray
    original: np.ndarray
    classes: np.ndarray


def cascading_randomization(
    model,
    images,
    method: Callable,
    class_index=None,
    *,
    stages="blocks",
    seed: int = 0,
    batch_size: int = 64,
    output=None,
) -> Sanity:
    """Cascading model-parameter randomisation (Adebayo et al., NeurIPS 2018, Sec. 3.1).

    Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim. "Sanity Checks for
    Saliency Maps." Stages (:func:`layer_stages`) are re-initialised
    (:func:`reinitialize`) cumulatively from the top layer down to the stem; after
    each, ``method`` explains the same classes (the original model's top-1 when
    None) and the map is compared with the original one by :func:`spearman` and
    :func:`ssim`. A map that barely changes does not depend on what the model learnt.

    Weights are swapped *in place*: ``method``'s compiled function (cached on
    the model) is reused, never rebuilt. All weights are restored afterwards,
    also when ``method`` raises.

    Args:
        model: a Keras classifier.
        images: preprocessed batch ``(B, H, W, 3)``.
        method: ``method(model, images, class_index) -> (B, h, w)``, e.g.
            ``cam.grad_cam`` or ``attribution.saliency``.
        class_index: None (top-1 of the original model), an int or one per image.
        stages: see :func:`layer_stages`.
        seed: seeds the re-initialisation.
        batch_size: images per call when resolving the classes.
        output: the output holding the class scores (name or index); required
            for models with several outputs, and then passed on as
            ``method(model, images, class_index, output=output)``.
    """
    x, idx = _core.prepare(model, images, class_index, output)
    classes = resolve_classes(model, x, idx, check_batch_size(batch_size), output)
    groups = layer_stages(model, stages)
    explain = _with_output(method, output)
    original = np.asarray(explain(model, x, classes), np.float32)
    saved = [(v, v.numpy()) for v in model.weights]
    maps = []
    try:
        for k, (_name, layers) in enumerate(groups):
            reinitialize(layers, seed=seed * 1000 + k)
            maps.append(np.asarray(explain(model, x, classes), np.float32))
    finally:
        for v, a in saved:
            v.assign(a)
    maps = np.stack(maps)
    rho = np.stack([spearman(original, m, constant="nan") for m in maps])
    sim = np.stack([ssim(original, m) for m in maps])
    return Sanity([n for n, _ in groups], rho, sim, maps, original, classes)


def _with_output(method: Callable, output) -> Callable:
    """``method`` as ``fn(model, images, class_index)``, explaining ``output`` when one is given."""
    if output is None:
        return method
    return lambda model, images, class_index: method(model, images, class_index, output=output)


def random_logit(
    model, images, method: Callable, class_index=None, *, seed: int = 0, batch_size: int = 64, output=None
) -> Sanity:
    """Random-logit check: the map of a random other class, compared with the original one.

    The cheap stand-in for Adebayo et al.'s data-randomisation test (which
    retrains on random labels): if the map of a random class looks like the
    map of the predicted class, the map does not explain the class. The random
    class differs from the explained one for every image; ``Sanity.classes``
    holds the random classes.

    Args:
        model: a Keras classifier.
        images: preprocessed batch ``(B, H, W, 3)``.
        method: ``method(model, images, class_index) -> (B, h, w)``.
        class_index: None (top-1 per image), an int or one per image.
        seed: seeds the draw of the random classes.
        batch_size: images per call when resolving the classes.
        output: the output holding the class scores (name or index); required
            for models with several outputs. The random class is drawn among
            that output's classes and ``method`` is called with ``output=output``.
    """
    x, idx = _core.prepare(model, images, class_index, output)
    classes = resolve_classes(model, x, idx, check_batch_size(batch_size), output)
    k = num_classes(model, output)
    if k < 2:
        raise ValueError("the random-logit check needs a model with at least 2 classes")
    rng = np.random.default_rng(seed)
    other = ((classes + rng.integers(1, k, size=len(classes))) % k).astype(np.int32)
    explain = _with_output(method, output)
    original = np.asarray(explain(model, x, classes), np.float32)
    m = np.asarray(explain(model, x, other), np.float32)
    rho = spearman(original, m, constant="nan")
    return Sanity(["random logit"], rho[None], ssim(original, m)[None], m[None], original, other)


__all__ = [
    "Curve",
    "DropIncrease",
    "Road",
    "Sanity",
    "average_drop_increase",
    "blur",
    "cascading_randomization",
    "causal_curves",
    "deletion",
    "explanation_map",
    "gaussian_kernel",
    "insertion",
    "layer_stages",
    "noisy_linear_impute",
    "probabilities",
    "random_logit",
    "reinitialize",
    "road",
    "spearman",
    "ssim",
]
