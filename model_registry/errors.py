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


# ---------------------------------------------------------------------- classification
# By exception type and by the status the server answered, never by message text: an unrelated
# error (a SQL overflow, a bad parameter) must not pass for "unavailable" (503, retried forever).
UNAVAILABLE_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"})  # HTTP 503, 429
SERVER_FAILURE_CODES = frozenset({"INTERNAL_ERROR"})  # HTTP 500 *answered by a tracking server*
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean the registry (server, database or artifact store) was not reached."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        import requests.exceptions as rq

        found += [rq.ConnectionError, rq.Timeout, rq.RetryError, rq.ChunkedEncodingError]
    except ImportError:  # pragma: no cover - requests comes with MLflow
        pass
    try:
        import sqlalchemy.exc as sa

        # PEP 249 OperationalError: "errors related to the database's operation", e.g. unreachable or
        # locked; InterfaceError: the connection itself; TimeoutError: no pooled connection in time.
        found += [sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, sa.TimeoutError]
    except ImportError:  # pragma: no cover - sqlalchemy comes with MLflow
        pass
    try:
        import botocore.exceptions as bc

        found += [bc.ConnectionError, bc.ConnectTimeoutError, bc.ReadTimeoutError]
    except ImportError:  # only with an S3 artifact store
        pass
    return tuple(found)


_TRANSPORT: tuple[type[BaseException], ...] | None = None


def unreachable_cause(exc: BaseException) -> BaseException | None:
    """The exception in ``exc``'s cause/context chain that says the registry was not reached, if any."""
    global _TRANSPORT
    if _TRANSPORT is None:
        _TRANSPORT = _transport_errors()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _TRANSPORT):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def classify_mlflow_error(exc: Exception) -> type[RegistryError]:
    """Which registry error an exception raised by MLflow's client is: ``RegistryUnavailable`` when
    the registry was not reached (a transport or database-operation error in the chain) or a
    tracking server answered 503/429/500; ``VersionNotFound`` for a missing model or version;
    otherwise ``RegistryError`` (a retry would fail the same way)."""
    if unreachable_cause(exc) is not None:
        return RegistryUnavailable
    code = str(getattr(exc, "error_code", ""))
    if code in NOT_FOUND_CODES:
        return VersionNotFound
    if code in UNAVAILABLE_CODES:
        return RegistryUnavailable
    if code in SERVER_FAILURE_CODES and type(exc).__name__ == "RestException":
        return RegistryUnavailable
    return RegistryError
