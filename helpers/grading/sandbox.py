"""Run one submission's process isolated, with limits, and say plainly which isolation was in force.

Layers, strongest first (:func:`detect` picks what the machine has):

* **bubblewrap** (``bwrap``, Debian/Ubuntu package ``bubblewrap``): the process sees the file system read-only,
  with its own folder bind-mounted writable at ``/tmp/submission``; a private ``/tmp``; the submissions folder,
  the output folder and the teacher's home folder hidden (the repository and Python are mounted back read-only);
  no network (its own, empty network namespace); its own PID namespace (it cannot see or signal other processes);
  all capabilities dropped.
* **none** (no bubblewrap, or not Linux): the process runs in its own working folder with ``HOME`` and
  ``TMPDIR`` pointed there and outgoing sockets refused *inside Python* (code can undo that); the file system is
  as writable to it as to you. The grader prints this in its first lines.

Always: a wall-clock limit (the whole process tree is killed), a memory limit on the tree's resident memory
(a watchdog reads ``/proc`` four times a second; ``RLIMIT_AS`` is not used because TensorFlow reserves far more
address space than it touches), a process-count limit (the same watchdog), and ``RLIMIT_CPU``, ``RLIMIT_FSIZE``
and ``RLIMIT_NOFILE`` set in the child.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

INSIDE = "/tmp/submission"
"""Where the submission's own folder appears inside the bubblewrap sandbox."""


@dataclass(frozen=True)
class Isolation:
    """What protects the machine from a submission's code."""

    kind: str  # "bubblewrap" or "none"
    network: bool  # no network at all (a namespace), not just refused sockets
    filesystem: bool  # read-only except its folder; submissions, output folder and home hidden
    processes: bool  # its own PID namespace
    memory: bool  # the resident-memory watchdog runs (needs /proc)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> list[str]:
        """One line per protection, for the terminal, the feedback and the README."""
        yes, no = "yes", "NO"
        lines = [
            f"isolation: {self.kind}",
            f"  network blocked: {yes if self.network else no + ' (sockets refused inside Python only)'}",
            f"  files outside its folder read-only, other submissions hidden: {yes if self.filesystem else no}",
            f"  own process namespace: {yes if self.processes else no}",
            f"  memory limit enforced: {yes if self.memory else no}",
            "  time, CPU, file-size and open-file limits: yes",
        ]
        return lines + [f"  note: {n}" for n in self.notes]


@functools.lru_cache(maxsize=1)
def detect() -> Isolation:
    """The strongest isolation this machine offers (probed once per process)."""
    linux = sys.platform.startswith("linux")
    memory = linux and Path("/proc/self/status").exists()
    bwrap = shutil.which("bwrap")
    if linux and bwrap:
        probe = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all"]
        probe += ["--die-with-parent", "--cap-drop", "ALL", "true"]
        try:
            ok = subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            notes = ()
            if os.geteuid() == 0:
                notes = ("the grader runs as root: files outside the home folder that root can read stay readable",)
            return Isolation("bubblewrap", True, True, True, memory, notes)
        hint = "bubblewrap is installed but could not create namespaces here (user namespaces disabled?)"
    elif linux:
        hint = "install bubblewrap (apt install bubblewrap) to isolate files, network and processes"
    else:
        hint = f"no sandbox on {sys.platform}: grade on Linux with bubblewrap to isolate submissions"
    return Isolation("none", False, False, False, memory, (hint,))


