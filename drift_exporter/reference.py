"""The production version's reference data, prepared once and cached per version.

Loaded through ``model_registry`` (``download_reference`` + ``read_reference``), then prepared for
fast checks: sorted samples, quantile bins and moments for numeric features, category tables for
categorical ones, and the class counts of the model's own predictions.
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from drift_exporter.decisions import Kind
from drift_exporter.stats import (
    CategoricalReference,
    NumericReference,
    normalize_category,
    prepare_categorical,
    prepare_numeric,
)
from model_registry.reference import ReferenceData, read_reference
from model_registry.tasks import TaskKind


class ReferenceSource(Protocol):
    """What the exporter needs from the registry (``model_registry.ModelRegistry`` fits)."""

    def download_reference(self, version: str, dst: Path) -> Path: ...


@dataclass(frozen=True)
class PreparedReference:
    model_name: str
    version: str
    feature_names: tuple[str, ...]
    kinds: dict[str, Kind]
    numeric: dict[str, NumericReference]
    categorical: dict[str, CategoricalReference]
    predictions: CategoricalReference  # predicted class names on the reference rows (empty for a regressor)
    rows: int
    data: ReferenceData  # kept for the Evidently report
    task: TaskKind = "classification"
    prediction_values: NumericReference | None = None  # a regressor's predicted values on the reference rows

    @property
    def numeric_names(self) -> frozenset[str]:
        return frozenset(self.numeric)


def prepare_reference(data: ReferenceData, *, model_name: str, version: str, psi_bins: int = 10,
                      max_categories: int = 50) -> PreparedReference:
    """Prepare every feature column and the reference predictions."""
    types = dict(data.metadata.get("feature_types") or {})
    names = tuple(data.feature_names)
    kinds: dict[str, Kind] = {}
    numeric: dict[str, NumericReference] = {}
    categorical: dict[str, CategoricalReference] = {}
    for name in names:
        column = data.features[name]
        declared = types.get(name)
        is_numeric = declared == "numeric" if declared in ("numeric", "categorical") else (
            pd.api.types.is_numeric_dtype(column))
        if is_numeric:
            kinds[name] = "numeric"
            numeric[name] = prepare_numeric(pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64"),
                                            psi_bins=psi_bins)
        else:
            kinds[name] = "categorical"
            categorical[name] = prepare_categorical((), max_categories=max_categories,
                                                    counted=column.value_counts(dropna=False).to_dict())
    predictions = data.predictions
    values = None
    if data.task == "regression":
        classes = prepare_categorical((), max_categories=max_categories)
        raw = predictions["value"] if "value" in predictions else pd.Series([], dtype="float64")
        values = prepare_numeric(pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64"), psi_bins=psi_bins)
    else:
        label = "class_name" if "class_name" in predictions else "class_id"
        classes = prepare_categorical((normalize_category(v) for v in predictions[label].tolist())
                                      if label in predictions else (), max_categories=max_categories)
    return PreparedReference(model_name=model_name, version=version, feature_names=names, kinds=kinds,
                             numeric=numeric, categorical=categorical, predictions=classes,
                             rows=len(data.features), data=data, task=data.task, prediction_values=values)


def load_reference(source: ReferenceSource, version: str, *, model_name: str, psi_bins: int = 10,
                   max_categories: int = 50) -> PreparedReference:
    """Download the version's reference folder into a temporary directory, read and prepare it."""
    with tempfile.TemporaryDirectory(prefix="driftwatch-drift-ref-") as tmp:
        folder = source.download_reference(version, Path(tmp))
        data = read_reference(folder)
    return prepare_reference(data, model_name=model_name, version=version, psi_bins=psi_bins,
                             max_categories=max_categories)


class ReferenceCache:
    """Prepared references by version (a few, least recently used first out). Loading happens
    outside the lock's critical path only once per version."""

    def __init__(self, loader: Callable[[str], PreparedReference], *, size: int = 3) -> None:
        self._loader = loader
        self._size = size
        self._items: OrderedDict[str, PreparedReference] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: str) -> PreparedReference:
        with self._lock:
            found = self._items.get(version)
            if found is not None:
                self._items.move_to_end(version)
                return found
        prepared = self._loader(version)
        with self._lock:
            self._items[version] = prepared
            self._items.move_to_end(version)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return prepared

    def cached(self, version: str) -> PreparedReference | None:
        with self._lock:
            return self._items.get(version)

    def versions(self) -> list[str]:
        with self._lock:
            return list(self._items)
