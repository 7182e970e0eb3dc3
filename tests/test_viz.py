import numpy as np
import pytest

from helpers import viz


def test_colorize_endpoints_of_jet():
    c = viz.colorize(np.array([[0.0, 1.0]]))
    assert c.dtype == np.uint8 and c.shape == (1, 2, 3)
    assert c[0, 0, 2] > 100 and c[0, 0, 0] == 0  # low = blue
    assert c[0, 1, 0] > 100 and c[0, 1, 2] == 0  # high = red


def test_overlay_keeps_the_image_size_and_blends():
    img = np.full((30, 40, 3), 100, np.uint8)
    heat = np.zeros((7, 7), np.float32)
    out = viz.overlay(img, heat, alpha=0.0)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)
    full = viz.overlay(img, heat, alpha=1.0)
    np.testing.assert_array_equal(full, viz.colorize(np.zeros((30, 40))))


def test_overlay_and_colorize_reject_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((2, 2)), alpha=2)
    with pytest.raises(ValueError, match="NaN"):
        viz.colorize(np.full((2, 2), np.nan))


def test_save_png_and_figure(tmp_path):
    p = viz.save(np.zeros((4, 4, 3), np.uint8), "x.png", directory=tmp_path)
    assert p.read_bytes()[:4] == b"\x89PNG"
    fig = viz.show([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4))], ["a", "b"])
    assert viz.save(fig, "f.jpg", directory=tmp_path).stat().st_size > 0
    with pytest.raises(ValueError, match="png"):
        viz.save(np.zeros((2, 2, 3), np.uint8), "x.gif", directory=tmp_path)


def test_a_bad_file_name_creates_no_folder(tmp_path):
    with pytest.raises(ValueError, match="png"):
        viz.save(np.zeros((2, 2, 3), np.uint8), "x.gif", directory=tmp_path / "new" / "sub")
    assert list(tmp_path.iterdir()) == []


def test_standardize_mean_128_and_64_per_std_over_the_given_axes():
    x = np.array([[[0.0, 2.0]], [[5.0, 5.0]]])  # two (1, 2) maps: one with mean 1 and std 1, one constant
    np.testing.assert_array_equal(viz.standardize(x), [[[64, 192]], [[0, 0]]])
    batch = np.stack([x, 10 * x])  # (2, 2, 1, 2): each image standardised on its own
    out = viz.standardize(batch, axis=(1, 2, 3))
    np.testing.assert_array_equal(out[0], out[1])
    assert out.dtype == np.uint8 and not np.isnan(viz.standardize(np.zeros((3, 3)))).any()


@pytest.mark.parametrize("kind", ["image", "figure"])
def test_save_on_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, kind):
    import errno

    import matplotlib.figure
    from PIL import Image

    old = viz.save(np.zeros((4, 4, 3), np.uint8), "x.png", directory=tmp_path).read_bytes()

    def full_disk(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    if kind == "image":
        monkeypatch.setattr(Image.Image, "save", full_disk)
        what = np.full((4, 4, 3), 255, np.uint8)
    else:
        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk)
        what = viz.show([np.zeros((4, 4))])
    with pytest.raises(OSError, match="No space left"):
        viz.save(what, "x.png", directory=tmp_path)
    assert (tmp_path / "x.png").read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
