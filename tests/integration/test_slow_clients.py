"""Slow clients against real service processes (issue #15): with a 256-descriptor limit, hundreds of
connections that start a request and never finish it, plus slow uploads, while a normal client keeps
asking. Before the server limits, 300 slow connections made every normal request fail for 15 s.

Bounded and loopback only: at most ~450 client sockets open at once, 8 s of load per service."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from driftwatch.processes import free_port
from tests.support.procs import stop_process, wait_for_http

pytestmark = pytest.mark.integration

TOKEN = "slow-client-test-token-0123456789"
DESCRIPTORS = 256
LOAD_SECONDS = 8.0


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


SERVICES = {
    "rollback_webhook": ({"DRIFTWATCH_WEBHOOK_TOKEN": TOKEN, "DRIFTWATCH_WEBHOOK_WARM_UP": "false"},
                         "DRIFTWATCH_WEBHOOK_PORT", ["/health", "/decisions"]),
    "serving": ({"DRIFTWATCH_PREDICTION_LOG_ENABLED": "false", "DRIFTWATCH_POLL_INTERVAL_SECONDS": "3600"},
                "DRIFTWATCH_SERVING_PORT", ["/metrics", "/version"]),
}


@pytest.fixture(params=sorted(SERVICES))
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    module = request.param
    extra, port_setting, paths = SERVICES[module]
    port = free_port()
    env = {**os.environ, "DRIFTWATCH_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
           port_setting: str(port), "DRIFTWATCH_HTTP_HEADER_TIMEOUT_SECONDS": "5", **extra}
    log = tmp_path / f"{module}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_limit_descriptors, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}{paths[0]}", timeout=120, proc=proc, log=log)
        yield url, paths
    finally:
        stop_process(proc)


def _slow_header(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")  # never finishes its headers
    return sock


def _slow_body(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"POST /alerts HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"{" * 10)
    return sock


def test_normal_requests_keep_being_served_while_slow_clients_hold_connections(
        service: tuple[str, list[str]]) -> None:
    url, paths = service
    port = int(url.rsplit(":", 1)[1])
    slow: list[socket.socket] = []
    opened = refused = 0
    for i in range(300):  # more connections than the process has descriptors
        try:
            slow.append(_slow_body(port) if i % 6 == 0 else _slow_header(port))
            opened += 1
        except OSError:
            refused += 1
    answered = failed = 0
    worst = 0.0
    errors: list[str] = []
    deadline = time.monotonic() + LOAD_SECONDS
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while time.monotonic() < deadline:
        for path in paths:
            started = time.monotonic()
            try:
                response = httpx.get(f"{url}{path}", headers=headers, timeout=5)
                ok = response.status_code == 200
            except httpx.HTTPError as exc:
                ok = False
                errors.append(repr(exc))
            worst = max(worst, time.monotonic() - started)
            answered += ok
            failed += not ok
        for _ in range(10):  # and the slow clients keep coming
            try:
                slow.append(_slow_header(port))
                opened += 1
            except OSError:
                refused += 1
        while len(slow) > 400:  # the test's own bound on open sockets
            slow.pop(0).close()
        time.sleep(0.02)
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    for sock in slow:
        sock.close()
    assert failed == 0, (failed, answered, errors[:5])
    assert answered >= 10
    assert worst < 2.0, worst
    assert opened >= 300
    evicted = [line for line in metrics.splitlines() if line.startswith('http_connections_closed_total{reason="evicted"}')]
    assert evicted and float(evicted[0].split()[-1]) > 0, evicted
