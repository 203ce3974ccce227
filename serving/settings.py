"""Settings of the prediction service. Only ``__main__`` reads the environment; tests pass values."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from driftwatch.settings import SERVING_PORT, SERVING_PORT_ENV, PredictionLogSettings
from driftwatch.settings import env as _env

InferenceBackend = Literal["auto", "onnx", "native"]


class ServingSettings(PredictionLogSettings):
    """Everything ``python -m serving`` can be told (the shared part: ``driftwatch.settings``)."""

    SECRETS = (("DRIFTWATCH_ADMIN_TOKEN", "admin_token", False),)

    host: str = Field(default="127.0.0.1", validation_alias=_env("DRIFTWATCH_SERVING_HOST", "host"))
    port: int = Field(default=SERVING_PORT, ge=0, le=65535, validation_alias=_env(SERVING_PORT_ENV, "port"))
    instance: str | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_SERVING_INSTANCE", "instance"),
        description="Name of this process in log file names; default hostname-pid.",
    )
    poll_interval_seconds: float = Field(
        default=5.0, gt=0, le=3600,
        validation_alias=_env("DRIFTWATCH_POLL_INTERVAL_SECONDS", "poll_interval_seconds"),
    )
    model_cache_dir: Path | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_MODEL_CACHE_DIR", "model_cache_dir"),
        description="Local copies of loaded versions; default $DRIFTWATCH_HOME/model-cache.",
    )
    model_cache_keep: int = Field(
        default=3, ge=1, validation_alias=_env("DRIFTWATCH_MODEL_CACHE_KEEP", "model_cache_keep"),
    )
    prediction_log_enabled: bool = Field(
        default=True, validation_alias=_env("DRIFTWATCH_PREDICTION_LOG_ENABLED", "prediction_log_enabled"),
    )
    prediction_log_max_bytes: int = Field(
        default=16 * 1024 * 1024, ge=4096,
        validation_alias=_env("DRIFTWATCH_PREDICTION_LOG_MAX_BYTES", "prediction_log_max_bytes"),
    )
    prediction_log_backups: int = Field(
        default=5, ge=1, validation_alias=_env("DRIFTWATCH_PREDICTION_LOG_BACKUPS", "prediction_log_backups"),
    )
    prediction_log_queue_rows: int = Field(
        default=200_000, ge=1000,
        validation_alias=_env("DRIFTWATCH_PREDICTION_LOG_QUEUE_ROWS", "prediction_log_queue_rows"),
        description="Rows waiting for the writer before new ones are dropped (and counted) rather than "
                    "slowing requests down.",
    )
    prediction_log_flush_seconds: float = Field(
        default=0.05, gt=0, le=10,
        validation_alias=_env("DRIFTWATCH_PREDICTION_LOG_FLUSH_SECONDS", "prediction_log_flush_seconds"),
        description="How often answered rows are handed to the log writer: a serving process killed (kill -9) "
                    "loses at most the rows of one such interval, and says how many (docs/contract.md).",
    )
    prediction_log_s3_url: str | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_PREDICTION_LOG_S3_URL", "prediction_log_s3_url"),
        description="s3://bucket/prefix: closed prediction log segments are uploaded under <prefix>/<model name>/ "
                    "for a drift exporter on another host (endpoint and keys: boto3's environment).",
    )
    prediction_log_segment_seconds: float = Field(
        default=60.0, gt=0, le=86400,
        validation_alias=_env("DRIFTWATCH_PREDICTION_LOG_SEGMENT_SECONDS", "prediction_log_segment_seconds"),
        description="With an S3 URL: the live log file is closed and uploaded once it is this old, so rows reach "
                    "S3 within this many seconds plus one upload.",
    )
    metrics_enabled: bool = Field(
        default=True, validation_alias=_env("DRIFTWATCH_METRICS_ENABLED", "metrics_enabled"),
    )
    # Sized for batch clients of `mlflow models serve` (10,000-row batches of tens of features fit).
    max_batch: int = Field(default=50_000, ge=1, le=1_000_000,
                           validation_alias=_env("DRIFTWATCH_MAX_BATCH", "max_batch"))
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, validation_alias=_env("DRIFTWATCH_MAX_BODY_BYTES", "max_body_bytes"),
    )
    inference_backend: InferenceBackend = Field(
        default="auto", validation_alias=_env("DRIFTWATCH_INFERENCE_BACKEND", "inference_backend"),
        description="auto: ONNX Runtime when it gives the model's own answers on the warm-up rows, else "
                    "the model's own code; onnx: refuse to load a version that cannot be compiled; native: "
                    "always the model's own code.",
    )
    admin_token: SecretStr | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_ADMIN_TOKEN", "admin_token"),
    )
    admin_token_file: Path | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_ADMIN_TOKEN_FILE", "admin_token_file"),
    )
    git_commit: str | None = Field(
        default=None, validation_alias=_env("DRIFTWATCH_GIT_COMMIT", "git_commit"),
        description="Shown in /metadata; default: read from the source checkout when there is one.",
    )
    access_log: bool = Field(default=False, validation_alias=_env("DRIFTWATCH_ACCESS_LOG", "access_log"))

    @field_validator("instance")
    @classmethod
    def _instance_is_a_file_name_part(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or value.startswith(".")):
            raise ValueError("DRIFTWATCH_SERVING_INSTANCE must be a plain name (no '/', not starting with '.')")
        return value

    @field_validator("prediction_log_s3_url")
    @classmethod
    def _s3_url_is_a_location(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            from driftwatch.logsegments import S3Location

            S3Location.parse(value)
            return value.strip()
        return None

    def resolved_admin_token(self) -> str | None:
        """The admin token from the value or the file; None = reload disabled."""
        return self.secret("admin_token")

    @property
    def resolved_instance(self) -> str:
        return self.instance or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def resolved_model_cache_dir(self) -> Path:
        return (self.model_cache_dir or self.registry.resolved_home / "model-cache").expanduser().resolve()

    @property
    def production_label(self) -> str:
        """What marks production: the alias name, or the stage name in stage mode."""
        return self.registry.model_alias if self.registry.registry_mode == "alias" else "Production"

    @property
    def production_uri(self) -> str:
        """The model URI the service follows, e.g. ``models:/iris-classifier@production``."""
        name = self.registry.model_name
        if self.registry.registry_mode == "alias":
            return f"models:/{name}@{self.registry.model_alias}"
        return f"models:/{name}/Production"
