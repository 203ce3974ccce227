"""Settings: the token is required and must be safe; policy knobs build the policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from model_registry import RegistrySettings
from rollback_webhook.settings import WebhookSettings
from tests.unit.rollback_webhook.fakes import TOKEN


def make(tmp_path: Path, **values: object) -> WebhookSettings:
    return WebhookSettings(registry=RegistrySettings(home=tmp_path), **values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DRIFTWATCH_WEBHOOK_TOKEN", "DRIFTWATCH_WEBHOOK_TOKEN_FILE", "DRIFTWATCH_ADMIN_TOKEN",
                 "DRIFTWATCH_ADMIN_TOKEN_FILE", "DRIFTWATCH_SERVING_URLS", "DRIFTWATCH_SERVING_URLS_RESOLVE_ALL"):
        monkeypatch.delenv(name, raising=False)


def test_a_missing_token_fails_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="DRIFTWATCH_WEBHOOK_TOKEN"):
        make(tmp_path)


@pytest.mark.parametrize(("token", "message"), [
    pytest.param("short", "at least 16", id="too-short"),
    pytest.param("replace-me-with-a-long-random-token", "placeholder", id="env-example-placeholder"),
])
def test_unsafe_tokens_are_refused(tmp_path: Path, token: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make(tmp_path, token=token)


def test_token_from_a_file_loses_its_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert make(tmp_path, token_file=path).resolved_token() == TOKEN


def test_token_and_token_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    with pytest.raises(ValidationError, match="not both"):
        make(tmp_path, token=TOKEN, token_file=path)


def test_a_missing_token_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        make(tmp_path, token_file=tmp_path / "nope")


def test_environment_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = tmp_path / "admin"
    admin.write_text("admin-token-0123456789")
    monkeypatch.setenv("DRIFTWATCH_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv("DRIFTWATCH_WEBHOOK_PORT", "19102")
    monkeypatch.setenv("DRIFTWATCH_WEBHOOK_HOST", "0.0.0.0")
    monkeypatch.setenv("DRIFTWATCH_ADMIN_TOKEN_FILE", str(admin))
    monkeypatch.setenv("DRIFTWATCH_SERVING_URLS", "http://a:8000/, http://b:8000")
    monkeypatch.setenv("DRIFTWATCH_SERVING_URLS_RESOLVE_ALL", "true")
    monkeypatch.setenv("DRIFTWATCH_WEBHOOK_COOLDOWN_SECONDS", "60")
    monkeypatch.setenv("DRIFTWATCH_WEBHOOK_DRY_RUN", "true")
    monkeypatch.setenv("DRIFTWATCH_HOME", str(tmp_path / "home"))
    settings = WebhookSettings()
    assert (settings.host, settings.port) == ("0.0.0.0", 19102)
    assert settings.serving_url_list == ["http://a:8000", "http://b:8000"]
    assert settings.serving_urls_resolve_all is True
    assert settings.resolved_admin_token() == "admin-token-0123456789"
    assert settings.resolved_store_path == (tmp_path / "home" / "rollback-webhook" / "decisions.db").resolve()
    policy = settings.policy()
    assert (policy.cooldown_seconds, policy.dry_run) == (60, True)


def test_serving_urls_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not an http"):
        make(tmp_path, token=TOKEN, serving_urls="serving:8000")


def test_alert_lists_and_the_policy_file_build_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("alerts:\n  HighLatency: {action: rollback, cooldown_seconds: 60}\n")
    settings = make(tmp_path, token=TOKEN, rollback_alerts="HighErrorRate,HighLatency,CanaryErrors",
                    notify_alerts="FeatureDrift", policy_file=path)
    policy = settings.policy()
    assert policy.rule_for("CanaryErrors").action == "rollback"
    assert policy.rule_for("FeatureDrift").named and policy.rule_for("FeatureDrift").action == "notify"
    assert policy.rule_for("HighLatency").cooldown_seconds == 60


def test_an_alert_in_both_lists_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="both"):
        make(tmp_path, token=TOKEN, notify_alerts="HighLatency")


def test_a_broken_policy_file_fails_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("alerts:\n  X: {action: maybe}\n")
    with pytest.raises(ValidationError, match="policy file"):
        make(tmp_path, token=TOKEN, policy_file=path)
