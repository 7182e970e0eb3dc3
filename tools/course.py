"""Run the course: execute notebooks in order, headless, with progress and a summary.

``python -m tools.course [--html DIR | --inplace] [--quick] NOTEBOOK...`` executes
each notebook with a fresh kernel in its own folder, writes the executed copy as
HTML (``--html``) or back into the file (``--inplace``, what is committed), and
ends with one table: notebook, status, seconds, where the output is.

While a cell runs longer than a few seconds, a heartbeat line names the cell, its
first source line, the elapsed seconds and the latest progress line it printed
(text, or a tqdm widget's text). ``--quick`` injects the parameters of
:data:`QUICK` after each notebook's ``parameters`` cell, papermill style, and
writes the executed copies under ``build/quick/``: a taste of the course in a
few minutes, whose figures are not the course's results. ``--jobs N`` runs N
notebooks at once, each in its own process and kernel; the notebooks of a chain
(:data:`CHAINS`) stay in one lane, in order.
"""

from __future__ import annotations

import argparse
import ast
import html
import logging
import os
import re
import sys
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Quick taste (`make course QUICK=1`): per notebook (file stem), the parameters to inject.
# Names must exist in the notebook's `parameters` cell; the runner warns (never fails) when one does not,
# so when a notebook renames a parameter, update it here.
QUICK: dict[str, dict[str, object]] = {
    "01_activations": {"MAX_CHANNELS": 16},
    "02_filters": {
        "CHANNELS": list(range(4)),
        "STEPS": 8,
        "SIZE": 64,
        "VIEWS": 4,
        "TOY_DATASET": "toy_cars/tiny",
        "TOY_IMAGES": 8,
    },
    "03_gradcam_xception": {"SCORE_CAM_CHANNELS": 8, "FAMILY_LAYERS": ["top_activation", "block3b_activation"]},
    "04_cars196_cam": {"DATASET": "toy_cars/tiny", "HEAD_EPOCHS": 1, "FINE_TUNE_EPOCHS": 1},
    "05_detection_iou": {"DATASET": "toy_cars/tiny", "HEAD_EPOCHS": 1, "FINE_TUNE_EPOCHS": 1},
    "06_project_cam_iou": {
        "DATASET": "toy_cars/tiny",
        "HEAD_EPOCHS": 1,
        "FINE_TUNE_EPOCHS": 1,
        "N_VAL": 8,
        "N_ITEMS": 8,
    },
    "07_trust": {
        "DATASET": "toy_cars/tiny",
        "HEAD_EPOCHS": 1,
        "FINE_TUNE_EPOCHS": 1,
        "N_TEST": 8,
        "N_FAITHFUL": 2,
        "IG_STEPS": 8,
        "SMOOTHGRAD_SAMPLES": 4,
        "CURVE_STEPS": 8,
        "TAU_STEP": 0.05,
    },
}
# Notebooks that run one after another, in this order, even with --jobs > 1: notebook 04 trains the
# toy_cars checkpoint (and prepares the data set) that 05, 06 and 07 reuse.
CHAINS: list[tuple[str, ...]] = [("04_cars196_cam", "05_detection_iou", "06_project_cam_iou", "07_trust")]
QUICK_BANNER = "QUICK TASTE: small data, few steps. Its figures and numbers are NOT the course's results."

