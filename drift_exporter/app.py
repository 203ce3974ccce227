"""HTTP side of the drift exporter: /metrics, /drift, /report, /health, and the scheduler's lifespan."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from drift_exporter.metrics import DriftMetrics
from drift_exporter.monitor import DriftMonitor, ProductionSource
from drift_exporter.report import render_report
from drift_exporter.settings import DriftExporterSettings
from driftwatch.jsonsafe import finite
from driftwatch.periodic import periodic_lifespan, scheduler_health
from driftwatch.server_limits import LIMIT_RESPONSES, Problem
from driftwatch.service import add_http_layers

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

    def started() -> None:
        log.info("drift exporter watching %s: log folder %s, a check every %.0f s, window %d rows "
                 "(at least %d for a verdict)", settings.model_name, settings.resolved_log_dir,
                 settings.interval_seconds, settings.window_rows, settings.effective_min_window_rows)

    lifespan = periodic_lifespan(monitor.run_once, seconds=settings.interval_seconds, job_id=JOB_ID,
                                 enabled=schedule, started=started)
    app = FastAPI(title="Driftwatch drift exporter", lifespan=lifespan, responses=LIMIT_RESPONSES)
    # The exporter takes no bodies: a small body limit.
    add_http_layers(app, max_body_bytes=EXPORTER_MAX_BODY_BYTES, limits=settings.server_limits(),
                    connection_closes=metrics.connection_closes, observe=metrics.http.observe)
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
                "result": None if result is None else finite(result.to_dict())}
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
        running, healthy = scheduler_health(app, enabled=schedule)
        body = {"status": "ok" if healthy else "scheduler_stopped", "scheduler_running": running,
                "last_check": state.status, "production_version": state.production_version}
        return JSONResponse(body, status_code=200 if healthy else 503)

    return app

