"""One drift check: the window against the prepared reference, feature by feature, then the verdicts.

``compute_drift`` is pure (no I/O, no clock): the scheduler reads the window and passes it in, which
is also what the benchmark times.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from drift_exporter.decisions import (
    DriftPolicy,
    Kind,
    Method,
    choose_method,
    corrected_decisions,
    dataset_drift,
    is_drift,
    window_is_sufficient,
)
from drift_exporter.reference import PreparedReference
from drift_exporter.stats import (
    CategoricalReference,
    CategoryCounts,
    FloatArray,
    NumericReference,
    anderson_darling_test,
    chisquare_goodness_of_fit,
    chisquare_homogeneity,
    count_categories,
    cramers_v,
    distinct_count,
    evidently_shares,
    homogeneity_table,
    jensenshannon_distance,
    ks_statistic,
    ks_test,
    numeric_value_counts,
    psi,
    psi_quantile,
    wasserstein_normed,
    z_test,
)
from drift_exporter.window import Window

Status = Literal["ok", "insufficient_window", "no_values"]


@dataclass
class FeatureDrift:
    feature: str
    kind: Kind
    status: Status
    window_values: int  # non-missing window values the tests used
    missing_share: float  # of window rows
    reference_missing_share: float
    unseen_share: float | None = None  # categorical: window values of categories the reference lacks
    method: Method | None = None  # the method that decides
    value: float | None = None  # its value as Evidently reports it (p-value or distance)
    threshold: float | None = None
    adjusted_p_value: float | None = None
    detected: bool | None = None
    scores: dict[str, float] = field(default_factory=dict)  # higher = more drift, by method
    p_values: dict[str, float] = field(default_factory=dict)


@dataclass
class PredictionDrift:
    status: Status
    rows: int
    method: Method | None = None
    value: float | None = None
    threshold: float | None = None
    detected: bool | None = None
    scores: dict[str, float] = field(default_factory=dict)
    p_values: dict[str, float] = field(default_factory=dict)
    reference_shares: dict[str, float] = field(default_factory=dict)
    window_shares: dict[str, float] = field(default_factory=dict)


@dataclass
class DriftResult:
    model_name: str
    model_version: str
    status: Status
    window_rows: int
    reference_rows: int
    min_window_rows: int
    correction: str
    features: list[FeatureDrift]
    drift_share: float | None
    dataset_drift: bool | None
    prediction: PredictionDrift

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def feature(self, name: str) -> FeatureDrift:
        for item in self.features:
            if item.feature == name:
                return item
        raise KeyError(name)


def compute_drift(reference: PreparedReference, window: Window, policy: DriftPolicy) -> DriftResult:
    """Every feature's statistics and decision, the dataset verdict and prediction drift."""
    sufficient = window_is_sufficient(window.rows, policy)
    features: list[FeatureDrift] = []
    for name in reference.feature_names:
        if reference.kinds[name] == "numeric":
            values = window.numeric.get(name, np.full(window.rows, np.nan))
            features.append(_numeric_feature(name, reference.numeric[name], values, policy, sufficient))
        else:
            cats = window.categorical.get(name, [None] * window.rows)
            features.append(_categorical_feature(name, reference.categorical[name], cats, policy, sufficient))

    decided = [f for f in features if f.status == "ok"]
    decisions, adjusted = corrected_decisions([f.method for f in decided if f.method],
                                              [f.value for f in decided if f.value is not None], policy)
    for item, detected, adjusted_p in zip(decided, decisions, adjusted, strict=True):
        item.detected = detected
        item.adjusted_p_value = adjusted_p
    share: float | None = None
    verdict: bool | None = None
    if sufficient and decided:
        share, verdict = dataset_drift(decisions, policy)
    if reference.task == "regression" and reference.prediction_values is not None:
        prediction = _value_drift(reference.prediction_values, window.values_of(reference.version), policy)
    else:
        prediction = _prediction_drift(reference.predictions, window.classes_of(reference.version), policy)
    status: Status = "ok" if sufficient else "insufficient_window"
    return DriftResult(model_name=reference.model_name, model_version=reference.version, status=status,
                       window_rows=window.rows, reference_rows=reference.rows,
                       min_window_rows=policy.min_window_rows, correction=policy.correction,
                       features=features, drift_share=share, dataset_drift=verdict, prediction=prediction)


def _numeric_feature(name: str, ref: NumericReference, values: FloatArray, policy: DriftPolicy,
                     sufficient: bool) -> FeatureDrift:
    finite = values[np.isfinite(values)]
    rows = int(values.size)
    item = FeatureDrift(feature=name, kind="numeric", status="ok", window_values=int(finite.size),
                        missing_share=(rows - int(finite.size)) / rows if rows else 0.0,
                        reference_missing_share=ref.missing_share)
    if not sufficient:
        item.status = "insufficient_window"
        return item
    if finite.size == 0 or ref.rows == 0 or not window_is_sufficient(int(finite.size), policy):
        item.status = "no_values" if finite.size == 0 or ref.rows == 0 else "insufficient_window"
        return item
    current = np.sort(finite)
    method = choose_method("numeric", ref.rows, distinct_count(ref, current), policy)
    ref_shares, cur_shares = evidently_shares(ref, current)
    item.scores = {
        "ks": ks_statistic(ref.sorted_values, current),
        "wasserstein": wasserstein_normed(ref, current),
        "psi": psi_quantile(ref, current),
        "jensenshannon": jensenshannon_distance(ref_shares, cur_shares),
    }
    if method == "ks":
        statistic, p = ks_test(ref.sorted_values, current)
        item.scores["ks"] = statistic
        item.p_values["ks"] = p
        value = p
    elif method == "anderson":
        statistic, p = anderson_darling_test(ref.sorted_values, current)
        item.scores["anderson"] = statistic
        item.p_values["anderson"] = p
        value = p
    elif method in ("chisquare", "chisquare_gof", "z"):
        value = _table_test(method, numeric_value_counts(ref, current), None, item)
    else:
        value = item.scores[method]
    item.method, item.value, item.threshold = method, value, policy.threshold(method)
    return item


