"""Your own model, end to end (issue #11): register through `driftwatch.register`, promote through the
quality gate, serve with the real `python -m serving`, send traffic, check drift with the drift
exporter's own app (``drift_exporter.app.create_app``; checks run on demand instead of on a timer),
read /metrics, roll back — for four models that are not Iris:

(a) a Pipeline with a ColumnTransformer, string categorical columns holding codes like "01" and "NA",
    and string class labels (ONNX, one input per column);
(b) a gradient-boosting regressor (ONNX);
(c) a classifier with labels starting at 1 and no predict_proba (ONNX);
(d) 32 features whose names have spaces and punctuation (ONNX).

The exporter runs with its default settings (a window of the newest 2000 rows; the reference is a
2500-row training sample, so Evidently's rule picks Wasserstein / Jensen-Shannon). In each case 20
windows of unchanged traffic raise no feature or prediction drift (each window is exactly the rows
just sent, so the outcome is fixed by the seeds), and a shifted feature is caught. The regressor's
/metrics series are the same before and after 38,000 more predictions (2,000 of them one row per
request). The session's one MLflow server serves all four cases.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

import driftwatch
from drift_exporter.app import create_app
from drift_exporter.settings import DriftExporterSettings
from model_registry import ModelRegistry, RegistrySettings
from tests.conftest import MlflowServer
from tests.integration.test_drift_exporter import gauge, samples_of, scrape, start
from tests.support.procs import free_port, stop_process

pytestmark = pytest.mark.integration

TRAIN_ROWS = 2500  # all kept as reference (> 1000 rows: Wasserstein / Jensen-Shannon, as Evidently chooses)
WINDOW = 2000  # the exporter's default window
QUIET_WINDOWS = 20
JS_ALERT = 0.1  # PredictionDrift: Jensen-Shannon distance >= 0.1 (monitoring/alerts/driftwatch.rules.yml)


@dataclass
class Case:
    """A model of one kind: how to draw its data, fit it, and which numeric feature to shift."""

    kind: str
    draw: Callable[[int, np.random.Generator], pd.DataFrame]  # features + "target"
    fit: Callable[[pd.DataFrame, pd.Series, int], Any]
    shifted: str
    task: str
    classes: list[Any] | None
    backend: str


# ---------------------------------------------------------------------- the four models
def _draw_pipeline(n: int, rng: np.random.Generator) -> pd.DataFrame:
    region = rng.choice(["01", "02", "NA", "10"], n, p=[0.4, 0.3, 0.2, 0.1])
    channel = rng.choice(["web", "store"], n)
    amount = rng.normal(100.0, 20.0, n)
    tenure = rng.integers(0, 60, n)
    score = (amount - 100) / 20 + np.where(region == "NA", 1.0, 0.0) - tenure / 30 + rng.normal(0, 0.5, n)
    return pd.DataFrame({"region": region, "channel": channel, "amount": amount, "tenure": tenure,
                         "target": np.where(score > 0, "churn", "stay")})


def _fit_pipeline(x: pd.DataFrame, y: pd.Series, seed: int) -> Any:
    encode = ColumnTransformer([("codes", OneHotEncoder(handle_unknown="ignore"), ["region", "channel"]),
                                ("numbers", StandardScaler(), ["amount", "tenure"])])
    return Pipeline([("encode", encode), ("clf", LogisticRegression(C=1.0 + seed, max_iter=500))]).fit(x, y)


def _draw_regression(n: int, rng: np.random.Generator) -> pd.DataFrame:
    x = rng.normal(0.0, 1.0, (n, 5))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])
    frame["target"] = 50 + 10 * x[:, 0] - 5 * x[:, 1] + 3 * x[:, 2] * x[:, 3] + rng.normal(0, 1, n)
    return frame


def _fit_regression(x: pd.DataFrame, y: pd.Series, seed: int) -> Any:
    return GradientBoostingRegressor(n_estimators=40 + 10 * seed, max_depth=3, random_state=seed).fit(x, y)


def _draw_from_one(n: int, rng: np.random.Generator) -> pd.DataFrame:
    centers = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 1.0], [0.0, 3.0, 2.0]])
    labels = rng.integers(1, 4, n)  # 1, 2, 3
    x = centers[labels - 1] + rng.normal(0, 1.0, (n, 3))
    frame = pd.DataFrame(x, columns=["u", "v", "w"])
    frame["target"] = labels
    return frame


def _fit_from_one(x: pd.DataFrame, y: pd.Series, seed: int) -> Any:
    return Pipeline([("scale", StandardScaler()), ("svc", LinearSVC(C=0.5 + seed, random_state=seed))]).fit(x, y)


WIDE = [f"sensor {i} (°C)" if i % 3 == 0 else f"rate/{i} %" if i % 3 == 1 else f"a.b-c [{i}]" for i in range(32)]


def _draw_wide(n: int, rng: np.random.Generator) -> pd.DataFrame:
    x = rng.normal(0.0, 1.0, (n, len(WIDE)))
    frame = pd.DataFrame(x, columns=WIDE)
    frame["target"] = (x[:, 0] + x[:, 1] - x[:, 2] + rng.normal(0, 0.5, n) > 0).astype("int64")
    return frame


def _fit_wide(x: pd.DataFrame, y: pd.Series, seed: int) -> Any:
    return LogisticRegression(C=1.0 / (1 + seed), max_iter=1000).fit(x, y)


CASES = [
    Case("pipeline-categorical", _draw_pipeline, _fit_pipeline, "amount", "classification", ["churn", "stay"],
         "onnx"),
    Case("regressor", _draw_regression, _fit_regression, "x0", "regression", None, "onnx"),
    Case("labels-from-1-no-proba", _draw_from_one, _fit_from_one, "u", "classification", [1, 2, 3], "onnx"),
    Case("32-punctuated-features", _draw_wide, _fit_wide, WIDE[4], "classification", [0, 1], "onnx"),
]


# ---------------------------------------------------------------------- the running parts
@dataclass
class Running:
    serving: str
    exporter: TestClient  # the drift exporter's app, checks on demand
    registry: ModelRegistry
    columns: list[str]

    def send(self, frame: pd.DataFrame, batch: int = 1000) -> None:
        """POST the rows to /invocations (MLflow's protocol) in batches."""
        with httpx.Client(timeout=60) as client:
            for start_row in range(0, len(frame), batch):
                part = json.loads(frame[self.columns].iloc[start_row:start_row + batch].to_json(orient="split",
                                                                                                 index=False))
                response = client.post(f"{self.serving}/invocations", json={"dataframe_split": part})
                assert response.status_code == 200, response.text
                assert len(response.json()["predictions"]) == len(part["data"])

    def check_after(self, since: float, timeout: float = 60) -> dict[str, Any]:
        """Run drift checks until one's window is exactly the ``WINDOW`` rows logged after ``since``
        (serving hands rows to its log writer every 50 ms); its /drift body."""
        monitor = self.exporter.app.state.monitor  # type: ignore[attr-defined]
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            monitor.run_once()
            body = self.exporter.get("/drift").json()
            window, result = body["run"]["window"], body.get("result")
            if (result and window["oldest"] and pd.Timestamp(window["oldest"]).timestamp() >= since
                    and result["window_rows"] == WINDOW):
                return body
            time.sleep(0.1)
        raise AssertionError(f"no check of the window sent after {since}: {json.dumps(body)[:2000]}")


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@pytest.fixture(params=CASES, ids=[c.kind for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def running(case: Case, mlflow_server: MlflowServer, tmp_path: Path) -> Iterator[tuple[Running, pd.DataFrame]]:
    rng = np.random.default_rng(11)
    train, holdout = case.draw(TRAIN_ROWS, rng), case.draw(600, rng)
    x_train, y_train = train.drop(columns=["target"]), train["target"]
    x_holdout, y_holdout = holdout.drop(columns=["target"]), holdout["target"]
    name = f"byom-{case.kind}-{uuid.uuid4().hex[:6]}"
    settings = RegistrySettings(home=tmp_path / "home", model_name=name, tracking_uri=mlflow_server.url,
                                max_regression=0.5, min_accuracy=0.6)
    first = driftwatch.register(case.fit(x_train, y_train, 0), x_train, y_train, X_holdout=x_holdout,
                                y_holdout=y_holdout, promote=True, settings=settings, actor="test")
    assert first.promoted and first.task == case.task, first.gate
    second = driftwatch.register(case.fit(x_train, y_train, 1), x_train, y_train, X_holdout=x_holdout,
                                 y_holdout=y_holdout, promote=True, settings=settings, actor="test")
    assert second.promoted, second.gate
    assert second.gate is not None and "production v1" in second.gate.reason  # judged against v1 on the holdout
    logs = tmp_path / "predictions"
    env = {**os.environ, "DRIFTWATCH_HOME": str(settings.home), "MLFLOW_TRACKING_URI": mlflow_server.url,
           "DRIFTWATCH_MODEL_NAME": name, "DRIFTWATCH_PREDICTION_LOG_DIR": str(logs),
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
           "DRIFTWATCH_SERVING_HOST": "127.0.0.1", "DRIFTWATCH_SERVING_PORT": str(port := free_port()),
           "DRIFTWATCH_POLL_INTERVAL_SECONDS": "0.5", "DRIFTWATCH_SERVING_INSTANCE": "byom"}
    serving = start("serving", env, tmp_path / "serving.log", f"http://127.0.0.1:{port}/ready")
    exporter = create_app(DriftExporterSettings(registry=settings, prediction_log_dir=logs), schedule=False)
    try:
        with TestClient(exporter) as client:
            yield (Running(f"http://127.0.0.1:{port}", client, ModelRegistry(settings), list(x_train.columns)),
                   x_train)
    finally:
        stop_process(serving, timeout=30)


def test_your_own_model_end_to_end(case: Case, running: tuple[Running, pd.DataFrame]) -> None:
    stack, x_train = running
    health = httpx.get(f"{stack.serving}/health", timeout=10).json()
    assert health["model_version"] == "2" and health["inference_backend"] == case.backend, health
    assert health["inference_check"].startswith(case.backend), health  # how the backend was chosen
    metadata = httpx.get(f"{stack.serving}/metadata", timeout=10).json()["model"]
    assert metadata["task"] == case.task
    assert metadata["inference_backend"] == case.backend, metadata["inference_check"]

    # The service's own answer follows the task.
    one = {"features": {c: _py(v) for c, v in x_train.iloc[0].items()}}
    answer = httpx.post(f"{stack.serving}/predict", json=one, timeout=10)
    assert answer.status_code == 200, answer.text
    row = answer.json()["predictions"][0]
    if case.task == "regression":
        assert set(row) == {"prediction_id", "value", "model_version"} and isinstance(row["value"], float)
    else:
        assert case.classes is not None and row["class_id"] in case.classes
        assert row["class_name"] == str(row["class_id"])
        assert (row["probability"] is None) == (case.kind == "labels-from-1-no-proba")

    # Unchanged traffic, window after window: no feature drift, no prediction drift.
    rng = np.random.default_rng(2026)
    series_after_first_window: set[Any] = set()
    predicted_after_first_window = 0
    for window in range(QUIET_WINDOWS):
        sent_at = time.time()
        one_row_each = case.task == "regression" and window == 1  # the one-row path, 2,000 times
        stack.send(case.draw(WINDOW, rng).drop(columns=["target"]), batch=1 if one_row_each else 1000)
        body = stack.check_after(sent_at)
        result = body["result"]
        assert body["run"]["production_version"] == "2" and result["status"] == "ok", body
        flagged = [f["feature"] for f in result["features"] if f["detected"]]
        assert flagged == [], f"window {window}: unchanged traffic flagged {flagged}"
        assert result["dataset_drift"] is False
        prediction = result["prediction"]
        assert prediction["status"] == "ok" and prediction["rows"] == WINDOW
        assert prediction["scores"]["jensenshannon"] < JS_ALERT, f"window {window}: prediction drift {prediction}"
        categorical = [f for f in result["features"] if f["kind"] == "categorical"]
        assert all(f["unseen_share"] == 0 for f in categorical), categorical  # "01" and "NA" are known codes
        if window == 0:  # the second scrape: the first one adds /metrics's own request series
            scrape(stack.serving)
            series_after_first_window = set(scrape(stack.serving))
            predicted_after_first_window = WINDOW + 1

    # The exporter's gauges say the same as /drift: nothing detected, for every feature.
    exported = samples_of(stack.exporter.get("/metrics").text)
    assert gauge(exported, "model_drift_window_rows", model_version="2") == WINDOW
    detected = {dict(labels)["feature"]: value for (name, labels), value in exported.items()
                if name == "model_feature_drift_detected"}
    assert sorted(detected) == sorted(stack.columns) and set(detected.values()) == {0.0}

    # Metrics: bounded labels that follow the task.
    served = scrape(stack.serving)
    classes = {dict(labels).get("predicted_class") for (name, labels) in served if name == "model_predictions_total"}
    sent = QUIET_WINDOWS * WINDOW + 1
    if case.task == "regression":
        assert classes <= {None, ""}  # an empty label is no label: no class for a regressor
        assert gauge(served, "model_predicted_value_count", model_version="2") == sent
        buckets = [dict(labels)["le"] for (name, labels) in served if name == "model_predicted_value_bucket"]
        assert 5 <= len(buckets) <= 12 and "+Inf" in buckets
        # 38,000 more predictions since the first window (2,000 of them one row per request): not
        # one more series.
        assert sent - predicted_after_first_window >= 10_000
        assert set(served) == series_after_first_window, sorted(set(served) ^ series_after_first_window)
    else:
        assert case.classes is not None and classes <= {str(c) for c in case.classes} | {"other"}
        assert sum(value for (name, labels), value in served.items() if name == "model_predictions_total"
                   and dict(labels).get("model_version") == "2") == sent

    # A shifted feature is caught, by /drift and by the gauge FeatureDrift is built on.
    shifted = case.draw(WINDOW, rng).drop(columns=["target"])
    shifted[case.shifted] = shifted[case.shifted] + 1.5 * float(x_train[case.shifted].std())
    sent_at = time.time()
    stack.send(shifted)
    verdicts = {f["feature"]: f["detected"] for f in stack.check_after(sent_at)["result"]["features"]}
    assert verdicts[case.shifted] is True, verdicts
    exported = samples_of(stack.exporter.get("/metrics").text)
    assert gauge(exported, "model_feature_drift_detected", model_version="2", feature=case.shifted) == 1

    # Rollback: production goes back to v1, serving follows, and the exporter checks against v1's reference.
    rolled = stack.registry.rollback(reason="drill", actor="test")
    assert (rolled.from_version, rolled.to_version) == ("2", "1")
    deadline = time.monotonic() + 60
    while httpx.get(f"{stack.serving}/health", timeout=10).json().get("model_version") != "1":
        assert time.monotonic() < deadline, "serving did not follow the rollback"
        time.sleep(0.3)
    after = httpx.post(f"{stack.serving}/predict", json=one, timeout=10).json()
    assert after["model_version"] == "1"
    sent_at = time.time()
    stack.send(case.draw(WINDOW, rng).drop(columns=["target"]))
    body = stack.check_after(sent_at)
    assert body["run"]["production_version"] == "1"
    assert [f["feature"] for f in body["result"]["features"] if f["detected"]] == []
