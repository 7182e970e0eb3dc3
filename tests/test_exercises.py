"""Each checker must pass a correct solution and catch typical mistakes with a useful hint."""

import cv2
import keras
import matplotlib
import nbformat
import numpy as np
import pytest
import tensorflow as tf

from helpers import exercises, student_copy

SOLUTION = "notebooks/solutions/06_project_cam_iou.ipynb"
STUDENT = "notebooks/06_project_cam_iou.ipynb"


def _resize(m, item):
    h, w = item["image"].shape[:2]
    return cv2.resize(np.asarray(m, np.float32), (w, h))


# ---------------------------------------------------------------- correct implementations
def good_cam(model, item, layer_name):
    x = exercises.to_input(model, item["image"])
    a = np.asarray(keras.Model(model.input, model.get_layer(layer_name).output)(x))[0]
    m = np.maximum(a @ model.get_layer("logits").get_weights()[0][:, item["label"]], 0)
    return _resize(m / (m.max() + 1e-7), item)


def _grad_cam(model, layer, item, score_of="logits", wrong_axis=False, eps=1e-7):
    x = exercises.to_input(model, item["image"])
    out = model.get_layer("logits").output if score_of == "logits" else model.output
    g_model = keras.Model(model.input, [model.get_layer(layer).output, out])
    with tf.GradientTape() as tape:
        a, s = g_model(x)
        score = s[:, item["label"]]
    g = np.asarray(tape.gradient(score, a))
    a = np.asarray(a)
    if not wrong_axis:
        m = np.maximum(a[0] @ g[0].mean(axis=(0, 1)), 0)
    else:  # a classic slip: averaging the batched (1, h, w, C) gradient over (batch, height) only
        m = np.maximum((a[0] * g.mean(axis=(0, 1))).sum(axis=-1), 0)
    return _resize(m / (m.max() + eps) if eps else m / m.max(), item)


def good_grad_cam(model, layer, item):
    return _grad_cam(model, layer, item)


def good_overlay(image, cam_image, alpha=0.4):
    heat = cv2.resize(np.asarray(cam_image, np.float32), (image.shape[1], image.shape[0]))
    colored = matplotlib.colormaps["jet"](np.clip(heat, 0, 1))[..., :3] * 255
    return np.clip(np.rint((1 - alpha) * image + alpha * colored), 0, 255).astype(np.uint8)


def good_bbox(cam_image, score_thresh=0.5, pick=max, swap=False, absolute=False):
    peak = float(np.max(cam_image))
    if peak <= 0:
        return None
    thr = score_thresh if absolute else score_thresh * peak
    mask = (np.asarray(cam_image) >= thr).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    c = pick(contours, key=cv2.contourArea)
    x, y, bw, bh = cv2.boundingRect(c)
    H, W = mask.shape
    box = np.array([y / H, x / W, (y + bh) / H, (x + bw) / W])
    return box[[1, 0, 3, 2]] if swap else box


def good_iou(a, b, clamp=True, guard=True):
    ih = min(a[2], b[2]) - max(a[0], b[0])
    iw = min(a[3], b[3]) - max(a[1], b[1])
    if clamp:
        ih, iw = max(0.0, ih), max(0.0, iw)
    inter = ih * iw
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if guard and union <= 0:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def todo(*args, **kwargs):
    raise NotImplementedError()


@pytest.fixture(autouse=True)
def _reset():
    exercises.RESULTS.clear()


TASK_OF = {
    exercises.check_cam: "cam",
    exercises.check_overlay: "overlay",
    exercises.check_grad_cam: "grad_cam",
    exercises.check_bbox: "bbox",
    exercises.check_iou: "iou",
}


def run(check, fn, capsys):
    assert check(fn) is None  # checks print; they return nothing a notebook would echo
    return bool(exercises.RESULTS[TASK_OF[check]]), capsys.readouterr().out


