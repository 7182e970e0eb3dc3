import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers import localization as L

# ---- an independent, straightforward re-implementation of wsolevaluation's evaluation.py ----


def ref_normalize(cam, size):
    """inference.py: cv2.resize(INTER_CUBIC) to the image size, then normalize_scoremap."""
    cam = cv2.resize(np.asarray(cam, np.float32), (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def ref_boxes(scoremap, thresholds, multi_contour_eval):
    """compute_bboxes_from_scoremaps, line by line."""
    height, width = scoremap.shape
    scoremap_image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    out = []
    for threshold in thresholds:
        _, thr = cv2.threshold(scoremap_image, int(threshold * np.max(scoremap_image)), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(thr, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            out.append(np.asarray([[0, 0, 0, 0]]))
            continue
        if not multi_contour_eval:
            contours = [max(contours, key=cv2.contourArea)]
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        out.append(np.asarray(boxes))
    return out


def ref_iou(a, b):
    """calculate_multiple_iou for one box pair, with the +1 convention."""
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1) * max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    den = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return 0.0 if den <= 0 else inter / den


def ref_max_box_acc(scoremaps, gt_boxes, multi_contour_eval, iou_thresholds, thresholds):
    """BoxEvaluator.accumulate + compute: the best BoxAcc over thresholds, per IoU threshold (fractions)."""
    size = scoremaps.shape[1]
    num_correct = {t: np.zeros(len(thresholds)) for t in iou_thresholds}
    for scoremap, (y0, x0, y1, x1) in zip(scoremaps, gt_boxes):
        gt = (int(x0 * size), int(y0 * size), int(x1 * size), int(y1 * size))
        per_threshold = [max(ref_iou(b, gt) for b in bs) for bs in ref_boxes(scoremap, thresholds, multi_contour_eval)]
        for t in iou_thresholds:
            num_correct[t][np.where(np.asarray(per_threshold) >= t / 100)[0]] += 1
    return [(num_correct[t] / len(scoremaps)).max() for t in iou_thresholds]


def random_gt(rng, n):
    y0, x0 = rng.uniform(0, 0.6, n), rng.uniform(0, 0.6, n)
    return np.stack([y0, x0, y0 + rng.uniform(0.05, 0.4, n), x0 + rng.uniform(0.05, 0.4, n)], 1)


def blobs(rng, n, size):
    """Smooth maps with 1-3 Gaussian blobs (several contours at high thresholds, holes at some)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    maps = np.zeros((n, size, size))
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cy, cx, s, a = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.03, 0.2), rng.uniform(0.3, 1)
            maps[i] += a * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
    return maps


@pytest.mark.parametrize("kind", ["random 7x7", "blobs", "noise"])
def test_max_box_acc_matches_the_reference_code(kind):
    rng = np.random.default_rng({"random 7x7": 0, "blobs": 1, "noise": 2}[kind])
    n, size = 12, 48
    raw = {
        "random 7x7": rng.random((n, 7, 7)),
        "blobs": blobs(rng, n, 16),
        "noise": rng.random((n, 24, 24)),
    }[kind]
    gt = random_gt(rng, n)
    thresholds = np.arange(0, 1, 0.01)  # a coarser grid keeps the loop oracle fast
    ref_maps = np.stack([ref_normalize(m, size) for m in raw])
    maps = L.normalize_scoremaps(raw, size)
    np.testing.assert_allclose(maps, ref_maps, atol=1e-6)
    large, best = L.box_ious(ref_maps, gt, thresholds)
    want_v1 = ref_max_box_acc(ref_maps, gt, False, [30, 50, 70], thresholds)
    want_v2 = ref_max_box_acc(ref_maps, gt, True, [30, 50, 70], thresholds)
    assert L.max_box_acc(large) == pytest.approx(want_v1[1])
    assert [L.max_box_acc(large, d) for d in L.DELTAS] == pytest.approx(want_v1)
    assert L.max_box_acc_v2(best) == pytest.approx(np.mean(want_v2))
    # and the IoUs themselves, threshold by threshold
    for i in range(n):
        gt_px = L.gt_pixel_boxes(gt[i], size)
        for j, bs in enumerate(ref_boxes(ref_maps[i], thresholds, True)):
            assert best[i, j] == pytest.approx(max(ref_iou(b, gt_px) for b in bs))
        for j, (b,) in enumerate(ref_boxes(ref_maps[i], thresholds, False)):
            assert large[i, j] == pytest.approx(ref_iou(b, gt_px))
        assert [b.tolist() for b in L.scoremap_boxes(ref_maps[i], thresholds[::7], multi_contour=True)] == [
            b.tolist() for b in ref_boxes(ref_maps[i], thresholds[::7], True)
        ]


def test_constructed_map_oracle_by_hand():
    # 10x10 map: a 2x2 blob (value 1.0) at the top left, a 4x4 plateau (0.6) at the bottom right
    m = np.zeros((1, 10, 10))
    m[0, 0:2, 0:2] = 1.0
    m[0, 5:9, 5:9] = 0.6
    gt = np.array([[0.0, 0.0, 0.2, 0.2]])  # pixels 0..2 inclusive: a 3x3 box, +1 convention
    thresholds = np.array([0.0, 0.5, 0.6, 0.7])
    large, best = L.box_ious(m, gt, thresholds)
    # uint8 values 255 and 153; levels int(tau * 255) = 0, 127, 153, 178; strictly greater
    # tau 0, 0.5: two regions, the largest is the plateau: box [5, 5, 9, 9] (x1 = x + w = 9), no overlap
    # tau 0.6: level 153 drops the plateau (153 > 153 is false): only the blob, box [0, 0, 2, 2] -> IoU 1
    np.testing.assert_allclose(large[0], [0.0, 0.0, 1.0, 1.0])
    # all contours: the blob's box [0, 0, 2, 2] matches the ground truth exactly at every tau
    np.testing.assert_allclose(best[0], [1.0, 1.0, 1.0, 1.0])
    assert L.scoremap_boxes(m[0], [0.5])[0].tolist() == [[5, 5, 9, 9]]
    assert L.max_box_acc(large) == 1.0 and L.max_box_acc_v2(best) == 1.0


# ---- every level's boxes in one call (helpers.localization.level_boxes) vs the reference loop ----


def ref_level(image, level):
    """compute_bboxes_from_scoremaps at one uint8 level: all contours' boxes, and the largest's index."""
    height, width = image.shape
    _, thr = cv2.threshold(image, int(level), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(thr, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return [[0, 0, 0, 0]], 0
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    largest = max(contours, key=cv2.contourArea)  # the reference's rule: the first of equal areas
    return boxes, next(i for i, c in enumerate(contours) if c is largest)


def assert_level_boxes_are_the_reference(image, levels):
    boxes, counts, largest = L.level_boxes(image, levels)
    assert len(counts) == len(largest) == len(levels) and counts.sum() == len(boxes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for level, start, count, k in zip(levels, starts, counts, largest):
        want, want_k = ref_level(image, level)
        assert boxes[start : start + count].tolist() == want, f"level {level}"
        assert k == want_k, f"level {level}"


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24)),
    st.sampled_from([255, 4, 2]),  # any uint8 values, few levels (plateaus, ties), a binary map
)
def test_level_boxes_equal_the_reference_loop_on_random_maps(image, values):
    image = (image % values * (255 // max(values - 1, 1))).astype(np.uint8)
    assert_level_boxes_are_the_reference(image, np.arange(-1, 257))


def course_like_maps(rng, n=4, size=224):
    """CAM-like maps: 7x7 grids (one or two hot cells) upsampled bicubically, and smooth Gaussian blobs."""
    cams = rng.random((n, 7, 7)) ** 3
    return np.concatenate([L.normalize_scoremaps(cams, size), L.normalize_scoremaps(blobs(rng, n, 28), size)])


def test_level_boxes_equal_the_reference_loop_on_course_like_maps():
    rng = np.random.default_rng(22)
    for scoremap in course_like_maps(rng, n=2):
        image = L._quantize(scoremap)
        assert_level_boxes_are_the_reference(image, np.unique(L._levels(image, L.THRESHOLDS)))


def test_box_ious_equal_the_reference_loop_on_course_like_and_noisy_maps():
    rng = np.random.default_rng(5)
    maps = np.concatenate([course_like_maps(rng, n=3, size=96), L.normalize_scoremaps(rng.random((2, 24, 24)), 96)])
    gt = random_gt(rng, len(maps))
    large, best = L.box_ious(maps, gt, L.THRESHOLDS)
    for i, scoremap in enumerate(maps):
        gt_px = L.gt_pixel_boxes(gt[i], 96)
        image = L._quantize(scoremap)
        for j, level in enumerate(L._levels(image, L.THRESHOLDS)):
            if j % 7 and j < 990:  # every 7th tau and the last ones (the reference loop is slow)
                continue
            boxes, k = ref_level(image, level)
            assert large[i, j] == ref_iou(boxes[k], gt_px)
            assert best[i, j] == max(ref_iou(b, gt_px) for b in boxes)


def test_largest_is_by_contour_area_not_pixels_so_a_pixel_count_component_tree_is_not_the_reference():
    # why the boxes do not come from a union-find over pixels tracking pixel counts (issue 22):
    # (1) a 1 x 25 line has 25 pixels and contour area 0; a 3 x 3 square has 9 pixels and area 4
    m = np.zeros((12, 30), np.uint8)
    m[1, 1:26] = 255
    m[5:8, 5:8] = 255
    boxes, counts, largest = L.level_boxes(m, [0])
    assert boxes[largest[0]].tolist() == [5, 5, 8, 8]  # the square, not the line's [1, 1, 26, 2]
    # (2) a one-pixel ring (76 pixels) encloses area 361; a 10 x 10 block (100 pixels) has area 81
    m = np.zeros((24, 40), np.uint8)
    m[1:21, 1:21] = 255
    m[2:20, 2:20] = 0
    m[5:15, 25:35] = 255
    boxes, counts, largest = L.level_boxes(m, [0])
    assert counts[0] == 3 and boxes[largest[0]].tolist() == [1, 1, 21, 21]  # outer ring, hole, block
    assert [1, 1, 21, 21] in boxes.tolist() and [2, 2, 20, 20] not in boxes.tolist()  # the hole's own box
    # (3) equal areas: OpenCV lists the component found last in raster order first, and it wins
    m = np.zeros((20, 20), np.uint8)
    for y, x in [(1, 1), (1, 10), (10, 1), (10, 10)]:
        m[y : y + 3, x : x + 3] = 255
    boxes, counts, largest = L.level_boxes(m, [0])
    assert boxes[largest[0]].tolist() == [10, 10, 13, 13]
    for image in (m,):
        assert_level_boxes_are_the_reference(image, [0])


def test_level_boxes_on_an_image_wider_than_int16():
    image = np.zeros((4, 33000), np.uint8)
    image[1:3, 100:32990] = 200  # twice the area is about 2 * 32890 * 1: exact in int64 as in OpenCV's double
    image[1:4, 32992:32999] = 100
    assert_level_boxes_are_the_reference(image, [0, 150])


def test_levels_with_the_same_region_are_thresholded_once():
    image = np.array([[0, 10, 10], [0, 200, 10]], np.uint8)
    keys = L._mask_keys(image, np.array([-3, 0, 5, 9, 10, 150, 199, 200, 254]))
    assert keys.tolist() == [-3, 0, 0, 0, 10, 10, 10, 200, 200]
    for level, key in zip([0, 5, 9, 150, 199, 254], [0, 0, 0, 10, 10, 200]):
        assert ((image > level) == (image > key)).all()


def test_empty_map_gives_the_zero_box_as_the_reference_does():
    # no contour -> box [0, 0, 0, 0] (one pixel), which still overlaps a box at the corner
    large, best = L.box_ious(np.zeros((1, 5, 5)), np.array([[0, 0, 1, 1]]), np.array([0.0, 0.5]))
    np.testing.assert_allclose(large, [[1 / 36, 1 / 36]])  # GT pixels 0..5 inclusive: 6 x 6
    np.testing.assert_allclose(best, large)


def test_normalize_scoremaps_spans_zero_to_one_and_zeroes_constant_maps():
    raw = np.stack([np.arange(16.0).reshape(4, 4), np.full((4, 4), 3.0)])
    s = L.normalize_scoremaps(raw, 8)
    assert s.shape == (2, 8, 8)
    assert s[0].min() == 0.0 and s[0].max() == 1.0
    assert (s[1] == 0).all()


def test_paper_max_is_an_upper_bound_of_the_deployable_figure():
    # val prefers tau index 0, test prefers index 2: the paper's figure takes test's best
    thresholds = np.array([0.1, 0.2, 0.3])
    val = np.array([[0.9, 0.1, 0.1], [0.8, 0.1, 0.1]])
    test = np.array([[0.1, 0.1, 0.9], [0.6, 0.1, 0.9]])
    picks = L.choose_taus((val, val), thresholds)
    assert picks["tau"] == 0.1
    s = L.summarize(picks, (test, test), thresholds)
    assert s["max_box_acc"] == 1.0 and s["tau_at_max"] == 0.3  # best tau on test
    assert s["box_acc_val_tau"] == 0.5 and s["tau"] == 0.1  # tau from validation
    assert s["mean_iou"] == pytest.approx(0.35)
    assert s["max_box_acc"] >= s["box_acc_val_tau"]
    d = L.box_acc_at_val_tau(picks, (test, test), thresholds)
    assert d["box_acc_val_tau"] == 0.5 and d["tau"] == 0.1


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
    s = L.box_acc_at_val_tau(picks, (test_large, test_large), taus)
    assert s["box_acc_val_tau"] == 0.5  # [0.45, 0.75] >= 0.5
    assert s["mean_iou"] == pytest.approx(0.6)
    # V2: delta .3 -> 1.0; delta .5 -> 0.5; delta .7 -> 0.5
    assert s["box_acc_v2_val_tau"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="not one of the thresholds"):
        L.box_acc_at_val_tau(picks, (test_large, test_large), np.array([0.25]))


def test_test_thresholds_hold_every_tau_the_deployable_figures_read():
    # V1 and each delta of V2 may pick a different tau on validation; scoring test only at test_thresholds
    # must give the figures of the full grid
    grid = np.array([0.1, 0.2, 0.3])
    picks = {"tau": 0.2, "tau_v2": {0.3: 0.1, 0.5: 0.2, 0.7: 0.3}, "val_curve": []}
    taus = L.test_thresholds(picks)
    np.testing.assert_allclose(taus, grid)
    large = np.array([[0.2, 0.55, 0.1], [0.6, 0.4, 0.8]])
    best = np.array([[0.35, 0.55, 0.75], [0.25, 0.6, 0.65]])
    cols = [int(np.argmin(np.abs(grid - t))) for t in taus]
    full = L.box_acc_at_val_tau(picks, (large, best), grid)
    assert L.box_acc_at_val_tau(picks, (large[:, cols], best[:, cols]), taus) == full
    assert full["box_acc_v2_val_tau"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)  # columns 0, 1, 2


def test_centre_baseline_is_perfect_on_centred_objects_and_names_its_side():
    gt = L.centre_boxes(10, 0.4)
    r = L.centre_baseline(gt, gt)
    assert r["max_box_acc"] == 1.0 and r["box_acc_val_tau"] == 1.0
    assert r["side"] == pytest.approx(0.4) and "tau" not in r
    assert "side 0.40" in L.format_table({"centre box": r})


def test_centre_baseline_fails_on_corner_objects():
    gt = np.tile([0.0, 0.0, 0.1, 0.1], (5, 1))
    assert L.centre_baseline(gt, gt)["max_box_acc"] == 0.0


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        L.box_ious(np.full((1, 3, 3), np.nan), np.array([[0, 0, 1, 1]]))
    with pytest.raises(ValueError, match="need"):
        L.box_ious(np.zeros((2, 3, 3)), np.array([[0, 0, 1, 1]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        L.box_ious(np.full((1, 3, 3), 2.0), np.array([[0, 0, 1, 1]]))
    with pytest.raises(ValueError, match="empty"):
        L.box_ious(np.zeros((1, 0, 0)), np.array([[0, 0, 1, 1]]))
    with pytest.raises(ValueError, match="empty"):
        L.normalize_scoremaps(np.zeros((2, 0, 0)), 8)
    with pytest.raises(ValueError, match="at least one image"):
        L.max_box_acc(np.zeros((0, 5)))

    with pytest.raises(ValueError, match="empty batch"):
        L.box_ious(np.zeros((0, 3, 3)), np.zeros((0, 4)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"gt": [[10, 20, 100, 200]]}, r"gt_boxes \[10.0, 20.0, 100.0, 200.0\] is not normalised"),
        ({"thresholds": []}, "non-empty"),
        ({"thresholds": [0.5, 2.0]}, r"thresholds .* \[0, 1\], got \[0.5, 2\]"),
        ({"thresholds": [np.nan]}, r"\[0, 1\]"),
    ],
)
def test_box_ious_refuses_pixel_boxes_and_thresholds_outside_0_1(kwargs, message):
    maps = np.zeros((1, 8, 8))
    maps[0, 2:5, 2:5] = 1.0
    gt = np.asarray(kwargs.get("gt", [[0.25, 0.25, 0.625, 0.625]]), np.float64)
    with pytest.raises(ValueError, match=message):
        L.box_ious(maps, gt, np.asarray(kwargs.get("thresholds", [0.5])))


@pytest.mark.parametrize(
    "ious, delta, message",
    [
        (np.array([[0.6, np.nan]]), 0.5, "NaN"),
        (np.array([[0.6, 1.7]]), 0.5, "in \\[0, 1\\]"),
        (np.zeros((3, 0)), 0.5, "one threshold"),
        (np.array([[0.6, 0.4]]), 50, "delta .* \\(0, 1\\].*0.5"),
        (np.array([[0.6, 0.4]]), 0, "delta"),
    ],
)
def test_max_box_acc_refuses_nan_ious_and_percent_deltas(ious, delta, message):
    with pytest.raises(ValueError, match=message):
        L.max_box_acc(ious, delta)


def test_pointing_game_refuses_nan_empty_and_pixel_less_maps():
    mask = np.zeros((1, 4, 4), np.uint8)
    mask[0, 1, 1] = 1
    bad = np.zeros((1, 4, 4))
    bad[0, 3, 3] = np.nan  # np.argmax would point at the NaN: a hit or a miss by accident
    with pytest.raises(ValueError, match="NaN"):
        L.pointing_game(bad, mask)
    with pytest.raises(ValueError, match="at least one image"):
        L.pointing_game(np.zeros((0, 4, 4)), np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        L.pointing_game(np.zeros((1, 0, 4)), np.zeros((1, 0, 4), np.uint8))
    assert L.pointing_game(np.zeros((1, 4, 4)), mask, tolerance=0) == 0.0  # all-zero map: first pixel, documented


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


def test_evaluated_box_and_region_stats_on_a_constructed_map():
    m = np.zeros((10, 10))
    m[2:5, 3:7] = 1.0  # rows 2..4, columns 3..6
    s = L.normalize_scoremaps(m[None], 10)[0]
    want = L.scoremap_boxes(s, [0.5])[0][0]  # [x0, y0, x1, y1] inclusive
    box = L.evaluated_box(m, 0.5, size=10)
    np.testing.assert_allclose(box, [want[1] / 10, want[0] / 10, (want[3] + 1) / 10, (want[2] + 1) / 10])
    # the reference's box is [x, y, x + w, y + h] counted inclusively (+1): one pixel more than the block
    np.testing.assert_allclose(box, [0.2, 0.3, 0.6, 0.8])
    stats = L.region_stats(m[None], np.array([[0.2, 0.3, 0.4, 0.5]]), 0.5, size=10)
    # GT pixel box: x 3..5, y 2..4 (+1 convention) = 9 pixels, all in the 12-pixel region
    assert stats["coverage"][0] == pytest.approx(1.0)
    assert stats["outside"][0] == pytest.approx(3 / 12)
