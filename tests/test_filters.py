import numpy as np
import pytest

from helpers import filters


def test_plain_patterns_shape_and_determinism(lite0):
    a = filters.filter_patterns(lite0, "stem_conv", range(4), steps=5, size=64, progress=False)
    b = filters.filter_patterns(lite0, "stem_conv", range(4), steps=5, size=64, progress=False)
    assert a.shape == (4, 48, 48, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    c = filters.filter_patterns(lite0, "stem_conv", range(4), steps=5, size=64, seed=1, progress=False)
    assert not np.array_equal(a, c)


def test_batched_equals_one_filter_at_a_time(lite0):
    batch = filters.filter_patterns(lite0, "block2a_expand_conv", [3, 7], steps=4, size=64, progress=False)
    rng_first = filters.filter_patterns(lite0, "block2a_expand_conv", [3], steps=4, size=64, progress=False)
    # same seed -> same starting noise for the first image; each image's step only sees its own gradient
    np.testing.assert_allclose(batch[0].astype(int), rng_first[0].astype(int), atol=2)


@pytest.mark.parametrize("method", ["plain", "fourier"])
def test_ascent_raises_the_filter_activation(lite0, method):
    _, short = filters.filter_patterns(
        lite0, "block2a_expand_conv", range(3), steps=1, size=64, method=method, progress=False, return_loss=True
    )
    _, long = filters.filter_patterns(
        lite0, "block2a_expand_conv", range(3), steps=15, size=64, method=method, progress=False, return_loss=True
    )
    assert (long > short).all()


def test_bad_filter_indices(lite0):
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        filters.filter_patterns(lite0, "stem_conv", [32], steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match="method"):
        filters.filter_patterns(lite0, "stem_conv", [0], method="magic")


def test_stitch_layout():
    p = np.full((6, 10, 10, 3), 200, np.uint8)
    g = filters.stitch(p, rows=2, margin=5)
    assert g.shape == (2 * 10 + 5, 3 * 10 + 2 * 5, 3)
    assert (g[10:15] == 0).all() and (g[:10, :10] == 200).all()


def test_small_maps_fail_clearly_instead_of_returning_noise(lite0):
    # issue 11: block6a_expand_conv is 2x2 at a 32px input; the border-excluding slice was empty (NaN objective)
    assert filters.map_size(lite0, "block6a_expand_conv", 32) == (2, 2)
    with pytest.raises(ValueError, match="2x2 maps"):
        filters.filter_patterns(lite0, "block6a_expand_conv", [0], steps=2, size=32, progress=False)
    # 3x3 maps keep their centre cell: a finite objective that the ascent raises
    assert filters.map_size(lite0, "block6a_expand_conv", 48) == (3, 3) and filters.border(3, 3) == 1
    _, short = filters.filter_patterns(
        lite0, "block6a_expand_conv", [0], steps=1, size=48, progress=False, return_loss=True
    )
    _, long = filters.filter_patterns(
        lite0, "block6a_expand_conv", [0], steps=6, size=48, progress=False, return_loss=True
    )
    assert np.isfinite(long).all() and long[0] > short[0]
    with pytest.raises(ValueError, match="steps"):
        filters.filter_patterns(lite0, "stem_conv", [0], steps=0, size=32, progress=False)
