import warnings

import keras
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers import cam, images, models

METHODS = [cam.cam, cam.grad_cam, cam.grad_cam_plus_plus, cam.layer_cam, cam.score_cam]
LITE0 = "efficientnet_lite0"


# --------------------------------------------------------------------------- the paper model (CAM)
def tiny_input():
    """x in {-1, 0, 1, 2}: channel 0 = relu(2x), channel 1 = relu(-x)."""
    return np.array([[2, 1, 0, -1], [1, 0, 0, -1], [0, 0, 0, 0], [-1, 0, 2, 0]], np.float32).reshape(1, 4, 4, 1)


def paper_oracle(x, cls):
    """By hand: A0 = relu(2x), A1 = relu(-x); CAM_c = sum_k W[k, c] A_k, ReLU, / max."""
    a0, a1 = np.maximum(2 * x[0, ..., 0], 0), np.maximum(-x[0, ..., 0], 0)
    w = np.array([[1.0, -1.0], [0.5, 2.0]])
    m = np.maximum(w[0, cls] * a0 + w[1, cls] * a1, 0)
    return m / m.max()


@pytest.mark.parametrize("cls", [0, 1])
def test_cam_matches_the_hand_computed_map(tiny, cls):
    np.testing.assert_allclose(cam.cam(tiny, tiny_input(), cls)[0], paper_oracle(tiny_input(), cls), atol=1e-5)


# --------------------------------------------------------------------------- a model whose gradients vary
# conv 1x1 (+bias) -> ReLU ("relu1", the tapped layer) -> conv 1x1 (+bias) -> ReLU -> GAP -> dense -> softmax.
# The ReLU after the tapped layer makes dy/dA differ from pixel to pixel, so the methods that use gradients
# per location (Grad-CAM++, Layer-CAM) are told apart from Grad-CAM.
K1, B1 = np.array([2.0, -1.0]), np.array([0.0, 0.5])  # A0 = relu(2x), A1 = relu(0.5 - x)
V, BV = np.array([[1.0, -0.5], [-1.0, 1.0]]), np.array([0.25, -0.25])  # B = relu(A @ V + BV)
W, BW = np.array([[1.0, -1.0], [0.5, 1.5]]), np.array([0.1, -0.2])  # y = mean(B) @ W + BW
X_VARY = np.array([[2, 1, 0, -1], [1, 0.25, 0, -1], [0, -0.5, 1.5, 0], [-1, 0, 2, -2]], np.float32).reshape(1, 4, 4, 1)


@pytest.fixture(scope="module")
def vary():
    inp = keras.Input((4, 4, 1))
    c1 = keras.layers.Conv2D(2, 1, name="conv1")
    a = keras.layers.ReLU(name="relu1")(c1(inp))
    c2 = keras.layers.Conv2D(2, 1, activation="relu", name="mix")
    g = keras.layers.GlobalAveragePooling2D(name="gap")(c2(a))
    dense = keras.layers.Dense(2, name="logits")
    model = keras.Model(inp, keras.layers.Softmax(name="probs")(dense(g)), name="vary")
    c1.set_weights([K1.reshape(1, 1, 1, 2).astype(np.float32), B1.astype(np.float32)])
    c2.set_weights([V.reshape(1, 1, 2, 2).astype(np.float32), BV.astype(np.float32)])
    dense.set_weights([W.astype(np.float32), BW.astype(np.float32)])
    return model


def vary_by_hand(x, cls):
    """Feature maps A (h, w, 2), the logit y_cls, and g = dy_cls/dA (h, w, 2), written out."""
    a = np.maximum(x[..., 0, None] * K1 + B1, 0)
    pre = a @ V + BV
    y = np.maximum(pre, 0).mean(axis=(0, 1)) @ W + BW
    # dy/dA_k(p) = sum_j W[j, c] * 1[pre_j(p) > 0] * V[k, j] / (h * w)
    g = ((pre > 0) * W[:, cls]) @ V.T / pre[..., 0].size
    return a, y[cls], g


