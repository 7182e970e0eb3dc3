import json
import socket

import numpy as np
import pytest

from helpers import images, models

NAME = "efficientnet_lite0"


def top(model, sample, k=3):
    x = models.preprocess(NAME, images.sample(sample))
    return [name for _, name, _ in models.decode(model.predict(x, verbose=0), top=k)[0]]


def test_embedded_model_is_a_1000_way_softmax(lite0):
    assert lite0.input_shape == (None, 224, 224, 3)
    assert lite0.output_shape == (None, 1000)
    assert lite0.get_layer("logits").activation.__name__ == "linear"
    assert lite0.layers[-1].name == "predictions"
    assert models.spec(NAME).last_conv_layer in [lay.name for lay in lite0.layers]


def test_chelsea_top3_are_the_three_cats(lite0):
    assert top(lite0, "chelsea") == ["Egyptian cat", "tiger cat", "tabby"]


def test_coffee_is_espresso(lite0):
    assert top(lite0, "coffee", 1) == ["espresso"]


def test_grace_hopper_wears_a_military_uniform(lite0):
    assert top(lite0, "grace_hopper", 1) == ["military uniform"]


def test_motorcycle_is_a_moped_or_scooter(lite0):
    assert top(lite0, "motorcycle", 1)[0] in ("moped", "motor scooter")


