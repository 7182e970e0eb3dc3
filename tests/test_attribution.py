import keras
import numpy as np
import pytest
from scipy.stats import norm

from helpers import _core, attribution, cam, images, models

RNG = np.random.default_rng(0)
W_LIN = RNG.normal(size=(4 * 4 * 3, 3)).astype(np.float32)  # gradients differ per pixel, channel and class
B_LIN = np.array([0.3, -0.2, 0.1], np.float32)


@pytest.fixture(scope="module")
def linear():
    """logits = flatten(x) @ W + b, then a softmax: the gradient of logit c is W[:, c] everywhere."""
    inp = keras.Input((4, 4, 3))
    dense = keras.layers.Dense(3, name="logits")
    out = keras.layers.Activation("softmax", name="probs")(dense(keras.layers.Flatten()(inp)))
    model = keras.Model(inp, out, name="linear")
    dense.set_weights([W_LIN, B_LIN])
    return model


def tiny_input():
    """x in {-1, 0, 1, 2}: the tiny model's channel 0 = relu(2x), channel 1 = relu(-x)."""
    return np.array([[2, 1, 0, -1], [1, 0, 0, -1], [0, 0, 0, 0], [-1, 0, 2, 0]], np.float32).reshape(1, 4, 4, 1)


TINY_W = np.array([[1.0, -1.0], [0.5, 2.0]])


# --------------------------------------------------------------------------- gradients and IG, exact oracles
def test_input_gradients_are_the_pre_softmax_weights(linear):
    x = RNG.normal(size=(2, 4, 4, 3)).astype(np.float32)
    g, classes = attribution.input_gradients(linear, x, [0, 2])
    np.testing.assert_allclose(g[0].numpy().ravel(), W_LIN[:, 0], atol=1e-6)
    np.testing.assert_allclose(g[1].numpy().ravel(), W_LIN[:, 2], atol=1e-6)
    assert classes.tolist() == [0, 2]
    # the map: max over channels of |w|, divided by its max (Simonyan et al.)
    expect = np.abs(W_LIN[:, 0].reshape(4, 4, 3)).max(-1)
    np.testing.assert_allclose(attribution.saliency(linear, x, [0, 2])[0], expect / expect.max(), atol=1e-6)


@pytest.mark.parametrize("rule", ["midpoint", "trapezoid", "right"])
@pytest.mark.parametrize("steps", [1, 3])
def test_ig_on_a_linear_model_is_the_input_difference_times_the_weights(linear, rule, steps):
    x = RNG.normal(size=(2, 4, 4, 3)).astype(np.float32)
    base = RNG.normal(size=(4, 4, 3)).astype(np.float32)
    r = attribution.integrated_gradients(linear, x, [1, 2], baseline=base, steps=steps, rule=rule, details=True)
    for i, c in enumerate([1, 2]):
        expect = (x[i] - base) * W_LIN[:, c].reshape(4, 4, 3)
        np.testing.assert_allclose(r.attributions[i], expect, atol=1e-5)
        np.testing.assert_allclose(r.maps[i], expect.sum(-1), atol=1e-5)
        np.testing.assert_allclose(r.score[i] - r.baseline_score[i], expect.sum(), atol=1e-4)
    assert (r.relative_gap < 1e-5).all()


def test_ig_on_the_tiny_relu_net_by_hand(tiny):
    # From the zero baseline, relu(2 a x) = a relu(2x) for a > 0: the logit is linear along the path,
    # so IG_ij = (W[0, c] relu(2 x_ij) + W[1, c] relu(-x_ij)) / 16 exactly, and the gap is 0.
    x = tiny_input()
    for c in (0, 1):
        r = attribution.integrated_gradients(tiny, x, c, steps=2, details=True)
        xi = x[0, ..., 0]
        expect = (TINY_W[0, c] * np.maximum(2 * xi, 0) + TINY_W[1, c] * np.maximum(-xi, 0)) / 16
        np.testing.assert_allclose(r.maps[0], expect, atol=1e-6)
        assert r.gap[0] < 1e-6


