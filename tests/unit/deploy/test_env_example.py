""".env.example: every setting compose needs, placeholders instead of secrets, and .env stays out of git."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.unit.deploy.deploy_files import ENV_EXAMPLE, REPO, Compose

SECRET_VARIABLES = {"DRIFTWATCH_WEBHOOK_TOKEN", "DRIFTWATCH_ADMIN_TOKEN", "GRAFANA_ADMIN_PASSWORD"}


def test_secret_variables_are_placeholders_not_real_values(env_example: dict[str, str]) -> None:
    for name in SECRET_VARIABLES:
        assert env_example[name].startswith("replace-me"), f"{name} must be a placeholder in .env.example"


def test_the_webhook_refuses_to_start_with_the_placeholder_token(env_example: dict[str, str]) -> None:
    from pydantic import ValidationError

    from rollback_webhook.settings import WebhookSettings

    with pytest.raises(ValidationError, match="placeholder"):
        WebhookSettings(token=env_example["DRIFTWATCH_WEBHOOK_TOKEN"])


def test_serving_refuses_the_placeholder_admin_token_like_the_webhook(env_example: dict[str, str],
                                                                     tmp_path: Path) -> None:
    from pydantic import ValidationError

    from rollback_webhook.settings import WebhookSettings
    from serving.settings import ServingSettings

    placeholder = env_example["DRIFTWATCH_ADMIN_TOKEN"]
    with pytest.raises(ValidationError, match="DRIFTWATCH_ADMIN_TOKEN is still the placeholder"):
        ServingSettings(admin_token=placeholder)
    with pytest.raises(ValidationError, match="DRIFTWATCH_ADMIN_TOKEN is still the placeholder"):
        WebhookSettings(token="t" * 32, admin_token=placeholder)
    secret_file = tmp_path / "admin-token"
    secret_file.write_text(placeholder + "\n")
    with pytest.raises(ValidationError, match="placeholder"):
        ServingSettings(admin_token_file=secret_file)


def test_the_slack_url_defaults_to_the_local_sink_not_a_real_workspace(env_example: dict[str, str],
                                                                       compose: Compose) -> None:
    url = env_example["DRIFTWATCH_SLACK_WEBHOOK_URL"]
    assert "hooks.slack.com" not in url
    host, port = re.match(r"http://([\w-]+):(\d+)/", url).groups()  # type: ignore[union-attr]
    assert host in compose.services
    assert port in compose.services[host]["expose"]


def test_every_compose_secret_and_setting_has_an_example(env_example: dict[str, str], compose: Compose) -> None:
    for secret in compose.raw["secrets"].values():
        assert secret["environment"] in env_example
    assert set(env_example) >= SECRET_VARIABLES


def test_no_value_in_env_example_looks_like_a_real_credential() -> None:
    text = ENV_EXAMPLE.read_text()
    patterns = [r"xox[abpr]-[0-9A-Za-z-]+", r"hooks\.slack\.com/services/T\w+", r"\b[0-9a-f]{32,}\b",
                r"AKIA[0-9A-Z]{16}", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"]
    for pattern in patterns:
        assert not re.search(pattern, text), pattern


@pytest.mark.parametrize("path", [".env", "deploy/.env", "admin.secret"])
def test_git_ignores_real_env_files_and_secrets(path: str) -> None:
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, timeout=30, check=False)
    assert result.returncode == 0, f"{path} is not ignored by git"


def test_git_does_not_ignore_the_example() -> None:
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", ".env.example"], cwd=REPO, timeout=30,
                            check=False)
    assert result.returncode == 1
