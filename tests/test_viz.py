import numpy as np
import pytest

from helpers import viz


def test_colorize_endpoints_of_jet():
    c = viz.colorize(np.array([[0.0, 1.0]]), "jet")
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


def test_heatmaps_default_to_the_course_perceptual_map():
    assert viz.HEATMAP_CMAP == "inferno"
    c = viz.colorize(np.array([[0.0, 0.5, 1.0]]))
    lightness = c[0].astype(float) @ [0.299, 0.587, 0.114]
    assert lightness[0] < 10 and lightness[0] < lightness[1] < lightness[2]  # black -> ... -> pale yellow
    np.testing.assert_array_equal(
        viz.overlay(np.zeros((8, 8, 3), np.uint8), np.ones((2, 2)), alpha=1.0), viz.colorize(np.ones((8, 8)))
    )


def test_clip_percentile_scales_by_the_99th_percentile_of_the_absolute_value():
    a = np.linspace(0, 1, 10_000, dtype=np.float32).reshape(100, 100)
    a[0, 0] = 1000.0  # one extreme pixel must not turn the rest black
    out = viz.clip_percentile(a)
    p99 = np.percentile(np.abs(a), 99)
    np.testing.assert_allclose(out[50, 50], a[50, 50] / p99, rtol=1e-6)
    assert out.max() == 1.0 and (out == 1.0).mean() == pytest.approx(0.01, abs=0.002)
    assert out.min() >= 0 and out.dtype == np.float32
    signed = viz.clip_percentile(-a, signed=True)  # the sign is kept, limits symmetric
    np.testing.assert_allclose(signed, -out, atol=1e-7)
    batch = viz.clip_percentile(np.stack([a, 10 * a]))  # each map on its own scale
    np.testing.assert_allclose(batch[0], batch[1], atol=1e-6)
    np.testing.assert_array_equal(viz.clip_percentile(np.zeros((4, 4))), 0)  # empty stays empty, no NaN
    sparse = np.zeros((10, 10), np.float32)
    sparse[0, 0] = 3.0  # 99th percentile 0: scaled by the maximum instead
    assert viz.clip_percentile(sparse)[0, 0] == 1.0
    with pytest.raises(ValueError, match="percentile"):
        viz.clip_percentile(a, percentile=0)


def test_show_marks_an_empty_map_and_draws_signed_maps_diverging():
    fig = viz.show([np.zeros((4, 4)), np.full((4, 4), 0.05), np.array([[-1.0, 1.0]])], ["empty", "weak", "signed"])
    texts = [[t.get_text() for t in ax.texts] for ax in fig.axes]
    assert texts[0] == ["empty map"] and texts[1] == [] and texts[2] == []
    assert fig.axes[0].images[0].get_cmap().name == viz.HEATMAP_CMAP
    signed = fig.axes[2].images[0]
    assert signed.get_cmap().name == viz.SIGNED_CMAP and signed.get_clim() == (-1, 1)
    rgb = viz.show([np.zeros((4, 4, 3), np.uint8)], empty=[True])  # an overlay of an empty map
    assert [t.get_text() for t in rgb.axes[0].texts] == ["empty map"]
    assert fig.dpi >= 100
