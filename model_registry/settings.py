"""Registry settings shared by every Driftwatch process."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RegistrySettings(BaseSettings):
    """Where the registry is and which model to watch. Environment prefix: ``DRIFTWATCH_``."""

    model_config = SettingsConfigDict(env_prefix="DRIFTWATCH_", extra="ignore", populate_by_name=True)

    home: Path = Field(default=Path(".driftwatch"), description="Data folder (embedded registry, logs, caches).")
    model_name: str = Field(default="iris-classifier", min_length=1)
    model_alias: str = Field(default="production", min_length=1)
    registry_mode: Literal["alias", "stage"] = "alias"
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "DRIFTWATCH_TRACKING_URI", "tracking_uri"),
        description="MLflow tracking/registry URI; default: SQLite file in DRIFTWATCH_HOME.",
    )
    experiment_name: str = "driftwatch"
    registry_timeout_seconds: float = Field(default=10.0, gt=0)
    min_accuracy: float = Field(default=0.85, ge=0, le=1, description="Quality gate: minimum test accuracy.")
    max_regression: float = Field(
        default=0.02, ge=0, le=1, description="Quality gate: allowed accuracy drop against production."
    )
    max_error: float | None = Field(
        default=None, gt=0, description="Quality gate for regressors: maximum RMSE/MAE (none by default)."
    )
    gate_metric: str | None = Field(
        default=None, description="Quality gate metric (default by task: test_accuracy, test_rmse)."
    )
    reference_rows: int = Field(default=5000, ge=10, description="Rows of training features kept as reference.")

    @field_validator("model_alias")
    @classmethod
    def _alias_is_not_a_version(cls, value: str) -> str:
        if value.isdigit():
            raise ValueError("DRIFTWATCH_MODEL_ALIAS must not be a number (MLflow reserves those for versions)")
        return value

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{self.resolved_home / 'mlflow.db'}"

    @property
    def is_embedded(self) -> bool:
        """True for a local file registry (SQLite or file store) rather than a tracking server."""
        return not self.resolved_tracking_uri.startswith(("http://", "https://", "databricks"))

    @property
    def artifact_root(self) -> Path:
        return self.resolved_home / "artifacts"
