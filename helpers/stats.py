"""How sure is a mean over a few images? Bootstrap percentile intervals.

A table of 16 images ranks methods by their mean score; whether a ranking would
survive other images is what an interval says. :func:`bootstrap_mean` resamples
the images with replacement and reads the interval of the mean off the
percentiles of the resampled means (the *percentile interval*, Efron &
Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall 1993, Ch. 13).
:func:`paired_difference` does the same for the per-image difference of two
methods scored on the *same* images: the images' shared difficulty cancels, so
the interval is narrower than comparing two separate intervals. A ranking
"A above B" holds where that interval excludes 0.

All resamples are drawn at once (``numpy.random.default_rng(seed)``), in blocks
that bound the memory; the same seed gives the same interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BLOCK = 4_000_000  # resampled values held at once (32 MB of float64)


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval of a mean.

    Attributes:
        estimate: the mean of the sample itself.
        low, high: the interval's ends, the ``(1 - level) / 2`` and ``(1 + level) / 2``
            percentiles of the resampled means.
        level: the coverage asked for, e.g. 0.95.
        n: the sample size (images).
        n_boot: the number of resamples.
    """

    estimate: float
    low: float
    high: float
    level: float
    n: int
    n_boot: int

    def excludes(self, value: float = 0.0) -> bool:
        """Whether ``value`` lies outside ``[low, high]`` (for a difference: the sign is settled)."""
        return bool(value < self.low or value > self.high)

    def __str__(self) -> str:
        return f"{self.estimate:.2f} [{self.low:.2f}, {self.high:.2f}]"


def _check_sample(values, name: str) -> np.ndarray:
    v = np.asarray(values)
    if v.dtype == object or not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
        raise ValueError(f"{name} must be numbers (one per image), got dtype {v.dtype}")
    v = v.astype(np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sample (one value per image), got shape {v.shape}")
    if v.size == 0:
        raise ValueError(f"{name} is empty: a bootstrap needs at least one value")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or inf at {np.flatnonzero(~np.isfinite(v))[:5].tolist()}")
    return v


def _check_options(n_boot, level) -> tuple[int, float]:
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if isinstance(level, bool) or not 0 < level < 1:
        raise ValueError(f"level is a coverage in (0, 1), e.g. 0.95, got {level!r}")
    return int(n_boot), float(level)


def bootstrap_means(values, *, n_boot: int = 10_000, seed: int = 0) -> np.ndarray:
    """The means of ``n_boot`` resamples (with replacement, the sample's size) of ``values``: ``(n_boot,)``.

    Raises:
        ValueError: ``values`` empty, not 1-D, not numbers, or with NaN/inf; ``n_boot`` not a positive integer.
    """
    v = _check_sample(values, "values")
    n_boot, _ = _check_options(n_boot, 0.5)
    rng = np.random.default_rng(seed)
    rows = max(1, _BLOCK // v.size)
    return np.concatenate(
        [v[rng.integers(0, v.size, (min(rows, n_boot - i), v.size))].mean(1) for i in range(0, n_boot, rows)]
    )


def bootstrap_mean(values, *, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> Interval:
    """Bootstrap percentile interval of the mean (Efron & Tibshirani 1993, Ch. 13).

    ``n_boot`` resamples of the ``n`` values, drawn with replacement; the
    interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of their
    means. A constant sample gives a zero-width interval at its value. With few
    values the interval tends to be too narrow (its coverage is below ``level``):
    read it as a lower bound on the uncertainty.

    Args:
        values: ``(n,)`` one score per image (bools count as 0/1).
        n_boot: resamples.
        level: coverage, in (0, 1).
        seed: seeds the resampling.

    Raises:
        ValueError: ``values`` empty, not 1-D, not numbers, or with NaN/inf; a bad ``n_boot`` or ``level``.
    """
    v = _check_sample(values, "values")
    n_boot, level = _check_options(n_boot, level)
    means = bootstrap_means(v, n_boot=n_boot, seed=seed)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(v.mean()), float(low), float(high), level, v.size, n_boot)


def paired_difference(a, b, *, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> Interval:
    """Bootstrap interval of the mean per-image difference ``a − b`` of two methods on the same images.

    The images are resampled together: each resample takes the same images
    for both methods, so what is shared (an easy or a hard image) cancels in
    ``a_i − b_i``. "A scores higher than B" is supported where the interval
    excludes 0 (:meth:`Interval.excludes`).

    Args:
        a: ``(n,)`` per-image scores of one method.
        b: ``(n,)`` per-image scores of the other, image ``i`` the same as in ``a``.
        n_boot: resamples.
        level: coverage, in (0, 1).
        seed: seeds the resampling.

    Raises:
        ValueError: either sample empty, not 1-D, not numbers or with NaN/inf; lengths differ.
    """
    a, b = _check_sample(a, "a"), _check_sample(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must score the same images: got {a.size} and {b.size} values")
    return bootstrap_mean(a - b, n_boot=n_boot, level=level, seed=seed)


__all__ = ["Interval", "bootstrap_mean", "bootstrap_means", "paired_difference"]
