"""Registry errors are classified by exception type and by the status a server answered, never by
message text (issue #15): an unrelated SQL error is a plain ``RegistryError`` (a retry would fail
the same way), not "registry unavailable" (503, retried forever)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

from model_registry import ModelRegistry, RegistrySettings
from model_registry.errors import (
    RegistryError,
    RegistryUnavailable,
    VersionNotFound,
    classify_mlflow_error,
)
from tests.support.procs import free_port


def raised_while_handling(cause: BaseException, exc: Exception) -> Exception:
    """``exc`` as MLflow raises it inside an ``except`` block: with ``cause`` as its context."""
    try:
        try:
            raise cause
        except BaseException:
            raise exc  # noqa: B904  (implicit chaining, like MLflow's rest_utils)
    except Exception as caught:
        return caught


def test_an_unreachable_server_is_unavailable_whatever_the_message_says() -> None:
    exc = raised_while_handling(requests.exceptions.ConnectionError("refused"), MlflowException("something"))
    assert classify_mlflow_error(exc) is RegistryUnavailable
    timeout = raised_while_handling(requests.exceptions.ReadTimeout("slow"), MlflowException("x"))
    assert classify_mlflow_error(timeout) is RegistryUnavailable
    database_down = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("could not connect"))
    assert classify_mlflow_error(database_down) is RegistryUnavailable


def test_a_server_that_answers_503_429_or_500_is_unavailable() -> None:
    for code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "INTERNAL_ERROR"):
        assert classify_mlflow_error(RestException({"error_code": code, "message": "m"})) is RegistryUnavailable
    assert classify_mlflow_error(RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "m"})) \
        is RegistryError


def test_a_local_sql_error_is_not_unavailable_even_with_a_suggestive_message() -> None:
    # MLflow's SQL store wraps anything in MlflowException with the default code INTERNAL_ERROR.
    overflow = raised_while_handling(OverflowError("Python int too large to convert to SQLite INTEGER"),
                                     MlflowException("API request to ... Max retries exceeded (not really)"))
    assert classify_mlflow_error(overflow) is RegistryError
    integrity = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
    assert classify_mlflow_error(integrity) is RegistryError
    missing = MlflowException("Model Version not found", error_code=RESOURCE_DOES_NOT_EXIST)
    assert classify_mlflow_error(missing) is VersionNotFound


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    # An embedded SQLite registry of its own (never MLFLOW_TRACKING_URI from the environment).
    reg = ModelRegistry(RegistrySettings(home=tmp_path, model_name="any-model",
                                         tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    reg.client.create_registered_model("any-model")
    return reg


def test_a_version_too_large_for_sql_is_a_registry_error_not_unavailable(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError) as raised:
        registry.get_version(str(2**64), with_metrics=False)
    assert not isinstance(raised.value, RegistryUnavailable)
    with pytest.raises(VersionNotFound):
        registry.get_version("5", with_metrics=False)


def test_a_tracking_server_that_is_not_there_is_unavailable(tmp_path: Path) -> None:
    reg = ModelRegistry(RegistrySettings(home=tmp_path, tracking_uri=f"http://127.0.0.1:{free_port()}",
                                         registry_timeout_seconds=2))
    with pytest.raises(RegistryUnavailable, match="cannot be reached"):
        reg.production_version(with_metrics=False)


def test_a_failed_undo_of_the_quarantine_tags_is_logged(registry: ModelRegistry,
                                                        caplog: pytest.LogCaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(version: str, tags: dict[str, str | None]) -> dict[str, str | None]:
        raise RegistryUnavailable("the registry went away (test)")

    monkeypatch.setattr(registry, "_set_tags", fail)
    with caplog.at_level(logging.ERROR, logger="model_registry"):
        registry._restore_tags("3", {"driftwatch.quarantined": None})
    [entry] = [r for r in caplog.records if r.name == "model_registry"]
    assert "could not undo the tags of v3" in entry.getMessage()
    assert entry.model_version == "3" and "went away" in entry.error  # type: ignore[attr-defined]
