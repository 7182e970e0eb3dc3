"""A pytest plugin that keeps a long test run from going silent (issue 22).

pytest under ``-q`` prints one dot per test, and nbval one dot per notebook cell: a cell
that trains for minutes prints nothing until it ends. This plugin adds, on the terminal
even under ``-q`` and with output captured:

- ``notebook notebooks/04_cars196_cam.ipynb: starting (31 code cells)`` when nbval reaches
  a notebook, and ``...: done in 412 s`` when it leaves it;
- ``  notebooks/04_cars196_cam.ipynb code cell 12: 95 s`` for every nbval cell that took
  longer than ``PYTEST_SLOW_CELL`` seconds (default 5);
- ``  still running tests/test_x.py::test_y (85 s)`` from a background thread every
  ``PYTEST_HEARTBEAT`` seconds (default 20) while one test item (setup, call and teardown)
  runs, so that no more than that many seconds pass without a line.

The heartbeat writes to a duplicate of the terminal's file descriptor taken when pytest
starts: while a test runs, pytest's capture redirects file descriptor 1 itself, so neither
``sys.stdout`` nor the terminal reporter would reach the terminal then.

Loaded by the repository's root ``conftest.py`` (``pytest_plugins``), so ``make unit``,
``make nbval``, ``pytest -q tests`` and ``pytest --nbval notebooks/...`` all get it; elsewhere
``pytest -p tools.pytest_progress``. Standard library and pytest only.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

HEARTBEAT_ENV = "PYTEST_HEARTBEAT"
SLOW_CELL_ENV = "PYTEST_SLOW_CELL"


def _seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


def _is_notebook_cell(item) -> bool:
    return hasattr(item, "cell_num") and str(getattr(item, "path", "")).endswith(".ipynb")


class Progress:
    """Per-item timing, notebook lines and the heartbeat thread."""

    def __init__(self, config, every: float, slow_cell: float):
        self.config = config
        self.every = every
        self.slow_cell = slow_cell
        self.lock = threading.Lock()
        self.current: tuple[str, float] | None = None  # (nodeid, start) of the running item
        self.notebook: tuple[str, float] | None = None  # (path, start) of the notebook being run
        self.width_after = 0  # the terminal reporter's line width when we last wrote a line
        self.stop = threading.Event()
        self.out = self._terminal()
        self.thread = threading.Thread(target=self._beat, name="pytest-heartbeat", daemon=True)
        self.thread.start()

    def _terminal(self):
        """A private stream to the terminal, immune to pytest's capture of file descriptor 1."""
        try:
            return os.fdopen(os.dup(sys.__stdout__.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
        except (AttributeError, OSError, ValueError):  # no real stdout (embedded runs): best effort
            return sys.__stdout__

    def write(self, text: str) -> None:
        """One line on the terminal, starting a new line if pytest's dots left one open."""
        tw = getattr(self.config.pluginmanager.get_plugin("terminalreporter"), "_tw", None)
        width = getattr(tw, "width_of_current_line", 0) if tw is not None else 0
        open_line = bool(width) and width != self.width_after  # pytest wrote on the line since our last one
        with self.lock:
            try:
                if tw is not None:
                    tw.flush()  # pytest's own buffered output first, so the lines keep their order
                self.out.write(("\n" if open_line else "") + text + "\n")
                self.out.flush()
                self.width_after = width
            except (OSError, ValueError):
                pass

    def _beat(self) -> None:
        """Wakes at ``start + k * every`` of the running item (no drift), and twice a second to see a new one."""
        seen, beats = None, 0
        while True:
            running = self.current
            if running is not seen:
                seen, beats = running, 0
            wait = 0.5
            if running is not None:
                nodeid, start = running
                now = time.monotonic()
                due = start + (beats + 1) * self.every
                if now >= due:
                    self.write(f"  still running {nodeid} ({now - start:.0f} s)")
                    beats += 1
                    continue
                wait = min(due - now, 0.5)
            if self.stop.wait(wait):
                return

    # ---------------------------------------------------------------- hooks
    def pytest_runtest_logstart(self, nodeid, location):
        self.current = (nodeid, time.monotonic())

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        if _is_notebook_cell(item):
            path = self._relpath(item)
            if self.notebook is None or self.notebook[0] != path:
                self._notebook_done()
                cells = sum(1 for i in item.session.items if _is_notebook_cell(i) and self._relpath(i) == path)
                self.write(f"notebook {path}: starting ({cells} code cells)")
                self.notebook = (path, time.monotonic())

    def pytest_runtest_logreport(self, report):
        if report.when != "call" or not report.nodeid.split("::")[0].endswith(".ipynb"):
            return
        if report.duration >= self.slow_cell:
            path, _, cell = report.nodeid.partition("::")
            self.write(f"  {path} code cell {cell.removeprefix('Cell ')}: {report.duration:.0f} s")

    def pytest_runtest_logfinish(self, nodeid, location):
        self.current = None

    def pytest_sessionfinish(self, session):
        self._notebook_done()

    def pytest_unconfigure(self, config):
        self.stop.set()
        self.thread.join(timeout=5)
        if self.out is not sys.__stdout__:
            try:
                self.out.close()
            except OSError:
                pass

    # ---------------------------------------------------------------- helpers
    def _relpath(self, item) -> str:
        try:
            return os.path.relpath(str(item.path), str(self.config.rootpath))
        except ValueError:
            return str(item.path)

    def _notebook_done(self) -> None:
        if self.notebook is not None:
            path, start = self.notebook
            self.write(f"notebook {path}: done in {time.monotonic() - start:.0f} s")
            self.notebook = None


def pytest_configure(config):
    """Registers the progress reporter (once per run; not in xdist workers, whose output is not shown)."""
    if hasattr(config, "workerinput") or config.pluginmanager.has_plugin("progress-reporter"):
        return
    progress = Progress(config, _seconds(HEARTBEAT_ENV, 20.0), _seconds(SLOW_CELL_ENV, 5.0))
    config.pluginmanager.register(progress, "progress-reporter")
