"""Import TensorFlow without the C++ start-up chatter on stderr.

TensorFlow 2.21 prints oneDNN and CUDA notices from C++ before absl's logging
is configured, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them; Jupyter kernels
forward those raw writes into cell outputs. We point file descriptor 2 at
/dev/null for the duration of the import, then put it back.

Keras imports OpenCV at start-up only for ``keras.visualization.draw_bounding_boxes``;
we keep it out of that import (OpenCV loads on first use instead), so the
notebooks that never draw boxes never load it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys


@contextlib.contextmanager
def silenced_stderr_fd():
    """Redirect the process-level stderr (fd 2) to /dev/null inside the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _NoOpenCV(importlib.abc.MetaPathFinder):
    """Refuse ``import cv2`` while Keras is imported (it imports OpenCV only to draw boxes)."""

    def find_spec(self, name, path=None, target=None):
        if name == "cv2" or name.startswith("cv2."):
            raise ImportError("OpenCV is imported on first use, not with Keras")
        return None


class _LazyOpenCV:
    """Stands for ``cv2`` in Keras' box-drawing module: imports OpenCV on first use."""

    def __getattr__(self, name):
        import cv2

        return getattr(cv2, name)


def _keras_without_opencv():
    """Import Keras without OpenCV (about a second, and not needed before a figure draws boxes).

    ``keras.visualization.draw_bounding_boxes`` is the only Keras code that uses
    OpenCV; it gets a stand-in that imports OpenCV when it is first called.
    """
    if "cv2" in sys.modules or "keras" in sys.modules:
        import keras  # noqa: F401

        return
    blocker = _NoOpenCV()
    sys.meta_path.insert(0, blocker)
    try:
        import keras  # noqa: F401
    finally:
        sys.meta_path.remove(blocker)
    boxes = sys.modules.get("keras.src.visualization.draw_bounding_boxes")
    if boxes is not None and getattr(boxes, "cv2", 0) is None and importlib.util.find_spec("cv2") is not None:
        boxes.cv2 = _LazyOpenCV()


def import_tensorflow():
    """Import TensorFlow and Keras quietly (and without OpenCV) and return ``tf``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return sys.modules["tensorflow"]
    with silenced_stderr_fd():
        _keras_without_opencv()
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        tf.constant(0)  # creates the eager context (more C++ notices) while quiet
    return tf
