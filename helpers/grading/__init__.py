"""Grade a class: a folder of returned project notebooks (06) -> ``grades.csv``, feedback pages, a summary figure.

``python -m helpers grade SUBMISSIONS --out OUT`` (see :func:`grade`). For each ``*.ipynb`` (one student, named
by the file's stem):

1. the notebook is read and checked here (an unreadable file gets the status ``invalid notebook: …``);
2. its code cells run in a separate process (:mod:`helpers.grading.runner`) inside the strongest sandbox the
   machine offers (:mod:`helpers.grading.sandbox`), with the grader's parameters injected after its
   ``parameters`` cell (the teacher's trained checkpoint, read-only; few images in the notebook's own table);
   that process calls the five task functions on hidden inputs (:mod:`helpers.grading.cases`) and saves what
   they return;
3. back here, out of the submission's reach, those outputs are judged against the reference implementation,
   with the same hints as the notebook's check cells. **The notebook's printed ✔ lines count for nothing.**

Rows are written as they finish; a second run re-grades only the notebooks whose bytes (or the grader's
settings) changed.
"""

from __future__ import annotations

import ast
import concurrent.futures as futures
import functools
import hashlib
import io
import json
import os
import re
import shutil
import sys
import threading
import time
import warnings
from pathlib import Path

from .._files import write_text
from . import report, sandbox
from .cases import POINTS, TASK_TITLES, TASKS

PARAMETERS: dict[str, object] = {
    "DATASET": "toy_cars",
    "MANUAL_DIR": None,
    "FEATURE_LAYER": "block6a_expand_activation",
    "HEAD_EPOCHS": 2,
    "FINE_TUNE_EPOCHS": 3,
    "EARLIER_LAYER": "block4c_add",
    "N_VAL": 4,
    "N_ITEMS": 4,
}
"""Injected after each submission's ``parameters`` cell: notebook 06's defaults (so the notebook loads the
checkpoint of notebook 04, prepared once by :func:`prepare`), with few images in the notebook's own
comparison table, which the grade does not use. ``tests/test_grading.py`` keeps them in step with the notebook."""

TIMEOUT = 300
"""Default wall-clock seconds for one submission (its process is killed after them)."""
CELL_TIMEOUT = 120
"""Default seconds for one code cell (it is interrupted, and the next cells run)."""
MEMORY_MB = 4096
"""Default memory limit of one submission's process tree (TensorFlow and the course model take about 1.5 GB)."""
MAX_NOTEBOOK_BYTES = 20 << 20
FORBIDDEN = ("helpers.cam", "helpers.viz", "helpers.boxes", "helpers.localization", "helpers.attribution",
             "helpers.grading", "helpers.exercises")  # fmt: skip
"""Modules that solve the tasks: a task function that uses them earns no points (``exercises.to_input`` is allowed)."""
ALLOWED = ("helpers.exercises.to_input",)


class GradingError(ValueError):
    """A grading run that cannot start (the message says why)."""


class InvalidNotebook(ValueError):  # noqa: N818 - reads as the status it produces
    """A submission that is not a readable notebook."""


# --------------------------------------------------------------------------- reading a submission
def find_submissions(folder: Path, exclude: Path | None = None) -> list[tuple[str, Path]]:
    """``(student, path)`` for every ``*.ipynb`` under ``folder`` (checkpoints and hidden folders skipped).

    The student is the file's stem; when two files share a stem, their paths (without the suffix) name them.
    """
    folder = Path(folder)
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        rel = path.relative_to(folder)
        if any(p.startswith(".") or p == ".ipynb_checkpoints" for p in rel.parts[:-1]):
            continue
        if exclude is not None and (path.resolve() == exclude or exclude in path.resolve().parents):
            continue
        if path.is_file():
            found.append(path)
    stems = [p.stem for p in found]
    return [
        (p.stem if stems.count(p.stem) == 1 else p.relative_to(folder).with_suffix("").as_posix(), p) for p in found
    ]


def _literal(value) -> str:
    return repr(value)


