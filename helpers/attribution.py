"""Pixel attributions: which input pixels move a class score.

Same call shape as :mod:`helpers.cam`: ``method(model, images, class_index=None)``
takes a preprocessed batch ``(B, H, W, 3)``, explains the *pre-softmax* score of
the class (None = each image's top-1, an int, or one int per image; nested
models and a softmax inside a nested head included) and returns float32 maps
``(B, H, W)`` at input resolution.

What the maps are (each method's docstring repeats it):

* :func:`saliency`, :func:`smoothgrad`, :func:`guided_backprop`,
  :func:`guided_grad_cam` return ``max_c |a(i, j, c)|`` over the colour channels
  (Simonyan et al., 2014, Sec. 3.1), divided by each map's own max: values in
  [0, 1], no sign. ``raw=True`` returns the signed attributions ``(B, H, W, C)``
  instead, unnormalised.
* :func:`integrated_gradients` returns the *signed* sum over colour channels, in
  logit units and unnormalised, so the map sums to the attributed score
  difference (completeness, Sundararajan et al., 2017, Prop. 1). Show it with a
  diverging colour map; take ``np.abs`` or ``np.maximum(m, 0)`` for a heatmap.

Every method runs one compiled function per (model, method), cached on the
model in :func:`helpers._core.compiled`, the cache the CAM family uses too;
``output=`` picks the class scores of a model with several outputs, as there. Samples (SmoothGrad) and
interpolation steps (IG) go through the model in chunks of ``batch_size``
(image, sample) pairs; there is no Python loop per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from . import _core
from ._core import check_batch_size, class_scores, compiled, input_spec, logits, pick_scores, resolve_classes, tf
from .graph import find_layer, output_index, run_ops

RULES = ("midpoint", "trapezoid", "right")
_CLASSES = _core.CLASSES_SPEC


# --------------------------------------------------------------------------- shared machinery
def logits_model(model, output=None) -> keras.Model:
    """The model returning pre-softmax scores (a final softmax, nested too, removed), built once.

    :func:`helpers._core.logits_model`; ``output`` picks the class scores of a model with several outputs.
    """
    return _core.logits_model(model, output)


def scores(model, images, class_index=None, *, batch_size: int = 64, output=None):
    """Pre-softmax scores of the explained classes, and those classes.

    Returns:
        ``(scores (B,), classes (B,))`` as numpy float32 / int32.
    """
    x, idx = _core.prepare(model, images, class_index, output)
    return class_scores(model, x, idx, check_batch_size(batch_size), output)


def _out(model, output) -> int:
    return output_index(model, output)


def _input_gradient_step(net, x, cls):
    """``d score_cls / d x`` for each image (images of a batch are independent in inference)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        s, _ = pick_scores(logits(net, x), cls)
        total = tf.reduce_sum(s)
    return tape.gradient(total, x), s


def to_map(attributions) -> np.ndarray:
    """``max_c |a|`` over colour channels, divided by each map's max: ``(B, H, W)`` in [0, 1].

    Simonyan et al. (2014), Sec. 3.1: "the magnitude of the derivative ... maximum
    across colour channels". A map that is zero everywhere stays zero (no NaN).
    """
    m = tf.reduce_max(tf.abs(tf.cast(attributions, tf.float32)), axis=-1)
    return _core.relu_max_scale(m).numpy()


def _finish(attr, classes, raw, return_class):
    out = attr.numpy().astype(np.float32) if raw else to_map(attr)
    return (out, classes) if return_class else out


def _inputs_and_classes(model, images, class_index, batch_size, output):
    """The checked batch, one explained class per image and the checked batch size (all via :mod:`helpers._core`)."""
    x, idx = _core.prepare(model, images, class_index, output)
    bs = check_batch_size(batch_size)
    return x, resolve_classes(model, x, idx, bs, output), bs


# --------------------------------------------------------------------------- vanilla gradient
def input_gradients(model, images, class_index=None, *, batch_size: int = 64, output=None):
    """Signed input gradients ``d y^c / d x`` of the pre-softmax score: ``(B, H, W, C)`` and classes ``(B,)``."""
    x, classes, bs = _inputs_and_classes(model, images, class_index, batch_size, output)
    return _input_gradients(model, x, classes, bs, output)


def _input_gradients(model, x, classes, bs, output=None):
    net = logits_model(model, output)

    def build():
        def fn(x, cls):
            return _input_gradient_step(net, x, cls)[0]

        return fn

    fn = compiled(model, ("input_gradients", _out(model, output)), build, [input_spec(model), _CLASSES])
    grads = [fn(x[i : i + bs], tf.constant(classes[i : i + bs])) for i in range(0, int(x.shape[0]), bs)]
    return tf.concat(grads, 0), classes


