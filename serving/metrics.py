"""The service's Prometheus metrics (names and labels from docs/contract.md), built on a registry passed in.

The metrics every request touches (predictions, prediction errors, prediction duration, HTTP
requests and durations) are loop-local families: plain numbers updated only on the event loop
thread (which is also where /metrics is rendered), exposed through a collector on the same
registry. prometheus_client's own ``.inc()``/``.observe()`` take a lock and walk the buckets in
Python (~0.5 and ~1.5 µs); with four of them per request they cost a measurable share of a
one-row prediction. Metrics changed from other threads (reloads, registry checks) use
prometheus_client's thread-safe classes. Label children are cached either way.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from driftwatch.http_metrics import DURATION_HELP, HTTP_BUCKETS, REQUESTS_HELP
from driftwatch.server_limits import ConnectionCloses

# Around the 150 ms latency SLA, with resolution below it where a healthy model lives.
PREDICTION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NO_VERSION = "none"


# ---------------------------------------------------------------------- loop-local families
class LoopCounter:
    """One counter series. Not thread-safe by design: only the event loop thread changes it."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopHistogram:
    """One histogram series (same threading rule as ``LoopCounter``)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last one is +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1  # first bucket with amount <= bound
        self.sum += amount


class LoopCounterFamily(Collector):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self._children: dict[tuple[str, ...], LoopCounter] = {}
        registry.register(self)

    def labels(self, *values: str) -> LoopCounter:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = LoopCounter()
        return child

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family


class LoopHistogramFamily(Collector):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: tuple[float, ...],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.buckets = tuple(sorted(buckets))
        self._le = [repr(float(b)) for b in self.buckets] + ["+Inf"]  # as prometheus_client writes them
        self._children: dict[tuple[str, ...], LoopHistogram] = {}
        registry.register(self)

    def labels(self, *values: str) -> LoopHistogram:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = LoopHistogram(self.buckets)
        return child

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            counts, total_sum = list(child.counts), child.sum  # one snapshot: buckets and count agree
            cumulative, buckets = 0, []
            for le, count in zip(self._le, counts, strict=True):
                cumulative += count
                buckets.append((le, float(cumulative)))
            family.add_metric(list(values), buckets, total_sum)
        yield family


class LoopBucketsHistogramFamily(LoopHistogramFamily):
    """A histogram family whose children each have their own bucket bounds (one child per version:
    a regressor's predicted-value buckets come from that version's reference data)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        super().__init__(name, documentation, labelnames, (), registry)

    def labels_with_buckets(self, bounds: tuple[float, ...], *values: str) -> LoopHistogram:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = LoopHistogram(tuple(sorted(set(bounds))))
        return child

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            counts, total_sum = list(child.counts), child.sum
            cumulative, buckets = 0, []
            for le, count in zip([repr(float(b)) for b in child.bounds] + ["+Inf"], counts, strict=True):
                cumulative += count
                buckets.append((le, float(cumulative)))
            family.add_metric(list(values), buckets, total_sum)
        yield family


# ---------------------------------------------------------------------- the service's metrics
OTHER_CLASS = "other"  # predicted_class of a label the model does not declare (docs/contract.md)
NO_CLASS = ""  # predicted_class of a regressor's predictions (an empty label is no label in PromQL)


class ModelSeries:
    """Cached label children for one model version: what the prediction path touches. The
    ``predicted_class`` label only takes the model's own class names (anything else is ``other``), so
    the number of series is bounded whatever the model answers."""

    def __init__(self, metrics: ServingMetrics, model_name: str, version: str, classes: list[str], *,
                 task: str = "classification", value_buckets: tuple[float, ...] = ()) -> None:
        self.duration = metrics.prediction_duration.labels(model_name, version)
        self.validation_errors = metrics.prediction_errors.labels(model_name, version, "validation")
        self.inference_errors = metrics.prediction_errors.labels(model_name, version, "inference")
        self.unavailable_errors = metrics.prediction_errors.labels(model_name, version, "unavailable")
        self.task = task
        self._by_class = {c: metrics.predictions.labels(model_name, version, c) for c in classes}
        self._metrics = metrics
        self._model_name = model_name
        self._version = version
        self.values: LoopHistogram | None = None
        self.rows: LoopCounter | None = None
        if task == "regression":
            self.values = metrics.predicted_value.labels_with_buckets(value_buckets, model_name, version)
            self.rows = metrics.predictions.labels(model_name, version, NO_CLASS)

    def predicted(self, class_name: str) -> LoopCounter:
        """The counter of a class; a class the model did not declare is counted as ``other``."""
        child = self._by_class.get(class_name)
        if child is None:
            child = self._metrics.predictions.labels(self._model_name, self._version, OTHER_CLASS)
            if len(self._by_class) < 1000:  # a memo, bounded: the series is "other" either way
                self._by_class[class_name] = child
        return child

    def predicted_values(self, values: list[Any]) -> None:
        """A regressor's predictions: one histogram observation per finite value, one row counted each."""
        histogram, rows = self.values, self.rows
        if histogram is None or rows is None:
            return
        for value in values:
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if number == number and number not in (float("inf"), float("-inf")):
                histogram.observe(number)
        rows.inc(len(values))