def read_cells(data: bytes, parameters: dict) -> tuple[list[str], list[str]]:
    """The code cells to run, with the grader's parameters injected, and notes for the feedback.

    Raises:
        InvalidNotebook: not JSON, not a notebook (nbformat 4), or too large.
    """
    import nbformat

    if len(data) > MAX_NOTEBOOK_BYTES:
        raise InvalidNotebook(f"larger than {MAX_NOTEBOOK_BYTES >> 20} MB")
    try:
        with warnings.catch_warnings():  # a student's notebook without cell ids is still a notebook
            warnings.simplefilter("ignore")
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    except UnicodeDecodeError:
        raise InvalidNotebook("not a text file (is it a notebook saved as .ipynb?)") from None
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds for a broken file
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise InvalidNotebook(f"not a Jupyter notebook ({first})") from None
    cells, notes, injected = [], [], False
    inject = "# Parameters injected by the grader\n" + "".join(f"{k} = {_literal(v)}\n" for k, v in parameters.items())
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        cells.append(source if isinstance(source, str) else "".join(source))
        if not injected and "parameters" in cell.get("metadata", {}).get("tags", []):
            cells.append(inject)
            injected = True
    if not cells:
        raise InvalidNotebook("it has no code cells")
    if not injected:
        cells.insert(0, inject)
        notes.append("the cell tagged 'parameters' is missing: the grader's parameters were set before your cells")
    return cells, notes


_AST_LOCK = threading.Lock()  # CPython 3.11's AST constructor is not thread-safe ("recursion depth mismatch")


def _python(source: str) -> ast.Module | None:
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        with _AST_LOCK:
            return ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _forbidden(full: str) -> bool:
    return any(full == m or full.startswith(m + ".") for m in FORBIDDEN) and not any(
        full == a or full.startswith(a + ".") for a in ALLOWED
    )


def forbidden_uses(cells: list[str]) -> dict[str, str]:
    """``{task: what it uses}`` for each task function that calls a module that solves the task for it.

    A static reading (Python's ``ast``) of the notebook's code, so student code cannot hide it at run time:
    names bound by ``import``/``from … import`` of :data:`FORBIDDEN` modules, and dotted names such as
    ``helpers.cam.grad_cam`` or ``exercises.overlay_reference``, inside the task function or a function of the
    notebook that it calls.
    """
    aliases: dict[str, str] = {"exercises": "helpers.exercises", "helpers": "helpers"}
    defs: dict[str, ast.AST] = {}
    for source in cells:
        tree = _python(source)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                defs[node.name] = node

    def uses(fn_name: str, seen: set[str]) -> str | None:
        seen.add(fn_name)
        nodes = list(ast.walk(defs[fn_name]))
        inner = {id(n.value) for n in nodes if isinstance(n, ast.Attribute)}  # parts of a longer dotted name
        local = {a.arg for n in nodes if isinstance(n, ast.arguments) for a in [*n.posonlyargs, *n.args,
                 *n.kwonlyargs, *filter(None, [n.vararg, n.kwarg])]}  # fmt: skip
        local |= {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store | ast.Del)}
        for node in nodes:
            if id(node) in inner:
                continue
            name = _dotted(node) if isinstance(node, ast.Attribute | ast.Name) else None
            if name is None:
                continue
            head, _, rest = name.partition(".")
            if head in local:  # a variable of the function that happens to share an imported name
                continue
            full = aliases.get(head, head) + (f".{rest}" if rest else "")
            if head in aliases and _forbidden(full):
                return full
            if isinstance(node, ast.Name) and node.id in defs and node.id not in seen:
                found = uses(node.id, seen)
                if found:
                    return found
        return None

    out = {}
    for task in TASKS:
        if task in defs:
            found = uses(task, set())
            if found:
                out[task] = found
    return out


