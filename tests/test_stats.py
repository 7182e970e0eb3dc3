"""Bootstrap percentile intervals: oracles from exact resampling distributions and simulated coverage."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import stats


def test_a_constant_sample_gives_a_zero_width_interval_at_its_value():
    iv = stats.bootstrap_mean([0.75] * 16)
    assert iv.estimate == iv.low == iv.high == 0.75
    assert not iv.excludes(0.75) and iv.excludes(0.0)
    d = stats.paired_difference([1.0, 0.0, 1.0], [0.5, -0.5, 0.5])  # every image differs by 0.5
    assert d.low == d.high == 0.5 and d.excludes(0)


def test_the_interval_is_the_percentiles_of_the_exact_resampling_distribution():
    # two values 0 and 1: a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4
    iv = stats.bootstrap_mean([0.0, 1.0], n_boot=20_000)
    assert (iv.low, iv.high) == (0.0, 1.0)  # the 2.5% and 97.5% points: each end has 25% mass
    narrow = stats.bootstrap_mean([0.0, 1.0], n_boot=20_000, level=0.4)  # the 30% and 70% points: 0.5
    assert (narrow.low, narrow.high) == (0.5, 0.5)
    means = stats.bootstrap_means([0.0, 1.0], n_boot=20_000)
    assert np.mean(means == 0.5) == pytest.approx(0.5, abs=0.02)
    assert np.mean(means == 0.0) == pytest.approx(0.25, abs=0.02)


def test_the_width_matches_the_normal_theory_standard_error():
    # for a large sample the bootstrap means are ~ normal with sd = plug-in sd / sqrt(n)
    v = np.random.default_rng(1).exponential(size=400)
    iv = stats.bootstrap_mean(v, n_boot=20_000)
    se = v.std() / np.sqrt(v.size)
    assert iv.high - iv.low == pytest.approx(2 * 1.96 * se, rel=0.08)
    assert iv.low < v.mean() < iv.high


def test_intervals_cover_a_known_mean_about_as_often_as_their_level():
    rng = np.random.default_rng(7)
    trials, n = 300, 40
    samples = rng.normal(2.0, 1.5, (trials, n))
    covered = [stats.bootstrap_mean(s, n_boot=1000, seed=i).excludes(2.0) is False for i, s in enumerate(samples)]
    # percentile intervals undercover a little at n = 40 (~94%); 300 trials: binomial sd ~1.3%
    assert 0.89 <= np.mean(covered) <= 0.985
    low = [
        stats.bootstrap_mean(s, n_boot=1000, level=0.5, seed=i).excludes(2.0) is False for i, s in enumerate(samples)
    ]
    assert 0.40 <= np.mean(low) <= 0.60


def test_the_paired_interval_is_narrower_than_two_unpaired_ones_on_correlated_scores():
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0, 1, 16)  # images differ a lot, the two methods little
    a = difficulty + 0.05 + rng.normal(0, 0.02, 16)
    b = difficulty + rng.normal(0, 0.02, 16)
    ia, ib, d = stats.bootstrap_mean(a), stats.bootstrap_mean(b), stats.paired_difference(a, b)
    assert ia.low < ib.high  # the separate intervals overlap: they cannot rank the methods
    unpaired = np.sqrt((ia.high - ia.low) ** 2 + (ib.high - ib.low) ** 2)
    assert d.high - d.low < 0.2 * unpaired
    assert d.excludes(0) and d.low > 0  # the paired one can: a above b
    assert d.estimate == pytest.approx(np.mean(a - b))
    # independent scores: pairing gains nothing, the widths agree
    c = rng.uniform(0, 1, 400)
    e = rng.uniform(0, 1, 400)
    wide = stats.paired_difference(c, e)
    indep = np.sqrt(
        (stats.bootstrap_mean(c).high - stats.bootstrap_mean(c).low) ** 2
        + (stats.bootstrap_mean(e).high - stats.bootstrap_mean(e).low) ** 2
    )
    assert wide.high - wide.low == pytest.approx(indep, rel=0.1)


def test_the_same_seed_gives_the_same_interval_and_bools_count_as_zero_one():
    hits = np.array([True, False, True, True, False, True, True, True])
    one, two = stats.bootstrap_mean(hits, seed=3), stats.bootstrap_mean(hits.astype(float), seed=3)
    assert one == two and one.estimate == 0.75
    means = stats.bootstrap_means(hits, n_boot=50, seed=3)
    np.testing.assert_array_equal(means, stats.bootstrap_means(hits, n_boot=50, seed=3))
    assert not np.array_equal(means, stats.bootstrap_means(hits, n_boot=50, seed=4))  # another draw
    assert str(one).startswith("0.75 [")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=30), st.floats(0.05, 0.99))
def test_the_interval_lies_within_the_sample_range(values, level):
    iv = stats.bootstrap_mean(values, n_boot=200, level=level)
    tol = 1e-9 * (1 + max(abs(v) for v in values))
    assert min(values) - tol <= iv.low <= iv.high <= max(values) + tol


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: stats.bootstrap_mean([]), "empty"),
        (lambda: stats.bootstrap_mean([1.0, np.nan]), "NaN"),
        (lambda: stats.bootstrap_mean([1.0, np.inf]), "NaN or inf"),
        (lambda: stats.bootstrap_mean(np.ones((2, 3))), "1-D"),
        (lambda: stats.bootstrap_mean(["a", "b"]), "numbers"),
        (lambda: stats.bootstrap_mean([1.0], level=95), "level"),
        (lambda: stats.bootstrap_mean([1.0], level=0), "level"),
        (lambda: stats.bootstrap_mean([1.0], n_boot=0), "n_boot"),
        (lambda: stats.bootstrap_mean([1.0], n_boot=2.5), "n_boot"),
        (lambda: stats.paired_difference([1.0, 2.0], [1.0]), "same images"),
        (lambda: stats.paired_difference([1.0], [np.nan]), "b contains NaN"),
        (lambda: stats.paired_difference([], []), "a is empty"),
    ],
)
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
