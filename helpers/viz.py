"""Heatmaps as pictures: colorize, overlay on the photo, show side by side, save."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._files import atomic_path

_REPO = Path(__file__).resolve().parent.parent
# In a checkout, figures go to the repository's images/; installed elsewhere, to ./images
IMAGES_DIR = _REPO / "images" if (_REPO / "notebooks").is_dir() else Path("images")

# The course's one colour map for heatmaps. A perceptual map: its lightness rises monotonically from black to
# pale yellow, so equal steps in value look like equal steps, and it still reads when printed in greyscale.
# Rainbow maps such as "jet" are not monotone in lightness and their bright bands (cyan, yellow) invent edges.
HEATMAP_CMAP = "inferno"
# Signed maps (attributions that can be negative): a diverging map, white at 0, drawn with symmetric limits.
SIGNED_CMAP = "RdBu_r"
# Figures of the course: at least this many dots per inch (sharp on the site and in the notebooks).
FIGURE_DPI = 100


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


def clip_percentile(attribution, percentile: float = 99.0, signed: bool = False) -> np.ndarray:
    """Scale attributions for display as the attribution literature does (percentile clipping).

    Each map is divided by the given percentile of its absolute values and clipped, so a few extreme pixels
    do not turn the rest black.

    Args:
        attribution: one map ``(h, w)`` or a batch ``(n, h, w)``, any sign.
        percentile: of ``|attribution|``, per map (99: the top 1% of pixels saturate).
        signed: keep the sign, giving values in [-1, 1] (draw with ``SIGNED_CMAP``, limits -1 and 1);
            otherwise the absolute value, in [0, 1] (draw with ``HEATMAP_CMAP``).

    Returns:
        float32, same shape. A map whose percentile is 0 is scaled by its maximum |value| instead; an all-zero map
        stays all 0.
    """
    a = np.asarray(attribution, np.float32)
    if a.ndim not in (2, 3):
        raise ValueError(f"clip_percentile takes (h, w) or (n, h, w) maps, got shape {a.shape}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if not np.isfinite(a).all():
        raise ValueError("the attribution contains NaN or infinity")
    batch = a.reshape(-1, *a.shape[-2:])
    flat = np.abs(batch).reshape(len(batch), -1)
    scale = np.percentile(flat, percentile, axis=1)
    scale = np.where(scale > 0, scale, flat.max(axis=1))
    scale = np.where(scale > 0, scale, 1.0)[:, None, None]
    out = batch / scale if signed else np.abs(batch) / scale
    return np.clip(out, -1.0 if signed else 0.0, 1.0).astype(np.float32).reshape(a.shape)


def is_empty(heatmap) -> bool:
    """True for an all-zero map (nothing to show), which must not be drawn like a uniformly weak one."""
    return not np.any(np.asarray(heatmap))


def mark_empty(ax, text: str = "empty map") -> None:
    """Write ``text`` across a Matplotlib panel whose heatmap is all zero."""
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=11,
        color="white",
        bbox=dict(facecolor="black", alpha=0.6, edgecolor="white", pad=3),
    )


def colorbar(
    fig,
    label: str = "heatmap value\n(0 = none, 1 = the map's maximum)",
    signed: bool = False,
    axes=None,
    cmap: str | None = None,
    **kwargs,
):
    """One colour bar for the heatmaps of a figure; returns it.

    In [0, 1] with ``HEATMAP_CMAP`` or, ``signed``, in [-1, 1] with ``SIGNED_CMAP``: the scales that ``show``
    and ``overlay`` use. ``axes``: the axes it takes room from (all of the figure's by default).
    """
    import matplotlib.pyplot as plt

    cmap = cmap or (SIGNED_CMAP if signed else HEATMAP_CMAP)
    mappable = plt.cm.ScalarMappable(norm=plt.Normalize(-1 if signed else 0, 1), cmap=cmap)
    kwargs.setdefault("fraction", 0.025)
    kwargs.setdefault("pad", 0.02)
    return fig.colorbar(mappable, ax=axes if axes is not None else fig.axes, label=label, **kwargs)


def colorize(heatmap, cmap: str = HEATMAP_CMAP) -> np.ndarray:
    """A map in [0, 1] ``(h, w)`` -> uint8 RGB ``(h, w, 3)`` with a Matplotlib colormap."""
    import matplotlib

    h = np.asarray(heatmap, np.float32)
    if h.ndim != 2:
        raise ValueError(f"colorize takes one (h, w) heatmap, got shape {h.shape}")
    if not np.isfinite(h).all():
        raise ValueError("the heatmap contains NaN or infinity")
    rgba = matplotlib.colormaps[cmap](np.clip(h, 0, 1))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def overlay(image, heatmap, alpha: float = 0.4, cmap: str = HEATMAP_CMAP) -> np.ndarray:
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


def show(
    images,
    titles=None,
    cols: int | None = None,
    size: float = 3.0,
    cmap=HEATMAP_CMAP,
    dpi: int = FIGURE_DPI,
    empty=None,
    fontsize: float = 11,
):
    """Images (RGB or 2-D heatmaps) side by side with titles; returns the figure.

    A 2-D heatmap is drawn with ``cmap`` on the scale 0..1, or, when it has negative values, with ``SIGNED_CMAP`` on
    -1..1 (white at 0). An all-zero heatmap is marked "empty map" (it would otherwise look like a uniformly weak
    one); ``empty`` (one bool per image) marks RGB panels too, e.g. overlays of empty maps.
    """
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
        if a.ndim == 2:
            signed = bool((a < 0).any())
            ax.imshow(a, cmap=SIGNED_CMAP if signed else cmap, vmin=-1 if signed else 0, vmax=1)
        else:
            ax.imshow(a)
        if (a.ndim == 2 and is_empty(a)) or (empty is not None and empty[i]):
            mark_empty(ax)
        if titles is not None:
            ax.set_title(titles[i], fontsize=fontsize)
    fig.tight_layout()
    return fig


def save(image_or_figure, name: str, directory=None, dpi: int = FIGURE_DPI, max_side: int | None = None) -> Path:
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