# --------------------------------------------------------------------------- judging what came back
def _read_capped(path: Path, limit: int) -> bytes | None:
    """A file the submission wrote, without following links, or None when missing or over ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    return None if len(data) > limit else data


def _load_json(path: Path, limit: int = 1 << 20):
    data = _read_capped(path, limit)
    try:
        return json.loads(data) if data is not None else None
    except ValueError:
        return None


def judge(work: Path, forbidden: dict[str, str]) -> tuple[dict[str, float], dict]:
    """Points per task and the feedback detail, from what the submission's process saved in ``work/results``."""
    import numpy as np

    from ..exercises import CaseFailed
    from .cases import all_cases

    points, detail = {}, {}
    for task in TASKS:
        cases = all_cases()[task]
        statuses = _load_json(work / "results" / f"{task}.json")
        blob = _read_capped(work / "results" / f"{task}.npz", 256 << 20)
        try:
            arrays = dict(np.load(io.BytesIO(blob), allow_pickle=False)) if blob else {}
        except (ValueError, OSError, EOFError):
            arrays = {}
        info: dict = {"cases": []}
        detail[task] = info
        points[task] = 0
        if task in forbidden:
            info["summary"] = (
                f"{task} uses {forbidden[task]}, which solves the task for you: write it with numpy, OpenCV, "
                "TensorFlow and matplotlib (exercises.to_input is allowed)"
            )
            continue
        if not isinstance(statuses, list):
            info["summary"] = f"no function named {task} was defined when the notebook ran (or it was never reached)"
            continue
        if all(isinstance(s, dict) and s.get("status") == "todo" for s in statuses):
            info.update(summary="not implemented yet (it still raises NotImplementedError)", css="todo")
            continue
        for i, case in enumerate(cases):
            st = statuses[i] if i < len(statuses) and isinstance(statuses[i], dict) else {"status": "missing"}
            kind = st.get("status")
            hint = None
            try:
                if st.get("mutated"):
                    raise CaseFailed("your function modified an input array it was given: work on a copy")
                if kind == "ok":
                    case.judge(arrays.get(f"c{i}"))
                elif kind == "none":
                    case.judge(None)
                elif kind == "todo":
                    raise CaseFailed("raised NotImplementedError")
                elif kind == "raised":
                    raise CaseFailed(f"your function raised {str(st.get('message', ''))[:300]}")
                elif kind == "timeout":
                    raise CaseFailed(str(st.get("message", "it did not return in time")))
                else:
                    raise CaseFailed("no result was saved for this case")
            except CaseFailed as exc:
                hint = str(exc)
            except Exception as exc:  # noqa: BLE001 - an output the judges did not foresee is a failed case
                hint = f"the output could not be read as expected ({type(exc).__name__}: {str(exc)[:120]})"
            info["cases"].append((case.name, hint is None, hint))
        passed = sum(ok for _, ok, _ in info["cases"])
        if passed == len(cases):
            points[task] = POINTS[task]
            info.update(summary=f"all {len(cases)} hidden cases pass", css="ok")
        else:
            info["summary"] = f"{passed}/{len(cases)} hidden cases pass"
    return points, detail


