"""What more labels buy: the predicted gain over today's pool, with a paired interval, and the slope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .band import LEVEL
from .fitted import LearningCurveFit

# "The next N labels", as multiples of the current pool: +25%, +50%, +100% and +300%.
DEFAULT_INCREMENTS = (0.25, 0.5, 1.0, 3.0)


@dataclass(frozen=True)
class Gain:
    """The predicted gain in score from `current_size` to `total` (`more` labels added), with its interval."""

    current_size: float
    more: float
    total: float
    gain: float
    interval: tuple[float, float]
    level: float = LEVEL


def predicted_gains(fit: LearningCurveFit, current_size: float, more: Sequence[float] | None = None,
                    level: float = LEVEL) -> list[Gain]:
    """The predicted gain over the score at `current_size` for each number of labels in `more`.

    The gain is `predict(current + more) - predict(current)`. Its interval comes from the
    bootstrap refits paired: each refit's own gain, so that what both sizes share (the level of
    the curve) cancels. Those paired gains are widened by the ratio of the calibrated band to the
    bootstrap's spread at the larger size (the calibration's correction for extrapolation), and
    never exceed the difference of the two level intervals (`interval(total)` minus
    `interval(current)`), which is what they fall back to without a bootstrap. The expected score
    does not fall as n grows, so the lower end is at least 0.

    Args:
        fit: the fitted curve.
        current_size: today's pool (the size the gains start from), > 0.
        more: the label counts to add. Defaults to `DEFAULT_INCREMENTS` times `current_size`.
        level: the interval's nominal level. Defaults to `LEVEL` (0.8).

    Returns:
        One `Gain` per entry of `more`, in that order.

    Raises:
        ValueError: `current_size` is not positive, an entry of `more` is negative, or `level` is not in (0, 1).

    Example:

    >>> from samplesize.curves import fit_learning_curve
    >>> sizes = [50, 100, 200, 400, 800] * 3
    >>> fit = fit_learning_curve(sizes, [0.95 - 2.0 * n ** -0.5 for n in sizes], n_bootstrap=100, n_test=500)
    >>> g = predicted_gains(fit, 800, [800])[0]
    >>> round(g.gain, 3), g.interval[0] <= g.gain <= g.interval[1]
    (0.02, True)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if not current_size > 0:
        raise ValueError(f"current_size must be > 0, got {current_size!r}")
    more = np.asarray([inc * current_size for inc in DEFAULT_INCREMENTS] if more is None else more, float)
    if np.any(more < 0) or not np.all(np.isfinite(more)):
        raise ValueError(f"every entry of `more` must be a finite count >= 0, got {more.tolist()}")
    totals = current_size + more
    sizes = np.concatenate([[current_size], totals])
    centre = fit.predict(sizes)
    gains = centre[1:] - centre[0]
    low, high = fit.interval(sizes, level=level)
    # the difference of the two level intervals: the widest the gain's interval may be
    diff_low, diff_high = low[1:] - high[0], high[1:] - low[0]
    paired = _paired_interval(fit, sizes, gains, high - low, level)
    lo, hi = (diff_low, diff_high) if paired is None else (np.maximum(paired[0], diff_low),
                                                            np.minimum(paired[1], diff_high))
    lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    return [Gain(float(current_size), float(m), float(t), float(g), (float(a), float(b)), level)
            for m, t, g, a, b in zip(more, totals, gains, lo, hi)]


def _paired_interval(fit: LearningCurveFit, sizes: np.ndarray, gains: np.ndarray, band_width: np.ndarray,
                     level: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The gains' interval from paired bootstrap refits (sizes[0] is the start), widened as the band is."""
    reps = fit.replicates(sizes)
    if reps is None or reps.shape[0] < 2:
        return None
    tails = [(1 - level) / 2, (1 + level) / 2]
    paired = reps[:, 1:] - reps[:, :1]
    q_low, q_high = np.quantile(paired - paired.mean(axis=0), tails, axis=0)
    r_low, r_high = np.quantile(reps[:, 1:] - reps[:, 1:].mean(axis=0), tails, axis=0)
    raw_width = r_high - r_low
    spread = raw_width > 1e-12
    widen = np.maximum(band_width[1:] / np.where(spread, raw_width, 1.0), 1.0)
    # where the bootstrap has no spread, nothing tells how far to widen: the difference stands
    return (np.where(spread, gains + widen * q_low, -np.inf), np.where(spread, gains + widen * q_high, np.inf))


def gain_per_1000(fit: LearningCurveFit, size: float) -> float:
    """The curve's slope at `size`: the predicted gain per 1,000 more labels there (a central difference)."""
    if not size > 0:
        raise ValueError(f"size must be > 0, got {size!r}")
    step = 0.01 * size
    low, high = fit.predict(np.array([size - step, size + step]))
    return float((high - low) / (2 * step) * 1000.0)
