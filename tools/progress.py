"""Run a long, quiet command (pip installing the course's packages) with a heartbeat.

``python tools/progress.py LABEL -- COMMAND...`` runs COMMAND with its output captured and
prints ``  LABEL: 40 s | Collecting tensorflow...`` every ``--every`` seconds: the elapsed time
and the latest line that says what the command is doing (``Collecting``, ``Downloading``,
``Installing``, ``Building``...). Nothing else of the command's output is shown when it
succeeds (pip's notices are meant for developers); when it fails, all of it is printed, and
its exit status is returned.

Standard library only: the Makefile runs it with the system Python, before the course's
virtual environment exists.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

# Lines worth showing in the heartbeat: what pip is doing now.
ACTIVITY = ("Collecting", "Downloading", "Installing", "Building", "Processing", "Obtaining", "Preparing")


def run(label: str, command: list[str], every: float = 20.0, out=None) -> int:
    """Run ``command``; print a heartbeat every ``every`` seconds; returns its exit status."""
    out = out or sys.stdout
    lines: list[str] = []
    latest = [""]
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            text = line.strip()
            if text.startswith(ACTIVITY):
                latest[0] = text[:100]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while True:
        try:
            proc.wait(timeout=every)
            break
        except subprocess.TimeoutExpired:
            beat = f"  {label}: {time.monotonic() - start:.0f} s"
            print(beat + (f" | {latest[0]}" if latest[0] else ""), file=out, flush=True)
    reader.join(timeout=5)
    if proc.returncode != 0:
        print("".join(lines), end="", file=out, flush=True)
        print(f"  {label} failed (exit status {proc.returncode}); its output is above", file=out, flush=True)
    return proc.returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/progress.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("label", help="what the command does, in a few words")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    parser.add_argument("--every", type=float, default=20.0, help="seconds between heartbeat lines")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    return run(args.label, command, every=args.every)


if __name__ == "__main__":
    sys.exit(main())
