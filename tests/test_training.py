import json

import numpy as np
import pytest

from helpers import cam, datasets, localization, training


def test_build_cam_model_is_flat_with_a_gap_dense_head():
    model = training.build_cam_model(num_classes=5, input_size=96, feature_layer="block6a_expand_activation")
    names = [lay.name for lay in model.layers]
    assert names[-4:] == ["gap", "dropout", "logits", "predictions"]
    assert names[-5] == "block6a_expand_activation"
    assert not any(hasattr(lay, "layers") for lay in model.layers), "no nested models"
    assert model.output_shape == (None, 5)
    x = np.random.default_rng(0).normal(size=(2, 96, 96, 3)).astype(np.float32)
    np.testing.assert_allclose(cam.cam(model, x), cam.grad_cam(model, x), atol=1e-4)
    assert cam.cam(model, x).shape == (2, 6, 6)


def test_backbone_keeps_the_imagenet_weights(lite0):
    model = training.build_cam_model(input_size=96)
    np.testing.assert_array_equal(
        model.get_layer("stem_conv").get_weights()[0], lite0.get_layer("stem_conv").get_weights()[0]
    )


def test_unknown_backbone():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        training.build_cam_model("alexnet")


SETTINGS = dict(input_size=64, head_epochs=1, fine_tune_epochs=1, batch_size=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The one training of the unit suite; the CLI test below reuses its checkpoint."""
    root = tmp_path_factory.mktemp("train")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "CHECKPOINT_DIR", root / "ck")
        model, hist = training.train_cam_model("toy_cars/tiny", data_dir=root / "tfds", **SETTINGS)
    return model, hist, root / "ck" / "toy_cars_tiny_efficientnet_lite0.keras", root


def test_training_runs_both_stages_and_saves(trained):
    model, hist, ck, _ = trained
    assert len(hist["loss"]) == 2 and len(hist["val_accuracy"]) == 2
    assert ck.is_file() and json.loads(ck.with_suffix(".json").read_text())["settings"]["input_size"] == 64
    assert model.output_shape == (None, 8)


def test_checkpoint_is_reused_with_the_same_settings(trained, capsys, monkeypatch):
    model, _, ck, root = trained
    monkeypatch.setattr(training, "make_pipeline", lambda *a, **k: pytest.fail("must not train again"))
    again, _ = training.train_cam_model("toy_cars/tiny", checkpoint=ck, data_dir=root / "tfds", **SETTINGS)
    assert "reusing" in capsys.readouterr().out
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_head_stage_is_kept_and_reused_as_the_frozen_model(trained, capsys, monkeypatch):
    model, hist, ck, root = trained
    head = training.head_checkpoint(ck)
    assert head.name == "toy_cars_tiny_efficientnet_lite0_head.keras"
    saved = json.loads(head.with_suffix(".json").read_text())
    assert saved["settings"]["fine_tune_epochs"] == 0 and saved["history"]["loss"] == hist["loss"][:1]
    monkeypatch.setattr(training, "make_pipeline", lambda *a, **k: pytest.fail("must not train again"))
    frozen, _ = training.train_cam_model(
        "toy_cars/tiny", checkpoint=head, data_dir=root / "tfds", **{**SETTINGS, "fine_tune_epochs": 0}
    )
    assert "reusing" in capsys.readouterr().out
    name = "block5a_expand_conv"  # fine-tuned in stage 2: the two models differ there and agree before it
    assert not np.array_equal(frozen.get_layer(name).get_weights()[0], model.get_layer(name).get_weights()[0])
    np.testing.assert_array_equal(
        frozen.get_layer("stem_conv").get_weights()[0], model.get_layer("stem_conv").get_weights()[0]
    )


@pytest.fixture(scope="module")
def evaluated(trained):
    model, _, _, root = trained
    (val, test), _ = datasets.load("toy_cars/tiny", split=("validation", "test"), data_dir=root / "tfds")
    return localization.evaluate(model, val, test, "efficientnet_lite0", 64, progress=False), val, test


def test_evaluate_end_to_end_on_tiny(trained, evaluated):
    model = trained[0]
    result, val, test = evaluated
    table = result["methods"]
    assert len(table) == 5 and "CAM" in table and "centre box" in table
    assert any(n.startswith("Grad-CAM++") for n in table)
    for r in table.values():
        for k in ("max_box_acc", "max_box_acc_v2", "box_acc_val_tau", "box_acc_v2_val_tau", "mean_iou"):
            assert 0.0 <= r[k] <= 1.0
        assert r["max_box_acc"] >= r["box_acc_val_tau"]  # the paper's max over tau bounds the deployable figure
    assert len(table["CAM"]["val_curve"]) == len(localization.THRESHOLDS) == 1000
    assert result["test"]["boxes"].shape == (8, 4)
    with pytest.raises(ValueError, match="empty split"):  # was "need at least one array to concatenate"
        localization.evaluate(model, val, test.take(0), "efficientnet_lite0", 64, progress=False)


def test_localize_cli_reports_both_protocols_as_json(trained, evaluated, monkeypatch, capsys):
    from helpers.__main__ import main

    _, _, ck, root = trained
    monkeypatch.setattr(localization, "evaluate", lambda *a, **k: evaluated[0])  # evaluated above, once
    real = training.train_cam_model
    monkeypatch.setattr(datasets, "DATA_DIR", root / "tfds")
    monkeypatch.setattr(training, "CHECKPOINT_DIR", ck.parent)
    monkeypatch.setattr(training, "train_cam_model", lambda **kw: real(**kw, **SETTINGS))  # reuses the checkpoint
    assert main(["localize", "--dataset", "toy_cars/tiny", "--json"]) == 0
    out = capsys.readouterr().out
    assert "reusing" in out
    table = json.loads(out.strip().splitlines()[-1])["methods"]
    assert set(table["CAM"]) == {"max_box_acc", "max_box_acc_v2", "box_acc_val_tau", "box_acc_v2_val_tau"} | {
        "mean_iou",
        "tau",
    }
    assert "side" in table["centre box"] and "tau" not in table["centre box"]


def test_pipeline_with_boxes_for_evaluation_only(trained):
    _, _, _, root = trained
    (test,), _ = datasets.load("toy_cars/tiny", split=("test",), data_dir=root / "tfds")
    x, box, label = next(iter(training.make_pipeline(test, "efficientnet_lite0", 64, 4, with_boxes=True)))
    assert x.shape == (4, 64, 64, 3) and box.shape == (4, 4) and label.shape == (4,)
    assert -1.0 <= float(x.numpy().min()) and float(x.numpy().max()) <= 1.0
    with pytest.raises(ValueError, match="flips images without their boxes"):
        training.make_pipeline(test, "efficientnet_lite0", 64, training=True, with_boxes=True)


def test_an_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "cam.keras"
    training._save(model, path, {"epochs": 1}, {"loss": [1.0]})
    before = path.read_bytes(), path.with_suffix(".json").read_text()

    def full_disk(self, filepath, *args, **kwargs):
        open(filepath, "wb").write(b"PK partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full_disk)
    model.layers[0].trainable = False  # frozen, as in stage 1
    with pytest.raises(OSError, match="No space left"):
        training._save(model, path, {"epochs": 2}, {"loss": [0.5]})
    assert (path.read_bytes(), path.with_suffix(".json").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.json", "cam.keras"]
    assert not model.layers[0].trainable  # the flags are restored even when the save fails


@pytest.mark.parametrize("first", ["block4a_expand_conv", "dropout"])
def test_one_step_on_the_cached_input_equals_one_step_on_the_image(first):
    """The oracle of the cached stages: the same loss and the same updated weights as a full pass."""
    import keras

    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 32, 32, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    full = training.build_cam_model(num_classes=3, input_size=32, dropout=0.0)
    cached = training.build_cam_model(num_classes=3, input_size=32, dropout=0.0)
    cached.set_weights(full.get_weights())
    trains = None if first == "dropout" else first  # "dropout": stage 1 (the head alone) reads the pooled features
    lower, upper = training.split_at(cached, first)
    for net, model in ((full, full), (upper, cached)):
        training._set_trainable(model, trains)
        sgd = keras.optimizers.SGD(0.1)  # a step proportional to the gradient
        net.compile(optimizer=sgd, loss=keras.losses.SparseCategoricalCrossentropy())
    kernels = ("stem_conv", "block3b_project_conv", "block4a_expand_conv", "logits")
    before = {name: full.get_layer(name).get_weights()[0] for name in kernels}
    loss_full = full.train_on_batch(x, y)
    loss_cached = upper.train_on_batch(np.asarray(lower(x)), y)
    np.testing.assert_allclose(loss_cached, loss_full, rtol=1e-5)
    for after_full, after_cached in zip(full.get_weights(), cached.get_weights()):
        np.testing.assert_allclose(after_cached, after_full, atol=1e-6)
    moved = {name for name in kernels if not np.array_equal(full.get_layer(name).get_weights()[0], before[name])}
    assert moved == ({"logits"} if trains is None else {"block4a_expand_conv", "logits"})  # one real step


def test_the_upper_part_on_float16_cached_inputs_gives_the_full_models_output():
    """Stage 2 stores block3b_add's output in float16: the probabilities differ from the model's by < 1e-3."""
    model = training.build_cam_model(num_classes=8, input_size=64)
    lower, upper = training.split_at(model, "block4a_expand_conv")
    assert lower.output.shape == (None, 8, 8, 40) and upper.layers[1].name == "block4a_expand_conv"
    x = np.random.default_rng(2).normal(size=(4, 64, 64, 3)).astype(np.float32)
    a = np.asarray(lower(x))
    np.testing.assert_allclose(np.asarray(upper(a)), np.asarray(model(x)), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(upper(a.astype(np.float16).astype(np.float32))), np.asarray(model(x)), atol=1e-3
    )


def test_no_cut_where_a_skip_connection_crosses_it():
    model = training.build_cam_model(num_classes=3, input_size=32)
    assert training.split_at(model, "block4b_dwconv") is None  # block4b_add still needs block4a's output
    assert training.split_at(model, "block4b_add") is None  # two inputs
    assert training.split_at(model, "block4b_expand_conv") is not None  # block4a's output is all that crosses


def test_cached_activations_of_mirrors_are_the_lower_part_of_the_mirrored_images():
    model = training.build_cam_model(num_classes=3, input_size=32)
    lower, upper = training.split_at(model, "block4a_expand_conv")
    import keras

    pooled = keras.Model(model.get_layer("block4a_expand_conv").input, model.get_layer("gap").output)
    x = np.random.default_rng(3).normal(size=(5, 32, 32, 3)).astype(np.float32)
    pipe = [(x[:3], np.arange(3)), (x[3:], np.arange(3, 5))]
    acts, feats, labels = training.cache_activations(lower, pooled, pipe, flips=True, store_dtype=np.float32)
    assert acts.shape == (2, 5, 4, 4, 40) and feats.shape == (2, 5, model.get_layer("gap").output.shape[-1])
    np.testing.assert_array_equal(labels, np.arange(5))
    np.testing.assert_allclose(acts[1], np.asarray(lower(x[:, :, ::-1])), atol=1e-5)
    np.testing.assert_allclose(feats[0], np.asarray(pooled(lower(x))), atol=1e-5)
    assert not np.allclose(acts[0], acts[1], atol=1e-3)  # the mirror is another input, not the same one


def test_epoch_plans_are_seeded_and_differ_between_epochs():
    order, flip = training.epoch_plan(100, seed=0, stage=1, epoch=0)
    assert sorted(order) == list(range(100)) and set(flip) == {0, 1}
    again = training.epoch_plan(100, seed=0, stage=1, epoch=0)
    np.testing.assert_array_equal(order, again[0]) and np.testing.assert_array_equal(flip, again[1])
    assert not np.array_equal(order, training.epoch_plan(100, seed=0, stage=1, epoch=1)[0])


@pytest.mark.parametrize(
    "stale", [{"training_code_version": training.TRAINING_CODE_VERSION - 1}, {"dataset_version": "0.0.1"}, {}]
)
def test_a_checkpoint_with_another_key_is_trained_again(trained, tmp_path, monkeypatch, capsys, stale):
    """Settings, data set version and training code version key a checkpoint; any other key trains again."""
    _, _, ck, root = trained
    copy = tmp_path / ck.name
    copy.write_bytes(ck.read_bytes())
    saved = json.loads(ck.with_suffix(".json").read_text())
    assert saved["settings"]["training_code_version"] == training.TRAINING_CODE_VERSION
    assert saved["settings"]["dataset_version"] == "1.1.0"
    if not stale:  # an old checkpoint, from before the key carried the versions
        stale_settings = {k: v for k, v in saved["settings"].items() if not k.endswith("_version")}
    else:
        stale_settings = {**saved["settings"], **stale}
    copy.with_suffix(".json").write_text(json.dumps({**saved, "settings": stale_settings}))

    class Trains(Exception):
        pass

    def trains(*a, **k):
        raise Trains

    monkeypatch.setattr(datasets, "load", trains)
    with pytest.raises(Trains):
        training.train_cam_model("toy_cars/tiny", checkpoint=copy, data_dir=root / "tfds", **SETTINGS)
    assert "trained with other settings: training again" in capsys.readouterr().out