HEARTBEAT_AFTER = 10.0  # seconds a cell runs before the first heartbeat line
_TAGS = re.compile(r"<[^>]+>")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def quiet_runner() -> None:
    """Hide the runner's own noise: Jupyter's deprecation warnings and kernel-manager log chatter."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*Jupyter is migrating.*")
    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugpy's frozen-modules note
    for name in ("traitlets", "nbclient", "jupyter_client", "asyncio"):
        logging.getLogger(name).setLevel(logging.ERROR)


def parameter_names(source: str) -> set[str]:
    """Names assigned in a parameters cell (plain and tuple assignments)."""
    names: set[str] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return names
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            for n in ast.walk(target) if target is not None else ():
                if isinstance(n, ast.Name):
                    names.add(n.id)
    return names


def inject_parameters(nb, parameters: dict, warn=print, images_dir=None) -> list[str]:
    """Insert an ``injected-parameters`` cell after the ``parameters`` cell (papermill style).

    Returns the names that are not in the notebook's parameters cell (each also reported with
    ``warn``); they are injected anyway, as papermill does. Without a parameters cell the new
    cell goes first. Values are written with ``repr``. With ``images_dir``, the cell also points
    ``helpers.viz.save`` there, away from the repository's ``images/``.
    """
    import nbformat

    index = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), None)
    known = parameter_names(nb.cells[index].source) if index is not None else set()
    unknown = [name for name in parameters if name not in known]
    for name in unknown:
        warn(f"  warning: quick parameter {name!r} is not in the notebook's parameters cell (update tools/course.py)")
    source = "# Parameters injected by tools.course (quick taste)\n" + "".join(
        f"{name} = {value!r}\n" for name, value in parameters.items()
    )
    if images_dir is not None:  # figures saved by helpers.viz.save must not replace the committed images/
        source += f"import helpers.viz\nhelpers.viz.IMAGES_DIR = __import__('pathlib').Path({str(images_dir)!r})\n"
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(0 if index is None else index + 1, cell)
    return unknown


def _first_line(source: str) -> str:
    lines = [ln.strip() for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("# NBVAL")]
    return (lines[0][:60] + ("…" if len(lines[0]) > 60 else "")) if lines else ""


def _last_line(text: str) -> str:
    """The latest non-empty line of streamed text, carriage returns (progress bars) included."""
    parts = [p.strip() for p in re.split(r"[\r\n]", text) if p.strip()]
    return parts[-1] if parts else ""


class Progress:
    """What is running now; a daemon thread prints a heartbeat every ``every`` seconds."""

    def __init__(self, name: str, total: int, every: float = 20.0, out=None):
        self.name, self.total, self.every = name, total, every
        self.out = out or sys.stdout
        self.index = 0
        self.cell_source = ""
        self.started = None
        self.latest = ""
        self.widgets: dict[str, str] = {}  # comm id -> its latest text (tqdm widgets)
        self._last_print = time.monotonic()  # the runner has just printed the notebook's own line
        self._beaten = False  # whether the running cell has had its first line
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start_cell(self, cell, now: float | None = None) -> None:
        self.index += 1
        self.cell_source, self.started, self.latest = cell.source, now or time.monotonic(), ""
        self.widgets.clear()
        self._beaten = False

    def end_cell(self) -> None:
        self.started = None

    def message(self, msg: dict) -> None:
        """Keep the latest progress line from a kernel iopub message."""
        kind, content = msg.get("msg_type", ""), msg.get("content", {})
        if kind == "stream":
            line = _last_line(content.get("text", ""))
            if line:
                self.latest = line
        elif kind in ("comm_open", "comm_msg"):
            state = content.get("data", {}).get("state", {})
            value = state.get("value")
            if isinstance(value, str):
                comm = content.get("comm_id", "")
                self.widgets.pop(comm, None)  # most recent last: a tqdm bar updates its left and right text
                self.widgets[comm] = _TAGS.sub("", html.unescape(value)).strip()
                text = " ".join(t for t in list(self.widgets.values())[-2:] if t)
                if text:
                    self.latest = text

    def line(self, now: float | None = None, started: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - (started or self.started or 0)
        head = f"  {self.name} cell {self.index}/{self.total} `{_first_line(self.cell_source)}` {elapsed:.0f} s"
        return head + (f" | {self.latest[:100]}" if self.latest else "")

    def beat(self, now: float | None = None) -> str | None:
        """The heartbeat line if one is due, else None.

        Due ``every`` seconds after the last line, so that a run of short cells shows a sign of life too,
        and ``HEARTBEAT_AFTER`` seconds into a long cell, so that it is named soon after it starts.
        """
        now = now or time.monotonic()
        started = self.started  # read once: the main thread may end the cell meanwhile
        if started is None:
            return None
        if now - self._last_print < self.every and (self._beaten or now - started < HEARTBEAT_AFTER):
            return None
        self._last_print, self._beaten = now, True
        return self.line(now, started)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            text = self.beat()
            if text is not None:
                print(text, file=self.out, flush=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)


def execute(
    path: Path,
    timeout: int = 1200,
    parameters: dict | None = None,
    heartbeat: float = 20.0,
    log_dir=None,
    images_dir=None,
):
    """Execute one notebook in its own folder; returns the executed ``nbformat`` node.

    Args:
        path: the notebook.
        timeout: seconds one cell may run.
        parameters: injected after the ``parameters`` cell (see :func:`inject_parameters`).
        heartbeat: seconds between progress lines while a cell runs.
        log_dir: where the kernel's own stderr goes (``<name>.kernel.log``); None: discarded.
        images_dir: with ``parameters``, where ``helpers.viz.save`` writes instead of ``images/``.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    if parameters is not None:
        inject_parameters(nb, parameters, images_dir=images_dir)
    total = sum(1 for c in nb.cells if c.cell_type == "code")
    progress = Progress(path.name, total, every=heartbeat)

    class Client(NotebookClient):
        def process_message(self, msg, cell, cell_index):
            progress.message(msg)
            return super().process_message(msg, cell, cell_index)

    client = Client(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no "Kernel is running over TCP without encryption"
        on_cell_execute=lambda cell, **_: progress.start_cell(cell) if cell.cell_type == "code" else None,
        on_cell_executed=lambda **_: progress.end_cell(),
    )
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        err = open(Path(log_dir) / f"{path.stem}.kernel.log", "w")  # noqa: SIM115 - closed below
    else:
        err = open(os.devnull, "w")  # noqa: SIM115
    try:
        with progress:
            client.execute(stderr=err)
    except Exception as exc:
        exc.notebook = nb  # executed up to the failing cell, its traceback included: still worth writing
        raise
    finally:
        err.close()
    return nb


