"""Localisation metrics: boxes from heatmaps, IoU, MaxBoxAcc(V2), PxAP, pointing game.

Choe, Oh, Lee, Chun, Akata, Shim. "Evaluating Weakly Supervised Object
Localization Methods Right." CVPR 2020, and their reference code
(github.com/clovaai/wsolevaluation, ``evaluation.py``). Every score map is
upsampled to the image size and min-max normalised; thresholded at ``tau``
(relative to its maximum) it gives a box; ``BoxAcc(tau, delta)`` is the share
of images whose box has IoU >= delta with the ground truth.

Two protocols, two names:

- **The paper's figures** (:func:`max_box_acc`, :func:`max_box_acc_v2`):
  ``MaxBoxAcc`` is the *maximum over tau* of BoxAcc(tau, 0.5) on the evaluated
  split, the box taken around the largest contour. ``MaxBoxAccV2`` averages the
  maximum over tau of BoxAcc(tau, delta) for delta in {0.3, 0.5, 0.7}, with
  boxes from all contours and the best match kept; it came with the
  wsolevaluation release and the journal version (Choe et al., "Evaluation for
  Weakly Supervised Object Localization: Protocol, Metrics, and Datasets",
  TPAMI 2022), not with the CVPR paper. Choosing tau on the evaluated split is
  optimistic: it is the benchmark figure, not what a deployed model gets.
- **The deployable protocol** (:func:`box_acc_at_val_tau`): tau is chosen on
  the validation split (:func:`choose_taus`) and BoxAcc is reported on test at
  that tau — what a user who never sees test labels gets.

The box rule is the reference code's (:func:`scoremap_boxes`): the map is
quantised to uint8, a pixel belongs to the region when its value is strictly
greater than ``int(tau * max)`` (``cv2.THRESH_BINARY``), contours come from
``cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)``, the box is the bounding
rectangle of the largest contour (``cv2.contourArea``), clipped to
``width - 1``/``height - 1``; no contour gives the box ``[0, 0, 0, 0]``. IoU is
computed in pixels with the +1 convention, ground-truth boxes rescaled to the
map's size with ``int()``. Figures are fractions in [0, 1] (the reference
prints percentages).

Pure metrics: numpy, OpenCV and :mod:`helpers.boxes` only, no model. Read
section by section beside wsolevaluation's ``evaluation.py``: the section
headers name the reference function or method each one mirrors
(``BoxEvaluator`` for boxes, ``MaskEvaluator`` for PxAP). Running models over
data sets lives in :mod:`helpers.localization`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import boxes as _boxes

# -------------------------- score maps: wsolevaluation's inference.normalize_scoremap and util.check_scoremap_validity
THRESHOLDS = np.arange(0, 1, 0.001)  # the reference's cam_curve_interval = 0.001
DELTAS = (0.3, 0.5, 0.7)


def normalize_scoremaps(heatmaps, size) -> np.ndarray:
    """Upsample maps to the image size (bicubic), then min-max normalise each one.

    As the reference code does before evaluating (``cv2.resize(..., INTER_CUBIC)``
    then ``normalize_scoremap``): each map spans [0, 1] exactly; a constant map
    becomes all zeros.

    Args:
        heatmaps: ``(N, h, w)`` maps (any scale).
        size: the image size, an int or ``(H, W)``.

    Returns:
        ``(N, H, W)`` float64 maps in [0, 1].

    Raises:
        ValueError: a bad shape, an empty map, NaN or infinity.
    """
    import cv2

    maps = np.asarray(heatmaps, np.float32)
    if maps.ndim != 3:
        raise ValueError(f"heatmaps must be (N, h, w), got shape {maps.shape}")
    _check_maps(maps)
    H, W = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    if H <= 0 or W <= 0:
        raise ValueError(f"size must be positive, got {(H, W)}")
    out = np.empty((len(maps), H, W), np.float64)
    for i, m in enumerate(maps):  # cv2 does the pixel work, one call per map
        out[i] = cv2.resize(m, (W, H), interpolation=cv2.INTER_CUBIC)
    lo = out.min(axis=(1, 2), keepdims=True) if len(out) else out
    hi = out.max(axis=(1, 2), keepdims=True) if len(out) else out
    span = hi - lo
    return np.where(span > 0, (out - lo) / np.where(span > 0, span, 1.0), 0.0)


def _check_maps(maps: np.ndarray) -> None:
    if maps.shape[-1] == 0 or maps.shape[-2] == 0:
        raise ValueError(f"heatmaps are empty (shape {maps.shape}); each map needs at least one pixel")
    if not np.isfinite(maps).all():
        raise ValueError("heatmaps contain NaN or infinity")


def _check_scoremaps(maps) -> np.ndarray:
    """The reference's ``check_scoremap_validity``: ``(N, H, W)`` in [0, 1], finite."""
    maps = np.asarray(maps, np.float64)
    if maps.ndim != 3:
        raise ValueError(f"score maps must be (N, H, W), got shape {maps.shape}")
    _check_maps(maps)
    if maps.size and (maps.min() < 0 or maps.max() > 1):
        raise ValueError(
            f"score maps must lie in [0, 1] (min {maps.min():.3g}, max {maps.max():.3g}); "
            "use normalize_scoremaps(maps, size) first"
        )
    return maps


