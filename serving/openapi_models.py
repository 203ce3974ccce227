"""The OpenAPI description of the scoring routes, built from the served version's signature.

Why a module of its own: this only *documents* the request and the answers (what ``/docs`` and
``/openapi.json`` show, and what the fuzz suite in tests/fuzz generates requests from and checks
answers against); requests are checked by ``serving.request_formats``. The two must agree: every
body the request schemas describe is one the service scores (the fuzz suite sends generated valid
bodies and expects a 200 for each), and every answer, errors included, has a documented status and
shape. The pydantic model of one named row (``RequestModels.features``) accepts exactly what the
request path accepts (a unit test holds them together); the rest is plain JSON Schema, because
pydantic cannot say "exactly one of these fields" or "a list of N values of these types".
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from serving.request_formats import FLOAT32_MAX, INT_RANGES

if TYPE_CHECKING:
    from serving.schema import ModelSchema

_PYTHON_TYPES: dict[str, type] = {"double": float, "float": float, "long": int, "integer": int,
                                  "boolean": bool, "string": str}
# The range of each numeric column type: a value outside it is refused (422), never passed on to
# overflow in the model, so the schema says so.
_BOUNDS: dict[str, tuple[float, float]] = {"double": (-sys.float_info.max, sys.float_info.max),
                                           "float": (-FLOAT32_MAX, FLOAT32_MAX),
                                           "long": INT_RANGES["long"], "integer": INT_RANGES["integer"]}
_CSV_VALUE = {"double": r"-?[0-9]{1,6}(\.[0-9]{1,6})?", "float": r"-?[0-9]{1,6}(\.[0-9]{1,3})?",
              "long": r"-?[0-9]{1,9}", "integer": r"-?[0-9]{1,9}", "string": r"[A-Za-z0-9_]{1,20}"}


@dataclass(frozen=True)
class RequestModels:
    features: type[BaseModel]  # one named row, as /predict takes it


def _model_title(model_name: str, suffix: str) -> str:
    words = re.split(r"[^0-9A-Za-z]+", model_name)
    return "".join(w[:1].upper() + w[1:] for w in words if w) + suffix


def build_request_models(schema: ModelSchema) -> RequestModels:
    """The pydantic model of one named row for this signature: numeric values finite and within
    their column type's range, booleans and strings strictly typed, no extra fields."""
    fields: dict[str, Any] = {}
    for spec in schema.features:
        python_type: Any = _PYTHON_TYPES[spec.kind]
        extra: dict[str, Any] = {}
        if spec.kind in _BOUNDS:
            extra["ge"], extra["le"] = _BOUNDS[spec.kind]
        if spec.kind in ("double", "float"):
            extra["allow_inf_nan"] = False
        if spec.required:
            fields[spec.name] = (python_type, Field(..., description=f"{spec.kind} (required)", strict=True, **extra))
        else:
            fields[spec.name] = (python_type | None,
                                 Field(None, description=f"{spec.kind} (optional)", strict=True, **extra))
    features = create_model(f"{_model_title(schema.model_name, '')}Features",
                            __config__=ConfigDict(extra="forbid"), **fields)
    return RequestModels(features=features)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _only(name: str, value: dict[str, Any], *, params: bool = False) -> dict[str, Any]:
    """An object with exactly the field ``name`` (and MLflow's ignored ``params``)."""
    properties: dict[str, Any] = {name: value}
    if params:
        properties["params"] = {"type": "object",
                                "description": "Accepted and ignored, as MLflow does for models without parameters."}
    return {"type": "object", "properties": properties, "required": [name], "additionalProperties": False}


def _csv_pattern(schema: ModelSchema) -> str | None:
    """A regular expression of CSV bodies (a header line, then 1-20 rows) the service scores, for the
    kinds whose values CSV can carry unquoted; None when a column is boolean."""
    values = [_CSV_VALUE.get(spec.kind) for spec in schema.features]
    if any(v is None for v in values) or any(not re.fullmatch(r"[A-Za-z0-9_]+", n) for n in schema.names):
        return None
    row = ",".join(f"({v})" for v in values)
    return f"^{re.escape(','.join(schema.names))}\\n({row}\\n){{1,20}}$"