# ---------------------------------------------------------------- correct ones pass
@pytest.mark.parametrize(
    "check, fn",
    [
        (exercises.check_cam, good_cam),
        (exercises.check_overlay, good_overlay),
        (exercises.check_grad_cam, good_grad_cam),
        (exercises.check_bbox, good_bbox),
        (exercises.check_iou, good_iou),
    ],
)
def test_correct_solutions_pass(check, fn, capsys):
    ok, out = run(check, fn, capsys)
    assert ok, out
    assert exercises.BAD not in out and "all cases pass" in out


def test_not_implemented_is_reported_as_such(capsys):
    for check in (exercises.check_cam, exercises.check_overlay, exercises.check_grad_cam, exercises.check_bbox):
        ok, out = run(check, todo, capsys)
        assert not ok and "not yet implemented" in out and "Traceback" not in out
    exercises.score()
    assert exercises.tally() == "0/5 tasks" and "Score: 0/5 tasks" in capsys.readouterr().out


# ---------------------------------------------------------------- typical mistakes are caught
def test_cam_without_epsilon_gives_nan_hint(capsys):
    def no_eps(model, item, layer_name):
        x = exercises.to_input(model, item["image"])
        a = np.asarray(keras.Model(model.input, model.get_layer(layer_name).output)(x))[0]
        m = np.maximum(a @ model.get_layer("logits").get_weights()[0][:, item["label"]], 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return _resize(m / m.max(), item)

    ok, out = run(exercises.check_cam, no_eps, capsys)
    assert not ok and "NaN" in out and "max + eps" in out and "all-zero" in out


def test_cam_not_resized_gives_shape_hint(capsys):
    def small(model, item, layer_name):
        return good_cam(model, item, layer_name)[:5, :5]

    ok, out = run(exercises.check_cam, small, capsys)
    assert not ok and "shape (5, 5)" in out and "resize" in out


def test_cam_without_relu_gives_range_hint(capsys):
    def no_relu(model, item, layer_name):
        x = exercises.to_input(model, item["image"])
        a = np.asarray(keras.Model(model.input, model.get_layer(layer_name).output)(x))[0]
        m = a @ model.get_layer("logits").get_weights()[0][:, item["label"]]
        return _resize(m / (np.abs(m).max() + 1e-7), item)

    ok, out = run(exercises.check_cam, no_relu, capsys)
    assert not ok and "expected [0, 1]" in out


def test_grad_cam_through_softmax_is_named(capsys):
    ok, out = run(exercises.check_grad_cam, lambda m, layer, it: _grad_cam(m, layer, it, score_of="softmax"), capsys)
    assert not ok and "softmax" in out and "logits" in out


def test_grad_cam_wrong_axis_is_caught(capsys):
    ok, out = run(exercises.check_grad_cam, lambda m, layer, it: _grad_cam(m, layer, it, wrong_axis=True), capsys)
    assert not ok and "values differ" in out and "axes" in out


def test_overlay_in_bgr_is_caught(capsys):
    def bgr(image, cam_image, alpha=0.4):
        heat = cv2.resize(np.asarray(cam_image, np.float32), (image.shape[1], image.shape[0]))
        colored = cv2.applyColorMap(np.uint8(255 * heat), cv2.COLORMAP_JET)
        return np.clip((1 - alpha) * image + alpha * colored, 0, 255).astype(np.uint8)

    ok, out = run(exercises.check_overlay, bgr, capsys)
    assert not ok and "BGR" in out


def test_overlay_not_resized_or_float_is_caught(capsys):
    ok, out = run(exercises.check_overlay, lambda im, h, a=0.4: good_overlay(im, h, a).astype(np.float32), capsys)
    assert not ok and "uint8" in out
    ok, out = run(exercises.check_overlay, lambda im, h, a=0.4: np.zeros((7, 7, 3), np.uint8), capsys)
    assert not ok and "resize the heatmap" in out


def test_bbox_swapped_coordinates_are_named(capsys):
    ok, out = run(exercises.check_bbox, lambda h, t=0.5: good_bbox(h, t, swap=True), capsys)
    assert not ok and "swapped" in out and "[ymin, xmin, ymax, xmax]" in out


def test_bbox_first_contour_instead_of_largest(capsys):
    ok, out = run(exercises.check_bbox, lambda h, t=0.5: good_bbox(h, t, pick=min), capsys)
    assert not ok and "largest" in out


def test_bbox_absolute_threshold_is_caught(capsys):
    ok, out = run(exercises.check_bbox, lambda h, t=0.5: good_bbox(h, t, absolute=True), capsys)
    assert not ok and "relative to the map's maximum" in out


def test_bbox_that_writes_into_the_heatmap(capsys):
    def destructive(h, t=0.5):
        h[h >= t * h.max()] = 1.0
        return good_bbox(h, t)

    ok, out = run(exercises.check_bbox, destructive, capsys)
    assert not ok and "modified the heatmap" in out


def test_iou_without_clamp_or_guard(capsys):
    ok, out = run(exercises.check_iou, lambda a, b: good_iou(a, b, clamp=False), capsys)
    assert not ok and "clamp" in out
    ok, out = run(exercises.check_iou, lambda a, b: good_iou(a, b, guard=False), capsys)
    assert not ok and "union is 0" in out and "Traceback" not in out


def test_iou_mixing_axes_is_caught(capsys):
    def mixed(a, b):
        return good_iou([a[1], a[0], a[3], a[2]], b)

    ok, out = run(exercises.check_iou, mixed, capsys)
    assert not ok and "wide vs tall" in out


def test_score_counts_passed_tasks(capsys):
    exercises.check_iou(good_iou)
    exercises.check_bbox(good_bbox)
    exercises.check_cam(todo)
    assert exercises.tally() == "2/5 tasks"


def test_iou_table_waits_for_the_tasks(capsys):
    items = [{"image": np.zeros((8, 8, 3), np.uint8), "label": 0, "bbox": np.array([0, 0, 1, 1.0])}]
    assert exercises.iou_table(items, {"x": lambda it: todo()}, good_bbox, good_iou, 0.5) is None
    table = exercises.iou_table(items, {"x": lambda it: np.ones((8, 8))}, good_bbox, good_iou, 0.5)
    assert table["x"]["mean_iou"] == pytest.approx(1.0)


# ---------------------------------------------------------------- the student copy
def test_student_copy_strips_every_solution():
    src = nbformat.read(SOLUTION, as_version=4)
    student = student_copy.student_notebook(src)
    hidden = []
    for cell in src.cells:
        text = cell.source
        while student_copy.BEGIN in text:
            start = text.index(student_copy.BEGIN)
            end = text.index(student_copy.END, start)
            hidden += [ln.strip() for ln in text[start:end].splitlines()[1:] if len(ln.strip()) > 12]
            text = text[end + len(student_copy.END) :]
    assert len(hidden) > 20
    everything = "\n".join(c.source for c in student.cells)
    outside = "\n".join(student_copy.strip_code(c.source) for c in src.cells)  # also written outside the regions
    assert not [ln for ln in hidden if ln in everything and ln not in outside]
    assert student_copy.BEGIN not in everything
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    assert code.count("raise NotImplementedError()") == 5
    assert "YOUR ANSWER HERE" in everything
    assert all(c.outputs == [] for c in student.cells if c.cell_type == "code")


def test_student_copy_keeps_signatures_and_docstrings():
    student = student_copy.student_notebook(nbformat.read(SOLUTION, as_version=4))
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    for sig in ("def generate_cam(model, item, layer_name=FEATURE_LAYER):", "def get_iou(gt_bbox, pred_bbox):"):
        assert sig in code
    assert '"""Class activation map of the item\'s true class' in code


def test_committed_student_copy_is_up_to_date():
    assert student_copy.main([SOLUTION, STUDENT, "--check"]) == 0, "run `make exercises`"


def test_strip_code_keeps_indentation_and_rejects_unbalanced_markers():
    src = "def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION\n"
    assert (
        student_copy.strip_code(src)
        == "def f():\n    x = 1\n    # TODO: your code here\n    raise NotImplementedError()\n"
    )
    with pytest.raises(ValueError, match="unbalanced"):
        student_copy.strip_code("### BEGIN SOLUTION\nx = 1\n")
