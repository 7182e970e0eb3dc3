"""Graph surgery shared by every method: find layers, tap outputs, reach logits.

Interpretation methods need the output of an inner layer *and* the class
scores from one forward pass. ``keras.Model(model.inputs, inner.output)`` fails
with "Graph disconnected" when the layer lives inside a nested sub-model (a
backbone used as a layer), so :func:`tap_model` re-traces the whole graph,
descending into nested models, and returns one flat functional model.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras


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


def _final_operation(model: keras.Model):
    return model.outputs[0]._keras_history.operation


def _is_softmax(op) -> bool:
    if isinstance(op, keras.layers.Softmax):
        return True
    act = getattr(op, "activation", None)
    return act is not None and getattr(act, "__name__", "") == "softmax"


def _contains(model, targets: set[int]) -> bool:
    return any(id(lay) in targets for lay in iter_layers(model))


def tap_model(
    model: keras.Model,
    layers: Sequence[keras.layers.Layer],
    *,
    logits: bool = True,
    input_shape: tuple | None = None,
) -> keras.Model:
    """A flat model returning the outputs of ``layers`` (and the pre-softmax scores).

    Args:
        model: any Keras 3 functional or Sequential model; nested models are
            traced through, so a layer inside a backbone-as-a-layer works.
        layers: layers of ``model`` (from :func:`find_layer`) to tap.
        logits: also return the class scores *before* a final softmax, the
            quantity Grad-CAM differentiates (Selvaraju et al., 2017, Sec. 3).
        input_shape: a new input shape ``(H, W, C)``, e.g. ``(None, None, 3)``
            for a fully convolutional trunk; the graph after the last tap is
            then dropped.

    Returns:
        ``keras.Model`` with outputs ``[*taps, logits]`` (or ``[*taps]``).
    """
    targets = {id(lay) for lay in layers}
    captured: dict[int, object] = {}
    final_op = _final_operation(model) if logits else None
    truncate = not logits

    def call(op, args, kwargs):
        if truncate and len(captured) == len(targets):
            return args[0]  # everything wanted is traced; skip the rest
        if op is final_op and _is_softmax(op):
            if isinstance(op, keras.layers.Dense):
                x = args[0]
                out = keras.ops.matmul(x, keras.ops.cast(op.kernel, x.dtype))
                return out + keras.ops.cast(op.bias, x.dtype) if op.use_bias else out
            return args[0]
        if _is_model(op) and _contains(op, targets):
            out = trace(op, args[0] if len(args) == 1 else list(args))
        else:
            out = op(*args, **kwargs)
        if id(op) in targets:
            captured[id(op)] = out
        return out

    def trace(m, x):
        if isinstance(m, keras.Sequential):
            for lay in m.layers:
                x = call(lay, (x,), {})
            return x
        return m._run_through_graph(x, operation_fn=lambda op: lambda *a, **k: call(op, a, k))

    shape = input_shape if input_shape is not None else tuple(model.inputs[0].shape[1:])
    inp = keras.Input(shape=shape, dtype=model.inputs[0].dtype)
    out = trace(model, inp)
    missing = [lay.name for lay in layers if id(lay) not in captured]
    if missing:
        raise ValueError(f"could not reach layer(s) {missing} from the model's input")
    outputs = [captured[id(lay)] for lay in layers]
    if logits:
        outputs.append(out)
    return keras.Model(inp, outputs, name=f"{model.name}_taps")
