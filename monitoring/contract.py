"""The metric names of docs/contract.md's metrics contract (and the few counters the services export beyond
it): what dashboards and alert rules may read."""

from __future__ import annotations

from pathlib import Path

import yaml

# name -> type, exactly as docs/contract.md lists them.
CORE_METRICS: dict[str, str] = {
    "model_predictions_total": "counter",
    "model_predicted_value": "histogram",
    "model_prediction_errors_total": "counter",
    "model_prediction_duration_seconds": "histogram",
    "http_requests_total": "counter",
    "http_request_duration_seconds": "histogram",
    "model_info": "gauge",
    "model_loaded": "gauge",
    "model_reloads_total": "counter",
    "model_feature_drift_score": "gauge",
    "model_feature_drift_detected": "gauge",
    "model_drift_share": "gauge",
    "model_prediction_drift_score": "gauge",
    "model_drift_window_rows": "gauge",
    "model_drift_last_run_timestamp_seconds": "gauge",
    "model_rollbacks_total": "counter",
    "rollback_webhook_decisions_total": "counter",
}

# Counters the services export beyond docs/contract.md's metrics table that alerts and dashboards read: lost
# prediction log rows and failed registry polls (serving/metrics.py), failed drift checks and
# unreadable prediction log lines and rows lost with a killed serving process (drift_exporter/metrics.py).
# Labels: model_name (+ reason).
DATA_LOSS_METRICS: dict[str, str] = {
    "model_prediction_log_dropped_total": "counter",
    "model_registry_poll_errors_total": "counter",
    "model_drift_errors_total": "counter",
    "model_drift_log_corrupt_lines_total": "counter",
    "model_prediction_log_lost_total": "counter",
}

# The quality service (quality/metrics.py; docs/quality.md): live quality per version from delayed
# labels, the reference quality next to it, the CBPE estimate, and the feedback it received.
QUALITY_METRICS: dict[str, str] = {
    "model_quality_accuracy": "gauge",
    "model_quality_accuracy_lower_bound": "gauge",
    "model_quality_accuracy_upper_bound": "gauge",
    "model_quality_f1_macro": "gauge",
    "model_quality_recall": "gauge",
    "model_quality_confusion": "gauge",
    "model_quality_mae": "gauge",
    "model_quality_mae_lower_bound": "gauge",
    "model_quality_mae_upper_bound": "gauge",
    "model_quality_rmse": "gauge",
    "model_quality_window_labeled": "gauge",
    "model_quality_labeled_ratio": "gauge",
    "model_quality_label_delay_seconds": "gauge",
    "model_quality_reference_accuracy": "gauge",
    "model_quality_reference_accuracy_lower_bound": "gauge",
    "model_quality_reference_f1_macro": "gauge",
    "model_quality_reference_mae": "gauge",
    "model_quality_reference_rmse": "gauge",
    "model_quality_estimated_accuracy": "gauge",
    "model_quality_estimate_window_rows": "gauge",
    "model_quality_estimate_error": "gauge",
    "model_quality_pending_labels": "gauge",
    "model_feedback_labels_total": "counter",
    "model_feedback_unmatched_total": "counter",
    "model_quality_log_rows_total": "counter",
    "model_quality_log_corrupt_lines_total": "counter",
    "model_quality_runs_total": "counter",
    "model_quality_errors_total": "counter",
    "model_quality_last_run_timestamp_seconds": "gauge",
    "model_quality_run_duration_seconds": "histogram",
    "model_quality_http_errors_total": "counter",
}

CONTRACT_METRICS: dict[str, str] = {**CORE_METRICS, **DATA_LOSS_METRICS, **QUALITY_METRICS}

# Series Prometheus makes itself: scrape health and the state of alerting rules.
BUILTIN_SERIES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})


def contract_series_names() -> frozenset[str]:
    """Every series name the contract's metrics expose (a histogram's _bucket, _sum and _count)."""
    names: set[str] = set()
    for name, kind in CONTRACT_METRICS.items():
        if kind == "histogram":
            names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
        else:
            names.add(name)
    return frozenset(names)


def recording_rule_names(*paths: Path) -> frozenset[str]:
    names: set[str] = set()
    for path in paths:
        document = yaml.safe_load(path.read_text()) or {}
        for group in document.get("groups") or []:
            for rule in group.get("rules") or []:
                if "record" in rule:
                    names.add(str(rule["record"]))
    return frozenset(names)
