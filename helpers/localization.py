"""Weakly supervised object localisation: running models over data sets, measured right.

The pipeline around :mod:`helpers.localization_metrics` (the pure metrics of
Choe et al., CVPR 2020, mirroring wsolevaluation's ``BoxEvaluator`` and
``MaskEvaluator``): :func:`collect` runs explanation methods over a batched
split and keeps the IoUs of the reference boxes, :func:`evaluate` builds the
full table of both protocols (the paper's best tau on test, the deployable tau
from validation) for :func:`default_methods`, and :func:`masked_subset`,
:func:`trust_methods` and :func:`trust_scores` put every method on every
metric (boxes, PxAP, pointing game, deletion/insertion). The metric names
(:func:`max_box_acc`, :func:`pxap`, ...) are re-exported here, so
``localization.max_box_acc`` keeps working.

Which class a map explains: the **ground-truth** class by default, as the
reference code does (``inference.py`` calls ``model(images, targets,
return_cam=True)``), so that localisation is measured apart from
classification. ``target="predicted"`` explains the top-1 class instead: what a
model used without labels explains (a variant of ours; on correctly classified
images the two coincide).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .localization_metrics import (  # noqa: F401  (re-exported: notebooks read them here)
    CENTRE_SIDES,
    DELTAS,
    POINTING_TOLERANCE,
    THRESHOLDS,
    box_acc,
    box_acc_at_val_tau,
    box_ious,
    centre_baseline,
    centre_boxes,
    centre_maps,
    check_thresholds,
    choose_taus,
    deployable_thresholds,
    evaluated_box,
    gt_pixel_boxes,
    level_boxes,
    mask_scores,
    max_box_acc,
    max_box_acc_v2,
    normalize_scoremaps,
    pixel_iou,
    pointing_game,
    pointing_hits,
    pxap,
    random_maps,
    region_stats,
    resize_masks,
    scoremap_boxes,
    summarize,
)

TARGETS = ("label", "predicted")


REPORT_KEYS = (
    "max_box_acc", "max_box_acc_v2", "box_acc_val_tau", "box_acc_v2_val_tau", "mean_iou", "tau", "side",
)  # fmt: skip


def _classes(target: str, labels):
    """The ``class_index`` to explain: the labels (``"label"``) or None, the top-1 class (``"predicted"``)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    return np.asarray(labels).astype(np.int32) if target == "label" else None


def collect(
    model,
    pipeline,
    methods: dict[str, Callable],
    thresholds=THRESHOLDS,
    size: int = 224,
    progress=True,
    target: str = "label",
) -> dict:
    """Run every method over a batched split; IoUs of the reference boxes, labels and predictions.

    Args:
        model: the classifier.
        pipeline: batches of ``(images, boxes, labels)`` (see :func:`eval_pipeline`).
        methods: ``{name: fn(model, images, class_index) -> (B, h, w) maps}``; ``class_index``
            is one class per image, or None for each image's top-1 class.
        thresholds: one array for all methods, or ``{name: array}``.
        size: side of the square the maps are upsampled to (bicubic) and min-max
            normalised at before thresholding (:func:`normalize_scoremaps`).
        progress: show a progress bar over batches.
        target: ``"label"`` explains each image's ground-truth class, as Choe et al.'s
            reference code does; ``"predicted"`` its top-1 class.

    Returns:
        ``{"ious": {name: (largest, best)}, "boxes": (N, 4), "labels": (N,), "pred": (N,),
        "maps": {name: (N, h, w)} at their native resolution, "target": target}``.

    Raises:
        ValueError: the pipeline yields no image, or an unknown ``target``.
    """
    from . import attribution

    _classes(target, [])
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
        classes = _classes(target, labels[-1])
        for name, fn in methods.items():
            m = np.asarray(fn(model, images, classes))
            maps[name].append(m)
            taus = thresholds[name] if isinstance(thresholds, dict) else thresholds
            large, best = box_ious(normalize_scoremaps(m, size), gts[-1], taus)
            ious[name][0].append(large)
            ious[name][1].append(best)
        preds.append(attribution.scores(model, images)[1])  # top-1, one compiled forward pass per model
    if not gts or not sum(len(g) for g in gts):
        raise ValueError("the split has no images: cannot evaluate localisation on an empty split")
    return {
        "ious": {k: (np.concatenate(a), np.concatenate(b)) for k, (a, b) in ious.items()},
        "boxes": np.concatenate(gts),
        "labels": np.concatenate(labels),
        "pred": np.concatenate(preds),
        "maps": {k: np.concatenate(v) for k, v in maps.items()},
        "target": target,
    }


