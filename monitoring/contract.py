"""The metric names of DESIGN.md's metrics contract: what dashboards and alert rules may read."""

from __future__ import annotations

from pathlib import Path

import yaml

# name -> type, exactly as DESIGN.md lists them.
CONTRACT_METRICS: dict[str, str] = {
    "model_predictions_total": "counter",
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
