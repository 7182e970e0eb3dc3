import keras
import numpy as np
import pytest
from scipy.ndimage import convolve
from scipy.stats import spearmanr

from helpers import _core, attribution, faithfulness

W_TOY = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
X_TOY = np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(1, 2, 2, 1)
B0 = -1.0


@pytest.fixture(scope="module")
def toy():
    """2x2 gray image -> logits [sum_i w_i x_i + b0, 0] -> softmax: p(class 0) = sigmoid(w.x + b0)."""
    inp = keras.Input((2, 2, 1))
    dense = keras.layers.Dense(2, activation="softmax", name="head")
    model = keras.Model(inp, dense(keras.layers.Flatten()(inp)), name="toy")
    dense.set_weights([np.stack([W_TOY, np.zeros(4, np.float32)], 1), np.array([B0, 0.0], np.float32)])
    return model


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def p0(x):
    return sigmoid(np.dot(W_TOY, np.ravel(x)) + B0)


# ranking of the saliency below: pixel 1 (0.9), pixel 2 (0.5), pixel 3 (0.3), pixel 0 (0.1)
SAL = np.array([[0.1, 0.9], [0.5, 0.3]], np.float32)[None]
ORDER = [1, 2, 3, 0]


def test_deletion_curve_of_a_known_ranking_by_hand(toy):
    x = X_TOY.ravel()
    expect = []
    kept = np.ones(4, bool)
    for k in range(5):
        expect.append(p0(x * kept))
        if k < 4:
            kept[ORDER[k]] = False
    c = faithfulness.deletion(toy, X_TOY, SAL, 0, steps=4)
    np.testing.assert_allclose(c.fractions, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(c.scores[0], expect, atol=1e-6)
    auc = (expect[0] / 2 + sum(expect[1:4]) + expect[4] / 2) / 4
    np.testing.assert_allclose(c.auc[0], auc, atol=1e-6)
    # two pixels per step; class None = the top-1 class of the clean image (class 0: w.x + b0 = 7.5 > 0)
    c2 = faithfulness.deletion(toy, X_TOY, SAL, steps=2)
    np.testing.assert_allclose(c2.scores[0], [expect[0], expect[2], expect[4]], atol=1e-6)
    assert c2.classes.tolist() == [0]


def test_insertion_curve_by_hand_and_with_the_blurred_start(toy):
    x = X_TOY.ravel()
    shown = np.zeros(4, bool)
    expect = []
    for k in range(5):
        expect.append(p0(x * shown))
        if k < 4:
            shown[ORDER[k]] = True
    c = faithfulness.insertion(toy, X_TOY, SAL, 0, steps=4, substrate="zeros")
    np.testing.assert_allclose(c.scores[0], expect, atol=1e-6)
    blurred = faithfulness.blur(X_TOY)
    c = faithfulness.insertion(toy, X_TOY, SAL, 0, steps=4)  # RISE: starts from the blurred image
    np.testing.assert_allclose(c.scores[0, 0], p0(blurred), atol=1e-6)
    np.testing.assert_allclose(c.scores[0, -1], p0(x), atol=1e-6)


def test_deletion_and_insertion_share_one_pass_and_low_resolution_maps_are_upsampled(toy):
    both = faithfulness.causal_curves(toy, X_TOY, SAL, 0, steps=4, insertion_substrate="zeros")
    np.testing.assert_allclose(both["deletion"].scores, faithfulness.deletion(toy, X_TOY, SAL, 0, steps=4).scores)
    flat = np.array([[[0.0]]]) + SAL[:, :1, :1]  # a 1x1 map, upsampled: all four pixels tie
    first = set()
    for seed in range(8):
        one = faithfulness.deletion(toy, X_TOY, flat, 0, steps=4, seed=seed)
        removed = int(np.argmin(faithfulness._saliency_order(flat, (2, 2), seed)))  # the seed's first pixel
        kept = np.ones(4, bool)
        kept[removed] = False
        np.testing.assert_allclose(one.scores[0, 1], p0(X_TOY.ravel() * kept), atol=1e-6)
        first.add(removed)
    assert len(first) > 1  # ties are not removed in raster order (always pixel 0 first)


def test_a_plateau_is_removed_in_an_order_uncorrelated_with_rows_and_columns():
    """A post-ReLU plateau (here a flat square beside a peak) must not lose its top rows first."""
    sal = np.zeros((3, 40, 40), np.float32)  # three maps: a peak, then a plateau of zeros
    sal[:, 5, 7] = 1.0
    rank = faithfulness._saliency_order(sal, (40, 40), seed=0)
    assert (rank[:, 5, 7] == 0).all()  # the salient pixel still goes first
    rows, cols = np.indices((40, 40))
    plateau = np.ones((40, 40), bool)
    plateau[5, 7] = False
    for r in rank:
        for coord in (rows, cols):  # raster order would give a rank correlation of ~1 with the row
            assert abs(np.corrcoef(r[plateau], coord[plateau])[0, 1]) < 0.1
        half = r[plateau] < plateau.sum() // 2  # the first half of the plateau spans the whole image
        assert abs(rows[plateau][half].mean() - 19.5) < 2
    assert not (rank[0] == rank[1]).all()  # a fresh permutation per image
    np.testing.assert_array_equal(rank, faithfulness._saliency_order(sal, (40, 40), seed=0))  # seeded
    assert not (rank == faithfulness._saliency_order(sal, (40, 40), seed=1)).all()


def test_road_breaks_ties_with_its_seed(toy):
    flat = np.ones((1, 2, 2), np.float32)  # every pixel ties: MoRF at 25% removes the seed's first pixel
    for seed in (0, 1, 2):
        r = faithfulness.road(toy, X_TOY, flat, 0, fractions=(0.25,), noise=0.0, seed=seed)
        removed = faithfulness._saliency_order(flat, (2, 2), seed)[0] < 1
        filled = faithfulness.noisy_linear_impute(X_TOY[0], removed, noise=0.0)
        np.testing.assert_allclose(r.morf[0, 0], p0(filled), atol=1e-5)


def test_blur_is_rise_gaussian_with_zero_padding():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 9, 13, 3)).astype(np.float32)
    k = faithfulness.gaussian_kernel(11, 5)
    assert k.shape == (11, 11) and np.isclose(k.sum(), 1, atol=1e-4) and np.allclose(k, k.T)
    got = faithfulness.blur(x)
    for i in range(2):
        for ch in range(3):
            np.testing.assert_allclose(got[i, ..., ch], convolve(x[i, ..., ch], k, mode="constant"), atol=1e-5)


