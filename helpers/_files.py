"""Atomic file writes: a temporary file beside the target, then ``os.replace``.

A full disk, a crash or Ctrl-C while writing leaves the old file (or none), never a
truncated one, and the temporary file is removed. ``os.replace`` is atomic when both
names are on one file system, which a temporary file in the target's own folder is.
Used by every file the library and its command line write (figures, checkpoints and
their JSON, the converted-weights cache).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is removed.

    The temporary name keeps ``path``'s suffix (writers that pick the format from it still
    work) and is hidden (a leading dot) and unique per process and call.

    Args:
        path: the file to (re)place; its folder must exist.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # gone already after a successful replace
            tmp.unlink()


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