def eval_pipeline(ds, backbone: str, input_size: int, batch_size: int = 32):
    """TFDS split -> batches of ``(normalised images, boxes, labels)``; resized uint8 images are cached."""
    from .training import make_pipeline

    return make_pipeline(ds, backbone, input_size, batch_size, with_boxes=True)


def _side(layer) -> tuple[int, int]:
    shape = layer.output.shape
    return int(shape[1]), int(shape[2])


def default_methods(model, earlier_layer: str | None = None) -> dict[str, Callable]:
    """CAM, Grad-CAM at the last spatial layer and at an earlier one, Grad-CAM++ — the evaluated set.

    Layers are found with :func:`helpers.graph.find_layer`, nested backbones included.

    Args:
        model: the classifier.
        earlier_layer: the earlier layer for Grad-CAM; None takes the last layer
            at the next higher resolution (the end of the previous stage), if any.

    Returns:
        ``{name: fn(model, images, class_index)}`` with unique names that say the layer and its resolution,
        e.g. ``"Grad-CAM (block3b_add, 28x28)"``.

    Raises:
        ValueError: ``earlier_layer`` is the last spatial layer itself.
    """
    from . import cam, graph

    last_layer = graph.find_layer(model, None)
    last, (h, w) = last_layer.name, _side(last_layer)
    if earlier_layer is None:
        finer = [graph.find_layer(model, n) for n in graph.spatial_layers(model)]
        finer = [lay for lay in finer if _side(lay)[0] > h and _side(lay)[1] > w]
        if finer:
            side = min(_side(lay) for lay in finer)
            earlier_layer = [lay for lay in finer if _side(lay) == side][-1].name
    methods = {
        "CAM": lambda m, x, c: cam.cam(m, x, c),
        f"Grad-CAM ({last}, {h}x{w})": lambda m, x, c: cam.grad_cam(m, x, c, layer=last),
    }
    if earlier_layer is not None:
        early = graph.find_layer(model, earlier_layer)
        if early.name == last:
            raise ValueError(f"earlier_layer {earlier_layer!r} is the last spatial layer; pick an earlier one")
        eh, ew = _side(early)
        methods[f"Grad-CAM ({early.name}, {eh}x{ew})"] = lambda m, x, c: cam.grad_cam(m, x, c, layer=early.name)
    methods[f"Grad-CAM++ ({last}, {h}x{w})"] = lambda m, x, c: cam.grad_cam_plus_plus(m, x, c, layer=last)
    return methods


def evaluate(
    model,
    val_ds,
    test_ds,
    backbone: str,
    input_size: int,
    methods=None,
    progress: bool = True,
    thresholds=THRESHOLDS,
    target: str = "label",
) -> dict:
    """The full table: every method and the centre baseline, both protocols.

    Both splits are scored on the whole threshold grid: validation picks tau for
    the deployable figures (:func:`box_acc_at_val_tau`); the paper's figures
    (:func:`max_box_acc`, :func:`max_box_acc_v2`) take the best tau on test.
    Each map explains the ground-truth class (``target="label"``, the paper's
    protocol) or the top-1 class (``target="predicted"``); see :func:`collect`.

    Returns:
        ``{"methods": {name: summary}, "val": ..., "test": ..., "accuracy": test top-1}``;
        a summary has the keys of :func:`summarize` (the centre box: of :func:`centre_baseline`);
        ``val``/``test`` are :func:`collect` results (maps, IoUs, boxes, labels, predictions).

    Raises:
        ValueError: an empty split.
    """
    methods = methods or default_methods(model)
    args = (methods, thresholds, input_size, progress, target)
    val = collect(model, eval_pipeline(val_ds, backbone, input_size), *args)
    test = collect(model, eval_pipeline(test_ds, backbone, input_size), *args)
    test["thresholds"] = thresholds
    table = {
        name: summarize(choose_taus(val["ious"][name], thresholds), test["ious"][name], thresholds) for name in methods
    }
    table["centre box"] = centre_baseline(val["boxes"], test["boxes"])
    return {"methods": table, "val": val, "test": test, "accuracy": float((test["pred"] == test["labels"]).mean())}


