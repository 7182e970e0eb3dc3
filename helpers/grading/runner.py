"""Inside the sandbox: run a submission's code cells, then call its task functions on the hidden cases' inputs.

``python -m helpers.grading.runner`` in the submission's folder reads ``job.json`` (the code cells, with the
grader's parameters already injected, and the limits), runs the cells one by one in an IPython shell (magics
work, a cell's error or ``sys.exit`` does not stop the next cells, a cell over its time limit is interrupted),
and after each cell calls every task function that is new or redefined on the hidden inputs of
:mod:`helpers.grading.cases`, saving what it returned under ``results/`` (``.npz`` without pickles, plus a JSON
status per case). The cells' output is counted and thrown away. Nothing here judges: the grader's own process
compares the saved outputs with the expected ones, where this process cannot reach.

Because outputs are saved after every cell, a notebook killed later (a loop past the wall-clock limit, a
crash) still has the tasks it defined before graded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import numpy as np

from .._files import atomic_path, write_text

CASE_SECONDS = 30  # one call of a learner's function on one hidden case


class CellTimeout(BaseException):  # noqa: N818 - BaseException, so `except Exception` in a cell cannot swallow it
    """The cell (or a task function) ran past its time limit."""


class _Sink:
    """A write-only stream that counts what it is given and keeps nothing (a giant output costs no memory)."""

    def __init__(self):
        self.chars = 0

    def write(self, text):
        self.chars += len(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def _refuse_network() -> None:
    """Without a network namespace: refuse sockets inside Python (code that wants to can undo it)."""

    def refused(*args, **kwargs):
        raise OSError("network access is disabled while grading")

    socket.socket.connect = refused
    socket.socket.connect_ex = refused
    socket.create_connection = refused
    socket.getaddrinfo = refused


def _alarm(seconds: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.0))


def _on_alarm(signum, frame):
    raise CellTimeout()


def _write_json(path: Path, data) -> None:
    write_text(path, json.dumps(data))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _as_array(value):
    """What a learner's function returned -> a numeric array (None stays None); raise TypeError otherwise."""
    if value is None:
        return None
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"returned {type(value).__name__} of dtype {arr.dtype}, not numbers")
    if arr.size > 50_000_000:
        raise TypeError(f"returned an array of {arr.size} values")
    return arr


def evaluate(task: str, fn, results: Path) -> None:
    """Call ``fn`` on every hidden case of ``task``; save the outputs and a status per case."""
    from .cases import all_cases

    arrays, statuses = {}, []
    for i, case in enumerate(all_cases()[task]):
        args = case.args()
        before = [a.copy() for a in args if isinstance(a, np.ndarray)]
        status = {"status": "ok"}
        _alarm(CASE_SECONDS)
        try:
            out = fn(*args)
            _alarm(0)
            arr = _as_array(out)
            if arr is None:
                status = {"status": "none"}
            else:
                arrays[f"c{i}"] = arr
        except CellTimeout:
            status = {"status": "timeout", "message": f"did not return within {CASE_SECONDS} s"}
        except NotImplementedError:
            status = {"status": "todo"}
        except BaseException as exc:  # noqa: BLE001 - whatever the learner's code raises is feedback
            status = {"status": "raised", "message": _first_line(exc)}
        finally:
            _alarm(0)
        after = [a for a in args if isinstance(a, np.ndarray)]
        status["mutated"] = any(b.shape != a.shape or not np.array_equal(b, a) for b, a in zip(before, after))
        statuses.append(status)
    with atomic_path(results / f"{task}.npz") as tmp:
        np.savez(tmp, **arrays)
    _write_json(results / f"{task}.json", statuses)


def main() -> int:
    """Run ``job.json`` in the current folder (the submission's own)."""
    here = Path.cwd().resolve()  # absolute: a cell may change the working folder
    job = json.loads((here / "job.json").read_text())
    results = here / "results"
    results.mkdir(exist_ok=True)
    if job.get("refuse_network"):
        _refuse_network()
    signal.signal(signal.SIGALRM, _on_alarm)
    from IPython.core.interactiveshell import InteractiveShell

    class Shell(InteractiveShell):
        def enable_gui(self, gui=None):  # `%matplotlib inline` without a front end: figures are not drawn
            pass

        def ask_exit(self):  # `exit()` in a cell ends that cell only
            pass

    from .cases import TASKS, all_cases

    all_cases()  # build the hidden inputs' models before any learner code runs
    shell = Shell.instance(colors="nocolor")
    shell.register_magic_function(lambda line: None, "line", "matplotlib")
    import matplotlib.pyplot as plt

    log, seen = [], {}
    sink = _Sink()
    real = sys.stdout, sys.stderr
    for index, source in enumerate(job["cells"]):
        start = time.monotonic()
        entry = {"cell": index, "status": "ok"}
        _write_json(here / "progress.json", {"cell": index, "of": len(job["cells"])})
        sys.stdout = sys.stderr = sink
        _alarm(job["cell_timeout"])
        try:
            result = shell.run_cell(source, store_history=False, silent=False)
            _alarm(0)
            error = result.error_before_exec or result.error_in_exec
            if isinstance(error, CellTimeout):
                entry = {"cell": index, "status": "timeout", "message": f"interrupted after {job['cell_timeout']} s"}
            elif isinstance(error, SystemExit):
                entry = {"cell": index, "status": "exit", "message": f"sys.exit({error.code!r})"}
            elif error is not None:
                entry = {"cell": index, "status": "error", "message": _first_line(error)}
        except CellTimeout:
            entry = {"cell": index, "status": "timeout", "message": f"interrupted after {job['cell_timeout']} s"}
        finally:
            _alarm(0)
            sys.stdout, sys.stderr = real
        entry["seconds"] = round(time.monotonic() - start, 2)
        plt.close("all")
        ns = shell.user_ns
        for task in TASKS:
            fn = ns.get(task)
            if callable(fn) and seen.get(task) is not fn:
                seen[task] = fn
                evaluate(task, fn, results)
        log.append(entry)
        _write_json(here / "cells.json", {"cells": log, "output_chars": sink.chars})
    for task in TASKS:  # the final definitions, with every global the notebook set
        fn = shell.user_ns.get(task)
        if callable(fn):
            evaluate(task, fn, results)
    _write_json(here / "done.json", {"cells": len(job["cells"])})
    os._exit(0)  # threads a cell left running must not keep the process alive


if __name__ == "__main__":
    sys.exit(main())