def test_probabilities_sum_to_one_and_decode_orders(lite0):
    x = models.preprocess(NAME, np.stack([images.sample("coffee")[:200, :200]] * 2))
    p = lite0.predict(x, verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    d = models.decode(p, top=5)
    assert len(d) == 2 and len(d[0]) == 5
    assert [t[2] for t in d[0]] == sorted([t[2] for t in d[0]], reverse=True)


def test_preprocess_any_size_and_range():
    x = models.preprocess(NAME, np.zeros((3, 50, 70, 3), np.uint8) + 255)
    assert x.shape == (3, 224, 224, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x, (255 - 127) / 128, atol=1e-5)
    assert models.preprocess(NAME, np.zeros((10, 10, 3), np.uint8)).shape == (1, 224, 224, 3)
    with pytest.raises(ValueError, match="RGB"):
        models.preprocess(NAME, np.zeros((2, 10, 10), np.uint8))


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        models.load("alexnet")


def test_class_index_by_name_and_number():
    assert models.class_index("Egyptian cat") == 285
    assert models.class_index("285") == 285
    with pytest.raises(ValueError, match="out of range"):
        models.class_index(1000)
    with pytest.raises(ValueError, match="did you mean"):
        models.class_index("cat")


def test_a_misspelt_class_name_gets_the_close_names():
    with pytest.raises(ValueError, match="did you mean.*'tabby'"):
        models.class_index("tabbby")


@pytest.mark.parametrize("name, indices", [("crane", (134, 517)), ("cardigan", (264, 474)), ("maillot", (638, 639))])
def test_a_name_of_two_classes_lists_both_and_asks_for_the_index(name, indices):
    with pytest.raises(ValueError, match="2 ImageNet classes") as err:
        models.class_index(name)
    assert all(str(i) in str(err.value) for i in indices)
    assert [models.class_index(str(i)) for i in indices] == list(indices)


def test_normalize_input_is_the_models_own_and_does_not_resize():
    x = np.array([[[[0.0, 127.0, 255.0]]]], np.float32)
    np.testing.assert_allclose(models.normalize_input(NAME, x), [[[[-127 / 128, 0.0, 1.0]]]])
    caffe = models.normalize_input("resnet50", np.zeros((1, 5, 7, 3), np.float32))  # BGR minus the ImageNet means
    assert caffe.shape == (1, 5, 7, 3)
    np.testing.assert_allclose(np.asarray(caffe)[0, 0, 0], [-103.939, -116.779, -123.68], atol=1e-3)


def test_sha_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "efficientnet-lite0.pth"
    data = bytearray(models.weights_file().read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(models, "weights_file", lambda: bad)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(models.WeightsUnavailableError, match="corrupt"):
        models.load(NAME)


def test_cache_is_used_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch, lite0):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    first = models.load(NAME)
    cached = list(tmp_path.glob("*.npz"))
    assert len(cached) == 1 and cached[0].with_suffix(".json").is_file()

    calls = []
    real = models._read_verified
    monkeypatch.setattr(models, "_read_verified", lambda *a: calls.append(1) or real(*a))
    models.load(NAME)
    assert calls == [], "an intact cache must not re-read the .pth"

    blob = bytearray(cached[0].read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    cached[0].write_bytes(bytes(blob))
    again = models.load(NAME)
    assert calls == [1], "a damaged cache must be detected and rebuilt"
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first.get_weights(), lite0.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_cache_sidecar_that_is_not_an_object_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(models, "_read_verified", lambda *a: calls.append(1) or {})
    monkeypatch.setattr(models, "convert_lite0", lambda state: {"layer": [np.arange(3.0)]})
    monkeypatch.setattr(models, "weights_file", lambda: tmp_path / "unused.pth")
    assert models.cached_lite0_weights()["layer"][0].tolist() == [0, 1, 2]
    (sidecar,) = tmp_path.glob("*.json")
    models.cached_lite0_weights()
    assert calls == [1], "an intact cache is used"
    sidecar.write_text(json.dumps(["not", "an", "object"]))
    assert models.cached_lite0_weights()["layer"][0].tolist() == [0, 1, 2]
    assert calls == [1, 1], "the cache was rebuilt"
    assert isinstance(json.loads(sidecar.read_text()), dict)


def _hand_made_cache(directory, arrays: dict):
    """A cache whose sidecar vouches for it (right SHA-256s), holding only ``arrays``."""
    path = directory / f"efficientnet_lite0_v{models.CACHE_VERSION}.npz"
    np.savez(path, **arrays)
    path.with_suffix(".json").write_text(
        json.dumps({"sha256": models.sha256(path), "source": models.EFFICIENTNET_LITE0_SHA256})
    )
    return path


@pytest.mark.parametrize("damage", ["only the logits", "a wrong shape"])
def test_a_cache_missing_layers_or_with_wrong_shapes_is_rebuilt(tmp_path, monkeypatch, lite0, damage):
    # an intact-looking cache holding only `logits` used to leave the backbone random: a confident wrong answer
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    logits = lite0.get_layer("logits").get_weights()
    if damage == "only the logits":
        path = _hand_made_cache(tmp_path, {"logits/0": logits[0], "logits/1": logits[1]})
    else:
        arrays = {f"{lay.name}/{i}": w for lay in lite0.layers for i, w in enumerate(lay.get_weights())}
        arrays["top_conv/0"] = arrays["top_conv/0"][..., :640]  # half the channels
        path = _hand_made_cache(tmp_path, arrays)
    calls = []
    real = models._read_verified
    monkeypatch.setattr(models, "_read_verified", lambda *a: calls.append(1) or real(*a))
    model = models.load(NAME)
    assert calls == [1], "the cache must be rebuilt from the .pth"
    for a, b in zip(model.get_weights(), lite0.get_weights()):
        np.testing.assert_array_equal(a, b)
    with np.load(path) as z:
        assert len(z.files) == len(lite0.get_weights())  # the rebuilt cache holds every layer
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.with_suffix(".json").name, path.name]


def test_a_cache_write_that_fails_leaves_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(models, "_read_verified", lambda *a: {})
    monkeypatch.setattr(models, "convert_lite0", lambda state: {"layer": [np.arange(3.0)]})
    monkeypatch.setattr(models, "weights_file", lambda: tmp_path / "unused.pth")

    def full_disk(file, **arrays):
        open(file, "wb").write(b"PK partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    assert models.cached_lite0_weights()["layer"][0].tolist() == [0, 1, 2]  # still a working model
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["xception", "vgg16", "resnet50", "cats_vs_dogs"])
def test_download_models_fail_fast_offline(name, monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    import keras

    def never_built(*args, **kwargs):
        raise AssertionError("the model was built before the network was found missing")

    for builder in ("Xception", "VGG16", "ResNet50"):
        monkeypatch.setattr(keras.applications, builder, never_built)
    monkeypatch.setattr(keras.models, "load_model", never_built)
    with pytest.raises(models.WeightsUnavailableError) as err:
        models.load(name)
    msg = str(err.value)
    assert "could not download" in msg and "efficientnet_lite0" in msg
    assert "http" not in msg.split("(")[0]


def test_missing_weights_file_is_clear(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "weights_file", lambda: tmp_path / "nope.pth")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "c"))
    with pytest.raises(models.WeightsUnavailableError, match="not found"):
        models.load(NAME)


def test_weights_file_hash_is_the_documented_one():
    assert models.sha256(models.weights_file()) == models.EFFICIENTNET_LITE0_SHA256
