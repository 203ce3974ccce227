"""The OpenAPI description of the scoring routes, built from the served version's signature.

Why a module of its own: these pydantic models only *document* the request and the answer (what
``/docs`` and ``/openapi.json`` show, and what the fuzz suite generates requests from); requests are
checked by ``serving.request_formats``, which must accept exactly what these models describe (a
unit test holds them together). Built with ``pydantic.create_model`` once per loaded version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

if TYPE_CHECKING:
    from serving.schema import ModelSchema

_PYTHON_TYPES: dict[str, type] = {"double": float, "float": float, "long": int, "integer": int,
                                  "boolean": bool, "string": str}



@dataclass(frozen=True)
class RequestModels:
    features: type[BaseModel]
    predict: type[BaseModel]
    invocation: type[BaseModel]
    prediction: type[BaseModel]
    predict_response: type[BaseModel]


def _model_title(model_name: str, suffix: str) -> str:
    words = re.split(r"[^0-9A-Za-z]+", model_name)
    return "".join(w[:1].upper() + w[1:] for w in words if w) + suffix


def build_request_models(schema: ModelSchema) -> RequestModels:
    """Pydantic models of the request and answer for this signature (they document; ``ModelSchema``
    validates). Numeric fields are finite; extra fields are forbidden, as on the request path."""
    fields: dict[str, Any] = {}
    for spec in schema.features:
        python_type: Any = _PYTHON_TYPES[spec.kind]
        extra: dict[str, Any] = {"allow_inf_nan": False} if spec.kind in ("double", "float") else {}
        if spec.required:
            fields[spec.name] = (python_type, Field(..., description=f"{spec.kind} (required)", strict=True, **extra))
        else:
            fields[spec.name] = (python_type | None,
                                 Field(None, description=f"{spec.kind} (optional)", strict=True, **extra))
    title = _model_title(schema.model_name, "")
    features = create_model(f"{title}Features", __config__=ConfigDict(extra="forbid"), **fields)
    positional = list[Any]
    row_doc = (f"Named features, or a list of {len(schema.names)} values in this order: "
               f"{', '.join(schema.names)}.")
    predict = create_model(
        f"{title}PredictRequest", __config__=ConfigDict(extra="forbid"),
        features=(features | positional | None, Field(None, description="One row. " + row_doc)),
        instances=(list[features | positional] | None,  # type: ignore[valid-type]
                   Field(None, min_length=1, description="A batch of rows (send this or 'features'). " + row_doc)),
    )
    record = dict[str, Any]
    invocation = create_model(
        f"{title}Invocation",
        dataframe_split=(dict[str, Any] | None, Field(None, description=f"{{'columns': [...], 'data': [[...]]}} "
                                                                         f"with columns {list(schema.names)}")),
        dataframe_records=(list[features] | None, Field(None)),  # type: ignore[valid-type]
        instances=(list[record] | dict[str, Any] | None, Field(None)),
        inputs=(list[record] | dict[str, Any] | None, Field(None)),
        params=(dict[str, Any] | None, Field(None, description="Accepted and ignored, as MLflow does for "
                                                                 "models without parameters.")),
    )
    prediction = create_model(
        f"{title}Prediction",
        prediction_id=(str, ...), class_id=(int | str | None, ...), class_name=(str, ...),
        probability=(float | None, Field(None, description="Probability of the predicted class.")),
        probabilities=(dict[str, float] | None, Field(None, description="Probability of every class.")),
        model_version=(str, ...),
    )
    predict_response = create_model(
        f"{title}PredictResponse",
        model_name=(str, ...), model_version=(str, ...),
        predictions=(list[prediction], ...),  # type: ignore[valid-type]
    )
    return RequestModels(features=features, predict=predict, invocation=invocation, prediction=prediction,
                         predict_response=predict_response)


def model_json_schemas(models: RequestModels) -> dict[str, Any]:
    """JSON schemas of the request models, with their definitions, for the OpenAPI document."""
    out: dict[str, Any] = {}
    for model in (models.predict, models.invocation, models.predict_response):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def document_scoring(document: dict[str, Any], models: RequestModels, version: str) -> None:
    """Put the request and answer schemas of the served version into FastAPI's OpenAPI document."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(model_json_schemas(models))

    def ref(model: Any) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    for path, request_model, answer in (("/predict", models.predict, ref(models.predict_response)),
                                        ("/invocations", models.invocation, {"type": "object", "properties": {
                                            "predictions": {"type": "array", "items": {}}}})):
        operation = document["paths"][path]["post"]
        content: dict[str, Any] = {"application/json": {"schema": ref(request_model)}}
        if path == "/invocations":
            content["text/csv"] = {"schema": {"type": "string"}}
            content["application/vnd.apache.parquet"] = {"schema": {"type": "string", "format": "binary"}}
        operation["requestBody"] = {"required": True, "content": content}
        operation["description"] = f"Request schema of the version being served (v{version})."
        operation["responses"] = {
            "200": {"description": "Predictions", "content": {"application/json": {"schema": answer}}},
            "400": {"description": "Not JSON, or (invocations) input that does not fit the signature"},
            "413": {"description": "Body or batch over the limit"},
            "415": {"description": "Wrong content type"},
            "422": {"description": "Input that does not fit the signature; the message names the field"},
            "500": {"description": "The model raised on this request"},
            "503": {"description": "No model loaded"},
        }
