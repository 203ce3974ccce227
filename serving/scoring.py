"""The prediction path: body in, answer out, every prediction counted, timed and logged by version.

Shared by ``POST /predict`` (the service's own answer: class id, class name, probabilities, model
version, prediction id per row) and ``POST /invocations`` (MLflow's scoring protocol and answer,
``{"predictions": [...]}``). Bad input is a 4xx counted as ``reason="validation"``; a model that raises
is a 500 for that request only, counted as ``reason="inference"``; no model is a 503 counted as
``reason="unavailable"``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from driftwatch import jsonsafe
from serving.metrics import OTHER_CLASS, ServingMetrics
from serving.model_store import LoadedModel, ModelStore
from serving.prediction_log import PredictionLog
from serving.predictor import predictor_input
from serving.request_formats import InputProblem

logger = logging.getLogger(__name__)

Endpoint = Literal["predict", "invocations"]
JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
PARQUET = "application/vnd.apache.parquet"
PARSE_IN_THREAD_BYTES = 256 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: bytes = JSON


def parse_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    if not value:
        return "", {}
    media, *params = value.split(";")
    parsed = {}
    for param in params:
        key, _, val = param.partition("=")
        parsed[key.strip().lower()] = val.strip().strip('"').lower()
    return media.strip().lower(), parsed


def parse_json(body: bytes) -> Any:
    """orjson first (fast); the standard library second, so NaN/Infinity reach validation and are
    refused naming their field rather than as 'not JSON'."""
    if not body.strip():
        raise InputProblem("", "the body is empty; send a JSON object", status=400)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as first:
        if "surrogate" in str(first):  # "\ud800" alone is not a character: nothing downstream could encode it
            raise InputProblem("", f"the body is not valid JSON: a lone UTF-16 surrogate escape ({first})",
                               status=400) from None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise InputProblem("", f"the body is not valid JSON ({first})", status=400) from None


class PredictionIds:
    """Random 128-bit ids as 32 hex characters, cut from one large random draw (uuid4() per row costs
    more than the rest of the bookkeeping together). Used from the event loop only."""

    def __init__(self, per_draw: int = 4096) -> None:
        self.per_draw = per_draw
        self._pool = ""
        self._next = per_draw

    def take(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            if self._next >= self.per_draw:
                self._pool = os.urandom(16 * self.per_draw).hex()
                self._next = 0
            start = self._next * 32
            out.append(self._pool[start:start + 32])
            self._next += 1
        return out


class Scorer:
    """Turns request bodies into answers for the current version."""

    def __init__(self, store: ModelStore, *, max_batch: int, metrics: ServingMetrics | None,
                 log: PredictionLog | None) -> None:
        self.store = store
        self.max_batch = max_batch
        self.metrics = metrics
        self.log = log
        self.predictions_total = 0
        self.ids = PredictionIds()

    async def score(self, endpoint: Endpoint, body: bytes, content_type: str | None) -> Answer:
        model = self.store.current
        if model is None:
            if self.metrics is not None:
                self.metrics.no_model.inc()
            return self._error(endpoint, 503, "unavailable",
                               "no model is loaded yet; see GET /health for why (registry, alias, load errors)")
        try:
            if len(body) > PARSE_IN_THREAD_BYTES:  # a large batch: parse it without holding up the event loop
                rows = await asyncio.to_thread(self._rows, endpoint, model, body, content_type)
            else:
                rows = self._rows(endpoint, model, body, content_type)
        except InputProblem as problem:
            return self.reject(endpoint, problem, model)
        started = time.perf_counter()
        try:
            output = await self._infer(model, rows)
        except Exception as exc:  # boundary: the model raised on this request; the service goes on
            if model.series is not None:
                model.series.inference_errors.inc()
            logger.warning("prediction failed: %s: %s", type(exc).__name__, exc,
                           extra={"model_version": model.version, "event": "inference_error"})
            return self._error(endpoint, 500, "inference", f"the model failed on this request "
                                                           f"({type(exc).__name__}: {exc})")
        elapsed = time.perf_counter() - started
        labels = output.labels
        n = len(labels)
        if len(labels) != len(rows):
            return self._error(endpoint, 500, "inference", f"the model answered {n} rows for {len(rows)}")
        if model.task == "regression":
            return self._values(endpoint, model, rows, labels, elapsed)
        index = model.class_index
        names = model.class_names
        ids = model.class_ids
        positions = [index.get(label) for label in labels]
        class_names = [names[p] if p is not None else OTHER_CLASS for p in positions]
        class_ids = [ids[p] if p is not None else label for p, label in zip(positions, labels, strict=True)]
        proba = output.probabilities.tolist() if output.probabilities is not None else None
        top = ([row[p] if p is not None else max(row) for row, p in zip(proba, positions, strict=True)]
               if proba is not None else [None] * n)
        prediction_ids = self.ids.take(n)
        self.predictions_total += n
        series = model.series
        if series is not None:
            series.duration.observe(elapsed)
            for name in class_names:
                series.predicted(name).inc()
        if self.log is not None:
            self.log.add(time.time(), model.log_model, rows, prediction_ids, positions, top, elapsed * 1000.0)
        if endpoint == "invocations":
            return Answer(200, orjson.dumps({"predictions": labels}))
        version = model.version
        predictions = [
            {"prediction_id": pid, "class_id": cid, "class_name": cname, "probability": p,
             "probabilities": dict(zip(names, prow, strict=True)) if prow is not None else None,
             "model_version": version}
            for pid, cid, cname, p, prow in zip(prediction_ids, class_ids, class_names, top,
                                               proba if proba is not None else [None] * n, strict=True)
        ]
        return Answer(200, orjson.dumps({"model_name": model.name, "model_version": version,
                                         "predictions": predictions}))

    def _values(self, endpoint: Endpoint, model: LoadedModel, rows: list[list[Any]], labels: list[Any],
                elapsed: float) -> Answer:
        """A regressor's answer: one value per row, observed in the predicted-value histogram and
        logged as ``{"value": ...}``."""
        n = len(labels)
        values = [float(v) if isinstance(v, int | float) else None for v in labels]
        prediction_ids = self.ids.take(n)
        self.predictions_total += n
        series = model.series
        if series is not None:
            series.duration.observe(elapsed)
            series.predicted_values(values)
        if self.log is not None:
            self.log.add(time.time(), model.log_model, rows, prediction_ids, [0] * n, values, elapsed * 1000.0)
        if endpoint == "invocations":
            return Answer(200, orjson.dumps({"predictions": labels}))
        version = model.version
        predictions = [{"prediction_id": pid, "value": value, "model_version": version}
                       for pid, value in zip(prediction_ids, values, strict=True)]
        return Answer(200, orjson.dumps({"model_name": model.name, "model_version": version,
                                         "predictions": predictions}))

    def _rows(self, endpoint: Endpoint, model: LoadedModel, body: bytes, content_type: str | None) -> list[list[Any]]:
        media, params = parse_content_type(content_type)
        charset = params.get("charset", "utf-8")
        if charset not in ("utf-8", "utf8"):
            raise InputProblem("Content-Type", f"charset {charset} is not supported; send UTF-8", status=415)
        if endpoint == "invocations":
            unknown = sorted(set(params) - {"charset"})
            if unknown:  # as mlflow models serve does
                raise InputProblem("Content-Type", f"unrecognized content type parameters: {', '.join(unknown)}",
                                   status=415)
            if media == "text/csv":
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise InputProblem("", "the CSV body is not UTF-8", status=400) from None
                return model.schema.requests.parse_csv(text, max_batch=self.max_batch)
            if media == PARQUET:
                return model.schema.requests.parse_parquet(body, max_batch=self.max_batch)
        if media != "application/json" and not media.endswith("+json"):
            accepted = ("application/json, text/csv or " + PARQUET) if endpoint == "invocations" else "application/json"
            raise InputProblem("Content-Type", f"{media or 'no content type'} is not supported; send {accepted}",
                               status=415)
        body_json = parse_json(body)
        if endpoint == "predict":
            return model.schema.requests.parse_predict(body_json, max_batch=self.max_batch)
        return model.schema.requests.parse_invocation(body_json, max_batch=self.max_batch)

    async def _infer(self, model: LoadedModel, rows: list[list[Any]]) -> Any:
        fault = model.fault
        if fault.latency_seconds > 0:
            await asyncio.sleep(fault.latency_seconds)
        fault.maybe_fail()
        predictor = model.predictor
        x = predictor_input(predictor, model.schema, rows)
        output = await asyncio.to_thread(predictor.predict, x) if predictor.blocking else predictor.predict(x)
        if fault.flip_rate > 0:
            output = fault.flip(output, sorted(model.class_index, key=model.class_index.__getitem__))
        return output

    def internal_error(self, endpoint: Endpoint) -> Answer:
        """A 500 for a fault on the prediction path itself, counted as ``reason="inference"`` (a release
        fault as far as HighErrorRate is concerned: this version's requests fail)."""
        model = self.store.current
        if model is not None and model.series is not None:
            model.series.inference_errors.inc()
        elif self.metrics is not None:
            self.metrics.no_model.inc()
        return self._error(endpoint, 500, "inference", "the service failed on this request; see its log")

    def reject(self, endpoint: Endpoint, problem: InputProblem, model: LoadedModel | None = None) -> Answer:
        """A 4xx for bad input, counted as ``reason="validation"``."""
        model = model or self.store.current
        if model is not None and model.series is not None:
            model.series.validation_errors.inc()
        if endpoint == "invocations":
            return mlflow_error(problem)
        return self._error(endpoint, problem.status, "validation", str(problem), field=problem.field)

    @staticmethod
    def _error(endpoint: Endpoint, status: int, reason: str, message: str, *, field: str | None = None) -> Answer:
        if endpoint == "invocations":
            code = "TEMPORARILY_UNAVAILABLE" if status == 503 else "INTERNAL_ERROR"
            return Answer(status, jsonsafe.dumps({"error_code": code, "message": message, **MLFLOW_CLASSES[code]}))
        body: dict[str, Any] = {"error": reason, "detail": message}
        if field:
            body["field"] = field
        return Answer(status, jsonsafe.dumps(body))


# What MLflow (3.x) adds to an error's JSON: its error class and SQLSTATE, derived from the error code
# (mlflow/error_classification.py); tests compare them with `mlflow models serve`'s own answers.
MLFLOW_CLASSES: dict[str, dict[str, str]] = {
    "BAD_REQUEST": {"sqlstate": "KAM00", "error_class": "INVALID_PARAMETER_VALUE"},
    "INVALID_PARAMETER_VALUE": {"sqlstate": "KAM01", "error_class": "SCHEMA_ENFORCEMENT_FAILED"},
    "INTERNAL_ERROR": {"sqlstate": "XXM00", "error_class": "CLIENT_INTERNAL_ERROR"},
    "TEMPORARILY_UNAVAILABLE": {"sqlstate": "XXM00", "error_class": "CLIENT_INTERNAL_ERROR"},
}


def mlflow_error(problem: InputProblem) -> Answer:
    """Bad input on /invocations, answered as ``mlflow models serve`` answers it: 415 as plain text;
    rows without the signature's shape as a schema-enforcement failure (``INVALID_PARAMETER_VALUE``,
    ``error_class`` ``SCHEMA_ENFORCEMENT_FAILED``); anything else as ``BAD_REQUEST``. MLflow has no
    size limits; ours answer 413 with ``BAD_REQUEST``."""
    message = str(problem)
    if problem.status == 415:
        return Answer(415, message.encode("utf-8", "backslashreplace"), TEXT)
    status = 413 if problem.status == 413 else 400
    code = "INVALID_PARAMETER_VALUE" if problem.schema else "BAD_REQUEST"
    return Answer(status, jsonsafe.dumps({"error_code": code, "message": message, **MLFLOW_CLASSES[code]}))
