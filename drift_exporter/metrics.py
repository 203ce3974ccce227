"""The exporter's Prometheus metrics, built on a registry passed in (never at import time).

Drift series carry the production version whose reference was used. Every publish replaces the
previous set of series: a series that the new result does not produce (the old version after a
switch, a method that no longer applies, a verdict below the minimum window) is removed, so
Prometheus never shows a stale verdict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from drift_exporter.check import DriftResult
from driftwatch.http_metrics import HttpMetrics
from driftwatch.server_limits import ConnectionCloses

RUN_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
Labels = tuple[str, ...]


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry, model_name: str) -> None:
        # Connections closed by the server limits (driftwatch.server_limits), for uvicorn_options.
        self.connection_closes = ConnectionCloses(registry)
        self.model_name = model_name
        self.http = HttpMetrics(registry)
        feature = ["model_name", "model_version", "feature"]
        version = ["model_name", "model_version"]
        self.feature_score = Gauge(
            "model_feature_drift_score",
            "Drift score of one input feature, window against the production version's reference; higher "
            "means more drift. method: ks (KS statistic), wasserstein (normed by the reference standard "
            "deviation), psi (reference quantile bins), jensenshannon, chisquare / z (Cramer's V).",
            [*feature, "method"], registry=registry)
        self.feature_p_value = Gauge(
            "model_feature_drift_p_value",
            "p-value of the statistical test that decides drift for this feature (before multiple-testing "
            "correction); only for features decided by a test (ks, chisquare, chisquare_gof, z).",
            [*feature, "method"], registry=registry)
        self.feature_detected = Gauge(
            "model_feature_drift_detected",
            "1 when this feature drifted in the last check (after multiple-testing correction), else 0. "
            "Absent while the window is below the minimum size.",
            feature, registry=registry)
        self.missing_share = Gauge(
            "model_feature_missing_share",
            "Share of window rows where this feature is missing or not a valid value.",
            feature, registry=registry)
        self.unseen_share = Gauge(
            "model_feature_unseen_share",
            "Share of this categorical feature's window values that are categories the reference never had.",
            feature, registry=registry)
        self.drift_share = Gauge(
            "model_drift_share",
            "Share of the features that drifted in the last check (0 to 1).",
            version, registry=registry)
        self.dataset_detected = Gauge(
            "model_dataset_drift_detected",
            "1 when at least the configured share of features drifted (the dataset-level verdict), else 0.",
            version, registry=registry)
        self.prediction_score = Gauge(
            "model_prediction_drift_score",
            "Drift of the predicted-class distribution of the production version in the window against its "
            "own predictions on the reference rows; higher means more drift.",
            [*version, "method"], registry=registry)
        self.prediction_p_value = Gauge(
            "model_prediction_drift_p_value",
            "p-value of the test behind the prediction drift verdict, when a test decides it.",
            [*version, "method"], registry=registry)
        self.prediction_detected = Gauge(
            "model_prediction_drift_detected",
            "1 when the predicted classes drifted in the last check, else 0.",
            version, registry=registry)
        self.prediction_rows = Gauge(
            "model_prediction_drift_window_rows",
            "Window rows predicted by the production version (the rows prediction drift uses).",
            version, registry=registry)
        self.window_rows = Gauge(
            "model_drift_window_rows",
            "Prediction rows in the window of the last check.",
            version, registry=registry)
        self.window_sufficient = Gauge(
            "model_drift_window_sufficient",
            "1 when the window had at least the minimum rows and verdicts were published, else 0.",
            version, registry=registry)
        self.reference_rows = Gauge(
            "model_drift_reference_rows",
            "Rows in the reference data of the production version.",
            version, registry=registry)
        self.last_run = Gauge(
            "model_drift_last_run_timestamp_seconds",
            "Unix time at which the last drift check finished without an error.",
            ["model_name"], registry=registry)
        self.run_duration = Histogram(
            "model_drift_run_duration_seconds",
            "Duration of one drift check: registry lookup, window read, statistics and publishing.",
            ["model_name"], buckets=RUN_DURATION_BUCKETS, registry=registry)
        self.runs = Counter(
            "model_drift_runs",
            "Drift checks started.",
            ["model_name"], registry=registry)
        self.errors = Counter(
            "model_drift_errors",
            "Drift checks that failed, by reason: registry_unavailable, registry, reference, window, internal.",
            ["model_name", "reason"], registry=registry)
        self.corrupt_lines = Counter(
            "model_drift_log_corrupt_lines",
            "Prediction log lines that could not be read as a prediction record (each counted once).",
            ["model_name"], registry=registry)
        self.lost_rows = Counter(
            "model_prediction_log_lost",
            "Prediction log rows serving acknowledged but never wrote, because it died (kill -9) before its "
            "log writer got them: the seq gap its writer's log_end line reports, or, when the writer died too, "
            "the gap between its counter file and the last seq written (each counted once).",
            ["model_name"], registry=registry)
        self._published: dict[Gauge, set[Labels]] = {}
        self.runs.labels(model_name)
        self.corrupt_lines.labels(model_name)
        self.lost_rows.labels(model_name)
        self.run_duration.labels(model_name)

    # ------------------------------------------------------------------ publishing
    def publish(self, result: DriftResult) -> None:
        """Replace every drift series with the ones of ``result``."""
        name, version = result.model_name, result.model_version
        values: dict[Gauge, dict[Labels, float]] = {gauge: {} for gauge in self._version_gauges()}
        base = (name, version)
        values[self.window_rows][base] = result.window_rows
        values[self.window_sufficient][base] = 1.0 if result.status == "ok" else 0.0
        values[self.reference_rows][base] = result.reference_rows
        for item in result.features:
            key = (*base, item.feature)
            values[self.missing_share][key] = item.missing_share
            if item.unseen_share is not None:
                values[self.unseen_share][key] = item.unseen_share
            if item.status != "ok":
                continue
            for method, score in item.scores.items():
                values[self.feature_score][(*key, method)] = score
            for method, p in item.p_values.items():
                values[self.feature_p_value][(*key, method)] = p
            if item.detected is not None:
                values[self.feature_detected][key] = 1.0 if item.detected else 0.0
        if result.drift_share is not None and result.dataset_drift is not None:
            values[self.drift_share][base] = result.drift_share
            values[self.dataset_detected][base] = 1.0 if result.dataset_drift else 0.0
        prediction = result.prediction
        values[self.prediction_rows][base] = prediction.rows
        if prediction.status == "ok" and result.status == "ok":
            for method, score in prediction.scores.items():
                values[self.prediction_score][(*base, method)] = score
            for method, p in prediction.p_values.items():
                values[self.prediction_p_value][(*base, method)] = p
            if prediction.detected is not None:
                values[self.prediction_detected][base] = 1.0 if prediction.detected else 0.0
        for gauge, series in values.items():
            self._replace(gauge, series)

    def clear(self) -> None:
        """Remove every drift series (no production version, or the exporter stops watching)."""
        for gauge in self._version_gauges():
            self._replace(gauge, {})

    def published_versions(self) -> set[str]:
        return {labels[1] for series in self._published.values() for labels in series}

    def mark_run(self, timestamp: float) -> None:
        self.last_run.labels(self.model_name).set(timestamp)

    def _version_gauges(self) -> Iterable[Gauge]:
        return (self.feature_score, self.feature_p_value, self.feature_detected, self.missing_share,
                self.unseen_share, self.drift_share, self.dataset_detected, self.prediction_score,
                self.prediction_p_value, self.prediction_detected, self.prediction_rows, self.window_rows,
                self.window_sufficient, self.reference_rows)

    def _replace(self, gauge: Gauge, series: dict[Labels, float]) -> None:
        old = self._published.get(gauge, set())
        for labels in old - set(series):
            gauge.remove(*labels)
        for labels, value in series.items():
            gauge.labels(*labels).set(value if math.isfinite(value) else float("nan"))
        self._published[gauge] = set(series)
