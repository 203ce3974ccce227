"""Serving reloads (best effort, with the admin token) and reading the registry state."""

from __future__ import annotations

import httpx
import pytest

from model_registry.errors import RegistryUnavailable
from rollback_webhook.actions import ServingReloader, load_error, read_versions
from tests.unit.rollback_webhook.fakes import FakeRegistry, bad_release, version


def test_reload_posts_to_each_instance_with_the_admin_token() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("authorization", "")))
        return httpx.Response(200 if "a:8000" in str(request.url) else 401)

    reloader = ServingReloader(["http://a:8000", "http://b:8000"], "admin-token-0123456789", timeout_seconds=1,
                               transport=httpx.MockTransport(handler))
    results = reloader.reload_all()
    assert seen == [("http://a:8000/admin/reload", "Bearer admin-token-0123456789"),
                    ("http://b:8000/admin/reload", "Bearer admin-token-0123456789")]
    assert [(r["result"], r["status"]) for r in results] == [("success", 200), ("failure", 401)]


def test_an_unreachable_instance_is_reported_not_raised() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    reloader = ServingReloader(["http://a:8000"], "admin-token-0123456789", timeout_seconds=1,
                               transport=httpx.MockTransport(handler))
    (result,) = reloader.reload_all()
    assert result["result"] == "failure" and "ConnectError" in result["detail"]


def test_without_an_admin_token_reloads_are_skipped() -> None:
    (result,) = ServingReloader(["http://a:8000"], None, timeout_seconds=1).reload_all()
    assert result["result"] == "skipped"
    assert ServingReloader([], "admin-token-0123456789", timeout_seconds=1).reload_all() == []


def test_read_versions_finds_production_its_previous_and_the_alerted_version() -> None:
    snapshot = read_versions(bad_release(), "1")
    assert snapshot.production is not None and snapshot.production.version == "2"
    assert snapshot.previous is not None and snapshot.previous.version == "1"
    assert snapshot.alerted is not None and snapshot.alerted.version == "1"
    assert read_versions(bad_release(), "2").alerted is None  # production itself is not fetched twice


def test_a_previous_version_that_is_gone_reads_as_none() -> None:
    registry = FakeRegistry([version("2", previous="1")], production="2")
    assert read_versions(registry, "2").previous is None


def test_load_errors_are_returned_but_an_unreachable_registry_raises() -> None:
    registry = bad_release()
    registry.unloadable["1"] = "broken pickle"
    assert load_error(registry, "1") == "broken pickle"
    assert load_error(registry, "2") is None
    registry.unavailable = True
    with pytest.raises(RegistryUnavailable):
        load_error(registry, "1")
