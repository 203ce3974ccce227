"""monitoring.render: one stack's Prometheus and Alertmanager configuration from the committed sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitoring.durations import parse_duration
from monitoring.render import JOBS, RULE_FILES, RUNBOOKS, main, render_stack_config
from tests.unit.monitoring.conftest import Render, run


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def rules_by_name(rendered_rules: tuple[Path, ...]) -> dict[str, dict[str, Any]]:
    found = {}
    for path in rendered_rules:
        for group in load(path)["groups"]:
            for rule in group["rules"]:
                found[rule.get("alert") or rule["record"]] = rule
    return found


def all_text(directory: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(directory.rglob("*")) if p.is_file())


@pytest.mark.parametrize("timing", ["production", "demo"])
def test_rendered_configs_pass_promtool_and_amtool(render: Render, promtool: str, amtool: str, timing: str) -> None:
    rendered = render(timing=timing)
    checked = run(promtool, "check", "config", str(rendered.prometheus))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 rule files found" in checked.stdout
    checked = run(amtool, "check-config", str(rendered.alertmanager))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_targets_and_the_alertmanager_are_the_stacks(render: Render) -> None:
    targets = {job: [f"svc-{job}:1234"] for job in JOBS}
    targets["serving"] = ["a:8000", "b:8000"]
    rendered = render(targets=targets, alertmanager_url="https://am.internal:9443/alertmanager")
    config = load(rendered.prometheus)
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert jobs == targets
    assert config["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["am.internal:9443"]}],
                                                    "scheme": "https", "path_prefix": "/alertmanager"}]
    assert config["rule_files"] == ["rules/*.yml"]
    assert sorted(p.name for p in rendered.rules) == ["driftwatch.rules.yml", "recording.rules.yml"]
    assert all(p.parent == rendered.directory / "rules" for p in rendered.rules)


@pytest.mark.parametrize(("targets", "message"), [
    ({job: ["h:1"] for job in JOBS if job != "prometheus"}, "missing: \\['prometheus'\\]"),
    ({**{job: ["h:1"] for job in JOBS}, "grafana": ["h:1"]}, "unknown: \\['grafana'\\]"),
    ({**{job: ["h:1"] for job in JOBS}, "serving": ["http://h:1"]}, "must be host:port"),
    ({**{job: ["h:1"] for job in JOBS}, "serving": ["h"]}, "must be host:port"),
])
def test_targets_must_name_every_job_as_host_and_port(render: Render, targets: dict[str, list[str]],
                                                      message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(targets=targets)


def test_a_job_can_read_its_targets_from_a_service_discovery_file(render: Render, promtool: str,
                                                                   tmp_path: Path) -> None:
    targets = {job: ["h:1"] for job in JOBS if job != "serving"}
    sd_file = tmp_path / "targets" / "serving.json"
    rendered = render(targets=targets, file_sd={"serving": sd_file})
    jobs = {job["job_name"]: job for job in load(rendered.prometheus)["scrape_configs"]}
    assert "static_configs" not in jobs["serving"]
    assert jobs["serving"]["file_sd_configs"] == [{"files": [str(sd_file)], "refresh_interval": "1m"}]
    assert jobs["drift_exporter"]["static_configs"] == [{"targets": ["h:1"]}]
    checked = run(promtool, "check", "config", str(rendered.prometheus))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_job_has_fixed_targets_or_a_discovery_file_not_both(render: Render, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="more than one of fixed targets, a DNS name and a service-discovery file"):
        render(file_sd={"serving": tmp_path / "serving.json"})


def test_the_webhook_gets_its_url_and_token_file_and_never_the_token(render: Render, tmp_path: Path) -> None:
    token = tmp_path / "token-file"
    token.write_text("s3cr3t-token-value-never-rendered")
    rendered = render(webhook_url="http://hooks.internal:9102/alerts", webhook_token_file=token)
    receivers = {r["name"]: r for r in load(rendered.alertmanager)["receivers"]}
    hook = receivers["rollback-webhook"]["webhook_configs"][0]
    assert hook["url"] == "http://hooks.internal:9102/alerts"
    assert hook["http_config"]["authorization"] == {"type": "Bearer", "credentials_file": str(token)}
    assert hook["send_resolved"] is True
    assert "s3cr3t-token-value" not in all_text(rendered.directory)


def test_a_slack_url_file_is_referenced_on_every_slack_config_and_its_url_never_rendered(render: Render,
                                                                                        tmp_path: Path) -> None:
    slack = tmp_path / "slack-url"
    slack.write_text("https://hooks.slack.com/services/T000/B000/XXXXSECRET")
    rendered = render(slack_url_file=slack, slack_fallback_url=None)
    configs = [c for r in load(rendered.alertmanager)["receivers"] for c in r.get("slack_configs", [])]
    assert len(configs) == 4
    assert all(c["api_url_file"] == str(slack) and "api_url" not in c for c in configs)
    assert "XXXXSECRET" not in all_text(rendered.directory)


def test_the_local_slack_sink_is_a_plain_url(render: Render) -> None:
    rendered = render(slack_fallback_url="http://127.0.0.1:9199/services/local-sink")
    configs = [c for r in load(rendered.alertmanager)["receivers"] for c in r.get("slack_configs", [])]
    assert all(c["api_url"] == "http://127.0.0.1:9199/services/local-sink" and "api_url_file" not in c
               for c in configs)


def test_a_real_slack_url_is_refused_as_a_plain_url(render: Render) -> None:
    with pytest.raises(ValueError, match="secret: write it to a file"):
        render(slack_fallback_url="https://hooks.slack.com/services/T000/B000/XXXX")


def test_without_any_slack_destination_rendering_says_what_to_pass(render: Render) -> None:
    with pytest.raises(ValueError, match=r"slack_url_file .* or slack_fallback_url"):
        render(slack_url_file=None, slack_fallback_url=None)


def test_channels_can_be_chosen(render: Render) -> None:
    rendered = render(oncall_channel="#pager", ml_channel="#ml-models")
    receivers = {r["name"]: r for r in load(rendered.alertmanager)["receivers"]}
    assert [c["channel"] for c in receivers["slack-oncall"]["slack_configs"]] == ["#pager"]
    assert [c["channel"] for c in receivers["slack-ml"]["slack_configs"]] == ["#ml-models"]
    assert [c["channel"] for c in receivers["slack-rollbacks"]["slack_configs"]] == ["#pager", "#ml-models"]


def test_links_point_at_the_deployments_grafana_and_runbooks(render: Render) -> None:
    rendered = render(grafana_url="https://grafana.example.test/", runbook_url="https://docs.example.test/runbooks.html")
    alerts = {name: r for name, r in rules_by_name(rendered.rules).items() if "alert" in r}
    assert alerts
    for name, rule in alerts.items():
        assert rule["annotations"]["runbook_url"] == f"https://docs.example.test/runbooks.html#{name.lower()}"
        assert rule["annotations"]["dashboard_url"].startswith("https://grafana.example.test/d/driftwatch-")
    text = all_text(rendered.directory)
    assert "driftwatch.invalid" not in text and "127.0.0.1:3000" not in text


def test_the_default_runbook_is_this_checkouts_file(render: Render) -> None:
    rendered = render()
    rule = rules_by_name(rendered.rules)["HighErrorRate"]
    assert rule["annotations"]["runbook_url"] == RUNBOOKS.as_uri() + "#higherrorrate"
    assert RUNBOOKS.exists()


def test_production_rules_are_the_committed_rules_but_for_links(render: Render) -> None:
    rendered = rules_by_name(render().rules)
    committed = rules_by_name(RULE_FILES)
    assert rendered.keys() == committed.keys()
    for name, rule in committed.items():
        mine = dict(rendered[name])
        assert mine.pop("annotations", None) is not None or "annotations" not in rule
        assert mine == {k: v for k, v in rule.items() if k != "annotations"}, name


def test_demo_timing_shortens_every_duration_and_says_so(render: Render) -> None:
    production, demo = render(), render(timing="demo")
    prometheus = load(demo.prometheus)["global"]
    assert (prometheus["scrape_interval"], prometheus["evaluation_interval"]) == ("1s", "1s")
    rules = rules_by_name(demo.rules)
    assert rules["HighErrorRate"]["for"] == "10s"
    assert rules["FeatureDrift"]["for"] == "20s" and rules["FeatureDrift"]["keep_firing_for"] == "10s"
    assert "[10s]" in rules["model_version:model_prediction_errors:rate5m"]["expr"]
    assert "[5m]" not in "".join(r["expr"] for r in rules.values())
    assert rules["HighErrorRate"]["annotations"]["description"].endswith(
        "[demo timing: windows and waits are 30 times shorter than stated]")
    assert "timing" not in rules_by_name(production.rules)["HighErrorRate"]["annotations"]["description"]
    route = load(demo.alertmanager)["route"]
    assert (route["group_wait"], route["group_interval"]) == ("1s", "10s")
    for path in (demo.prometheus, demo.alertmanager, *demo.rules):
        assert "(timing: demo)" in path.read_text().splitlines()[0]


def test_in_the_demo_a_failing_release_reaches_the_webhook_within_fifteen_seconds(render: Render) -> None:
    # scrape + evaluation + for + the webhook route's group_wait: the rest of the ~30-40 s the demo
    # allows is serving's poll and the rollback itself.
    rendered = render(timing="demo")
    prometheus = load(rendered.prometheus)["global"]
    route = load(rendered.alertmanager)["route"]
    webhook_route = next(r for r in route["routes"] if r["receiver"] == "rollback-webhook")
    total = (parse_duration(prometheus["scrape_interval"]) + parse_duration(prometheus["evaluation_interval"])
             + parse_duration(rules_by_name(rendered.rules)["HighErrorRate"]["for"])
             + parse_duration(webhook_route["group_wait"]))
    assert total <= 15


DEMO_TEST = """
rule_files: [{rules}]
evaluation_interval: 1s
tests:
  - name: demo HighErrorRate
    interval: 1s
    input_series:
      - series: 'model_prediction_duration_seconds_count{{job="serving",instance="a",model_name="m",model_version="2"}}'
        values: '0+10x60'
      - series: 'model_prediction_errors_total{{job="serving",instance="a",model_name="m",model_version="2",reason="inference"}}'
        values: '0+10x60'
    alert_rule_test:
      - {{eval_time: 9s, alertname: HighErrorRate, exp_alerts: []}}
      - eval_time: 13s
        alertname: HighErrorRate
        exp_alerts:
          - exp_labels: {{severity: critical, rollback: "true", job: serving, model_name: m, model_version: "2"}}
            exp_annotations: {annotations}
  - name: demo FeatureDrift
    interval: 1s
    input_series:
      - series: 'model_feature_drift_score{{job="drift_exporter",instance="a",model_name="m",model_version="2",feature="f",method="ks"}}'
        values: '0.5x60'
      - series: 'model_feature_drift_detected{{job="drift_exporter",instance="a",model_name="m",model_version="2",feature="f"}}'
        values: '1x60'
      - series: 'model_drift_window_rows{{job="drift_exporter",instance="a",model_name="m",model_version="2"}}'
        values: '1000x60'
    alert_rule_test:
      - {{eval_time: 18s, alertname: FeatureDrift, exp_alerts: []}}
      - eval_time: 22s
        alertname: FeatureDrift
        exp_alerts:
          - exp_labels: {{severity: warning, job: drift_exporter, model_name: m, model_version: "2", feature: f}}
            exp_annotations: {drift_annotations}