def report(table: dict) -> dict:
    """The JSON-ready figures of a table: :data:`REPORT_KEYS` of each row (no curves)."""
    return {name: {k: r[k] for k in REPORT_KEYS if k in r} for name, r in table.items()}


def format_table(table: dict) -> str:
    """A plain-text table: the paper's figures (tau on test) and the deployable ones (tau on validation)."""
    head = "paper (best τ on test)   deployable (τ from validation)"
    w = max([34, *(len(name) for name in table)])
    lines = [
        f"{'':{w}s} {head}",
        f"{'method':{w}s} MaxBoxAcc  MaxBoxAccV2  BoxAcc  BoxAccV2  mean IoU  chosen on val",
    ]
    for name, r in table.items():
        chosen = f"side {r['side']:.2f}" if "side" in r else f"τ {r['tau']:.3f}"
        lines.append(
            f"{name:{w}s} {r['max_box_acc']:9.3f}  {r['max_box_acc_v2']:11.3f}  {r['box_acc_val_tau']:6.3f}  "
            f"{r['box_acc_v2_val_tau']:8.3f}  {r['mean_iou']:8.3f}  {chosen}"
        )
    return "\n".join(lines)


def masked_subset(ds, backbone: str, input_size: int, n: int) -> dict:
    """The first ``n`` examples of a split with masks (toy_cars >= 1.1.0), ready for :func:`trust_scores`.

    Returns:
        ``{"images": (n, S, S, 3) normalised, "boxes": (n, 4), "labels": (n,), "masks": (n, S, S) uint8}``
        with ``S = input_size`` (masks resized by nearest neighbour, as the images are stretched).

    Raises:
        ValueError: the split has no ``mask`` feature, or no example.
    """
    import tensorflow_datasets as tfds

    if "mask" not in ds.element_spec:
        raise ValueError("this split has no 'mask' feature: PxAP and the pointing game need toy_cars >= 1.1.0")
    part = ds.take(n)
    masks = [resize_masks(e["mask"][None], input_size)[0] for e in tfds.as_numpy(part)]
    if not masks:
        raise ValueError("the split has no images")
    batches = list(eval_pipeline(part, backbone, input_size, batch_size=max(1, min(n, 32))))
    return {
        "images": np.concatenate([np.asarray(b[0]) for b in batches]),
        "boxes": np.concatenate([np.asarray(b[1]) for b in batches]),
        "labels": np.concatenate([np.asarray(b[2]) for b in batches]),
        "masks": np.stack(masks),
    }


def trust_methods(model, smoothgrad_samples: int = 16, ig_steps: int = 32) -> dict[str, Callable]:
    """The CAM family, the pixel attributions and two baselines, as ``{name: fn(model, images, class_index)}``.

    CAM, Grad-CAM, Grad-CAM++ and Layer-CAM (:mod:`helpers.cam`, last spatial
    layer); saliency, SmoothGrad, Integrated Gradients (``|map|``, zero
    baseline), guided backprop, guided Grad-CAM (:mod:`helpers.attribution`);
    the centre baseline (:func:`centre_maps`) and a random map (:func:`random_maps`).
    Score-CAM is left out: one forward pass per channel is too slow for this table.
    """
    from . import attribution as attr
    from . import cam

    def ig(m, x, c):
        return np.abs(attr.integrated_gradients(m, x, c, steps=ig_steps))

    return {
        "CAM": lambda m, x, c: cam.cam(m, x, c),
        "Grad-CAM": lambda m, x, c: cam.grad_cam(m, x, c),
        "Grad-CAM++": lambda m, x, c: cam.grad_cam_plus_plus(m, x, c),
        "Layer-CAM": lambda m, x, c: cam.layer_cam(m, x, c),
        "saliency": lambda m, x, c: attr.saliency(m, x, c),
        "SmoothGrad": lambda m, x, c: attr.smoothgrad(m, x, c, samples=smoothgrad_samples),
        "Integrated Gradients": ig,
        "guided backprop": lambda m, x, c: attr.guided_backprop(m, x, c),
        "guided Grad-CAM": lambda m, x, c: attr.guided_grad_cam(m, x, c),
        "centre (baseline)": lambda m, x, c: centre_maps(len(x), int(x.shape[1])),
        "random (baseline)": lambda m, x, c: random_maps(len(x), int(x.shape[1])),
    }