def saliency(
    model, images, class_index=None, *, raw: bool = False, batch_size: int = 64, return_class=False, output=None
):
    """Vanilla gradient saliency (Simonyan, Vedaldi, Zisserman, ICLR workshop 2014).

    Simonyan, Vedaldi, Zisserman. "Deep Inside Convolutional Networks:
    Visualising Image Classification Models and Saliency Maps." 2014, Sec. 3.1:
    ``w = d S_c / d I`` at the image, map ``M_ij = max_c |w_h(i,j,c)|``.

    Args:
        model: any Keras 3 model (nested sub-models included).
        images: preprocessed batch ``(B, H, W, 3)``.
        class_index: None (top-1 per image), an int, or one int per image.
        raw: return the signed gradient ``(B, H, W, C)`` instead of the map.
        batch_size: images per model call.
        return_class: also return the class each map explains.
        output: the output holding the class scores (name or index); required
            for models with several outputs.

    Returns:
        float32 ``(B, H, W)`` in [0, 1] (or ``(B, H, W, C)`` signed with ``raw``).
    """
    g, classes = input_gradients(model, images, class_index, batch_size=batch_size, output=output)
    return _finish(g, classes, raw, return_class)


# --------------------------------------------------------------------------- SmoothGrad
def smoothgrad(
    model,
    images,
    class_index=None,
    *,
    samples: int = 50,
    noise: float = 0.15,
    seed: int = 0,
    raw: bool = False,
    batch_size: int = 64,
    return_class=False,
    output=None,
):
    """SmoothGrad: the input gradient averaged over noisy copies of the image.

    Smilkov, Thorat, Kim, Viégas, Wattenberg. "SmoothGrad: removing noise by
    adding noise." 2017, Eq. 3: ``M̂_c(x) = 1/n Σ_k ∂S_c/∂x (x + N(0, σ²))``,
    with ``σ = noise × (x_max − x_min)`` of each image (Sec. 3.2; 10–20 % and
    n ≈ 50 work well). The class is fixed on the clean image (top-1 there), so
    every sample explains the same class. The signed mean gradient is kept
    (``raw=True``); the map is ``max_c |M̂|`` normalised, as for :func:`saliency`.

    Args:
        model: any Keras 3 model (nested sub-models included).
        images: preprocessed batch ``(B, H, W, 3)``.
        class_index: None (top-1 per image), an int, or one int per image.
        samples: number of noisy copies n (>= 1).
        noise: σ as a fraction of each image's value range (>= 0).
        seed: the noise is reproducible for a given seed and ``batch_size``.
        raw: return the signed mean gradient ``(B, H, W, C)`` instead of the map.
        batch_size: (image, sample) pairs per model call.
        return_class: also return the class each map explains.
        output: the output holding the class scores (name or index); required
            for models with several outputs.

    Returns:
        float32 ``(B, H, W)`` in [0, 1] (or ``(B, H, W, C)`` signed with ``raw``).
    """
    if int(samples) < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0 (a fraction of the input range), got {noise}")
    x, classes, bs = _inputs_and_classes(model, images, class_index, batch_size, output)
    net = logits_model(model, output)
    b = int(x.shape[0])

    def build():
        def fn(x, img, cls, sigma, seed):
            src = tf.gather(x, img)
            eps = tf.random.stateless_normal(tf.shape(src), seed=seed) * tf.gather(sigma, img)[:, None, None, None]
            g, _ = _input_gradient_step(net, src + eps, tf.gather(cls, img))
            return tf.math.unsorted_segment_sum(g, img, tf.shape(x)[0])

        return fn

    spec_i = tf.TensorSpec([None], tf.int32)
    sig = [input_spec(model), spec_i, spec_i, tf.TensorSpec([None], tf.float32), tf.TensorSpec([2], tf.int32)]
    fn = compiled(model, ("smoothgrad", _out(model, output)), build, sig)
    span = tf.reduce_max(x, axis=(1, 2, 3)) - tf.reduce_min(x, axis=(1, 2, 3))
    sigma = tf.cast(noise, tf.float32) * span
    pairs = np.repeat(np.arange(b, dtype=np.int32), int(samples))
    total = tf.zeros_like(x)
    cls_t = tf.constant(classes)
    for n, i in enumerate(range(0, pairs.size, bs)):
        total += fn(x, tf.constant(pairs[i : i + bs]), cls_t, sigma, tf.constant([int(seed), n], tf.int32))
    return _finish(total / float(samples), classes, raw, return_class)


