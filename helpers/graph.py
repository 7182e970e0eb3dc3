"""Graph surgery shared by every method: find layers, tap outputs, reach pre-softmax scores.

Interpretation methods need the output of an inner layer *and* the class
scores from one forward pass. ``keras.Model(model.inputs, inner.output)`` fails
with "Graph disconnected" when the layer lives inside a nested sub-model (a
backbone used as a layer), so :func:`tap_model` re-traces the whole graph,
descending into nested models, and returns one flat functional model.

Scores are taken *before* the softmax wherever it sits: at the top level, inside
a nested head, fused into a ``Dense(activation="softmax")``, or followed by
layers that are identities at inference (``Identity``, ``Dropout``,
``Activation("linear")``, a shape-preserving ``Lambda``).

Keras 3 has no public API to walk a model's graph, so this module uses three
private names (:data:`PRIVATE_KERAS`). Every use goes through :func:`_private`,
which turns their disappearance in a Keras upgrade into one clear error.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

PRIVATE_KERAS = ("_keras_history", "_inbound_nodes", "_run_through_graph")


class KerasInternalsError(RuntimeError):
    """The installed Keras lacks a private name that graph surgery relies on."""


def _private(obj, name: str):
    """``getattr(obj, name)`` for a private Keras name: the only door to Keras internals in this package."""
    assert name in PRIVATE_KERAS, name
    try:
        return getattr(obj, name)
    except AttributeError:
        raise KerasInternalsError(
            f"helpers.graph relies on Keras 3's private `{name}` (on {type(obj).__name__}), which Keras "
            f"{keras.__version__} does not have. Install the Keras version the course pins "
            "(see pyproject.toml) or update helpers/graph.py."
        ) from None


def run_ops(model: keras.Model, x, call):
    """Run ``model``'s graph on ``x``, every operation going through ``call(op, args, kwargs)``.

    The one way this package re-traces a model (to tap layers, drop a softmax, or swap a ReLU's
    gradient): Sequential models layer by layer, functional ones through Keras' graph runner.
    """
    if isinstance(model, keras.Sequential):
        for lay in model.layers:
            x = call(lay, (x,), {})
        return x
    run = _private(model, "_run_through_graph")
    return run(x, operation_fn=lambda op: lambda *a, **k: call(op, a, k))


def check_keras_internals() -> None:
    """Use every private Keras name once on a tiny nested model; raises :class:`KerasInternalsError` if one is gone."""
    inp = keras.Input((2,))
    inner = keras.Model(inp, keras.layers.Dense(2)(inp))
    outer = keras.Model(inp, inner(inp))
    op, inputs, _ = _producer(outer.outputs[0])
    assert op is inner and len(inputs) == 1
    _private(outer, "_run_through_graph")(inp, operation_fn=lambda op: op)


def _producer(tensor):
    """The operation that produced a symbolic tensor, its input tensors and the tensor's output index."""
    history = _private(tensor, "_keras_history")
    op, node_index, tensor_index = history
    node = _private(op, "_inbound_nodes")[node_index]
    return op, list(node.input_tensors), tensor_index


def _is_model(layer) -> bool:
    return isinstance(layer, keras.Model)


def iter_layers(model: keras.Model):
    """Yield every layer of ``model`` in graph order, nested models flattened."""
    for layer in model.layers:
        if _is_model(layer):
            yield from iter_layers(layer)
        else:
            yield layer


def _output_rank(layer) -> int | None:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(out, (list, tuple)):
        return None
    return len(out.shape)


def spatial_layers(model: keras.Model) -> list[str]:
    """Names of the layers (nested ones included) whose output is ``(B, h, w, C)``."""
    return [
        layer.name
        for layer in iter_layers(model)
        if _output_rank(layer) == 4 and not isinstance(layer, keras.layers.InputLayer)
    ]


