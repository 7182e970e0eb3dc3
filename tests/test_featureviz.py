import numpy as np
import pytest
import tensorflow as tf

from helpers import featureviz as fv
from helpers import images


def test_lucent_constants():
    # lucent/optvis/param/color.py and spatial.py
    raw = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
    np.testing.assert_allclose(fv.COLOR_CORRELATION_NORMALIZED, raw / np.linalg.norm(raw, axis=0).max(), rtol=1e-6)
    f = fv.rfft2d_freqs(4, 4)
    assert f.shape == (4, 3) and f[0, 0] == 0 and np.isclose(f[2, 2], np.sqrt(0.5))
    np.testing.assert_allclose(fv.fourier_scale(4, 4), 1 / np.maximum(f, 0.25), rtol=1e-6)


def test_fourier_image_is_lucents_orthonormal_inverse_fft():
    rng = np.random.default_rng(0)
    size = 8
    spec = rng.standard_normal((2, 3, size, size // 2 + 1, 2)).astype(np.float32)
    got = fv._to_rgb01(tf.constant(spec), size, "fourier").numpy()
    c = (spec[..., 0] + 1j * spec[..., 1]) * fv.fourier_scale(size, size)
    img = np.fft.irfftn(c, s=(size, size), norm="ortho") / 4.0  # (B, 3, H, W), as lucent
    img = np.einsum("bchw,dc->bhwd", img, fv.COLOR_CORRELATION_NORMALIZED)
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-img)), atol=1e-5)


def test_random_transforms_per_image_and_bounded():
    x = np.zeros((16, 33, 33, 3), np.float32)
    x[:, 16, 16] = 1.0  # a dot at the centre
    out = fv.random_transforms(tf.constant(x), tf.constant([0, 1])).numpy()
    assert out.shape == (16, 33 + 2 * fv.PAD, 33 + 2 * fv.PAD, 3)
    again = fv.random_transforms(tf.constant(x), tf.constant([0, 1])).numpy()
    np.testing.assert_array_equal(out, again)
    w = np.clip(out[..., 0] - 0.0, 0, None)
    w = np.where(w > 0.05, w, 0)  # ignore the grey fill outside the padded square
    ys, xs = np.mgrid[: out.shape[1], : out.shape[2]]
    cy = (w * ys).sum((1, 2)) / w.sum((1, 2))
    cx = (w * xs).sum((1, 2)) / w.sum((1, 2))
    centre = (out.shape[1] - 1) / 2
    shift = np.hypot(cy - centre, cx - centre)
    # jitter 8 then 4 (centred): at most 4 + 2 px per axis; the dot sits at the rotation/scale centre
    assert shift.max() <= np.hypot(6, 6) + 0.5
    assert len({(round(a, 1), round(b, 1)) for a, b in zip(cy, cx)}) > 4  # each image its own draw
    grey = fv.random_transforms(tf.fill((2, 20, 20, 3), 0.5), tf.constant([3, 4])).numpy()
    np.testing.assert_allclose(grey, 0.5, atol=1e-6)  # padding and fill are grey


def test_objectives_by_hand_on_the_tiny_model(tiny):
    x = np.arange(32, dtype=np.float32).reshape(2, 4, 4, 1) / 32.0
    kw = {"value_range": (0.0, 1.0)}
    conv = 2 * x[..., 0]
    np.testing.assert_allclose(fv.objective_values(tiny, fv.channel("conv", 0), x, **kw), conv.mean((1, 2)), rtol=1e-5)
    np.testing.assert_allclose(fv.objective_values(tiny, fv.neuron("conv", 0), x, **kw), conv[:, 2, 2], rtol=1e-5)
    relu = np.maximum(np.stack([2 * x[..., 0], -x[..., 0]], -1), 0).mean((1, 2))
    logits = relu @ np.array([[1.0, -1.0], [0.5, 2.0]]) + np.array([0.1, -0.1])
    np.testing.assert_allclose(fv.objective_values(tiny, fv.class_logit(1), x, **kw), logits[:, 1], rtol=1e-5)
    per_image = fv.objective_values(tiny, fv.class_logit([1, 0]), x, **kw)
    np.testing.assert_allclose(per_image, [logits[0, 1], logits[1, 0]], rtol=1e-5)
    both = fv.objective_values(tiny, fv.channel("conv", 0) - 3 * fv.neuron("conv", 0), x, **kw)
    np.testing.assert_allclose(both, conv.mean((1, 2)) - 3 * conv[:, 2, 2], rtol=1e-5)


def test_diversity_is_minus_the_gram_similarity(tiny):
    same = np.full((3, 4, 4, 1), 0.5, np.float32)
    # identical images: unit-norm Gram matrices coincide, each image scores -(B - 1)
    np.testing.assert_allclose(fv.objective_values(tiny, fv.diversity("relu"), same, (0, 1)), -2.0, rtol=1e-5)
    x = np.zeros((2, 4, 4, 1), np.float32)
    x[0], x[1] = 0.5, -0.5  # relu channel 0 fires on one image, channel 1 on the other: orthogonal Grams
    np.testing.assert_allclose(fv.objective_values(tiny, fv.diversity("relu"), x, (0, 1)), 0.0, atol=1e-6)