def test_average_drop_and_increase_by_hand(toy):
    x = np.concatenate([X_TOY, -X_TOY])  # image 1: top-1 is class 1
    sal = np.stack([SAL[0], np.array([[2.0, -1.0], [0.0, 4.0]], np.float32)])
    r = faithfulness.average_drop_increase(toy, x, sal)
    y, o = [], []
    for i in range(2):
        m = np.maximum(sal[i], 0) / np.maximum(sal[i], 0).max()
        e = x[i].ravel() * m.ravel()
        c = int(r.classes[i])
        y.append(p0(x[i]) if c == 0 else 1 - p0(x[i]))
        o.append(p0(e) if c == 0 else 1 - p0(e))
    assert r.classes.tolist() == [0, 1]
    y, o = np.array(y), np.array(o)
    np.testing.assert_allclose(r.full, y, atol=1e-6)
    np.testing.assert_allclose(r.masked, o, atol=1e-6)
    np.testing.assert_allclose(r.drop, 100 * np.maximum(0, y - o) / y, atol=1e-4)
    assert r.increase.tolist() == (o > y).tolist()
    assert r.average_drop == pytest.approx(float(np.mean(100 * np.maximum(0, y - o) / y)), abs=1e-4)
    assert r.increase_in_confidence == pytest.approx(100 * np.mean(o > y))