def _record_times(rows) -> None:
    """Add the seconds of successful full runs to build/course_times.json (read by the benchmarks)."""
    import json

    path = ROOT / "build" / "course_times.json"
    try:
        times = json.loads(path.read_text()) if path.is_file() else {}
        times.update({name: round(seconds, 1) for name, status, seconds, _ in rows if status == "ok"})
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(dict(sorted(times.items())), indent=1))
    except (OSError, ValueError):
        pass  # timings are a convenience; never fail the course over them


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def table(rows) -> str:
    """The summary: notebook, status, seconds, output (rows of ``(name, status, seconds, output)``)."""
    width = max([len("notebook"), *(len(r[0]) for r in rows)])
    lines = ["notebook".ljust(width) + "  status  seconds  output"]
    for name, status, seconds, output in rows:
        lines.append(f"{name.ljust(width)}  {status.split(':')[0]:6}  {seconds:7.1f}  {output or '-'}")
    lines.append(f"{'total'.ljust(width)}          {sum(r[2] for r in rows):7.1f}")
    return "\n".join(lines)


def lanes(paths, chains=None) -> list[list[int]]:
    """Group notebooks (indices into ``paths``) into lanes that may run at the same time.

    The members of a chain (see :data:`CHAINS`) share one lane, in the chain's order; every
    other notebook is a lane of its own. Lanes are listed longest first, so a pool of workers
    starts the long chain at once and fills the other worker with the short lanes.
    """
    chains = CHAINS if chains is None else chains
    chain_of = {stem: (k, j) for k, chain in enumerate(chains) for j, stem in enumerate(chain)}
    grouped: dict[object, list[int]] = {}
    for i, path in enumerate(paths):
        stem = Path(path).stem
        grouped.setdefault(("chain", chain_of[stem][0]) if stem in chain_of else ("alone", i), []).append(i)
    position = {i: chain_of.get(Path(paths[i]).stem, (0, 0))[1] for i in range(len(paths))}
    return sorted((sorted(lane, key=position.get) for lane in grouped.values()), key=len, reverse=True)


