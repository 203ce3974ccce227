"""The Grafana dashboards, written as code and committed as JSON under monitoring/grafana/dashboards/.

``python -m monitoring.dashboards`` regenerates the JSON; a unit test fails when the committed
files differ from what this module builds. Panel ids are fixed here because alert annotations
link to them (``viewPanel=<id>``).

Queries use only contract metrics (docs/contract.md), the recording rules, ``up`` and ``ALERTS``;
``$__rate_interval`` for raw counters; the recorded ``...:rate5m`` series where a panel shows what
an alert sees. Every panel has a unit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parent / "grafana" / "dashboards"
DATASOURCE_UID = "driftwatch-prometheus"
DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
TAGS = ["driftwatch"]
JOBS = "serving|drift_exporter|rollback_webhook|quality|prometheus|alertmanager"
M = 'model_name=~"$model"'
MV = 'model_name=~"$model", model_version=~"$version"'
MVF = 'model_name=~"$model", model_version=~"$version", feature=~"$feature"'

# Thresholds shown on panels: the alert rules' numbers (monitoring/alerts/driftwatch.rules.yml).
ERROR_RATIO_SLA = 0.01
LATENCY_SLA_SECONDS = 0.15
DISTANCE_THRESHOLD = 0.1
MIN_WINDOW_ROWS = 300
STALE_SECONDS = 300
QUALITY_MARGIN = 0.05  # ModelQualityDegraded / ModelQualityEstimateDropped: points below the reference
MIN_LABELED = 200


# ---------------------------------------------------------------------- building blocks
def target(expr: str, legend: str = "", *, ref: str = "A", instant: bool = False,
           table: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto",
                         "range": not instant, "instant": instant, "editorMode": "code"}
    if table:
        t["format"] = "table"
    return t


def version_quantiles(metric: str, quantiles: tuple[str, ...]) -> list[dict[str, Any]]:
    """One target per quantile of the ``model_version:<metric>:<q>_5m`` recording rules, by version."""
    return [target(f"max by (model_version) (model_version:{metric}:{q}_5m{{{MV}}})",
                   f"{q} version {{{{model_version}}}}", ref=ref)
            for q, ref in zip(quantiles, "ABCDEFGH", strict=False)]


def thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in steps]}


def value_mappings(mapping: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"type": "value", "options": {str(value): {"text": text, "color": color, "index": i}
                                          for i, (value, (text, color)) in enumerate(sorted(mapping.items()))}}]


@dataclass
class Panel:
    kind: str
    title: str
    description: str
    targets: list[dict[str, Any]]
    unit: str
    width: int = 12
    height: int = 8
    threshold: list[tuple[str, float | None]] = field(default_factory=lambda: [("green", None)])
    line: bool = False  # draw the thresholds as lines on a time series
    mappings: list[dict[str, Any]] = field(default_factory=list)
    bars: bool = False
    text_mode: str = "auto"
    axis_label: str = ""
    transformations: list[dict[str, Any]] = field(default_factory=list)

    def model(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {"unit": self.unit, "thresholds": thresholds(*self.threshold),
                                    "mappings": self.mappings, "color": {"mode": "palette-classic"}}
        options: dict[str, Any]
        if self.kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "bars" if self.bars else "line", "lineWidth": 1, "fillOpacity": 10,
                "showPoints": "never", "spanNulls": False, "axisLabel": self.axis_label,
                "thresholdsStyle": {"mode": "line" if self.line else "off"},
            }
            options = {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                                  "calcs": ["lastNotNull", "max"]},
                       "tooltip": {"mode": "multi", "sort": "desc"}}
        elif self.kind == "stat":
            defaults["color"] = {"mode": "thresholds"}
            options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                       "colorMode": "value", "graphMode": "area", "justifyMode": "auto", "orientation": "auto",
                       "textMode": self.text_mode}
        elif self.kind == "state-timeline":
            defaults["color"] = {"mode": "thresholds"}
            defaults["custom"] = {"fillOpacity": 70, "lineWidth": 0}
            options = {"mergeValues": True, "showValue": "never", "alignValue": "left", "rowHeight": 0.9,
                       "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                       "tooltip": {"mode": "single", "sort": "none"}}
        elif self.kind == "table":
            options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
        else:
            raise ValueError(f"unknown panel type {self.kind}")
        return {
            "id": panel_id, "type": self.kind, "title": self.title, "description": self.description,
            "datasource": DS, "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "targets": self.targets, "fieldConfig": {"defaults": defaults, "overrides": []}, "options": options,
            "transformations": self.transformations,
        }


def datasource_variable() -> dict[str, Any]:
    return {"type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus",
            "current": {"selected": True, "text": "Prometheus", "value": DATASOURCE_UID},
            "hide": 0, "refresh": 1, "regex": "", "options": [], "skipUrlSync": False}


def query_variable(name: str, label: str, query: str, *, multi: bool) -> dict[str, Any]:
    return {"type": "query", "name": name, "label": label, "datasource": DS,
            "query": {"query": query, "refId": f"{name}-variable"}, "definition": query,
            "refresh": 2, "sort": 3 if name == "version" else 1, "includeAll": True, "multi": multi,
            "allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "hide": 0, "regex": "", "options": [], "skipUrlSync": False}


def rollback_annotation() -> dict[str, Any]:
    # A rollback's counter series is born at 1, which increase() misses: also mark new series.
    expr = (f'sum by (model_name, from_version, to_version, alertname) ('
            f'increase(model_rollbacks_total{{{M}}}[$__rate_interval]) > 0 '
            f'or (model_rollbacks_total{{{M}}} unless model_rollbacks_total{{{M}}} offset $__rate_interval))')
    return {"name": "Rollbacks", "datasource": DS, "enable": True, "hide": False, "iconColor": "red",
            "expr": expr, "step": "$__rate_interval", "titleFormat": "Rollback",
            "textFormat": "{{model_name}}: version {{from_version}} -> {{to_version}} after {{alertname}}",
            "tagKeys": "model_name,from_version,to_version"}


def builtin_annotation() -> dict[str, Any]:
    return {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}


def layout(panels: list[tuple[int, Panel]]) -> list[dict[str, Any]]:
    """Place panels left to right in rows 24 units wide, keeping each panel's fixed id."""
    placed: list[dict[str, Any]] = []
    x = y = row_height = 0
    for panel_id, panel in panels:
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        placed.append(panel.model(panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return placed


def dashboard(uid: str, title: str, description: str, variables: list[dict[str, Any]],
              panels: list[tuple[int, Panel]]) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description, "tags": TAGS, "timezone": "browser",
        "editable": False, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"}, "timepicker": {},
        "templating": {"list": variables},
        "annotations": {"list": [builtin_annotation(), rollback_annotation()]},
        "links": [{"type": "dashboards", "tags": TAGS, "title": "Driftwatch", "asDropdown": False,
                   "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "panels": layout(panels),
    }


VERSION_SERVED = Panel(
    "state-timeline", "Version served",
    "Which model version serving had loaded, over time (model_info). A change of colour is a promotion or a "
    "rollback; rollbacks are also marked as red annotations.",
    [target(f"max by (model_version) (model_info{{{M}}})", "version {{model_version}}")], "none", width=24,
    height=5, threshold=[("blue", None)], mappings=value_mappings({1: ("serving", "blue")}))

SERVING_VERSION_STAT = Panel(
    "stat", "Serving version", "The version serving has loaded now (model_info).",
    [target(f"max by (model_version) (model_info{{{M}}})", "version {{model_version}}", instant=True)],
    "none", width=6, height=4, threshold=[("blue", None)], text_mode="name")


# ---------------------------------------------------------------------- dashboards
def serving_dashboard() -> dict[str, Any]:
    ratio = (f"sum by (model_version) (model_version:model_prediction_errors:rate5m{{{MV}}})\n/\n"
             f"sum by (model_version) (model_version:model_prediction_requests:rate5m{{{MV}}})")
    panels: list[tuple[int, Panel]] = [
        (1, SERVING_VERSION_STAT),
        (2, Panel("stat", "Requests per second",
                  "Prediction requests answered or failed by the release (bad input excluded), last 5 minutes.",
                  [target(f"sum(model_version:model_prediction_requests:rate5m{{{MV}}})", "requests/s")],
                  "reqps", width=5, height=4)),
        (3, Panel("stat", "Error ratio (5m)",
                  "Inference and unavailable errors over requests, last 5 minutes. HighErrorRate pages above 1% "
                  "for 5 minutes (with at least 20 requests a minute).",
                  [target(f"sum(model_version:model_prediction_errors:rate5m{{{MV}}})\n/\n"
                          f"sum(model_version:model_prediction_requests:rate5m{{{MV}}})", "error ratio")],
                  "percentunit", width=5, height=4, threshold=[("green", None), ("red", ERROR_RATIO_SLA)])),
        (4, Panel("stat", "p95 latency (5m)",
                  "Slowest version's 95th percentile prediction latency, last 5 minutes. SLA: 150 ms.",
                  [target(f"max(model_version:model_prediction_duration_seconds:p95_5m{{{MV}}})", "p95")],
                  "s", width=5, height=4, threshold=[("green", None), ("red", LATENCY_SLA_SECONDS)])),
        (5, Panel("stat", "Model loaded",
                  "Whether every serving process has a model to answer with (model_loaded). ModelNotLoaded pages "
                  "after 2 minutes without one.",
                  [target(f"min(model_loaded{{{M}}})", "loaded")], "none", width=3, height=4,
                  threshold=[("red", None), ("green", 1)],
                  mappings=value_mappings({0: ("no model", "red"), 1: ("loaded", "green")}))),
        (11, VERSION_SERVED),
        (6, Panel("timeseries", "Requests per second by version",
                  "Answered plus failed prediction requests per version (recording rule "
                  "model_version:model_prediction_requests:rate5m).",
                  [target(f"sum by (model_version) (model_version:model_prediction_requests:rate5m{{{MV}}})",
                          "version {{model_version}}")], "reqps")),
        (7, Panel("timeseries", "Error ratio by version",
                  "What HighErrorRate sees: inference and unavailable errors over requests, per version, 5-minute "
                  "window. The line is the 1% SLA.",
                  [target(ratio, "version {{model_version}}")], "percentunit",
                  threshold=[("green", None), ("red", ERROR_RATIO_SLA)], line=True)),
        (8, Panel("timeseries", "Errors per second by reason",
                  "validation: bad input, answered 4xx (the client's fault). inference: the model raised (500). "
                  "unavailable: no model loaded (503, version \"none\").",
                  [target(f"sum by (model_version, reason) (rate(model_prediction_errors_total{{{MV}}}"
                          f"[$__rate_interval]))", "version {{model_version}} {{reason}}")], "reqps")),
        (9, Panel("timeseries", "Latency p50 / p95 / p99 by version",
                  "Prediction latency quantiles per version from the histogram, 5-minute window. HighLatency "
                  "pages when p95 stays above the 150 ms line for 5 minutes.",
                  version_quantiles("model_prediction_duration_seconds", ("p50", "p95", "p99")),
                  "s", threshold=[("green", None), ("red", LATENCY_SLA_SECONDS)], line=True)),
        (10, Panel("timeseries", "Predictions per second by class",
                   "A classifier's predicted classes per version (one per row of a request; labels outside the "
                   "model's classes count as 'other'). A shift here without a release is the world changing; "
                   "see the drift dashboard. A regressor has no class: see the predicted values beside.",
                   [target(f"sum by (model_version, predicted_class) (rate(model_predictions_total{{{MV}, "
                           f'predicted_class!=""}}[$__rate_interval]))',
                           "version {{model_version}} {{predicted_class}}")],
                   "short", axis_label="predictions per second")),
        (21, Panel("timeseries", "Regressors: predicted values p10 / p50 / p90 by version",
                   "A regressor's predicted values per version: 10th, 50th and 90th percentile over 5 minutes, "
                   "from the model_predicted_value histogram (buckets: quantiles of the version's own predictions "
                   "on its reference rows, so values are interpolated within them). Empty for classifiers. A "
                   "shift here without a release is the world changing; see prediction drift.",
                   version_quantiles("model_predicted_value", ("p10", "p50", "p90")),
                   "short", axis_label="predicted value")),
        (12, Panel("timeseries", "Model reloads",
                   "Attempts to load a new production version, by result. Failures keep the old version serving; "
                   "ModelReloadFailing warns when they go on for 5 minutes.",
                   [target(f"sum by (result) (increase(model_reloads_total{{{M}}}[$__rate_interval]))", "{{result}}")],
                   "short", bars=True, axis_label="reloads")),
        (13, Panel("timeseries", "HTTP requests by route and status",
                   "Every HTTP request serving answered, by route template and status code.",
                   [target('sum by (handler, status) (rate(http_requests_total{job="serving"}[$__rate_interval]))',
                           "{{handler}} {{status}}")], "reqps")),
        (14, Panel("timeseries", "HTTP p95 latency by route",
                   "95th percentile time to answer an HTTP request, by route template (includes validation and "
                   "serialisation, unlike the model latency above).",
                   [target('histogram_quantile(0.95, sum by (handler, le) '
                           '(rate(http_request_duration_seconds_bucket{job="serving"}[$__rate_interval])))',
                           "{{handler}}")], "s")),
        (15, Panel("timeseries", "Prediction log rows dropped",
                   "Prediction log rows serving answered but could not hand to the log writer (writer behind or "
                   "gone, row not encodable), per process. The drift exporter never sees them. "
                   "PredictionLogDropping warns when rows were dropped in the last 10 minutes, for 5 minutes. "
                   "'lost with a killed serving process': rows a serving process answered but had not handed to "
                   "its log writer when it died (kill -9), counted by the drift exporter from the seq gap the "
                   "writer reports.",
                   [target(f"sum by (instance) (increase(model_prediction_log_dropped_total{{{M}}}"
                           f"[$__rate_interval]))", "{{instance}}"),
                    target(f"sum by (model_name) (increase(model_prediction_log_lost_total{{{M}}}"
                           f"[$__rate_interval]))", "lost with a killed serving process", ref="B")],
                   "short", bars=True, axis_label="rows dropped")),
        (16, Panel("timeseries", "Registry poll errors",
                   "Failed checks of the production alias in the registry, per serving process. While they fail, "
                   "promotions and rollbacks do not reach serving. RegistryUnreachable warns when they go on for "
                   "10 minutes.",
                   [target(f"sum by (instance) (increase(model_registry_poll_errors_total{{{M}}}"
                           f"[$__rate_interval]))", "{{instance}}")],
                   "short", bars=True, axis_label="failed polls")),
        # Per replica: one series per serving process, to spot the one that differs.
        (17, Panel("table", "Version per replica",
                   "The version each serving process answers with now (model_info), and whether it has a model. "
                   "VersionSkew warns when replicas of one model serve different versions for 2 minutes.",
                   [target(f"max by (instance, model_version) (model_info{{{M}}})", instant=True, table=True)],
                   "none", width=6, height=8,
                   transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True},
                                                                   "renameByName": {"model_version": "version"}}}])),
        (18, Panel("timeseries", "Requests per second by replica",
                   "Prediction requests answered or failed by the release per serving process (recording rule "
                   "instance:model_prediction_requests:rate5m). Behind the load balancer they should be close.",
                   [target(f"instance:model_prediction_requests:rate5m{{{M}}}", "{{instance}}")], "reqps",
                   width=6)),
        (19, Panel("timeseries", "Error ratio by replica",
                   "Release errors over requests per serving process, 5-minute window. One replica far above the "
                   "others is a host problem, not a release problem (HighErrorRate sums over replicas).",
                   [target(f"instance:model_prediction_errors:ratio_rate5m{{{M}}}", "{{instance}}")],
                   "percentunit", width=6, threshold=[("green", None), ("red", ERROR_RATIO_SLA)], line=True)),
        (20, Panel("timeseries", "p95 latency by replica",
                   "95th percentile prediction latency per serving process, 5-minute window.",
                   [target(f"instance:model_prediction_duration_seconds:p95_5m{{{M}}}", "{{instance}}")], "s",
                   width=6, threshold=[("green", None), ("red", LATENCY_SLA_SECONDS)], line=True)),
    ]
    variables = [datasource_variable(),
                 query_variable("model", "Model", "label_values(model_predictions_total, model_name)", multi=False),
                 query_variable("version", "Version",
                                'label_values(model_predictions_total{model_name=~"$model"}, model_version)',
                                multi=True)]
    return dashboard("driftwatch-serving", "Driftwatch / Serving",
                     "Prediction traffic, errors and latency per model version; which version served when.",
                     variables, panels)