def test_a_map_that_raises_the_confidence_counts_as_no_drop(toy):
    # hiding pixel 1 (weight -1) raises p(class 0): O > Y. Chattopadhay et al. clamp the drop at 0 there, so an
    # explanation cannot buy a better Average Drop on one image with a confidence gain on another.
    x = np.concatenate([X_TOY, X_TOY])
    sal = np.stack([np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 1.0], [0.0, 1.0]])]).astype(np.float32)
    r = faithfulness.average_drop_increase(toy, x, sal, 0)
    y = p0(X_TOY)
    o = [p0(X_TOY.ravel() * sal[i].ravel()) for i in range(2)]
    assert o[0] > y > o[1]
    np.testing.assert_allclose(r.drop, [0.0, 100 * (y - o[1]) / y], atol=1e-4)
    assert r.average_drop == pytest.approx(50 * (y - o[1]) / y, abs=1e-4)
    assert r.increase.tolist() == [True, False] and r.increase_in_confidence == 50.0


# --------------------------------------------------------------------------- ROAD
def test_linear_imputation_reproduces_a_linear_ramp_inside_the_image():
    r, c = np.mgrid[0:8, 0:9]
    img = np.stack([0.3 * r - 0.2 * c + ch for ch in range(3)], -1).astype(np.float32)
    removed = np.zeros((8, 9), bool)
    removed[2:6, 3:7] = True
    out = faithfulness.noisy_linear_impute(img, removed, noise=0.0)
    np.testing.assert_allclose(out, img, atol=1e-5)


def imputation_by_loops(img, removed):
    """Rong et al.'s equations written pixel by pixel, solved densely."""
    h, w, _ = img.shape
    idx = [(i, j) for i in range(h) for j in range(w) if removed[i, j]]
    pos = {p: k for k, p in enumerate(idx)}
    a = np.zeros((len(idx), len(idx)))
    b = np.zeros((len(idx), img.shape[2]))
    for k, (i, j) in enumerate(idx):
        for (dy, dx), wt in faithfulness.NEIGHBOUR_WEIGHTS:
            ii, jj = i + dy, j + dx
            if 0 <= ii < h and 0 <= jj < w:
                a[k, k] -= wt
                if removed[ii, jj]:
                    a[k, pos[(ii, jj)]] += wt
                else:
                    b[k] -= wt * img[ii, jj]
    out = img.astype(np.float64).copy()
    for k, p in enumerate(idx):
        out[p] = np.linalg.solve(a, b)[k]
    return out


def test_noisy_linear_imputation_solves_the_neighbour_equations_and_adds_noise():
    rng = np.random.default_rng(2)
    img = rng.normal(size=(5, 6, 3)).astype(np.float32)
    removed = rng.random((5, 6)) < 0.5
    removed[0, 0] = removed[4, 5] = True  # corners: only 3 neighbours
    clean = faithfulness.noisy_linear_impute(img, removed, noise=0.0)
    np.testing.assert_allclose(clean, imputation_by_loops(img, removed), atol=1e-5)
    np.testing.assert_array_equal(clean[~removed], img[~removed])
    big = rng.normal(size=(40, 40, 3)).astype(np.float32)
    mask = rng.random((40, 40)) < 0.5
    noisy = faithfulness.noisy_linear_impute(big, mask, noise=0.1, rng=np.random.default_rng(0))
    diff = noisy - faithfulness.noisy_linear_impute(big, mask, noise=0.0)
    assert diff[mask].std() == pytest.approx(0.1, rel=0.05)
    assert (diff[~mask] == 0).all()


