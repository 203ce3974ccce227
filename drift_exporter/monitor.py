"""The drift check as a service: which version is in production, its reference, the window, the
statistics, the metrics. One check at a time; the scheduler calls ``run_once``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from drift_exporter.check import DriftResult, compute_drift
from drift_exporter.metrics import DriftMetrics
from drift_exporter.reference import PreparedReference, ReferenceCache, load_reference
from drift_exporter.segments import SegmentSource
from drift_exporter.settings import DriftExporterSettings
from drift_exporter.window import LogFile, LogReader, Window
from driftwatch.clock import iso_utc
from driftwatch.logsegments import S3Location
from driftwatch.redact import redact
from model_registry.errors import RegistryError, RegistryUnavailable
from model_registry.versions import VersionInfo

log = logging.getLogger("drift_exporter")


class ProductionSource(Protocol):
    """What the exporter asks the registry (``model_registry.ModelRegistry`` fits)."""

    def production_version(self, *, with_metrics: bool = True) -> VersionInfo | None: ...

    def download_reference(self, version: str, dst: Path) -> Path: ...


@dataclass
class RunState:
    """What /drift and /health say about the last check."""

    started_at: float | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None
    status: str = "not_run"  # ok | insufficient_window | no_production | error | not_run
    error: str | None = None
    production_version: str | None = None
    window_files: int = 0
    window_oldest: float | None = None
    window_newest: float | None = None
    corrupt_lines_in_window: int = 0
    window_instances: dict[str, int] = field(default_factory=dict)  # rows per serving process

    def to_dict(self) -> dict[str, Any]:
        def iso(ts: float | None) -> str | None:
            return None if ts is None else iso_utc(ts)

        return {
            "status": self.status, "error": self.error, "production_version": self.production_version,
            "started_at": iso(self.started_at), "finished_at": iso(self.finished_at),
            "duration_seconds": self.duration_seconds,
            "window": {"files": self.window_files, "oldest": iso(self.window_oldest),
                       "newest": iso(self.window_newest), "corrupt_lines": self.corrupt_lines_in_window,
                       "instances": dict(sorted(self.window_instances.items()))},
        }


class CheckFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DriftMonitor:
    def __init__(self, settings: DriftExporterSettings, *, source: ProductionSource, metrics: DriftMetrics,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.source = source
        self.metrics = metrics
        self.clock = clock
        self.policy = settings.policy()
        self.segments: SegmentSource | None = None
        if settings.prediction_log_s3_url:  # replicas on other hosts: closed segments from S3
            location = S3Location.parse(settings.prediction_log_s3_url)
            self.segments = SegmentSource(location, settings.model_name, settings.resolved_segment_cache_dir)
            self.reader = LogReader(settings.resolved_segment_cache_dir)
        else:
            self.reader = LogReader(settings.resolved_log_dir, abandoned_seconds=settings.log_abandoned_seconds)
        self.references = ReferenceCache(self._load_reference)
        self.state = RunState()
        self.result: DriftResult | None = None
        self._run_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._version: str | None = None

    # ------------------------------------------------------------------ the check
    def run_once(self) -> DriftResult | None:
        """One check. Returns its result (None when nothing could be checked). Never raises: errors
        are logged, counted and shown on /drift; a check already running makes this a no-op."""
        if not self._run_lock.acquire(blocking=False):
            log.info("drift check skipped: the previous one is still running")
            return self.result
        started = self.clock()
        t0 = time.perf_counter()
        self.metrics.runs.labels(self.metrics.model_name).inc()
        state = RunState(started_at=started)
        result: DriftResult | None = None
        try:
            result = self._check(state)
            state.status = result.status if result is not None else "no_production"
            self.metrics.mark_run(self.clock())
        except CheckFailed as exc:
            state.status, state.error = "error", redact(f"{exc.reason}: {exc}")
            self.metrics.errors.labels(self.metrics.model_name, exc.reason).inc()
            log.warning("drift check failed (%s): %s", exc.reason, exc)
        except Exception as exc:  # the scheduler's boundary: log, count, keep running
            state.status, state.error = "error", redact(f"internal: {type(exc).__name__}: {exc}")
            self.metrics.errors.labels(self.metrics.model_name, "internal").inc()
            log.exception("drift check failed unexpectedly")
        finally:
            duration = time.perf_counter() - t0
            self.metrics.run_duration.labels(self.metrics.model_name).observe(duration)
            state.finished_at = self.clock()
            state.duration_seconds = round(duration, 6)
            with self._state_lock:
                self.state = state
                if state.status != "error":
                    self.result = result
            self._run_lock.release()
        return result

    def _check(self, state: RunState) -> DriftResult | None:
        version = self._production_version()
        state.production_version = version
        if version is None:
            if self._version is not None:
                log.info("no version in production any more; drift series of v%s removed", self._version)
            self._version = None
            self.metrics.clear()
            return None
        try:
            reference = self.references.get(version)
        except RegistryUnavailable as exc:
            self.metrics.clear()
            raise CheckFailed("registry_unavailable", f"reference data of v{version}: {exc}") from exc
        except (RegistryError, OSError, ValueError, KeyError) as exc:
            # Production moved to a version whose reference cannot be used: the old version's
            # verdicts are no longer about production, so they go.
            self.metrics.clear()
            raise CheckFailed("reference", f"reference data of v{version} cannot be used: {exc}") from exc
        if version != self._version:
            if self._version is not None:
                log.info("production changed from v%s to v%s: reference switched, old series removed",
                         self._version, version)
            self._version = version
        window = self.read_window(reference)
        state.window_files, state.window_oldest, state.window_newest = window.files, window.oldest, window.newest
        state.corrupt_lines_in_window = window.corrupt_lines
        state.window_instances = dict(window.instances)
        result = compute_drift(reference, window, self.policy)
        self.metrics.publish(result)
        return result

    def read_window(self, reference: PreparedReference) -> Window:
        now = self.clock()
        max_age = self.settings.window_max_age_seconds or None
        files: list[LogFile] | None = None
        if self.segments is not None:
            try:
                files = self.segments.sync(max_rows=self.settings.window_rows, max_age_seconds=max_age, now=now)
            except Exception as exc:  # boto3/botocore errors have many types; the check reports the reason
                raise CheckFailed("window", f"prediction log segments in {self.segments.location}: "
                                            f"{type(exc).__name__}: {exc}") from exc
        try:
            window = self.reader.read(features=reference.feature_names, numeric=reference.numeric_names,
                                      max_rows=self.settings.window_rows, max_age_seconds=max_age,
                                      now=now, model_name=reference.model_name, files=files)
        except OSError as exc:
            raise CheckFailed("window", f"prediction log {self.reader.folder}: {exc}") from exc
        if window.new_lost_rows:
            self.metrics.lost_rows.labels(self.metrics.model_name).inc(window.new_lost_rows)
            log.warning("%d prediction log row(s) were acknowledged by a serving process that died before "
                        "they were written (log_end lines, or seq gaps of abandoned logs, in %s)",
                        window.new_lost_rows, self.reader.folder)
        if window.new_corrupt_lines:
            self.metrics.corrupt_lines.labels(self.metrics.model_name).inc(window.new_corrupt_lines)
            log.warning("%d corrupt prediction log line(s) skipped in %s", window.new_corrupt_lines,
                        self.reader.folder)
        return window

    def _production_version(self) -> str | None:
        try:
            info = self.source.production_version(with_metrics=False)
        except RegistryUnavailable as exc:
            # Keep watching the version we know while the registry is away, but say so.
            if self._version is not None and self.references.cached(self._version) is not None:
                self.metrics.errors.labels(self.metrics.model_name, "registry_unavailable").inc()
                log.warning("registry unavailable (%s); checking the last known production version v%s",
                            exc, self._version)
                return self._version
            raise CheckFailed("registry_unavailable", str(exc)) from exc
        except RegistryError as exc:
            raise CheckFailed("registry", str(exc)) from exc
        return None if info is None else info.version

    def _load_reference(self, version: str) -> PreparedReference:
        started = time.perf_counter()
        prepared = load_reference(self.source, version, model_name=self.settings.model_name,
                                  psi_bins=self.settings.psi_bins, max_categories=self.settings.max_categories)
        log.info("reference of v%s loaded: %d rows, %d features, in %.2f s", version, prepared.rows,
                 len(prepared.feature_names), time.perf_counter() - started)
        return prepared

    # ------------------------------------------------------------------ for the routes
    def snapshot(self) -> tuple[RunState, DriftResult | None]:
        with self._state_lock:
            return self.state, self.result

    def current_reference(self) -> PreparedReference | None:
        version = self._version
        return None if version is None else self.references.cached(version)
