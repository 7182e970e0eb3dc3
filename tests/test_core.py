"""helpers._core: one place owns the model (classes, scores, the one compile cache)."""

import numpy as np
import pytest

from helpers import _core, attribution, cam, faithfulness

X_NEG = -np.ones((1, 4, 4, 1), np.float32)  # tiny: channel 1 = relu(-x) = 1 everywhere: logits [0.6, 1.9], top-1 = 1


def test_class_zero_is_class_zero_not_the_top_1(tiny):
    # logits = [0, 1] @ [[1, -1], [0.5, 2]] + [0.1, -0.1] = [0.6, 1.9]: asking for class 0 must not give class 1
    scores, classes = attribution.scores(tiny, np.concatenate([X_NEG, X_NEG]), [0, 1])
    assert classes.tolist() == [0, 1]
    np.testing.assert_allclose(scores, [0.6, 1.9], atol=1e-6)
    assert attribution.scores(tiny, X_NEG)[1].tolist() == [1]  # None: the top-1 class
    _, used = cam.grad_cam(tiny, X_NEG, 0, "relu", return_class=True)
    assert used.tolist() == [0]


@pytest.mark.parametrize("bad", [-1, [0, -2], 2, 0.0, True])
def test_class_indices_refuse_what_is_not_a_class(bad):
    with pytest.raises(ValueError, match="class"):
        _core.class_indices(bad, 2, 2)


def test_one_cache_holds_every_explainers_functions(tiny):
    x = np.concatenate([X_NEG, -X_NEG])
    cam.grad_cam(tiny, x, None, "relu")
    attribution.saliency(tiny, x)
    faithfulness.deletion(tiny, x, np.ones((2, 4, 4), np.float32), steps=2)
    keys = set(_core.compiled_functions(tiny))
    assert {("cam", "relu", "grad_cam", 0), ("input_gradients", 0), ("faithfulness_mix", 0), ("scores", 0)} <= keys
    assert _core.logits_model(tiny) is _core.logits_model(tiny, 0)  # built once, whoever asks
