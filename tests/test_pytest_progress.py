"""tools/pytest_progress.py: `make test` never silent for long (issue 22)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(tmp_path, *args, heartbeat="0.5", slow_cell="1"):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTEST_HEARTBEAT=heartbeat, PYTEST_SLOW_CELL=slow_cell)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "tools.pytest_progress", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_the_repository_runs_load_the_plugin(request):
    assert request.config.pluginmanager.has_plugin("progress-reporter")


def test_heartbeat_reaches_the_terminal_while_a_captured_test_sleeps(tmp_path):
    (tmp_path / "test_sleepy.py").write_text(
        textwrap.dedent(
            """
            import time

            def test_quick():
                pass

            def test_sleep():
                print("captured, not shown")
                time.sleep(1.8)
            """
        )
    )
    res = run_pytest(tmp_path, "test_sleepy.py")
    assert res.returncode == 0, res.stdout + res.stderr
    beats = [line for line in res.stdout.splitlines() if "still running" in line]
    assert beats and all("test_sleepy.py::test_sleep (" in line for line in beats), res.stdout
    assert len(beats) >= 2, res.stdout  # every 0.5 s over 1.8 s
    assert "captured, not shown" not in res.stdout  # capture still works for the test's own output
    assert "2 passed" in res.stdout


def test_no_heartbeat_for_quick_tests(tmp_path):
    (tmp_path / "test_quick.py").write_text("def test_a():\n    pass\n")
    res = run_pytest(tmp_path, "test_quick.py", heartbeat="5")
    assert res.returncode == 0 and "still running" not in res.stdout, res.stdout


@pytest.mark.slow
def test_notebook_start_slow_cell_and_end_lines(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbval")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("a note"),
        nbformat.v4.new_code_cell("1 + 1"),
        nbformat.v4.new_code_cell("import time\ntime.sleep(1.5)"),
    ]
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    res = run_pytest(tmp_path, "--nbval-lax", "tiny.ipynb")
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert "notebook tiny.ipynb: starting (2 code cells)" in out
    assert "  tiny.ipynb code cell 1: " in out  # the sleeping cell, over PYTEST_SLOW_CELL
    assert "tiny.ipynb code cell 0:" not in out  # the quick one is not listed
    assert "still running tiny.ipynb::Cell 1 (" in out
    assert "notebook tiny.ipynb: done in " in out
    assert out.index("starting") < out.index("code cell 1:") < out.index("done in")