def drift_dashboard() -> dict[str, Any]:
    panels: list[tuple[int, Panel]] = [
        (1, Panel("stat", "Drift share", "Share of the features that drifted in the last check.",
                  [target(f"max(model_drift_share{{{MV}}})", "drift share")], "percentunit", width=6, height=4,
                  threshold=[("green", None), ("orange", 0.5)])),
        (2, Panel("stat", "Drifted features", "Features whose drift verdict is positive in the last check.",
                  [target(f"sum(model_feature_drift_detected{{{MV}}})", "drifted")], "short", width=6, height=4,
                  threshold=[("green", None), ("orange", 1)])),
        (3, Panel("stat", "Window rows",
                  f"Prediction rows in the last check's window. Drift alerts need at least {MIN_WINDOW_ROWS}.",
                  [target(f"max(model_drift_window_rows{{{MV}}})", "rows")], "short", width=6, height=4,
                  threshold=[("orange", None), ("green", MIN_WINDOW_ROWS)])),
        (4, Panel("stat", "Since last drift check",
                  "Time since the drift exporter last finished a check. DriftCheckStale warns after 5 minutes.",
                  [target(f"time() - max(model_drift_last_run_timestamp_seconds{{{M}}})", "age")], "s",
                  width=6, height=4, threshold=[("green", None), ("orange", STALE_SECONDS)])),
        (5, Panel("timeseries", "Drift score per feature",
                  "Drift score of each input feature against the production version's reference data; higher "
                  "means more drift. The line is the distance threshold (0.1) that decides for wasserstein, "
                  "jensenshannon and psi; ks and chi-square decide by p-value (see the verdicts below).",
                  [target(f"max by (feature, method) (model_feature_drift_score{{{MVF}}})",
                          "{{feature}} ({{method}})")],
                  "short", threshold=[("green", None), ("orange", DISTANCE_THRESHOLD)], line=True,
                  axis_label="drift score")),
        (6, Panel("state-timeline", "Drift verdict per feature",
                  "The exporter's verdict per feature (after multiple-testing correction). FeatureDrift warns when "
                  "a verdict holds for 10 minutes on a window of at least 300 rows.",
                  [target(f"max by (feature) (model_feature_drift_detected{{{MVF}}})", "{{feature}}")], "none",
                  threshold=[("green", None), ("red", 1)],
                  mappings=value_mappings({0: ("no drift", "green"), 1: ("drift", "red")}))),
        (7, Panel("timeseries", "Drift share over time", "Share of the features that drifted, per version.",
                  [target(f"max by (model_version) (model_drift_share{{{MV}}})", "version {{model_version}}")],
                  "percentunit", threshold=[("green", None), ("orange", 0.5)], line=True)),
        (8, Panel("timeseries", "Prediction drift",
                  "Drift of the predicted classes (a regressor: of its predicted values) against the version's "
                  "own predictions on its reference data. "
                  "PredictionDrift warns when the Jensen-Shannon distance stays at or above 0.1 for 10 minutes.",
                  [target(f"max by (model_version, method) (model_prediction_drift_score{{{MV}}})",
                          "version {{model_version}} {{method}}")], "short",
                  threshold=[("green", None), ("orange", DISTANCE_THRESHOLD)], line=True, axis_label="drift score")),
        (9, Panel("timeseries", "Window rows",
                  f"Rows in each check's window. Under {MIN_WINDOW_ROWS} no drift alert fires (small windows "
                  "flag drift by chance).",
                  [target(f"max by (model_version) (model_drift_window_rows{{{MV}}})", "version {{model_version}}")],
                  "short", threshold=[("orange", None), ("green", MIN_WINDOW_ROWS)], line=True)),
        (10, Panel("timeseries", "Time since last drift check",
                   "Seconds since the last successful check. Over 5 minutes for 5 minutes: DriftCheckStale.",
                   [target(f"time() - max by (model_name) (model_drift_last_run_timestamp_seconds{{{M}}})",
                           "{{model_name}}")], "s", threshold=[("green", None), ("orange", STALE_SECONDS)], line=True)),
        # The error series of a reason only exists after its first error: "none" (0) until then.
        (11, Panel("timeseries", "Drift check errors by reason",
                   "Drift checks that failed, by reason (registry_unavailable, registry, reference, window, "
                   "internal); registry_unavailable also counts checks that went on with the last known "
                   "production version. DriftCheckFailing warns when errors go on for 10 minutes while checks "
                   "still finish; when they stop finishing, DriftCheckStale does.",
                   [target(f"sum by (reason) (increase(model_drift_errors_total{{{M}}}[$__rate_interval]))\n"
                           'or on () label_replace(vector(0), "reason", "none", "", "")', "{{reason}}")],
                   "short", bars=True, axis_label="failed checks")),
        (12, Panel("timeseries", "Corrupt prediction log lines",
                   "Prediction log lines the drift exporter could not read as a prediction record (each counted "
                   "once); those predictions are missing from drift checks. PredictionLogCorrupt warns when "
                   "some were met in the last 10 minutes, for 5 minutes.",
                   [target(f"sum by (instance) (increase(model_drift_log_corrupt_lines_total{{{M}}}"
                           f"[$__rate_interval]))", "{{instance}}")],
                   "short", bars=True, axis_label="corrupt lines")),
    ]
    variables = [datasource_variable(),
                 query_variable("model", "Model", "label_values(model_drift_window_rows, model_name)", multi=False),
                 query_variable("version", "Version",
                                'label_values(model_drift_window_rows{model_name=~"$model"}, model_version)',
                                multi=True),
                 query_variable("feature", "Feature",
                                'label_values(model_feature_drift_score{model_name=~"$model"}, feature)', multi=True)]
    return dashboard("driftwatch-drift", "Driftwatch / Drift",
                     "Input and prediction drift of the production version against its reference data.",
                     variables, panels)


