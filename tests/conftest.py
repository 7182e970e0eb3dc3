import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

from helpers._quiet import import_tensorflow  # noqa: E402

import_tensorflow()  # TensorFlow's start-up noise silenced once, before any test imports it

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def lite0():
    from helpers import models

    return models.load("efficientnet_lite0")


@pytest.fixture(scope="session")
def tiny():
    """A convnet you can do on paper: 1x1 conv (2 channels) + ReLU + GAP + dense(2) + softmax.

    Input (4, 4, 1). Channel 0 = 2 * x, channel 1 = -1 * x (then ReLU).
    Dense kernel [[1, -1], [0.5, 2]], bias [0.1, -0.1].
    """
    inp = keras.Input((4, 4, 1))
    conv = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")
    x = keras.layers.ReLU(name="relu")(conv(inp))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    dense = keras.layers.Dense(2, name="logits")
    x = keras.layers.Activation("softmax", name="probs")(dense(x))
    model = keras.Model(inp, x, name="tiny")
    conv.set_weights([np.array([2.0, -1.0], np.float32).reshape(1, 1, 1, 2)])
    dense.set_weights([np.array([[1.0, -1.0], [0.5, 2.0]], np.float32), np.array([0.1, -0.1], np.float32)])
    return model


# The second head of `two_heads`: 3 classes whose weights on the tiny model's two channels differ from
# the first head's (and from each other) in sign and size, so every class has its own input gradient.
HEAD1_W = np.array([[-0.5, 1.5, 0.25], [3.0, -1.0, 0.75]], np.float32)
HEAD1_B = np.array([0.2, 0.0, -0.3], np.float32)


@pytest.fixture(scope="session")
def two_heads(tiny):
    """The tiny model with a second output: ``head1`` = GAP features @ HEAD1_W + HEAD1_B (3 logits, no softmax).

    Output 0 is the tiny model's softmax over 2 classes, output 1 these 3 pre-softmax scores; with
    channel 0 = relu(2x) and channel 1 = relu(-x), ``d head1_c / d x_ij`` is
    ``(2 W[0, c] [x_ij > 0] - W[1, c] [x_ij < 0]) / 16``.
    """
    head1 = keras.layers.Dense(3, name="head1")
    model = keras.Model(tiny.input, [tiny.output, head1(tiny.get_layer("gap").output)], name="two_heads")
    head1.set_weights([HEAD1_W, HEAD1_B])
    return model
