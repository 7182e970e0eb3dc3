"""Weakly supervised object localisation: boxes from heatmaps, measured right.

Choe, Oh, Lee, Chun, Akata, Shim. "Evaluating Weakly Supervised Object
Localization Methods Right." CVPR 2020. A heatmap thresholded at ``tau``
(relative to its maximum) gives a box; ``BoxAcc(tau, delta)`` is the share of
images whose box has IoU >= delta with the ground truth. ``MaxBoxAcc`` takes
the best tau for delta = 0.5 and the box of the largest region; ``MaxBoxAccV2``
averages delta in {0.3, 0.5, 0.7}, with boxes from all regions, the best match
kept. Tau is chosen on a held-out split and the figures are reported on test.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import boxes as _boxes

THRESHOLDS = np.round(np.arange(0.0, 1.0, 0.02), 2)
DELTAS = (0.3, 0.5, 0.7)
CENTRE_SIDES = np.round(np.arange(0.1, 1.01, 0.05), 2)


def box_ious(heatmaps, gt_boxes, thresholds=THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """IoU of the heatmap boxes with the ground truth, for every threshold.

    Args:
        heatmaps: ``(N, H, W)`` maps (any non-negative scale).
        gt_boxes: ``(N, 4)`` normalised ``[ymin, xmin, ymax, xmax]``.
        thresholds: ``(T,)`` relative thresholds.

    Returns:
        ``(largest, best)``, each ``(N, T)``: the IoU of the largest region's box,
        and the best IoU over the boxes of all regions. An empty map scores 0.
    """
    import cv2

    maps = np.asarray(heatmaps, np.float32)
    gt = _boxes.validate(gt_boxes).reshape(-1, 4)
    if maps.ndim != 3 or len(maps) != len(gt):
        raise ValueError(f"need (N, H, W) maps and (N, 4) boxes, got {maps.shape} and {gt.shape}")
    if not np.isfinite(maps).all():
        raise ValueError("heatmaps contain NaN or infinity")
    n, h, w = maps.shape
    peaks = maps.reshape(n, -1).max(axis=1)
    largest = np.zeros((n, len(thresholds)))
    best = np.zeros((n, len(thresholds)))
    scale = np.array([h, w, h, w], np.float64)
    for i in range(n):  # connected components are per image; cv2 does the pixel work
        if peaks[i] <= 0:
            continue
        for j, tau in enumerate(thresholds):
            mask = (maps[i] >= max(tau, 1e-6) * peaks[i]).astype(np.uint8)
            count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            if count <= 1:
                continue
            st = stats[1:]
            cand = np.stack([st[:, 1], st[:, 0], st[:, 1] + st[:, 3], st[:, 0] + st[:, 2]], 1) / scale
            ious = _boxes.iou(cand, gt[i : i + 1])[:, 0]
            largest[i, j] = ious[np.argmax(st[:, cv2.CC_STAT_AREA])]
            best[i, j] = ious.max()
    return largest, best


def box_acc(ious: np.ndarray, delta: float) -> np.ndarray:
    """BoxAcc for every threshold: share of images with IoU >= delta, ``(T,)``."""
    return (np.asarray(ious) >= delta).mean(axis=0)


def _best(ious: np.ndarray, delta: float) -> int:
    """Index of the highest BoxAcc(., delta); ties go to the higher mean IoU."""
    acc = box_acc(ious, delta)
    return int(np.lexsort((ious.mean(axis=0), acc))[-1])


def choose_taus(val: tuple, thresholds=THRESHOLDS) -> dict:
    """Pick the thresholds on the validation split.

    Args:
        val: ``(largest, best)`` IoUs of the validation split (from :func:`box_ious`).
        thresholds: the thresholds they were computed at.

    Returns:
        ``{"tau": best tau for BoxAcc(., 0.5) with the largest region (ties: higher mean IoU), "tau_v2": {delta: tau}
        for all regions, "val_curve": validation BoxAcc(tau, 0.5) for every tau}``.
    """
    large, best = val
    curve = box_acc(large, 0.5)
    return {
        "tau": float(thresholds[_best(large, 0.5)]),
        "tau_v2": {d: float(thresholds[_best(best, d)]) for d in DELTAS},
        "val_curve": curve.tolist(),
    }


def test_thresholds(picks: dict) -> np.ndarray:
    """The few thresholds the test split needs: the chosen tau and the V2 taus."""
    return np.array(sorted({picks["tau"], *picks["tau_v2"].values()}))


def summarize(picks: dict, test: tuple) -> dict:
    """Test figures at the validation-chosen thresholds.

    Args:
        picks: from :func:`choose_taus`.
        test: ``(largest, best)`` test IoUs at :func:`test_thresholds` of ``picks``.

    Returns:
        ``{"max_box_acc", "max_box_acc_v2", "mean_iou", "tau", "val_curve"}``.
    """
    large, best = test
    taus = list(test_thresholds(picks))
    j = taus.index(picks["tau"])
    v2 = [box_acc(best, d)[taus.index(picks["tau_v2"][d])] for d in DELTAS]
    return {
        "max_box_acc": float(box_acc(large, 0.5)[j]),
        "max_box_acc_v2": float(np.mean(v2)),
        "mean_iou": float(large[:, j].mean()),
        "tau": picks["tau"],
        "val_curve": picks["val_curve"],
    }


def centre_boxes(n: int, side: float) -> np.ndarray:
    """``n`` copies of the centred square box whose side is ``side`` (fraction of the image)."""
    s = np.clip(side, 1e-3, 1.0) / 2
    return np.tile([0.5 - s, 0.5 - s, 0.5 + s, 0.5 + s], (n, 1))


def centre_baseline(val_boxes, test_boxes, sides=CENTRE_SIDES) -> dict:
    """The centre-box baseline: one centred box for every image, its size chosen on validation."""
    val_boxes, test_boxes = np.asarray(val_boxes), np.asarray(test_boxes)
    v = np.stack([_boxes.iou(centre_boxes(len(val_boxes), s), val_boxes, pairwise=True) for s in sides], 1)
    t = np.stack([_boxes.iou(centre_boxes(len(test_boxes), s), test_boxes, pairwise=True) for s in sides], 1)
    j = _best(v, 0.5)
    v2 = [box_acc(t, d)[_best(v, d)] for d in DELTAS]
    return {
        "max_box_acc": float(box_acc(t, 0.5)[j]),
        "max_box_acc_v2": float(np.mean(v2)),
        "mean_iou": float(t[:, j].mean()),
        "tau": float(sides[j]),
        "val_curve": box_acc(v, 0.5).tolist(),
    }


def collect(
    model, pipeline, methods: dict[str, Callable], thresholds=THRESHOLDS, size: int = 224, progress=True
) -> dict:
    """Run every method over a batched split; upsampled maps' IoUs, labels and predictions.

    Args:
        model: the classifier (its top-1 class is explained).
        pipeline: batches of ``(images, boxes, labels)`` (see :func:`eval_pipeline`).
        methods: ``{name: fn(model, images) -> (B, h, w) maps}``; a method may return
            ``(maps, classes)`` (``return_class=True``), which saves a forward pass for the predictions.
        thresholds: one array for all methods, or ``{name: array}``.
        size: side of the square the maps are upsampled to before thresholding.
        progress: show a progress bar over batches.

    Returns:
        ``{"ious": {name: (largest, best)}, "boxes": (N, 4), "labels": (N,), "pred": (N,),
        "maps": {name: (N, h, w)} at their native resolution}``.
    """
    from .cam import upsample

    ious = {name: ([], []) for name in methods}
    maps: dict = {name: [] for name in methods}
    gts, labels, preds = [], [], []
    it = pipeline
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(pipeline, desc="heatmaps + boxes", unit="batch", leave=False)
    for images, bx, lab in it:  # images stay tensors: no copy through numpy
        gts.append(np.asarray(bx))
        labels.append(np.asarray(lab))
        pred = None
        for name, fn in methods.items():
            m = fn(model, images)
            if isinstance(m, tuple):  # (maps, classes): the forward pass already gave the prediction
                m, pred = m
            maps[name].append(m)
            taus = thresholds[name] if isinstance(thresholds, dict) else thresholds
            large, best = box_ious(upsample(m, size), gts[-1], taus)
            ious[name][0].append(large)
            ious[name][1].append(best)
        if pred is None:
            pred = np.argmax(np.asarray(model(images, training=False)), axis=-1)
        preds.append(np.asarray(pred))
    return {
        "ious": {k: (np.concatenate(a), np.concatenate(b)) for k, (a, b) in ious.items()},
        "boxes": np.concatenate(gts),
        "labels": np.concatenate(labels),
        "pred": np.concatenate(preds),
        "maps": {k: np.concatenate(v) for k, v in maps.items()},
    }


def eval_pipeline(ds, backbone: str, input_size: int, batch_size: int = 32):
    """TFDS split -> batches of ``(normalised images, boxes, labels)``; resized uint8 images are cached."""
    from .training import make_pipeline

    return make_pipeline(ds, backbone, input_size, batch_size, with_boxes=True)


def default_methods(model, earlier_layer: str | None = None) -> dict[str, Callable]:
    """CAM, Grad-CAM at the last and an earlier layer, Grad-CAM++ — the evaluated set."""
    from . import cam, graph

    last = graph.find_layer(model, None).name
    if earlier_layer is None:
        spatial = graph.spatial_layers(model)
        shape = model.get_layer(last).output.shape
        earlier = [n for n in spatial if model.get_layer(n).output.shape[1] > shape[1] and n.endswith("_add")]
        earlier_layer = earlier[-1] if earlier else spatial[max(0, len(spatial) - 10)]
    return {
        "CAM": lambda m, x: cam.cam(m, x, return_class=True),
        f"Grad-CAM ({last})": lambda m, x: cam.grad_cam(m, x, layer=last),
        f"Grad-CAM ({earlier_layer})": lambda m, x: cam.grad_cam(m, x, layer=earlier_layer),
        "Grad-CAM++": lambda m, x: cam.grad_cam_plus_plus(m, x, layer=last),
    }


def evaluate(model, val_ds, test_ds, backbone: str, input_size: int, methods=None, progress: bool = True) -> dict:
    """The full table: every method and the centre baseline, tau from validation, figures on test.

    The validation split is scored at every threshold; the test split only at the
    thresholds chosen on validation, which keeps test data out of every choice.

    Returns:
        ``{"methods": {name: summary}, "val": ..., "test": ..., "accuracy": test top-1}``;
        ``val``/``test`` are :func:`collect` results (maps, IoUs, boxes, labels, predictions).
    """
    methods = methods or default_methods(model)
    val = collect(model, eval_pipeline(val_ds, backbone, input_size), methods, progress=progress)
    picks = {name: choose_taus(val["ious"][name]) for name in methods}
    per_method = {name: test_thresholds(p) for name, p in picks.items()}
    test = collect(model, eval_pipeline(test_ds, backbone, input_size), methods, per_method, progress=progress)
    test["thresholds"] = per_method
    table = {name: summarize(picks[name], test["ious"][name]) for name in methods}
    table["centre box"] = centre_baseline(val["boxes"], test["boxes"])
    return {"methods": table, "val": val, "test": test, "accuracy": float((test["pred"] == test["labels"]).mean())}


def format_table(table: dict) -> str:
    """A plain-text table of the per-method figures."""
    lines = [f"{'method':34s} MaxBoxAcc  MaxBoxAccV2  mean IoU   tau"]
    for name, r in table.items():
        lines.append(
            f"{name:34s} {r['max_box_acc']:9.3f}  {r['max_box_acc_v2']:11.3f}  {r['mean_iou']:8.3f}  {r['tau']:5.2f}"
        )
    return "\n".join(lines)
