"""Repo tooling: the course runner (tools/course.py) and the student copy generator (tools/student_copy.py).

The student copy of the real project notebook is tested in test_exercises.py; here, small made-up notebooks.
"""

import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tools import course, student_copy

ROOT = Path(__file__).resolve().parent.parent


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def _params(source):
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})


# ---------------------------------------------------------------- student copy
SOLVED = _notebook(
    nbformat.v4.new_markdown_cell("Why?\n\n### BEGIN SOLUTION\nBecause the map is coarse.\n### END SOLUTION\n"),
    nbformat.v4.new_code_cell(
        'def area(box):\n    """Area of an (x0, y0, x1, y1) box."""\n    ### BEGIN SOLUTION\n'
        "    return (box[2] - box[0]) * (box[3] - box[1])\n    ### END SOLUTION\n",
        execution_count=3,
        outputs=[nbformat.v4.new_output("stream", text="4\n")],
    ),
)


def test_student_copy_hides_answers_keeps_signature_docstring_and_clears_outputs():
    student = student_copy.student_notebook(SOLVED)
    md, code = student.cells
    assert md.source == "Why?\n\nYOUR ANSWER HERE\n"
    assert code.source == (
        'def area(box):\n    """Area of an (x0, y0, x1, y1) box."""\n'
        "    # TODO: your code here\n    raise NotImplementedError()\n"
    )
    assert code.outputs == [] and code.execution_count is None
    assert SOLVED.cells[1].outputs, "the source notebook is left as it was"


def test_student_copy_check_tells_stale_from_fresh(tmp_path, capsys):
    src, dest = tmp_path / "solved.ipynb", tmp_path / "student.ipynb"
    nbformat.write(SOLVED, src)
    assert student_copy.main([str(src), str(dest), "--check"]) == 1  # missing
    assert student_copy.main([str(src), str(dest)]) == 0
    assert student_copy.main([str(src), str(dest), "--check"]) == 0
    solved = nbformat.read(src, as_version=4)
    solved.cells[1].source = solved.cells[1].source.replace("box[3]", "box[-1]")
    nbformat.write(solved, src)
    assert student_copy.main([str(src), str(dest), "--check"]) == 0, "a change inside the solution is hidden anyway"
    solved.cells[1].source = solved.cells[1].source.replace("Area of", "The area of")
    nbformat.write(solved, src)
    assert student_copy.main([str(src), str(dest), "--check"]) == 1
    assert "stale: run `make exercises`" in capsys.readouterr().err


def test_make_test_runs_the_staleness_check(tmp_path):
    src, dest = tmp_path / "solved.ipynb", tmp_path / "student.ipynb"
    nbformat.write(SOLVED, src)
    nbformat.write(_notebook(nbformat.v4.new_code_cell("old")), dest)
    make = ["make", "-s", "-C", str(ROOT), f"PROJECT_SOLUTION={src}", f"PROJECT_STUDENT={dest}"]
    dry = subprocess.run([*make, "-n", "test"], capture_output=True, text=True).stdout
    assert f"-m tools.student_copy --check {src} {dest}" in dry
    stale = subprocess.run([*make, "student-copy"], capture_output=True, text=True)
    assert stale.returncode != 0 and "stale" in stale.stderr
    student_copy.main([str(src), str(dest)])
    assert subprocess.run([*make, "student-copy"], capture_output=True, text=True).returncode == 0


# ---------------------------------------------------------------- runner: parameters
def test_parameter_names_reads_plain_tuple_and_annotated_assignments():
    src = 'A = 1  # note\nEARLY, LATE = "x", "y"\nN: int = 3\nprint(A)\n'
    assert course.parameter_names(src) == {"A", "EARLY", "LATE", "N"}
    assert course.parameter_names("this is not python(") == set()


def test_injected_cell_follows_parameters_cell_and_warns_on_unknown_names():
    nb = _notebook(nbformat.v4.new_markdown_cell("# T"), _params("STEPS = 30\nDATASET = 'toy_cars'"))
    nb.cells.append(nbformat.v4.new_code_cell("print(STEPS)"))
    warnings = []
    unknown = course.inject_parameters(nb, {"STEPS": 2, "FILTERS": range(4)}, warn=warnings.append)
    assert unknown == ["FILTERS"] and "FILTERS" in warnings[0] and len(warnings) == 1
    cell = nb.cells[2]
    assert cell.metadata["tags"] == ["injected-parameters"]
    assert "STEPS = 2\n" in cell.source and "FILTERS = range(0, 4)\n" in cell.source
    assert "IMAGES_DIR" not in cell.source
    assert nb.cells[3].source == "print(STEPS)"
    nbformat.validate(nb)