def check_thresholds(thresholds) -> np.ndarray:
    """Relative thresholds as a non-empty float64 vector in [0, 1]; anything else is a ValueError."""
    t = np.asarray(thresholds, np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D list of taus in [0, 1], got shape {t.shape}")
    if not np.isfinite(t).all() or t.min() < 0 or t.max() > 1:
        raise ValueError(
            f"thresholds are relative to each map's maximum and must lie in [0, 1], got [{t.min():g}, {t.max():g}]"
        )
    return t


# --------------------------------------------------------------- boxes from a score map: compute_bboxes_from_scoremaps
def _quantize(scoremap: np.ndarray) -> np.ndarray:
    return (scoremap * 255).astype(np.uint8)


def _levels(image: np.ndarray, thresholds) -> np.ndarray:
    """The uint8 level ``int(tau * max)`` the reference thresholds at, for every tau."""
    return (np.asarray(thresholds, np.float64) * image.max()).astype(np.int64)


def _extent(image: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """For every level, the slice ``[y0, y1, x0, x1)`` holding the pixels above it, one pixel of margin."""
    h, w = image.shape
    out = []
    for profile, n in ((image.max(axis=1), h), (image.max(axis=0), w)):
        first = np.searchsorted(np.maximum.accumulate(profile), levels, side="right")
        last = n - np.searchsorted(np.maximum.accumulate(profile[::-1]), levels, side="right")
        out += [np.maximum(first - 1, 0), np.minimum(last + 1, n)]
    return np.stack(out, 1)


def _pixel_boxes_above_level(image: np.ndarray, level: int, extent=None) -> tuple[np.ndarray, int]:
    """Pixel boxes ``(K, 4)`` x0 y0 x1 y1 of all contours above ``level``, and the index of the largest.

    ``extent`` (from :func:`_extent`) crops the work to where the region can be: the
    crop keeps a one-pixel margin of zeros (or the image border, as in the full
    image), so the contours, their order and their areas are those of the full image.
    """
    import cv2

    height, width = image.shape
    y0, y1, x0, x1 = (0, height, 0, width) if extent is None else (int(v) for v in extent)
    if y1 <= y0 or x1 <= x0:
        return np.zeros((1, 4), np.int64), 0
    _, binary = cv2.threshold(image[y0:y1, x0:x1], int(level), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return np.zeros((1, 4), np.int64), 0
    rects = np.array([cv2.boundingRect(c) for c in contours], np.int64)
    largest = int(np.argmax([cv2.contourArea(c) for c in contours]))  # first of equals, like max()
    x, y, w, h = rects.T
    x, y = x + x0, y + y0
    return np.stack([x, y, np.minimum(x + w, width - 1), np.minimum(y + h, height - 1)], 1), largest


def scoremap_boxes(scoremap, thresholds, multi_contour: bool = False) -> list[np.ndarray]:
    """Boxes from one score map at every threshold, as the reference code computes them.

    (``compute_bboxes_from_scoremaps`` in wsolevaluation.)

    Args:
        scoremap: ``(H, W)`` map in [0, 1] (see :func:`normalize_scoremaps`).
        thresholds: relative thresholds ``tau``.
        multi_contour: all contours' boxes (MaxBoxAccV2) instead of the largest one's.

    Returns:
        One ``(K, 4)`` int array of pixel boxes ``[x0, y0, x1, y1]`` per threshold
        (``K = 1`` unless ``multi_contour``); no region gives ``[[0, 0, 0, 0]]``.
    """
    image = _quantize(_check_scoremaps(np.asarray(scoremap)[None])[0])
    out = []
    for level in _levels(image, thresholds):
        b, k = _pixel_boxes_above_level(image, level)
        out.append(b if multi_contour else b[k : k + 1])
    return out


def _mask_keys(image: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """A level per distinct region: ``image > level`` is the same mask for every level mapped to one key.

    Two levels give the same region when no pixel value lies between them; the key is
    the largest pixel value ``<= level`` (the level itself when there is none), itself a
    level giving that region.
    """
    present = np.flatnonzero(np.bincount(image.ravel(), minlength=256))
    below = np.searchsorted(present, levels, side="right") - 1
    return np.where(below >= 0, present[np.maximum(below, 0)], levels)


def level_boxes(image: np.ndarray, levels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every contour's box at every level, the reference rule without its per-contour Python loop.

    Exactly what :func:`_pixel_boxes_above_level` (wsolevaluation's ``compute_bboxes_from_scoremaps``,
    Choe et al., CVPR 2020) gives level by level: the same ``cv2.findContours`` call on the
    same region (cropped as :func:`_extent` allows), then, for all contours of all levels at
    once in numpy, ``cv2.boundingRect`` (the extremes of the contour's points) and
    ``cv2.contourArea`` (the shoelace formula over the polygon of its points, in integers:
    OpenCV's double sum of these integer products is exact, so the areas, their ties and
    the first-of-equals choice are the same).

    Why not one pass over a component tree (union-find over the pixels sorted by level)?
    The reference's "largest" is the largest *polygon area* through the border pixels'
    centres, not the most pixels: a 1 x 25 line (25 pixels, area 0) loses to a 3 x 3
    square (9 pixels, area 4); a one-pixel ring around a hole has the area of the whole
    disc it encloses; equal areas go to the contour OpenCV lists first (the one found
    last in raster order); and MaxBoxAccV2's "all contours" include the borders of holes.
    A component tree gives this only with holes tracked (a tree of shapes) and OpenCV's
    order replayed, and in Python it is slower than OpenCV's C loop it would replace.

    Args:
        image: ``(H, W)`` uint8 map (:func:`_quantize`).
        levels: ``(L,)`` uint8 levels; the region at a level is ``image > level``.

    Returns:
        ``(boxes, counts, largest)``: ``boxes`` ``(K, 4)`` int pixel boxes ``[x0, y0, x1, y1]``,
        level after level (a level without a contour contributes the box ``[0, 0, 0, 0]``),
        ``counts`` ``(L,)`` the number of boxes of each level (at least 1), ``largest`` ``(L,)``
        the index within its level of the largest contour's box.
    """
    import cv2

    height, width = image.shape
    levels = np.asarray(levels, np.int64).reshape(-1)
    found: list = []
    counts = np.zeros(len(levels), np.int64)
    extents = _extent(image, levels)
    for i, (level, (y0, y1, x0, x1)) in enumerate(zip(levels, extents)):
        if y1 <= y0 or x1 <= x0 or level >= 255:
            continue
        _, binary = cv2.threshold(image[y0:y1, x0:x1], int(level), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        counts[i] = len(contours)
        found.extend(contours)
    n = len(found)
    if n == 0:
        return np.zeros((len(levels), 4), np.int64), np.ones(len(levels), np.int64), np.zeros(len(levels), np.int64)
    lengths = np.fromiter(map(len, found), np.int64, n)
    points = np.concatenate(found).reshape(-1, 2)  # int32 (|x y' - y x'| < 2^31 while sides are < 2^15)
    if max(height, width) >= 2**15:
        points = points.astype(np.int64)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    x, y = points[:, 0], points[:, 1]
    after = np.arange(1, len(points) + 1)
    after[first + lengths - 1] = first  # each polygon closes on its first point
    twice_area = np.abs(np.add.reduceat((x * y[after] - y * x[after]).astype(np.int64), first))
    shift = np.repeat(extents[:, [2, 0]], counts, axis=0)  # each contour's crop corner x0, y0
    x0 = np.minimum.reduceat(x, first) + shift[:, 0]  # int64, as the shift
    y0 = np.minimum.reduceat(y, first) + shift[:, 1]
    x1 = np.minimum(np.maximum.reduceat(x, first) + shift[:, 0] + 1, width - 1)
    y1 = np.minimum(np.maximum.reduceat(y, first) + shift[:, 1] + 1, height - 1)
    contour_boxes = np.stack([x0, y0, x1, y1], 1)
    # first of equals within each level, as the reference's max(contours, key=cv2.contourArea)
    has = counts > 0
    starts = np.concatenate([[0], np.cumsum(counts[has])[:-1]])
    level_of = np.repeat(np.arange(int(has.sum())), counts[has])
    top = np.maximum.reduceat(twice_area, starts)
    index = np.where(twice_area == top[level_of], np.arange(n), n)
    largest = np.zeros(len(levels), np.int64)
    largest[has] = np.minimum.reduceat(index, starts) - starts
    # levels without a contour get the zero box, in level order
    out_counts = np.maximum(counts, 1)
    boxes = np.zeros((int(out_counts.sum()), 4), np.int64)
    taken = np.repeat(has, out_counts)
    boxes[taken] = contour_boxes
    return boxes, out_counts, largest


def evaluated_box(heatmap, tau: float, size: int = 224, multi_contour: bool = False) -> np.ndarray:
    """The box the evaluation scores for one heatmap at ``tau``, normalised ``[ymin, xmin, ymax, xmax]``.

    The heatmap is upsampled and min-max normalised (:func:`normalize_scoremaps`), then
    boxed by the reference rule (:func:`scoremap_boxes`); the inclusive pixel box
    ``[x0, y0, x1, y1]`` covers ``[x0, x1 + 1)`` in normalised units. ``multi_contour``
    returns all contours' boxes, ``(K, 4)``. (The reference's box ends at ``x + w``, which the
    +1 IoU counts inclusively: a region of columns 3..6 gives a box over columns 3..7.)
    """
    s = normalize_scoremaps(np.asarray(heatmap)[None], size)[0]
    b = scoremap_boxes(s, [tau], multi_contour)[0]
    h, w = s.shape
    out = np.stack([b[:, 1] / h, b[:, 0] / w, (b[:, 3] + 1) / h, (b[:, 2] + 1) / w], 1).clip(0, 1)
    return out if multi_contour else out[0]


# ----------------------------------------------------------------------------------------- IoU: calculate_multiple_iou
def gt_pixel_boxes(gt_boxes, size) -> np.ndarray:
    """Normalised ``[ymin, xmin, ymax, xmax]`` -> pixel ``[x0, y0, x1, y1]`` at ``size``, rescaled with ``int()``."""
    H, W = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    b = _boxes.check_unit(gt_boxes, "gt_boxes")
    return np.stack([b[..., 1] * W, b[..., 0] * H, b[..., 3] * W, b[..., 2] * H], -1).astype(np.int64)


def pixel_iou(a, b) -> np.ndarray:
    """IoU matrix ``(K, G)`` of pixel boxes ``[x0, y0, x1, y1]``, +1 convention (``calculate_multiple_iou``).

    A box ``[x0, y0, x1, y1]`` covers the pixels ``x0..x1`` and ``y0..y1`` inclusive;
    a degenerate union scores 0.
    """
    a, b = np.asarray(a, np.int64).reshape(-1, 4)[:, None], np.asarray(b, np.int64).reshape(-1, 4)[None]
    iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


# -------------------------------------------------------- BoxEvaluator.accumulate: the IoU of every image at every tau
def box_ious(scoremaps, gt_boxes, thresholds=THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """IoU of the score maps' boxes with the ground truth, for every threshold.

    Faithful to the reference code (see the module docstring). Each map is
    thresholded only once per distinct region its thresholds give (at most 256:
    one per uint8 value present), so the full 1000-step grid costs no more than
    256 thresholds, and the boxes and areas of all contours of all levels are
    measured in one numpy pass (:func:`level_boxes`), equal to the reference loop.

    Args:
        scoremaps: ``(N, H, W)`` maps in [0, 1], already at the image size
            (see :func:`normalize_scoremaps`).
        gt_boxes: ``(N, 4)`` normalised ``[ymin, xmin, ymax, xmax]``.
        thresholds: ``(T,)`` relative thresholds.

    Returns:
        ``(largest, best)``, each ``(N, T)``: the IoU of the largest contour's box,
        and the best IoU over the boxes of all contours.

    Raises:
        ValueError: no image, maps outside [0, 1] or not finite, boxes that are
            not normalised (pixel units) or not one per map, or thresholds that
            are empty or outside [0, 1].
    """
    maps = _check_scoremaps(scoremaps)
    gt = _boxes.check_unit(gt_boxes, "gt_boxes")
    if gt.ndim != 2 or len(maps) != len(gt):
        raise ValueError(f"need (N, H, W) maps and (N, 4) boxes, got {maps.shape} and {gt.shape}")
    n, h, w = maps.shape
    if n == 0:
        raise ValueError("box_ious got an empty batch (0 maps); pass at least one map and its box")
    gt_px = gt_pixel_boxes(gt, (h, w))
    thresholds = check_thresholds(thresholds)
    workers = max(1, min(os.cpu_count() or 1, n))
    if workers == 1:
        rows = [_image_ious(maps[i], gt_px[i], thresholds) for i in range(n)]
    else:  # cv2 releases the GIL: images in parallel threads
        with ThreadPoolExecutor(workers) as pool:
            rows = list(pool.map(lambda i: _image_ious(maps[i], gt_px[i], thresholds), range(n)))
    return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])


def _image_ious(scoremap: np.ndarray, gt_px: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One image's ``(largest, best)`` IoU rows over the thresholds (each distinct region found once)."""
    image = _quantize(scoremap)
    uniq, inverse = np.unique(_mask_keys(image, _levels(image, thresholds)), return_inverse=True)
    boxes, counts, largest = level_boxes(image, uniq)
    ious = pixel_iou(boxes, gt_px)[:, 0]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return ious[starts + largest][inverse], np.maximum.reduceat(ious, starts)[inverse]


# ---------------------------------------------------------------- BoxEvaluator.compute: BoxAcc, MaxBoxAcc, MaxBoxAccV2
def box_acc(ious: np.ndarray, delta: float) -> np.ndarray:
    """BoxAcc for every threshold: share of images with IoU >= delta, ``(T,)``.

    Raises:
        ValueError: no image or no threshold, IoUs that are NaN or outside [0, 1],
            or ``delta`` outside (0, 1] (the reference's 30/50/70 are percentages: pass 0.3/0.5/0.7).
    """
    ious = np.asarray(ious)
    if ious.ndim != 2 or ious.shape[0] == 0 or ious.shape[1] == 0:
        raise ValueError(f"need (N, T) IoUs of at least one image and one threshold, got shape {ious.shape}")
    if not np.isfinite(ious).all() or ious.min() < 0 or ious.max() > 1 + 1e-9:
        raise ValueError("IoUs must be finite values in [0, 1] (from box_ious); got NaN, inf or values outside")
    if isinstance(delta, bool) or not 0 < delta <= 1:
        raise ValueError(f"delta is an IoU threshold in (0, 1] (0.5 for the paper's BoxAcc), got {delta!r}")
    return (ious >= delta).mean(axis=0)


def max_box_acc(largest: np.ndarray, delta: float = 0.5) -> float:
    """MaxBoxAcc (Choe et al., CVPR 2020): the best BoxAcc(tau, 0.5) over tau, on the evaluated split.

    Args:
        largest: ``(N, T)`` IoUs of the largest contour's box at every threshold
            of the grid (the first output of :func:`box_ious`).
        delta: the IoU threshold (0.5 in the paper).
    """
    return float(box_acc(largest, delta).max())


def max_box_acc_v2(best: np.ndarray, deltas=DELTAS) -> float:
    """MaxBoxAccV2: the mean over delta of the best BoxAcc(tau, delta) over tau, all contours, best match.

    From the wsolevaluation release and Choe et al., TPAMI 2022 (not the CVPR 2020 paper).

    Args:
        best: ``(N, T)`` best IoUs over all contours' boxes (second output of :func:`box_ious`).
        deltas: IoU thresholds, {0.3, 0.5, 0.7} in the reference.
    """
    return float(np.mean([box_acc(best, d).max() for d in deltas]))


# ------------------------------------------ choosing tau on validation (the deployable protocol; not in the reference)
def _best(ious: np.ndarray, delta: float) -> int:
    """Index of the highest BoxAcc(., delta); ties go to the higher mean IoU."""
    acc = box_acc(ious, delta)
    return int(np.lexsort((ious.mean(axis=0), acc))[-1])


def choose_taus(val: tuple, thresholds=THRESHOLDS) -> dict:
    """Pick the thresholds on the validation split (the deployable protocol).

    Args:
        val: ``(largest, best)`` IoUs of the validation split (from :func:`box_ious`).
        thresholds: the thresholds they were computed at.

    Returns:
        ``{"tau": best tau for BoxAcc(., 0.5) with the largest contour (ties: higher mean IoU), "tau_v2": {delta: tau}
        for all contours, "val_curve": validation BoxAcc(tau, 0.5) for every tau}``.
    """
    large, best = val
    curve = box_acc(large, 0.5)
    return {
        "tau": float(thresholds[_best(large, 0.5)]),
        "tau_v2": {d: float(thresholds[_best(best, d)]) for d in DELTAS},
        "val_curve": curve.tolist(),
    }


def deployable_thresholds(picks: dict) -> np.ndarray:
    """The few thresholds the deployable figures need on test: the chosen tau and the V2 taus."""
    return np.array(sorted({picks["tau"], *picks["tau_v2"].values()}))


def _index(thresholds, tau: float) -> int:
    thresholds = np.asarray(thresholds, np.float64)
    j = int(np.argmin(np.abs(thresholds - tau)))
    if not np.isclose(thresholds[j], tau, rtol=0, atol=1e-9):
        raise ValueError(f"tau {tau} is not one of the thresholds the IoUs were computed at")
    return j


def box_acc_at_val_tau(picks: dict, test: tuple, thresholds=THRESHOLDS) -> dict:
    """The deployable protocol: BoxAcc on test at the tau chosen on validation.

    Not the paper's MaxBoxAcc (which maximises over tau on the evaluated split):
    here test labels take part in no choice.

    Args:
        picks: from :func:`choose_taus` on the validation split.
        test: ``(largest, best)`` test IoUs at ``thresholds``.
        thresholds: the thresholds of ``test``'s columns (must contain the picked taus).

    Returns:
        ``{"box_acc_val_tau", "box_acc_v2_val_tau", "mean_iou" (test, largest contour, at the
        validation tau), "tau"}``.
    """
    large, best = test
    j = _index(thresholds, picks["tau"])
    v2 = [box_acc(best, d)[_index(thresholds, picks["tau_v2"][d])] for d in DELTAS]
    return {
        "box_acc_val_tau": float(box_acc(large, 0.5)[j]),
        "box_acc_v2_val_tau": float(np.mean(v2)),
        "mean_iou": float(np.asarray(large)[:, j].mean()),
        "tau": picks["tau"],
    }


def summarize(picks: dict, test: tuple, thresholds=THRESHOLDS) -> dict:
    """Both protocols for one method on test.

    Args:
        picks: from :func:`choose_taus` on validation.
        test: ``(largest, best)`` test IoUs over the whole grid ``thresholds``.
        thresholds: the grid (the paper's figures maximise over it).

    Returns:
        ``{"max_box_acc", "max_box_acc_v2", "tau_at_max"}`` (the paper's, tau chosen on test),
        ``{"box_acc_val_tau", "box_acc_v2_val_tau", "mean_iou", "tau"}`` (deployable, tau from
        validation), ``"val_curve"`` and ``"test_curve"`` (BoxAcc(tau, 0.5) on each split).
    """
    large, best = test
    curve = box_acc(large, 0.5)
    return {
        "max_box_acc": max_box_acc(large),
        "max_box_acc_v2": max_box_acc_v2(best),
        "tau_at_max": float(np.asarray(thresholds)[int(np.argmax(curve))]),
        **box_acc_at_val_tau(picks, test, thresholds),
        "val_curve": picks["val_curve"],
        "test_curve": curve.tolist(),
    }


# ------------------------------------------------------------------- baselines: the centre box, centre and random maps
CENTRE_SIDES = np.round(np.arange(0.1, 1.01, 0.05), 2)


def centre_boxes(n: int, side: float) -> np.ndarray:
    """``n`` copies of the centred square box whose side is ``side`` (fraction of the image)."""
    s = np.clip(side, 1e-3, 1.0) / 2
    return np.tile([0.5 - s, 0.5 - s, 0.5 + s, 0.5 + s], (n, 1))


def centre_baseline(val_boxes, test_boxes, sides=CENTRE_SIDES) -> dict:
    """The centre-box baseline: one centred square box for every image, whatever the image shows.

    Its side plays the role of tau: the paper-style figures take the best side on
    test, the deployable ones the side chosen on validation. IoU is the
    continuous one of :func:`helpers.boxes.iou` on normalised boxes.

    Returns:
        The keys of :func:`summarize`, with ``"side"`` (chosen on validation) and
        ``"side_at_max"`` (best on test) instead of the taus.
    """
    val_boxes = _boxes.check_unit(val_boxes, "val_boxes").reshape(-1, 4)
    test_boxes = _boxes.check_unit(test_boxes, "test_boxes").reshape(-1, 4)
    if not len(val_boxes) or not len(test_boxes):
        raise ValueError("the centre baseline needs at least one validation and one test box")
    v = np.stack([_boxes.iou(centre_boxes(len(val_boxes), s), val_boxes, pairwise=True) for s in sides], 1)
    t = np.stack([_boxes.iou(centre_boxes(len(test_boxes), s), test_boxes, pairwise=True) for s in sides], 1)
    j = _best(v, 0.5)
    curve = box_acc(t, 0.5)
    return {
        "max_box_acc": max_box_acc(t),
        "max_box_acc_v2": max_box_acc_v2(t),
        "side_at_max": float(sides[int(np.argmax(curve))]),
        "box_acc_val_tau": float(curve[j]),
        "box_acc_v2_val_tau": float(np.mean([box_acc(t, d)[_best(v, d)] for d in DELTAS])),
        "mean_iou": float(t[:, j].mean()),
        "side": float(sides[j]),
        "val_curve": box_acc(v, 0.5).tolist(),
        "test_curve": curve.tolist(),
    }


def centre_maps(n: int, size: int = 224, sigma: float = 0.25) -> np.ndarray:
    """The centre baseline as a map: a Gaussian of ``sigma`` × size at the image centre, ``(n, size, size)``."""
    r = (np.arange(size) + 0.5) / size - 0.5
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return np.broadcast_to(g / g.max(), (n, size, size)).copy()


def random_maps(n: int, size: int = 224, seed: int = 0) -> np.ndarray:
    """The random baseline: uniform noise maps ``(n, size, size)`` in [0, 1) (seeded)."""
    return np.random.default_rng(seed).random((n, size, size))


# ----------------------------------------------------------------------------------- where the thresholded region lies
def region_stats(heatmaps, gt_boxes, tau, size: int = 224) -> dict:
    """How the thresholded maps sit on the ground truth: coverage of the box and spill outside it.

    The region is the evaluation's (uint8 map strictly above ``int(tau * max)``, all
    regions); the ground-truth box is its pixel box at ``size`` (+1 convention).

    Args:
        heatmaps: ``(N, h, w)`` maps at any resolution.
        gt_boxes: ``(N, 4)`` normalised boxes.
        tau: one threshold, or one per image.
        size: the image size the maps are upsampled to.

    Returns:
        ``{"coverage": (N,) share of the box's pixels in the region, "outside": (N,) share of the
        region's pixels outside the box (0 for an empty region)}``.
    """
    gt = _boxes.check_unit(gt_boxes, "gt_boxes").reshape(-1, 4)
    taus = np.broadcast_to(np.asarray(tau, np.float64), (len(gt),))
    cover, outside = np.zeros(len(gt)), np.zeros(len(gt))
    ys, xs = np.arange(size)[:, None], np.arange(size)[None, :]
    for start in range(0, len(gt), 64):  # chunks keep the (B, size, size) masks small
        stop = min(start + 64, len(gt))
        images = _quantize(normalize_scoremaps(np.asarray(heatmaps[start:stop]), size))
        peaks = images.reshape(len(images), -1).max(axis=1).astype(np.float64)
        region = images > (taus[start:stop] * peaks).astype(np.int64)[:, None, None]
        x0, y0, x1, y1 = gt_pixel_boxes(gt[start:stop], size).T[..., None, None]
        inside = (ys >= y0) & (ys <= y1) & (xs >= x0) & (xs <= x1)
        box_px = inside.sum(axis=(1, 2))
        region_px = region.sum(axis=(1, 2))
        both = (region & inside).sum(axis=(1, 2))
        cover[start:stop] = both / np.maximum(box_px, 1)
        outside[start:stop] = np.where(region_px > 0, 1 - both / np.maximum(region_px, 1), 0.0)
    return {"coverage": cover, "outside": outside}


# --------------------------------------------------------------- MaskEvaluator: PxAP on exact masks; the pointing game
POINTING_TOLERANCE = 15  # pixels, Zhang et al.'s tolerance


def resize_masks(masks, size) -> np.ndarray:
    """Masks ``(N, H, W)`` or ``(N, H, W, 1)`` of 0/1 resized to ``size`` by nearest neighbour, as uint8."""
    import cv2

    m = np.asarray(masks)
    if m.ndim == 4 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 3:
        raise ValueError(f"masks must be (N, H, W) or (N, H, W, 1), got shape {m.shape}")
    H, W = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    out = np.empty((len(m), H, W), np.uint8)
    for i, one in enumerate(m):  # a resize per mask (cv2 is not batched)
        out[i] = cv2.resize(one.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST)
    return out


def _check_masks(scoremaps, masks) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scoremaps, np.float64)
    m = np.asarray(masks)
    if m.ndim == s.ndim + 1 and m.shape[-1] == 1:
        m = m[..., 0]
    if s.ndim == 2:
        s, m = s[None], m[None] if m.ndim == 2 else m
    if s.shape != m.shape:
        raise ValueError(f"score maps {s.shape} and masks {m.shape} must have the same shape (resize_masks)")
    return s, m


def pxap(scoremaps, masks, thresholds=THRESHOLDS, return_curve: bool = False):
    """Pixel average precision, PxAP (Choe et al., CVPR 2020, Sec. 4; wsolevaluation's ``MaskEvaluator``).

    Over the whole set, the map values of ground-truth positive pixels (mask 1)
    and negative pixels (mask 0) are counted in histograms with bin edges
    ``thresholds`` + ``[1, 2, 3]`` (pixels with another mask value, e.g. 255,
    are ignored, as the reference's "ignore" region). Read from the top bin
    down, the cumulative counts give, per threshold, true and false positives:
    precision = TP / (TP + FP), recall = TP / all positives, and
    ``PxAP = Σ precision[1:] · Δrecall`` over thresholds with a prediction.
    A fraction in [0, 1] (the reference prints ×100). A map that ranks every
    object pixel above every background pixel scores 1; a random
    map scores about the share of object pixels.

    Args:
        scoremaps: ``(N, H, W)`` maps in [0, 1] (:func:`normalize_scoremaps`).
        masks: ``(N, H, W)`` (or ``(..., 1)``) ground truth, 1 object, 0 background.
        thresholds: the threshold grid (the reference's ``np.arange(0, 1, 0.001)``).
        return_curve: also return ``(precision, recall)`` per bin.

    Raises:
        ValueError: shapes differ, maps outside [0, 1], or no positive (or no
            negative) pixel in the set.
    """
    s, m = _check_masks(scoremaps, masks)
    if not np.isfinite(s).all() or s.min() < 0 or s.max() > 1:
        raise ValueError("score maps must lie in [0, 1] (normalize_scoremaps), without NaN")
    if not (m == 1).any():
        raise ValueError("the masks have no object pixel (all empty): PxAP needs positive pixels")
    if not (m == 0).any():
        raise ValueError("the masks have no background pixel: PxAP needs negative pixels")
    edges = np.append(np.asarray(thresholds, np.float64), [1.0, 2.0, 3.0])
    pos, _ = np.histogram(s[m == 1], bins=edges)
    neg, _ = np.histogram(s[m == 0], bins=edges)
    tp = pos[::-1].cumsum().astype(np.float64)
    fp = neg[::-1].cumsum().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    recall = tp / pos.sum()
    predicted = (tp + fp) != 0
    ap = float((precision[1:] * np.diff(recall))[predicted[1:]].sum())
    return (ap, (precision, recall)) if return_curve else ap


def pointing_hits(scoremaps, masks, tolerance: float = POINTING_TOLERANCE) -> np.ndarray:
    """Pointing game hits: the map's maximum falls on the object, or near it.

    Zhang, Bargal, Lin, Brandt, Shen, Sclaroff, "Top-down Neural Attention by
    Excitation Backprop", ECCV 2016 / IJCV 2018, Sec. 5.1. A hit when the map's
    maximum lies on the object or within ``tolerance`` pixels of it (Euclidean
    distance to the nearest object pixel); the paper uses
    15 pixels at its image resolution, our default at the 224-pixel image.
    A tie for the maximum takes the first in raster order (``np.argmax``).

    Args:
        scoremaps: ``(N, H, W)`` maps at the masks' resolution.
        masks: ``(N, H, W)`` (or ``(..., 1)``) object masks, 1 = object.
        tolerance: pixels; 0 asks for the maximum on the object itself.

    Returns:
        ``(N,)`` bool.

    Raises:
        ValueError: shapes differ, no map, maps with no pixel or with NaN/inf
            values, a negative tolerance, or an empty mask.
    """
    from scipy.ndimage import distance_transform_edt

    s, m = _check_masks(scoremaps, masks)
    if s.ndim != 3 or len(s) == 0:
        raise ValueError(f"need (N, H, W) score maps of at least one image, got shape {s.shape}")
    _check_maps(s)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    obj = m == 1
    empty = ~obj.reshape(len(obj), -1).any(1)
    if empty.any():
        raise ValueError(f"empty masks (no object pixel) at {np.flatnonzero(empty)[:5].tolist()}: nothing to point at")
    flat = s.reshape(len(s), -1).argmax(1)
    ys, xs = np.unravel_index(flat, s.shape[1:])
    hits = np.empty(len(s), bool)
    for i, (y, x) in enumerate(zip(ys, xs)):  # one distance transform per image
        hits[i] = distance_transform_edt(~obj[i])[y, x] <= tolerance
    return hits


def pointing_game(scoremaps, masks, tolerance: float = POINTING_TOLERANCE) -> float:
    """Pointing-game accuracy: the share of :func:`pointing_hits`."""
    return float(pointing_hits(scoremaps, masks, tolerance).mean())


def mask_scores(heatmaps, masks, size: int = 224, tolerance: float = POINTING_TOLERANCE) -> dict:
    """PxAP and pointing game of maps at any resolution against masks (both brought to ``size``)."""
    s = normalize_scoremaps(heatmaps, size)
    m = resize_masks(masks, size)
    return {"pxap": pxap(s, m), "pointing_game": pointing_game(s, m, tolerance)}
