"""Reference data registered with each version: what the drift exporter compares traffic with.

Format ``driftwatch.reference/v1`` (artifact folder ``reference/`` of the version's run):

- ``features.csv``: header = feature names in signature order; rows = a sample of training features.
- ``predictions.csv``: ``class_id``, ``class_name``, ``probability`` (the top class probability);
  the model's own predictions on those rows, one per row.
- ``holdout.csv`` (optional): the labeled holdout, ``actual``, ``predicted``, ``probability`` (top
  class probability); the quality service's reference quality and CBPE calibration (docs/quality.md).
- ``metadata.json``: ``format``, ``model_name``, ``feature_names``, ``feature_types``
  (``numeric`` | ``categorical``), ``class_names``, ``rows``, ``created_at``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REFERENCE_FORMAT = "driftwatch.reference/v1"
REFERENCE_ARTIFACT_PATH = "reference"
FEATURES_FILE = "features.csv"
PREDICTIONS_FILE = "predictions.csv"
METADATA_FILE = "metadata.json"
HOLDOUT_FILE = "holdout.csv"  # optional: the labeled holdout (quality service: reference quality, CBPE)


@dataclass(frozen=True)
class ReferenceData:
    features: pd.DataFrame
    predictions: pd.DataFrame
    metadata: dict[str, Any]

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata["feature_names"])

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])


def build_reference(model: Any, features: pd.DataFrame, class_names: Sequence[str], *, model_name: str,
                    max_rows: int, seed: int = 0) -> ReferenceData:
    """Sample at most ``max_rows`` training rows and record the model's own predictions on them."""
    sample = features.sample(n=max_rows, random_state=seed) if len(features) > max_rows else features
    sample = sample.reset_index(drop=True)
    proba = np.asarray(model.predict_proba(sample))
    class_ids = proba.argmax(axis=1)
    classes = [int(c) for c in model.classes_]
    predicted = [classes[i] for i in class_ids]
    predictions = pd.DataFrame({
        "class_id": predicted,
        "class_name": [class_names[c] if 0 <= c < len(class_names) else str(c) for c in predicted],
        "probability": proba.max(axis=1).round(6),
    })
    feature_types = {
        str(c): ("numeric" if pd.api.types.is_numeric_dtype(sample[c]) else "categorical") for c in sample
    }
    metadata = {
        "format": REFERENCE_FORMAT,
        "model_name": model_name,
        "feature_names": [str(c) for c in sample.columns],
        "feature_types": feature_types,
        "class_names": list(class_names),
        "rows": len(sample),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
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
    reference.features.to_csv(folder / FEATURES_FILE, index=False)
    reference.predictions.to_csv(folder / PREDICTIONS_FILE, index=False)
    (folder / METADATA_FILE).write_text(json.dumps(reference.metadata, indent=2) + "\n")
    return folder


def read_reference(folder: Path) -> ReferenceData:
    """Read a reference folder; fails with a clear message when a file is missing or of another format."""
    for name in (FEATURES_FILE, PREDICTIONS_FILE, METADATA_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"reference folder {folder} has no {name}; was the version registered "
                                    "by `driftwatch train`?")
    metadata = json.loads((folder / METADATA_FILE).read_text())
    if metadata.get("format") != REFERENCE_FORMAT:
        raise ValueError(f"reference format {metadata.get('format')!r} is not {REFERENCE_FORMAT!r}")
    features = pd.read_csv(folder / FEATURES_FILE)
    predictions = pd.read_csv(folder / PREDICTIONS_FILE)
    return ReferenceData(features=features[metadata["feature_names"]], predictions=predictions,
                         metadata=metadata)
