"""The grader's hidden cases for the five functions of project notebook 06.

The student copy's check cells (:mod:`helpers.exercises`) show their cases; these are others: another small
model (40x40 input, 4 classes, and a confident twin whose softmax saturates, so differentiating the probability
instead of the pre-softmax score gives a visibly different map), other image sizes, other heatmaps (their
largest region listed first, last and in between by ``cv2.findContours``, non-square so swapped coordinates
show), signed and scaled maps, and boxes that are disjoint in one or both axes, touching, empty or nested —
the seeds' known bugs (``contours[0]``, softmax instead of logits, swapped coordinates, no clamping, a zero
union) each fail at least one case.

Each :class:`Case` has ``args()`` (fresh inputs, built the same way in the submission's process and in the
grader's) and ``judge(output)``, which raises :class:`helpers.exercises.CaseFailed` with the hint that the
check cells give for the same mistake. Only the grader's process judges: the submission's process only calls
the learner's function and saves what it returned.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import exercises

TASKS = ("generate_cam", "visualize_cam_on_image", "generate_grad_cam", "get_bbox", "get_iou")
"""The project's five functions, in task order; the columns of ``grades.csv``."""
TASK_TITLES = {
    "generate_cam": "Task 1 — CAM",
    "visualize_cam_on_image": "Task 2 — overlay",
    "generate_grad_cam": "Task 3 — Grad-CAM",
    "get_bbox": "Task 4 — box from a heatmap",
    "get_iou": "Task 5 — IoU",
}
POINTS = dict.fromkeys(TASKS, 1)
"""Points per task: all of them when every hidden case of the task passes, none otherwise."""


@dataclass(frozen=True)
class Case:
    """One hidden case: how to call the function, and how to judge what it returned."""

    task: str
    name: str
    args: Callable[[], tuple]
    judge: Callable[[object], None]
    prepare: Callable[[], object] = lambda: None  # computes (and caches) what judge compares with


@functools.cache
def hidden_model(confident: bool = False):
    """The hidden cases' model: :func:`helpers.exercises.tiny_cam_model`'s layout, 40x40 input, 4 classes.

    ``confident`` scales the dense layer by 8, so the softmax saturates (the top class has probability ~1).
    """
    return exercises.tiny_cam_model(seed=2024, size=40, classes=4, logit_scale=8.0 if confident else 1.0)


