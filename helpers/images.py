"""Photos that ship with installed packages, and robust loading of any image.

Every function returns uint8 RGB arrays of shape ``(H, W, 3)`` whatever the
source was: grayscale, RGBA/LA, palette, 16-bit or EXIF-rotated.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

SAMPLES = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "grace_hopper")


class ImageLoadError(ValueError):
    """The source could not be turned into an RGB image (the message says why)."""


def sample(name: str) -> np.ndarray:
    """A real photo that installs with scikit-image or matplotlib, as uint8 RGB.

    Args:
        name: one of ``chelsea`` (a cat), ``coffee``, ``astronaut``, ``rocket``,
            ``motorcycle`` (scikit-image) or ``grace_hopper`` (matplotlib).
    """
    if name == "grace_hopper":
        import matplotlib.cbook

        return load(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; valid names: {', '.join(SAMPLES)}")
    import skimage.data

    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    return to_rgb_uint8(img)


def to_rgb_uint8(arr) -> np.ndarray:
    """Convert an array image (gray, RGB, RGBA, any integer or float range) to uint8 RGB."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise ImageLoadError(f"an image array must be (H, W), (H, W, 1|2|3|4); got shape {a.shape}")
    if a.size == 0:
        raise ImageLoadError("the image is empty")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = (a.astype(np.uint32) // 257).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageLoadError("the image array contains NaN or infinity")
        scale = 255.0 if a.max() <= 1.0 else 1.0
        a = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    channels = a.shape[-1]
    if channels in (2, 4):  # drop alpha, composited on white so transparent areas stay visible
        alpha = a[..., -1:].astype(np.float32) / 255.0
        color = a[..., :-1].astype(np.float32)
        a = np.rint(color * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
        channels -= 1
    if channels == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a)


def _from_bytes(data: bytes, what: str) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.uint32)
                return to_rgb_uint8((arr >> 8).clip(0, 255).astype(np.uint8))
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode not in ("L", "LA", "RGB", "RGBA"):
                im = im.convert("RGB")
            return to_rgb_uint8(np.asarray(im))
    except UnidentifiedImageError:
        raise ImageLoadError(f"{what} is not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{what} is damaged or truncated ({exc})") from None


def load(source, size: int | tuple[int, int] | None = None, timeout: float = 5.0) -> np.ndarray:
    """Load an image from a path, URL, bytes or array as uint8 RGB ``(H, W, 3)``.

    Args:
        source: a file path, an ``http(s)://`` URL, the file's bytes, or an array.
        size: resize to ``size x size`` or ``(height, width)``; None keeps the size.
        timeout: seconds to wait for a URL before giving up.

    Raises:
        ImageLoadError: missing file, not an image, truncated data, unreachable URL.
    """
    if isinstance(source, np.ndarray):
        img = to_rgb_uint8(source)
    elif isinstance(source, (bytes, bytearray)):
        img = _from_bytes(bytes(source), "the given bytes")
    elif isinstance(source, str) and source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=timeout) as resp:  # noqa: S310
                data = resp.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ImageLoadError(
                f"could not download {source} ({reason}); check the address or your "
                "connection, or use a local file or images.sample(...)"
            ) from None
        img = _from_bytes(data, source)
    elif isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ImageLoadError(f"no such file: {path}")
        img = _from_bytes(path.read_bytes(), str(path))
    else:
        raise ImageLoadError(f"cannot load an image from a {type(source).__name__}")
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        from PIL import Image

        img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
    return img