# --------------------------------------------------------------------------- one submission
def _safe(name: str) -> str:
    """A file name for a student's feedback page and work folder, distinct for distinct students.

    A name that is already safe is kept; any other (``a/alice``, ``Zoë``) gets a short digest of the original
    appended, so ``a/alice`` and a student called ``a_alice`` never share a page.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "student"
    if safe == name:
        return safe
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def grade_one(student: str, path: Path, out: Path, hide: list[Path], options: dict, stop=None) -> tuple[dict, dict]:
    """Run and judge one submission; never raises for anything the submission does."""
    start = time.monotonic()
    row = {"student": student, **dict.fromkeys(TASKS, 0), "total": 0, "max": sum(POINTS.values())}
    detail: dict = {"notes": [], "cells": [], "tasks": {}}
    try:
        data = path.read_bytes()
        cells, notes = read_cells(data, options["parameters"])
    except InvalidNotebook as exc:
        row["status"] = f"invalid notebook: {exc}"
        detail["notes"].append(f"the file could not be graded: {exc}")
        return row, {**detail, "seconds": time.monotonic() - start}
    except OSError as exc:
        row["status"] = f"invalid notebook: cannot read the file ({exc.strerror or exc})"
        return row, {**detail, "seconds": time.monotonic() - start}
    detail["notes"] += notes
    forbidden = forbidden_uses(cells)
    work = out / ".work" / _safe(student)
    shutil.rmtree(work, ignore_errors=True)
    (work / "home").mkdir(parents=True)
    (work / "tmp").mkdir()
    iso = options["isolation"]
    write_text(
        work / "job.json",
        json.dumps({"cells": cells, "cell_timeout": options["cell_timeout"], "refuse_network": not iso.network}),
    )
    argv = [sys.executable, "-m", "helpers.grading.runner"]
    cmd, inside = sandbox.command(iso, work, argv, hide)
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": f"{inside}/home",
        "TMPDIR": f"{inside}/tmp",
        "KERAS_HOME": f"{inside}/home/.keras",
        "MPLBACKEND": "Agg",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p),
    }
    outcome = sandbox.run(
        cmd, work, env, timeout=options["timeout"], memory_bytes=options["memory_mb"] << 20,
        log=work / "process.log", stop=stop,
    )  # fmt: skip
    points, detail["tasks"] = judge(work, forbidden)
    log = _load_json(work / "cells.json") or {}
    detail["cells"] = [c for c in log.get("cells", []) if isinstance(c, dict)][:500]
    done = (work / "done.json").exists()
    progress = _load_json(work / "progress.json") or {}
    at = f"during code cell {int(progress.get('cell', 0)) + 1}" if progress else "before the first cell"
    timed_out = [c for c in detail["cells"] if c.get("status") == "timeout"]
    if outcome.killed == "timeout":
        status = "timeout"
        detail["notes"].append(
            f"stopped after {options['timeout']} s {at}; the tasks defined before that point were graded"
        )
    elif outcome.killed == "memory":
        status = f"error: memory limit ({options['memory_mb']} MB) exceeded {at}"
    elif outcome.killed == "processes":
        status = f"error: too many processes {at}"
    elif outcome.killed == "cancelled":
        status = "error: grading was interrupted"
    elif not done:
        how = f"signal {-outcome.returncode}" if (outcome.returncode or 0) < 0 else f"exit status {outcome.returncode}"
        if not progress:
            tail = (_read_capped(work / "process.log", 1 << 20) or b"").decode(errors="replace").strip()
            last = tail.splitlines()[-1][:200] if tail else "no output"
            status = f"error: the grader could not start the notebook's process ({how}: {last})"
        else:
            status = f"error: the notebook's process ended {at} ({how}: a crash, os._exit or a killed kernel)"
    elif timed_out:
        status = "timeout"
        detail["notes"].append(
            f"{len(timed_out)} code cell(s) ran past {options['cell_timeout']} s and were interrupted; "
            "the cells after them ran"
        )
    else:
        status = "ok"
    if log.get("output_chars", 0) > 10_000_000:
        detail["notes"].append(f"your cells printed {log['output_chars']:,} characters; they were discarded")
    row.update(points, total=sum(points.values()), status=status)
    if not options.get("keep"):
        shutil.rmtree(work, ignore_errors=True)
    return row, {**detail, "seconds": outcome.seconds, "peak_mb": outcome.peak_bytes >> 20}


# --------------------------------------------------------------------------- the class
def prepare(parameters: dict, echo=print) -> None:
    """Train (once) or reuse the checkpoint the submissions load, and prepare the data set, before any runs."""
    from .. import training

    echo("preparing the model the notebooks load (trains once if missing, as notebook 04 does)")
    training.train_cam_model(
        parameters["DATASET"],
        feature_layer=parameters["FEATURE_LAYER"],
        head_epochs=parameters["HEAD_EPOCHS"],
        fine_tune_epochs=parameters["FINE_TUNE_EPOCHS"],
        manual_dir=parameters["MANUAL_DIR"],
    )


@functools.cache
def _code_digest() -> str:
    """The grading code's own digest, read once per process (the code that is running, not a later edit)."""
    h = hashlib.sha256()
    for f in sorted(Path(__file__).parent.glob("*.py")) + [Path(__file__).parent.parent / "exercises.py"]:
        h.update(f.read_bytes())
    return h.hexdigest()


def _fingerprint(options: dict) -> str:
    h = hashlib.sha256(_code_digest().encode())
    keys = ("parameters", "timeout", "cell_timeout", "memory_mb")
    h.update(json.dumps({k: options[k] for k in keys}, sort_keys=True, default=str).encode())
    h.update(options["isolation"].kind.encode())
    return h.hexdigest()


