"""The localisation pipeline: models over data sets (the metrics: test_localization_metrics.py)."""

import numpy as np
import pytest

from helpers import localization as L


def test_collect_on_an_empty_split_says_so():
    with pytest.raises(ValueError, match="empty split"):
        L.collect(None, [], {"CAM": lambda m, x, c: x}, progress=False)


def _two_halves():
    """A GAP + dense model whose class-0 CAM is input channel 0 and class-1 CAM channel 1, and one image
    with channel 0 on the left half (predicted: class 0) and a weaker channel 1 on the right half (label: 1)."""
    import keras

    inp = keras.Input((8, 8, 3))
    feats = keras.layers.Conv2D(2, 1, use_bias=False, name="feats")(inp)
    logits = keras.layers.Dense(2, name="logits")(keras.layers.GlobalAveragePooling2D(name="gap")(feats))
    model = keras.Model(inp, logits)
    model.get_layer("feats").set_weights([np.eye(3, 2, dtype="float32")[None, None]])
    model.get_layer("logits").set_weights([np.eye(2, dtype="float32"), np.zeros(2, "float32")])
    x = np.zeros((1, 8, 8, 3), np.float32)
    x[0, :, :4, 0], x[0, :, 4:, 1] = 1.0, 0.5  # logits 0.5 (class 0) and 0.25 (class 1)
    right = np.array([[0.0, 0.5, 1.0, 1.0]])  # the object: the right half
    return model, x, right, np.array([1])


@pytest.mark.parametrize("target, expected_acc", [("label", 1.0), ("predicted", 0.0)])
def test_collect_explains_the_ground_truth_class_as_the_reference_code_does(target, expected_acc):
    import tensorflow as tf

    from helpers import cam

    model, x, right, label = _two_halves()
    methods = {"CAM": lambda m, images, c: cam.cam(m, images, c)}
    got = L.collect(model, [(tf.constant(x), right, label)], methods, size=8, progress=False, target=target)
    assert got["pred"].tolist() == [0] and got["labels"].tolist() == [1] and got["target"] == target
    assert L.max_box_acc(got["ious"]["CAM"][0]) == expected_acc  # label: the right half's map; predicted: the left's
    mask = np.zeros((1, 8, 8), np.uint8)
    mask[0, :, 4:] = 1
    subset = {"images": x, "boxes": right, "labels": label, "masks": mask}
    row = L.trust_scores(model, subset, methods, faithfulness_subset=0, size=8, target=target)["CAM"]
    assert row["max_box_acc"] == expected_acc and (row["pxap"] > 0.9) == (target == "label")
    with pytest.raises(ValueError, match="target"):
        L.collect(model, [(tf.constant(x), right, label)], methods, size=8, progress=False, target="top1")


def test_deletion_follows_the_probability_of_the_class_the_map_explains():
    model, x, right, label = _two_halves()
    mask = np.zeros((1, 8, 8), np.uint8)
    mask[0, :, 4:] = 1
    subset = {"images": x, "boxes": right, "labels": label, "masks": mask}
    same_map = {"right half": lambda m, images, c: mask.astype(np.float32)}  # ignores the class: only the curve differs
    row = {
        t: L.trust_scores(model, subset, same_map, faithfulness_subset=1, steps=4, size=8, target=t)["right half"]
        for t in L.TARGETS
    }
    # deleting the right half removes class 1's evidence: its probability falls, class 0's rises
    assert row["label"]["deletion_auc"] < row["predicted"]["deletion_auc"]
    each = L.trust_scores(model, subset, same_map, faithfulness_subset=1, steps=4, size=8, per_image=True)
    assert each["right half"]["per_image"]["deletion_auc"].tolist() == [row["label"]["deletion_auc"]]


def test_default_methods_on_a_nested_backbone_have_unique_descriptive_names():
    import keras

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="fine")(inp)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="coarse")(x)
    backbone = keras.Model(inp, x, name="backbone")
    outer_in = keras.Input((16, 16, 3))
    y = keras.layers.GlobalAveragePooling2D()(backbone(outer_in))
    model = keras.Model(outer_in, keras.layers.Dense(3, name="logits")(y))
    methods = L.default_methods(model)  # model.get_layer("coarse") would fail: it is nested
    assert list(methods) == ["CAM", "Grad-CAM (coarse, 8x8)", "Grad-CAM (fine, 16x16)", "Grad-CAM++ (coarse, 8x8)"]
    with pytest.raises(ValueError, match="earlier one"):
        L.default_methods(model, earlier_layer="coarse")
    maps = methods["Grad-CAM (fine, 16x16)"](model, np.random.default_rng(0).random((2, 16, 16, 3)), None)
    assert maps.shape == (2, 16, 16)


def test_format_table_and_report():
    row = {
        "max_box_acc": 0.9, "max_box_acc_v2": 0.8, "box_acc_val_tau": 0.85, "box_acc_v2_val_tau": 0.75,
        "mean_iou": 0.7, "tau": 0.2, "tau_at_max": 0.3, "val_curve": [0.1], "test_curve": [0.2],
    }  # fmt: skip
    text = L.format_table({"CAM": row})
    assert "CAM" in text and "0.900" in text and "MaxBoxAccV2" in text and "τ 0.200" in text
    assert L.report({"CAM": row}) == {"CAM": {k: row[k] for k in L.REPORT_KEYS if k in row}}
    centre = L.centre_baseline(L.centre_boxes(10, 0.4), L.centre_boxes(10, 0.4))
    assert "side 0.40" in L.format_table({"centre box": centre})  # the centre box row names its side, not a tau
