"""The quality service: ``POST /feedback``, ``GET /quality``, ``/metrics``, ``/health`` (docs/quality.md).

Why a service of its own rather than an endpoint of serving: labels come days after predictions,
for any version, in batches of millions from jobs that know the outcome; they need a database that
outlives serving's processes and is shared by all of them. Serving stays a stateless, fast request
path with no database on it; a feedback burst cannot slow predictions; several serving replicas
feed one quality service through the prediction log they already write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from driftwatch.auth import bearer_matches
from driftwatch.clock import iso_utc
from driftwatch.jsonsafe import finite
from driftwatch.periodic import periodic_lifespan, scheduler_health
from driftwatch.server_limits import LIMIT_RESPONSES, Problem
from driftwatch.service import add_http_layers
from quality.feedback import FeedbackProblem, feedback_schema, parse_body
from quality.metrics import QualityMetrics
from quality.monitor import QualityMonitor
from quality.reference import VersionSource
from quality.settings import QualitySettings
from quality.store import QualityStore

log = logging.getLogger("quality")
JOB_ID = "quality-evaluation"
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong bearer token (DRIFTWATCH_QUALITY_TOKEN)"}}
LISTED_IDS = 100  # unknown / duplicate ids named in an answer (the counts are complete)


def _problem(status: int, field: str | None, message: str, **headers: str) -> JSONResponse:
    body: dict[str, Any] = {"error": "validation" if status < 500 else "unavailable", "detail": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers or None)


def create_app(settings: QualitySettings, *, registry: CollectorRegistry | None = None,
               source: VersionSource | None = None, store: QualityStore | None = None,
               clock: Callable[[], float] = time.time, schedule: bool = True) -> FastAPI:
    """The app. ``source`` is the model registry (built from ``settings.registry`` when not given);
    with ``schedule=False`` nothing runs by itself (tests call ``app.state.monitor.run_once``)."""
    registry = registry if registry is not None else CollectorRegistry()
    if source is None:
        from model_registry import ModelRegistry

        source = ModelRegistry(settings.registry)
    store = store if store is not None else QualityStore(settings.resolved_database_url)
    metrics = QualityMetrics(registry, settings.model_name)
    monitor = QualityMonitor(settings, store=store, source=source, metrics=metrics, clock=clock)
    token = settings.resolved_token()
    name = settings.model_name
    ingest_lock = threading.Lock()

    def started() -> None:
        log.info("quality service for %s: log folder %s, an evaluation every %.0f s, window %d labeled "
                 "predictions, feedback %s", name, settings.resolved_log_dir, settings.interval_seconds,
                 settings.window_labeled, "with a bearer token" if token else "open (no token configured)")

    lifespan = periodic_lifespan(monitor.run_once, seconds=settings.interval_seconds, job_id=JOB_ID,
                                 enabled=schedule, started=started, stopped=store.close)
    app = FastAPI(title="Driftwatch quality service", lifespan=lifespan, responses=LIMIT_RESPONSES)
    add_http_layers(app, max_body_bytes=settings.max_body_bytes, limits=settings.server_limits(),
                    connection_closes=metrics.connection_closes, observe=metrics.http.observe)
    app.state.monitor = monitor
    app.state.metrics = metrics
    app.state.store = store
    app.state.scheduler = None

    @app.middleware("http")
    async def count_errors(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            response = await call_next(request)
        except Exception:  # boundary: answer 500, counted, logged
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            response = _problem(500, None, "internal error; see the quality service's log")
        if response.status_code >= 500:
            metrics.http_errors.labels(name, request.url.path if request.url.path in KNOWN_PATHS else "other").inc()
        return response

    def authorized(request: Request) -> bool:
        if token is None:
            return True
        return bearer_matches(request.headers.get("authorization"), token)

    @app.post("/feedback", responses={
        **UNAUTHORIZED,
        400: {"model": Problem, "description": "The body is not JSON"},
        413: {"model": Problem, "description": "The body is over DRIFTWATCH_QUALITY_MAX_BODY_BYTES, or more labels "
                                               "than DRIFTWATCH_QUALITY_MAX_FEEDBACK_ITEMS"},
        415: {"model": Problem, "description": "A content type other than JSON"},
        422: {"model": Problem, "description": "A bad label; 'field' names where"},
        503: {"model": Problem, "description": "The quality store cannot be reached; nothing was stored"}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": feedback_schema(settings.max_feedback_items)}}}})
    async def feedback(request: Request) -> Response:
        """Labels: ``{"prediction_id", "actual", "timestamp"?}``, a list of them, or ``{"labels": [...]}``.
        The first label of a prediction wins; unknown ids are kept until their prediction is read."""
        if not authorized(request):
            return _problem(401, "Authorization", "missing or wrong bearer token "
                                                  "(Authorization: Bearer <DRIFTWATCH_QUALITY_TOKEN>)",
                            **{"WWW-Authenticate": "Bearer"})
        body = await request.body()  # at most DRIFTWATCH_QUALITY_MAX_BODY_BYTES: LimitsMiddleware read it
        media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return _problem(415, "Content-Type", f"{media} is not supported; send application/json")
        now = clock()
        try:
            parsed = parse_body(body, now=now, max_items=settings.max_feedback_items)
        except FeedbackProblem as problem:
            metrics.feedback.labels(name, "invalid").inc(max(problem.items, 1))
            return _problem(problem.status, problem.field, str(problem))
        try:
            outcome = await run_in_threadpool(store.add_labels, parsed.labels, now)
        except SQLAlchemyError as exc:
            log.error("feedback not stored: %s: %s", type(exc).__name__, str(exc).splitlines()[0][:300])
            return _problem(503, None, "the quality store is not available; nothing was stored, send again",
                            **{"Retry-After": "5"})
        duplicates = outcome.duplicate + parsed.repeated
        metrics.feedback.labels(name, "joined").inc(len(outcome.joined))
        metrics.feedback.labels(name, "pending").inc(len(outcome.pending))
        metrics.feedback.labels(name, "duplicate").inc(len(duplicates))
        return JSONResponse({
            "received": len(parsed.labels) + len(parsed.repeated), "joined": len(outcome.joined),
            "pending": len(outcome.pending), "duplicate": len(duplicates),
            "unknown_ids": outcome.pending[:LISTED_IDS], "duplicate_ids": duplicates[:LISTED_IDS],
            "note": "pending: no prediction with that id has been read from the prediction log yet; the label "
                    "is kept and joined when it is, or deleted after the retention period",
        })

    @app.post("/admin/ingest", responses=UNAUTHORIZED)
    async def ingest_now(request: Request) -> Response:
        """Read new prediction log lines now (same token as feedback); the schedule does it anyway."""
        if not authorized(request):
            return _problem(401, "Authorization", "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"})
        with ingest_lock:
            result = await run_in_threadpool(monitor.ingest)
        return JSONResponse(asdict(result))

    @app.get("/quality")
    def quality() -> JSONResponse:
        """The last evaluation: live and reference quality, estimate, labeled share and delay per version."""
        state = monitor.state
        body = {"model_name": name, "status": state.status, "error": state.error,
                "finished_at": None if state.finished_at is None
                else iso_utc(state.finished_at),
                "duration_seconds": state.duration_seconds, "ingested_rows": state.ingested_rows,
                "window_labeled": settings.window_labeled, "confidence": settings.confidence,
                "versions": [finite(asdict(v)) for v in state.versions]}
        return JSONResponse(body)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics_route() -> Response:
        with monitor.publish_lock:
            data = generate_latest(registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", responses={503: {"description": "The scheduler has stopped"}})
    def health() -> JSONResponse:
        running, healthy = scheduler_health(app, enabled=schedule)
        return JSONResponse({"status": "ok" if healthy else "scheduler_stopped", "scheduler_running": running,
                             "last_evaluation": monitor.state.status}, status_code=200 if healthy else 503)

    return app


KNOWN_PATHS = frozenset({"/feedback", "/quality", "/metrics", "/health", "/admin/ingest"})