def by_max(m):
    m = np.maximum(m, 0)
    return m / m.max()


def test_the_oracle_model_has_gradients_that_vary_and_change_sign(vary):
    for cls in (0, 1):
        _, _, g = vary_by_hand(X_VARY[0], cls)
        assert all(np.ptp(g[..., k]) > 0 for k in range(2)), "gradients must vary across pixels"
    _, _, g0 = vary_by_hand(X_VARY[0], 0)
    assert (g0[..., 0] > 0).any() and (g0[..., 0] < 0).any()  # class 0: mixed signs inside one channel
    _, _, g1 = vary_by_hand(X_VARY[0], 1)
    assert (g1[..., 0] < 0).all()  # class 1: a channel with only negative gradients
    logits = keras.Model(vary.input, vary.get_layer("logits").output)(X_VARY).numpy()[0]
    np.testing.assert_allclose(logits, [vary_by_hand(X_VARY[0], c)[1] for c in (0, 1)], atol=1e-5)


@pytest.mark.parametrize("cls", [0, 1])
def test_grad_cam_oracle(vary, cls):
    a, _, g = vary_by_hand(X_VARY[0], cls)
    alpha = g.mean(axis=(0, 1))  # Selvaraju et al. Eq. 1: average over space, one weight per channel
    np.testing.assert_allclose(cam.grad_cam(vary, X_VARY, cls, "relu1")[0], by_max(a @ alpha), atol=1e-5)


@pytest.mark.parametrize("cls", [0, 1])
def test_grad_cam_plus_plus_oracle(vary, cls):
    a, _, g = vary_by_hand(X_VARY[0], cls)
    s = a.sum(axis=(0, 1))  # sum_ab A_ab^k
    alpha = np.where(g != 0, g**2 / (2 * g**2 + s * g**3 + 1e-7), 0.0)  # Chattopadhay et al. Eq. 19 (+ eps)
    w = (alpha * np.maximum(g, 0)).sum(axis=(0, 1))  # Eq. 7: ReLU on the gradients
    np.testing.assert_allclose(cam.grad_cam_plus_plus(vary, X_VARY, cls, "relu1")[0], by_max(a @ w), atol=1e-5)


@pytest.mark.parametrize("cls", [0, 1])
def test_layer_cam_oracle(vary, cls):
    a, _, g = vary_by_hand(X_VARY[0], cls)
    m = (np.maximum(g, 0) * a).sum(axis=-1)  # Jiang et al. Eq. 5: a weight per location
    np.testing.assert_allclose(cam.layer_cam(vary, X_VARY, cls, "relu1")[0], by_max(m), atol=1e-5)


@pytest.mark.parametrize("cls", [0, 1])
def test_score_cam_two_channel_oracle(vary, cls):
    x = X_VARY[0]
    a, _, _ = vary_by_hand(x, cls)
    scores = []
    for k in range(2):  # the 4x4 maps are already input-sized: upsampling is the identity
        mask = (a[..., k] - a[..., k].min()) / (a[..., k].max() - a[..., k].min())  # min-max to [0, 1]
        scores.append(vary_by_hand(x * mask[..., None], cls)[1])  # pre-softmax score of the masked input
    w = np.exp(scores) / np.exp(scores).sum()  # softmax over channels
    np.testing.assert_allclose(cam.score_cam(vary, X_VARY, cls, "relu1")[0], by_max(a @ w), atol=1e-5)


def test_cam_equals_grad_cam_on_the_embedded_model(lite0):
    # at the layer feeding GAP -> dense, dy_c/dA_k = W[k, c] / (h w) everywhere: Grad-CAM is CAM
    x = models.preprocess(LITE0, images.sample("chelsea"))
    np.testing.assert_allclose(cam.cam(lite0, x), cam.grad_cam(lite0, x), atol=1e-4)


