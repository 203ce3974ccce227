"""The settings base of the services (serving, drift exporter, rollback webhook, quality).

Why one module: each service used to copy the same helpers, and the copies disagreed (one token
accepted the ``.env.example`` placeholder that another refused; one service ignored
``DRIFTWATCH_LOG_LEVEL``). Here live the environment prefix, the registry block, the log level,
the default ports and their variable names (``driftwatch up`` reads the same names), and secrets:
a value or a ``..._FILE`` holding it, never both, at least 16 characters, never the placeholder
(a service lists its secrets in ``SECRETS``; one validator checks them all, ``secret()`` reads one).
``PredictionLogSettings`` adds the prediction log folder for the services that write or read it.
Only a service's ``__main__`` reads the environment; tests pass values by field name.
The names are listed in docs/contract.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from driftwatch.server_limits import HttpLimitSettings
from model_registry import RegistrySettings

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
MIN_SECRET_CHARS = 16
PLACEHOLDER_PREFIX = "replace-me"  # what .env.example ships
GENERATE_HINT = "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"

# Default ports and the variables that change them (the services and `driftwatch up` alike).
SERVING_PORT, SERVING_PORT_ENV = 8000, "DRIFTWATCH_SERVING_PORT"
DRIFT_PORT, DRIFT_PORT_ENV = 9101, "DRIFTWATCH_DRIFT_PORT"
WEBHOOK_PORT, WEBHOOK_PORT_ENV = 9102, "DRIFTWATCH_WEBHOOK_PORT"


def env(*names: str) -> AliasChoices:
    """Accept the environment name(s) and the field name (so tests can pass ``port=...``)."""
    return AliasChoices(*names)


class ServiceSettings(HttpLimitSettings):
    """What every service shares. Environment prefix: ``DRIFTWATCH_``."""

    model_config = SettingsConfigDict(env_prefix="DRIFTWATCH_", extra="ignore", populate_by_name=True)

    # The service's secrets, checked at start-up by one rule (check_secret): (environment name, the
    # field holding the value; its file is that field + "_file", required).
    SECRETS: ClassVar[tuple[tuple[str, str, bool], ...]] = ()

    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    log_level: LogLevel = Field(default="INFO", validation_alias=env("DRIFTWATCH_LOG_LEVEL", "log_level"))

    @property
    def model_name(self) -> str:
        return self.registry.model_name

    @model_validator(mode="after")
    def _secrets_are_safe(self) -> Self:
        for name, field, required in self.SECRETS:
            check_secret(name, getattr(self, field), getattr(self, f"{field}_file"), required=required)
        return self

    def secret(self, field: str) -> str | None:
        """One of ``SECRETS`` from its value or its file; None when neither is set."""
        return read_secret(getattr(self, field), getattr(self, f"{field}_file"))


class PredictionLogSettings(ServiceSettings):
    """Services that write or read the prediction log (serving, the drift exporter, the quality
    service): where it is, one setting for all of them."""

    prediction_log_dir: Path | None = Field(
        default=None, validation_alias=env("DRIFTWATCH_PREDICTION_LOG_DIR", "prediction_log_dir"),
        description="Folder of the prediction log (every serving process's files); default "
                    "$DRIFTWATCH_HOME/predictions.")

    @property
    def resolved_log_dir(self) -> Path:
        return (self.prediction_log_dir or self.registry.resolved_home / "predictions").expanduser().resolve()


def read_secret(value: SecretStr | None, path: Path | None) -> str | None:
    """The secret from the value or the file (surrounding whitespace removed); None when neither is set."""
    if value is not None:
        return value.get_secret_value().strip()
    if path is not None:
        return path.read_text().strip()
    return None


def check_secret(name: str, value: SecretStr | None, path: Path | None, *, required: bool) -> None:
    """Raise ``ValueError`` (naming ``name``, never the value) unless the secret is safe to use.

    ``name`` is the environment variable (``DRIFTWATCH_ADMIN_TOKEN``); its file variant is
    ``name + "_FILE"``."""
    if value is not None and path is not None:
        raise ValueError(f"set {name} or {name}_FILE, not both")
    if path is not None and not path.is_file():
        raise ValueError(f"{name}_FILE {path} does not exist or is not a file")
    secret = read_secret(value, path)
    if secret is None:
        if required:
            raise ValueError(f"{name} (or {name}_FILE) is required: it is the bearer token callers must send; "
                             f"{GENERATE_HINT}")
        return
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"{name} must have at least {MIN_SECRET_CHARS} characters; {GENERATE_HINT}")
    if secret.startswith(PLACEHOLDER_PREFIX):
        raise ValueError(f"{name} is still the placeholder from .env.example; {GENERATE_HINT}")