def tiny_logit_per_pixel(x, c):
    """The tiny net's logit is a sum over pixels: f_c(x) = (W[0, c] relu(2x) + W[1, c] relu(-x)) / 16 each."""
    return (TINY_W[0, c] * np.maximum(2 * x, 0) + TINY_W[1, c] * np.maximum(-x, 0)) / 16


@pytest.mark.parametrize("c", [0, 1])
def test_ig_from_a_non_zero_baseline_by_hand(tiny, c):
    # A sum of one-pixel functions: along the straight path from x' to x, IG_ij = f_c(x_ij) - f_c(x'_ij) exactly
    # (Sundararajan et al., Eq. 1). From x' = -1 the kink of f at 0 sits at alpha = 1/(x + 1) in {1/3, 1/2, 1}:
    # interval ends of 6 midpoint steps, so the quadrature is exact too.
    x, base = tiny_input(), -1.0
    r = attribution.integrated_gradients(tiny, x, c, baseline=base, steps=6, details=True)
    expect = tiny_logit_per_pixel(x[0, ..., 0], c) - tiny_logit_per_pixel(np.float32(base), c)
    np.testing.assert_allclose(r.maps[0], expect, atol=1e-6)
    np.testing.assert_allclose(r.baseline_score[0], tiny_logit_per_pixel(np.full(16, base), c).sum() + [0.1, -0.1][c])
    assert r.gap[0] < 1e-5


def test_ig_baseline_score_is_of_the_class_explained_at_the_image(tiny):
    # top-1 at x is class 0; at the baseline (-1 everywhere: relu(-x) = 1) class 1. F(x') must be class 0's score,
    # or the completeness gap compares attributions of one class with the score difference of another.
    x = tiny_input()
    logits = attribution.logits_model(tiny)(np.full((1, 4, 4, 1), -1.0, np.float32)).numpy()[0]
    assert logits.argmax() == 1
    r = attribution.integrated_gradients(tiny, x, baseline=-1.0, steps=6, details=True)
    assert r.classes.tolist() == [0]
    np.testing.assert_allclose(r.baseline_score, [logits[0]], atol=1e-6)
    assert r.gap[0] < 1e-5


