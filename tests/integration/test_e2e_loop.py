"""The whole loop with the real binaries: a bad release is undone, drift reaches Slack, a silently
wrong release is caught by its delayed labels (ModelQualityDegraded) and undone while the good
version, under the same label delay and traffic, never is; and every Grafana dashboard query returns
data from the live Prometheus."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from driftwatch.scenario import run_scenario, slack_texts
from driftwatch.stack import Stack, StackSettings
from tests.support.procs import free_port, require_binary

pytestmark = pytest.mark.integration


def test_bad_releases_are_rolled_back_drift_reaches_slack_and_labels_catch_a_silently_wrong_one(
        tmp_path: Path) -> None:
    for name in ("prometheus", "promtool", "prometheus-alertmanager", "amtool"):
        require_binary(name)
    settings = StackSettings(
        home=tmp_path / "home", serving_port=free_port(), drift_exporter_port=free_port(),
        webhook_port=free_port(), quality_port=free_port(), prometheus_port=free_port(),
        alertmanager_port=free_port(), slack_sink_port=free_port(),
    )
    stack = Stack(settings, timing="demo", say=lambda _: None)
    try:
        result = run_scenario(stack, drift=True, quality=True)
        assert result.failure is None, result.report()
        assert result.ok, result.report()
        assert result.checks["exactly two rollbacks"]
        assert result.checks["the silently wrong version was caught by its labels and rolled back"]
        assert result.checks["ModelQualityDegraded never fired on the good version"]
        assert result.checks["ModelQualityDegraded reached Slack"]
        assert result.checks["Alertmanager saw HighErrorRate"]
        assert result.checks["FeatureDrift reached Slack"]
        assert result.recovery_seconds is not None and result.recovery_seconds < 90

        # The Slack message for the rollback alert names the bad version (its title says
        # "HighErrorRate | <model> version <n>"; a bare digit would match any timestamp).
        texts = slack_texts(stack)
        names_bad = re.compile(rf"HighErrorRate \| {re.escape(settings.model_name)} version {result.bad_version}\b")
        assert any(names_bad.search(t) for t in texts), texts

        # Drift gauges for the production version are in Prometheus.
        query = f'model_feature_drift_score{{model_version="{result.good_version}"}}'
        found = httpx.get(f"{stack.urls.prometheus}/api/v1/query", params={"query": query}).json()
        assert {s["metric"]["feature"] for s in found["data"]["result"]} >= {"petal_length", "petal_width"}

        # Every dashboard panel's query returns data from this live Prometheus.
        from monitoring.dashboards_check import queries_without_data

        # The regressor panels (MAE, RMSE; predicted-value quantiles) have nothing to show for a classifier. Right after the last
        # rollback the drift exporter's window of the good version is still refilling (prediction
        # drift needs its minimum of rows of that version): give it the time a few checks take.
        deadline = time.monotonic() + 60
        while True:
            empty = [line for line in queries_without_data(stack.urls.prometheus) if "Regressors:" not in line]
            if not empty or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert empty == [], f"dashboard queries with no data: {empty}"
    finally:
        stack.stop()
