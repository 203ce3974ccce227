"""Quality of one window of labeled predictions, bounds, and the estimate before labels (CBPE).

Classification compares labels as canonical strings (``drift_exporter.stats.normalize_category``:
``1``, ``1.0`` and ``"1"`` are one label), so labels of any JSON type work; an actual may name the
class by its label or by its display name. Regression compares numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

FloatArray = np.ndarray


def z_one_sided(confidence: float) -> float:
    """z such that P(Z > z) = 1 - confidence (2.326 for 0.99)."""
    return float(norm.ppf(confidence))


def wilson_interval(successes: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (0, 1) without observations."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


@dataclass
class ClassificationQuality:
    n: int
    accuracy: float
    accuracy_lower_bound: float
    accuracy_upper_bound: float
    f1_macro: float
    recall: dict[str, float]  # per actual class (display name)
    confusion: dict[tuple[str, str], int]  # (actual, predicted) -> count, display names
    correct: np.ndarray = field(repr=False)  # per row, 1.0 when right


@dataclass
class RegressionQuality:
    n: int
    mae: float
    mae_lower_bound: float
    mae_upper_bound: float
    rmse: float


def classification_quality(predicted: Sequence[str], actual: Sequence[str], *, z: float,
                           classes: Sequence[str] = ()) -> ClassificationQuality:
    """Accuracy, its Wilson interval, macro F1 over the classes seen (predicted or actual, plus
    ``classes``), recall per actual class and the confusion counts."""
    n = len(predicted)
    correct = np.fromiter((p == a for p, a in zip(predicted, actual, strict=True)), dtype=np.float64, count=n)
    hits = int(correct.sum())
    names = sorted(set(classes) | set(predicted) | set(actual))
    confusion: dict[tuple[str, str], int] = {}
    for a, p in zip(actual, predicted, strict=True):
        confusion[(a, p)] = confusion.get((a, p), 0) + 1
    recall: dict[str, float] = {}
    f1s: list[float] = []
    for c in names:
        tp = confusion.get((c, c), 0)
        actual_c = sum(v for (a, _), v in confusion.items() if a == c)
        predicted_c = sum(v for (_, p), v in confusion.items() if p == c)
        if actual_c:
            recall[c] = tp / actual_c
        if actual_c or predicted_c:
            f1s.append(2 * tp / (actual_c + predicted_c))
    low, high = wilson_interval(hits, n, z)
    return ClassificationQuality(
        n=n, accuracy=hits / n if n else math.nan, accuracy_lower_bound=low, accuracy_upper_bound=high,
        f1_macro=float(np.mean(f1s)) if f1s else math.nan, recall=recall, confusion=confusion, correct=correct)


def regression_quality(predicted: FloatArray, actual: FloatArray, *, z: float) -> RegressionQuality:
    errors = np.abs(np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64))
    n = len(errors)
    if n == 0:
        return RegressionQuality(0, math.nan, math.nan, math.nan, math.nan)
    mae = float(errors.mean())
    spread = float(errors.std(ddof=1)) if n > 1 else 0.0
    margin = z * spread / math.sqrt(n)
    return RegressionQuality(n=n, mae=mae, mae_lower_bound=max(0.0, mae - margin), mae_upper_bound=mae + margin,
                             rmse=float(math.sqrt(float(np.mean(errors ** 2)))))


class ConfidenceCalibration:
    """CBPE for accuracy: the chance that a prediction is right, as a function of the model's own
    top-class probability, fitted on the version's labeled holdout (isotonic regression, so the map
    is monotone and needs no assumption about its shape). The expected accuracy of any set of
    predictions is then the mean of that chance over them; no label is needed.

    It sees only what the model says about itself: a release that is confidently wrong (a label
    mapping mistake, a stale feature pipeline that still yields confident scores) is invisible to
    it, which is why the estimate only warns and live quality from labels decides rollbacks.
    """

    def __init__(self, confidence: FloatArray, correct: FloatArray) -> None:
        from sklearn.isotonic import IsotonicRegression

        x = np.asarray(confidence, dtype=np.float64)
        y = np.asarray(correct, dtype=np.float64)
        keep = np.isfinite(x)
        if keep.sum() < 2:
            raise ValueError("calibration needs at least 2 holdout rows with a probability")
        self.rows = int(keep.sum())
        self.model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x[keep], y[keep])

    def chance_correct(self, confidence: FloatArray) -> FloatArray:
        x = np.asarray(confidence, dtype=np.float64)
        out = np.full(len(x), np.nan)
        keep = np.isfinite(x)
        if keep.any():
            out[keep] = self.model.predict(x[keep])
        return out

    def expected_accuracy(self, confidence: FloatArray) -> float:
        chances = self.chance_correct(confidence)
        chances = chances[np.isfinite(chances)]
        return float(chances.mean()) if len(chances) else math.nan