"""


def test_promtool_sees_the_demo_rules_fire_on_the_short_clock(render: Render, promtool: str, tmp_path: Path) -> None:
    rendered = render(timing="demo", runbook_url="http://r/runbooks.md", grafana_url="http://g")
    rules = rules_by_name(rendered.rules)

    def flow(annotations: dict[str, str], substitutions: dict[str, str]) -> str:
        values = {}
        for key, value in annotations.items():
            for template, actual in substitutions.items():
                value = value.replace(template, actual)
            values[key] = value
        return yaml.safe_dump(values, default_flow_style=True, width=10000).strip()

    error_annotations = dict(rules["HighErrorRate"]["annotations"])
    error_annotations["description"] = error_annotations["description"].replace(
        "{{ $value | humanizePercentage }}", "50%")
    drift_annotations = dict(rules["FeatureDrift"]["annotations"])
    drift_annotations["description"] = drift_annotations["description"].replace(
        '{{ $value | printf "%.3f" }}', "0.500")
    labels = {"{{ $labels.model_name }}": "m", "{{ $labels.model_version }}": "2", "{{ $labels.feature }}": "f"}
    test = tmp_path / "demo.test.yml"
    test.write_text(DEMO_TEST.format(rules=", ".join(str(p) for p in rendered.rules),
                                     annotations=flow(error_annotations, labels),
                                     drift_annotations=flow(drift_annotations, labels)))
    result = run(promtool, "test", "rules", str(test))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendering_again_replaces_the_rule_files(render: Render) -> None:
    first = render()
    stale = first.directory / "rules" / "old.yml"
    stale.write_text("groups: []\n")
    render_stack_config(first.directory, targets={job: ["h:1"] for job in JOBS}, webhook_url="http://h:2/alerts",
                        webhook_token_file="/t", slack_url_file="/s", slack_fallback_url=None,
                        grafana_url="http://g", alertmanager_url="http://h:3")
    assert not stale.exists()
    assert sorted(p.name for p in (first.directory / "rules").iterdir()) == ["driftwatch.rules.yml",
                                                                             "recording.rules.yml"]


def test_a_job_gets_fixed_targets_or_a_dns_name_not_both(tmp_path: Path) -> None:
    common: dict[str, Any] = dict(webhook_url="http://h:2/alerts", webhook_token_file="/t", slack_url_file="/s",
                                  slack_fallback_url=None, grafana_url="http://g", alertmanager_url="http://h:3")
    with pytest.raises(ValueError, match="more than one of fixed targets, a DNS name and a service-discovery file"):
        render_stack_config(tmp_path, targets={job: ["h:1"] for job in JOBS}, dns_sd={"serving": ("s", 1)}, **common)
    with pytest.raises(ValueError, match="missing: \\['serving'\\]"):
        render_stack_config(tmp_path, targets={job: ["h:1"] for job in JOBS if job != "serving"}, **common)


def test_the_command_line_renders_the_compose_stack(tmp_path: Path, promtool: str, amtool: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    main([str(tmp_path / "compose"), "--preset", "compose", "--runbook-url", "https://docs.example.test/runbooks"])
    assert "wrote" in capsys.readouterr().out
    prometheus = load(tmp_path / "compose" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    # the serving replicas: every address of the compose service name, by DNS service discovery
    assert "static_configs" not in jobs["serving"]
    assert jobs["serving"]["dns_sd_configs"] == [{"names": ["serving"], "type": "A", "port": 8000,
                                                  "refresh_interval": "15s"}]
    assert jobs["rollback_webhook"]["static_configs"][0]["targets"] == ["rollback-webhook:9102"]
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    alertmanager = load(tmp_path / "compose" / "alertmanager.yml")
    receivers = {r["name"]: r for r in alertmanager["receivers"]}
    hook = receivers["rollback-webhook"]["webhook_configs"][0]
    assert hook["url"] == "http://rollback-webhook:9102/alerts"
    assert hook["http_config"]["authorization"]["credentials_file"] == "/run/secrets/webhook_token"
    assert receivers["slack-oncall"]["slack_configs"][0]["api_url_file"] == "/run/secrets/slack_webhook_url"
    assert run(promtool, "check", "config", str(tmp_path / "compose" / "prometheus.yml")).returncode == 0
    assert run(amtool, "check-config", str(tmp_path / "compose" / "alertmanager.yml")).returncode == 0


def test_the_compose_preset_needs_a_runbook_url_people_can_open(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path / "compose"), "--preset", "compose"])
    assert "--runbook-url is required" in capsys.readouterr().err
