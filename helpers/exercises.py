"""Automatic checks for the project notebook (06): immediate, specific feedback.

Each ``check_*`` runs the learner's function on reference cases — edge cases
included — and prints one line per case: ✔, or ✘ with a hint that says what
differed (shape, range, value at a point, which case). It never shows a
traceback, and a function that still raises ``NotImplementedError`` is
reported as not yet implemented. :func:`score` prints the tally.
"""

from __future__ import annotations

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


class _Fail(Exception):
    """A case failed; the message is the hint."""


def to_input(model, image) -> np.ndarray:
    """An item's uint8 image -> the model's input batch ``(1, S, S, 3)`` (resize + normalise)."""
    size = tuple(int(s) for s in model.input_shape[1:3])
    x = tf.image.resize(np.asarray(image, np.float32)[None], size, antialias=True).numpy()
    return (x - 127.0) / 128.0


# --------------------------------------------------------------------------- reference cases
def tiny_cam_model(seed: int = 0):
    """A small GAP classifier with fixed random weights: conv (named "features") -> GAP -> "logits" -> softmax."""
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="early")(inp)
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inp, keras.layers.Activation("softmax", name="predictions")(x), name="tiny_cam")
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()]
    weights[1][:] = 0.0  # no conv biases: an all-zero input gives all-zero maps
    weights[3][:] = 0.0
    model.set_weights(weights)
    return model


def _items(seed: int = 1):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    img[10:30, 12:40] = [230, 60, 40]
    return [
        {"image": img, "label": 0, "case": "a 40x56 image, class 0"},
        {"image": img[:36, :36], "label": 2, "case": "a 36x36 image, class 2"},
    ]


def _zero_item():
    # (127 - 127) / 128 = 0 everywhere: every activation is 0, so the map is all zeros
    return {"image": np.full((32, 32, 3), 127, np.uint8), "label": 1, "case": "an all-zero map (every activation 0)"}


def _reference_map(method, model, item, layer, logits: bool = True):
    x = to_input(model, item["image"])
    if logits:
        m = method(model, x, class_index=item["label"], layer=layer)[0]
    else:  # what a learner gets by differentiating the softmax probability
        taps = keras.Model(model.input, [model.get_layer(layer).output, model.output])
        with tf.GradientTape() as tape:
            a, p = taps(x)
            s = p[:, item["label"]]
        g = tape.gradient(s, a)
        m = _cam.normalize(tf.einsum("bhwc,bc->bhw", a, tf.reduce_mean(g, axis=(1, 2)))).numpy()[0]
    return _cam.upsample(m, item["image"].shape[:2])


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
        except _Fail as exc:
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