def find_layer(model: keras.Model, layer) -> keras.layers.Layer:
    """Resolve ``layer`` (a name, a layer or None) to a layer with a 4-D output.

    None picks the last layer with a spatial ``(B, h, w, C)`` output.

    Raises:
        ValueError: unknown name (the message lists the spatial layers), or a
            layer whose output is not 4-D.
    """
    candidates = spatial_layers(model)
    if layer is None:
        if not candidates:
            raise ValueError("the model has no layer with a spatial (B, h, w, C) output")
        layer = candidates[-1]
    if isinstance(layer, str):
        found = [lay for lay in iter_layers(model) if lay.name == layer]
        if not found:
            shown = ", ".join(candidates[-12:])
            raise ValueError(
                f"no layer named {layer!r} in model {model.name!r}. Layers with a spatial "
                f"output ({len(candidates)}; last ones): {shown}"
            )
        layer = found[0]
    elif not any(lay is layer for lay in iter_layers(model)):
        raise ValueError(f"layer {layer.name!r} is not part of model {model.name!r}")
    if _output_rank(layer) != 4:
        raise ValueError(
            f"layer {layer.name!r} has no spatial 4-D output (rank {_output_rank(layer)}); "
            f"pick one of: {', '.join(candidates[-8:])}"
        )
    return layer


# --------------------------------------------------------------------------- outputs and softmax
def output_names(model: keras.Model) -> list[str]:
    """The names of the model's outputs (the layers producing them), in ``model.outputs`` order."""
    return [_producer(t)[0].name for t in model.outputs]


def output_index(model: keras.Model, output=None) -> int:
    """Resolve ``output`` (None, an index or an output name) to an index into ``model.outputs``.

    Raises:
        ValueError: a model with several outputs and no ``output`` given, or an
            unknown output; the message lists the outputs.
    """
    names = output_names(model)
    listing = ", ".join(f"{i}: {n!r} {tuple(t.shape)}" for i, (n, t) in enumerate(zip(names, model.outputs)))
    if output is None:
        if len(names) == 1:
            return 0
        raise ValueError(
            f"model {model.name!r} has {len(names)} outputs ({listing}); pick the class scores to explain "
            "with output=<name or index>"
        )
    if isinstance(output, str):
        if output in names:
            return names.index(output)
        keras_names = list(getattr(model, "output_names", None) or [])
        if output in keras_names:
            return keras_names.index(output)
    elif isinstance(output, (int, np.integer)) and not isinstance(output, bool) and -len(names) <= output < len(names):
        return int(output) % len(names)
    raise ValueError(f"unknown output {output!r} of model {model.name!r}; its outputs are {listing}")


def _is_softmax(op) -> bool:
    if type(op).__name__ == "Softmax":  # keras.layers.Softmax and the keras.ops.softmax operation
        return True
    act = getattr(op, "activation", None)
    return act is not None and getattr(act, "__name__", "") == "softmax"


_INFERENCE_IDENTITIES = (
    keras.layers.Identity,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
)


def _is_identity(op) -> bool:
    """Layers whose output equals their input at inference."""
    if isinstance(op, _INFERENCE_IDENTITIES):
        return True
    act = getattr(op, "activation", None)
    return isinstance(op, keras.layers.Activation) and getattr(act, "__name__", "") == "linear"


def _resolve(tensor, bridge: dict):
    """The innermost non-model operation producing ``tensor``: ``(op, inputs)``.

    Walks into nested models (through their outputs) and back out of them
    (through their inputs): ``bridge`` maps the id of a nested model's input
    tensor to the outer tensor fed to it, filled in on the way in.
    """
    while True:
        op, inputs, index = _producer(tensor)
        if _is_model(op):
            bridge.update({id(inner): outer for inner, outer in zip(op.inputs, inputs)})
            tensor = op.outputs[index]
        elif isinstance(op, keras.layers.InputLayer) and id(tensor) in bridge:
            tensor = bridge[id(tensor)]
        else:
            return op, inputs


