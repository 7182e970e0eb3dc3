"""Automatic checks for the project notebook (06): immediate, specific feedback.

Each ``check_*`` runs the learner's function on reference cases — edge cases
included — and prints one line per case: ✔, or ✘ with a hint that says what
differed (shape, range, value at a point, which case). It never shows a
traceback, and a function that still raises ``NotImplementedError`` is
reported as not yet implemented. :func:`score` prints the tally.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from ._quiet import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402

from . import boxes as _boxes  # noqa: E402
from . import cam as _cam  # noqa: E402
from . import viz as _viz  # noqa: E402

TASKS = ("cam", "overlay", "grad_cam", "bbox", "iou")
RESULTS: dict[str, bool | None] = {}
OK, BAD = "\u2714", "\u2718"


class CaseFailed(Exception):
    """A case failed; the message is the hint shown to the learner (and in the grader's feedback)."""


OVERLAY_CMAP = _viz.HEATMAP_CMAP
"""The colour map of task 2: the course's one perceptual colour map for heatmaps (``"inferno"``)."""


def to_input(model, image) -> np.ndarray:
    """An item's uint8 image -> the model's input batch ``(1, S, S, 3)``: resize, then ``(x - 127) / 128``.

    The same preprocessing as the training pipeline (``helpers.training.make_pipeline``): an antialiased resize
    to the model's input size, then EfficientNet-Lite's normalisation. ``cv2.resize(image, (S, S))`` followed by
    the same formula is an equally good input for the checks (see :data:`MAP_TOLERANCE`).
    """
    size = tuple(int(s) for s in model.input_shape[1:3])
    x = tf.image.resize(np.asarray(image, np.float32)[None], size, antialias=True).numpy()
    from .models import normalize_input  # the one place the normalisation is written

    return normalize_input("efficientnet_lite0", x)


MAP_TOLERANCE = 0.04
"""A map passes when its mean absolute difference from the reference is at most this.

The reference is :func:`helpers.cam.cam` / :func:`helpers.cam.grad_cam` of :func:`to_input`, upsampled bilinearly.
Measured on the check cases (``tests/test_exercises.py::test_correct_map_variants_stay_within_the_tolerance``):
correct answers written other ways — input resized with ``tf.image.resize`` (with or without antialiasing) or
``cv2.resize`` (linear, area, cubic), the map resized with OpenCV linear / cubic / area or TensorFlow bilinear /
bicubic, ReLU and normalisation before or after that resize — differ from the reference by at most 0.033 on
every case (values clipped to [0, 1] first: a cubic resize overshoots). Each mistake the hints name (softmax
probability, another class, an unnormalised input, averaging the gradient over the wrong axes, a flipped map)
differs by more than 0.08 on at least one case.
"""
BOX_TOLERANCE_PX = 1.5
"""A box passes when each of its sides is within this many pixels of the reference box.

Measured on the check maps (``tests/test_exercises.py::test_correct_box_variants_stay_within_the_tolerance``):
correct answers — ``cv2.findContours`` with ``RETR_EXTERNAL``, ``RETR_LIST`` or ``RETR_TREE`` and the largest
``cv2.contourArea``; ``cv2.connectedComponentsWithStats`` and the largest pixel count; the reference code's uint8
``cv2.threshold`` (strictly greater); the last pixel row/column as the box's end instead of one past it —
differ from the reference by at most 1 pixel per side. The box of any other region, of a hole, of all regions
together, or with x and y swapped is at least 4 pixels away on some side.
"""


# --------------------------------------------------------------------------- reference cases
def tiny_cam_model(seed: int = 0, size: int = 32, classes: int = 3, logit_scale: float = 1.0):
    """The checks' small stand-in model with fixed random weights, laid out like the course's CAM classifier.

    32x32 input -> conv ``"early"`` (32x32x6) -> conv ``"features"`` (16x16x5) -> GAP -> dense ``"logits"``
    (3 classes) -> softmax.

    It has the layout of the course's CAM classifier (so a learner's function works on both) and runs in
    milliseconds; the dense layer's weights differ across channels and classes, so a wrong class, axis or
    score gives a visibly different map. The grader's hidden cases use another seed, size and class count,
    and a ``logit_scale`` that makes the softmax saturate.
    """
    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="early")(inp)
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(classes, name="logits")(x)
    model = keras.Model(inp, keras.layers.Activation("softmax", name="predictions")(x), name="tiny_cam")
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()]
    weights[1][:] = 0.0  # no conv biases: an all-zero input gives all-zero maps
    weights[3][:] = 0.0
    weights[4] = weights[4] * np.float32(logit_scale)
    model.set_weights(weights)
    return model