def overview_dashboard() -> dict[str, Any]:
    up = f'up{{job=~"{JOBS}"}}'
    panels: list[tuple[int, Panel]] = [
        (1, SERVING_VERSION_STAT),
        (2, Panel("stat", "Firing alerts", "Alerts firing now, all severities.",
                  [target('count(ALERTS{alertstate="firing"}) or vector(0)', "firing")], "short", width=6, height=4,
                  threshold=[("green", None), ("red", 1)])),
        (3, Panel("stat", "Rollbacks", "Automatic rollbacks since the rollback webhook started.",
                  [target(f"sum(model_rollbacks_total{{{M}}}) or vector(0)", "rollbacks")], "short", width=6,
                  height=4, threshold=[("green", None), ("orange", 1)])),
        (4, Panel("stat", "Targets down", "Driftwatch processes that do not answer Prometheus's scrapes.",
                  [target(f"count({up} == 0) or vector(0)", "down")], "short", width=6, height=4,
                  threshold=[("green", None), ("red", 1)])),
        (5, Panel("table", "Firing alerts",
                  "Every alert firing now, with the model version it is about. Each alert's runbook is linked "
                  "from its notification.",
                  [target('max by (alertname, severity, job, model_name, model_version) (ALERTS{alertstate="firing"})',
                          instant=True, table=True)], "none", width=24, height=6,
                  transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}])),
        (6, Panel("state-timeline", "Alerts over time", "When each alert fired, per model version.",
                  [target('max by (alertname, model_version) (ALERTS{alertstate="firing"})',
                          "{{alertname}} {{model_version}}")], "none", width=24, height=6,
                  threshold=[("red", None)], mappings=value_mappings({1: ("firing", "red")}))),
        (7, Panel("table", "Rollbacks",
                  "Rollbacks made by the webhook: from which version to which, after which alert, how many times.",
                  [target(f"max by (model_name, from_version, to_version, alertname) (model_rollbacks_total{{{M}}})",
                          instant=True, table=True)], "short",
                  transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                                  "renameByName": {"Value": "rollbacks"}}}])),
        (8, Panel("timeseries", "Rollback webhook decisions",
                  "What the webhook decided for each delivery: rolled_back, duplicate (same incident again), "
                  "declined (not production, no previous version, cooldown ...), resolved.",
                  [target("sum by (decision) (increase(rollback_webhook_decisions_total[$__rate_interval]))",
                          "{{decision}}")], "short", bars=True, axis_label="deliveries")),
        (9, Panel("state-timeline", "Targets up",
                  "Scrape health of every Driftwatch process. InstanceDown pages after 1 minute down.",
                  [target(up, "{{job}} {{instance}}")], "none", width=24, height=6,
                  threshold=[("red", None), ("green", 1)],
                  mappings=value_mappings({0: ("down", "red"), 1: ("up", "green")}))),
        (10, Panel("timeseries", "Error ratio by version",
                   "Release errors over requests per version, 5-minute window (what HighErrorRate sees).",
                   [target(f"sum by (model_version) (model_version:model_prediction_errors:rate5m{{{MV}}})\n/\n"
                           f"sum by (model_version) (model_version:model_prediction_requests:rate5m{{{MV}}})",
                           "version {{model_version}}")], "percentunit",
                   threshold=[("green", None), ("red", ERROR_RATIO_SLA)], line=True)),
        (11, Panel("timeseries", "p95 latency by version",
                   "95th percentile prediction latency per version, 5-minute window (what HighLatency sees).",
                   [target(f"max by (model_version) (model_version:model_prediction_duration_seconds:p95_5m{{{MV}}})",
                           "version {{model_version}}")], "s",
                   threshold=[("green", None), ("red", LATENCY_SLA_SECONDS)], line=True)),
        (12, VERSION_SERVED),
    ]
    variables = [datasource_variable(),
                 query_variable("model", "Model", "label_values(model_predictions_total, model_name)", multi=False),
                 query_variable("version", "Version",
                                'label_values(model_predictions_total{model_name=~"$model"}, model_version)',
                                multi=True)]
    return dashboard("driftwatch-overview", "Driftwatch / Alerts and rollbacks",
                     "What is firing, what was rolled back and why, and whether every process is up.",
                     variables, panels)


