import stat
from pathlib import Path

import pytest
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


def test_the_postgres_backend_runs_behind_a_tracking_server_started_before_the_services(tmp_path: Path) -> None:
    stack = Stack(StackSettings(home=tmp_path), backend="postgres", say=lambda _: None)
    assert stack.with_mlflow_server and stack.tracking_uri == "http://127.0.0.1:5000"
    assert stack.local_backend is None
    with pytest.raises(RuntimeError, match="not started"):
        stack.process_specs()
    sqlite = Stack(StackSettings(home=tmp_path), say=lambda _: None)
    assert sqlite.backend == "sqlite" and sqlite.webhook_store_env() == {}
