"""The package itself: ``import helpers`` is light and quiet; modules load on first use."""

import subprocess
import sys
from pathlib import Path

import pytest

import helpers

ROOT = Path(__file__).resolve().parents[1]

FIRST_LESSONS = """
import sys
import helpers
assert "tensorflow" not in sys.modules, "import helpers alone must not import TensorFlow"
from helpers import models, images, activations, filters, cam, viz
print(sorted(m for m in ("tensorflow", "tensorflow_datasets", "cv2") if m in sys.modules))
import numpy as np, keras
# Keras' box drawing still works: OpenCV loads on first use
img = keras.visualization.draw_bounding_boxes(
    np.zeros((1, 8, 8, 3), "uint8"), {"boxes": np.array([[[1, 1, 6, 6]]]), "labels": np.array([[0]])}, "xyxy"
)
print(int(np.asarray(img).max() > 0), "cv2" in sys.modules)
"""


@pytest.mark.slow
def test_first_lessons_import_neither_tfds_nor_opencv_and_stay_quiet():
    env = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}  # no TF_CPP_MIN_LOG_LEVEL: ours
    run = subprocess.run(
        [sys.executable, "-c", FIRST_LESSONS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == ["['tensorflow']", "1 True"]
    assert run.stderr == "", "importing the helpers must print nothing (no TensorFlow start-up notices)"


def test_modules_load_on_first_access_and_unknown_names_fail_clearly():
    assert "claims" in dir(helpers) and "claims" in helpers.__all__
    assert helpers.claims is sys.modules["helpers.claims"]
    with pytest.raises(AttributeError, match="no attribute or module 'nonexistent'"):
        helpers.nonexistent  # noqa: B018
    assert not hasattr(helpers, "__wrapped__")
