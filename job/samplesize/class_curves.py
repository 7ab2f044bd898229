"""Per-class recall curves, and the confusion matrix at the largest size: which class is short of data.

Nothing here imports TensorFlow: aggregation runs on a small CPU pod.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import numpy as np

from .curves import CurveFitError, fit_learning_curve
from .plot_layout import CLASS_GRID_POINTS, plotted_classes
from .summary import ClassCurve, ClassMeasured, ConfusionAtLargest, CurveGrid, SizeStats
from .answers import prediction, target_answer

# Per-class curves rank classes by how short of data they are; one robust family
# with a ceiling does that well and keeps aggregation fast with many classes.
CLASS_FAMILIES = ("pow3",)


def class_curves(seed: int, results: dict[int, dict], fitted_splits: list[float],
                 prediction_sizes: list[tuple[int, str, int | None]], targets: Iterable[float],
                 n_bootstrap: int, warnings: list[str]) -> tuple[list[ClassCurve], dict[str, Any]]:
    """One recall curve per class, and each class's fit by name (classes without one left out)."""
    if not results:
        return [], {}
    class_names = next(iter(results.values()))["class_names"]
    # like the metric's answer, the class curves use every measured size, backtest splits included
    fitted = [r for _, r in sorted(results.items())]
    class_test_sizes = _class_test_sizes(results, class_names)
    out, fits = [], {}
    for name in class_names:
        rows = [(r["split"], r["sample_size"], r["metrics"].get("per_class_recall", {}).get(name)) for r in fitted]
        rows = [row for row in rows if row[2] is not None]
        measured = _class_measured(rows)
        entry = ClassCurve(name=name, measured=measured, recall_at_largest=measured[-1].mean if measured else None)
        if len(measured) >= 2 and len(fitted_splits) >= 2:
            fits[name] = _class_fit(entry, rows, seed, n_bootstrap, class_test_sizes.get(name),
                                    prediction_sizes, targets, warnings)
        out.append(entry)
    return out, {name: f for name, f in fits.items() if f is not None}


def _class_fit(entry: ClassCurve, rows: list[tuple], seed: int, n_bootstrap: int, n_test: int | None,
               prediction_sizes: list[tuple[int, str, int | None]], targets: Iterable[float],
               warnings: list[str]) -> Any:
    """Fit one class's recall curve and fill in its answers; None (and a warning) when it cannot be fitted."""
    try:
        f = fit_learning_curve([r[1] for r in rows], [r[2] for r in rows], families=CLASS_FAMILIES,
                               n_bootstrap=n_bootstrap, seed=seed, n_test=n_test)
    except CurveFitError as exc:
        warnings.append(f"class {entry.name!r}: no recall curve ({exc})")
        return None
    entry.family, entry.ceiling = f.family, f.ceiling
    entry.predictions = [prediction(f, n, label, multiple) for n, label, multiple in prediction_sizes]
    entry.targets = [target_answer(f, t) for t in targets]
    return f


def add_class_grids(per_class: list[ClassCurve], fits: dict[str, Any], xlim: tuple[float, float]) -> None:
    """Sample the curve of each class the plot shows on the plot's grid, so that it draws from the summary."""
    sizes = np.geomspace(*xlim, CLASS_GRID_POINTS)
    for i in plotted_classes(c.recall_at_largest for c in per_class):
        fit = fits.get(per_class[i].name)
        if fit is not None:
            per_class[i].grid = CurveGrid(sizes=sizes.tolist(), mean=np.asarray(fit.predict(sizes), float).tolist())


def _class_measured(rows: list[tuple[float, float, float]]) -> list[ClassMeasured]:
    """Mean and spread of one class's recall per split, from (split, sample size, recall) rows."""
    by_split: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for split, size, recall in rows:
        by_split[split].append((size, recall))
    measured = []
    for split in sorted(by_split):
        arr = np.array(by_split[split], float)
        measured.append(ClassMeasured(
            split=split, sample_size=float(arr[:, 0].mean()), n=len(arr), mean=float(arr[:, 1].mean()),
            std=float(arr[:, 1].std(ddof=1)) if len(arr) > 1 else None,
        ))
    return measured


def _class_test_sizes(results: dict[int, dict], class_names: list[str]) -> dict[str, int]:
    """Test examples per class (a confusion-matrix row sum): the binomial floor of its recall's spread."""
    for r in results.values():
        try:
            rows = np.array(r.get("confusion_matrix"), dtype=float)
        except (TypeError, ValueError):
            continue
        if rows.shape == (len(class_names), len(class_names)) and np.all(np.isfinite(rows)):
            return {name: max(1, int(total)) for name, total in zip(class_names, rows.sum(axis=1))}
    return {}


def confusion_at_largest(results: dict[int, dict], per_size: list[SizeStats]) -> ConfusionAtLargest | None:
    """Summed counts over the repetitions of the largest split, fitted or backtest."""
    if not per_size:
        return None
    largest = max(per_size, key=lambda row: row.sample_size)
    names = next(iter(results.values()))["class_names"]
    k = len(names)
    total = np.zeros((k, k), dtype=np.int64)
    used = 0
    for index in largest.indexes:
        m = results[index].get("confusion_matrix")
        try:
            arr = np.array(m, dtype=float)
        except (TypeError, ValueError):
            continue
        if arr.shape != (k, k) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            continue  # a malformed matrix is skipped, not summed
        total += arr.astype(np.int64)
        used += 1
    if not used:
        return None
    return ConfusionAtLargest(split=largest.split, sample_size=largest.sample_size, trials=used,
                              class_names=names, matrix=total.tolist())
