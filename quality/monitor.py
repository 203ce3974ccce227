"""The scheduled evaluation: read new prediction log lines, apply the retention, compute live quality
and the CBPE estimate per version, publish the metrics. One evaluation at a time."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_registry.errors import RegistryError, RegistryUnavailable
from quality.ingest import IngestResult, LogIngester
from quality.metrics import QualityMetrics
from quality.reference import ReferenceQuality, ReferenceQualityCache, VersionSource
from quality.settings import QualitySettings
from quality.stats import classification_quality, regression_quality, wilson_interval, z_one_sided
from quality.store import LabeledRow, QualityStore, VersionCounts

log = logging.getLogger("quality")


@dataclass
class VersionQuality:
    version: str
    task: str  # classification | regression | unknown (no labels yet)
    predictions: int
    labeled: int
    labeled_ratio: float
    window_labeled: int = 0
    accuracy: float | None = None
    accuracy_lower_bound: float | None = None
    accuracy_upper_bound: float | None = None
    f1_macro: float | None = None
    recall: dict[str, float] = field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    mae: float | None = None
    mae_lower_bound: float | None = None
    mae_upper_bound: float | None = None
    rmse: float | None = None
    label_delay_seconds: float | None = None
    estimated_accuracy: float | None = None
    estimate_rows: int = 0
    estimate_error: float | None = None
    reference: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunState:
    status: str = "not_run"  # ok | error | not_run
    error: str | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None
    ingested_rows: int = 0
    versions: list[VersionQuality] = field(default_factory=list)


def _value(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


class QualityMonitor:
    def __init__(self, settings: QualitySettings, *, store: QualityStore, source: VersionSource,
                 metrics: QualityMetrics, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.references = ReferenceQualityCache(source)
        self.ingester = LogIngester(settings.resolved_log_dir, store, settings.model_name)
        self.z = z_one_sided(settings.confidence)
        self.state = RunState()
        self.publish_lock = threading.Lock()  # /metrics never sees a half-published set
        self._run_lock = threading.Lock()

    def ingest(self) -> IngestResult:
        now = self.clock()
        result = self.ingester.run_once(oldest=now - self.settings.retention_seconds, now=now)
        name = self.metrics.model_name
        self.metrics.logged.labels(name).inc(result.rows)
        if result.corrupt:
            self.metrics.corrupt_lines.labels(name).inc(result.corrupt)
            log.warning("%d unreadable prediction log line(s) skipped in %s", result.corrupt, self.ingester.folder)
        return result

    def run_once(self) -> RunState:
        """One evaluation; never raises (errors are counted and shown on /quality)."""
        if not self._run_lock.acquire(blocking=False):
            return self.state
        name = self.metrics.model_name
        self.metrics.runs.labels(name).inc()
        started = time.perf_counter()
        state = RunState()
        try:
            state.ingested_rows = self.ingest().rows
            _, expired = self.store.prune(self.clock() - self.settings.retention_seconds)
            if expired:
                self.metrics.unmatched.labels(name).inc(expired)
                log.warning("%d label(s) expired without meeting their prediction", expired)
            counts = self.store.version_counts(name, since=self.clock() - self.settings.retention_seconds,
                                               limit=self.settings.max_versions)
            state.versions = [self.evaluate(c) for c in counts]
            pending = self.store.pending_count()
            with self.publish_lock:
                self.metrics.clear_versions()
                for quality in state.versions:
                    self._publish(quality)
                self.metrics.pending.labels(name).set(pending)
            state.status = "ok"
            self.metrics.last_run.labels(name).set(self.clock())
        except Exception as exc:  # the scheduler's boundary: log, count, keep running
            reason = "store" if "sqlalchemy" in type(exc).__module__ else "internal"
            state.status, state.error = "error", f"{reason}: {type(exc).__name__}: {exc}"
            self.metrics.errors.labels(name, reason).inc()
            log.exception("quality evaluation failed")
        finally:
            duration = time.perf_counter() - started
            self.metrics.run_duration.labels(name).observe(duration)
            state.finished_at = self.clock()
            state.duration_seconds = round(duration, 6)
            self.state = state
            self._run_lock.release()
        return state

    # ------------------------------------------------------------------ one version
    def evaluate(self, counts: VersionCounts) -> VersionQuality:
        name, version = self.metrics.model_name, counts.model_version
        quality = VersionQuality(version=version, task="unknown", predictions=counts.predictions,
                                 labeled=counts.labeled,
                                 labeled_ratio=counts.labeled / counts.predictions if counts.predictions else 0.0)
        reference = self._reference(version)
        if reference is not None:
            quality.reference = {k: v for k, v in (("accuracy", reference.accuracy), ("f1_macro", reference.f1_macro),
                                                    ("mae", reference.mae), ("rmse", reference.rmse)) if v is not None}
            quality.reference["holdout_rows"] = reference.holdout_rows
            if reference.accuracy is not None and reference.holdout_rows:
                n = reference.holdout_rows
                quality.reference["accuracy_lower_bound"] = wilson_interval(round(reference.accuracy * n), n, self.z)[0]
        rows = self.store.newest_labeled(name, version, self.settings.window_labeled)
        quality.window_labeled = len(rows)
        if rows:
            delays = np.fromiter((max(0.0, r.labeled_at - r.predicted_at) for r in rows), dtype=np.float64)
            quality.label_delay_seconds = float(np.median(delays))
            if any(r.predicted_value is not None for r in rows):
                self._regression(quality, rows)
            else:
                self._classification(quality, rows, reference)
        if reference is not None and reference.calibration is not None and quality.task != "regression":
            confidences = self.store.newest_confidences(name, version, self.settings.estimate_window)
            values = np.array([c for c in confidences if c is not None], dtype=np.float64)
            quality.estimate_rows = len(values)
            if len(values):
                quality.estimated_accuracy = _value(reference.calibration.expected_accuracy(values))
        return quality

    def _classification(self, quality: VersionQuality, rows: list[LabeledRow],
                        reference: ReferenceQuality | None) -> None:
        quality.task = "classification"
        names = self.store.class_names(self.metrics.model_name, quality.version)
        display = set(names.values())
        predicted = [r.predicted_name or r.predicted or "" for r in rows]
        actual = [_actual_name(r.actual, names, display) for r in rows]
        result = classification_quality(predicted, actual, z=self.z)
        quality.accuracy = _value(result.accuracy)
        quality.accuracy_lower_bound = _value(result.accuracy_lower_bound)
        quality.accuracy_upper_bound = _value(result.accuracy_upper_bound)
        quality.f1_macro = _value(result.f1_macro)
        quality.recall = result.recall
        for (a, p), count in result.confusion.items():
            quality.confusion.setdefault(a, {})[p] = count
        if reference is not None and reference.calibration is not None:
            confidences = np.array([np.nan if r.confidence is None else r.confidence for r in rows], dtype=np.float64)
            estimate = reference.calibration.expected_accuracy(confidences)
            if quality.accuracy is not None and math.isfinite(estimate):
                quality.estimate_error = estimate - quality.accuracy

    def _regression(self, quality: VersionQuality, rows: list[LabeledRow]) -> None:
        quality.task = "regression"
        pairs = [(r.predicted_value, r.actual_value) for r in rows
                 if r.predicted_value is not None and r.actual_value is not None]
        predicted = np.array([p for p, _ in pairs], dtype=np.float64)
        actual = np.array([a for _, a in pairs], dtype=np.float64)
        result = regression_quality(predicted, actual, z=self.z)
        quality.window_labeled = result.n
        quality.mae, quality.rmse = _value(result.mae), _value(result.rmse)
        quality.mae_lower_bound = _value(result.mae_lower_bound)
        quality.mae_upper_bound = _value(result.mae_upper_bound)

    def _reference(self, version: str) -> ReferenceQuality | None:
        try:
            return self.references.get(version)
        except RegistryUnavailable as exc:
            self.metrics.errors.labels(self.metrics.model_name, "registry_unavailable").inc()
            log.warning("reference quality of v%s: registry unavailable (%s)", version, exc)
        except (RegistryError, OSError, ValueError, KeyError) as exc:
            self.metrics.errors.labels(self.metrics.model_name, "reference").inc()
            log.warning("reference quality of v%s cannot be used: %s", version, exc)
        return None

    def _publish(self, q: VersionQuality) -> None:
        m = self.metrics
        labels = (m.model_name, q.version)
        m.set(m.window_labeled, q.window_labeled, *labels)
        m.set(m.labeled_ratio, q.labeled_ratio, *labels)
        m.set(m.label_delay, q.label_delay_seconds, *labels)
        m.set(m.accuracy, q.accuracy, *labels)
        m.set(m.accuracy_lower_bound, q.accuracy_lower_bound, *labels)
        m.set(m.accuracy_upper_bound, q.accuracy_upper_bound, *labels)
        m.set(m.f1_macro, q.f1_macro, *labels)
        for cls, value in q.recall.items():
            m.set(m.recall, value, *labels, cls)
        for actual, row in q.confusion.items():
            for predicted, count in row.items():
                m.set(m.confusion, count, *labels, actual, predicted)
        m.set(m.mae, q.mae, *labels)
        m.set(m.mae_lower_bound, q.mae_lower_bound, *labels)
        m.set(m.mae_upper_bound, q.mae_upper_bound, *labels)
        m.set(m.rmse, q.rmse, *labels)
        ref = q.reference
        m.set(m.reference_accuracy, ref.get("accuracy"), *labels)
        m.set(m.reference_accuracy_lower_bound, ref.get("accuracy_lower_bound"), *labels)
        m.set(m.reference_f1_macro, ref.get("f1_macro"), *labels)
        m.set(m.reference_mae, ref.get("mae"), *labels)
        m.set(m.reference_rmse, ref.get("rmse"), *labels)
        if q.estimated_accuracy is not None:
            m.set(m.estimated_accuracy, q.estimated_accuracy, *labels)
            m.set(m.estimate_rows, q.estimate_rows, *labels)
        m.set(m.estimate_error, q.estimate_error, *labels)


def _actual_name(actual: str | None, names: dict[str, str], display: set[str]) -> str:
    """The display name of an actual given as a label (``0``) or as a name (``setosa``)."""
    if actual is None:
        return ""
    if actual in display:
        return actual
    return names.get(actual, actual)
