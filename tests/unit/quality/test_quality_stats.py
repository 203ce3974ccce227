import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, mean_absolute_error, recall_score

from quality.stats import (
    ConfidenceCalibration,
    classification_quality,
    regression_quality,
    wilson_interval,
    z_one_sided,
)


def test_classification_quality_matches_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c"]
    actual = [classes[i] for i in rng.integers(0, 3, 500)]
    predicted = [a if rng.random() < 0.8 else classes[rng.integers(0, 3)] for a in actual]
    q = classification_quality(predicted, actual, z=z_one_sided(0.99))
    assert q.accuracy == pytest.approx(accuracy_score(actual, predicted))
    assert q.f1_macro == pytest.approx(f1_score(actual, predicted, average="macro"))
    recalls = recall_score(actual, predicted, average=None, labels=classes)
    assert [q.recall[c] for c in classes] == pytest.approx(list(recalls))
    matrix = confusion_matrix(actual, predicted, labels=classes)
    for i, a in enumerate(classes):
        for j, p in enumerate(classes):
            assert q.confusion.get((a, p), 0) == matrix[i, j]
    assert q.accuracy_lower_bound < q.accuracy < q.accuracy_upper_bound


def test_wilson_interval_known_value_and_edges() -> None:
    # 81 of 263 at 95% two-sided (z = 1.96): the textbook example gives 0.2553 .. 0.3662.
    low, high = wilson_interval(81, 263, 1.959964)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson_interval(0, 0, 2.0) == (0.0, 1.0)
    low, high = wilson_interval(10, 10, 2.326)
    assert high == 1.0 and 0.6 < low < 1.0
    assert z_one_sided(0.99) == pytest.approx(2.3263, abs=1e-4)


def test_regression_quality_matches_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    actual = rng.normal(size=300)
    predicted = actual + rng.normal(scale=0.5, size=300)
    q = regression_quality(predicted, actual, z=2.326)
    assert q.mae == pytest.approx(mean_absolute_error(actual, predicted))
    assert q.rmse == pytest.approx(math.sqrt(np.mean((actual - predicted) ** 2)))
    assert q.mae_lower_bound < q.mae < q.mae_upper_bound


def test_calibration_turns_confidence_into_expected_accuracy() -> None:
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0.4, 1.0, 20_000)
    correct = (rng.random(20_000) < confidence ** 2).astype(float)  # over-confident model
    calibration = ConfidenceCalibration(confidence, correct)
    new = rng.uniform(0.4, 1.0, 5000)
    realized = float(np.mean(rng.random(5000) < new ** 2))
    assert calibration.expected_accuracy(new) == pytest.approx(realized, abs=0.02)
    assert float(np.mean(new)) - realized > 0.05  # the raw confidence would be off
    assert math.isnan(calibration.expected_accuracy(np.array([np.nan])))
    with pytest.raises(ValueError, match="at least 2"):
        ConfidenceCalibration(np.array([0.5]), np.array([1.0]))