# --------------------------------------------------------------------------- Integrated Gradients
@dataclass(frozen=True)
class IGResult:
    """Everything Integrated Gradients computes for a batch.

    Attributes:
        maps: ``(B, H, W)`` signed sum of ``attributions`` over colour channels (logit units).
        attributions: ``(B, H, W, C)`` signed, ``(x − x') ⊙ ∫ ∂F/∂x dα``.
        classes: ``(B,)`` the class explained.
        score: ``(B,)`` pre-softmax score ``F(x)``; ``baseline_score``: ``F(x')``.
        gap: ``(B,)`` completeness gap ``|Σ attributions − (F(x) − F(x'))|``.
        relative_gap: ``gap / |F(x) − F(x')|``.
        steps, rule: the quadrature used.
    """

    maps: np.ndarray
    attributions: np.ndarray
    classes: np.ndarray
    score: np.ndarray
    baseline_score: np.ndarray
    gap: np.ndarray
    relative_gap: np.ndarray
    steps: int
    rule: str


def quadrature(steps: int, rule: str = "midpoint") -> tuple[np.ndarray, np.ndarray]:
    """Points α and weights of ``∫_0^1 g(α) dα ≈ Σ w_k g(α_k)``.

    ``midpoint``: α = (k + ½)/m, w = 1/m (m evaluations). ``trapezoid``: α = k/m,
    k = 0..m, halved end weights (m + 1 evaluations). ``right``: α = k/m,
    k = 1..m, w = 1/m — the Riemann sum of Sundararajan et al. (2017), Eq. 3.
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    m = int(steps)
    if rule == "midpoint":
        return (np.arange(m) + 0.5) / m, np.full(m, 1.0 / m)
    if rule == "trapezoid":
        w = np.full(m + 1, 1.0 / m)
        w[[0, -1]] /= 2
        return np.arange(m + 1) / m, w
    if rule == "right":
        return np.arange(1, m + 1) / m, np.full(m, 1.0 / m)
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


def _baseline(baseline, x):
    """None/number → constant image; ``(H, W, C)`` or ``(B, H, W, C)`` array → broadcast batch."""
    if baseline is None:
        return tf.zeros_like(x)
    b = np.asarray(baseline, np.float32)
    if not np.isfinite(b).all():
        raise ValueError("baseline contains NaN or inf; every attribution would be NaN")
    if b.ndim == 0:
        return tf.fill(tf.shape(x), float(b))
    if b.shape == tuple(x.shape[1:]):
        b = np.broadcast_to(b, tuple(x.shape))
    if b.shape != tuple(x.shape):
        raise ValueError(
            f"baseline must be None, a number, one image {tuple(x.shape[1:])} or one per image "
            f"{tuple(x.shape)}; got shape {b.shape}"
        )
    return tf.constant(np.ascontiguousarray(b))


def integrated_gradients(
    model,
    images,
    class_index=None,
    *,
    baseline=None,
    steps: int = 64,
    rule: str = "midpoint",
    batch_size: int = 64,
    return_class: bool = False,
    details: bool = False,
    output=None,
):
    """Integrated Gradients (Sundararajan, Taly, Yan, ICML 2017).

    Sundararajan, Taly, Yan. "Axiomatic Attribution for Deep Networks." 2017,
    Eq. 1: ``IG_i(x) = (x_i − x'_i) ∫_0^1 ∂F(x' + α(x − x'))/∂x_i dα`` with ``F``
    the pre-softmax score of the class (top-1 *at x* when None). The integral is
    a quadrature of ``steps`` points (:func:`quadrature`: ``midpoint`` default,
    ``trapezoid``, or the paper's right Riemann sum ``right``); all
    (image, α) pairs go through the model in chunks of ``batch_size``.

    Baseline: ``None`` is the all-zero *input tensor*. After EfficientNet-Lite0's
    ``(x − 127)/128`` that is a uniform mid-grey image, not the black image of
    the paper; pass ``models.preprocess(name, np.zeros((H, W, 3)))`` for black.
    The completeness gap (Prop. 1: attributions sum to ``F(x) − F(x')``) measures
    the quadrature error; it is not monotone in ``steps`` on ReLU6 nets.

    Args:
        model: any Keras 3 model (nested sub-models included).
        images: preprocessed batch ``(B, H, W, 3)``.
        class_index: None (top-1 per image), an int, or one int per image.
        baseline: None, a number, one preprocessed image ``(H, W, C)`` or a batch.
        steps: quadrature intervals m (>= 1).
        rule: ``midpoint``, ``trapezoid`` or ``right``.
        batch_size: (image, α) pairs per model call.
        return_class: also return the classes (ignored with ``details``, which holds them).
        details: return an :class:`IGResult` (attributions, scores, gaps).
        output: the output holding the class scores (name or index); required
            for models with several outputs.

    Returns:
        float32 ``(B, H, W)``: signed channel sum of the attributions, logit
        units, unnormalised; or an :class:`IGResult` with ``details=True``.
    """
    alphas, weights = quadrature(steps, rule)
    x, idx = _core.prepare(model, images, class_index, output)
    base = _baseline(baseline, x)
    b = int(x.shape[0])
    bs = check_batch_size(batch_size)
    fx, classes = class_scores(model, x, idx, bs, output)
    fb, _ = class_scores(model, base, classes, bs, output)  # the class found at x, not the baseline's top-1
    net = logits_model(model, output)

    def build():
        def fn(x, base, img, alpha, w, cls):
            x0 = tf.gather(base, img)
            path = x0 + alpha[:, None, None, None] * (tf.gather(x, img) - x0)
            g, _ = _input_gradient_step(net, path, tf.gather(cls, img))
            return tf.math.unsorted_segment_sum(g * w[:, None, None, None], img, tf.shape(x)[0])

        return fn

    spec_i, spec_f = tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32)
    sig = [input_spec(model), input_spec(model), spec_i, spec_f, spec_f, spec_i]
    fn = compiled(model, ("integrated_gradients", _out(model, output)), build, sig)
    img = np.repeat(np.arange(b, dtype=np.int32), alphas.size)
    al = np.tile(alphas, b).astype(np.float32)
    wt = np.tile(weights, b).astype(np.float32)
    total = tf.zeros_like(x)
    cls_t = tf.constant(classes)
    for i in range(0, img.size, bs):
        sl = slice(i, i + bs)
        total += fn(x, base, tf.constant(img[sl]), tf.constant(al[sl]), tf.constant(wt[sl]), cls_t)
    attr = ((x - base) * total).numpy().astype(np.float32)
    maps = attr.sum(axis=-1)
    if not details:
        return (maps, classes) if return_class else maps
    delta = fx - fb
    gap = np.abs(attr.reshape(b, -1).sum(1, dtype=np.float64) - delta).astype(np.float32)
    rel = (gap / np.maximum(np.abs(delta), 1e-12)).astype(np.float32)
    return IGResult(maps, attr, classes, fx, fb, gap, rel, int(steps), rule)


# --------------------------------------------------------------------------- Guided Backpropagation
_GUIDED_ACTIVATIONS = ("relu", "relu6")


def _guided(fn):
    """``fn`` forward; backward: its own local derivative times the *positive* part of the upstream gradient.

    For ReLU that is Springenberg et al.'s rule ``R_l = 1[f_l > 0] · 1[R_{l+1} > 0] · R_{l+1}``;
    for ReLU6 the local derivative is ``1[0 < x < 6]``.
    """

    @tf.custom_gradient
    def guided(x):
        y = fn(x)

        def grad(dy):
            with tf.GradientTape() as tape:
                tape.watch(x)
                yy = fn(x)
            return tape.gradient(yy, x, output_gradients=tf.nn.relu(dy))

        return y, grad

    return guided


def _is_relu_op(op) -> bool:
    if isinstance(op, keras.layers.ReLU):
        return True
    return type(op).__name__ in ("Relu", "Relu6")  # keras.ops.relu / relu6 inside a functional graph


def _relu_activation(op) -> bool:
    act = getattr(op, "activation", None)
    return getattr(act, "__name__", None) in _GUIDED_ACTIVATIONS


def _guided_call(op, args, kwargs):
    if "training" in getattr(op, "_call_context_args", ()) or getattr(op, "_call_has_training_arg", False):
        kwargs = {**kwargs, "training": False}
    if isinstance(op, keras.Model):
        return _guided_forward(op, args[0] if len(args) == 1 else list(args))
    if _is_relu_op(op) and len(args) == 1:
        return _guided(lambda t: op(t, **kwargs))(args[0])
    if _relu_activation(op):
        original = op.activation
        object.__setattr__(op, "activation", _guided(original))  # only while this call is traced
        try:
            return op(*args, **kwargs)
        finally:
            object.__setattr__(op, "activation", original)
    return op(*args, **kwargs)


def _guided_forward(model, x):
    """Run ``model`` on real tensors with every ReLU/ReLU6 (layer, activation or op) guided."""
    return run_ops(model, x, _guided_call)


def guided_gradients(model, images, class_index=None, *, batch_size: int = 64, output=None):
    """Signed guided-backprop gradients ``(B, H, W, C)`` of the pre-softmax score, and classes ``(B,)``."""
    x, classes, bs = _inputs_and_classes(model, images, class_index, batch_size, output)
    return _guided_gradients(model, x, classes, bs, output)


def _guided_gradients(model, x, classes, bs, output=None):
    net = logits_model(model, output)

    def build():
        def fn(x, cls):
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = _guided_forward(net, x)
                out = out[-1] if isinstance(out, (list, tuple)) else out
                s, _ = pick_scores(out, cls)
                total = tf.reduce_sum(s)
            return tape.gradient(total, x)

        return fn

    fn = compiled(model, ("guided_backprop", _out(model, output)), build, [input_spec(model), _CLASSES])
    g = [fn(x[i : i + bs], tf.constant(classes[i : i + bs])) for i in range(0, int(x.shape[0]), bs)]
    return tf.concat(g, 0), classes


def guided_backprop(
    model, images, class_index=None, *, raw: bool = False, batch_size: int = 64, return_class=False, output=None
):
    """Guided Backpropagation (Springenberg, Dosovitskiy, Brox, Riedmiller, ICLR workshop 2015).

    Springenberg et al. "Striving for Simplicity: The All Convolutional Net."
    2015, Sec. 3.4 and Fig. 1: the input gradient of the pre-softmax score, with
    every ReLU's backward pass replaced by ``1[f > 0] · 1[R > 0] · R`` (only
    positive gradient flows back, only through active units). Every Keras ReLU
    (``layers.ReLU`` incl. ``max_value=6``, ``activation="relu"``/``"relu6"``,
    ``keras.ops.relu``) is guided with :func:`tf.custom_gradient` on a re-traced
    graph; the model itself is not modified. For ReLU6 the local factor is
    ``1[0 < x < 6]``. Other activations keep their ordinary gradient.
    Arguments as :func:`saliency`.

    Returns:
        float32 ``(B, H, W)`` in [0, 1]: ``max_c |·|`` normalised (or signed
        ``(B, H, W, C)`` with ``raw``).
    """
    g, classes = guided_gradients(model, images, class_index, batch_size=batch_size, output=output)
    return _finish(g, classes, raw, return_class)


def guided_grad_cam(
    model,
    images,
    class_index=None,
    layer=None,
    *,
    raw: bool = False,
    batch_size: int = 64,
    return_class=False,
    output=None,
):
    """Guided Grad-CAM (Selvaraju et al., ICCV 2017, Sec. 3.1 "Guided Grad-CAM").

    Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra. "Grad-CAM: Visual
    Explanations from Deep Networks via Gradient-based Localization." 2017:
    the pointwise product of Guided Backpropagation and the Grad-CAM map
    bilinearly upsampled to the input size, for the same class.

    Args:
        model: any Keras 3 model (nested sub-models included).
        images: preprocessed batch ``(B, H, W, 3)``.
        class_index: None (top-1 per image), an int, or one int per image.
        layer: Grad-CAM's layer (None: the last layer with a spatial output).
        raw: return the signed product ``(B, H, W, C)`` instead of the map.
        batch_size: images per model call.
        return_class: also return the class each map explains.
        output: the output holding the class scores (name or index); required
            for models with several outputs.

    Raises:
        ValueError: the model has no layer with a spatial output (Grad-CAM needs one).

    Returns:
        float32 ``(B, H, W)`` in [0, 1] (or the signed product ``(B, H, W, C)`` with ``raw``).
    """
    from .cam import grad_cam

    try:
        find_layer(model, layer)
    except ValueError as exc:
        raise ValueError(f"Guided Grad-CAM needs a convolutional (spatial) layer for Grad-CAM: {exc}") from None
    x, classes, bs = _inputs_and_classes(model, images, class_index, batch_size, output)
    cams = grad_cam(model, x, classes, layer, output=output)
    g, _ = _guided_gradients(model, x, classes, bs, output)
    up = tf.image.resize(tf.constant(cams)[..., None], tuple(x.shape[1:3]), method="bilinear")
    return _finish(g * up, classes, raw, return_class)


METHODS = {
    "gradient": saliency,
    "smoothgrad": smoothgrad,
    "integrated_gradients": integrated_gradients,
    "guided_backprop": guided_backprop,
    "guided_gradcam": guided_grad_cam,
}

__all__ = [
    "IGResult",
    "METHODS",
    "guided_backprop",
    "guided_grad_cam",
    "guided_gradients",
    "input_gradients",
    "integrated_gradients",
    "logits_model",
    "quadrature",
    "saliency",
    "scores",
    "smoothgrad",
    "to_map",
]