def test_injected_cell_goes_first_without_parameters_cell_and_can_redirect_images(tmp_path):
    nb = _notebook(nbformat.v4.new_code_cell("x = 1"))
    assert course.inject_parameters(nb, {"X": 2}, warn=lambda _: None, images_dir=tmp_path) == ["X"]
    assert nb.cells[0].metadata["tags"] == ["injected-parameters"]
    assert f"helpers.viz.IMAGES_DIR = __import__('pathlib').Path({str(tmp_path)!r})" in nb.cells[0].source


def test_quick_map_names_notebooks_that_sort_in_course_order():
    assert list(course.QUICK) == sorted(course.QUICK)
    assert all(name[:2].isdigit() for name in course.QUICK)


def test_lanes_keep_a_chain_in_order_and_put_it_first():
    paths = [Path(f"notebooks/{n}.ipynb") for n in ("01_a", "02_b", "03_c", "04_d", "05_e")]
    assert course.lanes(paths, chains=[("02_b", "04_d", "05_e")]) == [[1, 3, 4], [0], [2]]
    assert course.lanes(paths, chains=[]) == [[0], [1], [2], [3], [4]]
    assert course.lanes(paths[::-1], chains=[("02_b", "04_d", "05_e")]) == [[3, 1, 0], [2], [4]]  # chain's order


def test_chains_name_notebooks_that_exist():
    stems = {p.stem for p in (ROOT / "notebooks").glob("0*.ipynb")}
    assert {stem for chain in course.CHAINS for stem in chain} <= stems


