import re
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers import graph


def test_the_installed_keras_has_the_private_graph_api_we_use():
    graph.check_keras_internals()  # fails loudly, naming the attribute, on a Keras that dropped one


def test_a_keras_without_run_through_graph_is_a_clear_error(tiny, monkeypatch):
    owner = next(c for c in type(tiny).__mro__ if "_run_through_graph" in vars(c))
    monkeypatch.delattr(owner, "_run_through_graph")
    with pytest.raises(graph.KerasInternalsError, match=r"private `_run_through_graph`.*Keras \d+\.\d+"):
        graph.tap_model(tiny, [tiny.get_layer("relu")])


def test_a_keras_without_keras_history_is_a_clear_error():
    with pytest.raises(graph.KerasInternalsError, match=r"private `_keras_history` \(on object\)"):
        graph._private(object(), "_keras_history")


def test_private_keras_names_are_reached_only_through_one_function():
    src = Path(graph.__file__).read_text()
    assert re.findall(r"\.(_[a-z]\w*)", src) == []  # no obj._name attribute access anywhere
    for name in graph.PRIVATE_KERAS:
        assert src.count(f'"{name}"') >= 2  # listed in PRIVATE_KERAS and used via _private(obj, "name")


def _nested_tiny(tiny):
    backbone = keras.Model(tiny.input, tiny.get_layer("relu").output, name="backbone")
    inp = keras.Input((4, 4, 1))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inp))
    feats = keras.Input((2,))
    dense = keras.layers.Dense(2, name="dense_in_head")
    head = keras.Model(feats, keras.layers.Softmax(name="inner_softmax")(dense(feats)), name="head")
    model = keras.Model(inp, keras.layers.Identity(name="after")(head(x)), name="nested")
    dense.set_weights(tiny.get_layer("logits").get_weights())
    return model


def test_tap_model_returns_the_tapped_layer_and_the_pre_softmax_scores(tiny):
    model = _nested_tiny(tiny)
    x = np.random.default_rng(0).normal(size=(3, 4, 4, 1)).astype(np.float32)
    feats, logits = graph.tap_model(model, [graph.find_layer(model, "relu")])(x)
    np.testing.assert_allclose(feats, keras.Model(tiny.input, tiny.get_layer("relu").output)(x), atol=1e-6)
    np.testing.assert_allclose(logits, keras.Model(tiny.input, tiny.get_layer("logits").output)(x), atol=1e-6)
    np.testing.assert_allclose(keras.ops.softmax(logits), model(x), atol=1e-6)


def test_tap_model_with_a_new_input_shape_keeps_the_trunk_only(tiny):
    trunk = graph.tap_model(tiny, [tiny.get_layer("relu")], logits=False, input_shape=(None, None, 1))
    x = np.ones((1, 6, 6, 1), np.float32)
    out = trunk(x)
    out = out[0] if isinstance(out, list) else out
    assert tuple(out.shape) == (1, 6, 6, 2)


def test_class_head_finds_the_dense_layer_and_the_pooled_layer(tiny, lite0):
    dense, feeders = graph.class_head(lite0)
    assert dense.name == "logits" and [f.name for f in feeders] == ["top_activation"]
    dense, feeders = graph.class_head(_nested_tiny(tiny))  # through the nested head and backbone
    assert dense.name == "dense_in_head" and [f.name for f in feeders] == ["relu"]


def test_output_index(tiny):
    assert graph.output_index(tiny) == 0
    two = keras.Model(tiny.input, [tiny.output, keras.layers.Dense(3, name="aux")(tiny.get_layer("gap").output)])
    assert graph.output_names(two) == ["probs", "aux"]
    assert graph.output_index(two, "aux") == 1 and graph.output_index(two, 0) == 0 and graph.output_index(two, -1) == 1
    with pytest.raises(ValueError, match=r"2 outputs \(0: 'probs' \(None, 2\), 1: 'aux' \(None, 3\)\)"):
        graph.output_index(two)
    for bad in (2, True, "nope", 0.0):
        with pytest.raises(ValueError, match="unknown output"):
            graph.output_index(two, bad)


def test_find_layer(tiny):
    assert graph.find_layer(tiny, None).name == "relu"
    assert graph.spatial_layers(tiny) == ["conv", "relu"]
    with pytest.raises(ValueError, match="no layer named 'x'.*conv, relu"):
        graph.find_layer(tiny, "x")
    with pytest.raises(ValueError, match="'gap' has no spatial 4-D output"):
        graph.find_layer(tiny, "gap")