def _skippable_after_softmax(op, inputs, tensor) -> bool:
    if len(inputs) != 1:
        return False
    if _is_identity(op):
        return True
    return isinstance(op, keras.layers.Lambda) and tuple(inputs[0].shape) == tuple(tensor.shape)


def _softmax_path(tensor) -> list:
    """Operations from ``tensor`` back to the softmax producing it (nested models included), or [] if none.

    Only inference identities and shape-preserving ``Lambda`` layers may sit
    between the softmax and ``tensor``.
    """
    path, bridge = [], {}
    while True:
        op, inputs, index = _producer(tensor)
        if _is_model(op):
            bridge.update({id(inner): outer for inner, outer in zip(op.inputs, inputs)})
            path.append(op)
            tensor = op.outputs[index]
        elif isinstance(op, keras.layers.InputLayer) and id(tensor) in bridge:
            tensor = bridge[id(tensor)]
        elif _is_softmax(op):
            return [*path, op]
        elif _skippable_after_softmax(op, inputs, tensor):
            path.append(op)
            tensor = inputs[0]
        else:
            return []


def _without_softmax(op, args, kwargs):
    """What ``op`` computes before its softmax."""
    if type(op).__name__ == "Softmax" or isinstance(op, keras.layers.Activation):
        return args[0]
    if isinstance(op, keras.layers.Dense):
        x = args[0]
        out = keras.ops.matmul(x, keras.ops.cast(op.kernel, x.dtype))
        return out + keras.ops.cast(op.bias, x.dtype) if op.use_bias else out
    raise ValueError(
        f"layer {op.name!r} ({type(op).__name__}) has a fused softmax activation; CAM methods need the "
        "pre-softmax scores. Build the model with a separate keras.layers.Softmax() as its last layer."
    )


def _check_not_probabilities(model: keras.Model, index: int) -> None:
    """Raise if the output looks like probabilities although no softmax was found to remove."""
    out_t = model.outputs[index]
    shape = tuple(model.inputs[0].shape[1:])
    if len(model.inputs) != 1 or None in shape or len(out_t.shape) != 2 or (out_t.shape[-1] or 0) < 2:
        return
    probe = np.random.default_rng(0).normal(size=(2, *shape)).astype(model.inputs[0].dtype or "float32")
    out = keras.ops.convert_to_numpy(keras.tree.flatten(model(probe, training=False))[index]).astype(np.float64)
    if (out >= 0).all() and np.allclose(out.sum(axis=-1), 1.0, atol=1e-4):
        raise ValueError(
            f"output {output_names(model)[index]!r} of model {model.name!r} gives probabilities (rows sum to 1) "
            "but no softmax layer was found to remove (a softmax inside a Lambda or a custom layer?): the model "
            "has no pre-softmax output. CAM methods need the pre-softmax scores; rebuild the model with a "
            "separate keras.layers.Softmax() (or Activation('softmax')) as its last layer, or without it."
        )