def quality_dashboard() -> dict[str, Any]:
    panels: list[tuple[int, Panel]] = [
        (1, Panel("timeseries", "Live accuracy against reference, per version",
                  "Accuracy over the newest labeled predictions (solid), the upper end of its Wilson interval, "
                  "the version's holdout accuracy at registration and the lower end of that one's interval. "
                  "ModelQualityDegraded rolls back when the upper end stays below the reference minus "
                  f"{QUALITY_MARGIN:.0%} (or below the reference's lower end, if lower) for 5 minutes, on at least "
                  f"{MIN_LABELED} labels.",
                  [target(f"max by (model_version) (model_quality_accuracy{{{MV}}})", "live v{{model_version}}"),
                   target(f"max by (model_version) (model_quality_accuracy_upper_bound{{{MV}}})",
                          "upper bound v{{model_version}}", ref="B"),
                   target(f"max by (model_version) (model_quality_reference_accuracy{{{MV}}})",
                          "reference v{{model_version}}", ref="C"),
                   target(f"max by (model_version) (model_quality_reference_accuracy_lower_bound{{{MV}}})",
                          "reference lower bound v{{model_version}}", ref="D")],
                  "percentunit", width=12, axis_label="accuracy")),
        (2, Panel("timeseries", "Macro F1 against reference",
                  "Macro-averaged F1 over the newest labeled predictions, and on the holdout at registration.",
                  [target(f"max by (model_version) (model_quality_f1_macro{{{MV}}})", "live v{{model_version}}"),
                   target(f"max by (model_version) (model_quality_reference_f1_macro{{{MV}}})",
                          "reference v{{model_version}}", ref="B")],
                  "percentunit", width=12, axis_label="macro F1")),
        (3, Panel("timeseries", "Recall per class",
                  "Recall of each actual class over the newest labeled predictions: which class a bad version "
                  "gets wrong.",
                  [target(f"max by (model_version, class) (model_quality_recall{{{MV}}})",
                          "v{{model_version}} {{class}}")], "percentunit", width=12)),
        (4, Panel("timeseries", "Estimated (CBPE) against realized accuracy",
                  "Accuracy estimated from the model's own probabilities, calibrated on its holdout, over its "
                  "newest predictions (no labels needed), next to the realized accuracy from labels. "
                  "ModelQualityEstimateDropped warns (never rolls back) when the estimate stays more than "
                  f"{QUALITY_MARGIN:.0%} below the reference for 15 minutes.",
                  [target(f"max by (model_version) (model_quality_estimated_accuracy{{{MV}}})",
                          "estimated v{{model_version}}"),
                   target(f"max by (model_version) (model_quality_accuracy{{{MV}}})", "realized v{{model_version}}",
                          ref="B")],
                  "percentunit", width=12, axis_label="accuracy")),
        (5, Panel("timeseries", "Estimate error",
                  "CBPE estimate minus realized accuracy on the same labeled predictions: how far off the "
                  "estimate is on this version.",
                  [target(f"max by (model_version) (model_quality_estimate_error{{{MV}}})", "v{{model_version}}")],
                  "percentunit", width=12)),
        (6, Panel("timeseries", "Labeled share and labels in the window",
                  "Share of a version's stored predictions that have a label, and the labeled predictions its "
                  f"live quality is computed on (no quality alert under {MIN_LABELED}).",
                  [target(f"max by (model_version) (model_quality_labeled_ratio{{{MV}}})",
                          "labeled share v{{model_version}}")], "percentunit", width=12)),
        (7, Panel("timeseries", "Label delay and time since last evaluation",
                  "Median time from a prediction to its label, per version; and seconds since the quality "
                  "service last finished an evaluation (QualityCheckStale after 5 minutes).",
                  [target(f"max by (model_version) (model_quality_label_delay_seconds{{{MV}}})",
                          "label delay v{{model_version}}"),
                   target(f"time() - max by (model_name) (model_quality_last_run_timestamp_seconds{{{M}}})",
                          "since last evaluation", ref="B")], "s", width=12,
                  threshold=[("green", None), ("orange", STALE_SECONDS)])),
        (8, Panel("timeseries", "Labels received",
                  "Labels sent to POST /feedback by result: joined (prediction known), pending (id not seen in "
                  "the prediction log yet), duplicate (the first label wins), invalid (request refused); and "
                  "labels the retention deleted without their prediction.",
                  [target(f"sum by (result) (increase(model_feedback_labels_total{{{M}}}[$__rate_interval]))",
                          "{{result}}"),
                   target(f"sum(increase(model_feedback_unmatched_total{{{M}}}[$__rate_interval]))",
                          "expired unmatched", ref="B")], "short", width=12, bars=True, axis_label="labels")),
        (9, Panel("table", "Confusion counts",
                  "Labeled predictions of the window by actual and predicted class, per version.",
                  [target(f"max by (model_version, actual_class, predicted_class) (model_quality_confusion{{{MV}}})",
                          instant=True, table=True)], "short", width=12,
                  transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                                  "renameByName": {"Value": "count"}}}])),
        (10, Panel("timeseries", "Regressors: MAE and RMSE against reference",
                   "For regressors: live MAE (with its lower bound, which ModelQualityDegraded compares with "
                   "1.25 times the reference MAE) and RMSE, next to the holdout values at registration.",
                   [target(f"max by (model_version) (model_quality_mae{{{MV}}})", "MAE v{{model_version}}"),
                    target(f"max by (model_version) (model_quality_mae_lower_bound{{{MV}}})",
                           "MAE lower bound v{{model_version}}", ref="B"),
                    target(f"max by (model_version) (model_quality_reference_mae{{{MV}}})",
                           "reference MAE v{{model_version}}", ref="C"),
                    target(f"max by (model_version) (model_quality_rmse{{{MV}}})", "RMSE v{{model_version}}",
                           ref="D")], "short", width=12)),
    ]
    variables = [datasource_variable(),
                 query_variable("model", "Model", "label_values(model_quality_window_labeled, model_name)",
                                multi=False),
                 query_variable("version", "Version",
                                'label_values(model_quality_window_labeled{model_name=~"$model"}, model_version)',
                                multi=True)]
    return dashboard("driftwatch-quality", "Driftwatch / Quality",
                     "Live quality per version from delayed labels, against the holdout at registration; the "
                     "estimate before labels (CBPE) against the realized accuracy; labeled share and label delay.",
                     variables, panels)


def build_dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard model."""
    return {"driftwatch-overview.json": overview_dashboard(), "driftwatch-serving.json": serving_dashboard(),
            "driftwatch-drift.json": drift_dashboard(), "driftwatch-quality.json": quality_dashboard()}


def dashboard_text(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def write_dashboards(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in build_dashboards().items():
        path = directory / name
        path.write_text(dashboard_text(model))
        written.append(path)
    return written


def main() -> None:
    for path in write_dashboards():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
