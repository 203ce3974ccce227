"""Settings of the rollback webhook. Only ``__main__`` reads the environment; tests pass values."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from driftwatch.redact import redact
from driftwatch.settings import WEBHOOK_PORT, WEBHOOK_PORT_ENV, ServiceSettings
from driftwatch.settings import env as _env
from rollback_webhook.policy import (
    DEFAULT_COOLDOWN_SECONDS,
    DEFAULT_MAX_ROLLBACKS,
    DEFAULT_MAX_ROLLBACKS_WINDOW_SECONDS,
    DEFAULT_ROLLBACK_ALERTS,
    DEFAULT_UNKNOWN_ALERTS,
    AlertPolicy,
    RollbackPolicy,
    load_alert_policies,
)
from rollback_webhook.store import DecisionStorePort, is_postgres, open_store


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class WebhookSettings(ServiceSettings):
    """Everything ``python -m rollback_webhook`` can be told (the shared part: ``driftwatch.settings``)."""

    SECRETS = (("DRIFTWATCH_WEBHOOK_TOKEN", "token", True), ("DRIFTWATCH_ADMIN_TOKEN", "admin_token", False))

    host: str = Field(default="127.0.0.1", validation_alias=_env("DRIFTWATCH_WEBHOOK_HOST", "host"))
    port: int = Field(default=WEBHOOK_PORT, ge=0, le=65535, validation_alias=_env(WEBHOOK_PORT_ENV, "port"))
    token: SecretStr | None = Field(default=None, validation_alias=_env("DRIFTWATCH_WEBHOOK_TOKEN", "token"))
    token_file: Path | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_WEBHOOK_TOKEN_FILE", "token_file"))
    admin_token: SecretStr | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_ADMIN_TOKEN", "admin_token"),
        description="Bearer token for serving's POST /admin/reload; without it serving follows on its poll.")
    admin_token_file: Path | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_ADMIN_TOKEN_FILE", "admin_token_file"))
    serving_urls: str = Field(
        default="", validation_alias=_env("DRIFTWATCH_SERVING_URLS", "serving_urls"),
        description="Comma-separated base URLs of serving instances told to reload after a rollback.")
    serving_urls_resolve_all: bool = Field(
        default=False, validation_alias=_env("DRIFTWATCH_SERVING_URLS_RESOLVE_ALL", "serving_urls_resolve_all"),
        description="Resolve each serving URL's host at every reload and call every address it has (one "
                    "name for all replicas: a Kubernetes headless Service, a compose service with replicas).")
    reload_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600,
        description="How long one serving instance may take to answer a reload (it loads the model first).",
        validation_alias=_env("DRIFTWATCH_WEBHOOK_RELOAD_TIMEOUT_SECONDS", "reload_timeout_seconds"))
    store_path: Path | str | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_WEBHOOK_STORE", "store_path"),
        description="Where decisions are kept: a SQLite file (default $DRIFTWATCH_HOME/rollback-webhook/"
                    "decisions.db), or a postgresql:// URI shared by webhook processes on several hosts.")
    store_password_file: Path | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_WEBHOOK_STORE_PASSWORD_FILE", "store_password_file"),
        description="File holding the PostgreSQL password, so the URI need not carry it.")
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, validation_alias=_env("DRIFTWATCH_WEBHOOK_MAX_BODY_BYTES", "max_body_bytes"))

    # The policy (see rollback_webhook/policy.py and docs/rollback_webhook.md).
    rollback_alerts: str = Field(
        default=",".join(DEFAULT_ROLLBACK_ALERTS),
        validation_alias=_env("DRIFTWATCH_WEBHOOK_ROLLBACK_ALERTS", "rollback_alerts"))
    notify_alerts: str = Field(
        default="", validation_alias=_env("DRIFTWATCH_WEBHOOK_NOTIFY_ALERTS", "notify_alerts"))
    unknown_alerts: Literal["notify", "rollback"] = Field(
        default=DEFAULT_UNKNOWN_ALERTS, validation_alias=_env("DRIFTWATCH_WEBHOOK_UNKNOWN_ALERTS", "unknown_alerts"))
    cooldown_seconds: float = Field(
        default=DEFAULT_COOLDOWN_SECONDS, ge=0,
        validation_alias=_env("DRIFTWATCH_WEBHOOK_COOLDOWN_SECONDS", "cooldown_seconds"))
    floor_version: int | None = Field(
        default=None, ge=1, validation_alias=_env("DRIFTWATCH_WEBHOOK_FLOOR_VERSION", "floor_version"))
    max_rollbacks: int = Field(
        default=DEFAULT_MAX_ROLLBACKS, ge=1, validation_alias=_env("DRIFTWATCH_WEBHOOK_MAX_ROLLBACKS", "max_rollbacks"))
    max_rollbacks_window_seconds: float = Field(
        default=DEFAULT_MAX_ROLLBACKS_WINDOW_SECONDS, ge=0,
        validation_alias=_env("DRIFTWATCH_WEBHOOK_MAX_ROLLBACKS_WINDOW_SECONDS", "max_rollbacks_window_seconds"))
    dry_run: bool = Field(default=False, validation_alias=_env("DRIFTWATCH_WEBHOOK_DRY_RUN", "dry_run"))
    policy_file: Path | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_WEBHOOK_POLICY_FILE", "policy_file"),
        description="YAML file with per-alert entries (action, cooldown_seconds, dry_run).")

    warm_up: bool = Field(
        default=True, validation_alias=_env("DRIFTWATCH_WEBHOOK_WARM_UP", "warm_up"),
        description="At start-up, load the production version once in the background so the first "
                    "rollback's load check is fast.")

    @field_validator("serving_urls")
    @classmethod
    def _urls_are_http(cls, value: str) -> str:
        for url in _names(value):
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"DRIFTWATCH_SERVING_URLS: {url!r} is not an http(s) URL "
                                 "(e.g. http://127.0.0.1:8000)")
        return value

    @model_validator(mode="after")
    def _alert_lists_are_disjoint(self) -> WebhookSettings:
        overlap = set(_names(self.rollback_alerts)) & set(_names(self.notify_alerts))
        if overlap:
            raise ValueError(f"alert(s) {sorted(overlap)} are in both DRIFTWATCH_WEBHOOK_ROLLBACK_ALERTS and "
                             "DRIFTWATCH_WEBHOOK_NOTIFY_ALERTS; keep each in one list")
        if self.policy_file is not None:
            load_alert_policies(self.policy_file)  # fail at start-up, naming the problem
        if self.store_password_file is not None and not self.store_password_file.is_file():
            raise ValueError(f"DRIFTWATCH_WEBHOOK_STORE_PASSWORD_FILE {self.store_password_file} does not exist")
        return self

    def resolved_token(self) -> str:
        token = self.secret("token")
        assert token is not None  # required: checked at start-up
        return token

    def resolved_admin_token(self) -> str | None:
        return self.secret("admin_token")

    @property
    def serving_url_list(self) -> list[str]:
        return [url.rstrip("/") for url in _names(self.serving_urls)]

    @property
    def store_is_postgres(self) -> bool:
        return self.store_path is not None and is_postgres(self.store_path)

    @property
    def resolved_store_path(self) -> Path:
        """The SQLite file (for a PostgreSQL store, see ``store_location``)."""
        if self.store_path is None or self.store_is_postgres:
            return (self.registry.resolved_home / "rollback-webhook" / "decisions.db").expanduser().resolve()
        return Path(self.store_path).expanduser().resolve()

    @property
    def store_location(self) -> str | Path:
        """The PostgreSQL URI or the SQLite file."""
        return str(self.store_path) if self.store_is_postgres else self.resolved_store_path

    def store_description(self) -> str:
        """Where decisions are kept, for logs (no password)."""
        return redact(str(self.store_location))

    def open_store(self) -> DecisionStorePort:
        password = self.store_password_file.read_text().strip() if self.store_password_file else None
        return open_store(self.store_location, password=password)

    def policy(self) -> RollbackPolicy:
        """The policy: the alert lists and global knobs, with the policy file's entries on top."""
        alerts: dict[str, AlertPolicy] = {name: AlertPolicy(action="rollback") for name in _names(self.rollback_alerts)}
        alerts.update({name: AlertPolicy(action="notify") for name in _names(self.notify_alerts)})
        if self.policy_file is not None:
            alerts.update(load_alert_policies(self.policy_file))
        return RollbackPolicy(
            alerts=alerts, unknown_alerts=self.unknown_alerts, cooldown_seconds=self.cooldown_seconds,
            floor_version=self.floor_version, max_rollbacks=self.max_rollbacks,
            max_rollbacks_window_seconds=self.max_rollbacks_window_seconds, dry_run=self.dry_run,
        )

