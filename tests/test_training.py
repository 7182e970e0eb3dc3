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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    ck = root / "tiny.keras"
    model, hist = training.train_cam_model(
        "toy_cars/tiny", input_size=64, head_epochs=1, fine_tune_epochs=1, batch_size=8,
        checkpoint=ck, data_dir=root / "tfds",
    )  # fmt: skip
    return model, hist, ck, root


def test_training_runs_both_stages_and_saves(trained):
    model, hist, ck, _ = trained
    assert len(hist["loss"]) == 2 and len(hist["val_accuracy"]) == 2
    assert ck.is_file() and json.loads(ck.with_suffix(".json").read_text())["settings"]["input_size"] == 64
    assert model.output_shape == (None, 8)


def test_checkpoint_is_reused_with_the_same_settings(trained, capsys, monkeypatch):
    model, _, ck, root = trained
    monkeypatch.setattr(training, "make_pipeline", lambda *a, **k: pytest.fail("must not train again"))
    again, _ = training.train_cam_model(
        "toy_cars/tiny", input_size=64, head_epochs=1, fine_tune_epochs=1, batch_size=8,
        checkpoint=ck, data_dir=root / "tfds",
    )  # fmt: skip
    assert "reusing" in capsys.readouterr().out
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_evaluate_end_to_end_on_tiny(trained):
    model, _, _, root = trained
    (val, test), _ = datasets.load("toy_cars/tiny", split=("validation", "test"), data_dir=root / "tfds")
    result = localization.evaluate(model, val, test, "efficientnet_lite0", 64, progress=False)
    table = result["methods"]
    assert "CAM" in table and "centre box" in table and "Grad-CAM++" in table
    for r in table.values():
        assert 0.0 <= r["max_box_acc"] <= 1.0 and 0.0 <= r["mean_iou"] <= 1.0
    assert result["test"]["boxes"].shape == (8, 4)


def test_pipeline_with_boxes_for_evaluation_only(trained):
    _, _, _, root = trained
    (test,), _ = datasets.load("toy_cars/tiny", split=("test",), data_dir=root / "tfds")
    x, box, label = next(iter(training.make_pipeline(test, "efficientnet_lite0", 64, 4, with_boxes=True)))
    assert x.shape == (4, 64, 64, 3) and box.shape == (4, 4) and label.shape == (4,)
    assert -1.0 <= float(x.numpy().min()) and float(x.numpy().max()) <= 1.0
    with pytest.raises(ValueError, match="flips images without their boxes"):
        training.make_pipeline(test, "efficientnet_lite0", 64, training=True, with_boxes=True)
