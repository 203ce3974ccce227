"""The quality service's Prometheus metrics (names and labels: docs/contract.md).

Per-version series are replaced at every evaluation: a version that left the store, or a class no
longer in the window, loses its series instead of showing a stale value.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from driftwatch.http_metrics import HttpMetrics
from driftwatch.server_limits import ConnectionCloses

VERSION = ["model_name", "model_version"]
RUN_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class QualityMetrics:
    def __init__(self, registry: CollectorRegistry, model_name: str) -> None:
        # Connections closed by the server limits (driftwatch.server_limits), for uvicorn_options.
        self.connection_closes = ConnectionCloses(registry)
        # Requests by route and status, like every other service (driftwatch.http_metrics).
        self.http = HttpMetrics(registry)
        self.model_name = model_name
        def g(name: str, doc: str, labels: list[str] = VERSION) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.accuracy = g("model_quality_accuracy",
                          "Accuracy over the newest labeled predictions of a version (live, from feedback).")
        self.accuracy_lower_bound = g(
            "model_quality_accuracy_lower_bound",
            "Lower end of the Wilson interval of the live accuracy (one-sided confidence, default 0.99).")
        self.accuracy_upper_bound = g(
            "model_quality_accuracy_upper_bound",
            "Upper end of the Wilson interval of the live accuracy (one-sided confidence, default 0.99); "
            "ModelQualityDegraded fires when even this is below the reference accuracy minus the margin.")
        self.f1_macro = g("model_quality_f1_macro", "Macro-averaged F1 over the newest labeled predictions.")
        self.recall = g("model_quality_recall", "Recall of one actual class over the newest labeled predictions.",
                        [*VERSION, "class"])
        self.confusion = g("model_quality_confusion",
                           "Count of labeled predictions in the window by actual and predicted class.",
                           [*VERSION, "actual_class", "predicted_class"])
        self.mae = g("model_quality_mae", "Mean absolute error over the newest labeled predictions (regressors).")
        self.mae_lower_bound = g("model_quality_mae_lower_bound",
                                 "Lower confidence bound of the live MAE (regressors); ModelQualityDegraded "
                                 "fires when even this is above the reference MAE by the margin.")
        self.mae_upper_bound = g("model_quality_mae_upper_bound", "Upper confidence bound of the live MAE.")
        self.rmse = g("model_quality_rmse", "Root mean squared error over the newest labeled predictions (regressors).")
        self.window_labeled = g("model_quality_window_labeled",
                                "Labeled predictions the live quality of a version is computed on.")
        self.labeled_ratio = g("model_quality_labeled_ratio",
                               "Share of a version's stored predictions (within the retention) that have a label.")
        self.label_delay = g("model_quality_label_delay_seconds",
                             "Median time from prediction to label over the window.")
        self.reference_accuracy = g("model_quality_reference_accuracy",
                                    "Accuracy of the version on its holdout at registration.")
        self.reference_accuracy_lower_bound = g(
            "model_quality_reference_accuracy_lower_bound",
            "Lower end of the Wilson interval of the reference accuracy, from the holdout's size (same confidence); "
            "a small holdout measures its accuracy loosely, and ModelQualityDegraded never asks more of live "
            "accuracy than this.")
        self.reference_f1_macro = g("model_quality_reference_f1_macro",
                                    "Macro F1 of the version on its holdout at registration.")
        self.reference_mae = g("model_quality_reference_mae", "MAE of the version on its holdout at registration.")
        self.reference_rmse = g("model_quality_reference_rmse", "RMSE of the version on its holdout at registration.")
        self.estimated_accuracy = g(
            "model_quality_estimated_accuracy",
            "Accuracy estimated without labels (CBPE: the model's top-class probability, calibrated on its "
            "labeled holdout) over the newest predictions of a version.")
        self.estimate_rows = g("model_quality_estimate_window_rows", "Predictions the estimate covers.")
        self.estimate_error = g(
            "model_quality_estimate_error",
            "Estimated minus realized accuracy on the labeled window (how far off CBPE is on this version).")
        self.pending = Gauge("model_quality_pending_labels",
                             "Labels whose prediction id has not been seen in the prediction log (yet).",
                             ["model_name"], registry=registry)
        self.feedback = Counter(
            "model_feedback_labels_total",
            "Labels received by POST /feedback, by result: joined (its prediction is known), pending (unknown "
            "id: kept until its prediction is read or the retention ends), duplicate (first label wins), "
            "invalid (rejected, with the request).", ["model_name", "result"], registry=registry)
        self.unmatched = Counter("model_feedback_unmatched_total",
                                 "Labels deleted by the retention without ever meeting their prediction.",
                                 ["model_name"], registry=registry)
        self.logged = Counter("model_quality_log_rows_total", "Prediction log rows read into the quality store.",
                              ["model_name"], registry=registry)
        self.corrupt_lines = Counter("model_quality_log_corrupt_lines_total",
                                     "Prediction log lines the quality service could not read.",
                                     ["model_name"], registry=registry)
        self.runs = Counter("model_quality_runs_total", "Quality evaluations started.", ["model_name"],
                            registry=registry)
        self.errors = Counter("model_quality_errors_total", "Quality evaluations that failed, by reason.",
                              ["model_name", "reason"], registry=registry)
        self.last_run = Gauge("model_quality_last_run_timestamp_seconds",
                              "When the last quality evaluation finished without error.", ["model_name"],
                              registry=registry)
        self.run_duration = Histogram("model_quality_run_duration_seconds", "Duration of one quality evaluation.",
                                      ["model_name"], buckets=RUN_DURATION_BUCKETS, registry=registry)
        self.http_errors = Counter("model_quality_http_errors_total",
                                   "Answers of the quality service with a 5xx status, by path.",
                                   ["model_name", "path"], registry=registry)
        for result in ("joined", "pending", "duplicate", "invalid"):
            self.feedback.labels(model_name, result)
        for counter in (self.unmatched, self.logged, self.corrupt_lines, self.runs):
            counter.labels(model_name)
        self._per_version = [
            self.accuracy, self.accuracy_lower_bound, self.accuracy_upper_bound, self.f1_macro, self.recall,
            self.confusion, self.mae, self.mae_lower_bound, self.mae_upper_bound, self.rmse, self.window_labeled,
            self.labeled_ratio, self.label_delay, self.reference_accuracy, self.reference_accuracy_lower_bound,
            self.reference_f1_macro,
            self.reference_mae, self.reference_rmse, self.estimated_accuracy, self.estimate_rows,
            self.estimate_error]

    def clear_versions(self) -> None:
        for gauge in self._per_version:
            gauge.clear()

    @staticmethod
    def set(gauge: Gauge, value: float | None, *labels: str) -> None:
        """Set a series, or leave it out when there is no finite value."""
        if value is not None and math.isfinite(value):
            gauge.labels(*labels).set(value)
