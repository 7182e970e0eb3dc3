import io

import numpy as np
import pytest
from PIL import Image

from helpers import images
from helpers.images import ImageLoadError


def _png(arr, mode=None, **kw) -> bytes:
    buf = io.BytesIO()
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


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` pixels (8-bit gray) with no pixel data: a decompression bomb's header."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [14_000, 9_000])  # above PIL's own bomb limit, and between it and ours
def test_a_huge_image_is_refused_before_decoding(side):
    with pytest.raises(ImageLoadError, match=f"{side * side:,} pixels, more than the 64,000,000.*MAX_PIXELS"):
        images.load(_png_header(side, side))


def test_the_pixel_cap_applies_to_real_files(monkeypatch):
    data = _png(np.zeros((20, 30), np.uint8))
    monkeypatch.setattr(images, "MAX_PIXELS", 599)
    with pytest.raises(ImageLoadError, match="30 x 20 = 600 pixels"):
        images.load(data)
    monkeypatch.setattr(images, "MAX_PIXELS", 600)
    _check(images.load(data), (20, 30))


def test_float_tiff_in_0_1_is_scaled_not_black():
    a = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    buf = io.BytesIO()
    Image.fromarray(a, "F").save(buf, format="TIFF")
    img = images.load(buf.getvalue())
    assert img[..., 0].tolist() == [[0, 64], [128, 255]]


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0.0, 0.5, 1.0], [0, 128, 255]),  # within [0, 1]: times 255
        ([0.0, 2.0, 255.0], [0, 2, 255]),  # within [0, 255]: kept
        ([-1.0, 0.0, 1.0], [0, 128, 255]),  # any other range: min-max
        ([0.0, 500.0, 1000.0], [0, 128, 255]),
    ],
)
def test_float_range_rule(values, expected):
    assert images.to_rgb_uint8(np.array([values], np.float32))[0, :, 0].tolist() == expected


def test_a_misspelt_sample_name_gets_a_hint():
    with pytest.raises(ValueError, match="did you mean 'chelsea'"):
        images.sample("chelsa")
    with pytest.raises(ImageLoadError, match="no such file: chelsa; did you mean 'chelsea'"):
        images.load("chelsa")


# --------------------------------------------------------------------------- URLs, served from 127.0.0.1 only
@pytest.fixture
def server():
    """A local HTTP server in a thread; ``routes[path] = handler(request)`` decides what each path answers."""
    import http.server
    import threading

    routes = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            try:
                routes[self.path](self)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()


def _send(handler, body: bytes, length: int | None = None):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/octet-stream")
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.end_headers()
    handler.wfile.write(body)


def test_url_is_loaded(server):
    url, routes = server
    data = _png(np.full((3, 5, 3), 7, np.uint8))
    routes["/ok.png"] = lambda h: _send(h, data, len(data))
    img = images.load(url + "/ok.png")
    _check(img, (3, 5))
    assert (img == 7).all()


def test_a_slow_drip_url_stops_at_the_total_timeout(server):
    import time

    url, routes = server

    def drip(h):
        h.send_response(200)
        h.send_header("Content-Length", "40")
        h.end_headers()
        for _ in range(40):  # one byte every 0.25 s: each read is quick, the whole takes 10 s
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.25)

    routes["/slow.png"] = drip
    t0 = time.perf_counter()
    with pytest.raises(ImageLoadError, match="longer than 1 s in all"):
        images.load(url + "/slow.png", timeout=1.0)
    assert time.perf_counter() - t0 < 3


@pytest.mark.parametrize("declared", [True, False])
def test_an_oversized_url_body_is_refused(server, monkeypatch, declared):
    url, routes = server
    monkeypatch.setattr(images, "MAX_DOWNLOAD_BYTES", 1000)
    body = b"\0" * 5000
    routes["/big.png"] = lambda h: _send(h, body, len(body) if declared else None)
    with pytest.raises(ImageLoadError, match="1,000 bytes"):
        images.load(url + "/big.png")