def _smooth_image(rng, h: int, w: int) -> np.ndarray:
    """A low-frequency colour field with a red block: smooth, so every reasonable resize gives nearly one input."""
    field = tf.image.resize(rng.uniform(0, 255, (1, 5, 7, 3)), (h, w), method="bicubic").numpy()[0]
    img = np.clip(np.rint(field), 0, 255).astype(np.uint8)
    img[h // 4 : 3 * h // 4, w // 5 : 7 * w // 10] = [230, 60, 40]
    return img


def _items(seed: int = 1):
    rng = np.random.default_rng(seed)
    img = _smooth_image(rng, 40, 56)
    return [
        {"image": img, "label": 0, "case": "a 40x56 image, class 0"},
        {"image": img[:36, :36], "label": 2, "case": "a 36x36 image, class 2"},
        {"image": _smooth_image(rng, 24, 20), "label": 1, "case": "a 24x20 image (smaller than the input), class 1"},
    ]


def _zero_item():
    # (127 - 127) / 128 = 0 everywhere: every activation is 0, so the map is all zeros
    return {"image": np.full((32, 32, 3), 127, np.uint8), "label": 1, "case": "an all-zero map (every activation 0)"}


def reference_map(method, model, item, layer, logits: bool = True, class_index=None, unnormalised=False):
    """The expected map, or (with the options) what a typical mistake gives, at the image's size."""
    x = to_input(model, item["image"])
    if unnormalised:  # the resized image in 0..255, fed without (x - 127) / 128
        x = x * 128.0 + 127.0
    c = item["label"] if class_index is None else class_index
    if logits:
        with warnings.catch_warnings():  # the raw-pixel warning of helpers.cam: that mistake is the point here
            warnings.simplefilter("ignore", UserWarning)
            m = method(model, x, class_index=c, layer=layer)[0]
    else:  # what a learner gets by differentiating the softmax probability
        taps = keras.Model(model.input, [model.get_layer(layer).output, model.output])
        with tf.GradientTape() as tape:
            a, p = taps(x)
            s = p[:, c]
        g = tape.gradient(s, a)
        m = _cam.relu_max_scale(tf.einsum("bhwc,bc->bhw", a, tf.reduce_mean(g, axis=(1, 2)))).numpy()[0]
    return _cam.upsample(m, item["image"].shape[:2])


def map_mistakes(method, model, item, layer, softmax: bool) -> list[tuple[np.ndarray, str]]:
    """(map, hint) for the typical mistakes on one case: the hint names the cause of that map."""
    out = []
    if softmax:
        out.append(
            (
                reference_map(method, model, item, layer, logits=False),
                "your map matches Grad-CAM of the softmax *probability*; use the pre-softmax score "
                "(the output of the 'logits' layer), whose gradient does not saturate",
            )
        )
    for c in range(int(model.get_layer("logits").output.shape[-1])):
        if c != item["label"]:
            out.append(
                (
                    reference_map(method, model, item, layer, class_index=c),
                    f"your map matches class {c}'s map, not the item's class {item['label']}: "
                    "explain item['label'] (the true class), not the predicted one",
                )
            )
    out.append(
        (
            reference_map(method, model, item, layer, unnormalised=True),
            "your map matches the one of an unnormalised input: resize the image to the model's input size, "
            "then feed (x - 127) / 128 (what exercises.to_input(model, image) returns)",
        )
    )
    return out


# --------------------------------------------------------------------------- machinery
def _run(task: str, title: str, cases: list[tuple[str, Callable[[], None]]]) -> None:
    RESULTS[task] = None
    print(f"{title}")
    passed = 0
    for name, case in cases:
        try:
            case()
        except NotImplementedError:
            print("  … not yet implemented: replace the `raise NotImplementedError()` with your code")
            RESULTS[task] = None
            return
        except CaseFailed as exc:
            print(f"  {BAD} {name}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - a learner's error is feedback, not a crash
            first = str(exc).splitlines()[0][:160] if str(exc) else ""
            print(f"  {BAD} {name}: your function raised {type(exc).__name__}: {first}")
            continue
        passed += 1
        print(f"  {OK} {name}")
    ok = passed == len(cases)
    RESULTS[task] = ok
    print(f"  {'all cases pass' if ok else f'{passed}/{len(cases)} cases pass'}")


def as_map(out, shape, what: str) -> np.ndarray:
    if out is None:
        raise CaseFailed(f"{what} returned None — did you forget the `return`?")
    if tf.is_tensor(out):
        out = out.numpy()
    a = np.asarray(out, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.shape != tuple(shape):
        raise CaseFailed(
            f"shape {a.shape}, expected {tuple(shape)} (the image's height and width); resize the map to the image"
        )
    if np.isnan(a).any():
        raise CaseFailed("the map contains NaN: an all-zero map divided by its max (0) — divide by max + eps instead")
    if not np.isfinite(a).all():
        raise CaseFailed("the map contains infinity")
    # a cubic resize overshoots [0, 1] (measured on the check cases: by up to 0.18), so that much is allowed
    if a.min() < -0.3 or a.max() > 1.3:
        raise CaseFailed(
            f"values range from {a.min():.3g} to {a.max():.3g}; expected [0, 1] (ReLU, then divide by max + eps)"
        )
    return a


def compare_maps(got, want, mistakes=(), generic="check which axes you average or sum over"):
    """Pass within :data:`MAP_TOLERANCE`; otherwise name the mistake whose map ``got`` matches, if any."""
    got = np.clip(got, 0.0, 1.0)  # a cubic resize's overshoot is no mistake
    err = np.abs(got - want)
    if err.mean() <= MAP_TOLERANCE:
        return
    flips = [
        (want[::-1, ::-1], "your map is flipped: keep (height, width) order and do not reverse an axis"),
        (want[::-1], "your map is upside down: keep (height, width) order and do not reverse an axis"),
    ]
    for alt, hint in [*mistakes, *flips]:
        d = np.abs(got - alt).mean()
        if d <= MAP_TOLERANCE and d < err.mean():
            raise CaseFailed(hint)
    y, x = np.unravel_index(int(np.argmax(err)), err.shape)
    raise CaseFailed(
        f"values differ: mean difference {err.mean():.3f} (a correct map differs by less than {MAP_TOLERANCE}); "
        f"at (row {y}, col {x}) you have {got[y, x]:.3f}, expected {want[y, x]:.3f}; {generic}"
    )


def judge_map(got, want, shape, what: str, mistakes=(), generic="check which axes you average or sum over") -> None:
    """Raise :class:`CaseFailed` with a hint unless ``got`` is a map of ``shape`` close to ``want``.

    Close means within :data:`MAP_TOLERANCE`; the hint names the mistake of ``mistakes`` (``[(map, hint)]``) that
    ``got`` matches, if any.
    """
    compare_maps(as_map(got, shape, what), want, mistakes, generic)


# --------------------------------------------------------------------------- the checks
def check_cam(generate_cam) -> None:
    """Task 1: ``generate_cam(model, item, layer_name)`` -> CAM at the image's size, in [0, 1]."""
    model = tiny_cam_model()

    def case(item):
        def run():
            want = reference_map(_cam.cam, model, item, "features")
            got = as_map(generate_cam(model, dict(item), "features"), item["image"].shape[:2], "generate_cam")
            compare_maps(
                got,
                want,
                map_mistakes(_cam.cam, model, item, "features", softmax=False),
                "check the maps' layer, the kernel's column (item['label']) and the sum over channels",
            )

        return item["case"], run

    _run("cam", "Task 1 — CAM", [case(i) for i in _items()] + [case(_zero_item())])


def overlay_reference(image, heat, alpha: float, cmap: str = OVERLAY_CMAP) -> np.ndarray:
    """Task 2's expected blend (float): resize the heatmap bilinearly to the image, colour it, then blend."""
    colored = _viz.colorize(_cam.upsample(heat, image.shape[:2]), cmap=cmap).astype(np.float64)
    return (1 - alpha) * image.astype(np.float64) + alpha * colored


def judge_overlay(got, image, heat, alpha: float) -> None:
    """Raise :class:`CaseFailed` with a hint unless ``got`` is task 2's blend of ``heat`` over ``image``.

    Tolerances: at ``alpha = 0`` every pixel within 1 level of the image; otherwise a mean difference of at most
    4 levels (6 at ``alpha = 1``, where the colours alone decide), which bilinear resizes written with OpenCV or
    TensorFlow meet. A wrong blend is compared with what typical mistakes give — colouring the small map and
    resizing the colours, BGR channels (``cv2.applyColorMap``), the old ``jet`` colour map — and the hint names it.
    """
    import cv2

    if got is None:
        raise CaseFailed("returned None — did you forget the `return`?")
    got = np.asarray(got)
    if got.shape != image.shape:
        raise CaseFailed(
            f"shape {got.shape}, expected the image's {image.shape}: resize the heatmap to the image first"
        )
    if got.dtype != np.uint8:
        raise CaseFailed(f"dtype {got.dtype}, expected uint8 (round and clip to 0..255)")
    got = got.astype(np.float64)
    if alpha == 0:
        if np.abs(got - image).max() > 1:
            raise CaseFailed(
                "with alpha=0 the result must be the image itself: blend (1 - alpha) * image + alpha * heat"
            )
        return
    want = overlay_reference(image, heat, alpha)
    diff = np.abs(got - want).mean()
    if diff <= (6 if alpha >= 1 else 4):
        return
    img = image.astype(np.float64)
    colour_first = cv2.resize(_viz.colorize(heat, cmap=OVERLAY_CMAP), (image.shape[1], image.shape[0]))
    bgr = _viz.colorize(_cam.upsample(heat, image.shape[:2]), cmap=OVERLAY_CMAP)[..., ::-1]
    suspects = [
        (colour_first, "you coloured the small map and then resized the colours: resize the heatmap bilinearly "
         "to the image first, then colour it"),
        (bgr, "your colours are in BGR order (cv2.applyColorMap returns BGR): use matplotlib.colormaps"
         f"[{OVERLAY_CMAP!r}], whose RGB channels match the image"),
        (_viz.colorize(_cam.upsample(heat, image.shape[:2]), cmap="jet"),
         f"your colours are the 'jet' colour map: use the course's perceptual map, {OVERLAY_CMAP!r}"),
    ]  # fmt: skip
    for colored, hint in suspects:
        if np.abs(got - ((1 - alpha) * img + alpha * colored)).mean() < diff / 2:
            raise CaseFailed(f"mean difference {diff:.0f} levels — {hint}")
    raise CaseFailed(
        f"alpha={alpha:g}: mean difference {diff:.0f} levels from (1 - alpha) * image + alpha * colorized heatmap "
        f"(matplotlib {OVERLAY_CMAP!r}, RGB, scaled to 0..255) — a nearest-neighbour resize instead of bilinear? "
        "a heatmap not scaled to 0..255? alpha on the wrong term?"
    )


def check_overlay(visualize_cam_on_image) -> None:
    """Task 2: ``visualize_cam_on_image(image, cam_image, alpha)`` -> uint8 blend at the image's size."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (30, 44, 3), dtype=np.uint8)
    heat = rng.random((7, 7)).astype(np.float32)

    def case(alpha, h=heat):
        return lambda: judge_overlay(visualize_cam_on_image(image.copy(), h.copy(), alpha), image, h, alpha)

    _run(
        "overlay",
        "Task 2 — overlay",
        [
            ("alpha = 0", case(0.0)),
            ("alpha = 1", case(1.0)),
            ("alpha = 0.5", case(0.5)),
            ("an all-zero heatmap", case(0.4, np.zeros((7, 7), np.float32))),
        ],
    )


def check_grad_cam(generate_grad_cam) -> None:
    """Task 3: ``generate_grad_cam(model, activation_layer, item)`` -> Grad-CAM at the image's size."""
    model = tiny_cam_model()

    def case(item, layer):
        def run():
            want = reference_map(_cam.grad_cam, model, item, layer)
            got = as_map(generate_grad_cam(model, layer, dict(item)), item["image"].shape[:2], "generate_grad_cam")
            compare_maps(
                got,
                want,
                map_mistakes(_cam.grad_cam, model, item, layer, softmax=True),
                "check which axes you average the gradient over (height and width: one weight per channel)",
            )

        return f"{item['case']}, layer {layer!r}", run

    items = _items()
    _run(
        "grad_cam",
        "Task 3 — Grad-CAM",
        [
            case(items[0], "features"),
            case(items[1], "features"),
            case(items[0], "early"),
            case(items[2], "early"),
            case(_zero_item(), "features"),
        ],
    )


def as_box(got, what="get_bbox"):
    if got is None:
        raise CaseFailed(f"{what} returned None for a map with a region above the threshold")
    b = np.asarray(got, np.float64).reshape(-1)
    if b.shape != (4,):
        raise CaseFailed(f"returned {b.shape[0]} numbers; a box is [ymin, xmin, ymax, xmax]")
    if (b < -1e-6).any() or (b > 1 + 1e-6).any():
        raise CaseFailed(
            f"box {np.round(b, 3).tolist()} is not normalised: divide rows by the height, columns by the width"
        )
    return b


RETRIEVAL_MODES = ("RETR_EXTERNAL", "RETR_LIST", "RETR_TREE")


def bbox_maps() -> list[tuple[str, np.ndarray]]:
    """The heatmaps of task 4's check, ``(case, (40, 60) map)``: regions of different sizes in different places.

    In every retrieval mode of ``cv2.findContours`` (:data:`RETRIEVAL_MODES`), some map has its largest region
    listed *after* another and some map *before* another (``tests/test_exercises.py`` asserts it), so a learner
    who takes ``contours[0]`` or ``contours[-1]`` fails whichever order OpenCV uses. The largest region is never
    the brightest, and one map is smooth (two Gaussian blobs), like a real CAM.
    """
    H, W = 40, 60
    three = np.zeros((H, W), np.float32)
    three[2:7, 4:10] = 1.0  # small, brightest, top
    three[14:28, 20:50] = 0.7  # large, middle
    three[33:38, 8:16] = 0.9  # small, bottom
    top = np.zeros((H, W), np.float32)
    top[3:18, 30:56] = 0.8  # large, top right
    top[26:34, 5:14] = 1.0  # small, bottom left
    bottom = np.zeros((H, W), np.float32)
    bottom[4:10, 44:52] = 1.0  # small, top right
    bottom[18:37, 3:30] = 0.6  # large, bottom left
    ring = np.zeros((H, W), np.float32)
    ring[10:34, 30:56] = 0.75  # large, with a hole
    ring[16:28, 38:48] = 0.0
    ring[12:20, 4:12] = 1.0  # small, left
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    blobs = 1.0 * np.exp(-((yy - 9) ** 2 + (xx - 10) ** 2) / (2 * 2.5**2))  # small, bright
    blobs += 0.8 * np.exp(-((yy - 26) ** 2 + (xx - 38) ** 2) / (2 * 7.0**2))  # large, dimmer
    return [
        ("three regions, the largest in the middle", three),
        ("two regions, the largest at the top", top),
        ("two regions, the largest at the bottom", bottom),
        ("a region with a hole, and a smaller one", ring),
        ("two smooth blobs, the larger one dimmer", blobs.astype(np.float32)),
    ]


def _boxes_by_retrieval_mode(mask) -> dict[str, list[np.ndarray]]:
    """For each retrieval mode, the normalised boxes of the contours in the order ``cv2.findContours`` lists them."""
    import cv2

    H, W = mask.shape
    out = {}
    for mode in RETRIEVAL_MODES:
        contours, _ = cv2.findContours(mask, getattr(cv2, mode), cv2.CHAIN_APPROX_SIMPLE)
        rects = [cv2.boundingRect(c) for c in contours]
        out[mode] = [np.array([y / H, x / W, (y + h) / H, (x + w) / W]) for x, y, w, h in rects]
    return out


def _close_box(b, ref, shape) -> bool:
    h, w = shape
    return np.abs((np.asarray(b) - np.asarray(ref)) * np.array([h, w, h, w])).max() <= BOX_TOLERANCE_PX


def _diagnose_box(b, m, want, thresh) -> None:
    """Raise :class:`CaseFailed` naming the mistake whose box ``b`` matches (``want`` is the right box)."""
    if _close_box(b, want[[1, 0, 3, 2]], m.shape):
        raise CaseFailed("coordinates are swapped: the canonical format is [ymin, xmin, ymax, xmax] (rows first)")
    absolute = _boxes.heatmap_to_box(m, thresh / m.max()) if m.max() > thresh else None  # pixels above thresh
    if absolute is not None and not _close_box(absolute, want, m.shape) and _close_box(b, absolute, m.shape):
        raise CaseFailed(
            "the threshold must be relative to the map's maximum (keep pixels >= score_thresh * max): "
            "your box is the one of an absolute threshold"
        )
    mask = (m >= thresh * m.max()).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    H, W = m.shape
    union = np.array([ys.min() / H, xs.min() / W, (ys.max() + 1) / H, (xs.max() + 1) / W])
    if _close_box(b, union, m.shape):
        raise CaseFailed(
            "your box spans every pixel above the threshold, all regions together: split the mask into "
            "connected regions (cv2.findContours) and keep the largest"
        )
    matches: dict[str, list[str]] = {}  # "contours[0]" -> the retrieval modes that list that box there
    for mode, listed in _boxes_by_retrieval_mode(mask).items():
        for i, other in enumerate(listed):
            if _close_box(b, other, m.shape) and not _close_box(other, want, m.shape):
                which = "contours[0]" if i == 0 else "contours[-1]" if i == len(listed) - 1 else f"contours[{i}]"
                matches.setdefault(which, []).append(mode)
    if matches:
        which, modes = next(iter(sorted(matches.items(), key=lambda kv: kv[0] != "contours[0]")))
        raise CaseFailed(
            f"you returned the box of a smaller contour: the one cv2.findContours lists as {which} "
            f"(with {', '.join(modes)}). OpenCV lists contours in the order it finds them, not by size: "
            "keep the largest, max(contours, key=cv2.contourArea)"
        )
    raise CaseFailed(f"box {np.round(b, 3).tolist()}, expected about {np.round(want, 3).tolist()}")


def judge_box(got, heatmap, thresh: float) -> None:
    """Raise :class:`CaseFailed` with a hint unless ``got`` is task 4's box of ``heatmap`` at ``thresh``.

    The expected box is :func:`helpers.boxes.heatmap_to_box` (largest region above ``thresh * max``), or None
    for a map without a positive maximum; a box passes within :data:`BOX_TOLERANCE_PX` per side.
    """
    m = np.asarray(heatmap, np.float64)
    want = _boxes.heatmap_to_box(m, thresh) if m.max() > 0 else None
    if want is None:
        if got is not None:
            raise CaseFailed(f"a map whose maximum is <= 0 has no region: return None, not {got!r}")
        return
    if got is None and m.max() <= thresh:
        raise CaseFailed(
            "you returned None, but the region above score_thresh * max is not empty: the threshold is relative "
            "to the map's maximum, not an absolute value"
        )
    b = as_box(got)
    if not _close_box(b, want, m.shape):
        _diagnose_box(b, m, want, thresh)


def check_bbox(get_bbox) -> None:
    """Task 4: ``get_bbox(cam_image, score_thresh)`` -> normalised ``[ymin, xmin, ymax, xmax]`` or None.

    A box passes within :data:`BOX_TOLERANCE_PX` of :func:`helpers.boxes.heatmap_to_box` (largest region).
    A wrong box is compared with the boxes of every other contour (in the order each retrieval mode lists
    them), with the box of all regions together and with the swapped box, and the hint names the one it matches.
    """
    thresh = 0.5

    def largest(m):
        return lambda: judge_box(get_bbox(m.copy(), thresh), m, thresh)

    maps = bbox_maps()
    scaled = maps[0][1]

    def relative():
        got = get_bbox(scaled * 0.4, thresh)
        unscaled = get_bbox(scaled.copy(), thresh)
        if got is None or unscaled is None or not _close_box(as_box(got), as_box(unscaled), scaled.shape):
            raise CaseFailed(
                "the threshold must be relative to the map's maximum: scaling the map must not change the box"
            )
        judge_box(got, scaled, thresh)  # the same box, wrong for another reason: say which

    def untouched():
        m = scaled.copy()
        get_bbox(m, thresh)
        if not np.array_equal(m, scaled):
            raise CaseFailed("your function modified the heatmap it was given: work on a copy")

    _run(
        "bbox",
        "Task 4 — box from a heatmap",
        [(name, largest(m)) for name, m in maps]
        + [
            ("scaled map (x 0.4)", relative),
            ("all-zero map", largest(np.zeros((8, 8), np.float32))),
            ("input left unchanged", untouched),
        ],
    )


def judge_iou(got, a, b, hint: str) -> None:
    """Raise :class:`CaseFailed` unless ``got`` is the IoU of boxes ``a`` and ``b`` to 1e-6.

    ``hint`` says what the case tests. An intersection left unclamped (negative height times negative width) is
    named as such.
    """
    if got is None:
        raise CaseFailed("returned None — did you forget the `return`?")
    try:
        got = float(np.asarray(got, np.float64).reshape(()))
    except (TypeError, ValueError):
        raise CaseFailed(f"returned {type(got).__name__} {str(got)[:40]!r}, expected one float") from None
    want = _boxes.iou(a, b)
    if not np.isfinite(got):
        raise CaseFailed(f"IoU {got}: {hint}")
    if abs(got - want) <= 1e-6:
        return
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    inter = (min(a[2], b[2]) - max(a[0], b[0])) * (min(a[3], b[3]) - max(a[1], b[1]))  # not clamped
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if want == 0 and union > 0 and abs(got - inter / union) <= 1e-6:
        raise CaseFailed(
            f"IoU {got:.4f}, expected 0: the boxes do not overlap, yet your intersection is not 0 — clamp its height "
            "and width at 0 (two negative sides multiply to a positive area)"
        )
    raise CaseFailed(f"IoU {got:.4f}, expected {want:.4f}: {hint}")


def check_iou(get_iou) -> None:
    """Task 5: ``get_iou(gt_bbox, pred_bbox)`` -> IoU of two ``[ymin, xmin, ymax, xmax]`` boxes."""

    def case(a, b, hint):
        return lambda: judge_iou(get_iou(np.array(a, np.float64), np.array(b, np.float64)), a, b, hint)

    _run(
        "iou",
        "Task 5 — IoU",
        [
            ("overlapping boxes", case([0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75], "intersection / union")),
            ("identical boxes", case([0.1, 0.2, 0.6, 0.9], [0.1, 0.2, 0.6, 0.9], "a box with itself has IoU 1")),
            ("disjoint boxes", case([0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9],
                                    "clamp the intersection's height and width at 0")),
            ("one box inside the other", case([0.0, 0.0, 1.0, 1.0], [0.25, 0.25, 0.75, 0.75],
                                               "inner area / outer area")),
            ("two zero-area boxes", case([0.3, 0.3, 0.3, 0.3], [0.3, 0.3, 0.3, 0.3],
                                         "the union is 0: return 0.0 instead of dividing by it")),
            ("wide vs tall box", case([0.0, 0.0, 0.2, 1.0], [0.0, 0.0, 1.0, 0.2],
                                      "mixing up the y and x coordinates gives a wrong area")),
        ],
    )  # fmt: skip


TAUS = np.round(np.arange(0.05, 1.0, 0.05), 2)  # the thresholds tried on validation


def iou_table(test_items, methods: dict, get_bbox, get_iou, val_items, thresholds=TAUS) -> dict | None:
    """Per heatmap method: tau chosen on validation, then mean IoU and BoxAcc on test — with the learner's code.

    Choe et al. (CVPR 2020) choose the threshold on a held-out split and report on test (notebook 05): here
    BoxAcc(tau, 0.5) is computed on ``val_items`` for every tau in ``thresholds`` with the learner's ``get_bbox``
    and ``get_iou``, the best tau is kept (:func:`helpers.localization_metrics.choose_taus`: ties go to the higher mean
    IoU), and the test figures are measured at that tau.

    Args:
        test_items: dataset items (dicts with ``image``, ``label``, ``bbox``) to report on.
        methods: ``{name: fn(item) -> heatmap at the image's size}``.
        get_bbox: the learner's task-4 function.
        get_iou: the learner's task-5 function.
        val_items: items of the validation split, to choose tau on.
        thresholds: the taus tried.

    Returns:
        ``{name: {"tau", "val_box_acc", "mean_iou", "box_acc"}}``, or None (with a note) while a task is a TODO.
    """
    from . import localization_metrics

    def ious(heatmaps, items, taus):
        out = np.zeros((len(items), len(taus)))
        for i, (heat, item) in enumerate(zip(heatmaps, items)):
            for j, tau in enumerate(taus):
                box = get_bbox(heat, float(tau))
                out[i, j] = 0.0 if box is None else float(get_iou(item["bbox"], box))
        return out

    table = {}
    try:
        for name, fn in methods.items():
            val = ious([fn(it) for it in val_items], val_items, thresholds)
            tau = localization_metrics.choose_taus((val, val), thresholds)["tau"]
            j = int(np.argmin(np.abs(np.asarray(thresholds) - tau)))
            test = ious([fn(it) for it in test_items], test_items, [tau])[:, 0]
            table[name] = {
                "tau": tau,
                "val_box_acc": float(np.mean(val[:, j] >= 0.5)),
                "mean_iou": float(test.mean()),
                "box_acc": float(np.mean(test >= 0.5)),
            }
    except NotImplementedError:
        print("finish tasks 1, 3, 4 and 5 first: this table uses your functions")
        return None
    n_val, n_test = len(val_items), len(test_items)
    print(f"tau chosen on {n_val} validation images; mean IoU and BoxAcc (IoU >= 0.5) on {n_test} test images")
    print(f"{'method':38s} {'tau':>5s}  {'val BoxAcc':>10s}  {'test mean IoU':>13s}  {'test BoxAcc':>11s}")
    for name, r in table.items():
        print(f"{name:38s} {r['tau']:5.2f}  {r['val_box_acc']:10.2f}  {r['mean_iou']:13.2f}  {r['box_acc']:11.2f}")
    return table


def implemented(fn: Callable, *args) -> bool:
    """True when ``fn(*args)`` runs; False (with a note) when it is still a TODO."""
    try:
        fn(*args)
    except NotImplementedError:
        print(f"({fn.__name__} is not implemented yet — this cell will show its result once it is)")
        return False
    return True


def tally() -> str:
    """The score so far, e.g. ``"4/5 tasks"``."""
    return f"{sum(1 for t in TASKS if RESULTS.get(t))}/{len(TASKS)} tasks"


def score() -> None:
    """Print the tally, e.g. ``Score: 4/5 tasks``, and each task's state."""
    lines = [f"  {OK if RESULTS.get(t) else ('…' if RESULTS.get(t) is None else BAD)} {t}" for t in TASKS]
    print(f"Score: {tally()}\n" + "\n".join(lines))
