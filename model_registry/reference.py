"""Reference data registered with each version: what the drift exporter compares traffic with.

Format ``driftwatch.reference/v2`` (artifact folder ``reference/`` of the version's run; described in
docs/reference-format.md):

- ``features.parquet``: a sample of the training features, columns in signature order, dtypes kept
  exactly (``"01"`` stays a string; a pandas ``Categorical`` is stored as its values, so unused
  categories do not exist).
- ``predictions.parquet``: the model's own predictions on those rows, one per row. Classification:
  ``class_id`` (the label as the model returns it, any type), ``class_name`` (its display name) and
  ``probability`` (of the predicted class; null without ``predict_proba``). Regression: ``value``.
- ``holdout.csv`` (optional): the labeled holdout, ``actual``, ``predicted``, ``probability`` (top
  class probability); the quality service's reference quality and CBPE calibration (docs/quality.md).
- ``metadata.json``: ``format``, ``task``, ``model_name``, ``feature_names``, ``feature_types``
  (``numeric`` | ``categorical``), ``classes`` (the model's ``classes_`` in order, JSON-typed) and
  ``class_names`` (display names, same order) for classifiers, ``prediction_quantiles`` (of the
  predicted values) for regressors, ``rows``, ``created_at``.

``driftwatch.reference/v1`` (CSV files, classifiers only) is still read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_registry.tasks import TaskKind, class_display_names, detect_task, model_classes, plain, unwrap

REFERENCE_FORMAT = "driftwatch.reference/v2"
REFERENCE_FORMAT_V1 = "driftwatch.reference/v1"
REFERENCE_ARTIFACT_PATH = "reference"
FEATURES_FILE = "features.parquet"
PREDICTIONS_FILE = "predictions.parquet"
FEATURES_FILE_V1 = "features.csv"
PREDICTIONS_FILE_V1 = "predictions.csv"
METADATA_FILE = "metadata.json"
HOLDOUT_FILE = "holdout.csv"  # optional: the labeled holdout (quality service: reference quality, CBPE)
# Quantiles of the reference's predicted values kept for regressors: the bucket bounds of the
# served version's predicted-value histogram (docs/contract.md, model_predicted_value).
PREDICTION_QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class ReferenceData:
    features: pd.DataFrame
    predictions: pd.DataFrame
    metadata: dict[str, Any]

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata["feature_names"])

    @property
    def task(self) -> TaskKind:
        return "regression" if self.metadata.get("task") == "regression" else "classification"

    @property
    def classes(self) -> list[Any]:
        """The classifier's labels in ``classes_`` order (empty for a regressor)."""
        return list(self.metadata.get("classes") or [])

    @property
    def class_names(self) -> list[str]:
        return [str(n) for n in self.metadata.get("class_names") or []]

    @property
    def prediction_quantiles(self) -> dict[float, float]:
        return {float(q): float(v) for q, v in (self.metadata.get("prediction_quantiles") or [])}


def feature_kind(column: pd.Series) -> str:
    """``numeric`` for numbers (not booleans), ``categorical`` for everything else."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    return "numeric" if pd.api.types.is_numeric_dtype(dtype) else "categorical"


def plain_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``Categorical`` columns as their values (unused categories gone), other columns untouched."""
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out


def value_buckets(quantiles: dict[float, float] | Sequence[float]) -> tuple[float, ...]:
    """Histogram bounds from predicted-value quantiles: finite, rounded to 4 significant digits,
    distinct and sorted (a constant predictor gets one bound)."""
    values = quantiles.values() if isinstance(quantiles, dict) else quantiles
    out = set()
    for value in values:
        v = float(value)
        if math.isfinite(v):
            out.add(float(f"{v:.4g}"))
    return tuple(sorted(out))


