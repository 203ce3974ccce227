"""Errors of the registry API. Each message says what went wrong and what to do."""

from __future__ import annotations

from driftwatch.redact import redact


class RegistryError(Exception):
    """Base class: something about the registry or a version is not as required. The message never
    carries credentials (a tracking URI's password, S3 keys): they are redacted here, once."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class RegistryUnavailable(RegistryError):
    """The tracking server could not be reached; retrying later is useful."""


class VersionNotFound(RegistryError):
    """The model or version does not exist."""


class PromotionRefused(RegistryError):
    """A promotion was refused (quarantined version, failed quality gate, ...)."""


class RollbackRefused(RegistryError):
    """A rollback was refused; ``code`` names the reason for machines, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