# --------------------------------------------------------------------------- properties
@settings(max_examples=12, deadline=None)
@example(x=np.full((3, 4, 4, 1), 2.0, np.float32), method=cam.score_cam)  # constant channels: was NaN
@given(
    x=hnp.arrays(np.float32, (3, 4, 4, 1), elements=st.floats(-3, 3, width=32)),
    method=st.sampled_from(METHODS),
)
def test_maps_are_finite_in_0_1_and_per_image(vary, x, method):
    layer = "mix" if method is cam.cam else "relu1"  # CAM is defined only at the layer feeding the pooling
    maps, cls = method(vary, x, layer=layer, return_class=True)
    assert maps.shape == (3, 4, 4) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    for i in range(3):  # each map does not depend on the rest of the batch
        np.testing.assert_allclose(method(vary, x[i : i + 1], int(cls[i]), layer)[0], maps[i], atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_all_negative_map_is_zeros_not_nan(tiny, method):
    x = np.zeros((1, 4, 4, 1), np.float32)  # every activation is 0
    m = method(tiny, x, 0)
    assert np.isfinite(m).all() and (m == 0).all()


@pytest.mark.parametrize("method", METHODS)
def test_return_class_gives_the_explained_class(tiny, method):
    x = np.random.default_rng(4).normal(size=(3, 4, 4, 1)).astype(np.float32)
    maps, cls = method(tiny, x, return_class=True)
    np.testing.assert_array_equal(cls, np.argmax(tiny.predict(x, verbose=0), axis=1))
    np.testing.assert_allclose(maps, method(tiny, x), atol=1e-6)
    _, fixed = method(tiny, x, class_index=1, return_class=True)
    assert (fixed == 1).all()


# --------------------------------------------------------------------------- nested models, pre-softmax scores
def _nested(tiny):
    backbone = keras.Model(tiny.input, tiny.get_layer("relu").output, name="backbone")
    inp = keras.Input((4, 4, 1))
    x = backbone(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(2, activation="softmax", name="head")
    model = keras.Model(inp, dense(x))
    dense.set_weights(tiny.get_layer("logits").get_weights())
    return model


@pytest.mark.parametrize("method", METHODS)
def test_nested_backbone_gives_the_same_maps_as_flat(tiny, method):
    nested = _nested(tiny)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 1)).astype(np.float32)
    np.testing.assert_allclose(method(nested, x, 1, "relu"), method(tiny, x, 1, "relu"), atol=1e-5)


def test_nested_sequential_backbone(tiny):
    backbone = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 1, use_bias=False, name="c"), keras.layers.ReLU(name="r")]
    )
    backbone.layers[0].set_weights(tiny.get_layer("conv").get_weights())
    model = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            backbone,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.layers[-1].set_weights(tiny.get_layer("logits").get_weights())
    np.testing.assert_allclose(
        cam.grad_cam(model, tiny_input(), 0, "r"), cam.grad_cam(tiny, tiny_input(), 0, "relu"), atol=1e-5
    )


def _with_head(tiny, kind):
    """The tiny model with its softmax placed in the ways models are built in the wild."""
    trunk = keras.Model(tiny.input, tiny.get_layer("gap").output, name="trunk")
    weights = tiny.get_layer("logits").get_weights()
    feats = keras.Input((2,), name="feats")
    inp = keras.Input((4, 4, 1))
    if kind == "dense_softmax_in_nested_head":
        dense = keras.layers.Dense(2, activation="softmax")
        head = keras.Model(feats, dense(feats), name="head")
    else:
        dense = keras.layers.Dense(2)
        z = dense(feats)
        if kind == "softmax_in_nested_head":
            head = keras.Model(feats, keras.layers.Softmax()(z), name="head")
        elif kind == "ops_softmax_in_nested_head":
            head = keras.Model(feats, keras.ops.softmax(z), name="head")
        else:  # a softmax followed by a layer that changes nothing
            after = {
                "softmax_then_identity": keras.layers.Identity(),
                "softmax_then_linear": keras.layers.Activation("linear"),
                "softmax_then_lambda": keras.layers.Lambda(lambda p: p),
            }[kind]
            head = keras.Model(feats, after(keras.layers.Activation("softmax")(z)), name="head")
    dense.set_weights(weights)
    return keras.Model(inp, head(trunk(inp)), name=kind)


