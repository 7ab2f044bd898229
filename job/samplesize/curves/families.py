"""The curve families: formulas, bounds, starts and the reparameterisation each is fitted in."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.special import expit


@dataclass(frozen=True)
class Family:
    """A curve family.

    `formula`, `param_names` and `bounds` describe the natural parameters (in terms of
    the sample size n) shown in reports. Internally each family is fitted on
    u = n / scale (scale = the largest fitted size) with a reparameterisation that
    keeps the problem well conditioned; `natural` converts back.
    """

    name: str
    formula: str
    param_names: tuple[str, ...]
    bounds: dict[str, tuple[float, float]]
    has_ceiling: bool
    curve: Callable = field(repr=False)  # (theta[..., P], u[M]) -> y[..., M]
    lower: tuple[float, ...] = field(repr=False)
    upper: tuple[float, ...] = field(repr=False)
    start: Callable = field(repr=False)  # (rng, DataSummary) -> theta
    natural: Callable = field(repr=False)  # (theta, scale) -> dict
    limit: Callable = field(repr=False)  # theta -> ceiling
    prior: dict[int, tuple[float, float]] = field(default_factory=dict, repr=False)  # index -> (centre, scale)

    @property
    def n_params(self) -> int:
        return len(self.lower)


def _param_columns(theta):
    """Columns of theta, shaped to broadcast against a size axis."""
    theta = np.asarray(theta, float)
    return [theta[..., i, None] for i in range(theta.shape[-1])]


@dataclass(frozen=True)
class DataSummary:
    first: float  # mean score at the smallest size
    last: float  # mean score at the largest size
    log_u_min: float  # log(smallest / largest size), < 0


def _ceiling_start(rng, d: DataSummary) -> float:
    return float(min(1.0, d.last + rng.uniform(0.003, 0.25) * max(1.0 - d.last, 0.05) * 4))


def _pow2_curve(theta, u):
    a, b = _param_columns(theta)
    return a * np.exp(b * np.log(u))


def _pow2_start(rng, d):
    rise = max(d.last, 1e-3) / max(d.first, 1e-3)
    b = max(math.log(max(rise, 1.0 + 1e-4)) / -d.log_u_min, 1e-3) * rng.uniform(0.5, 1.5)
    return [d.last, b]


def _pow3_curve(theta, u):
    a, g, c = _param_columns(theta)
    return a - g * np.exp(-c * np.log(u))


def _pow3_start(rng, d):
    a = _ceiling_start(rng, d)
    return [a, max(a - d.last, 1e-4), math.exp(rng.uniform(math.log(0.1), math.log(1.5)))]


def _pow4_curve(theta, u):
    a, g, c, off = _param_columns(theta)
    return a - g * ((u + off) / (1.0 + off)) ** (-c)


def _pow4_start(rng, d):
    return _pow3_start(rng, d) + [float(rng.choice([0.0, rng.uniform(0.0, 0.3)]))]


def _mmf4_curve(theta, u):
    c, g, beta, dd = _param_columns(theta)
    return c - g * expit(beta - dd * np.log(u))


def _mmf4_start(rng, d):
    c = _ceiling_start(rng, d)
    g = min(1.0, max(c - d.first, 1e-3) * rng.uniform(1.0, 1.6))
    frac = min(max((c - d.last) / g, 1e-4), 1 - 1e-4)  # makes the start pass through the last mean
    return [c, g, math.log(frac / (1 - frac)), math.exp(rng.uniform(math.log(0.3), math.log(2.0)))]


def _wbl4_curve(theta, u):
    c, b, alpha, dd = _param_columns(theta)
    return c - b * np.exp(-np.exp(alpha + dd * np.log(u)))


def _wbl4_start(rng, d):
    c = _ceiling_start(rng, d)
    b = min(1.0, max(c - d.first, 1e-3) * rng.uniform(1.0, 1.6))
    frac = min(max((c - d.last) / b, 1e-4), 1 - 1e-4)
    return [c, b, math.log(-math.log(frac)), math.exp(rng.uniform(math.log(0.2), math.log(1.5)))]


def _exp3_curve(theta, u):
    a, b, gamma = _param_columns(theta)
    return a - b * np.exp(-np.exp(gamma) * u)


def _exp3_start(rng, d):
    a = _ceiling_start(rng, d)
    gamma = rng.uniform(math.log(0.5), math.log(20.0))
    b = min(1.0, max(a - d.last, 1e-4) * math.exp(math.exp(gamma)))
    return [a, b, gamma]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            name="pow2", formula="a * n^b", param_names=("a", "b"),
            bounds={"a": (0.0, math.inf), "b": (0.0, 3.0)}, has_ceiling=False,
            # a is the value at the largest size (<= 1); b >= 0 keeps it non-decreasing.
            curve=_pow2_curve, lower=(1e-6, 0.0), upper=(1.0, 3.0), start=_pow2_start,
            natural=lambda t, s: {"a": t[0] * s ** (-t[1]), "b": t[1]},
            limit=lambda t: math.inf if t[1] > 1e-9 else float(t[0]),
        ),
        Family(
            name="pow3", formula="a - b * n^(-c)", param_names=("a", "b", "c"),
            bounds={"a": (0.0, 1.0), "b": (0.0, math.inf), "c": (0.001, 4.0)}, has_ceiling=True,
            # internally b is the gap below the ceiling at the largest size: in [0, 1].
            curve=_pow3_curve, lower=(0.0, 0.0, 1e-3), upper=(1.0, 1.0, 4.0), start=_pow3_start,
            natural=lambda t, s: {"a": t[0], "b": t[1] * s ** t[2], "c": t[2]},
            limit=lambda t: float(t[0]), prior={2: (0.5, 1.0)},
        ),
        Family(
            name="pow4", formula="a - b * (n + d)^(-c)", param_names=("a", "b", "c", "d"),
            bounds={"a": (0.0, 1.0), "b": (0.0, math.inf), "c": (0.001, 4.0), "d": (0.0, math.inf)},
            has_ceiling=True,
            # d shifts the start of the curve (a finite score at n = 0); internally d is in
            # units of the largest size and b is the gap at the largest size.
            curve=_pow4_curve, lower=(0.0, 0.0, 1e-3, 0.0), upper=(1.0, 1.0, 4.0, 4.0), start=_pow4_start,
            natural=lambda t, s: {"a": t[0], "b": t[1] * ((1 + t[3]) * s) ** t[2], "c": t[2], "d": t[3] * s},
            limit=lambda t: float(t[0]), prior={2: (0.5, 1.0), 3: (0.0, 0.5)},
        ),
        Family(
            name="mmf4", formula="(a*b + c * n^d) / (b + n^d)", param_names=("a", "b", "c", "d"),
            bounds={"a": (-1.0, 1.0), "b": (0.0, math.inf), "c": (0.0, 1.0), "d": (0.05, 5.0)},
            has_ceiling=True,
            # Morgan-Mercer-Flodin: from a at n = 0 to the ceiling c; fitted as
            # c - (c - a) * expit(log b - d log n), with c - a in [0, 1] so it never decreases.
            curve=_mmf4_curve, lower=(0.0, 0.0, -20.0, 0.05), upper=(1.0, 1.0, 20.0, 5.0), start=_mmf4_start,
            natural=lambda t, s: {"a": t[0] - t[1], "b": math.exp(t[2]) * s ** t[3], "c": t[0], "d": t[3]},
            limit=lambda t: float(t[0]), prior={3: (1.0, 2.0)},
        ),
        Family(
            name="wbl4", formula="c - b * exp(-a * n^d)", param_names=("a", "b", "c", "d"),
            bounds={"a": (0.0, math.inf), "b": (0.0, 1.0), "c": (0.0, 1.0), "d": (0.05, 5.0)}, has_ceiling=True,
            # Weibull; a is fitted on a log scale because it spans many orders of magnitude.
            curve=_wbl4_curve, lower=(0.0, 0.0, -15.0, 0.05), upper=(1.0, 1.0, 10.0, 5.0), start=_wbl4_start,
            natural=lambda t, s: {"a": math.exp(t[2]) * s ** (-t[3]), "b": t[1], "c": t[0], "d": t[3]},
            limit=lambda t: float(t[0]), prior={3: (1.0, 2.0)},
        ),
        Family(
            name="exp3", formula="a - b * exp(-c * n)", param_names=("a", "b", "c"),
            bounds={"a": (0.0, 1.0), "b": (0.0, 1.0), "c": (0.0, math.inf)}, has_ceiling=True,
            curve=_exp3_curve, lower=(0.0, 0.0, -8.0), upper=(1.0, 1.0, 8.0), start=_exp3_start,
            natural=lambda t, s: {"a": t[0], "b": t[1], "c": math.exp(t[2]) / s},
            limit=lambda t: float(t[0]),
        ),
    ]
}