def test_road_removes_most_or_least_relevant_pixels(toy):
    r = faithfulness.road(toy, X_TOY, SAL, 0, fractions=(0.25, 0.5), noise=0.0)
    img = X_TOY[0]
    for j, k in enumerate((1, 2)):
        morf = np.zeros(4, bool)
        morf[ORDER[:k]] = True
        lerf = np.zeros(4, bool)
        lerf[ORDER[-k:]] = True
        for got, rem in ((r.morf, morf), (r.lerf, lerf)):
            filled = faithfulness.noisy_linear_impute(img, rem.reshape(2, 2), noise=0.0)
            np.testing.assert_allclose(got[0, j], p0(filled), atol=1e-5)
    assert r.morf_correct.tolist() == [(r.morf[0] > 0.5).tolist()]


# --------------------------------------------------------------------------- Spearman and SSIM
def test_spearman_on_constructed_maps():
    rng = np.random.default_rng(3)
    a = np.round(rng.random((3, 5, 6)), 1)  # ties
    b = np.round(rng.random((3, 5, 6)), 1)
    got = faithfulness.spearman(a, b)
    for i in range(3):
        assert got[i] == pytest.approx(spearmanr(a[i].ravel(), b[i].ravel()).statistic, abs=1e-6)
    ramp = np.arange(12.0).reshape(1, 3, 4)
    assert faithfulness.spearman(ramp, -ramp, absolute=False)[0] == pytest.approx(-1)
    assert faithfulness.spearman(ramp, -ramp)[0] == pytest.approx(1)  # Adebayo et al.: |map|
    assert faithfulness.spearman(ramp, 12 - ramp)[0] == pytest.approx(-1)


def test_ssim_on_constructed_maps():
    r, c = np.mgrid[0:16, 0:16]
    blob = np.exp(-((r - 5.0) ** 2 + (c - 9.0) ** 2) / 10)[None]
    assert faithfulness.ssim(blob, blob)[0] == pytest.approx(1)
    assert faithfulness.ssim(blob, -3 * blob)[0] == pytest.approx(1)  # normalised |map|
    moved = np.exp(-((r - 11.0) ** 2 + (c - 3.0) ** 2) / 10)[None]
    assert faithfulness.ssim(blob, moved)[0] < 0.2
    assert faithfulness.ssim(blob[:, :7, :7], moved[:, :7, :7]).shape == (1,)  # 7x7 Grad-CAM maps work
    with pytest.raises(ValueError, match="too small"):
        faithfulness.ssim(blob[:, :2, :2], blob[:, :2, :2])


def test_spearman_of_a_constant_map_is_an_error_or_nan_on_request():
    ramp = np.arange(12.0).reshape(1, 3, 4)
    flat = np.zeros((1, 3, 4))
    with pytest.raises(ValueError, match=r"maps \[1\] .* constant after \|\.\|.*undefined"):
        faithfulness.spearman(np.concatenate([ramp, ramp]), np.concatenate([ramp, -2 + 0 * ramp]))
    rho = faithfulness.spearman(np.concatenate([ramp, ramp]), np.concatenate([ramp, flat]), constant="nan")
    assert rho[0] == pytest.approx(1) and np.isnan(rho[1])
    with pytest.raises(ValueError, match="constant must be"):
        faithfulness.spearman(ramp, ramp, constant="zero")


