"""Server limits for every Driftwatch HTTP service: one piece, used by serving, the drift exporter,
the rollback webhook and the quality service (issue #15).

uvicorn alone bounds none of this: it waits for a request's headers and body as long as the client
likes, reads a chunked body of any size into the application, and its ``limit_concurrency`` counts
*connections*, so slow clients that hold connections turn every normal request into a 503. With a
256-descriptor limit, 300 slow connections made every normal request fail for 15 s.

What is bounded, and where:

- **In the HTTP protocol** (``limited_protocol``, a subclass of uvicorn's httptools protocol):
  a request's headers must arrive within ``header_timeout`` (and the next request on a kept-alive
  connection within ``keepalive + header_timeout`` of the last answer), its body within
  ``body_timeout`` (else 408), its headers may not exceed ``max_header_bytes`` (else 431). At
  ``max_connections`` open connections (derived from the descriptor limit by default), a new
  connection closes the one that has been *reading* a request the longest: slow clients go first,
  a normal client that sends its request at once is never the oldest reader. Each close is counted
  in ``http_connections_closed_total{reason}``.
- **In the ASGI application** (``read_body``, ``LimitsMiddleware``): the body is read up to the
  service's byte limit, counting as it reads, so the limit holds for chunked bodies too (413; the
  rest is never read). Then, and only then, the request takes one of ``max_concurrent_requests``
  places (else 503 with ``Retry-After``): a slow upload holds a connection, never a place.

Settings (the same names for every service, see docs/contract.md): ``DRIFTWATCH_HTTP_*``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter
from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("driftwatch.server_limits")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DESCRIPTOR_RESERVE = 64  # kept for files, the registry, the log writer's pipe, sockets to other services
MAX_DERIVED_CONNECTIONS = 4096
CLOSE_REASONS = ("header_timeout", "body_timeout", "header_too_large", "evicted", "over_capacity")


class Problem(BaseModel):
    """The error answer of every Driftwatch service, ``{"detail": "..."}`` (some add fields, e.g.
    ``field``): the limits below answer with it, and the services document their own errors with it."""

    detail: str


# What any route can answer because of the limits (``FastAPI(responses=LIMIT_RESPONSES)`` documents
# them in OpenAPI; a route documents its own meaning of a status over these).
LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    408: {"model": Problem, "description": "The body did not arrive within DRIFTWATCH_HTTP_BODY_TIMEOUT_SECONDS"},
    413: {"model": Problem, "description": "The body is over the service's limit"},
    503: {"model": Problem, "description": "DRIFTWATCH_HTTP_MAX_CONCURRENT_REQUESTS requests are being answered; "
                                           "retry after Retry-After seconds"},
}


def derived_max_connections() -> int:
    """Open connections this process can hold without running out of file descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_DERIVED_CONNECTIONS
    return max(16, min(MAX_DERIVED_CONNECTIONS, soft - DESCRIPTOR_RESERVE))


@dataclass(frozen=True)
class ServerLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive: float = 5.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 0  # 0: derived from the file descriptor limit
    max_concurrent_requests: int = 64

    @property
    def connections(self) -> int:
        return self.max_connections or derived_max_connections()


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class HttpLimitSettings(BaseSettings):
    """The server-limit settings every service's settings class inherits."""

    http_header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=3600,
        validation_alias=_env("DRIFTWATCH_HTTP_HEADER_TIMEOUT_SECONDS", "http_header_timeout_seconds"))
    http_body_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        validation_alias=_env("DRIFTWATCH_HTTP_BODY_TIMEOUT_SECONDS", "http_body_timeout_seconds"))
    http_keepalive_seconds: float = Field(
        default=5.0, gt=0, le=3600,
        validation_alias=_env("DRIFTWATCH_HTTP_KEEPALIVE_SECONDS", "http_keepalive_seconds"))
    http_max_header_bytes: int = Field(
        default=64 * 1024, ge=1024, validation_alias=_env("DRIFTWATCH_HTTP_MAX_HEADER_BYTES", "http_max_header_bytes"))
    http_max_connections: int = Field(
        default=0, ge=0, validation_alias=_env("DRIFTWATCH_HTTP_MAX_CONNECTIONS", "http_max_connections"),
        description="0: the file descriptor limit less a reserve of 64, at most 4096.")
    http_max_concurrent_requests: int = Field(
        default=64, ge=1,
        validation_alias=_env("DRIFTWATCH_HTTP_MAX_CONCURRENT_REQUESTS", "http_max_concurrent_requests"))

    def server_limits(self) -> ServerLimits:
        return ServerLimits(header_timeout=self.http_header_timeout_seconds,
                            body_timeout=self.http_body_timeout_seconds, keepalive=self.http_keepalive_seconds,
                            max_header_bytes=self.http_max_header_bytes, max_connections=self.http_max_connections,
                            max_concurrent_requests=self.http_max_concurrent_requests)


# ---------------------------------------------------------------------- counted closes
class ConnectionCloses:
    """``http_connections_closed_total{reason}``: connections the server closed for a limit."""

    def __init__(self, registry: CollectorRegistry) -> None:
        counter = Counter("http_connections_closed",
                          "Connections the server closed because of a limit: header_timeout, body_timeout (answered "
                          "408), header_too_large (431), evicted (the longest-reading connection, at the connection "
                          "limit), over_capacity (a new connection when every other one is busy).",
                          ["reason"], registry=registry)
        self._children = {reason: counter.labels(reason) for reason in CLOSE_REASONS}

    def __call__(self, reason: str) -> None:
        self._children[reason].inc()


