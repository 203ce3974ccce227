"""Loading one cached version into something that answers: signature, predictor, warm-up, classes.

Why its own module: it is the slow, CPU-bound part (MLflow model load, optional ONNX compile,
warm-up on reference rows) and has no state; the store runs it in a worker thread and swaps the
result in. Everything a prediction needs about a version lives in ``LoadedModel``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from driftwatch.clock import iso_utc
from model_registry import VersionInfo
from model_registry.reference import ReferenceData, read_reference, value_buckets
from model_registry.tasks import TaskKind, plain
from model_registry.versions import TAG_TASK
from serving.metrics import ModelSeries
from serving.prediction_log import LogModel
from serving.predictor import Fault, LoadedPredictor, Predictor, load_predictor
from serving.schema import ModelSchema, features_from_signature
from serving.settings import ServingSettings

logger = logging.getLogger(__name__)

LoadedFrom = Literal["registry", "cache"]
WARMUP_ROWS = 1000
# A regressor without reference quantiles still gets a histogram (powers of ten around zero).
DEFAULT_VALUE_BUCKETS = (-1000.0, -100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0, 1000.0)


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
    task: TaskKind = "classification"
    value_buckets: tuple[float, ...] = ()  # regressors: bounds of the predicted-value histogram
    series: ModelSeries | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "run_id": self.run_id, "uri": self.uri,
            "artifact_source": self.artifact_source, "alias": self.alias, "loaded_from": self.loaded_from,
            "loaded_at": iso_utc(self.loaded_at, timespec="seconds"), "created_at": self.created_at,
            "inference_backend": self.predictor.backend, "inference_check": self.check,
            "fault": self.fault.describe(), "features": [{"name": f.name, "type": f.kind, "required": f.required}
                                                         for f in self.schema.features],
            "task": self.task, "classes": self.class_names,
            "class_labels": self.class_ids if self.task == "classification" else None,
            "value_buckets": list(self.value_buckets) if self.task == "regression" else None,
        }


def load_version(folder: Path, info: VersionInfo, settings: ServingSettings, *, loaded_from: LoadedFrom) -> LoadedModel:
    """Load a cached version folder: schema from the signature, task kind, predictor, warm-up, classes
    (the model's ``classes_`` in order, named by the reference) or predicted-value buckets."""
    import mlflow

    model_dir = folder / "model"
    signature = mlflow.models.Model.load(str(model_dir / "MLmodel")).signature
    schema = ModelSchema(features_from_signature(signature), model_name=info.name)
    reference = _reference(folder)
    warmup = _warmup_rows(reference, model_dir, schema)
    task = info.tags.get(TAG_TASK) or (reference.task if reference is not None else None)
    loaded: LoadedPredictor = load_predictor(model_dir, schema, warmup, backend=settings.inference_backend,
                                             task=task)
    classes: list[Any] = []
    names: list[str] = []
    buckets: tuple[float, ...] = ()
    if loaded.task == "classification":
        classes = loaded.classes if loaded.classes is not None else (reference.classes if reference else [])
        named = reference is not None and len(reference.class_names) == len(classes) and (
            not reference.classes or [str(c) for c in reference.classes] == [str(c) for c in classes])
        names = list(reference.class_names) if named and reference is not None else [str(c) for c in classes]
    else:
        buckets = value_buckets(reference.prediction_quantiles) if reference is not None else ()
        buckets = buckets or DEFAULT_VALUE_BUCKETS
    return LoadedModel(
        name=info.name, version=info.version, run_id=info.run_id, artifact_source=info.source,
        alias=settings.production_label, uri=settings.production_uri, schema=schema,
        predictor=loaded.predictor, fault=loaded.fault, class_names=names, class_ids=list(classes),
        class_index={c: i for i, c in enumerate(classes)}, loaded_from=loaded_from, loaded_at=time.time(),
        created_at=info.created_at.isoformat(), tags=dict(info.tags), check=loaded.check, path=folder,
        log_model=LogModel(model={"name": info.name, "version": info.version, "source": settings.production_uri},
                           names=schema.names, kinds=tuple(f.kind for f in schema.features), class_ids=list(classes),
                           class_names=names, task=loaded.task),
        task=loaded.task, value_buckets=buckets,
    )


def _reference(folder: Path) -> ReferenceData | None:
    try:
        return read_reference(folder / "reference")
    except (OSError, ValueError, KeyError) as exc:
        logger.debug("no usable reference data in %s: %s", folder, exc)
        return None


def _warmup_rows(reference: ReferenceData | None, model_dir: Path, schema: ModelSchema) -> list[list[Any]]:
    """Rows of the reference sample (or the model's input example) in signature order."""
    frame: pd.DataFrame | None = reference.features.head(WARMUP_ROWS) if reference is not None else None
    if frame is None or not set(schema.names) <= set(frame.columns):
        frame = None
        with contextlib.suppress(OSError, ValueError, KeyError):
            example = json.loads((model_dir / "input_example.json").read_text())
            frame = pd.DataFrame(example["data"], columns=example["columns"])
    if frame is None or not set(schema.names) <= set(frame.columns):
        return []
    frame = frame[list(schema.names)]
    rows = [[None if isinstance(v, float) and v != v else plain(v) for v in row]
            for row in frame.itertuples(index=False)]
    clean = []
    for row in rows:
        try:
            clean.append(schema.coerce_record(dict(zip(schema.names, row, strict=True)), "warm-up"))
        except ValueError:
            continue
    return clean
