"""Learning curves: fit score-vs-sample-size families, blend them, invert them, compare them.

`fit_learning_curve(sizes, scores)` takes one (sample size, score) pair per
trial and returns a `LearningCurveFit`:

- every family in `FAMILIES` is fitted by weighted nonlinear least squares to
  the per-size mean scores, each size weighted by n_trials / variance: many
  seeded starts in one vectorised Levenberg-Marquardt batch, the best polished
  by `scipy.optimize.least_squares` (trust-region with bounds);
- each family is backtested: refitted without the largest size(s) and scored
  on how well it predicts them; the point prediction is a blend of the
  families with a ceiling, weighted by that backtest error (or the single best);
- intervals combine a bootstrap over trials (noise), the spread between the
  blended families (shape disagreement) and a term that grows with the
  log-distance beyond the largest measured size, in proportion to the edge
  slope and to the headroom below 1; beyond the data the band's ends are
  quantiles of held-out residuals (split-conformal), calibrated on a corpus of
  real learning curves by `bench/curve_calibration.py` (docs/learning-curves.md);
- `size_for(target)` inverts the curve and its band, and says how likely the
  target is reachable at all (`p_reachable`).

Assumptions: scores are "higher is better" metrics in [0, 1] (accuracy,
balanced accuracy, macro F1, AUC) whose expected value does not decrease as
the sample size grows.

Modules: `families` (the formulas), `fit` (the engine), `fitted` (the result: blend, band,
inversion), `band` (the calibrated width and levels), `compare` (several variants' curves),
`calibration` (the protocol that calibrates and checks the band on measured curves; `bench/`),
`gains` (what more labels buy) and `collection` (the assurance size and `plan_collection`).
"""

from .band import (CALIBRATED_LEVEL, CALIBRATION, FAR_FACTOR, LEVEL, REACH_HORIZON, Calibration, CurveFitError,
                   base_spread)
from .collection import AssuranceSize, CollectionPlan, assurance_size, plan_collection
from .compare import CROSSING_REACH, compare_curves, whole_size
from .families import FAMILIES, Family
from .fit import DEFAULT_BOOTSTRAP, DEFAULT_N_TEST, fit_learning_curve
from .fitted import FamilyFit, LearningCurveFit, SizeEstimate
from .gains import Gain, gain_per_1000, predicted_gains

__all__ = [
    "AssuranceSize", "CALIBRATED_LEVEL", "CALIBRATION", "CROSSING_REACH", "CollectionPlan", "DEFAULT_BOOTSTRAP", "DEFAULT_N_TEST", "FAMILIES",
    "FAR_FACTOR", "Gain", "LEVEL", "REACH_HORIZON", "Calibration", "CurveFitError", "Family", "FamilyFit",
    "LearningCurveFit", "SizeEstimate", "assurance_size", "base_spread", "compare_curves", "fit_learning_curve",
    "gain_per_1000", "plan_collection", "predicted_gains", "whole_size",
]
