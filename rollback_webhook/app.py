"""HTTP side of the rollback webhook: POST /alerts, GET /decisions, /metrics, /health.

Status codes are what Alertmanager acts on: 401 without the bearer token, 400/413/422 for a body it
should not resend (it never retries 4xx), 200 for every decision (declines included), 503 only
when the registry cannot be reached, so that the retry it sends is decided afresh.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import FastAPI, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from driftwatch.auth import bearer_matches
from driftwatch.redact import redact
from driftwatch.server_limits import LIMIT_RESPONSES, Problem
from driftwatch.service import add_http_layers
from rollback_webhook.actions import RegistryPort, Reloader, ServingReloader
from rollback_webhook.decision import ALL_DECISION_LABELS
from rollback_webhook.metrics import WebhookMetrics
from rollback_webhook.payload import AlertmanagerPayload
from rollback_webhook.service import RegistryUnreachable, RetryLater, RollbackService
from rollback_webhook.settings import WebhookSettings
from rollback_webhook.store import DecisionStorePort, StoreUnavailableError

log = logging.getLogger("rollback_webhook")
RETRY_AFTER_SECONDS = "10"
MAX_DECISIONS_LISTED = 1000
SHUTDOWN_RELOAD_WAIT_SECONDS = 5.0
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong bearer token (DRIFTWATCH_WEBHOOK_TOKEN)"}}
if TYPE_CHECKING:
    DecisionLabel = str
else:  # the labels as an enum, so that FastAPI checks a filter (422) and OpenAPI lists the values
    DecisionLabel = StrEnum("DecisionLabel", [(label, label) for label in ALL_DECISION_LABELS])


def _problem(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": redact(detail)}, status_code=status, headers=headers or None)


def create_app(settings: WebhookSettings, *, registry: CollectorRegistry | None = None,
               model_registry: RegistryPort | None = None, store: DecisionStorePort | None = None,
               reloader: Reloader | None = None, service: RollbackService | None = None) -> FastAPI:
    """The webhook app. ``model_registry`` defaults to ``model_registry.ModelRegistry`` on
    ``settings.registry``, ``store`` to the one ``settings.store_location`` names (SQLite file or PostgreSQL)."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = WebhookMetrics(registry, settings.model_name)
    if model_registry is None:
        from model_registry import ModelRegistry

        model_registry = ModelRegistry(settings.registry)
    store = store if store is not None else settings.open_store()
    try:
        metrics.restore_last_rollback(store.last_rollback_at(settings.model_name))
    except StoreUnavailableError as exc:  # PostgreSQL down at start-up: alerts get 503 until it is back
        log.warning("decision store not reachable at start-up", extra={"error": str(exc)})
    if reloader is None:
        reloader = ServingReloader(settings.serving_url_list, settings.resolved_admin_token(),
                                   timeout_seconds=settings.reload_timeout_seconds,
                                   resolve_all=settings.serving_urls_resolve_all)
    policy = settings.policy()
    service = service or RollbackService(model_name=settings.model_name, policy=policy, registry=model_registry,
                                         store=store, metrics=metrics, reloader=reloader)
    token = settings.resolved_token().encode()

    def authorized(request: Request) -> bool:
        return bearer_matches(request.headers.get("authorization"), token)

    def unauthorized() -> JSONResponse:
        return _problem(401, "missing or wrong bearer token (Authorization: Bearer <DRIFTWATCH_WEBHOOK_TOKEN>)",
                        **{"WWW-Authenticate": "Bearer"})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # Let reload calls in flight finish (bounded): serving would pick the change up anyway.
        await run_in_threadpool(service.join_reloads, SHUTDOWN_RELOAD_WAIT_SECONDS)

    app = FastAPI(title="Driftwatch rollback webhook", lifespan=lifespan, responses=LIMIT_RESPONSES)
    add_http_layers(app, max_body_bytes=settings.max_body_bytes, limits=settings.server_limits(),
                    connection_closes=metrics.connection_closes, observe=metrics.http.observe)
    app.state.service = service
    app.state.metrics = metrics
    app.state.store = store

    @app.post("/alerts", responses={
        **UNAUTHORIZED,
        400: {"model": Problem, "description": "The body is not JSON"},
        413: {"model": Problem, "description": "The body is over DRIFTWATCH_WEBHOOK_MAX_BODY_BYTES"},
        422: {"model": Problem, "description": "Not an Alertmanager webhook payload (version 4)"},
        503: {"model": Problem, "description": "The registry or the decision store cannot be reached, or the "
                                               "incident is being decided by another delivery: retry (Retry-After)"}})
    async def alerts(request: Request) -> Response:
        """Alertmanager's webhook (payload version 4). One decision per alert, each recorded once."""
        if not authorized(request):
            return unauthorized()
        body = await request.body()  # at most DRIFTWATCH_WEBHOOK_MAX_BODY_BYTES: LimitsMiddleware read it
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _problem(400, f"the body is not JSON: {exc}")
        try:
            payload = AlertmanagerPayload.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                                 for e in exc.errors()[:10])
            return _problem(422, f"not an Alertmanager webhook payload (version 4): {problems}")
        try:
            results = await run_in_threadpool(service.handle, payload)
        except RegistryUnreachable as exc:
            return _problem(503, f"the model registry cannot be reached; retry later: {exc}",
                            **{"Retry-After": RETRY_AFTER_SECONDS})
        except RetryLater as exc:
            return _problem(503, str(exc), **{"Retry-After": RETRY_AFTER_SECONDS})
        body_out: dict[str, Any] = {"results": [r.to_dict() for r in results]}
        if payload.truncated_alerts:
            body_out["truncated_alerts"] = payload.truncated_alerts
        return JSONResponse(body_out)

    @app.get("/decisions", responses={
        **UNAUTHORIZED, 503: {"model": Problem, "description": "The decision store cannot be reached"}})
    def decisions(request: Request,
                  limit: Annotated[int, Query(ge=1, le=MAX_DECISIONS_LISTED)] = 100,
                  decision: Annotated[DecisionLabel | None, Query()] = None,
                  model_version: Annotated[str | None, Query()] = None) -> Response:
        """Recent decisions, newest first, with their reasons (bearer token required). An unknown
        ``decision`` is FastAPI's 422 (HTTPValidationError), like any other bad parameter."""
        if not authorized(request):
            return unauthorized()
        try:
            records = store.recent(limit=limit, decision=None if decision is None else str(decision),
                                   model_version=model_version)
        except StoreUnavailableError as exc:
            return _problem(503, str(exc), **{"Retry-After": RETRY_AFTER_SECONDS})
        return JSONResponse({"model_name": settings.model_name, "decisions": [r.to_dict() for r in records]})

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics_route() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", responses={503: {"model": Problem, "description": "The decision store cannot be read"}})
    def health() -> JSONResponse:
        """Alive and able to read its decision store (the registry is checked per alert, not here)."""
        try:
            store.check()
        except (sqlite3.Error, StoreUnavailableError) as exc:
            return JSONResponse({"status": "store_unavailable", "detail": redact(str(exc))}, status_code=503)
        return JSONResponse({"status": "ok", "model_name": settings.model_name, "policy": policy.describe()})

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with the body of POST /alerts (read by hand, so that its errors keep
        their statuses) described by the payload model."""
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            body = AlertmanagerPayload.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(body.pop("$defs", {}))
            schemas["AlertmanagerPayload"] = body
            document["paths"]["/alerts"]["post"]["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AlertmanagerPayload"}}}}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
