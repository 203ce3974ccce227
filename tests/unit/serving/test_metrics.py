"""The metrics exposition: docs/contract.md names and labels, cumulative buckets, a valid text format."""

from __future__ import annotations

import subprocess

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from serving.metrics import ServingMetrics
from tests.support.procs import require_binary


def populated() -> tuple[CollectorRegistry, ServingMetrics]:
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry, "iris-classifier")
    series = metrics.series("3", ["setosa", "versicolor", "virginica"])
    for seconds in (0.0002, 0.0007, 0.12, 0.2, 30.0):
        series.duration.observe(seconds)
    series.predicted("setosa").inc()
    series.predicted("setosa").inc()
    series.predicted("unexpected").inc()
    series.validation_errors.inc()
    count, duration = metrics.http("/predict", "POST", 200)
    count.inc()
    duration.observe(0.003)
    metrics.model_swapped(version="3", alias="production", run_id="abc")
    metrics.reload_success.inc()
    return registry, metrics


def test_histogram_buckets_are_cumulative_with_count_and_sum() -> None:
    registry, _ = populated()
    labels = {"model_name": "iris-classifier", "model_version": "3"}

    def bucket(le: str) -> float | None:
        return registry.get_sample_value("model_prediction_duration_seconds_bucket", {**labels, "le": le})

    assert (bucket("0.0005"), bucket("0.001"), bucket("0.15"), bucket("0.25"), bucket("10.0"), bucket("+Inf")) == (
        1, 2, 3, 4, 4, 5)
    assert registry.get_sample_value("model_prediction_duration_seconds_count", labels) == 5
    assert registry.get_sample_value("model_prediction_duration_seconds_sum", labels) == 30.3209


def test_counters_carry_the_design_labels() -> None:
    registry, _ = populated()
    assert registry.get_sample_value("model_predictions_total", {
        "model_name": "iris-classifier", "model_version": "3", "predicted_class": "setosa"}) == 2
    assert registry.get_sample_value("model_predictions_total", {
        "model_name": "iris-classifier", "model_version": "3", "predicted_class": "virginica"}) == 0
    # A label the model does not declare is counted as "other", never as a series of its own.
    assert registry.get_sample_value("model_predictions_total", {
        "model_name": "iris-classifier", "model_version": "3", "predicted_class": "unexpected"}) is None
    assert registry.get_sample_value("model_predictions_total", {
        "model_name": "iris-classifier", "model_version": "3", "predicted_class": "other"}) == 1
    assert registry.get_sample_value("model_prediction_errors_total", {
        "model_name": "iris-classifier", "model_version": "3", "reason": "validation"}) == 1
    assert registry.get_sample_value("http_requests_total", {"handler": "/predict", "method": "POST",
                                                             "status": "200"}) == 1
    assert registry.get_sample_value("model_info", {"model_name": "iris-classifier", "model_version": "3",
                                                    "alias": "production", "run_id": "abc"}) == 1


def test_a_swap_removes_the_old_versions_info_series() -> None:
    registry, metrics = populated()
    metrics.model_swapped(version="4", alias="production", run_id="def")
    text = generate_latest(registry).decode()
    assert 'model_version="3",alias' not in text.split("# TYPE model_info gauge")[1].split("# HELP")[0]
    assert registry.get_sample_value("model_info", {"model_name": "iris-classifier", "model_version": "4",
                                                    "alias": "production", "run_id": "def"}) == 1


def test_the_exposition_parses_and_promtool_has_no_complaint() -> None:
    registry, _ = populated()
    text = generate_latest(registry).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"model_predictions", "model_prediction_errors", "model_prediction_duration_seconds", "http_requests",
            "http_request_duration_seconds", "model_info", "model_loaded", "model_reloads"} <= names
    promtool = require_binary("promtool")
    checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), checked


def test_a_regressor_has_a_value_histogram_with_its_own_buckets_and_no_class_series() -> None:
    from prometheus_client import CollectorRegistry

    from serving.metrics import ServingMetrics

    registry = CollectorRegistry()
    metrics = ServingMetrics(registry, "price")
    series = metrics.series("2", [], task="regression", value_buckets=(10.0, 20.0, 30.0))
    series.predicted_values([5.0, 15.0, 15.5, 35.0, float("nan"), None])
    labels = {"model_name": "price", "model_version": "2"}
    assert registry.get_sample_value("model_predicted_value_bucket", {**labels, "le": "10.0"}) == 1
    assert registry.get_sample_value("model_predicted_value_bucket", {**labels, "le": "20.0"}) == 3
    assert registry.get_sample_value("model_predicted_value_bucket", {**labels, "le": "+Inf"}) == 4
    assert registry.get_sample_value("model_predicted_value_count", labels) == 4
    assert registry.get_sample_value("model_predictions_total", {**labels, "predicted_class": ""}) == 6
