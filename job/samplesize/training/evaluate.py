"""Score a trial's predictions on the fixed test set."""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm


def score_predictions(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str]) -> tuple[dict, list[list[int]]]:
    """Return (metrics, confusion matrix) for class probabilities on the test set.

    AUC is one-vs-rest, macro-averaged; it is None when the test set lacks a
    class (undefined), never NaN. A class with no test image has no recall
    (None, not 0.0), and balanced accuracy averages over the tested classes.
    """
    k = len(class_names)
    classes = list(range(k))
    predicted = probabilities.argmax(axis=1)
    auc = None
    if len(np.unique(labels)) == k:
        probs = probabilities / probabilities.sum(axis=1, keepdims=True)
        auc = float(skm.roc_auc_score(labels, probs[:, 1] if k == 2 else probs, multi_class="ovr", labels=classes))
        auc = auc if math.isfinite(auc) else None
    recall = skm.recall_score(labels, predicted, labels=classes, average=None, zero_division=0)
    result = {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(labels, predicted)),
        "macro_f1": float(skm.f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)),
        "auc": auc,
        "per_class_recall": {name: float(r) if tested else None
                             for name, r, tested in zip(class_names, recall, np.bincount(labels, minlength=k) > 0)},
    }
    confusion = skm.confusion_matrix(labels, predicted, labels=classes).astype(int).tolist()
    return result, confusion
