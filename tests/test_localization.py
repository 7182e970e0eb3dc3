import numpy as np
import pytest

from helpers import localization as L


def test_box_ious_oracle_largest_vs_all_regions():
    h = np.zeros((1, 10, 10), np.float32)
    h[0, 0:2, 0:2] = 0.5  # small region, exactly the ground truth
    h[0, 5:10, 5:10] = 1.0  # large region elsewhere
    gt = np.array([[0.0, 0.0, 0.2, 0.2]])
    large, best = L.box_ious(h, gt, thresholds=np.array([0.3, 0.7]))
    assert large[0, 0] == 0.0  # the largest region misses the object
    assert best[0, 0] == pytest.approx(1.0)  # but one of all the regions matches it
    assert best[0, 1] == 0.0  # above 0.7 only the large region is left


def test_box_ious_empty_map_scores_zero():
    large, best = L.box_ious(np.zeros((2, 5, 5)), np.tile([0, 0, 1, 1], (2, 1)))
    assert (large == 0).all() and (best == 0).all()


def test_box_acc_and_choice_of_tau():
    thresholds = np.array([0.1, 0.2, 0.3])
    val_large = np.array([[0.4, 0.6, 0.2], [0.3, 0.7, 0.9]])
    picks = L.choose_taus((val_large, val_large), thresholds)
    assert picks["tau"] == 0.2  # BoxAcc(., 0.5) = [0, 1, 0.5]
    assert picks["val_curve"] == [0.0, 1.0, 0.5]
    # delta 0.3: BoxAcc [1, 1, 0.5], tie broken by mean IoU (0.35 < 0.65)
    assert picks["tau_v2"] == {0.3: 0.2, 0.5: 0.2, 0.7: 0.2}
    taus = L.test_thresholds(picks)
    np.testing.assert_allclose(taus, [0.2])
    test_large = np.array([[0.45], [0.75]])  # at tau 0.2
    s = L.summarize(picks, (test_large, test_large))
    assert s["max_box_acc"] == 0.5  # [0.45, 0.75] >= 0.5
    assert s["mean_iou"] == pytest.approx(0.6)
    # V2: delta .3 -> 1.0; delta .5 -> 0.5; delta .7 -> 0.5
    assert s["max_box_acc_v2"] == pytest.approx(2 / 3)


def test_centre_baseline_is_perfect_on_centred_objects():
    gt = L.centre_boxes(10, 0.4)
    r = L.centre_baseline(gt, gt)
    assert r["max_box_acc"] == 1.0 and r["tau"] == pytest.approx(0.4)


def test_centre_baseline_fails_on_corner_objects():
    gt = np.tile([0.0, 0.0, 0.1, 0.1], (5, 1))
    assert L.centre_baseline(gt, gt)["max_box_acc"] == 0.0


def test_box_ious_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        L.box_ious(np.full((1, 3, 3), np.nan), np.array([[0, 0, 1, 1]]))
    with pytest.raises(ValueError, match="need"):
        L.box_ious(np.zeros((2, 3, 3)), np.array([[0, 0, 1, 1]]))


def test_format_table():
    row = {"max_box_acc": 0.9, "max_box_acc_v2": 0.8, "mean_iou": 0.7, "tau": 0.2}
    text = L.format_table({"CAM": row})
    assert "CAM" in text and "0.900" in text and "MaxBoxAccV2" in text
