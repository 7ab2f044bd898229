"""Direct tests of `evaluate.score_predictions`: the metrics every result carries."""

import numpy as np
import pytest

from samplesize.training.evaluate import score_predictions

CLASSES = ["cat", "dog", "bird"]


def one_hot(predicted, k=3, confidence=0.8):
    probs = np.full((len(predicted), k), (1 - confidence) / (k - 1))
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def test_perfect_predictions_score_one_everywhere():
    labels = np.array([0, 1, 2, 0, 1, 2])
    metrics, confusion = score_predictions(one_hot(labels), labels, CLASSES)
    assert metrics["accuracy"] == metrics["balanced_accuracy"] == metrics["macro_f1"] == metrics["auc"] == 1.0
    assert metrics["per_class_recall"] == {"cat": 1.0, "dog": 1.0, "bird": 1.0}
    assert confusion == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]


def test_balanced_accuracy_exposes_a_majority_class_guesser_that_accuracy_flatters():
    labels = np.array([0] * 8 + [1, 2])
    metrics, confusion = score_predictions(one_hot(np.zeros(10, dtype=int)), labels, CLASSES)
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["balanced_accuracy"] == pytest.approx(1 / 3)
    assert metrics["per_class_recall"] == {"cat": 1.0, "dog": 0.0, "bird": 0.0}
    assert confusion == [[8, 0, 0], [1, 0, 0], [1, 0, 0]]  # rows are true classes


def test_auc_is_none_not_nan_when_the_test_set_lacks_a_class():
    labels = np.array([0, 1, 0, 1])
    metrics, _ = score_predictions(one_hot(labels), labels, CLASSES)
    assert metrics["auc"] is None


def test_binary_auc_uses_the_positive_class_probability():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]])
    metrics, _ = score_predictions(probs, labels, ["neg", "pos"])
    assert metrics["auc"] == pytest.approx(0.75)  # 3 of the 4 (pos, neg) pairs ranked correctly
    assert metrics["accuracy"] == pytest.approx(0.5)
