"""Exact masks of toy_cars (1.1.0) and the mask metrics: PxAP and the pointing game."""

import hashlib

import numpy as np
import pytest

from helpers import localization as loc
from helpers.datasets import render

# renders of toy_cars 1.0.0 (before masks existed): seed, label, sha256 of the image bytes, box
RENDERS_1_0_0 = [
    (
        (0, 0, 0),
        5,
        "1ad726b2efa04ebb91159d4e7591ae0891e8d220c1a4bc05e8c3223f56101eec",
        [0.5580357313156128, 0.0, 0.9196428656578064, 0.9624999761581421],
    ),
    (
        (0, 0, 1),
        3,
        "db76c5b763e889b70fa0ef7bbe083e007005ebbe8220313622286a41aebbc24c",
        [0.5535714030265808, 0.3656249940395355, 0.9732142686843872, 0.9593750238418579],
    ),
    (
        (0, 1, 7),
        3,
        "0c14756379948da6e9d3474d447c21614ad624394a6afb7d95213cdb08d809d5",
        [0.1517857164144516, 0.0729166641831398, 0.6651785969734192, 0.8298611044883728],
    ),
    (
        (0, 2, 3),
        4,
        "7d63f522f322d49e405938537f920b3a92d9c37ba0d4d0dfaf0f06130fdc83ef",
        [0.6339285969734192, 0.0357142873108387, 0.9464285969734192, 1.0],
    ),
    (
        (0, 0, 11),
        5,
        "07fa5205b45731df55f5a03e5e7f8c5206a1f9fe3a9f9da00a81495663bb9d9d",
        [0.6830357313156128, 0.0034722222480922937, 1.0, 0.96875],
    ),
    (
        (0, 2, 42),
        2,
        "7c77c8464194c1b070f9833cc603385675c3cca19cf9ef1892f584582afd4483",
        [0.5044642686843872, 0.0486111119389534, 0.8705357313156128, 0.7534722089767456],
    ),
]


@pytest.mark.parametrize(("seed", "label", "digest", "box"), RENDERS_1_0_0)
def test_masks_leave_the_1_0_0_images_labels_and_boxes_unchanged(seed, label, digest, box):
    image, lab, bx, mask = render.render_with_mask(np.random.default_rng(list(seed)))
    assert hashlib.sha256(image.tobytes()).hexdigest() == digest
    assert lab == label and bx.tolist() == box
    again = render.render(np.random.default_rng(list(seed)))
    np.testing.assert_array_equal(again[0], image)


