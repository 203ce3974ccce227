"""Method choice, thresholds, multiple-testing control and the minimum window."""

from __future__ import annotations

import pytest

from drift_exporter.decisions import (
    DriftPolicy,
    choose_method,
    corrected_decisions,
    dataset_drift,
    default_method,
    is_drift,
    window_is_sufficient,
)


@pytest.mark.parametrize(
    ("kind", "rows", "distinct", "expected"),
    [
        pytest.param("numeric", 1000, 6, "ks", id="small-reference-numeric-is-ks"),
        pytest.param("numeric", 1000, 5, "chisquare", id="small-reference-five-values-is-chi-square"),
        pytest.param("numeric", 120, 2, "z", id="small-reference-binary-is-z"),
        pytest.param("categorical", 500, 3, "chisquare", id="small-reference-categorical-is-chi-square"),
        pytest.param("categorical", 500, 2, "z", id="small-reference-two-categories-is-z"),
        pytest.param("numeric", 1001, 6, "wasserstein", id="large-reference-numeric-is-wasserstein"),
        pytest.param("numeric", 5000, 5, "jensenshannon", id="large-reference-few-values-is-jensen-shannon"),
        pytest.param("categorical", 5000, 40, "jensenshannon", id="large-reference-categorical-is-jensen-shannon"),
    ],
)
def test_default_method_follows_evidentlys_rules(kind, rows: int, distinct: int, expected: str) -> None:
    assert default_method(kind, rows, distinct) == expected


def test_a_configured_method_overrides_the_rule_per_kind() -> None:
    policy = DriftPolicy(numeric_method="psi", categorical_method="chisquare_gof")
    assert choose_method("numeric", 100, 50, policy) == "psi"
    assert choose_method("categorical", 100, 3, policy) == "chisquare_gof"


def test_evidentlys_goodness_of_fit_chi_square_replaces_homogeneity_when_asked() -> None:
    assert choose_method("categorical", 100, 3, DriftPolicy()) == "chisquare"
    assert choose_method("categorical", 100, 3, DriftPolicy(chisquare="goodness_of_fit")) == "chisquare_gof"
    assert choose_method("numeric", 100, 4, DriftPolicy(chisquare="goodness_of_fit")) == "chisquare_gof"


def test_a_numeric_only_method_for_categorical_columns_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="works on numbers only"):
        DriftPolicy(categorical_method="ks")
    with pytest.raises(ValueError, match="works on numbers only"):
        DriftPolicy(categorical_method="anderson")
    assert choose_method("numeric", 100, 50, DriftPolicy(numeric_method="anderson")) == "anderson"


@pytest.mark.parametrize(
    ("method", "value", "expected"),
    [("ks", 0.05, True), ("ks", 0.0501, False), ("chisquare", 0.05, False), ("chisquare", 0.0499, True),
     ("z", 0.01, True), ("wasserstein", 0.1, True), ("wasserstein", 0.0999, False), ("jensenshannon", 0.2, True),
     ("psi", 0.05, False), ("anderson", 0.1, False), ("anderson", 0.0999, True)],  # Evidently: 0.1
)
def test_drift_comparisons_match_evidentlys_per_method(method, value: float, expected: bool) -> None:
    assert is_drift(method, value, DriftPolicy().threshold(method)) is expected


def test_bonferroni_spends_the_significance_level_across_the_tested_features_only() -> None:
    policy = DriftPolicy(correction="bonferroni")
    # Two tests and one distance: 0.03 passes raw but not after x2; the distance is unaffected.
    decisions, adjusted = corrected_decisions(["ks", "ks", "wasserstein"], [0.03, 0.001, 0.15], policy)
    assert decisions == [False, True, True]
    assert adjusted[0] == pytest.approx(0.06) and adjusted[1] == pytest.approx(0.002) and adjusted[2] is None
    none = DriftPolicy(correction="none")
    assert corrected_decisions(["ks", "ks"], [0.03, 0.001], none)[0] == [True, True]


def test_benjamini_hochberg_detects_more_than_bonferroni_when_several_features_drift() -> None:
    p_values = [0.001, 0.012, 0.02, 0.03, 0.5]
    methods = ["ks"] * 5
    bonferroni, _ = corrected_decisions(methods, p_values, DriftPolicy(correction="bonferroni"))
    bh, _ = corrected_decisions(methods, p_values, DriftPolicy(correction="bh"))
    assert sum(bonferroni) == 1
    assert sum(bh) == 4


def test_dataset_drift_is_reached_at_the_configured_share() -> None:
    policy = DriftPolicy(drift_share=0.5)
    assert dataset_drift([True, False, True, False], policy) == (0.5, True)
    assert dataset_drift([True, False, False], policy) == (pytest.approx(1 / 3), False)
    assert dataset_drift([], policy) == (0.0, False)


def test_no_verdict_below_the_minimum_window() -> None:
    policy = DriftPolicy(min_window_rows=500)
    assert not window_is_sufficient(499, policy)
    assert window_is_sufficient(500, policy)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"p_value_threshold": 1.5}, "between 0 and 1"), ({"distance_threshold": 0}, "positive"),
     ({"drift_share": 0}, "drift share"), ({"min_window_rows": 0}, "at least 1 row")],
)
def test_unsafe_policies_are_refused_with_a_sentence(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftPolicy(**kwargs)
