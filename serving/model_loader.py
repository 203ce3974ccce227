"""Loading one cached version into something that answers: signature, predictor, warm-up, classes.

Why its own module: it is the slow, CPU-bound part (MLflow model load, optional ONNX compile,
warm-up on reference rows) and has no state; the store runs it in a worker thread and swaps the
result in. Everything a prediction needs about a version lives in ``LoadedModel``.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from driftwatch.clock import iso_utc
from model_registry import VersionInfo
from serving.metrics import ModelSeries
from serving.prediction_log import LogModel
from serving.predictor import Fault, LoadedPredictor, Predictor, load_predictor
from serving.schema import ModelSchema, features_from_signature
from serving.settings import ServingSettings

LoadedFrom = Literal["registry", "cache"]
WARMUP_ROWS = 1000


@dataclass
class LoadedModel:
    """One version, ready to answer."""

    name: str
    version: str
    run_id: str | None
    artifact_source: str
    alias: str
    uri: str
    schema: ModelSchema
    predictor: Predictor
    fault: Fault
    class_names: list[str]
    class_ids: list[Any]
    class_index: dict[Any, int]
    loaded_from: LoadedFrom
    loaded_at: float
    created_at: str | None
    tags: dict[str, str]
    check: str
    path: Path
    log_model: LogModel  # what every prediction log line of this version shares
    series: ModelSeries | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "run_id": self.run_id, "uri": self.uri,
            "artifact_source": self.artifact_source, "alias": self.alias, "loaded_from": self.loaded_from,
            "loaded_at": iso_utc(self.loaded_at, timespec="seconds"), "created_at": self.created_at,
            "inference_backend": self.predictor.backend, "inference_check": self.check,
            "fault": self.fault.describe(), "features": [{"name": f.name, "type": f.kind, "required": f.required}
                                                         for f in self.schema.features],
            "classes": self.class_names,
        }


def load_version(folder: Path, info: VersionInfo, settings: ServingSettings, *, loaded_from: LoadedFrom) -> LoadedModel:
    """Load a cached version folder: schema from the signature, predictor, warm-up, class names."""
    import mlflow

    model_dir = folder / "model"
    signature = mlflow.models.Model.load(str(model_dir / "MLmodel")).signature
    schema = ModelSchema(features_from_signature(signature), model_name=info.name)
    warmup, reference_classes = _warmup_rows(folder, model_dir, schema)
    loaded: LoadedPredictor = load_predictor(model_dir, schema, warmup, backend=settings.inference_backend)
    classes = loaded.classes
    if classes is None:
        classes = list(range(len(reference_classes))) if reference_classes else []
    if reference_classes and len(reference_classes) == len(classes):
        names = [str(n) for n in reference_classes]
    else:
        names = [str(c) for c in classes]
    class_ids: list[Any] = [c if isinstance(c, int) else i for i, c in enumerate(classes)]
    return LoadedModel(
        name=info.name, version=info.version, run_id=info.run_id, artifact_source=info.source,
        alias=settings.production_label, uri=settings.production_uri, schema=schema,
        predictor=loaded.predictor, fault=loaded.fault, class_names=names, class_ids=class_ids,
        class_index={c: i for i, c in enumerate(classes)}, loaded_from=loaded_from, loaded_at=time.time(),
        created_at=info.created_at.isoformat(), tags=dict(info.tags), check=loaded.check, path=folder,
        log_model=LogModel(model={"name": info.name, "version": info.version, "source": settings.production_uri},
                           names=schema.names, kinds=tuple(f.kind for f in schema.features), class_ids=class_ids,
                           class_names=names),
    )


def _warmup_rows(folder: Path, model_dir: Path, schema: ModelSchema) -> tuple[list[list[Any]], list[str] | None]:
    """Rows of the reference sample (or the model's input example) in signature order, and class names."""
    reference = folder / "reference"
    class_names: list[str] | None = None
    frame: pd.DataFrame | None = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        metadata = json.loads((reference / "metadata.json").read_text())
        class_names = [str(n) for n in metadata.get("class_names", [])] or None
    with contextlib.suppress(OSError, ValueError, KeyError):
        frame = pd.read_csv(reference / "features.csv").head(WARMUP_ROWS)
    if frame is None or not set(schema.names) <= set(frame.columns):
        frame = None
        with contextlib.suppress(OSError, ValueError, KeyError):
            example = json.loads((model_dir / "input_example.json").read_text())
            frame = pd.DataFrame(example["data"], columns=example["columns"])
    if frame is None or not set(schema.names) <= set(frame.columns):
        return [], class_names
    frame = frame[list(schema.names)]
    rows = [[None if isinstance(v, float) and v != v else v for v in row] for row in frame.itertuples(index=False)]
    clean = []
    for row in rows:
        try:
            clean.append(schema.coerce_record(dict(zip(schema.names, row, strict=True)), "warm-up"))
        except ValueError:
            continue
    return clean, class_names