@pytest.mark.parametrize(
    "kind",
    [
        "softmax_in_nested_head",
        "dense_softmax_in_nested_head",
        "ops_softmax_in_nested_head",
        "softmax_then_identity",
        "softmax_then_linear",
        "softmax_then_lambda",
    ],
)
def test_scores_are_pre_softmax_wherever_the_softmax_sits(tiny, kind):
    x = tiny_input() * 1000  # saturates the softmax: its gradient is exactly 0, the logit's is not
    model = _with_head(tiny, kind)
    np.testing.assert_allclose(model(x).numpy(), tiny(x).numpy(), atol=1e-6)  # same function
    m = cam.grad_cam(model, x, 0, "relu")
    assert m.max() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(m, cam.grad_cam(tiny, x, 0, "relu"), atol=1e-5)
    np.testing.assert_allclose(cam.cam(model, x, 0)[0], paper_oracle(x, 0), atol=1e-5)


def test_scores_are_pre_softmax_at_the_top_level(tiny):
    m = cam.grad_cam(tiny, tiny_input() * 1000, 0, "relu")
    assert m.max() == pytest.approx(1.0, abs=1e-5)


def test_probabilities_without_a_softmax_layer_are_a_clear_error(tiny):
    trunk = keras.Model(tiny.input, tiny.get_layer("logits").output)
    inp = keras.Input((4, 4, 1))
    model = keras.Model(inp, keras.layers.Lambda(lambda z: keras.ops.softmax(z))(trunk(inp)))
    with pytest.raises(ValueError, match="no pre-softmax output"):
        cam.grad_cam(model, tiny_input(), 0, "relu")


# --------------------------------------------------------------------------- models with several outputs
def _two_heads(tiny, n_second):
    aux = keras.layers.Dense(n_second, name="aux")
    model = keras.Model(tiny.input, [tiny.output, aux(tiny.get_layer("gap").output)], name=f"two_heads_{n_second}")
    aux.set_weights([np.array([[1.0] * n_second, [-1.0] * n_second], np.float32), np.zeros(n_second, np.float32)])
    return model  # every aux class weighs channel 0 by +1 and channel 1 by -1


@pytest.mark.parametrize("n_second", [2, 3])
def test_several_outputs_need_an_explicit_output(tiny, n_second):
    model = _two_heads(tiny, n_second)
    with pytest.raises(ValueError, match=r"2 outputs.*'probs'.*'aux'.*output="):
        cam.grad_cam(model, tiny_input(), 0, "relu")
    expect = cam.grad_cam(tiny, tiny_input(), 0, "relu")
    np.testing.assert_allclose(cam.grad_cam(model, tiny_input(), 0, "relu", output="probs"), expect, atol=1e-6)
    np.testing.assert_allclose(cam.cam(model, tiny_input(), 0, output=0)[0], paper_oracle(tiny_input(), 0), atol=1e-5)
    aux = cam.grad_cam(model, tiny_input(), 1, "relu", output=1)[0]
    a0 = np.maximum(2 * tiny_input()[0, ..., 0], 0)
    np.testing.assert_allclose(aux, a0 / a0.max(), atol=1e-5)  # relu(A0 - A1) = A0: supports are disjoint
    with pytest.raises(ValueError, match="unknown output 'nope'"):
        cam.grad_cam(model, tiny_input(), 0, "relu", output="nope")