def _readonly_paths() -> list[Path]:
    """What must stay visible (read-only) when the home folder is hidden: Python, its packages, this repository."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(__file__).resolve().parents[2]}
    paths |= {Path(p) for p in sys.path if p and Path(p).is_dir()}
    paths |= {Path(sys.executable).resolve().parent.parent}
    return sorted(p.resolve() for p in paths if p.exists())


def command(iso: Isolation, work: Path, argv: list[str], hide: list[Path]) -> tuple[list[str], str]:
    """The command line that runs ``argv`` in ``work`` under ``iso``, and the working folder the process sees.

    Args:
        iso: from :func:`detect`.
        work: the submission's own folder (the only writable place).
        argv: the program and its arguments.
        hide: folders the process must not see (the submissions, the output folder).
    """
    if iso.kind != "bubblewrap":
        return argv, str(work)
    cmd = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    # a private /tmp and /var/tmp, and the teacher's home (~/.keras, ~/.ssh, …) hidden
    covered = [Path("/tmp").resolve(), Path("/var/tmp").resolve(), Path.home().resolve()]
    covered = [c for i, c in enumerate(covered) if c.is_dir() and c != Path("/") and c not in covered[:i]]
    for c in covered:
        cmd += ["--tmpfs", str(c)]
    for p in _readonly_paths():  # mount back, read-only, what Python and the course need from a hidden folder
        if any(c in p.parents for c in covered):  # (a clone or a virtual environment under /tmp or ~)
            cmd += ["--ro-bind", str(p), str(p)]
    for p in sorted({h.resolve() for h in hide if h.exists() and h.resolve() != Path("/")}, key=str):
        cmd += ["--tmpfs", str(p)]  # last, so a folder mounted back above cannot show the submissions again
    cmd += ["--bind", str(work), INSIDE, "--chdir", INSIDE]
    cmd += ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--"]
    return cmd + argv, INSIDE


def _set_limits(cpu_seconds: int, file_bytes: int, open_files: int) -> None:  # pragma: no cover - in the child
    import resource

    os.setsid()  # its own process group and session: the whole tree can be signalled at once
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the size limit fails instead of killing
    for res, value in (
        (resource.RLIMIT_CPU, cpu_seconds),
        (resource.RLIMIT_FSIZE, file_bytes),
        (resource.RLIMIT_NOFILE, open_files),
        (resource.RLIMIT_CORE, 0),
    ):
        soft, hard = resource.getrlimit(res)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(res, (value, hard))


@dataclass
class Outcome:
    """How the process ended."""

    returncode: int | None
    seconds: float
    killed: str | None = None  # "timeout", "memory", "processes" or "cancelled" when the watchdog killed it
    peak_bytes: int = 0  # the largest resident memory of the process tree the watchdog saw


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _tree(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _kill_tree(proc: subprocess.Popen, pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def run(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str],
    *,
    timeout: float,
    memory_bytes: int,
    max_processes: int = 256,
    log: Path | None = None,
    log_bytes: int = 8 << 20,
    poll: float = 0.25,
    stop=None,
) -> Outcome:
    """Run ``cmd`` and wait, killing its whole process tree at the first limit it passes.

    Args:
        cmd: from :func:`command`.
        cwd: where to start it (outside the sandbox; bubblewrap changes folder itself).
        env: its whole environment.
        timeout: wall-clock seconds.
        memory_bytes: the most resident memory of the process tree.
        max_processes: the most processes in the tree.
        log: file for its stdout and stderr (capped at ``log_bytes`` by ``RLIMIT_FSIZE``), or None to discard.
        log_bytes: see ``log``.
        poll: seconds between two watchdog checks.
        stop: a ``threading.Event``; when set, the process tree is killed (``killed="cancelled"``).
    """
    start = time.monotonic()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=functools.partial(_set_limits, int(timeout * 4) + 10, log_bytes, 1024),
        )
    finally:
        if log:
            out.close()
    killed, peak = None, 0
    try:
        while proc.poll() is None:
            pids = _tree(proc.pid) if sys.platform.startswith("linux") else [proc.pid]
            rss = sum(_rss(p) for p in pids)
            peak = max(peak, rss)
            if stop is not None and stop.is_set():
                killed = "cancelled"
            elif time.monotonic() - start > timeout:
                killed = "timeout"
            elif len(pids) > max_processes:
                killed = "processes"
            elif rss > memory_bytes:
                killed = "memory"
            if killed:
                _kill_tree(proc, pids)
                break
            time.sleep(poll)
    except BaseException:  # Ctrl-C or an error in the grader: never leave a submission running
        _kill_tree(proc, _tree(proc.pid) if sys.platform.startswith("linux") else [proc.pid])
        proc.wait()
        raise
    proc.wait()
    return Outcome(proc.returncode, time.monotonic() - start, killed, peak)
