import json
import stat
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from driftwatch.stack import Stack, StackSettings


def make_stack(tmp_path: Path, **overrides: object) -> Stack:
    settings = StackSettings(home=tmp_path / "home", **overrides)  # type: ignore[arg-type]
    return Stack(settings, timing="demo", say=lambda _: None)


def test_tokens_are_generated_once_private_and_kept(tmp_path: Path) -> None:
    first = make_stack(tmp_path)
    token = first.webhook_token_file.read_text()
    assert len(token) >= 24
    assert stat.S_IMODE(first.webhook_token_file.stat().st_mode) == 0o600
    assert make_stack(tmp_path).webhook_token_file.read_text() == token
    assert first.admin_token_file.read_text() != token


def test_a_configured_token_is_used(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, webhook_token=SecretStr("s3cret-token"))
    assert stack.webhook_token_file.read_text() == "s3cret-token"


def test_services_start_in_dependency_order_on_loopback(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    names = [spec.name for spec in stack.process_specs()]
    assert names == ["slack-sink", "serving", "drift-exporter", "rollback-webhook", "quality", "alertmanager",
                     "prometheus"]
    for spec in stack.process_specs():
        assert spec.health_url is not None and spec.health_url.startswith("http://127.0.0.1:")
        assert spec.log.parent == stack.logs


def test_a_real_slack_url_replaces_the_local_sink(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, slack_webhook_url=SecretStr("https://hooks.example.invalid/T/B/X"))
    assert stack.urls.slack_sink is None
    assert "slack-sink" not in [spec.name for spec in stack.process_specs()]


def test_the_mlflow_server_is_optional_and_first(tmp_path: Path) -> None:
    stack = Stack(StackSettings(home=tmp_path), with_mlflow_server=True, say=lambda _: None)
    specs = stack.process_specs()
    assert specs[0].name == "mlflow"
    assert stack.tracking_uri == "http://127.0.0.1:5000"
    services = [s for s in specs if s.name in {"serving", "drift-exporter", "rollback-webhook"}]
    assert len(services) == 3
    assert all(s.env["MLFLOW_TRACKING_URI"] == stack.tracking_uri for s in services)


@pytest.mark.parametrize("timing", ["demo", "production"])
def test_demo_timing_polls_faster_than_production(tmp_path: Path, timing: str) -> None:
    stack = Stack(StackSettings(home=tmp_path), timing=timing, say=lambda _: None)  # type: ignore[arg-type]
    assert stack.poll_interval == (1.0 if timing == "demo" else 5.0)


def test_production_timing_takes_the_services_interval_variables(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWATCH_POLL_INTERVAL_SECONDS", "2.5")
    monkeypatch.setenv("DRIFTWATCH_DRIFT_INTERVAL_SECONDS", "7")
    stack = Stack(StackSettings(home=tmp_path), say=lambda _: None)
    env = {s.name: s.env for s in stack.process_specs()}
    assert env["drift-exporter"]["DRIFTWATCH_DRIFT_INTERVAL_SECONDS"] == "7.0"
    assert env["serving"]["DRIFTWATCH_POLL_INTERVAL_SECONDS"] == "2.5"
    demo = Stack(StackSettings(home=tmp_path), timing="demo", say=lambda _: None)
    assert (demo.poll_interval, demo.drift_interval) == (1.0, 5.0)  # the demo's own clock


def test_the_postgres_backend_runs_behind_a_tracking_server_started_before_the_services(tmp_path: Path) -> None:
    stack = Stack(StackSettings(home=tmp_path), backend="postgres", say=lambda _: None)
    assert stack.with_mlflow_server and stack.tracking_uri == "http://127.0.0.1:5000"
    assert stack.local_backend is None
    with pytest.raises(RuntimeError, match="not started"):
        stack.process_specs()
    sqlite = Stack(StackSettings(home=tmp_path), say=lambda _: None)
    assert sqlite.backend == "sqlite" and sqlite.webhook_store_env() == {}


def test_replicas_run_behind_nginx_and_everything_else_reaches_each_one(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, serving_port=18000, serving_replicas=3)
    specs = {spec.name: spec for spec in stack.process_specs()}
    names = list(specs)
    assert names[:5] == ["slack-sink", "serving-1", "serving-2", "serving-3", "load-balancer"]
    replicas = [specs[f"serving-{i}"] for i in (1, 2, 3)]
    assert [r.env["DRIFTWATCH_SERVING_PORT"] for r in replicas] == ["18001", "18002", "18003"]
    assert [r.env["DRIFTWATCH_SERVING_INSTANCE"] for r in replicas] == ["serving-1", "serving-2", "serving-3"]
    assert [r.log.name for r in replicas] == ["serving-1.log", "serving-2.log", "serving-3.log"]
    # clients use the balancer; the webhook reloads each replica directly
    assert stack.urls.serving == "http://127.0.0.1:18000"
    assert specs["load-balancer"].health_url == "http://127.0.0.1:18000/health"
    assert specs["rollback-webhook"].env["DRIFTWATCH_SERVING_URLS"] == (
        "http://127.0.0.1:18001,http://127.0.0.1:18002,http://127.0.0.1:18003")
    # the replicas start together, the rest one after the other
    groups = [[s.name for s in group] for group in stack._start_groups(stack.process_specs())]
    assert groups[1] == ["serving-1", "serving-2", "serving-3"]
    assert all(len(group) == 1 for i, group in enumerate(groups) if i != 1)


def test_prometheus_discovers_each_replica_from_the_file_up_writes(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, serving_port=18000, serving_replicas=2)
    path = stack.write_serving_targets()
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:18001"], "labels": {"replica": "1"}},
        {"targets": ["127.0.0.1:18002"], "labels": {"replica": "2"}},
    ]
    rendered = stack.render_monitoring()
    config = yaml.safe_load((rendered / "prometheus.yml").read_text())
    serving = next(job for job in config["scrape_configs"] if job["job_name"] == "serving")
    assert serving["file_sd_configs"][0]["files"] == [str(path)]


def test_without_replicas_one_serving_process_is_discovered_from_the_same_file(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, serving_port=18000)
    assert "load-balancer" not in [s.name for s in stack.process_specs()]
    assert stack.urls.serving_replicas == []
    assert json.loads(stack.write_serving_targets().read_text()) == [{"targets": ["127.0.0.1:18000"]}]


def test_replica_ports_can_be_chosen_and_are_checked(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, serving_port=18000, serving_replicas=2, serving_replica_ports="19001, 19005")
    assert stack.urls.serving_replicas == ["http://127.0.0.1:19001", "http://127.0.0.1:19005"]
    with pytest.raises(ValueError, match="names 1 ports for 2 replicas"):
        make_stack(tmp_path, serving_replicas=2, serving_replica_ports="19001")
    with pytest.raises(ValueError, match="its own port"):
        make_stack(tmp_path, serving_port=18000, serving_replicas=2, serving_replica_ports="18000,19001")