def _digest(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return ""


def check_folders(submissions: Path, out: Path) -> tuple[Path, Path]:
    """Fail before any work when the folders cannot work; create nothing."""
    submissions, out = Path(submissions).expanduser().resolve(), Path(out).expanduser().resolve()
    if not submissions.is_dir():
        raise GradingError(f"SUBMISSIONS {submissions} is not a folder")
    if out == submissions or out in submissions.parents:
        raise GradingError(f"--out {out} would contain the submissions: choose another folder")
    if out.exists() and not out.is_dir():
        raise GradingError(f"--out {out} is a file, not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GradingError(f"--out {out}: cannot write in {parent} (permission denied)")
    return submissions, out


def grade(
    submissions,
    out,
    *,
    timeout: float = TIMEOUT,
    cell_timeout: float = CELL_TIMEOUT,
    memory_mb: int = MEMORY_MB,
    jobs: int = 1,
    force: bool = False,
    parameters: dict | None = None,
    keep: bool = False,
    echo=print,
) -> list[dict]:
    """Grade every notebook under ``submissions``; write ``grades.csv``, ``feedback/`` and ``summary.png`` in ``out``.

    Args:
        submissions: the folder of returned notebooks (one ``*.ipynb`` per student, any depth).
        out: where the results go (created; must not contain the submissions).
        timeout: wall-clock seconds per submission.
        cell_timeout: seconds per code cell.
        memory_mb: memory limit of a submission's processes.
        jobs: submissions graded at once.
        force: re-grade unchanged submissions too.
        parameters: overrides of :data:`PARAMETERS` (e.g. ``{"DATASET": "toy_cars/tiny"}``).
        keep: keep each submission's working folder under ``out/.work`` (for debugging the grader).
        echo: where progress lines go.

    Returns:
        The rows of ``grades.csv``.
    """
    if timeout <= 0 or cell_timeout <= 0 or memory_mb <= 0 or jobs < 1:
        raise GradingError("--timeout, --cell-timeout and --memory must be positive and --jobs at least 1")
    unknown = set(parameters or {}) - set(PARAMETERS)
    if unknown:
        raise GradingError(f"unknown parameter(s) {', '.join(sorted(unknown))}; known: {', '.join(PARAMETERS)}")
    submissions, out = check_folders(submissions, out)
    found = find_submissions(submissions, exclude=out)
    if not found:
        raise GradingError(f"no *.ipynb file under {submissions}")
    iso = sandbox.detect()
    options = {
        "parameters": {**PARAMETERS, **(parameters or {})},
        "timeout": timeout,
        "cell_timeout": min(cell_timeout, timeout),
        "memory_mb": int(memory_mb),
        "isolation": iso,
        "keep": keep,
    }
    for line in iso.describe():
        echo(line)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    cache_path = out / ".grades-cache.json"
    cache = {} if force else (_load_json(cache_path, 64 << 20) or {})
    key = _fingerprint(options)
    digests = {s: _digest(p) for s, p in found}
    rows = {s: c["row"] for s, c in cache.items() if s in digests and c.get("sha256") == digests[s]
            and c.get("key") == key and (out / "feedback" / f"{_safe(s)}.html").exists()}  # fmt: skip
    todo = [(s, p) for s, p in found if s not in rows]
    cache = {s: c for s, c in cache.items() if s in rows}
    report.write_csv(out / "grades.csv", list(rows.values()))
    echo(f"{len(found)} submissions: {len(todo)} to grade, {len(rows)} unchanged since the last run (--force)")
    if todo:
        prepare(options["parameters"], echo)
        from .cases import warm

        warm()  # the expected outputs, computed here once, before any submission runs
    hide = [submissions, out]
    stop = threading.Event()
    done = 0
    lines = iso.describe()
    pool = futures.ThreadPoolExecutor(max_workers=jobs)
    running = {pool.submit(grade_one, s, p, out, hide, options, stop): (s, time.monotonic()) for s, p in todo}
    try:
        pending = set(running)
        while pending:
            finished, pending = futures.wait(pending, timeout=20, return_when=futures.FIRST_COMPLETED)
            for fut in finished:
                student, _ = running[fut]
                try:
                    row, detail = fut.result()
                except Exception as exc:  # noqa: BLE001 - a grader fault on one notebook must not stop the class
                    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                    row = {
                        "student": student,
                        **dict.fromkeys(TASKS, 0),
                        "total": 0,
                        "max": sum(POINTS.values()),
                        "status": f"error: the grader failed on this notebook ({type(exc).__name__}: {first})",
                    }
                    detail = {"notes": ["the grader itself failed on this notebook: run it again, or report it"]}
                rows[student] = row
                write_text(out / "feedback" / f"{_safe(student)}.html", report.feedback_html(row, detail, lines))
                cache[student] = {"sha256": digests.get(student), "key": key, "row": row}
                report.write_csv(out / "grades.csv", list(rows.values()))
                write_text(cache_path, json.dumps(cache))
                done += 1
                echo(f"[{done}/{len(todo)}] {student}: {row['total']:g}/{row['max']:g} points, {row['status']} "
                     f"({detail.get('seconds', 0):.0f} s, {detail.get('peak_mb', 0):,} MB)")  # fmt: skip
            if not finished:
                busy = [f"{running[f][0]} ({time.monotonic() - running[f][1]:.0f} s)" for f in pending if f.running()]
                echo(f"  … still grading: {', '.join(busy) or 'starting'}")
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    table = list(rows.values())
    report.summary_png(out / "summary.png", table)
    echo(f"wrote {out / 'grades.csv'}, {out / 'feedback'}/ and {out / 'summary.png'}")
    return sorted(table, key=lambda r: r["student"])


__all__ = ["PARAMETERS", "TASKS", "TASK_TITLES", "GradingError", "InvalidNotebook", "grade", "grade_one", "judge"]
