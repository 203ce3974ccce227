"""The quality service end to end in-process: feedback, the join with real prediction log lines,
the metrics, bad input, the token."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from model_registry.errors import RegistryUnavailable
from model_registry.versions import VersionInfo
from quality.app import create_app
from quality.settings import QualitySettings
from tests.unit.quality.logs import append, prediction_line

TOKEN = "a-quality-token-of-enough-length"
NOW = 1_767_268_800.0


class FakeRegistry:
    def __init__(self, holdout: pd.DataFrame | None = None, metrics: dict[str, float] | None = None) -> None:
        self.holdout = holdout
        self.metrics = metrics or {"test_accuracy": 0.95, "f1_macro": 0.94}
        self.down = False

    def get_version(self, version: str, *, with_metrics: bool = True) -> VersionInfo:
        if self.down:
            raise RegistryUnavailable("registry down")
        return VersionInfo(name="iris-classifier", version=version, run_id="r", source="s",
                           created_at=datetime.now(UTC), metrics=dict(self.metrics))

    def download_reference(self, version: str, dst: Path) -> Path:
        folder = dst / "reference"
        folder.mkdir(parents=True)
        if self.holdout is not None:
            self.holdout.to_csv(folder / "holdout.csv", index=False)
        return folder


def make(tmp_path: Path, *, token: str | None = TOKEN, holdout: pd.DataFrame | None = None,
         **overrides: object) -> tuple[TestClient, CollectorRegistry, Path]:
    logs = tmp_path / "predictions"
    settings = QualitySettings(registry={"home": tmp_path, "model_name": "iris-classifier"},
                               prediction_log_dir=logs, token=token, window_labeled=50, **overrides)
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry, source=FakeRegistry(holdout), clock=lambda: NOW + 10,
                     schedule=False)
    return TestClient(app), registry, logs


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"model_name": "iris-classifier", **labels})


def test_labels_join_logged_predictions_of_several_processes_and_quality_is_exported(tmp_path: Path) -> None:
    holdout = pd.DataFrame({"actual": [0, 1, 2, 0] * 10, "predicted": [0, 1, 2, 1] * 10,
                            "probability": [0.95, 0.9, 0.85, 0.55] * 10})
    client, registry, logs = make(tmp_path, holdout=holdout)
    names = {0: "setosa", 1: "versicolor", 2: "virginica"}
    # two serving processes, one of them rotated once
    for i in range(60):
        cls = i % 3
        predicted = cls if i % 4 else (cls + 1) % 3  # every 4th answer wrong
        line = prediction_line(f"{i:032x}", class_id=predicted, class_name=names[predicted],
                               probability=0.9, timestamp=NOW - 100 + i)
        target = logs / ("predictions-a.jsonl.1" if i < 20 else "predictions-a.jsonl" if i < 40
                         else "predictions-b.jsonl")
        append(target, line)
    with client:
        client.app.state.monitor.run_once()
        labels = [{"prediction_id": f"{i:032x}", "actual": i % 3, "timestamp": NOW - 50 + i} for i in range(60)]
        labels[0]["actual"] = "setosa"  # an actual may name the class instead of its label
        labels.append({"prediction_id": "f" * 32, "actual": 1})  # unknown id
        response = client.post("/feedback", json={"labels": labels}, headers=auth())
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["joined"], body["pending"], body["duplicate"]) == (60, 1, 0)
        assert body["unknown_ids"] == ["f" * 32]
        again = client.post("/feedback", json=labels[:3], headers=auth()).json()
        assert again["duplicate"] == 3 and again["joined"] == 0
        state = client.app.state.monitor.run_once()
        assert state.status == "ok", state.error
        quality = client.get("/quality").json()["versions"][0]
    assert quality["version"] == "1" and quality["window_labeled"] == 50 and quality["labeled"] == 60
    assert quality["accuracy"] == pytest.approx(
        sum(1 for i in range(10, 60) if i % 4) / 50)  # the newest 50 predictions
    assert value(registry, "model_quality_accuracy", model_version="1") == pytest.approx(quality["accuracy"])
    assert value(registry, "model_quality_window_labeled", model_version="1") == 50
    assert value(registry, "model_quality_labeled_ratio", model_version="1") == 1.0
    assert value(registry, "model_quality_label_delay_seconds", model_version="1") == pytest.approx(50.0)
    assert value(registry, "model_quality_reference_accuracy", model_version="1") == pytest.approx(0.75)
    # 30 of 40 holdout rows right: the lower end of the reference's own 99% Wilson interval
    assert value(registry, "model_quality_reference_accuracy_lower_bound", model_version="1") == pytest.approx(
        0.5676, abs=1e-3)
    assert value(registry, "model_quality_recall", model_version="1", **{"class": "setosa"}) is not None
    assert value(registry, "model_quality_confusion", model_version="1", actual_class="setosa",
                 predicted_class="versicolor") is not None
    # CBPE: calibrated on the holdout, where 0.9-confident answers were right: estimate ~1.0 vs realized 0.74
    assert value(registry, "model_quality_estimated_accuracy", model_version="1") == pytest.approx(1.0)
    assert value(registry, "model_quality_estimate_error", model_version="1") == pytest.approx(
        1.0 - quality["accuracy"])
    assert value(registry, "model_feedback_labels_total", result="pending") == 1
    assert value(registry, "model_feedback_labels_total", result="duplicate") == 3
    assert value(registry, "model_quality_pending_labels") == 1
    assert value(registry, "model_quality_last_run_timestamp_seconds") == NOW + 10


def test_a_label_that_comes_before_its_prediction_is_joined_when_the_log_is_read(tmp_path: Path) -> None:
    client, registry, logs = make(tmp_path, token=None)
    with client:
        body = client.post("/feedback", json={"prediction_id": "a" * 32, "actual": 0}).json()
        assert body["pending"] == 1
        append(logs / "predictions-x.jsonl", prediction_line("a" * 32, timestamp=NOW))
        client.app.state.monitor.run_once()
        client.app.state.monitor.run_once()  # the same lines are not read twice
    assert value(registry, "model_quality_window_labeled", model_version="1") == 1
    assert value(registry, "model_quality_pending_labels") == 0
    assert value(registry, "model_quality_log_rows_total") == 1
    assert value(registry, "model_quality_reference_accuracy", model_version="1") == 0.95  # run metrics


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param({"labels": [{"prediction_id": "a", "actual": 1}, {"prediction_id": "b"}]}, 422,
                     "labels[1].actual", id="missing-actual"),
        pytest.param({"labels": [{"prediction_id": "", "actual": 1}]}, 422, "labels[0].prediction_id", id="empty-id"),
        pytest.param([{"prediction_id": "a", "actual": {"x": 1}}], 422, "body[0].actual", id="object-actual"),
        pytest.param({"prediction_id": "a", "actual": None}, 422, "actual", id="null-actual"),
        pytest.param({"prediction_id": "a", "actual": 1, "timestamp": "yesterday"}, 422, "timestamp", id="bad-time"),
        pytest.param({"prediction_id": "a", "actual": 1, "timestamp": "2026-01-01T00:00:00"}, 422, "timestamp",
                     id="naive-time"),
        pytest.param({"prediction_id": "a", "actual": 1, "extra": 2}, 422, "extra", id="unknown-field"),
        pytest.param({"labels": []}, 422, "labels", id="empty"),
        pytest.param({"labels": "x"}, 422, "labels", id="labels-not-a-list"),
        pytest.param({"prediction_id": "a" * 65, "actual": 1}, 422, "prediction_id", id="long-id"),
    ],
)
def test_bad_feedback_gets_a_4xx_naming_the_field_and_stores_nothing(tmp_path: Path, body: object, status: int,
                                                                     field: str) -> None:
    client, registry, _ = make(tmp_path)
    with client:
        response = client.post("/feedback", json=body, headers=auth())
        assert response.status_code == status, response.text
        assert response.json()["field"] == field
        assert client.app.state.store.pending_count() == 0
    assert (value(registry, "model_feedback_labels_total", result="invalid") or 0) >= 1


def test_not_json_too_many_and_wrong_content_type(tmp_path: Path) -> None:
    client, _, _ = make(tmp_path, max_feedback_items=2)
    with client:
        assert client.post("/feedback", content=b"{", headers={**auth(), "Content-Type": "application/json"}
                           ).status_code == 400
        many = [{"prediction_id": str(i), "actual": 1} for i in range(3)]
        assert client.post("/feedback", json=many, headers=auth()).status_code == 413
        assert client.post("/feedback", content=b"a,b", headers={**auth(), "Content-Type": "text/csv"}
                           ).status_code == 415


def test_an_oversized_feedback_body_is_a_413_from_the_shared_limits(tmp_path: Path) -> None:
    """The service has no size check of its own: driftwatch.server_limits.LimitsMiddleware answers,
    declared length or chunked alike, and nothing is stored."""
    client, registry, _ = make(tmp_path, max_body_bytes=1024)
    body = b'[' + b",".join(b'{"prediction_id": "%d", "actual": 1}' % i for i in range(100)) + b']'
    with client:
        declared = client.post("/feedback", content=body, headers={**auth(), "Content-Type": "application/json"})
        chunked = client.post("/feedback", content=iter([body[:600], body[600:]]),
                              headers={**auth(), "Content-Type": "application/json"})
        assert client.app.state.store.pending_count() == 0
    for response in (declared, chunked):
        assert response.status_code == 413 and "1024 bytes" in response.json()["detail"]
    # Counted like every service's requests (docs/contract.md: http_requests_total), under the route.
    counted = registry.get_sample_value("http_requests_total", {"handler": "/feedback", "method": "POST",
                                                                "status": "413"})
    assert counted == 2


def test_feedback_needs_the_token_when_one_is_configured(tmp_path: Path) -> None:
    client, _, _ = make(tmp_path)
    with client:
        label = {"prediction_id": "a", "actual": 1}
        assert client.post("/feedback", json=label).status_code == 401
        wrong = client.post("/feedback", json=label, headers={"Authorization": "Bearer " + "x" * 30})
        assert wrong.status_code == 401 and TOKEN not in wrong.text
        assert client.post("/feedback", json=label, headers=auth()).status_code == 200


def test_a_store_failure_is_a_counted_503_not_a_crash(tmp_path: Path) -> None:
    client, registry, _ = make(tmp_path)
    with client:
        client.app.state.store.engine.dispose()
        (tmp_path / "quality" / "quality.db").unlink()
        (tmp_path / "quality").rmdir()
        response = client.post("/feedback", json={"prediction_id": "a", "actual": 1}, headers=auth())
    assert response.status_code == 503
    assert value(registry, "model_quality_http_errors_total", path="/feedback") == 1


def test_corrupt_log_lines_are_counted_and_other_models_skipped(tmp_path: Path) -> None:
    client, registry, logs = make(tmp_path)
    append(logs / "predictions-x.jsonl", b"not json\n", prediction_line("b" * 32, model_name="other"),
           prediction_line("c" * 32), b'{"half": ')
    with client:
        client.app.state.monitor.run_once()
    assert value(registry, "model_quality_log_corrupt_lines_total") == 1
    assert value(registry, "model_quality_log_rows_total") == 1
