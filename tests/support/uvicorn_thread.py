"""An ASGI app under a real uvicorn server with the server limits (driftwatch.server_limits), in a
thread of the test process, on a free loopback port: for tests that need real sockets (slow
clients, raw HTTP, the fuzz suite) but the app's objects at hand."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from driftwatch.processes import free_port
from driftwatch.server_limits import ServerLimits, uvicorn_options


@contextmanager
def serve_in_thread(app: Any, limits: ServerLimits | None = None, *, start_seconds: float = 60.0) -> Iterator[int]:
    """Runs ``app`` until the block ends; yields its port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on",
                            **uvicorn_options(app, limits or ServerLimits()))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_seconds
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the app did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)
