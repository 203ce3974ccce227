"""A version's reference quality (its holdout metrics at registration) and its CBPE calibration.

The registry run of each version carries its holdout metrics (``test_accuracy``, ``f1_macro``; for
regressors ``test_mae``, ``test_rmse``). When the version's reference folder also holds the labeled
holdout (``holdout.csv``: ``actual``, ``predicted`` and, for classifiers, ``probability`` = the top
class probability), the reference quality is computed from it the same way as live quality, and the
confidence calibration of CBPE is fitted on it. Loaded once per version and cached.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from drift_exporter.stats import normalize_category
from model_registry.reference import HOLDOUT_FILE
from model_registry.versions import VersionInfo
from quality.stats import ConfidenceCalibration, classification_quality, regression_quality

log = logging.getLogger("quality")


class VersionSource(Protocol):
    """What the quality service asks the registry (``model_registry.ModelRegistry`` fits)."""

    def get_version(self, version: str, *, with_metrics: bool = True) -> VersionInfo: ...

    def download_reference(self, version: str, dst: Path) -> Path: ...


@dataclass(frozen=True)
class ReferenceQuality:
    version: str
    accuracy: float | None = None
    f1_macro: float | None = None
    mae: float | None = None
    rmse: float | None = None
    calibration: ConfidenceCalibration | None = None
    holdout_rows: int = 0


def _finite(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def from_holdout(version: str, holdout: pd.DataFrame, task: str = "classification") -> ReferenceQuality:
    """Reference quality from a labeled holdout frame."""
    if "actual" not in holdout or "predicted" not in holdout:
        raise ValueError(f"{HOLDOUT_FILE} needs the columns actual and predicted")
    if task == "regression":
        q = regression_quality(holdout["predicted"].to_numpy(float), holdout["actual"].to_numpy(float), z=0.0)
        return ReferenceQuality(version, mae=q.mae, rmse=q.rmse, holdout_rows=len(holdout))
    predicted = [normalize_category(v) or "" for v in holdout["predicted"]]
    actual = [normalize_category(v) or "" for v in holdout["actual"]]
    quality = classification_quality(predicted, actual, z=0.0)
    calibration = None
    if "probability" in holdout:
        try:
            calibration = ConfidenceCalibration(holdout["probability"].to_numpy(float), quality.correct)
        except ValueError as exc:
            log.warning("v%s: no CBPE calibration: %s", version, exc)
    return ReferenceQuality(version, accuracy=quality.accuracy, f1_macro=quality.f1_macro,
                            calibration=calibration, holdout_rows=len(holdout))


def from_metrics(version: str, metrics: dict[str, float]) -> ReferenceQuality:
    return ReferenceQuality(version, accuracy=_finite(metrics.get("test_accuracy")),
                            f1_macro=_finite(metrics.get("f1_macro")), mae=_finite(metrics.get("test_mae")),
                            rmse=_finite(metrics.get("test_rmse")))


class ReferenceQualityCache:
    def __init__(self, source: VersionSource, *, keep: int = 20) -> None:
        self.source = source
        self.keep = keep
        self._cache: dict[str, ReferenceQuality] = {}
        self._lock = threading.Lock()

    def get(self, version: str) -> ReferenceQuality:
        with self._lock:
            cached = self._cache.get(version)
        if cached is not None:
            return cached
        loaded = self._load(version)
        with self._lock:
            self._cache[version] = loaded
            while len(self._cache) > self.keep:
                self._cache.pop(next(iter(self._cache)))
        return loaded

    def _load(self, version: str) -> ReferenceQuality:
        info = self.source.get_version(version, with_metrics=True)
        metrics = dict(info.metrics)
        fallback = from_metrics(version, metrics)
        with tempfile.TemporaryDirectory(prefix="driftwatch-quality-ref-") as tmp:
            try:
                folder = self.source.download_reference(version, Path(tmp))
            except Exception as exc:  # no reference folder: run metrics only, no calibration
                log.warning("v%s: reference folder not available (%s); reference quality from run metrics only",
                            version, exc)
                return fallback
            holdout_path = folder / HOLDOUT_FILE
            if not holdout_path.is_file():
                log.info("v%s has no %s: reference quality from run metrics, no CBPE calibration", version,
                         HOLDOUT_FILE)
                return fallback
            task = "classification"
            if (folder / "metadata.json").is_file():
                task = str(json.loads((folder / "metadata.json").read_text()).get("task") or task)
            found = from_holdout(version, pd.read_csv(holdout_path), task)
        log.info("v%s: reference quality from %d holdout rows", version, found.holdout_rows)
        return ReferenceQuality(
            version, accuracy=found.accuracy if found.accuracy is not None else fallback.accuracy,
            f1_macro=found.f1_macro if found.f1_macro is not None else fallback.f1_macro,
            mae=found.mae if found.mae is not None else fallback.mae,
            rmse=found.rmse if found.rmse is not None else fallback.rmse,
            calibration=found.calibration, holdout_rows=found.holdout_rows)
