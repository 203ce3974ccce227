"""HTTP side of the drift exporter: /metrics, /drift, /report, /health, and the scheduler's lifespan."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from drift_exporter.metrics import DriftMetrics
from drift_exporter.monitor import DriftMonitor, ProductionSource
from drift_exporter.report import render_report
from drift_exporter.settings import DriftExporterSettings
from driftwatch.http_metrics import HttpMetricsMiddleware
from driftwatch.periodic import start_periodic
from driftwatch.server_limits import LIMIT_RESPONSES, LimitsMiddleware, Problem

log = logging.getLogger("drift_exporter")
JOB_ID = "drift-check"
EXPORTER_MAX_BODY_BYTES = 64 * 1024


def create_app(settings: DriftExporterSettings, *, registry: CollectorRegistry | None = None,
               source: ProductionSource | None = None, clock: Callable[[], float] = time.time,
               schedule: bool = True) -> FastAPI:
    """The exporter app. ``source`` is the model registry (built from ``settings.registry`` when not
    given); with ``schedule=False`` no check runs by itself (tests call ``app.state.monitor.run_once``)."""
    registry = registry if registry is not None else CollectorRegistry()
    if source is None:
        from model_registry import ModelRegistry

        source = ModelRegistry(settings.registry)
    metrics = DriftMetrics(registry, settings.model_name)
    monitor = DriftMonitor(settings, source=source, metrics=metrics, clock=clock)
    report_lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler: BackgroundScheduler | None = None
        if schedule:
            scheduler = start_periodic(monitor.run_once, seconds=settings.interval_seconds, job_id=JOB_ID)
            log.info("drift exporter watching %s: log folder %s, a check every %.0f s, window %d rows "
                     "(at least %d for a verdict)", settings.model_name, settings.resolved_log_dir,
                     settings.interval_seconds, settings.window_rows, settings.effective_min_window_rows)
        app.state.scheduler = scheduler
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=True)

    app = FastAPI(title="Driftwatch drift exporter", lifespan=lifespan, responses=LIMIT_RESPONSES)
    # Server limits (driftwatch.server_limits) inside the metrics; the exporter takes no bodies.
    app.add_middleware(LimitsMiddleware, max_body_bytes=EXPORTER_MAX_BODY_BYTES,
                       max_concurrent_requests=settings.server_limits().max_concurrent_requests)
    app.state.connection_closes = metrics.connection_closes
    app.add_middleware(HttpMetricsMiddleware, observe=metrics.http.observe)
    app.state.monitor = monitor
    app.state.metrics = metrics
    app.state.scheduler = None

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics_route() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/drift")
    def drift() -> JSONResponse:
        """The last check: its state and the last result (scores, p-values, verdicts per feature)."""
        state, result = monitor.snapshot()
        body = {"model_name": settings.model_name, "run": state.to_dict(),
                "result": None if result is None else _finite(result.to_dict())}
        return JSONResponse(body)

    @app.get("/report", response_class=HTMLResponse, responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "Evidently's HTML report"},
        503: {"content": {"application/json": {"schema": Problem.model_json_schema()}},
              "description": "No report yet: no version in production or no finished check, an empty window, "
                             "or a report being built (Retry-After)"}})
    def report() -> Response:
        """Evidently's data drift report of the current window against the production reference."""
        reference = monitor.current_reference()
        if reference is None:
            return JSONResponse({"detail": "no reference yet: no version in production, or the first check "
                                           "has not finished; see /drift"}, status_code=503)
        if not report_lock.acquire(blocking=False):
            return JSONResponse({"detail": "a report is being built; try again in a few seconds"}, status_code=503,
                                headers={"Retry-After": "5"})
        try:
            window = monitor.read_window(reference)
            if window.rows == 0:
                return JSONResponse({"detail": f"the prediction log window is empty ({settings.resolved_log_dir})"},
                                    status_code=503)
            html = render_report(reference, window, max_reference_rows=settings.report_max_rows)
        finally:
            report_lock.release()
        return HTMLResponse(html)

    @app.get("/health", responses={503: {"description": "The scheduler has stopped"}})
    def health() -> JSONResponse:
        """Alive and scheduling (a failed check is reported, not fatal: see /drift)."""
        state, _ = monitor.snapshot()
        scheduler = app.state.scheduler
        running = bool(scheduler is not None and scheduler.running)
        healthy = running or not schedule
        body = {"status": "ok" if healthy else "scheduler_stopped", "scheduler_running": running,
                "last_check": state.status, "production_version": state.production_version}
        return JSONResponse(body, status_code=200 if healthy else 503)

    return app


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such numbers become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
