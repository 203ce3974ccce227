"""The FastAPI application: routes, lifespan, OpenAPI built from the served version's signature."""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from driftwatch.auth import bearer_matches
from driftwatch.clock import iso_utc
from driftwatch.redact import redact, redact_uri
from driftwatch.server_limits import LIMIT_RESPONSES, LimitsMiddleware, Problem, RequestGate
from model_registry import ModelRegistry
from serving.asgi import ServingASGI
from serving.metrics import ServingMetrics
from serving.model_store import ModelSource, ModelStore
from serving.openapi_models import document_scoring
from serving.prediction_log import PredictionLog
from serving.scoring import Endpoint, Scorer
from serving.settings import ServingSettings

API_VERSION = "1"


def create_app(settings: ServingSettings, *, registry: CollectorRegistry | None = None,
               model_source: ModelSource | None = None) -> FastAPI:
    """The prediction service. ``registry`` receives the metrics (a fresh one by default);
    ``model_source`` is the registry API (``ModelRegistry(settings.registry)`` by default)."""
    collector = registry if registry is not None else CollectorRegistry()
    metrics = ServingMetrics(collector, settings.registry.model_name) if settings.metrics_enabled else None
    store = ModelStore(settings, model_source or ModelRegistry(settings.registry), metrics)
    log = None
    if settings.prediction_log_enabled:
        log = PredictionLog(settings.resolved_log_dir, settings.resolved_instance,
                            max_bytes=settings.prediction_log_max_bytes, backups=settings.prediction_log_backups,
                            max_queue_rows=settings.prediction_log_queue_rows,
                            interval=settings.prediction_log_flush_seconds,
                            on_drop=metrics.log_dropped.inc if metrics is not None else None,
                            s3_url=settings.prediction_log_s3_url, model_name=settings.registry.model_name,
                            segment_seconds=settings.prediction_log_segment_seconds)
        if metrics is not None and settings.prediction_log_s3_url:
            metrics.watch_segment_uploads(settings.resolved_log_dir, settings.resolved_instance)
    scorer = Scorer(store, max_batch=settings.max_batch, metrics=metrics, log=log)
    admin_token = settings.resolved_admin_token()
    started_at = time.time()
    mlflow_version = importlib.metadata.version("mlflow")
    git_commit = settings.git_commit or _git_commit()
    draining = False

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal draining
        if log is not None:
            log.start()
        await store.start()
        try:
            yield
        finally:
            draining = True
            await store.stop()
            if log is not None:
                await asyncio.to_thread(log.close)

    # FastAPI's built-in OpenTelemetry hook checks the environment on every request; the service
    # reports through Prometheus, so it is switched off.
    app = FastAPI(title="Driftwatch serving", version=API_VERSION, lifespan=lifespan, responses=LIMIT_RESPONSES,
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="Serves the version the MLflow registry marks as production. The request "
                              "schemas below are built from the signature of the version being served.")
    app.state.store = store
    app.state.scorer = scorer
    app.state.prediction_log = log
    app.state.metrics = metrics

    @app.get("/health", summary="200 with the served version when a model is loaded, 503 otherwise",
             responses={503: {"model": Problem, "description": "No model loaded (the reason in 'detail')"}})
    async def health() -> JSONResponse:
        model = store.current
        registry_status = store.status()
        if model is None:
            return JSONResponse({"status": "no_model", "detail": redact(store.last_error or "no model loaded yet"),
                                 "registry": registry_status}, status_code=503)
        body: dict[str, Any] = {
            "status": "ok", "model_name": model.name, "model_version": model.version,
            "source": model.loaded_from, "model_uri": model.uri, "classes": model.class_names,
            "inference_backend": model.predictor.backend, "inference_check": model.check,
            "registry": registry_status,
        }
        warnings = _warnings(model.version, model.loaded_from, registry_status)
        if warnings:
            body["warnings"] = warnings
        return JSONResponse(body)

    @app.get("/ready", summary="200 when the service takes predictions (a model is loaded, not shutting down)",
             responses={503: {"model": Problem, "description": "No model loaded, or shutting down"}})
    async def ready() -> JSONResponse:
        model = store.current
        if model is None or draining:
            return JSONResponse({"ready": False, "detail": "shutting down" if draining else "no model loaded"},
                                status_code=503)
        return JSONResponse({"ready": True, "model_version": model.version})

    @app.get("/ping", include_in_schema=False)
    async def ping() -> Response:  # what `mlflow models serve` answers, for probes written against it
        return Response("\n", status_code=200 if store.current is not None else 503, media_type="application/json")

    @app.get("/version", include_in_schema=False)
    async def version() -> Response:  # what `mlflow models serve` answers (ScoringServerClient.get_version)
        return Response(mlflow_version, media_type="application/json")

    @app.get("/metadata", summary="The served version, this deployment and its configuration")
    async def metadata() -> JSONResponse:
        model = store.current
        return JSONResponse({
            "model": model.describe() if model is not None else None,
            "registry": store.status(),
            "deployment": {
                "git_commit": git_commit, "api_version": API_VERSION, "instance": settings.resolved_instance,
                "started_at": iso_utc(started_at, timespec="seconds"),
                "uptime_seconds": round(time.time() - started_at, 3),
                "predictions_total": scorer.predictions_total,
            },
            "config": {
                "tracking_uri": redact_uri(settings.registry.resolved_tracking_uri),
                "registry_mode": settings.registry.registry_mode, "model_name": settings.registry.model_name,
                "model_alias": settings.production_label, "model_uri": settings.production_uri,
                "poll_interval_seconds": settings.poll_interval_seconds,
                "inference_backend": settings.inference_backend, "max_batch": settings.max_batch,
                "metrics_enabled": settings.metrics_enabled,
                "prediction_log": {"enabled": log is not None,
                                   "path": str(log.path) if log is not None else None,
                                   "max_bytes": settings.prediction_log_max_bytes,
                                   "backups": settings.prediction_log_backups},
                "model_cache_dir": str(store.cache.root),
                "admin_reload": admin_token is not None,
            },
        })

    @app.get("/metrics", summary="Prometheus metrics (text format)", response_class=PlainTextResponse,
             responses={404: {"model": Problem, "description": "Metrics are switched off"}})
    async def metrics_route() -> Response:
        if metrics is None:
            return JSONResponse({"detail": "metrics are switched off (DRIFTWATCH_METRICS_ENABLED=false)"},
                                status_code=404)
        return Response(generate_latest(collector), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload", summary="Check the registry now and swap to its production version",
              responses={401: {"model": Problem, "description": "Missing or wrong bearer token"},
                         403: {"model": Problem, "description": "No admin token configured"},
                         409: {"description": "No version is marked production"},
                         500: {"description": "The new version failed to load; the old one keeps serving"},
                         503: {"description": "The registry cannot be reached; still serving the old version"}})
    async def admin_reload(request: Request) -> JSONResponse:
        if admin_token is None:
            return JSONResponse({"detail": "admin endpoints are disabled: set DRIFTWATCH_ADMIN_TOKEN or "
                                           "DRIFTWATCH_ADMIN_TOKEN_FILE"}, status_code=403)
        if not bearer_matches(request.headers.get("authorization"), admin_token):
            return JSONResponse({"detail": "send the admin token as 'Authorization: Bearer <token>'"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        result = await store.reload(force=True)
        body = {"result": "swapped" if result.changed else ("failed" if result.error else "unchanged"),
                "model_version": result.version, "previous_version": result.previous,
                "production_version": result.production_version, "detail": result.error}
        if result.registry_unavailable:
            return JSONResponse(body, status_code=503)
        if result.error and result.production_version is None:
            return JSONResponse(body, status_code=409)
        if result.error:
            return JSONResponse(body, status_code=500)
        return JSONResponse(body)

    # Answered by ServingASGI (see serving.asgi); declared here for /docs and for completeness.
    async def _score(endpoint: Endpoint, request: Request) -> Response:
        answer = await scorer.score(endpoint, await request.body(), request.headers.get("content-type"))
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type.decode())

    @app.post("/predict", summary="Predict one row ('features', named or positional) or a batch ('instances')")
    async def predict(request: Request) -> Response:
        return await _score("predict", request)

    @app.post("/invocations", summary="MLflow scoring protocol (dataframe_split, dataframe_records, instances, "
                                      "inputs; or text/csv), answered like `mlflow models serve`")
    async def invocations(request: Request) -> Response:
        return await _score("invocations", request)

    openapi_cache: dict[str, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        model = store.current
        key = model.version if model is not None else ""
        if key not in openapi_cache:
            openapi_cache.clear()
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            if model is not None:
                document_scoring(document, model.schema, model.schema.models, version=model.version,
                                 task=model.task, max_batch=settings.max_batch)
            openapi_cache[key] = document
        return openapi_cache[key]

    app.openapi = openapi  # type: ignore[method-assign]

    # Server limits (driftwatch.server_limits): one gate for the scoring routes and every other route.
    gate = RequestGate(settings.server_limits().max_concurrent_requests)
    if metrics is not None:
        app.state.connection_closes = metrics.connection_closes
    app.add_middleware(LimitsMiddleware, max_body_bytes=settings.max_body_bytes, gate=gate)
    app.add_middleware(ServingASGI, gate=gate, scorer=scorer, max_body_bytes=settings.max_body_bytes, metrics=metrics)
    return app


def _warnings(version: str, loaded_from: str, registry: dict[str, Any]) -> list[str]:
    out = []
    if registry.get("registry_reachable") is False:
        out.append(f"the registry cannot be reached; serving v{version} "
                   f"{'from the local copy' if loaded_from == 'cache' else 'as loaded before'}")
    production = registry.get("production_version")
    if production is not None and production != version:
        out.append(f"the registry marks v{production} as production, but it has not loaded: "
                   f"{registry.get('last_error') or 'see logs'}")
    return out




def _git_commit() -> str:
    """The commit of the source checkout the service runs from, when it is one."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
