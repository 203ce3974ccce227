"""Starting a service process: settings from the environment (or exit 2 with a sentence), JSON
logs at the configured level, then uvicorn. One copy for serving, the drift exporter and the
rollback webhook, so they start, log and stop alike; and the HTTP layers every FastAPI service puts
in front of its routes (``add_http_layers``)."""

from __future__ import annotations

import sys
from typing import Any, TypeVar

import uvicorn
from pydantic import ValidationError

from driftwatch.http_metrics import HttpMetricsMiddleware, Observe
from driftwatch.logs import configure_logging
from driftwatch.server_limits import ConnectionCloses, LimitsMiddleware, ServerLimits, uvicorn_options
from driftwatch.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)
GRACEFUL_SHUTDOWN_SECONDS = 30


def load_settings(cls: type[S], program: str) -> S:
    """Settings from the environment; on a bad value, one line on stderr naming each problem, exit 2."""
    try:
        settings = cls()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        print(f"{program}: invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    return settings


def run_service(app: Any, *, host: str, port: int, limits: ServerLimits, access_log: bool = False) -> None:
    """Serve ``app`` in this process until SIGINT/SIGTERM (one process: the Prometheus counters
    live in it), with the server limits (driftwatch.server_limits). ``log_config=None`` keeps the
    JSON logging set up by ``load_settings``."""
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=access_log,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, lifespan="on", **uvicorn_options(app, limits))


def add_http_layers(app: Any, *, max_body_bytes: int, limits: ServerLimits, connection_closes: ConnectionCloses,
                    observe: Observe | None) -> None:
    """The server limits (driftwatch.server_limits: body limit, then the concurrency limit) and, when
    ``observe`` is given, the HTTP metrics around them, so the limits' own 413/408/503 are counted.
    ``app.state.connection_closes`` is what ``uvicorn_options`` counts closed connections with."""
    app.add_middleware(LimitsMiddleware, max_body_bytes=max_body_bytes,
                       max_concurrent_requests=limits.max_concurrent_requests)
    app.state.connection_closes = connection_closes
    if observe is not None:
        app.add_middleware(HttpMetricsMiddleware, observe=observe)