def scoring_schemas(schema: ModelSchema, models: RequestModels, *, task: str, max_batch: int) -> dict[str, Any]:
    """The JSON schemas (OpenAPI components) of the requests and answers of /predict and /invocations."""
    title = _model_title(schema.model_name, "")
    features = models.features.model_json_schema()
    features.pop("$defs", None)
    record = {**features, "title": f"{title}Record", "additionalProperties": True,
              "description": "One named row; other columns are ignored (MLflow's scoring protocol)."}
    values = [features["properties"][name] for name in schema.names]
    n = len(values)
    row = {"title": f"{title}Row", "type": "array", "prefixItems": values, "minItems": n, "maxItems": n,
           "description": f"One row as a list of {n} values in this order: {', '.join(schema.names)}."}
    one_row = {"anyOf": [_ref(f"{title}Features"), _ref(f"{title}Row")]}
    batch = {"minItems": 1, "maxItems": max_batch, "type": "array"}
    records = {**batch, "items": _ref(f"{title}Record")}
    predict = {
        "title": f"{title}PredictRequest",
        "description": "Exactly one of 'features' (one row) or 'instances' (a batch); a row is named or positional.",
        "anyOf": [_only("features", one_row), _only("instances", {**batch, "items": one_row})],
    }
    split = {"type": "object", "required": ["columns", "data"], "additionalProperties": False,
             "properties": {"columns": {"const": list(schema.names)}, "data": {**batch, "items": _ref(f"{title}Row")}}}
    invocation = {
        "title": f"{title}Invocation",
        "description": "Exactly one of dataframe_split, dataframe_records, instances or inputs (records, one "
                       "record, or columns {name: [values]} of equal length).",
        "anyOf": [_only("dataframe_split", split, params=True), _only("dataframe_records", records, params=True),
                  *(_only(key, {"anyOf": [records, _ref(f"{title}Features")]}, params=True)
                    for key in ("instances", "inputs"))],
    }
    if task == "regression":
        prediction = {"type": "object", "required": ["prediction_id", "value", "model_version"],
                      "properties": {"prediction_id": {"type": "string"}, "value": {"type": ["number", "null"]},
                                     "model_version": {"type": "string"}}}
    else:
        prediction = {
            "type": "object", "required": ["prediction_id", "class_id", "class_name", "probability",
                                           "probabilities", "model_version"],
            "properties": {
                "prediction_id": {"type": "string"},
                "class_id": {"description": "The model's own label (a JSON number, string or boolean)"},
                "class_name": {"type": "string"},
                "probability": {"type": ["number", "null"], "description": "Probability of the predicted class "
                                "(null without predict_proba, or when the model's output is not a finite number)"},
                "probabilities": {"anyOf": [{"type": "object", "additionalProperties": {"type": ["number", "null"]}},
                                            {"type": "null"}], "description": "Probability of every class "
                                  "(null without predict_proba; a class's is null when the model's output for "
                                  "it is not a finite number, as for inputs far outside the training data)"},
                "model_version": {"type": "string"},
            }}
    return {
        f"{title}Features": features,
        f"{title}Record": record,
        f"{title}Row": row,
        f"{title}PredictRequest": predict,
        f"{title}Invocation": invocation,
        f"{title}Prediction": {**prediction, "title": f"{title}Prediction"},
        f"{title}PredictResponse": {
            "title": f"{title}PredictResponse", "type": "object",
            "required": ["model_name", "model_version", "predictions"],
            "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                           "predictions": {"type": "array", "items": _ref(f"{title}Prediction")}}},
    }


# Error answers. /predict: the service's own shape; a limit of the server (body read timeout,
# concurrency) answers {"detail": ...} before any route runs.
SERVING_ERROR = {
    "title": "ServingError", "type": "object", "required": ["detail"],
    "properties": {"error": {"enum": ["validation", "inference", "unavailable"]},
                   "detail": {"type": "string"},
                   "field": {"type": "string", "description": "Where the problem is (validation errors)"}},
}
# /invocations: MLflow's error shape (as `mlflow models serve` answers), or a server limit's {"detail"}.
MLFLOW_ERROR = {
    "title": "MlflowError", "type": "object", "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"},
                   "sqlstate": {"type": "string"}, "error_class": {"type": "string"}},
}
LIMIT_ERROR = {"title": "LimitError", "type": "object", "required": ["detail"],
               "properties": {"detail": {"type": "string"}}}


def _errors(predict: bool) -> dict[str, Any]:
    shape = _ref("ServingError") if predict else {"anyOf": [_ref("MlflowError"), _ref("LimitError")]}

    def answer(text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": shape}}}

    out = {
        "400": answer("Not JSON (or CSV, Parquet)" + ("" if predict else
                                                      ", or rows that do not fit the signature (MLflow's codes)")),
        "408": answer("The body did not arrive within DRIFTWATCH_HTTP_BODY_TIMEOUT_SECONDS"),
        "413": answer("Body over DRIFTWATCH_MAX_BODY_BYTES, or batch over DRIFTWATCH_MAX_BATCH"),
        "415": answer("Content type other than JSON, or a charset other than UTF-8") if predict else {
            "description": "Content type other than JSON, CSV or Parquet; a charset other than UTF-8 "
                           "(plain text, as MLflow)", "content": {"text/plain": {"schema": {"type": "string"}}}},
        "500": answer("The model raised on this request (counted in model_prediction_errors_total)"),
        "503": answer("No model loaded, or DRIFTWATCH_HTTP_MAX_CONCURRENT_REQUESTS requests being answered "
                      "(Retry-After)"),
    }
    if predict:
        out["422"] = answer("Input that does not fit the signature; 'field' names where")
    return out


def document_scoring(document: dict[str, Any], schema: ModelSchema, models: RequestModels, *, version: str,
                     task: str, max_batch: int) -> None:
    """Put the request and answer schemas of the served version into FastAPI's OpenAPI document."""
    title = _model_title(schema.model_name, "")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(scoring_schemas(schema, models, task=task, max_batch=max_batch))
    components.update({"ServingError": SERVING_ERROR, "MlflowError": MLFLOW_ERROR, "LimitError": LIMIT_ERROR})
    invocations_answer = {"type": "object", "required": ["predictions"], "properties": {
        "predictions": {"type": "array", "description": "The model's predict, one entry per row"}}}
    for path, request_name, answer in (("/predict", "PredictRequest", _ref(f"{title}PredictResponse")),
                                       ("/invocations", "Invocation", invocations_answer)):
        operation = document["paths"][path]["post"]
        content: dict[str, Any] = {"application/json": {"schema": _ref(title + request_name)}}
        if path == "/invocations":
            csv: dict[str, Any] = {"type": "string", "description": "A header line with the column names, then rows"}
            pattern = _csv_pattern(schema)
            if pattern is not None:
                csv["pattern"] = pattern
            content["text/csv"] = {"schema": csv}
            content["application/vnd.apache.parquet"] = {"schema": {"type": "string", "format": "binary"}}
        operation["requestBody"] = {"required": True, "content": content}
        operation["description"] = f"Request schema of the version being served (v{version})."
        operation["responses"] = {
            "200": {"description": "Predictions", "content": {"application/json": {"schema": answer}}},
            **_errors(path == "/predict"),
        }
