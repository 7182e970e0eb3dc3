"""Make the student copy of a notebook marked the nbgrader way.

In code cells, everything between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
becomes a ``# TODO`` stub that raises ``NotImplementedError`` (the function's
signature and docstring, written outside the markers, stay). In Markdown cells
the marked answer becomes "YOUR ANSWER HERE". All outputs and execution counts
are cleared; ``make exercises`` then executes the copy so it is committed run.

``python -m tools.student_copy SOURCE DEST`` writes DEST; ``--check`` only
reports whether DEST is up to date (exit 1 when stale).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_MARK = re.compile(rf"^(?P<indent>[ \t]*){re.escape(BEGIN)}[^\n]*\n.*?^[ \t]*{re.escape(END)}[^\n]*(\n|$)", re.M | re.S)


def strip_code(source: str) -> str:
    """Replace each solution region of a code cell with a TODO stub at the same indentation."""
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers in cell:\n{source[:200]}")

    def stub(m: re.Match) -> str:
        ind = m.group("indent")
        return f"{ind}# TODO: your code here\n{ind}raise NotImplementedError()\n"

    return _MARK.sub(stub, source)


def strip_markdown(source: str) -> str:
    """Replace each marked answer of a Markdown cell with "YOUR ANSWER HERE"."""
    return _MARK.sub(lambda m: "YOUR ANSWER HERE\n", source)


def student_notebook(nb):
    """The student version of an ``nbformat`` notebook (a new object)."""
    import copy

    out = copy.deepcopy(nb)
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.source = strip_code(cell.source)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = strip_markdown(cell.source)
    out.metadata.pop("widgets", None)
    return out


def sources(nb) -> list[tuple[str, str]]:
    """(cell type, source) of every cell: what must match between copy and source."""
    return [(c.cell_type, c.source) for c in nb.cells]


def main(argv=None) -> int:
    import nbformat

    p = argparse.ArgumentParser(prog="python -m tools.student_copy", description=__doc__)
    p.add_argument("source", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--check", action="store_true", help="exit 1 if DEST is stale")
    args = p.parse_args(argv)
    student = student_notebook(nbformat.read(args.source, as_version=4))
    if args.check:
        if not args.dest.is_file() or sources(nbformat.read(args.dest, as_version=4)) != sources(student):
            print(f"{args.dest} is stale: run `make exercises`", file=sys.stderr)
            return 1
        print(f"{args.dest} is up to date")
        return 0
    nbformat.write(student, args.dest)
    print(f"wrote {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
