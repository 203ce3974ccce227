"""Settings of the quality service. Only ``__main__`` reads the environment; tests pass values."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from driftwatch.settings import PredictionLogSettings
from driftwatch.settings import env as _env


class QualitySettings(PredictionLogSettings):
    """Everything ``python -m quality`` can be told (the shared part: ``driftwatch.settings``)."""

    SECRETS = (("DRIFTWATCH_QUALITY_TOKEN", "token", False),)

    host: str = Field(default="127.0.0.1", validation_alias=_env("DRIFTWATCH_QUALITY_HOST", "host"))
    port: int = Field(default=9103, ge=0, le=65535, validation_alias=_env("DRIFTWATCH_QUALITY_PORT", "port"))
    database_url: SecretStr | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_QUALITY_DATABASE_URL", "database_url"),
        description="SQLAlchemy URL of the store, e.g. postgresql+psycopg://user:pw@host/db; default: "
                    "SQLite file $DRIFTWATCH_HOME/quality/quality.db.")
    token: SecretStr | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_QUALITY_TOKEN", "token"),
        description="Bearer token POST /feedback requires; without one, feedback is open.")
    token_file: Path | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_QUALITY_TOKEN_FILE", "token_file"))
    interval_seconds: float = Field(
        default=30.0, gt=0, le=86400,
        validation_alias=_env("DRIFTWATCH_QUALITY_INTERVAL_SECONDS", "interval_seconds"),
        description="Time between two evaluations (each one first reads new prediction log lines).")
    window_labeled: int = Field(
        default=500, ge=10, le=1_000_000,
        validation_alias=_env("DRIFTWATCH_QUALITY_WINDOW_LABELED", "window_labeled"),
        description="Live quality is computed over the newest this many labeled predictions of a version.")
    estimate_window: int = Field(
        default=500, ge=10, le=1_000_000,
        validation_alias=_env("DRIFTWATCH_QUALITY_ESTIMATE_WINDOW", "estimate_window"),
        description="The CBPE estimate covers the newest this many predictions of a version, labeled or not.")
    confidence: float = Field(
        default=0.99, gt=0.5, lt=1, validation_alias=_env("DRIFTWATCH_QUALITY_CONFIDENCE", "confidence"),
        description="One-sided confidence of the exported bounds (Wilson lower bound of accuracy, upper "
                    "bound of MAE).")
    retention_days: float = Field(
        default=30.0, gt=0, validation_alias=_env("DRIFTWATCH_QUALITY_RETENTION_DAYS", "retention_days"),
        description="Predictions and labels older than this are deleted (labels waiting for an unknown id too).")
    max_versions: int = Field(
        default=10, ge=1, le=1000, validation_alias=_env("DRIFTWATCH_QUALITY_MAX_VERSIONS", "max_versions"),
        description="Quality series are exported for at most this many versions (the newest predictions first).")
    max_feedback_items: int = Field(
        default=100_000, ge=1, le=10_000_000,
        validation_alias=_env("DRIFTWATCH_QUALITY_MAX_FEEDBACK_ITEMS", "max_feedback_items"),
        description="Most labels one POST /feedback may carry.")
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024,
        validation_alias=_env("DRIFTWATCH_QUALITY_MAX_BODY_BYTES", "max_body_bytes"))

    def resolved_token(self) -> str | None:
        return self.secret("token")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.registry.resolved_home / 'quality' / 'quality.db'}"

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86400.0