def trust_scores(
    model,
    subset: dict,
    methods: dict[str, Callable],
    faithfulness_subset: int = 16,
    steps: int = 28,
    size: int = 224,
    thresholds=THRESHOLDS,
    target: str = "label",
    per_image: bool = False,
) -> dict:
    """Every method on every metric: MaxBoxAcc, PxAP, pointing game, deletion and insertion AUC.

    Box and mask metrics use all images of ``subset`` (:func:`masked_subset`);
    deletion/insertion (:func:`helpers.faithfulness.causal_curves`, ``steps``
    steps, the probability of the class the map explains) use its first ``faithfulness_subset`` images, as they
    need ``2 (steps + 1)`` forward passes per image and method. MaxBoxAcc here is
    the maximum over tau on these images (the paper's protocol on a subset).
    ``thresholds`` is the tau grid for boxes (the reference's 0.001 grid by
    default; a coarser grid is much faster on noisy pixel maps, whose many
    contours are found at every tau). PxAP always uses the 0.001 grid.
    ``target``: each map explains the ground-truth class (``"label"``, as the
    box, mask and pointing-game protocols do) or the top-1 class (``"predicted"``).
    ``per_image``: also return each image's score, for intervals over images
    (:mod:`helpers.stats`); PxAP pools the pixels of all images, so it has none.

    Returns:
        ``{name: {"max_box_acc", "pxap", "pointing_game", "deletion_auc", "insertion_auc"}}``;
        with ``per_image``, each row also holds ``"per_image"``: ``{"box_hit"``
        ``(N,)`` bool, IoU >= 0.5 at the tau that gives MaxBoxAcc (so its mean is
        MaxBoxAcc; tau is chosen on these images), ``"tau"`` that tau,
        ``"pointing"`` ``(N,)`` bool hits, ``"deletion_auc"``, ``"insertion_auc"``
        ``(faithfulness_subset,)``}.
    """
    from . import faithfulness

    x = subset["images"]
    classes = _classes(target, subset["labels"])
    k = min(int(faithfulness_subset), len(x))
    out = {}
    for name, fn in methods.items():
        maps = np.asarray(fn(model, x, classes), np.float32)
        s = normalize_scoremaps(maps, size)
        largest, _ = box_ious(s, subset["boxes"], thresholds)
        m = resize_masks(subset["masks"], size)
        hits = pointing_hits(s, m)
        row = {"max_box_acc": max_box_acc(largest), "pxap": pxap(s, m), "pointing_game": float(hits.mean())}
        best = int(np.argmax(box_acc(largest, 0.5)))  # the first tau of the highest BoxAcc: MaxBoxAcc's
        each = {"box_hit": largest[:, best] >= 0.5, "tau": float(check_thresholds(thresholds)[best]), "pointing": hits}
        if k:
            cls = None if classes is None else classes[:k]
            curves = faithfulness.causal_curves(model, x[:k], maps[:k], cls, steps=steps)
            row["deletion_auc"] = float(curves["deletion"].auc.mean())
            row["insertion_auc"] = float(curves["insertion"].auc.mean())
            each["deletion_auc"], each["insertion_auc"] = curves["deletion"].auc, curves["insertion"].auc
        if per_image:
            row["per_image"] = each
        out[name] = row
    return out