class ServingMetrics:
    """All metrics of the prediction service, on one ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry, model_name: str) -> None:
        # Connections closed by the server limits (driftwatch.server_limits), for uvicorn_options.
        self.connection_closes = ConnectionCloses(registry)
        self.registry = registry
        self.model_name = model_name
        # Changed on the event loop only (requests, swaps); see the module docstring.
        self.predictions = LoopCounterFamily(
            "model_predictions", "Predictions made, by model version and predicted class.",
            ["model_name", "model_version", "predicted_class"], registry)
        self.predicted_value = LoopBucketsHistogramFamily(
            "model_predicted_value",
            "Values a regressor predicted, by version; bucket bounds are quantiles of the version's own "
            "predictions on its reference rows (docs/contract.md).",
            ["model_name", "model_version"], registry)
        self.prediction_errors = LoopCounterFamily(
            "model_prediction_errors",
            "Prediction requests that failed: validation (bad input, answered 4xx), inference (the model "
            "raised, answered 500) or unavailable (no model loaded, answered 503).",
            ["model_name", "model_version", "reason"], registry)
        self.prediction_duration = LoopHistogramFamily(
            "model_prediction_duration_seconds",
            "Time the model took to answer one request (all its rows), injected latency included.",
            ["model_name", "model_version"], PREDICTION_BUCKETS, registry)
        self.http_requests = LoopCounterFamily("http_requests", REQUESTS_HELP, ["handler", "method", "status"],
                                               registry)
        self.http_duration = LoopHistogramFamily("http_request_duration_seconds", DURATION_HELP,
                                                 ["handler", "method"], HTTP_BUCKETS, registry)
        # Changed from worker threads too: prometheus_client's locked classes.
        self.model_info = Gauge(
            "model_info", "The model version being served (always 1; the labels carry the information).",
            ["model_name", "model_version", "alias", "run_id"], registry=registry,
        )
        self.model_loaded = Gauge(
            "model_loaded", "1 when a model is loaded and answering predictions, 0 otherwise.",
            ["model_name"], registry=registry,
        )
        self.reloads = Counter(
            "model_reloads", "Attempts to load a new production version, by result (success or failure).",
            ["model_name", "result"], registry=registry,
        )
        self.registry_poll_errors = Counter(
            "model_registry_poll_errors",
            "Checks of the registry that failed (registry unreachable or refusing); while they fail, serving "
            "cannot follow promotions or rollbacks.",
            ["model_name"], registry=registry,
        )
        self.prediction_log_dropped = Counter(
            "model_prediction_log_dropped",
            "Prediction log rows dropped because the writer fell behind (the request was answered).",
            ["model_name"], registry=registry,
        )
        self.prediction_log_segments_pending = Gauge(
            "model_prediction_log_segments_pending",
            "Closed prediction log segments not uploaded to S3 yet (0 without DRIFTWATCH_PREDICTION_LOG_S3_URL); "
            "growing while S3 refuses uploads.", ["model_name"], registry=registry,
        )
        self.segments_pending = self.prediction_log_segments_pending.labels(model_name)
        self.loaded = self.model_loaded.labels(model_name)
        self.loaded.set(0)
        self.reload_success = self.reloads.labels(model_name, "success")
        self.reload_failure = self.reloads.labels(model_name, "failure")
        self.poll_errors = self.registry_poll_errors.labels(model_name)
        self.log_dropped = self.prediction_log_dropped.labels(model_name)
        self.no_model = self.prediction_errors.labels(model_name, NO_VERSION, "unavailable")
        self._series: dict[str, ModelSeries] = {}
        self._info_labels: tuple[str, str, str, str] | None = None
        self._http: dict[tuple[str, str, int], tuple[LoopCounter, LoopHistogram]] = {}

    def watch_segment_uploads(self, log_dir: Path, instance: str) -> None:
        """Export the prediction log segments waiting for their upload to S3 (counted at each scrape)."""
        from serving.log_shipper import pending_segments

        self.segments_pending.set_function(lambda: pending_segments(log_dir, instance))

    def series(self, version: str, classes: list[str], *, task: str = "classification",
               value_buckets: tuple[float, ...] = ()) -> ModelSeries:
        found = self._series.get(version)
        if found is None:
            found = ModelSeries(self, self.model_name, version, classes, task=task, value_buckets=value_buckets)
            self._series[version] = found
        return found

    def model_swapped(self, *, version: str, alias: str, run_id: str | None) -> None:
        """Point ``model_info`` at the new version (the old version's series goes) and mark loaded."""
        labels = (self.model_name, version, alias, run_id or "")
        if self._info_labels is not None and self._info_labels != labels:
            self.model_info.remove(*self._info_labels)
        self.model_info.labels(*labels).set(1)
        self._info_labels = labels
        self.loaded.set(1)

    def http(self, handler: str, method: str, status: int) -> tuple[LoopCounter, LoopHistogram]:
        key = (handler, method, status)
        found = self._http.get(key)
        if found is None:
            found = (self.http_requests.labels(handler, method, str(status)),
                     self.http_duration.labels(handler, method))
            self._http[key] = found
        return found

    def observe_http(self, handler: str, method: str, status: int, seconds: float) -> None:
        """For driftwatch.http_metrics.HttpMetricsMiddleware (runs on the event loop thread)."""
        count, duration = self.http(handler, method, status)
        count.inc()
        duration.observe(seconds)
