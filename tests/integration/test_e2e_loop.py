"""The whole loop with the real binaries: a bad release is undone once, drift reaches Slack, and every
Grafana dashboard query returns data from the live Prometheus."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from driftwatch.scenario import run_scenario, slack_texts
from driftwatch.stack import Stack, StackSettings
from tests.support.procs import free_port, require_binary

pytestmark = pytest.mark.integration


def test_a_bad_release_is_rolled_back_once_and_drift_reaches_slack(tmp_path: Path) -> None:
    for name in ("prometheus", "promtool", "prometheus-alertmanager", "amtool"):
        require_binary(name)
    settings = StackSettings(
        home=tmp_path / "home", serving_port=free_port(), drift_exporter_port=free_port(),
        webhook_port=free_port(), prometheus_port=free_port(), alertmanager_port=free_port(),
        slack_sink_port=free_port(),
    )
    stack = Stack(settings, timing="demo", say=lambda _: None)
    try:
        result = run_scenario(stack, drift=True)
        assert result.failure is None, result.report()
        assert result.ok, result.report()
        assert result.checks["exactly one rollback"]
        assert result.checks["Alertmanager saw HighErrorRate"]
        assert result.checks["FeatureDrift reached Slack"]
        assert result.recovery_seconds is not None and result.recovery_seconds < 90

        # The Slack message for the rollback alert names the bad version.
        texts = slack_texts(stack)
        assert any("HighErrorRate" in t and f"{result.bad_version}" in t for t in texts)

        # Drift gauges for the production version are in Prometheus.
        query = f'model_feature_drift_score{{model_version="{result.good_version}"}}'
        found = httpx.get(f"{stack.urls.prometheus}/api/v1/query", params={"query": query}).json()
        assert {s["metric"]["feature"] for s in found["data"]["result"]} >= {"petal_length", "petal_width"}

        # Every dashboard panel's query returns data from this live Prometheus.
        from monitoring.dashboards_check import queries_without_data

        empty = queries_without_data(stack.urls.prometheus)
        assert empty == [], f"dashboard queries with no data: {empty}"
    finally:
        stack.stop()