def _categorical_feature(name: str, ref: CategoricalReference, values: list[str | None], policy: DriftPolicy,
                         sufficient: bool) -> FeatureDrift:
    counts, missing = count_categories(ref, values)
    rows = len(values)
    present = rows - missing
    item = FeatureDrift(feature=name, kind="categorical", status="ok", window_values=present,
                        missing_share=missing / rows if rows else 0.0, reference_missing_share=ref.missing_share,
                        unseen_share=counts.unseen / present if present else 0.0)
    if not sufficient:
        item.status = "insufficient_window"
        return item
    if present == 0 or ref.rows == 0 or not window_is_sufficient(present, policy):
        item.status = "no_values" if present == 0 or ref.rows == 0 else "insufficient_window"
        return item
    method = choose_method("categorical", ref.rows, len(counts.keys), policy)
    ref_shares, cur_shares = counts.shares()
    item.scores = {"psi": psi(ref_shares, cur_shares), "jensenshannon": jensenshannon_distance(ref_shares, cur_shares)}
    if method in ("chisquare", "chisquare_gof", "z"):
        value = _table_test(method, counts, ref.kept, item)
    else:
        value = item.scores[method]
    if "chisquare" not in item.scores:
        table = homogeneity_table(counts, ref.kept)
        item.scores["chisquare"] = cramers_v(table, chisquare_homogeneity(table)[0])
    item.method, item.value, item.threshold = method, value, policy.threshold(method)
    return item


def _table_test(method: Method, counts: CategoryCounts, kept: tuple[str, ...] | None, item: FeatureDrift) -> float:
    """Chi-square (homogeneity), Evidently's chi-square (goodness of fit) or z-test on a category
    table; the score is Cramér's V of the reference-vs-window table in every case."""
    table = homogeneity_table(counts, kept)
    statistic, p_homogeneity = chisquare_homogeneity(table)
    item.scores[method] = cramers_v(table, statistic)
    if method == "chisquare":
        p = p_homogeneity
    elif method == "chisquare_gof":
        p = chisquare_goodness_of_fit(counts)[1]
    else:
        p = z_test(counts)
    item.p_values[method] = p
    return p


def _prediction_drift(ref: CategoricalReference, classes: list[str | None], policy: DriftPolicy) -> PredictionDrift:
    """The predicted classes of the production version in the window against its own predictions
    on the reference rows (a single test: no multiple-testing correction)."""
    counts, _missing = count_categories(ref, classes)
    rows = counts.current_rows
    ref_shares, cur_shares = counts.shares()
    result = PredictionDrift(status="ok", rows=rows,
                             reference_shares=dict(zip(counts.keys, ref_shares.tolist(), strict=True)),
                             window_shares=dict(zip(counts.keys, cur_shares.tolist(), strict=True)))
    if ref.rows == 0:
        result.status = "no_values"
        return result
    if not window_is_sufficient(rows, policy):
        result.status = "insufficient_window"
        return result
    holder = FeatureDrift(feature="prediction", kind="categorical", status="ok", window_values=rows,
                          missing_share=0.0, reference_missing_share=0.0)
    method = choose_method("categorical", ref.rows, len(counts.keys), policy)
    holder.scores = {"psi": psi(ref_shares, cur_shares),
                     "jensenshannon": jensenshannon_distance(ref_shares, cur_shares)}
    value = _table_test(method, counts, ref.kept, holder) if method in ("chisquare", "chisquare_gof", "z") \
        else holder.scores[method]
    if "chisquare" not in holder.scores:
        table = homogeneity_table(counts, ref.kept)
        holder.scores["chisquare"] = cramers_v(table, chisquare_homogeneity(table)[0])
    threshold = policy.threshold(method)
    result.method, result.value, result.threshold = method, value, threshold
    result.detected = is_drift(method, value, threshold)
    result.scores, result.p_values = holder.scores, holder.p_values
    return result


def _value_drift(ref: NumericReference, values: FloatArray, policy: DriftPolicy) -> PredictionDrift:
    """A regressor's predicted values in the window against its own predictions on the reference rows.
    Every numeric score is published; the verdict is the Jensen-Shannon distance (Evidently's binning)
    against the distance threshold, which is what the PredictionDrift alert reads for both kinds."""
    finite = values[np.isfinite(values)]
    result = PredictionDrift(status="ok", rows=int(values.size))
    if ref.rows == 0 or finite.size == 0:
        result.status = "no_values"
        return result
    if not window_is_sufficient(int(finite.size), policy):
        result.status = "insufficient_window"
        return result
    holder = _numeric_feature("prediction", ref, values, policy, True)
    if holder.status != "ok":
        result.status = holder.status
        return result
    value = holder.scores["jensenshannon"]
    threshold = policy.distance_threshold
    result.method, result.value, result.threshold = "jensenshannon", value, threshold
    result.detected = is_drift("jensenshannon", value, threshold)
    result.scores, result.p_values = holder.scores, holder.p_values
    return result
