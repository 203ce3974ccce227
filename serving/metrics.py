"""The service's Prometheus metrics (names and labels from DESIGN.md), built on a registry passed in.

Label children are cached: ``.labels(...)`` costs microseconds, and the prediction path runs
thousands of times a second.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import Counter as CounterT
from prometheus_client.metrics import Histogram as HistogramT

# Around the 150 ms latency SLA, with resolution below it where a healthy model lives.
PREDICTION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
UNMATCHED_HANDLER = "unmatched"
NO_VERSION = "none"


class ModelSeries:
    """Cached label children for one model version: what the prediction path touches."""

    def __init__(self, metrics: ServingMetrics, model_name: str, version: str, classes: list[str]) -> None:
        self.duration = metrics.prediction_duration.labels(model_name, version)
        self.by_class = [metrics.predictions.labels(model_name, version, c) for c in classes]
        self.validation_errors = metrics.prediction_errors.labels(model_name, version, "validation")
        self.inference_errors = metrics.prediction_errors.labels(model_name, version, "inference")
        self.unavailable_errors = metrics.prediction_errors.labels(model_name, version, "unavailable")
        self._by_name = {c: child for c, child in zip(classes, self.by_class, strict=True)}
        self._metrics = metrics
        self._model_name = model_name
        self._version = version

    def predicted(self, class_name: str) -> CounterT:
        """The counter of a class; a class the model did not declare gets its own series once."""
        child = self._by_name.get(class_name)
        if child is None:
            child = self._metrics.predictions.labels(self._model_name, self._version, class_name)
            self._by_name[class_name] = child
        return child


class ServingMetrics:
    """All metrics of the prediction service, on one ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry, model_name: str) -> None:
        self.registry = registry
        self.model_name = model_name
        self.predictions = Counter(
            "model_predictions", "Predictions made, by model version and predicted class.",
            ["model_name", "model_version", "predicted_class"], registry=registry,
        )
        self.prediction_errors = Counter(
            "model_prediction_errors",
            "Prediction requests that failed: validation (bad input, answered 4xx), inference (the model "
            "raised, answered 500) or unavailable (no model loaded, answered 503).",
            ["model_name", "model_version", "reason"], registry=registry,
        )
        self.prediction_duration = Histogram(
            "model_prediction_duration_seconds",
            "Time the model took to answer one request (all its rows), injected latency included.",
            ["model_name", "model_version"], buckets=PREDICTION_BUCKETS, registry=registry,
        )
        self.http_requests = Counter(
            "http_requests", "HTTP requests answered, by route template, method and status code.",
            ["handler", "method", "status"], registry=registry,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request, by route template and method.",
            ["handler", "method"], buckets=HTTP_BUCKETS, registry=registry,
        )
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
        self.loaded = self.model_loaded.labels(model_name)
        self.loaded.set(0)
        self.reload_success = self.reloads.labels(model_name, "success")
        self.reload_failure = self.reloads.labels(model_name, "failure")
        self.poll_errors = self.registry_poll_errors.labels(model_name)
        self.log_dropped = self.prediction_log_dropped.labels(model_name)
        self._series: dict[str, ModelSeries] = {}
        self._info_labels: tuple[str, str, str, str] | None = None
        self._http: dict[tuple[str, str, int], tuple[CounterT, HistogramT]] = {}
        self.no_model = self.prediction_errors.labels(model_name, NO_VERSION, "unavailable")

    def series(self, version: str, classes: list[str]) -> ModelSeries:
        found = self._series.get(version)
        if found is None:
            found = ModelSeries(self, self.model_name, version, classes)
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

    def http(self, handler: str, method: str, status: int) -> tuple[CounterT, HistogramT]:
        key = (handler, method, status)
        found = self._http.get(key)
        if found is None:
            found = (self.http_requests.labels(handler, method, str(status)),
                     self.http_duration.labels(handler, method))
            self._http[key] = found
        return found
