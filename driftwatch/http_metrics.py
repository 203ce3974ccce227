"""HTTP metrics of every service: ``http_requests_total{handler,method,status}`` and
``http_request_duration_seconds{handler,method}`` (docs/contract.md), counted by one ASGI middleware.

The handler label is the route template (what routing matched), or ``unmatched`` for any path no
route knows, so scanners cannot create series; methods outside the usual set share ``other``.
A request answered before routing (the server limits' 413/408/503 come from a middleware in front
of the router) is counted under the route its path would have reached, found by matching the
app's routes after the fact, so an oversized body to ``/alerts`` is ``handler="/alerts"``.
A request whose handler raised is counted as 500 (the status the server then sends).
Serving records into its own loop-local families (see serving.metrics) through the same
``observe`` callable; the exporter and the webhook use ``HttpMetrics``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import Match

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Observe = Callable[[str, str, int, float], None]  # handler, method, status, seconds

UNMATCHED_HANDLER = "unmatched"
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUESTS_HELP = "HTTP requests answered, by route template, method and status code."
DURATION_HELP = "Time to answer an HTTP request, by route template and method."


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


def handler_label(scope: Scope) -> str:
    route = scope.get("route")
    if route is None:
        route = _route_for(scope)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_HANDLER


def _route_for(scope: Scope) -> Any:
    """The route of the app (Starlette sets ``scope["app"]``) that the request's path matches, for a
    request that was answered before the router ran; a path match with another method counts as
    that route (as a 405 does)."""
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        try:
            match, _ = route.matches(scope)
        except (KeyError, TypeError, ValueError):  # a scope the route cannot read: no match
            continue
        if match is not Match.NONE:
            return route
    return None


class HttpMetrics:
    """The two HTTP families on a registry, with prometheus_client's (thread-safe) classes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("http_requests", REQUESTS_HELP, ["handler", "method", "status"], registry=registry)
        self.duration = Histogram("http_request_duration_seconds", DURATION_HELP, ["handler", "method"],
                                  buckets=HTTP_BUCKETS, registry=registry)

    def observe(self, handler: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(handler, method, str(status)).inc()
        self.duration.labels(handler, method).observe(seconds)


class HttpMetricsMiddleware:
    """Times every HTTP request of the wrapped app and hands (handler, method, status, seconds) to ``observe``."""

    def __init__(self, app: ASGIApp, observe: Observe) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.observe(handler_label(scope), method_label(scope.get("method", "")), status,
                         time.perf_counter() - started)