# ---------------------------------------------------------------------- the protocol
def _raw_response(status: int, reason: bytes, detail: str) -> bytes:
    body = orjson.dumps({"detail": detail})
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, reason, len(body))) + body


class _LimitedProtocol(HttpToolsProtocol):
    limits: ServerLimits = ServerLimits()
    max_connections: int = MAX_DERIVED_CONNECTIONS
    on_close: Callable[[str], None] | None = None

    # Per connection: when it started waiting for the current request (None while the request is
    # being answered), the timer of the current read phase, and header bytes seen in it.
    _reading_since: float | None = None
    _deadline: asyncio.TimerHandle | None = None
    _in_body = False
    _header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_request(self.limits.header_timeout)
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._reading_since = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_since is not None and not self._in_body and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._refuse(431, b"Request Header Fields Too Large", "header_too_large",
                             f"the request headers are over {self.limits.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._in_body = True
        self._header_bytes = 0
        self._arm(self.limits.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False
        self._reading_since = None
        self._cancel_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._wait_for_request(self.limits.keepalive + self.limits.header_timeout)

    # ------------------------------------------------------------------ helpers
    def _wait_for_request(self, seconds: float) -> None:
        self._reading_since = self.loop.time()
        self._in_body = False
        self._header_bytes = 0
        self._arm(seconds, self._headers_timed_out)

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, callback)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _count(self, reason: str) -> None:
        if self.on_close is not None:
            self.on_close(reason)

    def _headers_timed_out(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self._count("header_timeout")
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._deadline = None
        self._refuse(408, b"Request Timeout", "body_timeout",
                     f"the request body did not arrive within {self.limits.body_timeout:g} s")

    def _refuse(self, status: int, reason: bytes, label: str, detail: str) -> None:
        """Answer ``status`` when no answer has started, then close the connection."""
        if self.transport.is_closing():
            return
        self._count(label)
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_raw_response(status, reason, detail))
        if self.cycle is not None:  # the application's receive() now says disconnect; its answer goes nowhere
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def _make_room(self) -> None:
        """At the connection limit: close the connection that has been reading a request the longest
        (this one, the newest, only when every other connection is busy answering)."""
        oldest: _LimitedProtocol | None = None
        oldest_since = 0.0
        for connection in self.connections:
            if not isinstance(connection, _LimitedProtocol) or connection is self:
                continue
            since = connection._reading_since
            if since is not None and not connection.transport.is_closing() and (oldest is None or since < oldest_since):
                oldest, oldest_since = connection, since
        if oldest is not None:
            self._count("evicted")
            oldest.transport.close()
        else:
            self._count("over_capacity")
            self.transport.close()


def limited_protocol(limits: ServerLimits, on_close: Callable[[str], None] | None = None) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with ``limits`` (pass as ``uvicorn.run(http=...)``)."""
    return type("LimitedHttpToolsProtocol", (_LimitedProtocol,),
                {"limits": limits, "max_connections": limits.connections, "on_close": on_close})


def uvicorn_options(app: Any, limits: ServerLimits) -> dict[str, Any]:
    """The keyword arguments that put ``limits`` into ``uvicorn.run(app, ...)``."""
    closes = getattr(getattr(app, "state", None), "connection_closes", None)
    return {"http": limited_protocol(limits, closes), "timeout_keep_alive": max(1, round(limits.keepalive))}


# ---------------------------------------------------------------------- the application side
class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    """The connection closed before the body was complete (the client left, or the body timeout)."""


async def read_body(receive: Receive, max_bytes: int, declared: int | None = None) -> bytes:
    """The whole request body, counted as it is read: ``BodyTooLarge`` as soon as it passes
    ``max_bytes`` (chunked or not; the rest is never read), ``ClientGone`` on a disconnect."""
    if declared is not None and declared > max_bytes:
        raise BodyTooLarge
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > max_bytes:
            raise BodyTooLarge
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def declared_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class RequestGate:
    """At most ``limit`` requests answered at once (after their bodies are read)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def busy_detail(self) -> str:
        return (f"the service is answering its limit of {self.limit} requests at once "
                "(DRIFTWATCH_HTTP_MAX_CONCURRENT_REQUESTS); retry shortly")


def _json_sender(send: Send) -> Callable[[int, str, list[tuple[bytes, bytes]]], Awaitable[None]]:
    async def answer(status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
        body = orjson.dumps({"detail": detail})
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})
    return answer


class LimitsMiddleware:
    """Body limit (413, chunked included), then the concurrency limit (503), for an ASGI app. Put it
    inside the HTTP-metrics middleware so that its answers are counted."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, gate: RequestGate | None = None,
                 max_concurrent_requests: int = 64) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.gate = gate if gate is not None else RequestGate(max_concurrent_requests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answer = _json_sender(send)
        try:
            body = await read_body(receive, self.max_body_bytes, declared_length(scope))
        except BodyTooLarge:
            await answer(413, f"the body is over {self.max_body_bytes} bytes", [(b"connection", b"close")])
            return
        except ClientGone:  # the answer goes nowhere; it is sent so that the metrics count a 408
            await answer(408, "the request body did not arrive", [])
            return
        gate = self.gate
        if gate.in_flight >= gate.limit:
            await answer(503, gate.busy_detail(), [(b"retry-after", b"1")])
            return
        gate.in_flight += 1
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, send)
        finally:
            gate.in_flight -= 1