def run_one(index: int, path: Path, opts: dict) -> tuple[str, str, float, str]:
    """Execute one notebook, write its outputs as ``opts`` asks, print its status; returns its table row."""
    quiet_runner()
    import nbformat

    n, quick, named = opts["total"], opts["quick"], opts["jobs"] > 1
    print(f"[{index}/{n}] {path}" + (" started" if named else ""), flush=True)
    start = time.perf_counter()
    if quick and path.stem not in QUICK:
        print(f"  warning: no quick parameters for {path.stem} in tools/course.py; it runs in full")
    out, html_dir = opts["out"], opts["html"]
    try:
        nb = execute(
            path,
            timeout=opts["timeout"],
            parameters=QUICK.get(path.stem, {}) if quick else None,
            heartbeat=opts["heartbeat"],
            log_dir=opts["log_dir"],
            images_dir=(out or html_dir).resolve() / "images" if quick else None,
        )
        status = "ok"
    except Exception as exc:  # noqa: BLE001 - report and go on with the next notebook
        last = (_ANSI.sub("", str(exc)).strip().splitlines() or [""])[-1][:120]
        nb, status = getattr(exc, "notebook", None), f"FAILED: {type(exc).__name__}: {last}"
    seconds = time.perf_counter() - start
    outputs = []
    if nb is not None and opts["inplace"]:
        nbformat.write(nb, path)
        outputs.append(_relative(path))
    if nb is not None and out is not None:
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / path.name)
        outputs.append(_relative(out / path.name))
    if nb is not None and html_dir is not None:
        from nbconvert import HTMLExporter

        html_dir.mkdir(parents=True, exist_ok=True)
        body, _ = HTMLExporter().from_notebook_node(nb)
        (html_dir / path.with_suffix(".html").name).write_text(body, encoding="utf-8")
        outputs.append(_relative(html_dir / path.with_suffix(".html").name))
    print(f"  {path.name + ': ' if named else ''}{status.split(':')[0]} in {seconds:.0f} s", flush=True)
    return path.name, status, seconds, ", ".join(outputs)


def _run_lane(lane: list[tuple[int, Path]], opts: dict) -> list[tuple[int, tuple]]:
    return [(i, run_one(i, path, opts)) for i, path in lane]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.course", description=__doc__)
    parser.add_argument("notebooks", nargs="*", type=Path)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--html", type=Path, default=None, help="write executed copies as HTML here")
    mode.add_argument("--inplace", action="store_true", help="save executed notebooks in place")
    parser.add_argument("--quick", action="store_true", help="inject the QUICK parameters; outputs in --out")
    parser.add_argument("--out", type=Path, default=None, help="also write executed .ipynb copies here")
    parser.add_argument("--heartbeat", type=float, default=20.0, help="seconds between progress lines")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds one cell may run")
    parser.add_argument(
        "--jobs", type=int, default=1, help="notebooks run at once (chained notebooks stay in order; see CHAINS)"
    )
    args = parser.parse_args(argv)
    if args.quick and args.inplace:
        parser.error("--quick never writes over the committed notebooks: use --out/--html")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.quick and args.out is None and args.html is None:
        args.out = ROOT / "build" / "quick"
    quiet_runner()

    if not args.notebooks:
        print("no notebooks to run yet")
        return 0
    if args.quick:
        print(QUICK_BANNER, flush=True)
    log_dir = (args.out or args.html or ROOT / "build") / "logs"
    opts = {
        "total": len(args.notebooks),
        "quick": args.quick,
        "jobs": args.jobs,
        "out": args.out,
        "html": args.html,
        "inplace": args.inplace,
        "timeout": args.timeout,
        "heartbeat": args.heartbeat,
        "log_dir": log_dir,
    }
    numbered = list(enumerate(args.notebooks, 1))
    groups = [[numbered[i] for i in lane] for lane in lanes(args.notebooks)]
    wall = time.perf_counter()
    if args.jobs == 1 or len(groups) == 1:
        results = _run_lane(numbered, opts)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        print(f"running {min(args.jobs, len(groups))} notebooks at once; chained notebooks in order", flush=True)
        pool = ProcessPoolExecutor(min(args.jobs, len(groups)), mp_context=multiprocessing.get_context("spawn"))
        try:
            results = [r for future in [pool.submit(_run_lane, g, opts) for g in groups] for r in future.result()]
        except BaseException:  # Ctrl-C or a lane that crashed outside a notebook: run no queued lane
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    rows = [row for _, row in sorted(results)]
    wall = time.perf_counter() - wall
    print("\n" + table(rows))
    if args.jobs > 1:
        print(f"wall clock: {wall:.1f} s ({args.jobs} notebooks at once)")
    for name, status, _, _ in rows:
        if status != "ok":
            print(f"{name}: {status} (kernel log: {_relative(log_dir / Path(name).with_suffix('.kernel.log'))})")
            if args.inplace:
                print(f"  {name} was written with its error: do not commit it as is")
    if args.quick:
        print(QUICK_BANNER)
    elif args.jobs == 1:
        _record_times(rows)  # timings of notebooks that shared the cores would mislead the benchmarks
    return 0 if all(r[1] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
