"""The ASGI layer in front of the FastAPI app: HTTP metrics for every request, and the scoring path.

``POST /predict`` and ``POST /invocations`` are answered here directly: going through FastAPI's
routing, request object and response class halves the throughput of a one-row prediction
(measured: ~4,200 vs ~8,200 requests/s on this machine with a trivial handler), and these two
routes are the service. FastAPI still declares them, so /docs shows their schema, and answers
their other methods. Every other request goes to FastAPI through the shared HTTP metrics
middleware (driftwatch.http_metrics): counted and timed by route template; unknown paths share one
label value, so scanners cannot create series.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from driftwatch import jsonsafe
from driftwatch.http_metrics import HttpMetricsMiddleware
from driftwatch.server_limits import BodyTooLarge, ClientGone, RequestGate, read_body
from serving.metrics import ServingMetrics
from serving.request_formats import InputProblem
from serving.scoring import Answer, Endpoint, Scorer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger(__name__)
SCORING_PATHS: dict[str, Endpoint] = {"/predict": "predict", "/invocations": "invocations"}


class ServingASGI:
    def __init__(self, app: ASGIApp, *, scorer: Scorer, max_body_bytes: int, metrics: ServingMetrics | None,
                 gate: RequestGate) -> None:
        self.app: ASGIApp = app if metrics is None else HttpMetricsMiddleware(app, metrics.observe_http)
        self.gate = gate
        self.scorer = scorer
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        endpoint = SCORING_PATHS.get(path)
        if endpoint is not None and scope["method"] == "POST":
            answer = await self._score(endpoint, scope, receive)
            await send({"type": "http.response.start", "status": answer.status,
                        "headers": [(b"content-type", answer.content_type),
                                    (b"content-length", str(len(answer.body)).encode())]})
            await send({"type": "http.response.body", "body": answer.body})
            if self.metrics is not None:
                count, duration = self.metrics.http(path, "POST", answer.status)
                count.inc()
                duration.observe(time.perf_counter() - started)
            return
        await self.app(scope, receive, send)

    async def _score(self, endpoint: Endpoint, scope: Scope, receive: Receive) -> Answer:
        content_type: str | None = None
        declared: int | None = None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length" and value.isdigit():
                declared = int(value)
        try:
            body = await read_body(receive, self.max_body_bytes, declared)
        except BodyTooLarge:
            return self.scorer.reject(endpoint, InputProblem(
                "", f"the body is over {self.max_body_bytes} bytes (DRIFTWATCH_MAX_BODY_BYTES); split the batch",
                status=413))
        except ClientGone:  # neither the client's input nor the model: counted in http_requests_total only
            return Answer(408, b'{"detail":"the request body did not arrive"}')
        gate = self.gate
        if gate.in_flight >= gate.limit:  # overload is not a release fault: not a prediction error
            return Answer(503, jsonsafe.dumps({"detail": gate.busy_detail()}))
        gate.in_flight += 1
        try:
            return await self.scorer.score(endpoint, body, content_type)
        except Exception:  # boundary: a fault on the prediction path is a counted 500, never a dropped request
            logger.exception("the prediction path failed", extra={"event": "inference_error"})
            return self.scorer.internal_error(endpoint)
        finally:
            gate.in_flight -= 1
