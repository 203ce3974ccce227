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


def test_resolve_all_reloads_every_address_of_the_name() -> None:
    """One name for all replicas (headless Service, compose replicas): each address is told to reload."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200)

    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["10.0.0.7", "10.0.0.8", "fd00::9"]

    reloader = ServingReloader(["http://serving-replicas:8000"], "admin-token-0123456789", timeout_seconds=1,
                               transport=httpx.MockTransport(handler), resolve_all=True, resolver=resolver)
    results = reloader.reload_all()
    assert asked == [("serving-replicas", 8000)]
    assert sorted(seen) == ["http://10.0.0.7:8000/admin/reload", "http://10.0.0.8:8000/admin/reload",
                            "http://[fd00::9]:8000/admin/reload"]
    assert [r["result"] for r in results] == ["success"] * 3
    assert reloader.reload_all() and len(asked) == 2  # resolved again at every reload: pods come and go


def test_resolve_all_reports_a_name_without_addresses_and_keeps_reloading_the_others() -> None:
    def resolver(host: str, port: int) -> list[str]:
        if host == "gone":
            raise OSError("Name or service not known")
        return [] if host == "empty" else ["127.0.0.9"]

    reloader = ServingReloader(["http://gone:8000", "http://empty:8000", "http://ok:8000"], "admin-token-0123456789",
                               timeout_seconds=1, transport=httpx.MockTransport(lambda r: httpx.Response(200)),
                               resolve_all=True, resolver=resolver)
    results = reloader.reload_all()
    assert [(r["url"], r["result"]) for r in results] == [
        ("http://gone:8000", "failure"), ("http://empty:8000", "failure"), ("http://127.0.0.9:8000", "success")]
    assert "cannot resolve gone" in results[0]["detail"] and "no ready replica" in results[1]["detail"]


def test_resolve_all_uses_the_real_resolver_for_localhost() -> None:
    from rollback_webhook.actions import resolve_addresses

    assert "127.0.0.1" in resolve_addresses("localhost", 8000)
