"""Settings: the environment names other parts rely on, defaults under DRIFTWATCH_HOME, unsafe values refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from serving.settings import ServingSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_") or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DRIFTWATCH_HOME", str(tmp_path / "home"))


def test_environment_names_are_the_ones_the_stack_sets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("a-token-from-a-file-1234\n")
    monkeypatch.setenv("DRIFTWATCH_SERVING_HOST", "0.0.0.0")
    monkeypatch.setenv("DRIFTWATCH_SERVING_PORT", "8123")
    monkeypatch.setenv("DRIFTWATCH_POLL_INTERVAL_SECONDS", "0.5")
    monkeypatch.setenv("DRIFTWATCH_PREDICTION_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("DRIFTWATCH_ADMIN_TOKEN_FILE", str(token))
    monkeypatch.setenv("DRIFTWATCH_MODEL_NAME", "churn")
    monkeypatch.setenv("DRIFTWATCH_REGISTRY_MODE", "stage")
    monkeypatch.setenv("DRIFTWATCH_METRICS_ENABLED", "false")
    settings = ServingSettings()
    assert (settings.host, settings.port, settings.poll_interval_seconds) == ("0.0.0.0", 8123, 0.5)
    assert settings.resolved_log_dir == (tmp_path / "logs").resolve()
    assert settings.resolved_admin_token() == "a-token-from-a-file-1234"
    assert settings.registry.model_name == "churn" and settings.production_uri == "models:/churn/Production"
    assert settings.production_label == "Production" and settings.metrics_enabled is False


def test_defaults_live_under_driftwatch_home(tmp_path: Path) -> None:
    settings = ServingSettings()
    home = (tmp_path / "home").resolve()
    assert settings.port == 8000 and settings.poll_interval_seconds == 5.0
    assert settings.resolved_log_dir == home / "predictions"
    assert settings.resolved_model_cache_dir == home / "model-cache"
    assert settings.production_uri == "models:/iris-classifier@production"
    assert settings.resolved_admin_token() is None
    assert settings.resolved_instance == f"{os.uname().nodename}-{os.getpid()}"


@pytest.mark.parametrize(("env", "words"), [
    pytest.param({"DRIFTWATCH_ADMIN_TOKEN": "short"}, "at least 16 characters", id="short-token"),
    pytest.param({"DRIFTWATCH_ADMIN_TOKEN": "x" * 20, "DRIFTWATCH_ADMIN_TOKEN_FILE": "/etc/hostname"}, "not both",
                 id="token-twice"),
    pytest.param({"DRIFTWATCH_ADMIN_TOKEN_FILE": "/nonexistent/token"}, "does not exist", id="missing-token-file"),
    pytest.param({"DRIFTWATCH_POLL_INTERVAL_SECONDS": "0"}, "greater than 0", id="zero-poll"),
    pytest.param({"DRIFTWATCH_MAX_BATCH": "0"}, "greater than or equal to 1", id="zero-batch"),
    pytest.param({"DRIFTWATCH_SERVING_INSTANCE": "../x"}, "plain name", id="instance-path"),
    pytest.param({"DRIFTWATCH_INFERENCE_BACKEND": "gpu"}, "auto", id="unknown-backend"),
])
def test_unsafe_values_are_refused_with_a_reason(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                 words: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=words):
        ServingSettings()
