import keras
import numpy as np
import pytest

from helpers import cam, images, models

METHODS = [cam.cam, cam.grad_cam, cam.grad_cam_plus_plus, cam.layer_cam, cam.score_cam]


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


@pytest.mark.parametrize("cls", [0, 1])
def test_grad_cam_equals_cam_on_a_gap_dense_model(tiny, cls):
    # dy_c/dA_k(i,j) = W[k,c] / 16, so Grad-CAM's weights are CAM's divided by 16
    np.testing.assert_allclose(
        cam.grad_cam(tiny, tiny_input(), cls, "relu")[0], paper_oracle(tiny_input(), cls), atol=1e-5
    )


def test_layer_cam_oracle(tiny):
    # g = W[:, c] / 16 everywhere: Layer-CAM keeps only channels with positive weight
    x = tiny_input()
    a0, a1 = np.maximum(2 * x[0, ..., 0], 0), np.maximum(-x[0, ..., 0], 0)
    expect = 2.0 * a1 / (2.0 * a1).max()  # class 1: W = [-1, 2] -> only channel 1
    np.testing.assert_allclose(cam.layer_cam(tiny, x, 1, "relu")[0], expect, atol=1e-5)
    expect0 = (a0 + 0.5 * a1) / (a0 + 0.5 * a1).max()
    np.testing.assert_allclose(cam.layer_cam(tiny, x, 0, "relu")[0], expect0, atol=1e-5)


def test_grad_cam_plus_plus_oracle(tiny):
    # constant gradient g_k = W[k,c]/16: alpha_k = 1 / (2 + S_k g_k) with S_k = sum A_k,
    # w_k = sum_ij alpha_k relu(g_k) = 16 * alpha_k * relu(g_k)
    x = tiny_input()
    a = [np.maximum(2 * x[0, ..., 0], 0), np.maximum(-x[0, ..., 0], 0)]
    g = np.array([1.0, 0.5]) / 16  # class 0
    w = [16 * (1 / (2 + a[k].sum() * g[k])) * max(g[k], 0) for k in range(2)]
    m = w[0] * a[0] + w[1] * a[1]
    np.testing.assert_allclose(cam.grad_cam_plus_plus(tiny, x, 0, "relu")[0], m / m.max(), atol=1e-5)


def test_score_cam_oracle_single_channel():
    inp = keras.Input((4, 4, 1))
    conv = keras.layers.Conv2D(1, 1, use_bias=False, name="conv")
    x = keras.layers.ReLU(name="relu")(conv(inp))
    out = keras.layers.Dense(2, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    conv.set_weights([np.ones((1, 1, 1, 1), np.float32)])
    # one channel: softmax over one weight is 1, the map is the activation itself
    xin = np.abs(tiny_input())
    np.testing.assert_allclose(cam.score_cam(model, xin, 0, "relu")[0], xin[0, ..., 0] / xin.max(), atol=1e-5)


def test_score_cam_prefers_the_channel_that_raises_the_score(tiny):
    # class 1 weighs channel 1 (= relu(-x)) by +2 and channel 0 by -1
    m = cam.score_cam(tiny, tiny_input(), 1, "relu")[0]
    a1 = np.maximum(-tiny_input()[0, ..., 0], 0)
    assert m[a1 > 0].mean() > m[a1 == 0].mean()


@pytest.mark.parametrize("method", METHODS)
def test_contract_shape_range_dtype(tiny, method):
    x = np.random.default_rng(0).normal(size=(3, 4, 4, 1)).astype(np.float32)
    m = method(tiny, x)
    assert m.shape == (3, 4, 4) and m.dtype == np.float32
    assert np.isfinite(m).all() and m.min() >= 0 and m.max() <= 1 + 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_all_negative_map_is_zeros_not_nan(tiny, method):
    x = np.zeros((1, 4, 4, 1), np.float32)  # every activation is 0
    m = method(tiny, x, 0)
    assert np.isfinite(m).all() and (m == 0).all()


@pytest.mark.parametrize("method", METHODS)
def test_batch_of_one_and_batch_of_n_agree(lite0, method):
    x = models.preprocess("efficientnet_lite0", np.stack([images.sample(n)[:300, :300] for n in ("chelsea", "coffee")]))
    kw = {"max_channels": 16} if method is cam.score_cam else {}
    both = method(lite0, x, **kw)
    for i in range(2):
        np.testing.assert_allclose(method(lite0, x[i : i + 1], **kw)[0], both[i], atol=2e-4)


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


def test_scores_are_pre_softmax(tiny):
    # a saturated softmax has ~zero gradient; the logit's does not vanish
    x = tiny_input() * 1000
    m = cam.grad_cam(tiny, x, 0, "relu")
    assert m.max() == pytest.approx(1.0, abs=1e-5)


def test_mixed_precision_model_gives_finite_maps(tiny):
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
        assert m.dtype == np.float32 and np.isfinite(m).all()


def test_default_layer_is_the_last_spatial_one(lite0):
    x = models.preprocess("efficientnet_lite0", images.sample("chelsea"))
    np.testing.assert_allclose(cam.grad_cam(lite0, x), cam.grad_cam(lite0, x, layer="top_activation"), atol=1e-6)


def test_cam_equals_grad_cam_on_the_embedded_model(lite0):
    x = models.preprocess("efficientnet_lite0", images.sample("chelsea"))
    np.testing.assert_allclose(cam.cam(lite0, x), cam.grad_cam(lite0, x), atol=1e-4)


def test_cat_heatmap_points_at_the_cat_not_the_background(lite0):
    img = images.sample("chelsea")  # the cat fills the left two thirds
    x = models.preprocess("efficientnet_lite0", img)
    m = cam.grad_cam(lite0, x, models.class_index("Egyptian cat"))[0]
    assert m[:, :4].mean() > 2 * m[:, 5:].mean()


def test_class_index_forms(tiny):
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 1)).astype(np.float32)
    per = cam.grad_cam(tiny, x, [0, 1])
    np.testing.assert_allclose(per[0], cam.grad_cam(tiny, x[:1], 0)[0], atol=1e-6)
    np.testing.assert_allclose(per[1], cam.grad_cam(tiny, x[1:], 1)[0], atol=1e-6)


def test_errors_are_clear(tiny, lite0):
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
    with pytest.raises(ValueError, match="feeds global average pooling"):
        cam.cam(lite0, models.preprocess("efficientnet_lite0", images.sample("coffee")), layer="block6a_project_bn")
    plain = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 1), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    with pytest.raises(ValueError, match="global average pooling"):
        cam.cam(plain, x)


def test_upsample():
    m = np.zeros((1, 2, 2), np.float32)
    m[0, 0, 0] = 1
    up = cam.upsample(m, (8, 8))
    assert up.shape == (1, 8, 8) and up.max() <= 1 and up[0, 0, 0] > up[0, -1, -1]
    assert cam.upsample(m[0], 4).shape == (4, 4)


@pytest.mark.parametrize("method", METHODS)
def test_return_class_gives_the_explained_class(tiny, method):
    x = np.random.default_rng(4).normal(size=(3, 4, 4, 1)).astype(np.float32)
    maps, cls = method(tiny, x, return_class=True)
    np.testing.assert_array_equal(cls, np.argmax(tiny.predict(x, verbose=0), axis=1))
    np.testing.assert_allclose(maps, method(tiny, x), atol=1e-6)
    _, fixed = method(tiny, x, class_index=1, return_class=True)
    assert (fixed == 1).all()