# ---------------------------------------------------------------- runner: progress and summary
def test_progress_keeps_latest_line_from_streams_and_tqdm_widgets():
    p = course.Progress("n.ipynb", total=4)
    p.start_cell(nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nmodel = train()\nmore()"))
    p.message({"msg_type": "stream", "content": {"text": "[head] epoch 1/2: loss 0.5\n 30%|###   \r 60%|###### \r"}})
    assert p.latest == "60%|######"
    for comm, value in (("l", "heatmaps: 40%"), ("r", "| 4/10 [00:01&lt;00:02]"), ("l", "<b>heatmaps</b>: 50%")):
        p.message({"msg_type": "comm_msg", "content": {"comm_id": comm, "data": {"state": {"value": value}}}})
    p.message({"msg_type": "comm_msg", "content": {"comm_id": "bar", "data": {"state": {"value": 5.0}}}})
    assert p.latest == "| 4/10 [00:01<00:02] heatmaps: 50%"
    line = p.line(now=p.started + 42)
    assert line == "  n.ipynb cell 1/4 `model = train()` 42 s | | 4/10 [00:01<00:02] heatmaps: 50%"


def test_heartbeat_comes_every_interval_through_short_cells_and_soon_into_a_long_one():
    cell = nbformat.v4.new_code_cell("x = 1")
    p = course.Progress("n.ipynb", total=99, every=20.0)
    p._last_print = 0.0  # the notebook's own line, at t = 0
    beats = []
    for t in range(60):  # a 2-second cell after another for a minute, checked every second as the thread does
        if t % 2 == 0:
            p.start_cell(cell, now=t + 0.01)
        if p.beat(now=t + 0.5) is not None:
            beats.append(t + 0.5)
    assert beats == [20.5, 40.5]  # short cells alone: one line per interval, not one per cell
    p._last_print = 100.0  # a line, then a long cell
    p.start_cell(cell, now=100.0)
    long_beats = [t for t in range(101, 160) if p.beat(now=float(t)) is not None]
    assert long_beats == [110, 130, 150]  # named HEARTBEAT_AFTER in, then every interval
    p.end_cell()
    assert p.beat(now=500.0) is None  # nothing runs: nothing to report


def test_table_has_notebook_status_seconds_and_output():
    rows = [("01_a.ipynb", "ok", 12.34, "build/01_a.html"), ("02_long_name.ipynb", "FAILED: CellTimeoutError", 3.0, "")]
    lines = course.table(rows).splitlines()
    assert lines[0].split() == ["notebook", "status", "seconds", "output"]
    assert lines[1].split() == ["01_a.ipynb", "ok", "12.3", "build/01_a.html"]
    assert lines[2].split() == ["02_long_name.ipynb", "FAILED", "3.0", "-"]
    assert lines[3].split() == ["total", "15.3"]


@pytest.mark.slow
def test_runner_executes_injects_and_reports_progress_of_a_long_cell(tmp_path, monkeypatch):
    monkeypatch.setattr(course, "HEARTBEAT_AFTER", 0.0)
    nb = _notebook(
        _params("EPOCHS = 5"),
        nbformat.v4.new_code_cell(
            "import sys, time\nfor e in range(EPOCHS):\n    print(f'epoch {e + 1}/{EPOCHS}', flush=True)\n"
            "    time.sleep(1.2)\nprint('warn', file=sys.stderr)"
        ),
    )
    path = tmp_path / "01_tiny.ipynb"
    nbformat.write(nb, path)
    lines = []
    monkeypatch.setattr(sys, "stdout", type("W", (), {"write": lambda s, t: lines.append(t), "flush": lambda s: 0})())
    start = time.monotonic()
    out = course.execute(path, timeout=60, parameters={"EPOCHS": 3}, heartbeat=1.0, log_dir=tmp_path / "logs")
    assert time.monotonic() - start < 60
    text = {name: "".join(o.text for o in out.cells[2].outputs if o.name == name) for name in ("stdout", "stderr")}
    assert text == {"stdout": "epoch 1/3\nepoch 2/3\nepoch 3/3\n", "stderr": "warn\n"}
    beats = [ln for ln in lines if "01_tiny.ipynb cell 3/3" in ln]  # injected cell included
    assert beats and any("| epoch" in b for b in beats), lines
    assert "import sys, time" in beats[0]
    assert "without encryption" not in (tmp_path / "logs" / "01_tiny.kernel.log").read_text()
    assert len(nbformat.read(path, as_version=4).cells) == 2, "execute() never writes the file"


@pytest.mark.slow
def test_quick_run_writes_under_out_never_over_the_notebook(tmp_path):
    path = tmp_path / "01_tiny.ipynb"
    nbformat.write(_notebook(_params("N = 1"), nbformat.v4.new_code_cell("print(N)")), path)
    before = path.read_bytes()
    out = tmp_path / "quick"
    res = subprocess.run(
        [sys.executable, "-m", "tools.course", "--quick", "--out", str(out), str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert path.read_bytes() == before
    assert res.stdout.count(course.QUICK_BANNER) == 2
    assert any(
        ln.split()[:2] == ["01_tiny.ipynb", "ok"] and ln.endswith("01_tiny.ipynb") for ln in res.stdout.splitlines()
    )
    executed = nbformat.read(out / "01_tiny.ipynb", as_version=4)
    assert executed.cells[1].metadata["tags"] == ["injected-parameters"]
    assert "Kernel is running over TCP" not in res.stdout + res.stderr
    assert (
        "--inplace"
        in subprocess.run(
            [sys.executable, "-m", "tools.course", "--quick", "--inplace", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stderr
    )


@pytest.mark.slow
def test_jobs_run_lanes_at_once_and_the_table_keeps_course_order(tmp_path, monkeypatch):
    for name, seconds in (("01_slow", 6), ("02_fast", 0)):
        cell = nbformat.v4.new_code_cell(f"import time\ntime.sleep({seconds})\nprint('{name}')")
        nbformat.write(_notebook(_params("N = 1"), cell), tmp_path / f"{name}.ipynb")
    res = subprocess.run(
        [sys.executable, "-m", "tools.course", "--jobs", "2", "--out", str(tmp_path / "out")]
        + [str(tmp_path / f"{n}.ipynb") for n in ("01_slow", "02_fast")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    done = [ln.split(":")[0].strip() for ln in lines if " in " in ln and ln.startswith("  0")]
    assert done == ["02_fast.ipynb", "01_slow.ipynb"], lines  # ran at once: the fast one finished first
    rows = [ln.split()[0] for ln in lines if ln.split()[1:2] == ["ok"] and not ln.startswith(" ")]
    assert rows == ["01_slow.ipynb", "02_fast.ipynb"]
    assert any(ln.startswith("wall clock:") for ln in lines)


# ---------------------------------------------------------------- tools/progress.py: quiet installs with a heartbeat
def _progress(script: str, every: float = 0.3):
    cmd = [sys.executable, str(ROOT / "tools" / "progress.py"), "--every", str(every), "installing", "--"]
    return subprocess.run(cmd + [sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_progress_beats_with_the_latest_step_and_hides_a_successful_commands_output():
    script = (
        "import time\nprint('WARNING: notice for developers')\nprint('Collecting tensorflow<2.19', flush=True)\n"
        "time.sleep(1.2)\nprint('Installing collected packages: numpy', flush=True)\ntime.sleep(1.2)"
    )
    res = _progress(script)
    assert res.returncode == 0 and res.stderr == ""
    lines = res.stdout.splitlines()
    assert "WARNING" not in res.stdout
    assert any(ln.endswith("| Collecting tensorflow<2.19") for ln in lines), lines
    assert any(ln.endswith("| Installing collected packages: numpy") for ln in lines), lines
    assert all(ln.startswith("  installing: ") for ln in lines)


def test_progress_shows_everything_and_the_status_when_the_command_fails():
    res = _progress("import sys\nprint('ERROR: No matching distribution found for tensorflow')\nsys.exit(3)")
    assert res.returncode == 3
    assert "ERROR: No matching distribution found for tensorflow" in res.stdout
    assert "installing failed (exit status 3)" in res.stdout
