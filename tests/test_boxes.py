import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import boxes


@st.composite
def box(draw, min_size=0.0):
    y0 = draw(st.floats(0, 1 - min_size))
    x0 = draw(st.floats(0, 1 - min_size))
    y1 = draw(st.floats(y0 + min_size, 1))
    x1 = draw(st.floats(x0 + min_size, 1))
    return np.array([y0, x0, y1, x1])


@settings(deadline=None)  # timing on a shared 2-core machine is not the property
@given(box(), box())
def test_iou_symmetric_and_in_range(a, b):
    v = boxes.iou(a, b)
    assert 0.0 <= v <= 1.0 + 1e-12
    assert v == pytest.approx(boxes.iou(b, a))


@settings(deadline=None)  # timing on a shared 2-core machine is not the property
@given(box(min_size=1e-3))
def test_iou_with_itself_is_one(a):
    assert boxes.iou(a, a) == pytest.approx(1.0)


@settings(deadline=None)  # timing on a shared 2-core machine is not the property
@given(box(min_size=1e-2), box(min_size=1e-2), st.floats(0.1, 1))  # scaled boxes stay normalised
def test_iou_is_scale_invariant(a, b, s):
    assert boxes.iou(a * s, b * s) == pytest.approx(boxes.iou(a, b), abs=1e-9)


@settings(deadline=None)  # timing on a shared 2-core machine is not the property
@given(box(), st.integers(1, 2000), st.integers(1, 2000))
def test_xyxy_round_trip(a, h, w):
    np.testing.assert_allclose(boxes.xyxy_to_minmax(boxes.minmax_to_xyxy(a, (h, w)), (h, w)), a, atol=1e-9)


@settings(deadline=None)  # timing on a shared 2-core machine is not the property
@given(box(), st.integers(1, 2000), st.integers(1, 2000), st.booleans())
def test_xywh_round_trip(a, h, w, center):
    back = boxes.xywh_to_minmax(boxes.minmax_to_xywh(a, (h, w), center=center), (h, w), center=center)
    np.testing.assert_allclose(back, a, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.lists(box(), min_size=1, max_size=5), st.lists(box(), min_size=1, max_size=4))
def test_matrix_matches_single_calls(a_list, b_list):
    m = boxes.iou(np.array(a_list), np.array(b_list))
    assert m.shape == (len(a_list), len(b_list))
    for i, a in enumerate(a_list):
        for j, b in enumerate(b_list):
            assert m[i, j] == pytest.approx(boxes.iou(a, b))


def test_iou_by_hand():
    a = [0.0, 0.0, 0.5, 0.5]  # area .25
    b = [0.25, 0.25, 0.75, 0.75]  # overlap .0625
    assert boxes.iou(a, b) == pytest.approx(0.0625 / (0.5 - 0.0625))
    assert boxes.iou(a, [0.6, 0.6, 0.9, 0.9]) == 0.0  # disjoint
    assert boxes.iou([0.2, 0.2, 0.2, 0.7], a) == 0.0  # zero area
    assert boxes.iou([0.2, 0.2, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2]) == 0.0
    pw = boxes.iou(np.array([a, b]), np.array([a, a]), pairwise=True)
    np.testing.assert_allclose(pw, [1.0, boxes.iou(b, a)])


