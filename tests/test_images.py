import io

import numpy as np
import pytest
from PIL import Image

from helpers import images
from helpers.images import ImageLoadError


def _png(arr, mode=None, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode) if mode else Image.fromarray(arr)
    im = Image.fromarray(arr, mode) if mode else Image.fromarray(arr)
    im.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def _check(img, shape=None):
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[-1] == 3
    if shape:
        assert img.shape[:2] == shape


@pytest.mark.parametrize("name", images.SAMPLES)
def test_every_sample_is_uint8_rgb(name):
    _check(images.sample(name))


def test_unknown_sample_lists_valid_names():
    with pytest.raises(ValueError, match="chelsea"):
        images.sample("dog")


def test_grayscale_png(tmp_path):
    g = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    p = tmp_path / "g.png"
    p.write_bytes(_png(g))
    img = images.load(p)
    _check(img, (3, 4))
    assert (img[..., 0] == g).all() and (img[..., 2] == g).all()


def test_rgba_composited_on_white():
    a = np.zeros((2, 2, 4), np.uint8)
    a[0, 0] = [255, 0, 0, 255]  # opaque red
    a[1, 1] = [0, 0, 255, 0]  # fully transparent
    img = images.load(_png(a))
    assert img[0, 0].tolist() == [255, 0, 0]
    assert img[1, 1].tolist() == [255, 255, 255]


def test_la_image():
    la = np.stack([np.full((2, 3), 100, np.uint8), np.full((2, 3), 255, np.uint8)], -1)
    img = images.load(_png(la, "LA"))
    _check(img, (2, 3))
    assert (img == 100).all()


def test_palette_image():
    im = Image.new("P", (4, 3))
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    im.putpixel((1, 1), 1)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    img = images.load(buf.getvalue())
    assert img[1, 1].tolist() == [10, 200, 30] and img[0, 0].tolist() == [0, 0, 0]


def test_16_bit_png():
    a = np.array([[0, 65535], [257 * 100, 257 * 200]], np.uint16)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    img = images.load(buf.getvalue())
    assert img[..., 0].tolist() == [[0, 255], [100, 200]]


def test_16_bit_array():
    img = images.load(np.full((2, 2, 3), 65535, np.uint16))
    assert (img == 255).all()


def test_exif_rotation_is_applied():
    a = np.zeros((2, 4, 3), np.uint8)  # wide image
    a[0, 0] = 255
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif, quality=100)
    img = images.load(buf.getvalue())
    assert img.shape[:2] == (4, 2), "EXIF orientation 6 turns a 2x4 image into 4x2"


def test_float_and_bool_arrays():
    _check(images.load(np.random.default_rng(0).random((5, 6))), (5, 6))
    assert images.load(np.ones((2, 2), bool)).max() == 255
    with pytest.raises(ImageLoadError, match="NaN"):
        images.load(np.full((2, 2), np.nan))


def test_resize():
    assert images.load(np.zeros((10, 20, 3), np.uint8), size=8).shape == (8, 8, 3)
    assert images.load(np.zeros((10, 20, 3), np.uint8), size=(4, 6)).shape == (4, 6, 3)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        images.load(tmp_path / "missing.jpg")


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is text")
    with pytest.raises(ImageLoadError, match="not an image"):
        images.load(p)


def test_truncated_file(tmp_path):
    data = _png(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(ImageLoadError, match="damaged or truncated"):
        images.load(data[: len(data) // 2])


def test_unreachable_url_fails_fast():
    import time

    t0 = time.perf_counter()
    with pytest.raises(ImageLoadError, match="could not download"):
        images.load("http://127.0.0.1:9/cat.jpg", timeout=2)
    assert time.perf_counter() - t0 < 10


def test_bad_array_shape_and_type():
    with pytest.raises(ImageLoadError, match="shape"):
        images.load(np.zeros((2, 2, 5)))
    with pytest.raises(ImageLoadError, match="cannot load"):
        images.load(42)