@pytest.mark.parametrize("metric", [faithfulness.spearman, faithfulness.ssim])
def test_map_comparisons_refuse_nan_and_empty_batches(metric):
    r, c = np.mgrid[0:8, 0:8]
    blob = np.exp(-((r - 3.0) ** 2 + (c - 4.0) ** 2) / 6)[None]
    bad = blob.copy()
    bad[0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        metric(blob, bad)
    with pytest.raises(ValueError, match="at least one map"):
        metric(np.zeros((0, 8, 8)), np.zeros((0, 8, 8)))


def test_average_drop_refuses_nan_or_pixel_less_saliency(toy):
    with pytest.raises(ValueError, match="NaN or inf"):
        faithfulness.average_drop_increase(toy, X_TOY, SAL * np.nan)
    with pytest.raises(ValueError, match="at least one pixel"):
        faithfulness.average_drop_increase(toy, X_TOY, np.zeros((1, 0, 2)))


# --------------------------------------------------------------------------- sanity checks
def block_model():
    rng = np.random.default_rng(4)
    inp = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="b1_conv")(inp)
    x = keras.layers.ReLU(name="b1_act")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="b2_conv")(x)
    x = keras.layers.BatchNormalization(name="b2_bn")(x)
    x = keras.layers.ReLU(name="b2_act")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="head")(x), name="blocks")
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) + 0.5 for w in model.get_weights()])
    bn = model.get_layer("b2_bn")
    bn.moving_variance.assign(np.abs(bn.moving_variance.numpy()) + 0.1)  # a negative variance gives NaN maps
    return model


def weights_of(model):
    return {v.path: v.numpy().copy() for v in model.weights}


def test_cascading_randomization_changes_weights_top_down_and_restores_them():
    model = block_model()
    x = np.random.default_rng(5).normal(size=(2, 6, 6, 1)).astype(np.float32)
    before = weights_of(model)
    seen = []

    def method(m, images, class_index):
        seen.append(weights_of(m))
        return attribution.saliency(m, images, class_index)

    attribution.saliency(model, x, [0, 1])  # compiles
    cache = _core.compiled_functions(model)
    traces = {
        k: f.experimental_get_tracing_count() for k, f in cache.items() if hasattr(f, "experimental_get_tracing_count")
    }
    r = faithfulness.cascading_randomization(model, x, method, [0, 1])
    assert r.stages == ["head", "b2", "b1"]
    stage_of = {"head": 0, "b2_conv": 1, "b2_bn": 1, "b1_conv": 2}
    for call, w in enumerate(seen):  # call 0: original; call k: stages 0..k-1 randomised
        for path, value in w.items():
            randomised = stage_of[path.split("/")[0]] < call
            assert np.array_equal(value, before[path]) != randomised, (call, path)
    assert all(np.array_equal(v, before[k]) for k, v in weights_of(model).items())
    assert _core.compiled_functions(model) == cache  # same compiled function, not rebuilt
    assert traces == {k: cache[k].experimental_get_tracing_count() for k in traces}
    assert r.spearman.shape == r.ssim.shape == (3, 2) and r.maps.shape == (3, 2, 6, 6)
    np.testing.assert_allclose(r.spearman[-1], faithfulness.spearman(r.original, r.maps[-1], constant="nan"))
    np.testing.assert_allclose(r.original, attribution.saliency(model, x, [0, 1]))  # the model works as before


def test_cascading_randomization_restores_weights_when_the_method_fails():
    model = block_model()
    before = weights_of(model)
    calls = []

    def failing(m, images, class_index):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return attribution.saliency(m, images, class_index)

    with pytest.raises(RuntimeError, match="boom"):
        faithfulness.cascading_randomization(model, np.ones((1, 6, 6, 1), np.float32), failing)
    assert all(np.array_equal(v, before[k]) for k, v in weights_of(model).items())


def test_random_logit_explains_another_class(tiny):
    x = np.random.default_rng(6).normal(size=(3, 4, 4, 1)).astype(np.float32)
    top = attribution.scores(tiny, x)[1]
    r = faithfulness.random_logit(tiny, x, attribution.saliency)
    assert r.classes.tolist() == (1 - top).tolist()  # two classes: the other one
    np.testing.assert_allclose(r.maps[0], attribution.saliency(tiny, x, r.classes))
    np.testing.assert_allclose(r.spearman[0], faithfulness.spearman(r.original, r.maps[0], constant="nan"))


