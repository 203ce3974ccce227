"""alertmanager.yml: amtool accepts it, every alert reaches the right receivers, secrets stay in files."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.unit.monitoring.conftest import Render, run
from tests.unit.monitoring.monitoring_files import MONITORING, alert_cases, alerts

CONFIG = MONITORING / "alertmanager" / "alertmanager.yml"

# Who gets each alert. Rollback alerts reach the webhook and on-call; drift only the ML channel.
EXPECTED_RECEIVERS = {
    "HighErrorRate": "rollback-webhook,slack-oncall",
    "HighLatency": "rollback-webhook,slack-oncall",
    "InstanceDown": "slack-oncall",
    "ModelNotLoaded": "slack-oncall",
    "AlertNotificationsFailing": "slack-oncall",
    "ModelReloadFailing": "slack-ml",
    "FeatureDrift": "slack-ml",
    "PredictionDrift": "slack-ml",
    "DriftCheckStale": "slack-ml",
    # data that drift detection relies on is lost, or serving cannot follow the registry: warnings
    "PredictionLogDropping": "slack-ml",
    "RegistryUnreachable": "slack-ml",
    "DriftCheckFailing": "slack-ml",
    "PredictionLogCorrupt": "slack-ml",
    "ModelRolledBack": "slack-rollbacks",
    # live quality from true labels blames the release; the estimate and a stale evaluation warn
    "ModelQualityDegraded": "rollback-webhook,slack-oncall",
    "ModelQualityEstimateDropped": "slack-ml",
    "QualityCheckStale": "slack-ml",
    # a warning, but the serving fleet is on-call's to fix
    "VersionSkew": "slack-oncall",
}


def config() -> dict[str, Any]:
    document = yaml.safe_load(CONFIG.read_text())
    assert isinstance(document, dict)
    return document


def receivers() -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in config()["receivers"]}


def routes_test(amtool: str, path: str, receivers: str, labels: dict[str, str]) -> tuple[int, str]:
    result = run(amtool, "config", "routes", "test", f"--config.file={path}", f"--verify.receivers={receivers}",
                 *(f"{k}={v}" for k, v in labels.items()))
    return result.returncode, result.stdout.strip()


def test_amtool_accepts_the_committed_config(amtool: str) -> None:
    result = run(amtool, "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 inhibit rules" in result.stdout and "4 receivers" in result.stdout


def test_every_alert_has_an_expected_route() -> None:
    assert set(alerts()) == set(EXPECTED_RECEIVERS)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED_RECEIVERS.items()))
def test_each_alert_reaches_its_receivers(amtool: str, name: str, expected: str) -> None:
    labels = {"alertname": name, **alerts()[name]["labels"], "model_name": "iris-classifier", "model_version": "3"}
    code, output = routes_test(amtool, str(CONFIG), expected, labels)
    assert code == 0 and output == expected, f"{name} went to {output}, expected {expected}"


@pytest.mark.parametrize(("labels", "expected"), [
    pytest.param({"alertname": "SomethingNew", "severity": "critical", "rollback": "true"},
                 "rollback-webhook,slack-oncall", id="any-rollback-alert-reaches-both-webhook-and-slack"),
    pytest.param({"alertname": "SomethingNew", "severity": "warning", "rollback": "true"},
                 "rollback-webhook,slack-ml", id="a-warning-rollback-alert-goes-to-the-ml-channel"),
    pytest.param({"alertname": "SomethingNew", "rollback": "false", "severity": "critical"}, "slack-oncall",
                 id="rollback-false-never-reaches-the-webhook"),
    pytest.param({"alertname": "SomethingNew"}, "slack-ml", id="no-severity-falls-back-to-the-ml-channel"),
])
def test_routing_follows_labels_not_names(amtool: str, labels: dict[str, str], expected: str) -> None:
    code, output = routes_test(amtool, str(CONFIG), expected, labels)
    assert code == 0 and output == expected


def test_a_wrong_expectation_fails_amtool(amtool: str) -> None:
    # guards the test above: --verify.receivers really fails on a mismatch
    code, _ = routes_test(amtool, str(CONFIG), "slack-ml", {"alertname": "HighErrorRate", "severity": "critical",
                                                            "rollback": "true"})
    assert code != 0


def test_the_rendered_demo_config_routes_the_same(amtool: str, render: Render) -> None:
    rendered = render(timing="demo")
    labels = {"alertname": "HighErrorRate", **alerts()["HighErrorRate"]["labels"]}
    code, output = routes_test(amtool, str(rendered.alertmanager), EXPECTED_RECEIVERS["HighErrorRate"], labels)
    assert code == 0, output


def test_notifications_are_grouped_by_alert_model_and_version() -> None:
    route = config()["route"]
    assert route["group_by"] == ["alertname", "model_name", "model_version"]
    assert all("group_by" not in child for child in route["routes"]), "children inherit the grouping"


def test_resolved_notifications_are_sent_except_for_rollback_news() -> None:
    found = receivers()
    for name in ("slack-oncall", "slack-ml"):
        assert all(c["send_resolved"] is True for c in found[name]["slack_configs"]), name
    assert all(c["send_resolved"] is False for c in found["slack-rollbacks"]["slack_configs"])
    assert found["rollback-webhook"]["webhook_configs"][0]["send_resolved"] is True


def test_secrets_are_only_referenced_by_file() -> None:
    for receiver in config()["receivers"]:
        for slack in receiver.get("slack_configs", []):
            assert "api_url" not in slack and slack["api_url_file"].startswith("/run/secrets/")
        for hook in receiver.get("webhook_configs", []):
            authorization = hook["http_config"]["authorization"]
            assert authorization["type"] == "Bearer" and "credentials" not in authorization
            assert authorization["credentials_file"].startswith("/run/secrets/")
    for path in MONITORING.rglob("*"):
        if path.is_file() and path.suffix in {".yml", ".yaml", ".json", ".py", ".tmpl"}:
            assert not re.search(r"hooks\.slack\.com/services/\w", path.read_text()), path


def test_slack_messages_name_model_version_values_and_link_runbook_dashboard_and_silence() -> None:
    slack = receivers()["slack-oncall"]["slack_configs"][0]
    text, title = slack["text"], slack["title"]
    assert ".GroupLabels.model_name" in title and ".GroupLabels.model_version" in title
    for needle in (".Labels.model_name", ".Labels.model_version", ".Annotations.description",
                   ".Annotations.runbook_url", ".Annotations.dashboard_url", "/#/silences/new?filter="):
        assert needle in text, needle
    assert {a["text"] for a in slack["actions"]} == {"Runbook", "Dashboard", "Silence"}
    assert slack["title_link"] == "{{ (index .Alerts 0).Annotations.dashboard_url }}"
    # every Slack receiver sends the same message (YAML merge of the first one)
    for receiver in ("slack-ml", "slack-rollbacks"):
        for other in receivers()[receiver]["slack_configs"]:
            assert other["text"] == text and other["actions"] == slack["actions"]


def test_a_down_target_holds_back_its_own_alerts_but_not_the_other_replicas() -> None:
    per_process, per_job = config()["inhibit_rules"]
    for rule in (per_process, per_job):
        assert rule["source_matchers"] == ['alertname="InstanceDown"']
    assert per_process["equal"] == ["job", "instance"]
    assert per_job["equal"] == ["job"]

    def names(rule: dict[str, Any]) -> set[str]:
        return set(re.fullmatch(r'alertname=~"(.*)"', rule["target_matchers"][0]).group(1).split("|"))  # type: ignore[union-attr]

    # while serving or the exporter is down, its counters go stale: no data-loss warnings on top
    assert {"ModelNotLoaded", "PredictionLogDropping", "RegistryUnreachable", "DriftCheckFailing",
            "PredictionLogCorrupt"} <= names(per_process)
    # verdicts of the one drift exporter and the one quality service
    assert names(per_job) == {"FeatureDrift", "PredictionDrift", "ModelQualityDegraded", "ModelQualityEstimateDropped",
                              "QualityCheckStale"}
    # release alerts sum over the replicas still up: one replica down must not stop a rollback
    inhibited = names(per_process) | names(per_job)
    assert not inhibited & {"HighErrorRate", "HighLatency", "InstanceDown", "ModelRolledBack", "VersionSkew"}
    # the links are labels, so every inhibited alert must fire with them
    cases = alert_cases()
    for rule in (per_process, per_job):
        for name in names(rule):
            for case in cases[name]:
                for expected in case.get("exp_alerts") or []:
                    missing = set(rule["equal"]) - expected["exp_labels"].keys()
                    assert not missing, f"{name} fires without {missing}"
