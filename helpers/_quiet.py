"""Import TensorFlow without the C++ start-up chatter on stderr.

TensorFlow 2.21 prints oneDNN and CUDA notices from C++ before absl's logging
is configured, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them; Jupyter kernels
forward those raw writes into cell outputs. We point file descriptor 2 at
/dev/null for the duration of the import, then put it back.
"""

from __future__ import annotations

import contextlib
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


def import_tensorflow():
    """Import TensorFlow and Keras quietly and return ``tf``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with silenced_stderr_fd():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        tf.constant(0)  # creates the eager context (more C++ notices) while quiet
    return tf