def test_a_softmax_inside_a_nested_head_is_skipped():
    head_in = keras.Input((4, 4, 3))
    dense = keras.layers.Dense(3, name="fc")
    head = keras.Model(head_in, keras.layers.Softmax(name="sm")(dense(keras.layers.Flatten()(head_in))), name="head")
    inp = keras.Input((4, 4, 3))
    model = keras.Model(inp, head(keras.layers.Identity()(inp)), name="nested_head")
    dense.set_weights([W_LIN, B_LIN])
    x = RNG.normal(size=(1, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(attribution.input_gradients(model, x, 1)[0].numpy().ravel(), W_LIN[:, 1], atol=1e-6)
    np.testing.assert_allclose(attribution.guided_backprop(model, x, 0, raw=True).ravel(), W_LIN[:, 0], atol=1e-6)
    r = attribution.integrated_gradients(model, x, 2, steps=3, details=True)
    np.testing.assert_allclose(r.attributions.ravel(), x.ravel() * W_LIN[:, 2], atol=1e-5)


def test_ig_top1_class_is_taken_at_the_image_not_the_baseline(linear):
    x = RNG.normal(size=(3, 4, 4, 3)).astype(np.float32)
    logits = x.reshape(3, -1) @ W_LIN + B_LIN
    _, classes = attribution.integrated_gradients(linear, x, steps=2, return_class=True)
    assert classes.tolist() == logits.argmax(1).tolist()


def test_quadrature_points_and_weights():
    a, w = attribution.quadrature(4, "midpoint")
    np.testing.assert_allclose(a, [0.125, 0.375, 0.625, 0.875])
    a, w = attribution.quadrature(4, "trapezoid")
    np.testing.assert_allclose(w, [0.125, 0.25, 0.25, 0.25, 0.125])
    assert np.isclose(w.sum(), 1)
    a, w = attribution.quadrature(2, "right")
    np.testing.assert_allclose(a, [0.5, 1.0])


def test_chunking_does_not_change_ig(tiny):
    x = np.concatenate([tiny_input(), -tiny_input(), 0.5 * tiny_input()])
    base = np.full((4, 4, 1), 0.3, np.float32)
    a = attribution.integrated_gradients(tiny, x, 1, baseline=base, steps=7, batch_size=64)
    b = attribution.integrated_gradients(tiny, x, 1, baseline=base, steps=7, batch_size=5)
    np.testing.assert_allclose(a, b, atol=1e-6)


# --------------------------------------------------------------------------- SmoothGrad
def test_smoothgrad_is_the_expected_gradient_under_gaussian_noise(tiny):
    # d logit_c / dx_ij = (2 W[0,c] 1[x > 0] - W[1,c] 1[x < 0]) / 16; under x + N(0, s^2) its mean is
    # (2 W[0,c] Phi(x/s) - W[1,c] Phi(-x/s)) / 16.
    x = tiny_input()
    noise, n = 0.25, 4000
    s = noise * (x.max() - x.min())
    g = attribution.smoothgrad(tiny, x, 1, samples=n, noise=noise, raw=True)[0, ..., 0]
    xi = x[0, ..., 0]
    expect = (2 * TINY_W[0, 1] * norm.cdf(xi / s) - TINY_W[1, 1] * norm.cdf(-xi / s)) / 16
    np.testing.assert_allclose(g, expect, atol=4 * 2.5 / 16 / np.sqrt(n))
    again = attribution.smoothgrad(tiny, x, 1, samples=n, noise=noise, raw=True)
    np.testing.assert_array_equal(again[0, ..., 0], g)  # seeded


def test_smoothgrad_explains_the_clean_images_top_class(linear):
    x = RNG.normal(size=(2, 4, 4, 3)).astype(np.float32)
    top = (x.reshape(2, -1) @ W_LIN + B_LIN).argmax(1)
    g, classes = attribution.smoothgrad(linear, x, samples=5, noise=1.0, raw=True, return_class=True)
    assert classes.tolist() == top.tolist()
    np.testing.assert_allclose(g[1].ravel(), W_LIN[:, top[1]], atol=1e-5)  # constant gradient: noise cannot move it


# --------------------------------------------------------------------------- guided backprop
A1 = np.array([1.0, -1.0, 0.5], np.float32)  # 1x1 conv, 1 -> 3 channels
B2 = np.array([[1.0, -2.0], [-1.0, 1.0], [2.0, 0.5]], np.float32)  # 1x1 conv, 3 -> 2
D3 = np.array([[1.0, -1.0], [-2.0, 1.5]], np.float32)  # dense 2 -> 2


def two_relu_net(relu6=False, nested=False):
    inp = keras.Input((3, 3, 1))
    c1 = keras.layers.Conv2D(3, 1, use_bias=False, name="c1")
    act1 = keras.layers.ReLU(max_value=6.0 if relu6 else None, name="r1")
    c2 = keras.layers.Conv2D(2, 1, use_bias=False, activation="relu6" if relu6 else "relu", name="c2")
    if nested:
        trunk_in = keras.Input((3, 3, 1))
        trunk = keras.Model(trunk_in, c2(act1(c1(trunk_in))), name="trunk")
        x = trunk(inp)
    else:
        x = c2(act1(c1(inp)))
    x = keras.layers.GlobalAveragePooling2D()(x)
    d = keras.layers.Dense(2, use_bias=False, activation="softmax", name="head")
    model = keras.Model(inp, d(x), name="two_relu")
    c1.set_weights([A1.reshape(1, 1, 1, 3)])
    c2.set_weights([B2.reshape(1, 1, 3, 2)])
    d.set_weights([D3])
    return model


def guided_oracle(x, c, cap):
    """Springenberg et al.'s rule by hand: R_l = 1[f_l > 0] 1[R_{l+1} > 0] R_{l+1} (and f_l < 6 for ReLU6)."""
    xi = x[0, ..., 0][..., None]  # (3, 3, 1)
    z1 = xi * A1
    z2 = np.clip(z1, 0, cap) @ B2
    r = np.broadcast_to(D3[:, c] / 9, z2.shape)  # d logit / d h2, each pixel
    r = ((z2 > 0) & (z2 < cap)) * (r > 0) * r
    r = r @ B2.T
    r = ((z1 > 0) & (z1 < cap)) * (r > 0) * r
    return r @ A1


def plain_oracle(x, c, cap):
    xi = x[0, ..., 0][..., None]
    z1 = xi * A1
    z2 = np.clip(z1, 0, cap) @ B2
    r = ((z2 > 0) & (z2 < cap)) * np.broadcast_to(D3[:, c] / 9, z2.shape)
    return (((z1 > 0) & (z1 < cap)) * (r @ B2.T)) @ A1


X3 = np.array([[3.0, -1.0, 0.5], [-2.0, 8.0, 1.0], [0.25, -0.5, 14.0]], np.float32).reshape(1, 3, 3, 1)


@pytest.mark.parametrize("relu6", [False, True])
@pytest.mark.parametrize("nested", [False, True])
def test_guided_backprop_matches_the_rule_by_hand(relu6, nested):
    model = two_relu_net(relu6, nested)
    cap = 6.0 if relu6 else np.inf
    for c in (0, 1):
        g = attribution.guided_backprop(model, X3, c, raw=True)[0, ..., 0]
        np.testing.assert_allclose(g, guided_oracle(X3, c, cap), atol=1e-6)
        plain = attribution.input_gradients(model, X3, c)[0].numpy()[0, ..., 0]
        np.testing.assert_allclose(plain, plain_oracle(X3, c, cap), atol=1e-6)
    assert not np.allclose(guided_oracle(X3, 0, cap), plain_oracle(X3, 0, cap))  # the rule matters here
    # the model itself is untouched: its layer still computes ReLU(6) with its ordinary gradient
    layer = model.get_layer("trunk").get_layer("c2") if nested else model.get_layer("c2")
    assert layer.activation.__name__ == ("relu6" if relu6 else "relu")


def test_guided_grad_cam_is_guided_backprop_times_grad_cam(tiny):
    x = tiny_input()
    for c in (0, 1):
        gb = attribution.guided_backprop(tiny, x, c, raw=True)
        gc = cam.grad_cam(tiny, x, c, "relu")  # 4x4 = the input size: no resize needed
        got = attribution.guided_grad_cam(tiny, x, c, "relu", raw=True)
        np.testing.assert_allclose(got, gb * gc[..., None], atol=1e-6)
        m = np.abs(got[0]).max(-1)
        np.testing.assert_allclose(attribution.guided_grad_cam(tiny, x, c, "relu")[0], m / m.max(), atol=1e-5)


def test_guided_grad_cam_upsamples_the_coarse_map_bilinearly():
    # Grad-CAM at a 2x2 layer of a 4x4 input: Selvaraju et al. upsample it bilinearly before the product
    inp = keras.Input((4, 4, 1))
    conv = keras.layers.Conv2D(2, 2, strides=2, use_bias=False, name="down")
    h = keras.layers.ReLU(name="r")(conv(inp))
    dense = keras.layers.Dense(2, name="fc")
    model = keras.Model(inp, keras.layers.Softmax()(dense(keras.layers.GlobalAveragePooling2D()(h))))
    conv.set_weights([np.array([1.0, -1.0, 0.5, 2.0, -0.5, 1.0, 1.5, -2.0]).reshape(2, 2, 1, 2).astype(np.float32)])
    dense.set_weights([TINY_W.astype(np.float32), np.zeros(2, np.float32)])
    x = tiny_input() + 0.25
    coarse = cam.grad_cam(model, x, 0, "r")[0]  # (2, 2)
    r = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])  # half-pixel centres, 2 -> 4
    up, nearest = r @ coarse @ r.T, np.repeat(np.repeat(coarse, 2, 0), 2, 1)
    assert not np.allclose(up, nearest, atol=1e-3)
    gb = attribution.guided_backprop(model, x, 0, raw=True)
    got = attribution.guided_grad_cam(model, x, 0, "r", raw=True)
    np.testing.assert_allclose(got[0, ..., 0], gb[0, ..., 0] * up, atol=1e-6)


