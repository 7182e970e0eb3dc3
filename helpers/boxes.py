"""Bounding boxes: one canonical format, conversions, boxes from heatmaps, IoU.

The canonical format is the TensorFlow Datasets one: normalised
``[ymin, xmin, ymax, xmax]`` with values in [0, 1] (``tfds.features.BBoxFeature``).
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12
UNIT_SLACK = 1e-6  # normalised boxes may stray this far outside [0, 1] (float round-off)


def _size(size) -> tuple[int, int]:
    """(height, width) from an int, a (H, W) pair, or an image array."""
    if isinstance(size, np.ndarray) and size.ndim >= 2:
        return int(size.shape[0]), int(size.shape[1])
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size[:2]
    return int(h), int(w)


def _as_boxes(b, name="box") -> np.ndarray:
    a = np.asarray(b, dtype=np.float64)
    if a.shape[-1:] != (4,):
        raise ValueError(f"{name} must have 4 numbers on its last axis, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return a


def validate(boxes, name="box") -> np.ndarray:
    """Check ``[ymin, xmin, ymax, xmax]`` boxes: min <= max on both axes."""
    a = _as_boxes(boxes, name)
    bad = (a[..., 0] > a[..., 2]) | (a[..., 1] > a[..., 3])
    if np.any(bad):
        first = a.reshape(-1, 4)[np.argmax(bad.reshape(-1))]
        raise ValueError(
            f"{name} {first.tolist()} has min > max; boxes are [ymin, xmin, ymax, xmax] "
            "(did you pass [xmin, ymin, xmax, ymax]?)"
        )
    return a


def check_unit(boxes, name="box") -> np.ndarray:
    """:func:`validate`, and every value in [0, 1]: normalised boxes, not pixels.

    A box in pixel units (or off the image) would give IoU 0 or another plausible
    number; it is refused instead. Round-off up to ``1e-6`` outside [0, 1] is allowed.

    Raises:
        ValueError: what :func:`validate` raises, or a value outside [0, 1] (the message names it).
    """
    a = validate(boxes, name)
    out = (a < -UNIT_SLACK) | (a > 1 + UNIT_SLACK)
    if np.any(out):
        first = a.reshape(-1, 4)[np.argmax(out.reshape(-1, 4).any(-1))]
        raise ValueError(
            f"{name} {first.tolist()} is not normalised: boxes are [ymin, xmin, ymax, xmax] with values in [0, 1] "
            "(pixel boxes: divide by the image height and width, or use xyxy_to_minmax)"
        )
    return a


def minmax_to_xyxy(box, size) -> np.ndarray:
    """Normalised ``[ymin, xmin, ymax, xmax]`` -> pixel ``[x1, y1, x2, y2]``."""
    h, w = _size(size)
    b = validate(box)
    return np.stack([b[..., 1] * w, b[..., 0] * h, b[..., 3] * w, b[..., 2] * h], axis=-1)


def xyxy_to_minmax(box, size) -> np.ndarray:
    """Pixel ``[x1, y1, x2, y2]`` -> normalised ``[ymin, xmin, ymax, xmax]``."""
    h, w = _size(size)
    b = _as_boxes(box)
    return validate(np.stack([b[..., 1] / h, b[..., 0] / w, b[..., 3] / h, b[..., 2] / w], axis=-1))


def minmax_to_xywh(box, size, center: bool = False) -> np.ndarray:
    """Normalised minmax -> pixel ``[x, y, width, height]`` (corner, or centre if ``center``)."""
    x1, y1, x2, y2 = np.moveaxis(minmax_to_xyxy(box, size), -1, 0)
    w, h = x2 - x1, y2 - y1
    if center:
        return np.stack([x1 + w / 2, y1 + h / 2, w, h], axis=-1)
    return np.stack([x1, y1, w, h], axis=-1)


def xywh_to_minmax(box, size, center: bool = False) -> np.ndarray:
    """Pixel ``[x, y, width, height]`` (corner, or centre if ``center``) -> normalised minmax."""
    x, y, w, h = np.moveaxis(_as_boxes(box), -1, 0)
    if np.any(w < 0) or np.any(h < 0):
        raise ValueError("width and height must be >= 0")
    if center:
        x, y = x - w / 2, y - h / 2
    return xyxy_to_minmax(np.stack([x, y, x + w, y + h], axis=-1), size)


def rect_to_minmax(rect, size) -> np.ndarray:
    """The normalised minmax box enclosing a (rotated) rectangle's 4 corners.

    The box is clipped to the image.

    Args:
        rect: ``(4, 2)`` points as returned by ``cv2.boxPoints``.
        size: the image, or its ``(H, W)``.
    """
    h, w = _size(size)
    r = np.asarray(rect, np.float64).reshape(-1, 2)
    box = [r[:, 1].min() / h, r[:, 0].min() / w, r[:, 1].max() / h, r[:, 0].max() / w]
    return np.clip(np.array(box), 0.0, 1.0)


def heatmap_to_box(heatmap, threshold: float = 0.2, method: str = "largest"):
    """A box around the region of a heatmap above ``threshold * max``.

    The CAM paper (Zhou et al., 2016, Sec. 3) keeps the largest connected region
    above 20% of the map's maximum.

    Threshold convention (the same as :mod:`helpers.localization`, which follows
    the reference code of Choe et al., CVPR 2020): a pixel belongs to the region
    when its value is **strictly greater** than ``threshold * max``. So
    ``threshold=0`` keeps the pixels above 0 (not the whole image), and a map
    that is 0 everywhere has no region. (The evaluation additionally quantises
    maps to uint8 and uses contours, as the reference does; the regions agree
    up to that rounding.)

    Args:
        heatmap: ``(h, w)`` map; any non-negative scale.
        threshold: relative threshold in [0, 1] (anything else is a ValueError:
            above 1 no pixel could pass, below 0 every pixel would).
        method: ``"largest"`` (box around the largest connected region),
            ``"rotated"`` (extent of that region's minimum-area rotated rectangle,
            as in the original lesson) or ``"all"`` (a list, one box per region,
            largest first).

    Returns:
        Normalised ``[ymin, xmin, ymax, xmax]`` (a list for ``"all"``), or None when
        no pixel passes (an all-zero map).
    """
    import cv2

    h = np.asarray(heatmap, np.float32)
    if h.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (h, w), got shape {h.shape}")
    if h.size == 0:
        raise ValueError(f"heatmap is empty (shape {h.shape}); it needs at least one pixel")
    if not np.isfinite(h).all():
        raise ValueError("heatmap contains NaN or infinity; normalise with max + eps")
    if method not in ("largest", "rotated", "all"):
        raise ValueError(f"method must be 'largest', 'rotated' or 'all', not {method!r}")
    if isinstance(threshold, bool) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is relative to the map's maximum and must be in [0, 1], got {threshold!r}")
    peak = float(h.max())
    if peak <= 0:
        return [] if method == "all" else None
    mask = (h > threshold * peak).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return [] if method == "all" else None
    order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable")
    H, W = h.shape

    def box_of(i):
        x, y, bw, bh = stats[i, :4]
        return np.array([y / H, x / W, (y + bh) / H, (x + bw) / W])

    if method == "all":
        return [box_of(i) for i in order]
    if method == "largest":
        return box_of(order[0])
    ys, xs = np.nonzero(labels == order[0])
    # pixel squares span [x, x+1): use their corners so a 1-px region has a 1-px box
    pts = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)]).astype(np.float32)
    return rect_to_minmax(cv2.boxPoints(cv2.minAreaRect(pts)), (H, W))


def area(boxes) -> np.ndarray:
    """Area of normalised minmax boxes (0 for degenerate ones)."""
    b = validate(boxes)
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def iou(a, b, pairwise: bool = False):
    """Intersection over union of ``[ymin, xmin, ymax, xmax]`` boxes.

    Args:
        a: ``(4,)`` or ``(N, 4)``; with ``pairwise``, any ``(..., 4)``.
        b: ``(4,)`` or ``(M, 4)``; with ``pairwise``, any ``(..., 4)``.
        pairwise: IoUs of matching boxes, the leading axes broadcast as in NumPy
            (``(2, 3, 4)`` with ``(2, 3, 4)`` gives ``(2, 3)``; with ``(4,)``, each box
            against that one) instead of the full ``(N, M)`` matrix.

    Returns:
        A float for two single boxes, ``(N, M)`` (or the broadcast shape pairwise)
        otherwise. Zero-area boxes give 0.0.

    Raises:
        ValueError: a box with min > max, NaN, a value outside [0, 1] (pixel
            units), no box at all, or a bad shape (more than one leading axis without
            ``pairwise``; shapes that do not broadcast).
    """
    A, B = check_unit(a, "a"), check_unit(b, "b")
    for name, arr in (("a", A), ("b", B)):
        if arr.size == 0:
            raise ValueError(f"{name} holds no box (shape {arr.shape}); an IoU needs at least one box on each side")
    single = A.ndim == 1 and B.ndim == 1
    if pairwise:
        try:
            lead = np.broadcast_shapes(A.shape[:-1], B.shape[:-1])
        except ValueError:
            raise ValueError(f"pairwise IoU needs shapes that broadcast, got {A.shape} and {B.shape}") from None
        P, Q = np.broadcast_to(A, (*lead, 4)), np.broadcast_to(B, (*lead, 4))
    else:
        if A.ndim > 2 or B.ndim > 2:
            raise ValueError(
                f"the IoU matrix needs (4,) or (N, 4) boxes, got {A.shape} and {B.shape}; "
                "use pairwise=True to match boxes of the same (broadcastable) shape"
            )
        P, Q = A.reshape(-1, 4)[:, None, :], B.reshape(-1, 4)[None, :, :]
    ih = np.clip(np.minimum(P[..., 2], Q[..., 2]) - np.maximum(P[..., 0], Q[..., 0]), 0, None)
    iw = np.clip(np.minimum(P[..., 3], Q[..., 3]) - np.maximum(P[..., 1], Q[..., 1]), 0, None)
    inter = ih * iw
    union = area(P) + area(Q) - inter
    out = np.where(union > _EPS, inter / np.maximum(union, _EPS), 0.0)
    return float(out.reshape(-1)[0]) if single else out


def draw_boxes(image, boxes, colors=None, labels=None, thickness: int = 2) -> np.ndarray:
    """A copy of ``image`` with normalised minmax ``boxes`` drawn (and labelled)."""
    import cv2

    img = np.ascontiguousarray(np.asarray(image, np.uint8).copy())
    bs = validate(boxes).reshape(-1, 4)
    palette = [(255, 40, 40), (40, 220, 40), (40, 120, 255), (255, 200, 0)]
    for i, bx in enumerate(bs):
        color = tuple(int(c) for c in (colors[i] if colors is not None else palette[i % len(palette)]))
        x1, y1, x2, y2 = np.rint(minmax_to_xyxy(bx, img.shape)).astype(int)
        cv2.rectangle(img, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), color, thickness)
        if labels is not None and labels[i]:
            scale = max(img.shape[0] / 600, 0.4)
            cv2.putText(
                img, str(labels[i]), (x1 + 3, max(y1 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA
            )
    return img
