"""The features of one served version, from its MLflow signature: names, types, order, and the model
input built from parsed rows.

Why a module of its own: this is what a version *is* to the service. Parsing the request formats
into rows is ``serving.request_formats``; describing them in OpenAPI is ``serving.openapi_models``.
A ``ModelSchema`` holds one of each (``.requests``, ``.models``), built once per loaded version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from serving.openapi_models import build_request_models
from serving.request_formats import RequestParser

FeatureKind = Literal["double", "float", "long", "integer", "boolean", "string"]
NUMERIC_KINDS = frozenset({"double", "float", "long", "integer"})
SUPPORTED_KINDS = frozenset({"double", "float", "long", "integer", "boolean", "string"})


class UnsupportedSignature(ValueError):
    """The model's signature cannot drive a request schema (no signature, tensors, unsupported types)."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: FeatureKind
    required: bool = True

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_KINDS


class ModelSchema:
    """Features of one model version, in signature order."""

    def __init__(self, features: Sequence[FeatureSpec], *, model_name: str = "model") -> None:
        if not features:
            raise UnsupportedSignature("the model signature has no input columns")
        names = [f.name for f in features]
        if len(set(names)) != len(names):
            raise UnsupportedSignature(f"the model signature repeats input names: {names}")
        self.features = tuple(features)
        self.names = tuple(names)
        self.model_name = model_name
        self.all_numeric = all(f.numeric for f in features)
        self.requests = RequestParser(self)
        self.models = build_request_models(self)

    def coerce_record(self, record: dict[str, Any], where: str) -> list[Any]:
        """One named record, converted as /invocations does (extra columns ignored)."""
        return self.requests.coerce_record(record, where)

    # ------------------------------------------------------------ model input
    def to_matrix(self, rows: list[list[Any]]) -> np.ndarray:
        """A float64 matrix (all-numeric schemas) in signature order."""
        return np.array(rows, dtype=np.float64)

    def to_frame(self, rows: list[list[Any]]) -> pd.DataFrame:
        """A DataFrame with the signature's column names and dtypes (what the model's own code expects)."""
        frame = pd.DataFrame(rows, columns=list(self.names))
        for spec in self.features:
            if spec.kind in ("double", "float"):
                frame[spec.name] = frame[spec.name].astype("float64" if spec.kind == "double" else "float32")
            elif spec.kind in ("long", "integer") and not frame[spec.name].isna().any():
                frame[spec.name] = frame[spec.name].astype("int64" if spec.kind == "long" else "int32")
        return frame

    def records(self, rows: list[list[Any]]) -> list[dict[str, Any]]:
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in rows]



# ------------------------------------------------------------------ from an MLflow signature
def features_from_signature(signature: Any) -> list[FeatureSpec]:
    """Feature specs from an ``mlflow.models.ModelSignature`` (column-based inputs only)."""
    if signature is None or signature.inputs is None:
        raise UnsupportedSignature("the model has no signature; log it with a signature (infer_signature) "
                                   "so the service knows its features")
    inputs = signature.inputs
    if inputs.is_tensor_spec() or not inputs.has_input_names():
        raise UnsupportedSignature("the model signature is tensor-based or unnamed; the service needs named "
                                   "columns (log the model with a DataFrame input example)")
    specs = []
    for col in inputs.inputs:
        kind = getattr(getattr(col, "type", None), "name", None)
        if kind not in SUPPORTED_KINDS:
            shown = kind or getattr(col, "type", "?")
            raise UnsupportedSignature(f"input {col.name!r} has type {shown}, which the service does not serve "
                                       f"(supported: {', '.join(sorted(SUPPORTED_KINDS))})")
        specs.append(FeatureSpec(name=str(col.name), kind=kind, required=bool(getattr(col, "required", True))))
    return specs