# --------------------------------------------------------------------------- contract and errors
def test_methods_share_the_call_shape_and_cache_one_function(tiny):
    x = np.concatenate([tiny_input(), -tiny_input()])
    for name, fn in attribution.METHODS.items():
        kw = {"samples": 3} if name == "smoothgrad" else {}
        maps, classes = fn(tiny, x, None, return_class=True, **kw)
        assert maps.shape == (2, 4, 4) and maps.dtype == np.float32, name
        assert classes.tolist() == attribution.scores(tiny, x)[1].tolist()
    cache = _core.compiled_functions(tiny)
    counts = {
        k: f.experimental_get_tracing_count() for k, f in cache.items() if hasattr(f, "experimental_get_tracing_count")
    }
    attribution.integrated_gradients(tiny, np.concatenate([x, x]), [0, 1, 1, 0], steps=5)
    attribution.guided_backprop(tiny, x[:1], 1)
    assert _core.compiled_functions(tiny) == cache
    assert counts == {k: cache[k].experimental_get_tracing_count() for k in counts}


def test_bad_arguments_give_clear_errors(tiny, linear):
    x = tiny_input()
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        attribution.integrated_gradients(tiny, x, steps=0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        attribution.integrated_gradients(tiny, x, steps=-3)
    with pytest.raises(ValueError, match="rule must be one of"):
        attribution.integrated_gradients(tiny, x, rule="simpson")
    with pytest.raises(ValueError, match="baseline must be"):
        attribution.integrated_gradients(tiny, x, baseline=np.zeros((3, 3, 1)))
    for bad in (np.nan, np.full((4, 4, 1), np.inf)):
        with pytest.raises(ValueError, match="baseline contains NaN or inf"):
            attribution.integrated_gradients(tiny, x, baseline=bad)
    with pytest.raises(ValueError, match="samples must be >= 1"):
        attribution.smoothgrad(tiny, x, samples=0)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        attribution.smoothgrad(tiny, x, noise=-0.1)
    with pytest.raises(ValueError, match="batch_size"):
        attribution.saliency(tiny, x, batch_size=0)
    with pytest.raises(ValueError, match="out of range"):
        attribution.saliency(tiny, x, 5)
    with pytest.raises(ValueError, match="Guided Grad-CAM needs a convolutional"):
        attribution.guided_grad_cam(linear, RNG.normal(size=(1, 4, 4, 3)))
    with pytest.raises(ValueError, match="model expects"):
        attribution.saliency(tiny, np.zeros((1, 5, 5, 1)))


# --------------------------------------------------------------------------- the embedded model
@pytest.mark.slow
def test_ig_completeness_gap_on_the_embedded_model(lite0, capsys):
    x = models.preprocess(
        "efficientnet_lite0", [images.load(images.sample(s), size=224) for s in ("chelsea", "coffee")]
    )
    gaps = {}
    for steps in (32, 64, 128, 256):
        r = attribution.integrated_gradients(lite0, x, steps=steps, details=True)
        assert r.classes.tolist() == [285, 967]  # Egyptian cat, espresso
        gaps[steps] = r.relative_gap
    with capsys.disabled():
        print("\nIG relative completeness gap (midpoint, zero baseline), chelsea / coffee:")
        for steps, g in gaps.items():
            print(f"  {steps:4d} steps: {100 * g[0]:.1f}%, {100 * g[1]:.1f}%")
    assert (gaps[256] < 0.03).all()


@pytest.mark.slow
def test_guided_methods_on_the_embedded_model(lite0):
    x = models.preprocess("efficientnet_lite0", [images.load(images.sample("chelsea"), size=224)])
    gb, cls = attribution.guided_backprop(lite0, x, return_class=True)
    sal = attribution.saliency(lite0, x)
    assert cls.tolist() == [285] and gb.shape == (1, 224, 224)
    assert np.isfinite(gb).all() and gb.max() == pytest.approx(1, abs=1e-5)
    assert not np.allclose(gb, sal, atol=1e-2)  # the ReLU6 layers really are guided


# --------------------------------------------------------------------------- models with several outputs
def head1_oracle(x):
    """Hand-computed logits and input gradients of the two_heads fixture's second output (see conftest)."""
    from conftest import HEAD1_B, HEAD1_W

    x = x[..., 0]
    feats = np.stack([np.maximum(2 * x, 0), np.maximum(-x, 0)], -1).mean(axis=(1, 2))  # GAP of the 2 channels
    logits = feats @ HEAD1_W + HEAD1_B
    pos, neg = (x > 0).astype(np.float32), (x < 0).astype(np.float32)
    grads = (2 * HEAD1_W[0][:, None, None, None] * pos - HEAD1_W[1][:, None, None, None] * neg) / 16  # (3, B, 4, 4)
    return logits, grads


def test_attribution_explains_the_output_it_is_given(two_heads, tiny):
    x = np.concatenate([tiny_input(), -tiny_input()])
    logits, grads = head1_oracle(x)
    with pytest.raises(ValueError, match=r"2 outputs.*'head1'.*output="):
        attribution.saliency(two_heads, x)
    g, classes = attribution.input_gradients(two_heads, x, output="head1")
    assert classes.tolist() == logits.argmax(1).tolist() == [1, 0]  # top-1 of output 1, not of the softmax head
    for i, c in enumerate(classes):
        np.testing.assert_allclose(g[i].numpy()[..., 0], grads[c, i], atol=1e-6)
    g2, _ = attribution.input_gradients(two_heads, x, [2, 2], output=1)
    np.testing.assert_allclose(g2.numpy()[..., 0], grads[2], atol=1e-6)
    # output 0 is the tiny model's head: its own gradients, which differ from output 1's
    g0, _ = attribution.input_gradients(two_heads, x, [1, 1], output=0)
    np.testing.assert_allclose(g0.numpy(), attribution.input_gradients(tiny, x, [1, 1])[0], atol=1e-7)
    assert np.abs(g0.numpy()[..., 0] - grads[1]).max() > 0.05
    sal = attribution.saliency(two_heads, x, [2, 2], output=1)
    expect = np.abs(grads[2]) / np.abs(grads[2]).max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(sal, expect, atol=1e-5)  # divided by max + 1e-7, max ~ 0.05
    s, _ = attribution.scores(two_heads, x, [0, 2], output=1)
    np.testing.assert_allclose(s, [logits[0, 0], logits[1, 2]], atol=1e-6)
    # IG from the zero baseline: the ReLU net is positively homogeneous, the gradient constant on the path
    ig = attribution.integrated_gradients(two_heads, x, [0, 2], steps=3, output="head1")
    np.testing.assert_allclose(ig, np.stack([x[0, ..., 0] * grads[0, 0], x[1, ..., 0] * grads[2, 1]]), atol=1e-6)