def test_bad_inputs_fail_clearly(lite0):
    with pytest.raises(ValueError, match="no layer named"):
        fv.visualize(lite0, fv.channel("nope", 0), steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match=r"out of range.*\[0, 32\)"):
        fv.visualize(lite0, fv.channel("stem_conv", 32), steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        fv.visualize(lite0, fv.class_logit([3, 1000]), steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match="1x1 maps"):
        fv.visualize(lite0, fv.channel("top_conv", 0), steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match="steps"):
        fv.visualize(lite0, fv.channel("stem_conv", 0), steps=0, size=32, progress=False)
    with pytest.raises(ValueError, match="param"):
        fv.visualize(lite0, fv.channel("stem_conv", 0), steps=1, size=32, param="wavelet", progress=False)
    with pytest.raises(ValueError, match="batch >= 2"):
        fv.visualize(lite0, fv.channel("stem_conv", 0) + fv.diversity("stem_conv"), steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match="different lengths"):
        fv.visualize(lite0, fv.channel("stem_conv", [0, 1]) + fv.neuron("stem_conv", [0, 1, 2]), steps=1, size=32)
    with pytest.raises(ValueError, match="objective must be"):
        fv.visualize(lite0, "channel", steps=1, size=32)


@pytest.mark.parametrize("param", ["pixel", "fourier"])
def test_seeded_and_ascending(lite0, param):
    obj = fv.channel("block2a_expand_conv", [0, 5, 9])
    kw = {"size": 48, "param": param, "progress": False}
    a = fv.visualize(lite0, obj, steps=12, **kw)
    b = fv.visualize(lite0, obj, steps=12, **kw)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.images.shape == (3, 48, 48, 3) and a.images.dtype == np.uint8
    assert not np.array_equal(a.images, fv.visualize(lite0, obj, steps=12, seed=1, **kw).images)
    start = fv.visualize(lite0, obj, steps=1, **kw)
    assert (a.values > start.values).all()
    np.testing.assert_allclose(fv.objective_values(lite0, obj, a.images), a.values, rtol=0.02, atol=0.02)


def test_dataset_examples_are_the_top_cells(lite0):
    photos = np.stack([images.load(images.sample(n), size=224) for n in ("chelsea", "coffee", "astronaut")])
    patches, values, where = fv.dataset_examples(lite0, "block3a_expand_conv", [0, 7], photos, top=2, patch=40)
    assert patches.shape == (2, 2, 40, 40, 3) and values.shape == (2, 2)
    acts = fv._layer_fn(lite0, lite0.get_layer("block3a_expand_conv"))(photos.astype(np.float32) / 127.5 - 1).numpy()
    for c, ch in enumerate([0, 7]):
        assert np.isclose(values[c, 0], acts[..., ch].max(), rtol=1e-5)
        i, r, q = where[c, 0]
        assert np.isclose(acts[i, r, q, ch], values[c, 0], rtol=1e-5)
        stride = 224 // acts.shape[1]
        cy, cx = int((r + 0.5) * stride), int((q + 0.5) * stride)
        if 20 <= cy < 204 and 20 <= cx < 204:  # away from the reflected border the patch is a plain crop
            np.testing.assert_array_equal(patches[c, 0], photos[i, cy - 20 : cy + 20, cx - 20 : cx + 20])
    assert (values[:, 0] >= values[:, 1]).all()
    one, one_values, one_where = fv.dataset_examples(lite0, "block3a_expand_conv", [0, 7], photos, top=3, per_image=1)
    for c, ch in enumerate([0, 7]):  # per_image=1: each photo's best cell, photos ranked by it
        np.testing.assert_allclose(one_values[c], np.sort(acts[..., ch].max(axis=(1, 2)))[::-1], rtol=1e-5)
        assert sorted(one_where[c, :, 0]) == [0, 1, 2]
        i, r, q = one_where[c, 0]
        assert np.isclose(acts[i, r, q, ch], one_values[c, 0], rtol=1e-5)


@pytest.mark.slow
def test_regularised_class_images_survive_random_views(lite0):
    classes = [1, 130, 947]  # goldfish, flamingo, mushroom
    obj = fv.class_logit(classes)
    reg = fv.visualize(lite0, obj, steps=32, size=112, progress=False)
    plain = fv.visualize(lite0, obj, steps=32, size=112, param="pixel", transforms=False, progress=False)
    assert (fv.recognition_rate(lite0, reg.images, classes, views=20) >= 0.9).all()
    assert fv.recognition_rate(lite0, plain.images, classes, views=20).mean() < 0.5


@pytest.mark.slow
def test_channel_patterns_beat_the_best_real_patch(lite0):
    layer, chans = "block6a_expand_bn", [0, 1, 2, 3]  # notebook 02's layer: after the batch norm, sign-true
    photos = np.stack([images.load(images.sample(n), size=224) for n in images.SAMPLES])
    _, best, _ = fv.dataset_examples(lite0, layer, chans, photos)
    vis = fv.visualize(lite0, fv.channel(layer, chans), steps=32, size=128, progress=False)
    maps = fv.layer_activations(lite0, layer, vis.images)
    strongest = np.array([maps[i, ..., c].max() for i, c in enumerate(chans)])
    assert (strongest > best[:, 0]).all()  # like with like: the strongest cell on the pattern vs on any photo


def test_cli_visualize_writes_an_image(tmp_path, capsys):
    from helpers.__main__ import main

    out = tmp_path / "channel.png"
    args = ["visualize", "--layer", "block2a_expand_conv", "--channel", "3", "--steps", "2", "--size", "48"]
    assert main([*args, "--out", str(out)]) == 0
    assert out.is_file() and "block2a_expand_conv channel 3: objective" in capsys.readouterr().out
    assert main(["visualize", "--class", "goldfish", "--steps", "1", "--size", "48", "--out", str(out)]) == 0
    assert "recognised in" in capsys.readouterr().out
    bad = ["visualize", "--layer", "block2a_expand_conv", "--channel", "500", "--steps", "1", "--out", str(out)]
    assert main(bad) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["visualize", "--class", "goldfish", "--layer", "stem_conv", "--out", str(out)]) == 2
    assert main(["visualize", "--channel", "1", "--out", str(out)]) == 2
    assert "needs --layer" in capsys.readouterr().err