# --------------------------------------------------------------------------- CAM's layer
@pytest.mark.parametrize("layer", ["top_conv", "top_bn", "block6d_add"])
def test_cam_refuses_a_layer_that_does_not_feed_the_pooling(lite0, layer):
    x = models.preprocess(LITE0, images.sample("coffee"))
    with pytest.raises(ValueError, match=f"feeds global average pooling, 'top_activation'; '{layer}' is not it"):
        cam.cam(lite0, x, layer=layer)


def test_cam_accepts_layers_linked_to_the_pooling_by_inference_identities(tiny):
    # relu -> dropout -> GAP -> dropout -> dense -> softmax, like training.build_cam_model
    x = keras.layers.Dropout(0.5, name="drop_maps")(tiny.get_layer("relu").output)
    x = keras.layers.Dropout(0.5)(keras.layers.GlobalAveragePooling2D()(x))
    dense = keras.layers.Dense(2)
    model = keras.Model(tiny.input, keras.layers.Softmax()(dense(x)))
    dense.set_weights(tiny.get_layer("logits").get_weights())
    for layer in (None, "drop_maps", "relu"):
        np.testing.assert_allclose(cam.cam(model, tiny_input(), 0, layer)[0], paper_oracle(tiny_input(), 0), atol=1e-5)
    with pytest.raises(ValueError, match="'drop_maps'; 'conv' is not it"):
        cam.cam(model, tiny_input(), 0, "conv")


# --------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("method", METHODS)
def test_bad_images_are_clear_errors(tiny, method):
    for bad in (np.nan, np.inf):
        x = tiny_input().copy()
        x[0, 1, 1, 0] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            method(tiny, x)
    with pytest.raises(ValueError, match="empty batch"):
        method(tiny, np.zeros((0, 4, 4, 1), np.float32))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_channels": 0}, "max_channels must be an int >= 1 or None, got 0"),
        ({"max_channels": -5}, "max_channels must be an int >= 1 or None, got -5"),
        ({"max_channels": 2.5}, "max_channels must be"),
        ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
        ({"batch_size": True}, "batch_size must be an int >= 1, got True"),
    ],
)
def test_score_cam_arguments(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cam.score_cam(tiny, tiny_input(), **kwargs)


@pytest.mark.parametrize("bad", [285.7, True, np.float64(1.0), np.bool_(True), [0.0], [True]])
def test_class_index_must_be_an_int(tiny, bad):
    with pytest.raises(ValueError, match="must (be an int|hold ints)"):
        cam.grad_cam(tiny, tiny_input(), bad)


def test_class_index_forms(tiny):
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 1)).astype(np.float32)
    per = cam.grad_cam(tiny, x, [0, 1])
    np.testing.assert_allclose(per[0], cam.grad_cam(tiny, x[:1], 0)[0], atol=1e-6)
    np.testing.assert_allclose(per[1], cam.grad_cam(tiny, x[1:], 1)[0], atol=1e-6)
    np.testing.assert_allclose(cam.grad_cam(tiny, x, np.array([0, 1])), per, atol=1e-6)
    np.testing.assert_allclose(cam.grad_cam(tiny, x, np.int64(1)), cam.grad_cam(tiny, x, 1), atol=1e-6)
    with pytest.raises(ValueError, match="2 ints; got 3"):
        cam.grad_cam(tiny, x, [0, 1, 1])
    with pytest.raises(ValueError, match="needs a 1000-class ImageNet model; this model has 2"):
        cam.grad_cam(tiny, x, "tabby")


def test_class_names_on_an_imagenet_model(lite0):
    x = models.preprocess(LITE0, images.sample("chelsea"))
    _, cls = cam.cam(lite0, x, "Egyptian cat", return_class=True)
    assert cls[0] == models.class_index("Egyptian cat")
    with pytest.raises(ValueError, match="no ImageNet class named"):
        cam.cam(lite0, x, "no such animal")