def _image(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    from .._quiet import import_tensorflow

    tf = import_tensorflow()
    field = tf.image.resize(rng.uniform(0, 255, (1, 4, 6, 3)), (h, w), method="bicubic").numpy()[0]
    img = np.clip(np.rint(field), 0, 255).astype(np.uint8)
    img[h // 3 : 5 * h // 6, w // 2 : 9 * w // 10] = [40, 200, 230]
    return img


def _items() -> list[dict]:
    grey = {"image": np.full((40, 40, 3), 127, np.uint8), "label": 2, "case": "a mid-grey image: all-zero maps"}
    return [
        {"image": _image(11, 48, 64), "label": 3, "case": "a 48x64 image, class 3"},
        {"image": _image(12, 40, 40), "label": 1, "case": "a 40x40 image (the input size), class 1"},
        {"image": _image(13, 19, 27), "label": 0, "case": "a 19x27 image (smaller than the input), class 0"},
        {"image": _image(14, 56, 30), "label": 2, "case": "a tall 56x30 image, class 2"},
        grey,
    ]


def _map_case(task: str, method_name: str, item: dict, layer: str, confident: bool) -> Case:
    from .. import cam as _cam

    method = getattr(_cam, method_name)
    model_name = "the confident model" if confident else "the model"

    def args():
        model = hidden_model(confident)
        it = {"image": item["image"].copy(), "label": item["label"]}
        return (model, it, layer) if task == "generate_cam" else (model, layer, it)

    @functools.cache
    def expected():
        model = hidden_model(confident)
        want = exercises.reference_map(method, model, item, layer)
        return want, exercises.map_mistakes(method, model, item, layer, softmax=task == "generate_grad_cam")

    def judge(out):
        want, mistakes = expected()
        generic = (
            "check the maps' layer, the kernel's column (item['label']) and the sum over channels"
            if task == "generate_cam"
            else "check which axes you average the gradient over (height and width: one weight per channel)"
        )
        exercises.judge_map(out, want, item["image"].shape[:2], task, mistakes, generic)

    return Case(task, f"{item['case']}, layer {layer!r}, {model_name}", args, judge, expected)


def _overlay_case(name: str, image: np.ndarray, heat: np.ndarray, alpha: float) -> Case:
    return Case(
        "visualize_cam_on_image",
        name,
        lambda: (image.copy(), heat.copy(), alpha),
        lambda out: exercises.judge_overlay(out, image, heat, alpha),
    )


def _bbox_maps() -> list[tuple[str, np.ndarray, float]]:
    """Non-square maps whose largest region ``cv2.findContours`` lists first, last or in between."""
    base = exercises.bbox_maps()
    maps = [
        (f"{name}, upside down", np.flipud(m).copy(), 0.5) for name, m in base[:3]
    ]  # flipping changes the order in which OpenCV finds the regions
    maps += [(f"{base[3][0]}, mirrored", np.fliplr(base[3][1]).copy(), 0.6)]
    maps += [(f"{base[4][0]}, transposed (tall)", base[4][1].T.copy(), 0.4)]
    signed = np.flipud(base[0][1]) - 0.3  # negative background, the same regions above the threshold
    maps += [("a signed map (negative background)", signed.astype(np.float32), 0.5)]
    maps += [("the first map scaled by 0.3 (the threshold is relative)", (np.flipud(base[0][1]) * 0.3), 0.5)]
    maps += [("a constant map: every pixel passes", np.full((12, 20), 0.7, np.float32), 0.5)]
    maps += [("an all-zero map", np.zeros((10, 14), np.float32), 0.5)]
    maps += [("an all-negative map", np.full((10, 14), -0.5, np.float32), 0.5)]
    return maps


def _bbox_case(name: str, m: np.ndarray, thresh: float) -> Case:
    m = np.asarray(m, np.float32)
    return Case("get_bbox", f"{name} (score_thresh {thresh})", lambda: (m.copy(), thresh),
                lambda out: exercises.judge_box(out, m, thresh))  # fmt: skip


IOU_PAIRS = [
    ("partly overlapping, non-square boxes", [0.1, 0.2, 0.5, 0.9], [0.3, 0.1, 0.8, 0.6], "intersection / union"),
    ("disjoint in both directions", [0.0, 0.0, 0.2, 0.3], [0.5, 0.6, 0.9, 1.0],
     "clamp the intersection's height and width at 0"),
    ("disjoint in one direction", [0.0, 0.0, 0.4, 0.4], [0.1, 0.6, 0.3, 0.9],
     "clamp the intersection's height and width at 0"),
    ("touching edges", [0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 1.0, 0.5], "boxes that only touch share no area: IoU 0"),
    ("two zero-area boxes in different places", [0.2, 0.2, 0.2, 0.2], [0.6, 0.6, 0.6, 0.6],
     "the union is 0: return 0.0 instead of dividing by it"),
    ("a zero-area box inside another", [0.4, 0.4, 0.4, 0.4], [0.1, 0.1, 0.9, 0.9], "a point has no area: IoU 0"),
    ("one box inside the other", [0.2, 0.1, 0.6, 0.3], [0.0, 0.0, 1.0, 1.0], "inner area / outer area"),
    ("identical boxes", [0.15, 0.25, 0.55, 0.95], [0.15, 0.25, 0.55, 0.95], "a box with itself has IoU 1"),
    ("a wide and a tall box", [0.1, 0.0, 0.3, 0.9], [0.0, 0.1, 0.9, 0.3],
     "mixing up the y and x coordinates gives a wrong area"),
]  # fmt: skip


def _iou_case(name, a, b, hint) -> Case:
    a, b = np.array(a, np.float64), np.array(b, np.float64)
    return Case("get_iou", name, lambda: (a.copy(), b.copy()), lambda out: exercises.judge_iou(out, a, b, hint))


@functools.cache
def all_cases() -> dict[str, list[Case]]:
    """Every hidden case, by task."""
    items = _items()
    rng = np.random.default_rng(31)
    image = rng.integers(0, 255, (26, 38, 3), dtype=np.uint8)
    tall = rng.integers(0, 255, (40, 22, 3), dtype=np.uint8)
    heat = rng.random((5, 9)).astype(np.float32)
    cases = {
        "generate_cam": [_map_case("generate_cam", "cam", it, "features", False) for it in items],
        "visualize_cam_on_image": [
            _overlay_case("a 26x38 image, a 5x9 heatmap, alpha = 0", image, heat, 0.0),
            _overlay_case("a 26x38 image, a 5x9 heatmap, alpha = 0.3", image, heat, 0.3),
            _overlay_case("a 26x38 image, a 5x9 heatmap, alpha = 1", image, heat, 1.0),
            _overlay_case("a tall 40x22 image, a 9x4 heatmap, alpha = 0.5", tall, heat.T.copy(), 0.5),
            _overlay_case("an all-zero heatmap, alpha = 0.6", image, np.zeros((5, 9), np.float32), 0.6),
        ],
        "generate_grad_cam": [
            _map_case("generate_grad_cam", "grad_cam", items[0], "features", False),
            _map_case("generate_grad_cam", "grad_cam", items[3], "early", False),
            _map_case("generate_grad_cam", "grad_cam", items[2], "early", False),
            _map_case("generate_grad_cam", "grad_cam", items[0], "features", True),
            _map_case("generate_grad_cam", "grad_cam", items[1], "early", True),
            _map_case("generate_grad_cam", "grad_cam", items[4], "features", False),
        ],
        "get_bbox": [_bbox_case(*m) for m in _bbox_maps()],
        "get_iou": [_iou_case(*p) for p in IOU_PAIRS],
    }
    assert tuple(cases) == TASKS
    return cases


def warm() -> None:
    """Compute every case's expected output now (the grader calls it once, before the submissions run)."""
    for task_cases in all_cases().values():
        for case in task_cases:
            case.prepare()
