"""Alert quality of the drift verdicts: false alarms on stationary data, detection of a small shift.

Scenarios (fixed seeds; windows are built in memory and go through ``compute_drift``, the exporter's
own check):
  iris-registered  the reference `driftwatch train` registers for Iris (120 training rows, so
                   Evidently's rule picks KS). Stationary windows are rows drawn from that reference
                   (with replacement), plain and with the demo traffic's 0.05-sd noise.
  iris-small-continuous  a 120-row reference drawn from an Iris-like continuous population (Iris
                   rows plus 0.1-sd Gaussian jitter); windows are fresh draws from the population
                   (KS p-values are then uniform under no drift: the textbook case).
  iris-large       a 5000-row reference from the same population (Evidently's rule picks normed
                   Wasserstein, threshold 0.1); windows are fresh draws.
Predicted classes come from the registered logistic regression on each window's rows.

Stationary: for each window size, the share of checks in which a given feature is flagged (the
worst feature), any feature is flagged, the dataset-level verdict (>= half the features) is reached,
and prediction drift is flagged -- under several multiple-testing settings for p-value tests.
Shift: a 1000-row window (and, for the large reference, the default 2000-row window) in which a
fraction of the rows has one feature moved by +0.5 reference standard deviations; the share of
checks that flag that feature, and that flag any other feature.

Small references are run a second time with DRIFTWATCH_DRIFT_NUMERIC_METHOD=anderson (Anderson-Darling
instead of Evidently's KS), which has more power against a shift of part of the window.

Targets: stationary, a feature flagged in at most 1 % of checks and the dataset verdict in fewer;
a 0.5-sd shift of one feature flagged for that feature only once half of a 1000-row window shifted.

Run: .venv/bin/python benchmarks/bench_drift_alert_quality.py [--checks 1000] [--shift-checks 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.model_selection import train_test_split

from drift_exporter.check import DriftResult, compute_drift
from drift_exporter.decisions import DriftPolicy, Method, corrected_decisions
from drift_exporter.reference import PreparedReference, prepare_reference
from drift_exporter.window import Window
from model_registry.data import IRIS_FEATURES, load_iris_dataset
from model_registry.reference import build_reference
from model_registry.training import build_estimator

VARIANTS: dict[str, DriftPolicy] = {
    "none, p<0.05 (Evidently)": DriftPolicy(correction="none", p_value_threshold=0.05, min_window_rows=1),
    "bonferroni, 0.05 (default)": DriftPolicy(correction="bonferroni", p_value_threshold=0.05, min_window_rows=1),
    "bh, 0.05": DriftPolicy(correction="bh", p_value_threshold=0.05, min_window_rows=1),
    "bonferroni, 0.01": DriftPolicy(correction="bonferroni", p_value_threshold=0.01, min_window_rows=1),
}
DEFAULT = "bonferroni, 0.05 (default)"


@dataclass
class Scenario:
    name: str
    reference: PreparedReference
    draw: Callable[[np.random.Generator, int], pd.DataFrame]
    std: pd.Series


def iris_setup() -> tuple[pd.DataFrame, object, tuple[str, ...]]:
    data = load_iris_dataset()
    x_train, _, y_train, _ = train_test_split(data.features, data.target, test_size=0.2, stratify=data.target,
                                              random_state=0)
    model = build_estimator("logreg", 0).fit(x_train, y_train)
    return x_train.reset_index(drop=True), model, data.class_names


def prepared(model: object, rows: pd.DataFrame, classes: tuple[str, ...], version: str) -> PreparedReference:
    reference = build_reference(model, rows, list(classes), model_name="iris", max_rows=len(rows))
    return prepare_reference(reference, model_name="iris", version=version)


def window_of(model: object, classes: tuple[str, ...], frame: pd.DataFrame) -> Window:
    predicted = np.asarray(model.predict(frame))  # type: ignore[attr-defined]
    names = [classes[int(c)] for c in predicted]
    return Window(rows=len(frame), numeric={c: frame[c].to_numpy(dtype=np.float64) for c in frame},
                  categorical={}, prediction_classes=names, prediction_versions=["1"] * len(frame))


def scenarios() -> tuple[list[Scenario], object, tuple[str, ...]]:
    train, model, classes = iris_setup()
    std = train.std(ddof=0)

    def bootstrap(noise: float) -> Callable[[np.random.Generator, int], pd.DataFrame]:
        def draw(rng: np.random.Generator, rows: int) -> pd.DataFrame:
            frame = train.iloc[rng.integers(0, len(train), rows)].reset_index(drop=True)
            if noise:
                frame = frame + rng.normal(0, noise, size=frame.shape) * std.to_numpy()
            return frame
        return draw

    population = bootstrap(0.1)
    small = population(np.random.default_rng(100), 120)
    large = population(np.random.default_rng(101), 5000)
    return [
        Scenario("iris-registered, bootstrap windows", prepared(model, train, classes, "1"), bootstrap(0.0), std),
        Scenario("iris-registered, demo traffic (+0.05 sd noise)", prepared(model, train, classes, "1"),
                 bootstrap(0.05), std),
        Scenario("iris-small-continuous (120 rows)", prepared(model, small, classes, "1"), population,
                 small.std(ddof=0)),
        Scenario("iris-large (5000 rows)", prepared(model, large, classes, "1"), population, large.std(ddof=0)),
    ], model, classes


def decisions(result: DriftResult, policy: DriftPolicy) -> list[bool]:
    decided = [f for f in result.features if f.status == "ok" and f.method and f.value is not None]
    flags, _ = corrected_decisions([f.method for f in decided if f.method],
                                   [f.value for f in decided if f.value is not None], policy)
    return flags


def stationary(scenario: Scenario, model: object, classes: tuple[str, ...], sizes: list[int], checks: int,
               method: Method | None = None) -> None:
    base = DriftPolicy(correction="none", min_window_rows=1, numeric_method=method)
    name = f"{scenario.name}, {method}" if method else scenario.name
    for size in sizes:
        rng = np.random.default_rng(size)
        per_feature = {v: np.zeros(len(IRIS_FEATURES)) for v in VARIANTS}
        any_flag = dict.fromkeys(VARIANTS, 0)
        dataset = dict.fromkeys(VARIANTS, 0)
        prediction = 0
        methods: set[str] = set()
        for _ in range(checks):
            result = compute_drift(scenario.reference, window_of(model, classes, scenario.draw(rng, size)), base)
            methods |= {f.method for f in result.features if f.method}
            prediction += bool(result.prediction.detected)
            for label, policy in VARIANTS.items():
                flags = decisions(result, policy)
                per_feature[label] += np.array(flags, dtype=float)
                any_flag[label] += any(flags)
                dataset[label] += sum(flags) / len(flags) >= policy.drift_share
        for label in VARIANTS:
            worst = per_feature[label].max() / checks
            print(f"  stationary | {name} | window {size} | {label}: worst feature flagged "
                  f"{worst:.2%}, any feature {any_flag[label] / checks:.2%}, dataset verdict "
                  f"{dataset[label] / checks:.2%} | methods {sorted(methods)}")
        print(f"  stationary | {name} | window {size} | prediction drift flagged {prediction / checks:.2%}")


def shifted(scenario: Scenario, model: object, classes: tuple[str, ...], fractions: list[float], checks: int,
            labels: list[str], size: int = 1000, method: Method | None = None) -> None:
    base = DriftPolicy(correction="none", min_window_rows=1, numeric_method=method)
    name = f"{scenario.name}, {method}" if method else scenario.name
    for index, feature in enumerate(IRIS_FEATURES):
        for fraction in fractions:
            rng = np.random.default_rng(1000 + index * 10 + int(fraction * 100))
            hit = dict.fromkeys(labels, 0)
            other = dict.fromkeys(labels, 0)
            for _ in range(checks):
                frame = scenario.draw(rng, size)
                moved = round(fraction * size)
                frame.loc[size - moved:, feature] += 0.5 * float(scenario.std[feature])
                result = compute_drift(scenario.reference, window_of(model, classes, frame), base)
                for label in labels:
                    flags = decisions(result, VARIANTS[label])
                    hit[label] += flags[index]
                    other[label] += any(f for j, f in enumerate(flags) if j != index)
            for label in labels:
                print(f"  shift 0.5 sd | {name} | {feature} | {fraction:.0%} of {size} rows | {label}: "
                      f"flagged {hit[label] / checks:.0%}, another feature flagged {other[label] / checks:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", type=int, default=1000, help="stationary windows per window size")
    parser.add_argument("--shift-checks", type=int, default=200, help="windows per feature and shifted fraction")
    args = parser.parse_args()
    started = time.perf_counter()
    found, model, classes = scenarios()
    for scenario in found:
        large = scenario.reference.rows > 1000
        sizes = [500, 1000, 1500, 2000] if large else [500, 1000, 2000]
        stationary(scenario, model, classes, sizes, args.checks)
        if "demo traffic" in scenario.name:
            continue
        shifted(scenario, model, classes, [0.25, 0.5, 1.0], args.shift_checks,
                [DEFAULT] if large else [DEFAULT, "bonferroni, 0.01"])
        if large:  # the exporter's default window
            shifted(scenario, model, classes, [0.25, 0.5], args.shift_checks, [DEFAULT], size=2000)
        else:  # small references: Anderson-Darling (DRIFTWATCH_DRIFT_NUMERIC_METHOD=anderson) instead of KS
            stationary(scenario, model, classes, [1000, 2000], args.checks, method="anderson")
            shifted(scenario, model, classes, [0.5], args.shift_checks, [DEFAULT, "bonferroni, 0.01"],
                    method="anderson")
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
