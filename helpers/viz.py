"""Heatmaps as pictures: colorize, overlay on the photo, show side by side, save."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._files import atomic_path

_REPO = Path(__file__).resolve().parent.parent
# In a checkout, figures go to the repository's images/; installed elsewhere, to ./images
IMAGES_DIR = _REPO / "images" if (_REPO / "notebooks").is_dir() else Path("images")


def standardize(values, axis=(-2, -1)) -> np.ndarray:
    """Values to uint8 for display: mean 128, 64 grey levels per standard deviation, clipped.

    The display rule of Chollet, *Deep Learning with Python* (2nd ed., Sec. 9.4), used
    for activation channels (``axis=(-2, -1)``: each ``(h, w)`` map on its own) and for
    filter patterns (``axis=(1, 2, 3)``: each image of a batch on its own).
    A constant slice (std below 1e-6) comes back all 0, never NaN.

    Args:
        values: float array.
        axis: the axes standardised together.
    """
    c = np.asarray(values, np.float32)
    mean = c.mean(axis=axis, keepdims=True)
    std = c.std(axis=axis, keepdims=True)
    flat = std <= 1e-6
    z = (c - mean) / np.where(flat, 1.0, std)
    return np.where(flat, 0, np.clip(z * 64 + 128, 0, 255)).astype(np.uint8)


def colorize(heatmap, cmap: str = "jet") -> np.ndarray:
    """A map in [0, 1] ``(h, w)`` -> uint8 RGB ``(h, w, 3)`` with a Matplotlib colormap."""
    import matplotlib

    h = np.asarray(heatmap, np.float32)
    if h.ndim != 2:
        raise ValueError(f"colorize takes one (h, w) heatmap, got shape {h.shape}")
    if not np.isfinite(h).all():
        raise ValueError("the heatmap contains NaN or infinity")
    rgba = matplotlib.colormaps[cmap](np.clip(h, 0, 1))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def overlay(image, heatmap, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """Blend a colorized heatmap over an image; uint8 at the image's own size.

    Args:
        image: uint8 RGB ``(H, W, 3)``.
        heatmap: ``(h, w)`` in [0, 1]; resized (bilinear) to ``(H, W)``.
        alpha: weight of the heatmap (0 = image only, 1 = heatmap only).
        cmap: a Matplotlib colormap name.
    """
    from ._quiet import import_tensorflow

    import_tensorflow()  # quietly, before helpers.cam imports keras
    from .cam import upsample

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"image must be RGB (H, W, 3), got {img.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    heat = colorize(upsample(heatmap, img.shape[:2]), cmap)
    out = (1 - alpha) * img.astype(np.float32) + alpha * heat.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def show(images, titles=None, cols: int | None = None, size: float = 3.0, cmap="jet", dpi: int = 72):
    """Images (RGB or 2-D heatmaps) side by side with titles; returns the figure."""
    import matplotlib.pyplot as plt

    images = list(images)
    n = len(images)
    cols = cols or n
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), dpi=dpi, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.flat[i]
        a = np.asarray(img)
        ax.imshow(
            a, cmap=cmap if a.ndim == 2 else None, vmin=0 if a.ndim == 2 else None, vmax=1 if a.ndim == 2 else None
        )
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def save(image_or_figure, name: str, directory=None, dpi: int = 80, max_side: int | None = None) -> Path:
    """Write a uint8 image or a Matplotlib figure as PNG/JPEG (by suffix) under ``images/``.

    The file is written atomically (a temporary file, then a rename): a full disk or
    an interruption leaves the previous file intact, never a truncated one.

    Args:
        image_or_figure: uint8 RGB array or a Matplotlib figure.
        name: file name; its suffix (.png, .jpg) picks the format.
        directory: where to write; None is the repository's ``images/``.
        dpi: resolution of a figure.
        max_side: shrink an array image so its longer side is at most this many pixels.
    """
    directory = Path(directory) if directory is not None else IMAGES_DIR
    path = directory / name
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"save writes .png or .jpg files, not {path.suffix!r}")
    directory.mkdir(parents=True, exist_ok=True)  # only once the name is known to be good
    fmt = "png" if path.suffix.lower() == ".png" else "jpeg"
    if hasattr(image_or_figure, "savefig"):
        with atomic_path(path) as tmp:
            image_or_figure.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt)
    else:
        from PIL import Image

        im = Image.fromarray(np.asarray(image_or_figure, np.uint8))
        if max_side is not None and max(im.size) > max_side:
            im.thumbnail((max_side, max_side), Image.LANCZOS)
        with atomic_path(path) as tmp:
            im.save(tmp, format=fmt, quality=85)
    return path
