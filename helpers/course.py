"""Run the course: execute notebooks in order, headless, with progress and a summary.

``python -m helpers.course [--html DIR | --inplace] NOTEBOOK...`` executes each
notebook with a fresh kernel in its own folder, writes the executed copy as
HTML (``--html``) or back into the file (``--inplace``, what is committed), and
ends with one table: notebook, status, seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def execute(path: Path, timeout: int = 1200):
    """Execute one notebook; returns the executed ``nbformat`` node."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    total = sum(1 for c in nb.cells if c.cell_type == "code")
    done = 0

    def on_cell(cell, **_):
        nonlocal done
        if cell.cell_type == "code":
            done += 1
            print(f"\r  {path.name}: cell {done}/{total}", end="", flush=True)

    client.on_cell_executed = lambda **kw: on_cell(kw["cell"])
    client.execute()
    print()
    return nb


def _record_times(rows) -> None:
    """Add the seconds of successful runs to build/course_times.json (read by the benchmarks)."""
    import json

    path = Path(__file__).resolve().parent.parent / "build" / "course_times.json"
    try:
        times = json.loads(path.read_text()) if path.is_file() else {}
        times.update({name: round(seconds, 1) for name, status, seconds in rows if status == "ok"})
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(dict(sorted(times.items())), indent=1))
    except (OSError, ValueError):
        pass  # timings are a convenience; never fail the course over them


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.course", description=__doc__)
    parser.add_argument("notebooks", nargs="*", type=Path)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--html", type=Path, default=None, help="write executed copies as HTML here")
    mode.add_argument("--inplace", action="store_true", help="save executed notebooks in place")
    args = parser.parse_args(argv)
    import nbformat

    if not args.notebooks:
        print("no notebooks to run yet")
        return 0
    rows = []
    for i, path in enumerate(args.notebooks, 1):
        print(f"[{i}/{len(args.notebooks)}] {path}", flush=True)
        start = time.perf_counter()
        try:
            nb = execute(path)
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - report and go on with the next notebook
            nb, status = None, f"FAILED: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:100]}"
        seconds = time.perf_counter() - start
        if nb is not None and args.inplace:
            nbformat.write(nb, path)
        if nb is not None and args.html is not None:
            from nbconvert import HTMLExporter

            args.html.mkdir(parents=True, exist_ok=True)
            body, _ = HTMLExporter().from_notebook_node(nb)
            (args.html / path.with_suffix(".html").name).write_text(body, encoding="utf-8")
        rows.append((path.name, status, seconds))
    width = max(len(r[0]) for r in rows)
    print("\n" + "notebook".ljust(width) + "  status  seconds")
    for name, status, seconds in rows:
        print(f"{name.ljust(width)}  {status.split(':')[0]:6}  {seconds:7.1f}")
    print(f"{'total'.ljust(width)}          {sum(r[2] for r in rows):7.1f}")
    for name, status, _ in rows:
        if status != "ok":
            print(f"{name}: {status}", file=sys.stderr)
    if args.html is not None:
        print(f"executed copies: {args.html}/")
    _record_times(rows)
    return 0 if all(r[1] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