def test_raw_pixels_give_a_warning_preprocessed_ones_do_not(tiny):
    raw = np.abs(tiny_input()) * 100  # 0..200, like an unprocessed photo
    with pytest.warns(UserWarning, match=r"raw 0\.\.255 pixels.*models\.preprocess") as record:
        cam.grad_cam(tiny, raw)
    assert record[0].filename == __file__  # points at the caller's line, not into the library
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cam.grad_cam(tiny, tiny_input())  # [-1, 2]
        cam.grad_cam(tiny, tiny_input() * 100)  # caffe-style mean-subtracted values are negative too
        rescaled = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Rescaling(1 / 255), tiny])
        cam.grad_cam(rescaled, raw, layer="relu")  # the model rescales raw pixels itself


def test_errors_are_clear(tiny):
    x = tiny_input()
    with pytest.raises(ValueError, match="no layer named 'nope'.*relu"):
        cam.grad_cam(tiny, x, layer="nope")
    with pytest.raises(ValueError, match="no spatial 4-D output"):
        cam.grad_cam(tiny, x, layer="gap")
    with pytest.raises(ValueError, match="out of range"):
        cam.grad_cam(tiny, x, class_index=5)
    with pytest.raises(ValueError, match="batch"):
        cam.grad_cam(tiny, x[0])
    with pytest.raises(ValueError, match=r"expects \(4, 4, 1\).*preprocess"):
        cam.grad_cam(tiny, np.zeros((1, 8, 8, 1), np.float32))
    plain = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 1), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    with pytest.raises(ValueError, match="global average pooling -> one dense layer.*Use grad_cam"):
        cam.cam(plain, x)


# --------------------------------------------------------------------------- other dtypes, the real model
def test_mixed_precision_model_gives_finite_maps():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inp = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
        x = keras.layers.GlobalAveragePooling2D()(x)
        out = keras.layers.Dense(3, activation="softmax", dtype="float32")(x)
        model = keras.Model(inp, out)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype(np.float32)
    for method in METHODS:
        m = method(model, x)
        assert m.dtype == np.float32 and np.isfinite(m).all() and m.max() > 0


def test_default_layer_is_the_last_spatial_one(lite0):
    x = models.preprocess(LITE0, images.sample("chelsea"))
    np.testing.assert_allclose(cam.grad_cam(lite0, x), cam.grad_cam(lite0, x, layer="top_activation"), atol=1e-6)


def test_cat_heatmap_points_at_the_cat_not_the_background(lite0):
    x = models.preprocess(LITE0, images.sample("chelsea"))  # the cat fills the left two thirds
    m = cam.grad_cam(lite0, x, "Egyptian cat")[0]
    assert m[:, :4].mean() > 2 * m[:, 5:].mean()


def test_upsample():
    m = np.zeros((1, 2, 2), np.float32)
    m[0, 0, 0] = 1
    up = cam.upsample(m, (8, 8))
    assert up.shape == (1, 8, 8) and up.max() <= 1 and up[0, 0, 0] > up[0, -1, -1]
    assert cam.upsample(m[0], 4).shape == (4, 4)


# --------------------------------------------------------------------------- oracles the tests above cannot tell apart
def score_cam_by_hand(x, cls, a):
    """Score-CAM of feature maps ``a`` (h, w, C) at input size: min-max masks, softmax of the masked logits."""
    masks = [(a[..., k] - a[..., k].min()) / (a[..., k].max() - a[..., k].min()) for k in range(a.shape[-1])]
    scores = np.array([vary_by_hand(x * m[..., None], cls)[1] for m in masks])
    w = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    return by_max(a @ w), masks


