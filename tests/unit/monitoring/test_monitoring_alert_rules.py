"""The committed alert and recording rules: promtool, their unit tests, and what every alert must carry."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from monitoring.contract import BUILTIN_SERIES, contract_series_names, recording_rule_names
from monitoring.dashboards_check import load_dashboards
from monitoring.promql import metric_names
from monitoring.render import DEFAULT_GRAFANA_URL, RULE_FILES, RUNBOOK_PLACEHOLDER, RUNBOOKS
from tests.unit.monitoring.conftest import run
from tests.unit.monitoring.monitoring_files import (
    ALERT_RULES,
    MONITORING,
    PROMTOOL_TESTS,
    RECORDING_RULES,
    alert_cases,
    alerts,
    recordings,
)

CONTRACT_ALERTS = {"HighErrorRate", "HighLatency", "InstanceDown", "ModelNotLoaded", "FeatureDrift", "PredictionDrift",
                 "DriftCheckStale", "ModelRolledBack"}
ROLLBACK_ALERTS = {"HighErrorRate", "HighLatency", "ModelQualityDegraded"}
# Alertmanager's own counter: the only series outside the contract an alert reads.
ALERTMANAGER_SERIES = {"alertmanager_notifications_failed_total"}


def test_promtool_accepts_the_rule_files(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(RECORDING_RULES), str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", PROMTOOL_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool: str, test_file: Path) -> None:
    result = run(promtool, "test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_of_the_design_exists() -> None:
    assert alerts().keys() >= CONTRACT_ALERTS


def test_every_alert_has_a_firing_and_a_silent_promtool_case() -> None:
    cases = alert_cases()
    for name in alerts():
        assert any(c.get("exp_alerts") for c in cases.get(name, [])), f"{name} is never tested firing"
        assert any(not c.get("exp_alerts") for c in cases.get(name, [])), f"{name} is never tested silent"


def test_firing_cases_check_every_annotation() -> None:
    for name, cases in alert_cases().items():
        for case in cases:
            for expected in case.get("exp_alerts") or []:
                annotations = set(expected.get("exp_annotations", {}))
                assert annotations == set(alerts()[name]["annotations"]), name


@pytest.mark.parametrize("name", sorted(CONTRACT_ALERTS - {"InstanceDown", "ModelNotLoaded", "DriftCheckStale"}))
def test_alerts_about_a_model_version_fire_with_its_name_and_version(name: str) -> None:
    for case in alert_cases()[name]:
        for expected in case.get("exp_alerts") or []:
            assert {"model_name", "model_version"} <= expected["exp_labels"].keys(), name


def test_every_alert_carries_severity_summary_description_runbook_and_dashboard() -> None:
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}, name
        assert "{{" not in annotations["summary"] and annotations["summary"].endswith("."), name
        assert "{{" in annotations["description"], f"{name}: the description should carry the values"


def test_only_the_alerts_that_blame_a_release_carry_rollback() -> None:
    labelled = {name for name, rule in alerts().items() if "rollback" in rule["labels"]}
    assert labelled == ROLLBACK_ALERTS
    assert all(alerts()[name]["labels"]["rollback"] == "true" for name in ROLLBACK_ALERTS)


def test_sla_thresholds_are_the_ones_users_asked_for() -> None:
    rules = alerts()
    assert "> 0.01" in rules["HighErrorRate"]["expr"] and rules["HighErrorRate"]["for"] == "5m"
    assert "> 0.15" in rules["HighLatency"]["expr"] and rules["HighLatency"]["for"] == "5m"
    assert rules["InstanceDown"]["for"] == "1m" and rules["InstanceDown"]["labels"]["severity"] == "critical"
    assert rules["FeatureDrift"]["for"] == "10m" and "model_drift_window_rows >= 300" in rules["FeatureDrift"]["expr"]


def runbook_sections() -> dict[str, str]:
    text = RUNBOOKS.read_text()
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_runbook_link_has_its_section_with_meaning_checks_and_undo() -> None:
    sections = runbook_sections()
    for name, rule in alerts().items():
        url = rule["annotations"]["runbook_url"]
        assert url == f"{RUNBOOK_PLACEHOLDER}#{name.lower()}", name
        assert name in sections, f"docs/runbooks.md has no section '## {name}'"
        body = sections[name]
        for heading in ("**What it means.**", "**What to check.**", "**How to undo by hand.**"):
            assert heading in body, f"{name}: runbook section lacks {heading}"


def test_every_dashboard_link_opens_an_existing_panel_with_existing_variables() -> None:
    dashboards = {model["uid"]: model for model in load_dashboards().values()}
    for name, rule in alerts().items():
        url = rule["annotations"]["dashboard_url"]
        assert url.startswith(DEFAULT_GRAFANA_URL + "/d/"), name
        # a Go template in the query (a conditional variable) is not part of the URL's structure
        parts = urlsplit(re.sub(r"\{\{ (with|end)[^}]*\}\}", "", url))
        uid = parts.path.split("/")[2]
        assert uid in dashboards, f"{name}: no dashboard {uid}"
        query = parse_qs(parts.query)
        panel_ids = {p["id"] for p in dashboards[uid]["panels"]}
        assert int(query["viewPanel"][0]) in panel_ids, f"{name}: dashboard {uid} has no panel {query['viewPanel']}"
        variables = {v["name"] for v in dashboards[uid]["templating"]["list"]}
        for key in query:
            if key.startswith("var-"):
                assert key[4:] in variables, f"{name}: {uid} has no variable {key[4:]}"


def test_rules_read_only_contract_metrics_recording_rules_and_builtin_series() -> None:
    allowed = contract_series_names() | recording_rule_names(*RULE_FILES) | BUILTIN_SERIES | ALERTMANAGER_SERIES
    for name, rule in {**alerts(), **recordings()}.items():
        unknown = metric_names(rule["expr"]) - allowed
        assert not unknown, f"{name} reads {unknown}"


def test_recording_rule_names_are_level_metric_operations_and_each_has_a_value_test() -> None:
    tested = (MONITORING / "prometheus" / "tests" / "recording.test.yml").read_text()
    for name in recordings():
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", name), name
        assert f"{name}," in tested or f"{name}{{" in tested or f"{name} " in tested, f"{name} has no value test"


def test_aggregations_in_recording_rules_keep_job_model_name_and_model_version() -> None:
    for name, rule in recordings().items():
        if name.startswith("model_version"):
            for grouping in re.findall(r"\bby \(([^)]*)\)", rule["expr"]):
                labels = {label.strip() for label in grouping.split(",")}
                assert {"job", "model_name", "model_version"} <= labels, name


# ---------------------------------------------------------------------- the tests catch mistakes
MUTATIONS = [
    pytest.param('{model_version!="none"} > 0.01', '{model_version!="none"} > 0.6', "HighErrorRate fires",
                 id="error-threshold-raised"),
    pytest.param("model_version:model_prediction_requests:rate5m >= 1/3\n        for: 5m\n        labels:\n"
                 "          severity: critical\n          rollback: \"true\"\n        annotations:\n"
                 "          summary: A model version fails",
                 "model_version:model_prediction_requests:rate5m >= 0\n        for: 5m\n        labels:\n"
                 "          severity: critical\n          rollback: \"true\"\n        annotations:\n"
                 "          summary: A model version fails",
                 "fewer than 20 requests", id="traffic-guard-dropped"),
    pytest.param("        for: 10m\n        keep_firing_for: 5m\n        labels:\n          severity: warning\n"
                 "        annotations:\n          summary: An input feature",
                 "        for: 1m\n        keep_firing_for: 5m\n        labels:\n          severity: warning\n"
                 "        annotations:\n          summary: An input feature",
                 "FeatureDrift fires for the drifted feature", id="drift-hold-shortened"),
    pytest.param("and on (job, model_name, model_version) (model_drift_window_rows >= 300)\n        for: 10m\n"
                 "        keep_firing_for: 5m\n        labels:\n          severity: warning\n        annotations:\n"
                 "          summary: An input",
                 "\n        for: 10m\n        keep_firing_for: 5m\n        labels:\n          severity: warning\n"
                 "        annotations:\n          summary: An input",
                 "under 300 rows", id="drift-window-minimum-dropped"),
    pytest.param("\n              or\n                (model_rollbacks_total unless model_rollbacks_total offset 15m),",
                 ",", "fires at once for a new rollback", id="new-rollback-series-missed"),
    pytest.param("increase(model_prediction_log_dropped_total[10m]) > 0",
                 "increase(model_prediction_log_dropped_total[10m]) > 5",
                 "PredictionLogDropping fires 5 minutes after rows are dropped", id="log-drop-threshold-raised"),
    pytest.param("increase(model_registry_poll_errors_total[5m]) > 0\n        for: 10m",
                 "increase(model_registry_poll_errors_total[5m]) > 0\n        for: 1m",
                 "RegistryUnreachable stays quiet for a short registry blip", id="registry-hold-shortened"),
    pytest.param("\n          and on (job, instance, model_name)\n"
                 "          time() - model_drift_last_run_timestamp_seconds <= 300", "",
                 "DriftCheckFailing stays quiet when checks stop finishing", id="drift-failing-duplicates-stale"),
    pytest.param("(model_version:model_info:replicas) > 1\n        for: 2m",
                 "(model_version:model_info:replicas) > 1\n        for: 15s",
                 "VersionSkew stays quiet while replicas switch", id="version-skew-hold-shortened"),
    pytest.param("count by (job, model_name) (model_version:model_info:replicas) > 1",
                 "count by (job) (model_version:model_info:replicas) > 1",
                 "VersionSkew does not count two models as skew", id="version-skew-across-models"),
]


@pytest.mark.parametrize(("original", "mutant", "failing_test"), MUTATIONS)
def test_the_promtool_tests_catch_a_broken_rule(promtool: str, tmp_path: Path, original: str, mutant: str,
                                                failing_test: str) -> None:
    copy = tmp_path / "monitoring"
    shutil.copytree(MONITORING / "alerts", copy / "alerts")
    shutil.copytree(MONITORING / "prometheus", copy / "prometheus")
    rules = copy / "alerts" / "driftwatch.rules.yml"
    text = rules.read_text()
    assert text.count(original) == 1, f"mutation source not found once: {original!r}"
    rules.write_text(text.replace(original, mutant))
    catching = [p for p in sorted((copy / "alerts" / "tests").glob("*.test.yml")) if failing_test in p.read_text()]
    assert catching, f"no promtool test is named like {failing_test!r}"
    result = run(promtool, "test", "rules", *map(str, catching))
    assert result.returncode != 0
    assert failing_test in result.stdout + result.stderr


def test_instance_down_watches_exactly_the_scrape_jobs_of_the_prometheus_config() -> None:
    """InstanceDown selects Driftwatch's jobs by name (a cluster Prometheus scrapes other teams' targets
    too); a job added to prometheus.yml must be added to its regex, or its outage would go unnoticed."""
    expr = alerts()["InstanceDown"]["expr"]
    match = re.fullmatch(r'\s*up\{job=~"([^"]+)"\}\s*==\s*0\s*', expr)
    assert match, f"InstanceDown should be up{{job=~\"...\"}} == 0, is {expr!r}"
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert set(match[1].split("|")) == jobs
