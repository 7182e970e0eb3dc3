"""Photos that ship with installed packages, and robust loading of any image.

Every function returns uint8 RGB arrays of shape ``(H, W, 3)`` whatever the
source was: grayscale, RGBA/LA, palette, 16-bit, 32-bit float or EXIF-rotated.
Loading is bounded: at most :data:`MAX_PIXELS` pixels per image, and a URL may
send at most :data:`MAX_DOWNLOAD_BYTES` within ``timeout`` seconds in all.
"""

from __future__ import annotations

import difflib
import http.client
import io
import re
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np

SAMPLES = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "grace_hopper")

#: Largest image accepted, in pixels (64 megapixels: 8000 x 8000). Larger files are
#: refused before they are decoded (a 14000 x 14000 PNG would need 588 MB as RGB).
MAX_PIXELS = 64_000_000

#: Largest download accepted from a URL, in bytes.
MAX_DOWNLOAD_BYTES = 50_000_000


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
        raise ValueError(f"unknown sample {name!r}{did_you_mean(name)}; valid names: {', '.join(SAMPLES)}")
    import skimage.data

    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    return to_rgb_uint8(img)


def did_you_mean(name: str) -> str:
    """``"; did you mean 'chelsea'?"`` for a name close to a sample's, else ``""``."""
    close = difflib.get_close_matches(str(name), SAMPLES, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def to_rgb_uint8(arr) -> np.ndarray:
    """Convert an array image (gray, RGB, RGBA, any integer or float range) to uint8 RGB.

    Float images follow one rule: values all within [0, 1] are scaled by 255;
    values all within [0, 255] are kept (rounded); any other range (negative
    values, above 255) is min-max scaled to 0..255. 16-bit integers are divided
    by 257, other integers clipped to 0..255.
    """
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
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0.0 and hi <= 1.0:
            a = a * 255.0
        elif lo < 0.0 or hi > 255.0:
            a = (a - lo) * (255.0 / (hi - lo))  # hi > lo here: a constant image lies in one of the ranges above
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap follows
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # over twice PIL's own limit: refused at open
        im, size = None, None
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{what} is not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{what} is damaged or truncated ({exc})") from None
    else:
        size = im.size
        pixels = size[0] * size[1]
    if im is None or pixels > MAX_PIXELS:
        dims = f"{size[0]} x {size[1]} = " if size else ""
        count = f"{dims}{pixels:,} pixels" if pixels else "too many pixels"
        raise ImageLoadError(
            f"{what} has {count}, more than the {MAX_PIXELS:,} this loader accepts "
            "(helpers.images.MAX_PIXELS); shrink the image first"
        )
    try:
        with im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.uint32)
                return to_rgb_uint8((arr >> 8).clip(0, 255).astype(np.uint8))
            if im.mode == "F":  # 32-bit float (TIFF): the float rule of to_rgb_uint8, not PIL's clipping
                arr = np.asarray(im, dtype=np.float32)
                if not np.isfinite(arr).all():
                    raise ImageLoadError(f"{what} contains NaN or infinity")
                return to_rgb_uint8(arr)
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode not in ("L", "LA", "RGB", "RGBA"):
                im = im.convert("RGB")
            return to_rgb_uint8(np.asarray(im))
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{what} is damaged or truncated ({exc})") from None


def _download(url: str, timeout: float, max_bytes: int) -> bytes:
    """The body of ``url``: at most ``max_bytes``, all of it within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    chunks, total = [], 0
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise ImageLoadError(f"{url} is {int(length):,} bytes, more than the {max_bytes:,} bytes accepted")
        sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            if sock is not None:
                sock.settimeout(left)  # each read may use only what is left of the total time
            chunk = resp.read1(1 << 16)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > max_bytes:
                raise ImageLoadError(f"{url} sends more than the {max_bytes:,} bytes accepted")
            chunks.append(chunk)


def load(source, size: int | tuple[int, int] | None = None, timeout: float = 5.0) -> np.ndarray:
    """Load an image from a path, URL, bytes or array as uint8 RGB ``(H, W, 3)``.

    Args:
        source: a file path, an ``http(s)://`` URL, the file's bytes, or an array.
        size: resize to ``size x size`` or ``(height, width)``; None keeps the size.
        timeout: seconds a URL may take in all (connecting and every read), not per read.

    Raises:
        ImageLoadError: missing file, not an image, truncated data, unreachable or
            slow URL, a download over :data:`MAX_DOWNLOAD_BYTES`, an image over
            :data:`MAX_PIXELS`.
    """
    if isinstance(source, np.ndarray):
        img = to_rgb_uint8(source)
    elif isinstance(source, (bytes, bytearray)):
        img = _from_bytes(bytes(source), "the given bytes")
    elif isinstance(source, str) and source.startswith(("http://", "https://")):
        try:
            data = _download(source, timeout, MAX_DOWNLOAD_BYTES)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            if isinstance(exc, ImageLoadError):
                raise
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                reason = f"it took longer than {timeout:g} s in all; the timeout covers the whole download"
            raise ImageLoadError(
                f"could not download {source} ({reason}); check the address or your "
                "connection, or use a local file or images.sample(...)"
            ) from None
        img = _from_bytes(data, source)
    elif isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ImageLoadError(
                f"no such file: {path}" + (did_you_mean(str(source)) if isinstance(source, str) else "")
            )
        img = _from_bytes(path.read_bytes(), str(path))
    else:
        raise ImageLoadError(f"cannot load an image from a {type(source).__name__}")
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        from PIL import Image

        img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
    return img
