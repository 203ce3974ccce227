"""A whole check (pure): per-feature verdicts, dataset share, prediction drift, minimum window, and
the same method and value as Evidently's DataDriftPreset on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drift_exporter.check import compute_drift
from drift_exporter.decisions import DriftPolicy
from drift_exporter.reference import prepare_reference
from drift_exporter.window import Window
from model_registry.reference import REFERENCE_FORMAT, ReferenceData
from tests.unit.drift_exporter.evidently_oracle import evidently_values

CLASSES = ["setosa", "versicolor", "virginica"]
EVIDENTLY_METHODS = {"K-S p_value": "ks", "Wasserstein distance (normed)": "wasserstein",
                     "Jensen-Shannon distance": "jensenshannon", "chi-square p_value": "chisquare_gof",
                     "Z-test p_value": "z", "PSI": "psi"}


def reference_data(features: pd.DataFrame, classes: list[str], types: dict[str, str] | None = None) -> ReferenceData:
    types = types or {c: "numeric" for c in features}
    predictions = pd.DataFrame({"class_id": [CLASSES.index(c) for c in classes], "class_name": classes,
                                "probability": 0.9})
    metadata = {"format": REFERENCE_FORMAT, "model_name": "m", "feature_names": list(features.columns),
                "feature_types": types, "class_names": CLASSES, "rows": len(features), "created_at": "2026-01-01"}
    return ReferenceData(features=features, predictions=predictions, metadata=metadata)


def window_of(frame: pd.DataFrame, classes: list[str], versions: list[str], numeric: set[str]) -> Window:
    return Window(rows=len(frame),
                  numeric={c: frame[c].to_numpy(dtype=float) for c in frame if c in numeric},
                  categorical={c: [None if pd.isna(v) else str(v) for v in frame[c]] for c in frame if c not in numeric},
                  prediction_classes=list(classes), prediction_versions=list(versions))


def gaussian(seed: int, rows: int, shift: dict[str, float] | None = None, columns: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"f{i}": rng.normal(0.0, 1.0, rows) for i in range(columns)})
    for name, amount in (shift or {}).items():
        frame[name] += amount
    return frame


def classes(seed: int, rows: int, p: list[float] | None = None) -> list[str]:
    return list(np.random.default_rng(seed).choice(CLASSES, rows, p=p or [1 / 3] * 3))


@pytest.fixture
def small_reference():
    ref = gaussian(0, 300)
    return prepare_reference(reference_data(ref, classes(0, 300)), model_name="m", version="7")


def test_one_shifted_feature_is_flagged_and_only_that_one(small_reference) -> None:
    frame = gaussian(1, 1000, shift={"f2": 0.5})
    result = compute_drift(small_reference, window_of(frame, classes(1, 1000), ["7"] * 1000, set(frame)),
                           DriftPolicy(min_window_rows=100))
    assert result.status == "ok"
    assert {f.feature: f.detected for f in result.features} == {"f0": False, "f1": False, "f2": True, "f3": False}
    assert all(f.method == "ks" for f in result.features)
    assert result.drift_share == 0.25 and result.dataset_drift is False
    shifted = result.feature("f2")
    assert shifted.adjusted_p_value == pytest.approx(min(1.0, shifted.p_values["ks"] * 4))
    assert set(shifted.scores) == {"ks", "wasserstein", "psi", "jensenshannon"}
    assert shifted.scores["wasserstein"] > result.feature("f0").scores["wasserstein"]


def test_anderson_darling_decides_when_configured_and_its_p_value_is_corrected_like_ks(small_reference) -> None:
    frame = gaussian(1, 1000, shift={"f2": 0.5})
    result = compute_drift(small_reference, window_of(frame, classes(1, 1000), ["7"] * 1000, set(frame)),
                           DriftPolicy(min_window_rows=100, numeric_method="anderson"))
    assert {f.feature: f.detected for f in result.features} == {"f0": False, "f1": False, "f2": True, "f3": False}
    assert all(f.method == "anderson" for f in result.features)
    shifted = result.feature("f2")
    assert set(shifted.p_values) == {"anderson"} and shifted.value == shifted.p_values["anderson"]
    assert shifted.adjusted_p_value == pytest.approx(min(1.0, shifted.p_values["anderson"] * 4))
    assert shifted.scores["anderson"] > result.feature("f0").scores["anderson"]


def test_half_the_features_drifting_is_dataset_drift(small_reference) -> None:
    frame = gaussian(2, 800, shift={"f0": 1.0, "f3": -1.0})
    result = compute_drift(small_reference, window_of(frame, classes(2, 800), ["7"] * 800, set(frame)),
                           DriftPolicy(min_window_rows=100))
    assert result.drift_share == 0.5 and result.dataset_drift is True


def test_below_the_minimum_window_no_verdict_is_given_but_the_rows_are(small_reference) -> None:
    frame = gaussian(3, 99, shift={"f0": 3.0})
    result = compute_drift(small_reference, window_of(frame, classes(3, 99), ["7"] * 99, set(frame)),
                           DriftPolicy(min_window_rows=100))
    assert result.status == "insufficient_window"
    assert result.window_rows == 99
    assert all(f.detected is None and not f.scores for f in result.features)
    assert result.drift_share is None and result.dataset_drift is None
    assert result.prediction.status == "insufficient_window" and result.prediction.detected is None


def test_prediction_drift_compares_the_production_versions_classes_with_its_reference_predictions(
        small_reference) -> None:
    frame = gaussian(4, 1200)
    skewed = classes(4, 600, p=[0.7, 0.2, 0.1])
    # 600 rows of the production version (skewed), 600 of another version (which must not count)
    window = window_of(frame, skewed + classes(5, 600), ["7"] * 600 + ["6"] * 600, set(frame))
    result = compute_drift(small_reference, window, DriftPolicy(min_window_rows=100))
    assert result.prediction.rows == 600
    assert result.prediction.method == "chisquare"
    assert result.prediction.detected is True
    assert result.prediction.window_shares["setosa"] == pytest.approx(skewed.count("setosa") / 600)
    steady = window_of(frame, classes(6, 1200), ["7"] * 1200, set(frame))
    assert compute_drift(small_reference, steady, DriftPolicy(min_window_rows=100)).prediction.detected is False


def test_a_feature_with_no_values_in_the_window_gets_no_verdict_and_its_missing_share_is_one(small_reference) -> None:
    frame = gaussian(7, 600)
    frame["f1"] = np.nan
    window = window_of(frame, classes(7, 600), ["7"] * 600, set(frame))
    del window.numeric["f3"]  # a feature the log does not carry at all
    result = compute_drift(small_reference, window, DriftPolicy(min_window_rows=100))
    for name in ("f1", "f3"):
        assert result.feature(name).status == "no_values"
        assert result.feature(name).missing_share == 1.0
        assert result.feature(name).detected is None
    assert result.drift_share == 0.0  # two features with a verdict, neither drifted


def test_categorical_features_report_unseen_and_missing_shares() -> None:
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"x": rng.normal(size=400), "color": rng.choice(["red", "green", "blue"], 400)})
    prepared = prepare_reference(reference_data(ref, classes(8, 400), {"x": "numeric", "color": "categorical"}),
                                 model_name="m", version="1")
    cur = pd.DataFrame({"x": rng.normal(size=500),
                        "color": list(rng.choice(["red", "green", "blue"], 400)) + ["violet"] * 50 + [None] * 50})
    result = compute_drift(prepared, window_of(cur, classes(9, 500), ["1"] * 500, {"x"}), DriftPolicy(min_window_rows=100))
    color = result.feature("color")
    assert color.kind == "categorical" and color.method == "chisquare"
    assert color.missing_share == pytest.approx(0.1)
    assert color.unseen_share == pytest.approx(50 / 450)
    assert color.detected is True  # 11 % of a category the reference never had
    assert set(color.scores) == {"chisquare", "psi", "jensenshannon"}


@pytest.mark.parametrize("reference_rows", [pytest.param(400, id="small-reference"),
                                            pytest.param(2500, id="large-reference")])
def test_methods_and_values_equal_evidentlys_data_drift_preset(reference_rows: int) -> None:
    rng = np.random.default_rng(reference_rows)
    ref = pd.DataFrame({"x": rng.normal(0, 1, reference_rows), "y": rng.exponential(2.0, reference_rows),
                        "few": rng.choice([1.0, 2.0, 3.0], reference_rows),
                        "color": rng.choice(["red", "green", "blue"], reference_rows),
                        "flag": rng.choice(["yes", "no"], reference_rows)})
    cur = pd.DataFrame({"x": rng.normal(0.2, 1, 700), "y": rng.exponential(2.2, 700),
                        "few": rng.choice([1.0, 2.0, 3.0, 4.0], 700),
                        "color": rng.choice(["red", "green", "blue", "violet"], 700, p=[0.4, 0.3, 0.2, 0.1]),
                        "flag": rng.choice(["yes", "no"], 700, p=[0.6, 0.4])})
    cur.loc[::25, "x"] = np.nan
    types = {"x": "numeric", "y": "numeric", "few": "numeric", "color": "categorical", "flag": "categorical"}
    prepared = prepare_reference(reference_data(ref, classes(1, reference_rows), types), model_name="m", version="1")
    window = window_of(cur, classes(2, 700), ["1"] * 700, {"x", "y", "few"})
    # Evidently's chi-square is goodness of fit; ours is homogeneity unless asked for Evidently's.
    result = compute_drift(prepared, window, DriftPolicy(min_window_rows=100, correction="none"))
    goodness = compute_drift(prepared, window, DriftPolicy(min_window_rows=100, chisquare="goodness_of_fit",
                                                           correction="none"))
    oracle = evidently_values(ref, cur, [(c, None) for c in ref.columns], numerical=["x", "y", "few"],
                              categorical=["color", "flag"])
    for column in ref.columns:
        evidently_method, evidently_value = oracle[(column, None)]
        expected = EVIDENTLY_METHODS[evidently_method]
        ours = result.feature(column)
        if expected == "chisquare_gof":
            assert ours.method == "chisquare"  # our default: homogeneity
            ours = goodness.feature(column)
        assert ours.method == expected, column
        assert ours.value == pytest.approx(evidently_value, abs=1e-6), column


# ---------------------------------------------------------------- edge cases as documented choices (issue #15)
def test_anderson_on_a_constant_feature_is_no_drift_and_the_other_features_are_still_checked() -> None:
    ref = gaussian(0, 300).assign(constant=1.0)
    reference = prepare_reference(reference_data(ref, classes(0, 300)), model_name="m", version="7")
    frame = gaussian(1, 1000, shift={"f2": 0.5}).assign(constant=1.0)
    result = compute_drift(reference, window_of(frame, classes(1, 1000), ["7"] * 1000, set(frame)),
                           DriftPolicy(min_window_rows=100, numeric_method="anderson"))
    assert result.status == "ok"
    constant = result.feature("constant")
    assert constant.method == "anderson" and constant.detected is False
    assert constant.p_values["anderson"] == 1.0 and constant.scores["anderson"] == 0.0
    assert result.feature("f2").detected is True
    # A constant reference whose window moved to another constant is drift (two values: scipy's test).
    moved = frame.assign(constant=2.0)
    again = compute_drift(reference, window_of(moved, classes(1, 1000), ["7"] * 1000, set(moved)),
                          DriftPolicy(min_window_rows=100, numeric_method="anderson"))
    assert again.feature("constant").detected is True


def test_anderson_uses_evidentlys_threshold_of_0_1_not_the_0_05_of_the_other_tests() -> None:
    from evidently.legacy.calculations.stattests.anderson_darling_stattest import anderson_darling_test

    policy = DriftPolicy()
    assert policy.threshold("anderson") == anderson_darling_test.default_threshold == 0.1
    assert policy.threshold("ks") == policy.threshold("chisquare") == 0.05
    assert DriftPolicy(anderson_threshold=0.2).threshold("anderson") == 0.2
    with pytest.raises(ValueError, match="Anderson-Darling threshold"):
        DriftPolicy(anderson_threshold=1.5)


def test_forced_chi_square_on_a_single_category_is_no_drift_like_evidently() -> None:
    ref = pd.DataFrame({"kind": ["a"] * 200})
    types = {"kind": "categorical"}
    reference = prepare_reference(reference_data(ref, classes(0, 200), types), model_name="m", version="7")
    frame = pd.DataFrame({"kind": ["a"] * 300})
    for chisquare in ("goodness_of_fit", "homogeneity"):
        policy = DriftPolicy(min_window_rows=100, categorical_method="chisquare", chisquare=chisquare)  # type: ignore[arg-type]
        item = compute_drift(reference, window_of(frame, classes(1, 300), ["7"] * 300, set()), policy).feature("kind")
        assert item.detected is False and item.value == 1.0, (chisquare, item)
    # Evidently's own chi-square: scipy's p is NaN there, and NaN < threshold is False: no drift.
    [(method, value)] = evidently_values(ref, frame, [("kind", "chisquare")], categorical=["kind"]).values()
    assert method == "chisquare" and np.isnan(value)


def test_a_model_that_predicts_one_class_has_no_prediction_drift_under_forced_chi_square() -> None:
    ref = gaussian(0, 300)
    reference = prepare_reference(reference_data(ref, ["setosa"] * 300), model_name="m", version="7")
    frame = gaussian(1, 500)
    for method in ("chisquare", "z"):
        policy = DriftPolicy(min_window_rows=100, categorical_method=method, chisquare="goodness_of_fit")  # type: ignore[arg-type]
        result = compute_drift(reference, window_of(frame, ["setosa"] * 500, ["7"] * 500, set(frame)), policy)
        assert result.prediction.detected is False and result.prediction.value == 1.0, method
    # It still fires when the one class changes.
    policy = DriftPolicy(min_window_rows=100, categorical_method="chisquare", chisquare="goodness_of_fit")
    other = compute_drift(reference, window_of(frame, ["virginica"] * 500, ["7"] * 500, set(frame)), policy)
    assert other.prediction.detected is True
