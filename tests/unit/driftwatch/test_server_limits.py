"""Server limits (driftwatch.server_limits) on a real uvicorn server in this process, on loopback, with
raw sockets: what slow, large and many clients get, and that normal requests keep being answered."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from driftwatch.server_limits import ConnectionCloses, LimitsMiddleware, ServerLimits
from tests.support.uvicorn_thread import serve_in_thread


class Echo:
    """An ASGI app: POST answers the body length; GET /slow sleeps 0.5 s."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/slow":
            await asyncio.sleep(0.5)
        payload = str(len(body)).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


class State:
    pass


@contextmanager
def serve(limits: ServerLimits, *, max_body_bytes: int = 64 * 1024) -> Iterator[tuple[str, int, CollectorRegistry]]:
    registry = CollectorRegistry()
    app = LimitsMiddleware(Echo(), max_body_bytes=max_body_bytes, max_concurrent_requests=limits.max_concurrent_requests)
    app.state = State()  # type: ignore[attr-defined]
    app.state.connection_closes = ConnectionCloses(registry)  # type: ignore[attr-defined]
    with serve_in_thread(app, limits, start_seconds=10) as port:
        yield "127.0.0.1", port, registry


def closes(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("http_connections_closed_total", {"reason": reason}) or 0.0


def read_answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_a_chunked_body_over_the_limit_is_refused_without_being_read() -> None:
    """Issue #15: the webhook read a chunked body of any size before its limit applied."""
    with serve(ServerLimits(), max_body_bytes=64 * 1024) as (host, port, _):
        sock = socket.create_connection((host, port))
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 16384
        sent = 0
        try:
            for _ in range(2048):  # up to 32 MiB; the answer must come long before
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_answer(sock)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 16 * 1024 * 1024  # the server stopped reading: the client could not send it all


def test_a_body_within_the_limit_is_read_whole_chunked_or_not() -> None:
    with serve(ServerLimits(), max_body_bytes=64 * 1024) as (host, port, _):
        url = f"http://{host}:{port}/x"
        assert httpx.post(url, content=b"y" * 60000).text == "60000"
        assert httpx.post(url, content=iter([b"y" * 30000, b"y" * 30000])).text == "60000"  # chunked
        assert httpx.post(url, content=b"y" * 70000).status_code == 413


def test_headers_that_do_not_arrive_in_time_close_the_connection_and_are_counted() -> None:
    with serve(ServerLimits(header_timeout=0.3)) as (host, port, registry):
        sock = socket.create_connection((host, port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # never finishes its headers
        started = time.monotonic()
        assert read_answer(sock) == b""
        assert time.monotonic() - started < 3
        assert closes(registry, "header_timeout") == 1


def test_a_body_that_does_not_arrive_in_time_is_a_408() -> None:
    with serve(ServerLimits(body_timeout=0.3)) as (host, port, registry):
        sock = socket.create_connection((host, port))
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        answer = read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert closes(registry, "body_timeout") == 1


def test_headers_over_the_limit_are_a_431() -> None:
    with serve(ServerLimits(max_header_bytes=4096)) as (host, port, registry):
        sock = socket.create_connection((host, port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Filler: " + b"a" * 8000 + b"\r\n")
        answer = read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 431"), answer
        assert closes(registry, "header_too_large") == 1


def test_requests_over_the_concurrency_limit_are_a_503_with_retry_after() -> None:
    with serve(ServerLimits(max_concurrent_requests=2)) as (host, port, _):
        url = f"http://{host}:{port}/slow"

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=10) as client:
                return list(await asyncio.gather(*(client.get(url) for _ in range(5))))

        answers = asyncio.run(burst())
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 200, 503, 503, 503], statuses
        assert all(a.headers["retry-after"] == "1" for a in answers if a.status_code == 503)
        assert httpx.get(url, timeout=10).status_code == 200  # the places come back


def test_at_the_connection_limit_slow_readers_are_closed_first_and_normal_requests_are_answered() -> None:
    limits = ServerLimits(max_connections=20, header_timeout=30)
    with serve(limits) as (host, port, registry):
        slow = []
        for _ in range(60):  # three times the limit: clients that start a request and never finish it
            sock = socket.create_connection((host, port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
            slow.append(sock)
        url = f"http://{host}:{port}/x"
        failures = 0
        for _ in range(30):
            try:
                with httpx.Client(timeout=5) as client:
                    failures += client.post(url, content=b"abc").text != "3"
            except httpx.HTTPError:
                failures += 1
            sock = socket.create_connection((host, port))  # and more slow clients keep coming
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
            slow.append(sock)
        for sock in slow:
            sock.close()
        assert failures == 0  # each one answered within its 5 s client timeout
        assert closes(registry, "evicted") >= 60


@pytest.mark.parametrize("reason", ["header_timeout", "body_timeout", "header_too_large", "evicted", "over_capacity"])
def test_every_close_reason_has_its_series_from_the_start(reason: str) -> None:
    registry = CollectorRegistry()
    ConnectionCloses(registry)
    assert closes(registry, reason) == 0.0
    assert registry.get_sample_value("http_connections_closed_total", {"reason": reason}) == 0.0