@pytest.mark.parametrize("cls", [0, 1])
def test_score_cam_masks_are_min_max_scaled_on_a_signed_layer(vary, cls):
    # conv1 is before the ReLU: its maps are negative in places, so min-max scaling (Wang et al., Sec. 3) and a
    # plain division by the max give different masks, hence different scores and maps
    x = X_VARY[0]
    a = x[..., 0, None] * K1 + B1  # conv1's signed maps, (4, 4, 2)
    assert (a.min(axis=(0, 1)) < 0).all()
    expect, masks = score_cam_by_hand(x, cls, a)
    by_peak = [a[..., k] / a[..., k].max() for k in range(2)]
    assert not all(np.allclose(m, p) for m, p in zip(masks, by_peak))
    np.testing.assert_allclose(cam.score_cam(vary, X_VARY, cls, "conv1")[0], expect, atol=1e-5)


def test_score_cam_max_channels_scores_the_channels_of_highest_mean(vary):
    # one bright pixel: channel 0 (relu(2x)) has the larger spread, channel 1 (relu(0.5 - x)) the larger mean
    x = np.full((1, 4, 4, 1), -1.0, np.float32)
    x[0, 0, 0, 0] = 8.0
    a = np.maximum(x[0, ..., 0, None] * K1 + B1, 0)
    assert a[..., 1].mean() > a[..., 0].mean() and a[..., 0].std() > a[..., 1].std()
    # one channel scored: its softmax weight is 1, so the map is that channel divided by its max
    np.testing.assert_allclose(cam.score_cam(vary, x, 0, "relu1", max_channels=1)[0], by_max(a[..., 1]), atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_class_0_asked_for_is_explained_even_when_the_top_1_is_class_1(tiny, method):
    x = tiny_input() - 1  # logits 0.79 (class 0) and 1.40 (class 1)
    assert np.argmax(tiny.predict(x, verbose=0)[0]) == 1
    maps, cls = method(tiny, x, 0, "relu", return_class=True)
    assert cls.tolist() == [0]
    if method is cam.cam:
        np.testing.assert_allclose(maps[0], paper_oracle(x, 0), atol=1e-5)
    np.testing.assert_allclose(maps, method(tiny, x, [0], "relu"), atol=1e-6)
    assert not np.allclose(maps, method(tiny, x, 1, "relu"), atol=1e-3)


def test_upsample_interpolates_bilinearly():
    # half-pixel centres, 2 -> 4: output pixels sit at 0, 1/4, 3/4, 1 of the way between the two inputs
    m = np.array([[0.0, 1.0], [1.0, 0.5]], np.float32)
    r = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    np.testing.assert_allclose(cam.upsample(m, 4), r @ m @ r.T, atol=1e-6)
    np.testing.assert_allclose(cam.upsample(m[None], (4, 2))[0], r @ m, atol=1e-6)


def test_grad_cam_plus_plus_warns_on_a_layer_with_negative_activations(vary):
    # conv1 is before the ReLU: sum_ab A_ab < 0 makes Eq. 19's denominator 2 + sum(A) g cross zero
    with pytest.warns(UserWarning, match=r"layer 'conv1'.*negative.*post-ReLU") as record:
        cam.grad_cam_plus_plus(vary, X_VARY, 0, "conv1")
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cam.grad_cam_plus_plus(vary, X_VARY, 0, "relu1")  # post-ReLU: the paper's setting, no warning
        cam.grad_cam(vary, X_VARY, 0, "conv1")  # Grad-CAM's weights have no denominator


@pytest.mark.parametrize(
    "maps, size, message",
    [
        (np.full((2, 2), np.nan), 4, "NaN or inf"),
        (np.zeros((1, 0, 3)), 4, "at least one pixel"),
        (np.zeros((2, 2, 2, 1)), 4, "at least one pixel"),
        (np.zeros((2, 2)), 0, "size must be"),
        (np.zeros((2, 2)), (4, -1), "size must be"),
        (np.zeros((2, 2)), (4.5, 4), "size must be"),
    ],
)
def test_upsample_refuses_nan_empty_maps_and_bad_sizes(maps, size, message):
    with pytest.raises(ValueError, match=message):
        cam.upsample(maps, size)