def test_random_logit_never_draws_the_explained_class_and_reaches_every_other():
    inp = keras.Input((3, 3, 1))
    model = keras.Model(inp, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(inp)), name="five")
    x = np.zeros((200, 3, 3, 1), np.float32)
    explained = np.arange(200, dtype=np.int32) % 5
    ramp = np.arange(9.0).reshape(1, 3, 3)

    def method(m, images, class_index):  # cheap: the check's class draw is what is tested
        return np.repeat(ramp, len(images), 0) * (1 + np.asarray(class_index)[:, None, None])

    r = faithfulness.random_logit(model, x, method, explained, seed=1)
    assert (r.classes != explained).all()  # a map compared with itself would pass the check for any method
    for c in range(5):
        assert set(r.classes[explained == c]) == set(range(5)) - {c}


def test_embedded_model_stages_go_from_the_head_to_the_stem(lite0):
    names = [n for n, _ in faithfulness.layer_stages(lite0)]
    assert names[:3] == ["logits", "top", "block7a"] and names[-2:] == ["block1a", "stem"] and len(names) == 19


def test_bad_arguments_give_clear_errors(toy):
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        faithfulness.deletion(toy, X_TOY, SAL, steps=0)
    with pytest.raises(ValueError, match="one per image"):
        faithfulness.deletion(toy, X_TOY, np.concatenate([SAL, SAL]))
    with pytest.raises(ValueError, match="substrate must be"):
        faithfulness.insertion(toy, X_TOY, SAL, substrate="noise")
    with pytest.raises(ValueError, match="mode must be"):
        faithfulness.causal_curves(toy, X_TOY, SAL, modes=("both",))
    with pytest.raises(ValueError, match="fractions must be"):
        faithfulness.road(toy, X_TOY, SAL, fractions=(0.0, 0.5))
    with pytest.raises(ValueError, match="NaN"):
        faithfulness.deletion(toy, X_TOY, SAL * np.nan)
    with pytest.raises(ValueError, match="no layer with weights named"):
        faithfulness.layer_stages(toy, [["nope"]])
    with pytest.raises(ValueError, match="same shape"):
        faithfulness.spearman(np.zeros((1, 3, 3)), np.zeros((1, 3, 4)))


def test_random_logit_draws_among_the_classes_of_the_output_it_explains(two_heads):
    # Output 1 has 3 classes (output 0 has 2): the random class is drawn among output 1's, and both maps are
    # output 1's input gradients, known by hand (conftest.two_heads), not output 0's.
    from test_attribution import head1_oracle, tiny_input

    x = np.concatenate([tiny_input(), -tiny_input(), tiny_input()])
    logits, grads = head1_oracle(x)
    with pytest.raises(ValueError, match=r"2 outputs.*output="):
        faithfulness.random_logit(two_heads, x, attribution.saliency)
    r = faithfulness.random_logit(two_heads, x, attribution.saliency, output="head1", seed=3)
    explained = logits.argmax(1)  # [1, 0, 1]
    draw = np.random.default_rng(3).integers(1, 3, size=3)
    assert r.classes.tolist() == ((explained + draw) % 3).tolist()
    assert (r.classes != explained).all() and 2 in r.classes.tolist()  # class 2 exists only in output 1

    def saliency_oracle(classes):
        g = np.abs(np.stack([grads[c, i] for i, c in enumerate(classes)]))
        return g / g.max(axis=(1, 2), keepdims=True)

    np.testing.assert_allclose(r.original, saliency_oracle(explained), atol=1e-5)
    np.testing.assert_allclose(r.maps[0], saliency_oracle(r.classes), atol=1e-5)
    np.testing.assert_allclose(r.spearman[0], faithfulness.spearman(r.original, r.maps[0], constant="nan"))
    out0 = faithfulness.random_logit(two_heads, x, attribution.saliency, output=0, seed=3)
    assert set(out0.classes.tolist()) <= {0, 1} and not np.allclose(out0.original, r.original)
