"""Intermediate activations: what each layer of a convnet makes of one image.

The lesson of Chollet, *Deep Learning with Python* (2nd ed., Sec. 9.4.1):
plot every channel of successive layers to see the input decomposed.
"""

from __future__ import annotations

import numpy as np

from ._quiet import import_tensorflow

import_tensorflow()  # before keras: quiet, and keeps OpenCV out (see helpers._quiet)

import keras  # noqa: E402

from .graph import find_layer, iter_layers, tap_model  # noqa: E402
from .viz import standardize  # noqa: E402  (the one display rule, re-exported here)

_VISIBLE = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.Add,
)


def default_layers(model) -> list[str]:
    """Layers a learner wants to see: convolutions, poolings and activations with 4-D outputs."""
    names = []
    for layer in iter_layers(model):
        if isinstance(layer, _VISIBLE) and len(layer.output.shape) == 4:
            names.append(layer.name)
    return names


def activation_model(model, layers=None) -> keras.Model:
    """A model that returns ``{layer name: activation}`` for the chosen layers.

    Args:
        model: any Keras 3 model (nested backbones are traced through).
        layers: names or layers; None means :func:`default_layers`.

    Returns:
        ``keras.Model`` whose output is a dict keyed by layer name, in graph order
        (``list(result)`` gives the names).
    """
    chosen = [find_layer(model, lay) for lay in (default_layers(model) if layers is None else layers)]
    taps = tap_model(model, chosen, logits=False)
    outputs = taps.outputs if isinstance(taps.outputs, list) else [taps.outputs]
    return keras.Model(taps.inputs[0], dict(zip([lay.name for lay in chosen], outputs)), name="activations")


def activation_grid(activation, images_per_row: int = 16) -> np.ndarray:
    """All channels of one layer's activation tiled into one 2-D uint8 image.

    Args:
        activation: ``(h, w, C)`` or ``(1, h, w, C)``.
        images_per_row: tiles per row.

    Returns:
        ``(rows * (h + 1) - 1, cols * (w + 1) - 1)`` uint8, a 1-px gap between tiles.
    """
    a = np.asarray(activation)
    if a.ndim == 4:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"expected (h, w, C) or (1, h, w, C), got {np.shape(activation)}")
    h, w, c = a.shape
    cols = min(images_per_row, c)
    rows = -(-c // cols)
    tiles = standardize(np.moveaxis(a, -1, 0))  # (C, h, w)
    pad = np.zeros((rows * cols - c, h, w), np.uint8)
    tiles = np.concatenate([tiles, pad]).reshape(rows, cols, h, w)
    tiles = np.pad(tiles, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=0)
    grid = tiles.transpose(0, 2, 1, 3).reshape(rows * (h + 1), cols * (w + 1))
    return grid[:-1, :-1]


def plot_activations(
    activations: dict, images_per_row: int = 8, width: float = 9.0, max_channels=None, dpi=None, colorbar: bool = True
):
    """One figure per layer: its channel grid titled with the layer name and shape.

    Each tile is standardised on its own (``viz.standardize``: mean at 128, 64 grey levels per standard
    deviation), so the colour bar is labelled in standard deviations from the channel's own mean; a blank
    channel (constant, e.g. all 0 after a ReLU) is drawn at the bottom of the scale and labelled "blank".

    Args:
        activations: ``{layer name: (1, h, w, C) activation}``.
        images_per_row: tiles per row.
        width: figure width in inches (the height follows the grid).
        max_channels: draw only the first channels of wide layers.
        dpi: figure resolution; None is ``viz.FIGURE_DPI``.
        colorbar: add the colour bar in standard deviations.

    Returns:
        The list of matplotlib figures.
    """
    import matplotlib.pyplot as plt

    from .viz import FIGURE_DPI, HEATMAP_CMAP

    figs = []
    for name, act in activations.items():
        a = np.asarray(act)[0] if np.ndim(act) == 4 else np.asarray(act)
        if max_channels is not None:
            a = a[..., :max_channels]
        grid = activation_grid(a, images_per_row)
        fig = plt.figure(
            figsize=(width, width * grid.shape[0] / grid.shape[1] * (0.88 if colorbar else 1) + 0.4),
            dpi=dpi or FIGURE_DPI,
        )
        plt.title(f"{name}  {tuple(np.asarray(act).shape[-3:])}, first {a.shape[-1]} channels", fontsize=12)
        im = plt.imshow(grid, aspect="auto", cmap=HEATMAP_CMAP, vmin=0, vmax=255)
        plt.axis("off")
        h, w, c = a.shape
        cols = min(images_per_row, c)
        for k in np.flatnonzero(a.std(axis=(0, 1)) <= 1e-6):  # constant (blank) channels: say so on the tile
            row, col = divmod(int(k), cols)
            plt.text(
                col * (w + 1) + w / 2,
                row * (h + 1) + h / 2,
                "blank",
                color="white",
                ha="center",
                va="center",
                fontsize=10,
            )
        if colorbar:
            bar = fig.colorbar(im, ax=fig.axes[0], fraction=0.03, pad=0.01)
            bar.set_ticks([0, 64, 128, 192, 255], labels=["≤ −2", "−1", "0", "+1", "≥ +2"])
            bar.set_label("standard deviations from\nthe channel's mean", fontsize=10)
        figs.append(fig)
    return figs