def class_head(model: keras.Model, output=None) -> tuple[keras.layers.Dense, list]:
    """The dense layer of a CAM architecture and the layers whose output feeds its global average pooling.

    The output (after stripping a softmax and inference identities) must be a
    ``Dense`` fed by ``GlobalAveragePooling2D`` (with inference identities such
    as ``Dropout`` allowed in between). The returned feeders are the layer whose
    output *is* the pooled feature map, and the layers before it linked only by
    inference identities (``Dropout``, ``Identity``, ``Activation('linear')``):
    all of them have the same output at inference, so each is a valid CAM layer.

    Raises:
        ValueError: the model does not end in ``GAP -> Dense``.
    """
    index = output_index(model, output)
    bridge: dict = {}
    after_dense = {id(op) for op in _softmax_path(model.outputs[index])}  # the softmax and what follows it
    op, inputs = _resolve(model.outputs[index], bridge)
    while not isinstance(op, keras.layers.Dense) and (id(op) in after_dense or _is_identity(op)) and len(inputs) == 1:
        op, inputs = _resolve(inputs[0], bridge)
    dense = op
    if isinstance(dense, keras.layers.Dense):
        op, inputs = _resolve(inputs[0], bridge)
        while _is_identity(op):
            op, inputs = _resolve(inputs[0], bridge)
    if not isinstance(dense, keras.layers.Dense) or not isinstance(op, keras.layers.GlobalAveragePooling2D):
        raise ValueError(
            f"CAM needs a model whose output is global average pooling -> one dense layer (-> softmax); model "
            f"{model.name!r} ends in {type(dense).__name__} {dense.name!r}. Use grad_cam for other architectures"
        )
    op, inputs = _resolve(inputs[0], bridge)
    feeders = [op]
    while _is_identity(op):
        op, inputs = _resolve(inputs[0], bridge)
        feeders.append(op)
    return dense, feeders


def _contains(model, targets: set[int]) -> bool:
    return any(id(lay) in targets for lay in iter_layers(model))


def tap_model(
    model: keras.Model,
    layers: Sequence[keras.layers.Layer],
    *,
    logits: bool = True,
    input_shape: tuple | None = None,
    output=None,
) -> keras.Model:
    """A flat model returning the outputs of ``layers`` (and the pre-softmax scores).

    Args:
        model: any Keras 3 functional or Sequential model; nested models are
            traced through, so a layer inside a backbone-as-a-layer works.
        layers: layers of ``model`` (from :func:`find_layer`) to tap.
        logits: also return the class scores *before* the softmax, the
            quantity Grad-CAM differentiates (Selvaraju et al., 2017, Sec. 3).
            The softmax is found wherever it sits (see the module docstring).
        input_shape: a new input shape ``(H, W, C)``, e.g. ``(None, None, 3)``
            for a fully convolutional trunk; the graph after the last tap is
            then dropped.
        output: which output holds the class scores (name or index); required
            when the model has several outputs.

    Returns:
        ``keras.Model`` with outputs ``[*taps, logits]`` (or ``[*taps]``).

    Raises:
        ValueError: several outputs and no ``output``; an output that gives
            probabilities with no softmax layer to remove.
        KerasInternalsError: the installed Keras lacks a private name used here.
    """
    targets = {id(lay) for lay in layers}
    captured: dict[int, object] = {}
    index = output_index(model, output) if logits else 0
    strip = _softmax_path(model.outputs[index]) if logits else []
    if logits and not strip:
        _check_not_probabilities(model, index)
    bypass = {id(op) for op in strip if not _is_model(op)}
    descend = {id(op) for op in strip if _is_model(op)}
    truncate = not logits

    def call(op, args, kwargs):
        if truncate and len(captured) == len(targets):
            return args[0]  # everything wanted is traced; skip the rest
        if id(op) in bypass:
            out = _without_softmax(op, args, kwargs) if _is_softmax(op) else args[0]
        elif _is_model(op) and (id(op) in descend or _contains(op, targets)):
            out = trace(op, args[0] if len(args) == 1 else list(args))
        else:
            out = op(*args, **kwargs)
        if id(op) in targets:
            captured[id(op)] = out
        return out

    def trace(m, x):
        return run_ops(m, x, call)

    shape = input_shape if input_shape is not None else tuple(model.inputs[0].shape[1:])
    inp = keras.Input(shape=shape, dtype=model.inputs[0].dtype)
    out = trace(model, inp)
    missing = [lay.name for lay in layers if id(lay) not in captured]
    if missing:
        raise ValueError(f"could not reach layer(s) {missing} from the model's input")
    outputs = [captured[id(lay)] for lay in layers]
    if logits:
        outputs.append(keras.tree.flatten(out)[index])
    return keras.Model(inp, outputs, name=f"{model.name}_taps")