def test_the_mask_lies_in_the_box_and_fills_a_plausible_share_of_it():
    full = 0
    for i in range(30):
        image, _, box, mask = render.render_with_mask(np.random.default_rng([3, 0, i]))
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        h, w = mask.shape
        y0, x0, y1, x1 = np.round(box * [h, w, h, w]).astype(int)
        assert mask[:y0].sum() == mask[y1:].sum() == mask[:, :x0].sum() == mask[:, x1:].sum() == 0
        share = mask[y0:y1, x0:x1].mean()
        assert 0.3 < share <= 1.0, f"the vehicle fills {share:.0%} of its box"
        # the box is the whole vehicle's: the mask reaches its four sides unless an occluder hides one
        ys, xs = np.nonzero(mask)
        full += (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == (y0, x0, y1, x1)
    assert full >= 25


def _average_precision(scores, labels):
    """Exact AP (scikit-learn's definition): Σ (R_k − R_{k−1}) P_k over distinct score thresholds."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each distinct score
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    precision, recall = tp / (tp + fp), tp / y.sum()
    return float(np.sum(np.diff(np.r_[0, recall]) * precision))


def test_pxap_is_the_average_precision_of_the_pixels_within_the_binning():
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 32, 32), np.uint8)
    masks[:, 8:20, 10:26] = 1
    maps = np.clip(0.35 * masks + rng.random(masks.shape) * 0.75, 0, 1)
    exact = _average_precision(maps.ravel(), masks.ravel().astype(float))
    assert 0.5 < exact < 0.99
    assert loc.pxap(maps, masks) == pytest.approx(exact, abs=2e-3)
    # a coarser grid bins more pixels together and moves further from the exact value
    assert abs(loc.pxap(maps, masks, np.arange(0, 1, 0.1)) - exact) > abs(loc.pxap(maps, masks) - exact)


def test_pxap_is_one_for_a_perfect_map_and_the_positive_share_for_noise():
    masks = np.zeros((2, 40, 40), np.uint8)
    masks[:, 5:15, 5:25] = 1
    assert loc.pxap(masks.astype(float), masks) == pytest.approx(1.0)
    noise = loc.random_maps(2, 40, seed=1)
    assert loc.pxap(noise, masks) == pytest.approx(masks.mean(), abs=0.03)
    ignored = masks.copy()
    ignored[:, 30:, 30:] = 255  # the reference's "ignore" value: neither positive nor negative
    ap, (precision, recall) = loc.pxap(masks.astype(float), ignored, return_curve=True)
    assert ap == pytest.approx(1.0) and recall[-1] == 1.0


def test_mask_metrics_refuse_empty_masks_and_bad_maps():
    maps = np.random.default_rng(0).random((2, 16, 16))
    empty = np.zeros((2, 16, 16), np.uint8)
    with pytest.raises(ValueError, match="no object pixel"):
        loc.pxap(maps, empty)
    with pytest.raises(ValueError, match="empty masks"):
        loc.pointing_hits(maps, empty)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        loc.pxap(maps * 2, np.ones_like(empty))
    with pytest.raises(ValueError, match="same shape"):
        loc.pxap(maps, empty[:, :8])


def test_pointing_game_counts_a_maximum_on_or_near_the_object():
    masks = np.zeros((3, 64, 64), np.uint8)
    masks[:, 20:30, 20:30] = 1
    maps = np.zeros((3, 64, 64))
    maps[0, 25, 25] = 1  # on the object
    maps[1, 25, 40] = 1  # 11 pixels right of it
    maps[2, 60, 60] = 1  # far away (30 pixels down, 30 right: 42 pixels)
    assert loc.pointing_hits(maps, masks).tolist() == [True, True, False]
    assert loc.pointing_hits(maps, masks, tolerance=0).tolist() == [True, False, False]
    assert loc.pointing_game(maps, masks, tolerance=10.9) == pytest.approx(1 / 3)
    assert loc.pointing_game(maps, masks, tolerance=11) == pytest.approx(2 / 3)
    assert loc.POINTING_TOLERANCE == 15
    assert loc.pointing_hits(loc.centre_maps(3, 64), masks).tolist() == [True, True, True]  # centre 32, 32


def test_mask_scores_resize_maps_and_masks_to_the_image():
    masks = np.zeros((2, 112, 160, 1), np.uint8)
    masks[:, 40:80, 60:120] = 1
    coarse = np.zeros((2, 7, 7))
    coarse[:, 3, 4] = 1  # the 7x7 cell over the object
    r = loc.mask_scores(coarse, masks, size=224)
    assert r["pointing_game"] == 1.0 and r["pxap"] > 0.5
    assert loc.resize_masks(masks, 224).shape == (2, 224, 224)


def test_masked_subset_and_trust_scores_on_toy_cars(tmp_path):
    from helpers import datasets

    (test,), _ = datasets.load("toy_cars/tiny", split=("test",), data_dir=tmp_path)
    sub = loc.masked_subset(test, "efficientnet_lite0", 64, 6)
    assert sub["images"].shape == (6, 64, 64, 3) and sub["masks"].shape == (6, 64, 64)
    assert sub["boxes"].shape == (6, 4) and sub["labels"].shape == (6,)
    masks = sub["masks"]
    methods = {  # the mask itself must score perfectly; noise scores near chance
        "oracle": lambda m, x, c: masks.astype(np.float32),
        "random": lambda m, x, c: loc.random_maps(len(x), 64),
    }
    table = loc.trust_scores(None, sub, methods, faithfulness_subset=0, size=64)
    assert table["oracle"]["pxap"] == pytest.approx(1.0) and table["oracle"]["pointing_game"] == 1.0
    assert table["oracle"]["max_box_acc"] > 0.8
    assert table["random"]["pxap"] < 0.6 and "deletion_auc" not in table["random"]
    with pytest.raises(ValueError, match="no 'mask' feature"):
        loc.masked_subset(test.map(lambda e: {k: v for k, v in e.items() if k != "mask"}), "efficientnet_lite0", 64, 2)


def test_trust_scores_per_image_hits_by_hand():
    """Two images, object in the right half; per-image box hits and pointing hits are known, and average to the row."""
    masks = np.zeros((3, 64, 64), np.uint8)
    masks[:, :, 32:] = 1
    boxes = np.array([[0.0, 0.5, 1.0, 1.0]] * 3)
    maps = np.zeros((3, 64, 64), np.float32)
    maps[0, :, 32:] = 1  # the object exactly: box IoU 1, maximum on the object
    maps[1, :, :16] = 1  # the left quarter: box IoU 0, maximum 32 pixels from the object (> 15)
    maps[2, 8:56, 28:60] = np.linspace(0.2, 1, 32)  # inside the object, brightest at its right: a hit both ways
    subset = {
        "images": np.zeros((3, 64, 64, 3), np.float32),
        "boxes": boxes,
        "labels": np.zeros(3, int),
        "masks": masks,
    }
    fixed = {"maps": lambda m, x, c: maps}
    row = loc.trust_scores(None, subset, fixed, faithfulness_subset=0, size=64, per_image=True)["maps"]
    each = row["per_image"]
    assert each["box_hit"].tolist() == [True, False, True] and each["pointing"].tolist() == [True, False, True]
    assert each["box_hit"].mean() == row["max_box_acc"] and each["pointing"].mean() == row["pointing_game"]
    largest, _ = loc.box_ious(loc.normalize_scoremaps(maps, 64), boxes)
    assert (largest[:, loc.THRESHOLDS.tolist().index(each["tau"])] >= 0.5).mean() == row["max_box_acc"]
    assert "per_image" not in loc.trust_scores(None, subset, fixed, faithfulness_subset=0, size=64)["maps"]
