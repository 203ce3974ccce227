"""The webhook's I/O: reading the registry state a decision needs, moving production back through
``model_registry``, and telling serving instances to reload (best effort: they also poll)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from model_registry import RollbackResult, VersionInfo
from model_registry.errors import RegistryError, RegistryUnavailable, VersionNotFound

log = logging.getLogger("rollback_webhook")
ACTOR = "rollback-webhook"


class RegistryPort(Protocol):
    """The part of ``model_registry.ModelRegistry`` the webhook uses (tests pass fakes)."""

    def production_version(self, *, with_metrics: bool = True) -> VersionInfo | None: ...

    def get_version(self, version: str, *, with_metrics: bool = True) -> VersionInfo: ...

    def check_loadable(self, version: str) -> None: ...

    def rollback(self, *, to: str | None = None, reason: str, actor: str, alertname: str | None = None,
                 expected_current: str | None = None, incident: str | None = None) -> RollbackResult: ...


@dataclass(frozen=True)
class VersionsSnapshot:
    production: VersionInfo | None
    previous: VersionInfo | None
    alerted: VersionInfo | None


def read_versions(registry: RegistryPort, alerted_version: str | None) -> VersionsSnapshot:
    """Production, the version it replaced, and (when it is not production) the version the alert
    names. Raises ``RegistryUnavailable`` when the registry cannot be reached."""
    production = registry.production_version(with_metrics=False)
    previous = None
    if production is not None and production.previous_version is not None:
        previous = _find(registry, production.previous_version)
    alerted = None
    if alerted_version is not None and (production is None or production.version != alerted_version):
        alerted = _find(registry, alerted_version)
    return VersionsSnapshot(production=production, previous=previous, alerted=alerted)


def _find(registry: RegistryPort, version: str) -> VersionInfo | None:
    try:
        return registry.get_version(version, with_metrics=False)
    except VersionNotFound:
        return None


def load_error(registry: RegistryPort, version: str) -> str | None:
    """Why ``version`` does not load, or None when it does. Unreachable registry: raises."""
    try:
        registry.check_loadable(version)
    except RegistryUnavailable:
        raise
    except RegistryError as exc:
        return str(exc)
    return None


class Reloader(Protocol):
    def reload_all(self) -> list[dict[str, Any]]: ...


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to now (IPv4 and IPv6, sorted, no duplicates)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class ServingReloader:
    """POST ``/admin/reload`` on each serving URL with the admin token. Failures are reported, never
    raised: serving also polls the registry, so a missed reload only delays the switch.

    With ``resolve_all``, each URL's host name is resolved at every reload and every address it has
    is called: one name for all replicas (a Kubernetes headless Service, a docker-compose service
    with replicas) reloads each replica rather than the one a load balancer picks.
    """

    def __init__(self, urls: list[str], admin_token: str | None, *, timeout_seconds: float,
                 transport: httpx.BaseTransport | None = None, resolve_all: bool = False,
                 resolver: Callable[[str, int], list[str]] = resolve_addresses) -> None:
        self.urls = urls
        self.admin_token = admin_token
        self.timeout_seconds = timeout_seconds
        self.transport = transport
        self.resolve_all = resolve_all
        self.resolver = resolver

    def reload_all(self) -> list[dict[str, Any]]:
        if not self.urls:
            return []
        if self.admin_token is None:
            return [{"url": url, "result": "skipped", "detail": "no admin token (DRIFTWATCH_ADMIN_TOKEN)"}
                    for url in self.urls]
        targets: list[str] = []
        results: list[dict[str, Any]] = []
        for url in self.urls:
            if self.resolve_all:
                expanded, problem = self._expand(url)
                targets.extend(expanded)
                if problem is not None:
                    results.append(problem)
            else:
                targets.append(url)
        if not targets:
            return results
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        with httpx.Client(timeout=self.timeout_seconds, transport=self.transport) as client, \
                ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
            return results + list(pool.map(lambda url: self._reload_one(client, url, headers), targets))

    def _expand(self, url: str) -> tuple[list[str], dict[str, Any] | None]:
        """``url`` once per address of its host, or a failure entry when the name has none."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = self.resolver(host, port)
        except OSError as exc:
            log.warning("serving reload: cannot resolve %s", host, extra={"url": url, "error": repr(exc)})
            return [], {"url": url, "result": "failure", "detail": f"cannot resolve {host}: {exc}"}
        if not addresses:
            return [], {"url": url, "result": "failure", "detail": f"{host} has no address (no ready replica)"}
        expanded = []
        for address in addresses:
            shown = f"[{address}]" if ":" in address else address
            expanded.append(urlunsplit(parts._replace(netloc=f"{shown}:{port}")))
        return expanded, None

    def _reload_one(self, client: httpx.Client, url: str, headers: dict[str, str]) -> dict[str, Any]:
        target = f"{url}/admin/reload"
        try:
            response = client.post(target, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("serving reload failed", extra={"url": target, "error": repr(exc)})
            return {"url": url, "result": "failure", "detail": f"{type(exc).__name__}: {exc}"}
        if not response.is_success:
            log.warning("serving reload refused", extra={"url": target, "status": response.status_code})
        return {"url": url, "result": "success" if response.is_success else "failure",
                "status": response.status_code}