def build_reference(model: Any, features: pd.DataFrame, class_names: Sequence[str] | None = None, *,
                    model_name: str, max_rows: int, seed: int = 0, task: str | None = None) -> ReferenceData:
    """Sample at most ``max_rows`` training rows and record the model's own predictions on them.
    ``class_names`` are display names in ``classes_`` order (default: the labels as text)."""
    estimator = unwrap(model)
    kind = detect_task(estimator, task)
    sample = features.sample(n=max_rows, random_state=seed) if len(features) > max_rows else features
    sample = plain_columns(sample.reset_index(drop=True))
    sample.columns = [str(c) for c in sample.columns]
    metadata: dict[str, Any] = {
        "format": REFERENCE_FORMAT,
        "task": kind,
        "model_name": model_name,
        "feature_names": list(sample.columns),
        "feature_types": {name: feature_kind(sample[name]) for name in sample.columns},
    }
    predicted = np.asarray(estimator.predict(sample)).ravel()
    if kind == "regression":
        values = predicted.astype("float64")
        predictions = pd.DataFrame({"value": values})
        finite = values[np.isfinite(values)]
        if finite.size:
            metadata["prediction_quantiles"] = [
                [q, float(v)] for q, v in zip(PREDICTION_QUANTILES, np.quantile(finite, PREDICTION_QUANTILES),
                                              strict=True)]
    else:
        classes = model_classes(estimator)
        names = class_display_names(classes, class_names)
        index = {c: i for i, c in enumerate(classes)}
        labels = [plain(v) for v in predicted.tolist()]
        positions = [index.get(label) for label in labels]
        probability: list[float | None] = [None] * len(labels)
        if hasattr(estimator, "predict_proba"):
            proba = np.asarray(estimator.predict_proba(sample), dtype="float64")
            probability = [round(float(row[p] if p is not None else row.max()), 6)
                           for row, p in zip(proba, positions, strict=True)]
        predictions = pd.DataFrame({
            "class_id": labels,
            "class_name": [names[p] if p is not None else str(label) for p, label in zip(positions, labels,
                                                                                          strict=True)],
            "probability": pd.Series(probability, dtype="float64"),
        })
        metadata["classes"] = classes
        metadata["class_names"] = names
    metadata["rows"] = len(sample)
    metadata["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return ReferenceData(features=sample, predictions=predictions, metadata=metadata)


def build_holdout(model: Any, features: pd.DataFrame, actual: Sequence[Any]) -> pd.DataFrame:
    """The version's labeled holdout for the quality service: ``actual``, ``predicted`` (the label as
    the model returns it) and, for classifiers, ``probability`` (the top class probability)."""
    frame = pd.DataFrame({"actual": list(actual), "predicted": np.asarray(model.predict(features)).ravel()})
    if hasattr(model, "predict_proba"):
        frame["probability"] = np.asarray(model.predict_proba(features)).max(axis=1).round(6)
    return frame


def write_reference(reference: ReferenceData, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    reference.features.to_parquet(folder / FEATURES_FILE, engine="pyarrow", index=False)
    reference.predictions.to_parquet(folder / PREDICTIONS_FILE, engine="pyarrow", index=False)
    (folder / METADATA_FILE).write_text(json.dumps(reference.metadata, indent=2) + "\n")
    return folder


def has_reference(folder: Path) -> bool:
    return (folder / METADATA_FILE).is_file()


def read_metadata(folder: Path) -> dict[str, Any]:
    path = folder / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"reference folder {folder} has no {METADATA_FILE}; register the version with "
                                "`driftwatch register` (or `driftwatch train` for the demo)")
    metadata: dict[str, Any] = json.loads(path.read_text())
    if metadata.get("format") not in (REFERENCE_FORMAT, REFERENCE_FORMAT_V1):
        raise ValueError(f"reference format {metadata.get('format')!r} is not {REFERENCE_FORMAT!r} "
                         f"(or {REFERENCE_FORMAT_V1!r})")
    return metadata


def read_reference(folder: Path) -> ReferenceData:
    """Read a reference folder (v2, or v1 CSV); fails with a clear message when a file is missing or
    of another format."""
    metadata = read_metadata(folder)
    v1 = metadata["format"] == REFERENCE_FORMAT_V1
    files = (FEATURES_FILE_V1, PREDICTIONS_FILE_V1) if v1 else (FEATURES_FILE, PREDICTIONS_FILE)
    for name in files:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"reference folder {folder} has no {name}; register the version with "
                                    "`driftwatch register` (or `driftwatch train` for the demo)")
    if v1:
        features = pd.read_csv(folder / files[0])
        predictions = pd.read_csv(folder / files[1])
        metadata = {**metadata, "task": "classification"}
        # v1 was written only for classifiers labelled 0..n-1, named by position.
        metadata.setdefault("classes", list(range(len(metadata.get("class_names") or []))))
    else:
        features = plain_columns(pd.read_parquet(folder / files[0], engine="pyarrow"))
        predictions = pd.read_parquet(folder / files[1], engine="pyarrow")
    return ReferenceData(features=features[metadata["feature_names"]], predictions=predictions,
                         metadata=metadata)