def _as_map(out, shape, what: str) -> np.ndarray:
    if out is None:
        raise _Fail(f"{what} returned None — did you forget the `return`?")
    if tf.is_tensor(out):
        out = out.numpy()
    a = np.asarray(out, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.shape != tuple(shape):
        raise _Fail(
            f"shape {a.shape}, expected {tuple(shape)} (the image's height and width); resize the map to the image"
        )
    if np.isnan(a).any():
        raise _Fail("the map contains NaN: an all-zero map divided by its max (0) — divide by max + eps instead")
    if not np.isfinite(a).all():
        raise _Fail("the map contains infinity")
    if a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise _Fail(
            f"values range from {a.min():.3g} to {a.max():.3g}; expected [0, 1] (ReLU, then divide by max + eps)"
        )
    return a


def _compare_maps(got, want, softmax_version=None):
    err = np.abs(got - want)
    if err.mean() < 0.02 and err.max() < 0.2:
        return
    if softmax_version is not None and np.abs(got - softmax_version).mean() < 0.02:
        raise _Fail(
            "your map matches Grad-CAM of the softmax *probability*; use the pre-softmax score "
            "(the output of the 'logits' layer), whose gradient does not saturate"
        )
    y, x = np.unravel_index(int(np.argmax(err)), err.shape)
    flipped = np.abs(got - want[::-1, ::-1]).mean() < 0.02
    transposed = got.shape == want.T.shape and np.abs(got - want.T).mean() < 0.02
    if flipped or transposed:
        raise _Fail("your map is flipped or transposed: keep (height, width) order")
    raise _Fail(
        f"values differ: at (row {y}, col {x}) you have {got[y, x]:.3f}, expected {want[y, x]:.3f} "
        f"(mean difference {err.mean():.3f}); check which axes you average or sum over"
    )


# --------------------------------------------------------------------------- the checks
def check_cam(generate_cam) -> None:
    """Task 1: ``generate_cam(model, item, layer_name)`` -> CAM at the image's size, in [0, 1]."""
    model = tiny_cam_model()

    def case(item):
        def run():
            want = _reference_map(_cam.cam, model, item, "features")
            got = _as_map(generate_cam(model, dict(item), "features"), item["image"].shape[:2], "generate_cam")
            _compare_maps(got, want)

        return item["case"], run

    _run("cam", "Task 1 — CAM", [case(i) for i in _items()] + [case(_zero_item())])


def check_overlay(visualize_cam_on_image) -> None:
    """Task 2: ``visualize_cam_on_image(image, cam_image, alpha)`` -> uint8 blend at the image's size."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (30, 44, 3), dtype=np.uint8)
    heat = rng.random((7, 7)).astype(np.float32)

    def out(alpha, h=heat):
        got = visualize_cam_on_image(image.copy(), h, alpha)
        if got is None:
            raise _Fail("returned None — did you forget the `return`?")
        got = np.asarray(got)
        if got.shape != image.shape:
            raise _Fail(f"shape {got.shape}, expected the image's {image.shape}: resize the heatmap to the image first")
        if got.dtype != np.uint8:
            raise _Fail(f"dtype {got.dtype}, expected uint8 (round and clip to 0..255)")
        return got.astype(int)

    def alpha0():
        if np.abs(out(0.0) - image).max() > 1:
            raise _Fail("with alpha=0 the result must be the image itself: blend (1 - alpha) * image + alpha * heat")

    def alpha1():
        want = _viz.colorize(_cam.upsample(heat, image.shape[:2]))
        diff = np.abs(out(1.0) - want.astype(int)).mean()
        if diff > 6:
            raise _Fail(
                f"with alpha=1 the result must be the colorized heatmap (matplotlib 'jet', RGB); mean difference "
                f"{diff:.0f} levels — BGR from cv2.applyColorMap? a heatmap not scaled to 0..255?"
            )

    def half():
        want = 0.5 * image + 0.5 * _viz.colorize(_cam.upsample(heat, image.shape[:2]))
        if np.abs(out(0.5) - want).mean() > 4:
            raise _Fail("alpha=0.5 must give the average of image and colorized heatmap")

    def zeros():
        out(0.4, np.zeros((7, 7), np.float32))

    _run(
        "overlay",
        "Task 2 — overlay",
        [("alpha = 0", alpha0), ("alpha = 1", alpha1), ("alpha = 0.5", half), ("an all-zero heatmap", zeros)],
    )


def check_grad_cam(generate_grad_cam) -> None:
    """Task 3: ``generate_grad_cam(model, activation_layer, item)`` -> Grad-CAM at the image's size."""
    model = tiny_cam_model()

    def case(item, layer):
        def run():
            want = _reference_map(_cam.grad_cam, model, item, layer)
            soft = _reference_map(_cam.grad_cam, model, item, layer, logits=False)
            got = _as_map(generate_grad_cam(model, layer, dict(item)), item["image"].shape[:2], "generate_grad_cam")
            _compare_maps(got, want, soft)

        return f"{item['case']}, layer {layer!r}", run

    items = _items()
    _run(
        "grad_cam",
        "Task 3 — Grad-CAM",
        [
            case(items[0], "features"),
            case(items[1], "features"),
            case(items[0], "early"),
            case(_zero_item(), "features"),
        ],
    )


def _as_box(got, what="get_bbox"):
    if got is None:
        raise _Fail(f"{what} returned None for a map with a region above the threshold")
    b = np.asarray(got, np.float64).reshape(-1)
    if b.shape != (4,):
        raise _Fail(f"returned {b.shape[0]} numbers; a box is [ymin, xmin, ymax, xmax]")
    if (b < -1e-6).any() or (b > 1 + 1e-6).any():
        raise _Fail(f"box {np.round(b, 3).tolist()} is not normalised: divide rows by the height, columns by the width")
    return b


def check_bbox(get_bbox) -> None:
    """Task 4: ``get_bbox(cam_image, score_thresh)`` -> normalised ``[ymin, xmin, ymax, xmax]`` or None."""
    h = np.zeros((40, 60), np.float32)
    h[4:10, 6:12] = 1.0  # small, bright
    h[20:36, 30:56] = 0.7  # large, dimmer
    want = np.array([20 / 40, 30 / 60, 36 / 40, 56 / 60])

    def close(b, ref, tol=1.5):
        return np.abs((b - ref) * np.array([40, 60, 40, 60])).max() <= tol

    def largest():
        b = _as_box(get_bbox(h.copy(), 0.5))
        if close(b, [want[1], want[0], want[3], want[2]]):
            raise _Fail("coordinates are swapped: the canonical format is [ymin, xmin, ymax, xmax] (rows first)")
        if close(b, [4 / 40, 6 / 60, 10 / 40, 12 / 60]):
            raise _Fail("you returned the box of another region: keep the *largest* one (not contours[0])")
        if not close(b, want):
            raise _Fail(f"box {np.round(b, 3).tolist()}, expected about {np.round(want, 3).tolist()}")

    def relative():
        got = get_bbox(h.copy() * 0.4, 0.5)
        if got is None or not close(_as_box(got), want):
            raise _Fail("the threshold must be relative to the map's maximum: scaling the map must not change the box")

    def empty():
        got = get_bbox(np.zeros((8, 8), np.float32), 0.5)
        if got is not None:
            raise _Fail(f"an all-zero map has no region: return None, not {got!r}")

    def untouched():
        m = h.copy()
        get_bbox(m, 0.5)
        if not np.array_equal(m, h):
            raise _Fail("your function modified the heatmap it was given: work on a copy")

    _run(
        "bbox",
        "Task 4 — box from a heatmap",
        [("two regions: keep the largest", largest), ("scaled map", relative), ("all-zero map", empty),
         ("input left unchanged", untouched)],
    )  # fmt: skip


def check_iou(get_iou) -> None:
    """Task 5: ``get_iou(gt_bbox, pred_bbox)`` -> IoU of two ``[ymin, xmin, ymax, xmax]`` boxes."""

    def value(a, b):
        got = get_iou(np.array(a, np.float64), np.array(b, np.float64))
        if got is None:
            raise _Fail("returned None — did you forget the `return`?")
        return float(got)

    def case(a, b, hint):
        def run():
            want = _boxes.iou(a, b)
            got = value(a, b)
            if not np.isfinite(got):
                raise _Fail(f"IoU {got}: {hint}")
            if abs(got - want) > 1e-6:
                raise _Fail(f"IoU {got:.4f}, expected {want:.4f}: {hint}")

        return run

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


def iou_table(items, methods: dict, get_bbox, get_iou, threshold: float) -> dict | None:
    """Mean IoU and share of IoU >= 0.5 for each heatmap method, with the learner's box and IoU functions.

    Args:
        items: dataset items (dicts with ``image``, ``label``, ``bbox``).
        methods: ``{name: fn(item) -> heatmap at the image's size}``.
        get_bbox: the learner's task-4 function.
        get_iou: the learner's task-5 function.
        threshold: relative threshold passed to ``get_bbox``.

    Returns:
        ``{name: {"mean_iou", "box_acc"}}``, or None (with a note) while a task is a TODO.
    """
    table = {}
    try:
        for name, fn in methods.items():
            ious = []
            for item in items:
                box = get_bbox(fn(item), threshold)
                ious.append(0.0 if box is None else float(get_iou(item["bbox"], box)))
            table[name] = {"mean_iou": float(np.mean(ious)), "box_acc": float(np.mean(np.array(ious) >= 0.5))}
    except NotImplementedError:
        print("finish tasks 1, 3, 4 and 5 first: this table uses your functions")
        return None
    print(f"{'method':32s} mean IoU   IoU >= 0.5   ({len(items)} test images, threshold {threshold})")
    for name, r in table.items():
        print(f"{name:32s} {r['mean_iou']:8.2f}   {r['box_acc']:10.2f}")
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
