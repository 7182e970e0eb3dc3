"""Localisation data sets as TensorFlow Datasets builders.

Importing this package registers ``toy_cars`` (generated offline) and
``stanford_cars`` (the original files, placed by hand), so ``tfds.load`` finds them.
"""

from __future__ import annotations

from pathlib import Path

from .._quiet import import_tensorflow

import_tensorflow()

import tensorflow_datasets as tfds  # noqa: E402

from . import render  # noqa: E402
from .stanford_cars import DamagedFileError, MissingFilesError, StanfordCars, check_manual_dir  # noqa: E402
from .toy_cars import ToyCars  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "tfds"

__all__ = [
    "DATA_DIR",
    "DamagedFileError",
    "MissingFilesError",
    "StanfordCars",
    "ToyCars",
    "check_manual_dir",
    "load",
    "render",
]


def load(
    name: str = "toy_cars",
    split=("train", "validation", "test"),
    data_dir=None,
    manual_dir=None,
    quiet: bool = False,
    **kwargs,
):
    """``tfds.load`` of a course data set, prepared on first use under ``data/tfds``.

    Args:
        name: ``"toy_cars"`` (optionally ``"toy_cars/small"``) or ``"stanford_cars"``.
        split: a split name or a sequence of them. ``stanford_cars`` has only
            train and test: its validation split is the last 10% of train.
        data_dir: where TFDS stores the prepared data (default ``data/tfds``).
        manual_dir: for ``stanford_cars``, the folder holding the four original files.
        quiet: prepare a missing data set without printing anything (TFDS's messages and
            progress bars go nowhere), so a notebook's output is the same on the first run and later.
        **kwargs: passed to ``tfds.load`` (``with_info`` is always on).

    Returns:
        ``(datasets, info)`` as ``tfds.load(..., with_info=True)``.
    """
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    dl_config = None
    if name.startswith("stanford_cars"):
        manual_dir = Path(manual_dir) if manual_dir is not None else data_dir / "downloads" / "manual"
        builder = tfds.builder(name, data_dir=str(data_dir))
        if not builder.is_prepared():
            check_manual_dir(manual_dir)
        dl_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
        rename = {"validation": "train[90%:]", "train": "train[:90%]"}
        split = rename.get(split, split) if isinstance(split, str) else [rename.get(s, s) for s in split]
    if quiet:
        import contextlib
        import io

        from absl import logging as absl_logging

        sink, level = io.StringIO(), absl_logging.get_verbosity()
        absl_logging.set_verbosity(absl_logging.ERROR)
        tfds.display_progress_bar(False)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                return load(name, split, data_dir, manual_dir, quiet=False, **kwargs)
        finally:
            tfds.display_progress_bar(True)
            absl_logging.set_verbosity(level)

    def tfds_load():
        return tfds.load(
            name,
            split=list(split) if not isinstance(split, str) else split,
            data_dir=str(data_dir),
            with_info=True,
            download_and_prepare_kwargs={"download_config": dl_config} if dl_config else None,
            **kwargs,
        )

    try:
        return tfds_load()
    except OSError:  # FileExistsError, or ENOTEMPTY when the other copy lands between check and rename
        # Another process (a second notebook started at the same time) finished preparing the same
        # data set first, so TFDS cannot move this copy into place. Its copy is complete: read that one.
        if not tfds.builder(name, data_dir=str(data_dir)).is_prepared():
            raise
        return tfds_load()