def test_bad_boxes_raise():
    with pytest.raises(ValueError, match="min > max"):
        boxes.iou([0.5, 0.0, 0.2, 1.0], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        boxes.iou([np.nan, 0, 1, 1], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="4 numbers"):
        boxes.iou([0, 1, 1], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="broadcast"):
        boxes.iou(np.zeros((2, 4)), np.zeros((3, 4)), pairwise=True)
    with pytest.raises(ValueError, match="a holds no box"):  # its mean would be NaN
        boxes.iou(np.zeros((0, 4)), [0, 0, 1, 1], pairwise=True)


def test_iou_of_batches_broadcasts_or_raises():
    rng = np.random.default_rng(0)
    lo = rng.uniform(0, 0.5, (2, 3, 2))
    a = np.concatenate([lo, lo + rng.uniform(0.1, 0.5, (2, 3, 2))], -1)
    b = a[:, ::-1]
    pw = boxes.iou(a, b, pairwise=True)
    assert pw.shape == (2, 3)  # not flattened to (6,)
    for i in range(2):
        for j in range(3):
            assert pw[i, j] == pytest.approx(boxes.iou(a[i, j], b[i, j]))
    np.testing.assert_allclose(boxes.iou(a, a[0, 0], pairwise=True), boxes.iou(a.reshape(-1, 4), a[0, 0]).reshape(2, 3))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        boxes.iou(a, [0, 0, 1, 1])  # was silently flattened to a (6, 1) matrix


def test_rect_to_minmax_clips_and_orders():
    rect = np.array([[10, 20], [50, 20], [50, 80], [10, 80]])  # (x, y) corners
    np.testing.assert_allclose(boxes.rect_to_minmax(rect, (100, 200)), [0.2, 0.05, 0.8, 0.25])
    rotated = np.array([[-5, 50], [50, -5], [105, 50], [50, 105]])
    np.testing.assert_allclose(boxes.rect_to_minmax(rotated, (100, 100)), [0, 0, 1, 1])


def test_heatmap_to_box_largest_region():
    h = np.zeros((10, 20), np.float32)
    h[1:3, 1:3] = 1.0  # small bright blob
    h[5:9, 10:18] = 0.6  # larger, dimmer region
    np.testing.assert_allclose(boxes.heatmap_to_box(h, 0.5), [0.5, 0.5, 0.9, 0.9])
    # above 0.7 only the small blob remains
    np.testing.assert_allclose(boxes.heatmap_to_box(h, 0.7), [0.1, 0.05, 0.3, 0.15])
    allb = boxes.heatmap_to_box(h, 0.5, method="all")
    assert len(allb) == 2
    np.testing.assert_allclose(allb[1], [0.1, 0.05, 0.3, 0.15])


def test_heatmap_to_box_rotated_covers_a_diagonal():
    h = np.eye(10, dtype=np.float32)
    b = boxes.heatmap_to_box(h, 0.5, method="rotated")
    np.testing.assert_allclose(b, [0, 0, 1, 1], atol=0.02)
    np.testing.assert_allclose(boxes.heatmap_to_box(h, 0.5), [0, 0, 1, 1])


def test_heatmap_to_box_threshold_is_strict_like_the_evaluation():
    h = np.zeros((10, 10), np.float32)
    h[2:5, 3:7] = 1.0
    # threshold 0 keeps the pixels above 0, not the whole image (the evaluation's convention)
    np.testing.assert_allclose(boxes.heatmap_to_box(h, 0.0), [0.2, 0.3, 0.5, 0.7])
    h[6, 6] = 0.5
    assert len(boxes.heatmap_to_box(h, 0.5, method="all")) == 1  # 0.5 is not above 0.5 * max
    assert len(boxes.heatmap_to_box(h, 0.49, method="all")) == 2


def test_heatmap_to_box_empty_and_nan():
    with pytest.raises(ValueError, match="empty"):
        boxes.heatmap_to_box(np.zeros((0, 0)))
    assert boxes.heatmap_to_box(np.zeros((5, 5)), 0.2) is None
    assert boxes.heatmap_to_box(np.zeros((5, 5)), 0.2, method="all") == []
    with pytest.raises(ValueError, match="NaN"):
        boxes.heatmap_to_box(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="method"):
        boxes.heatmap_to_box(np.ones((3, 3)), method="biggest")


def test_draw_boxes_draws_on_a_copy():
    img = np.zeros((20, 30, 3), np.uint8)
    out = boxes.draw_boxes(img, [[0.1, 0.1, 0.9, 0.9]], colors=[(255, 0, 0)], labels=["car"], thickness=1)
    assert img.max() == 0 and out.shape == img.shape
    assert (out[2, 3:27] == [255, 0, 0]).all()


@pytest.mark.parametrize(
    "bad",
    [[10.0, 20.0, 100.0, 200.0], [0.0, 0.0, 1.5, 0.5], [-0.2, 0.0, 0.5, 0.5]],
    ids=["pixel units", "past the edge", "negative"],
)
def test_iou_refuses_boxes_that_are_not_normalised(bad):
    # a pixel box against a normalised one would give IoU 0 (or a plausible number): a clear error instead
    with pytest.raises(ValueError, match=r"b \[.*\] is not normalised.*\[0, 1\]"):
        boxes.iou([0.0, 0.0, 0.5, 0.5], bad)
    assert boxes.iou([0.0, 0.0, 1.0 + 1e-9, 1.0], [0.0, 0.0, 1.0, 1.0]) == pytest.approx(1.0)  # round-off passes


@pytest.mark.parametrize("threshold", [2, 1.5, -0.1, np.nan])
def test_heatmap_to_box_refuses_a_threshold_outside_0_1(threshold):
    h = np.zeros((5, 5), np.float32)
    h[1:3, 1:3] = 1.0
    with pytest.raises(ValueError, match=r"threshold .* in \[0, 1\]"):
        boxes.heatmap_to_box(h, threshold)
    np.testing.assert_allclose(boxes.heatmap_to_box(h, 1.0 - 1e-6), [0.2, 0.2, 0.6, 0.6])
