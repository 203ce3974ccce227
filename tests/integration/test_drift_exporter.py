"""The drift exporter as a process, against a real `mlflow server` registry and the log folder written
by the real serving process (`python -m serving`, rotating its file by size): gauges flip when the
traffic shifts, and the reference switches after a rollback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from model_registry import ModelRegistry, RegistrySettings
from model_registry.reference import read_reference
from model_registry.training import train_and_register
from tests.conftest import MlflowServer
from tests.support.procs import free_port, stop_process, wait_for, wait_for_http

pytestmark = pytest.mark.integration

TOKEN = "drift-integration-admin-token"


def sample(reference: pd.DataFrame, rows: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = reference.iloc[rng.integers(0, len(reference), rows)].reset_index(drop=True).copy()
    for name, sigmas in (shift or {}).items():
        frame[name] = frame[name] + sigmas * float(reference[name].std(ddof=0))
    return frame


def samples_of(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics page, by name and labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return samples_of(httpx.get(f"{url}/metrics", timeout=5).text)


def gauge(samples: dict, name: str, **labels: str) -> float | None:
    for (sample_name, sample_labels), value in samples.items():
        if sample_name == name and set(labels.items()) <= sample_labels:
            return value
    return None


def wait_until(what: str, url: str, condition: Callable[[dict], bool], timeout: float = 60) -> dict:
    def met() -> dict | None:
        samples = scrape(url)
        return samples if condition(samples) else None

    try:
        return wait_for(what, met, timeout=timeout, interval=0.3)
    except TimeoutError:
        drift = httpx.get(f"{url}/drift", timeout=5).json()
        raise AssertionError(f"timed out waiting for {what}; /drift: {json.dumps(drift)[:3000]}") from None


@dataclass
class Stack:
    serving: str
    exporter: str
    settings: RegistrySettings
    logs: Path

    def predict(self, frame: pd.DataFrame) -> set[str]:
        """Send the rows in batches through POST /predict; returns the versions that answered."""
        versions: set[str] = set()
        columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        with httpx.Client(timeout=30) as client:
            for start in range(0, len(frame), 100):
                rows = frame[columns].iloc[start:start + 100].round(4).to_numpy().tolist()
                response = client.post(f"{self.serving}/predict", json={"instances": rows})
                assert response.status_code == 200, response.text
                versions.add(str(response.json()["model_version"]))
        return versions


def start(module: str, env: dict[str, str], log: Path, health: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for_http(health, timeout=120, proc=proc, log=log)
    except BaseException:
        stop_process(proc)
        raise
    return proc


@pytest.fixture
def stack(mlflow_server: MlflowServer, tmp_path: Path) -> Iterator[Stack]:
    name = f"drift-{uuid.uuid4().hex[:8]}"
    settings = RegistrySettings(home=tmp_path / "home", model_name=name, tracking_uri=mlflow_server.url)
    first = train_and_register(settings, promote=True, seed=0)
    second = train_and_register(settings, promote=True, seed=1)
    assert first.promoted and second.promoted
    logs = tmp_path / "predictions"
    common = {**os.environ, "DRIFTWATCH_HOME": str(settings.home), "MLFLOW_TRACKING_URI": mlflow_server.url,
              "DRIFTWATCH_MODEL_NAME": name, "DRIFTWATCH_PREDICTION_LOG_DIR": str(logs),
              "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    serving_port, exporter_port = free_port(), free_port()
    procs = []
    try:
        procs.append(start("serving", {
            **common, "DRIFTWATCH_SERVING_HOST": "127.0.0.1", "DRIFTWATCH_SERVING_PORT": str(serving_port),
            "DRIFTWATCH_POLL_INTERVAL_SECONDS": "0.5", "DRIFTWATCH_ADMIN_TOKEN": TOKEN,
            "DRIFTWATCH_SERVING_INSTANCE": "it", "DRIFTWATCH_PREDICTION_LOG_MAX_BYTES": str(128 * 1024),
            "DRIFTWATCH_PREDICTION_LOG_BACKUPS": "5"},
            tmp_path / "serving.log", f"http://127.0.0.1:{serving_port}/health"))
        procs.append(start("drift_exporter", {
            **common, "DRIFTWATCH_DRIFT_HOST": "127.0.0.1", "DRIFTWATCH_DRIFT_PORT": str(exporter_port),
            "DRIFTWATCH_DRIFT_INTERVAL_SECONDS": "1", "DRIFTWATCH_DRIFT_WINDOW_ROWS": "1000",
            "DRIFTWATCH_DRIFT_MIN_WINDOW_ROWS": "300"},
            tmp_path / "drift-exporter.log", f"http://127.0.0.1:{exporter_port}/health"))
        yield Stack(f"http://127.0.0.1:{serving_port}", f"http://127.0.0.1:{exporter_port}", settings, logs)
    finally:
        for proc in reversed(procs):
            stop_process(proc, timeout=30)


def test_gauges_flip_when_traffic_shifts_and_the_reference_switches_after_a_rollback(stack: Stack) -> None:
    url, settings = stack.exporter, stack.settings
    registry = ModelRegistry(settings)
    production = registry.production_version(with_metrics=False)
    assert production is not None and production.previous_version is not None
    v2, v1 = production.version, production.previous_version
    reference = read_reference(registry.download_reference(v2, settings.home / "ref")).features

    # Too little traffic: the row count is published, no verdict yet.
    assert stack.predict(sample(reference, 100, seed=1)) == {v2}
    samples = wait_until("the first check", url,
                         lambda s: gauge(s, "model_drift_window_rows", model_version=v2) == 100)
    assert gauge(samples, "model_drift_window_sufficient", model_version=v2) == 0
    assert gauge(samples, "model_feature_drift_detected", model_version=v2, feature="petal_length") is None

    # Steady traffic like the training data: verdicts published, nothing drifted.
    stack.predict(sample(reference, 900, seed=2))
    samples = wait_until("a full window", url,
                         lambda s: gauge(s, "model_drift_window_rows", model_version=v2) == 1000)
    for feature in ("sepal_length", "sepal_width", "petal_length", "petal_width"):
        assert gauge(samples, "model_feature_drift_detected", model_version=v2, feature=feature) == 0
    assert gauge(samples, "model_drift_share", model_version=v2) == 0
    assert gauge(samples, "model_prediction_drift_detected", model_version=v2) == 0

    # Inputs drift: petal_length moves by one standard deviation in the newest 600 rows.
    stack.predict(sample(reference, 600, seed=3, shift={"petal_length": 1.0}))
    samples = wait_until("petal_length to drift", url, lambda s: gauge(
        s, "model_feature_drift_detected", model_version=v2, feature="petal_length") == 1)
    assert gauge(samples, "model_feature_drift_detected", model_version=v2, feature="sepal_width") == 0
    assert gauge(samples, "model_drift_share", model_version=v2) == 0.25
    assert gauge(samples, "model_feature_drift_p_value", model_version=v2, feature="petal_length",
                 method="ks") < 0.05 / 4
    assert list(stack.logs.glob("predictions-it.jsonl.*")), "serving should have rotated its log file"

    # A rollback moves production back to v1: the exporter switches reference and drops v2's series.
    registry.rollback(reason="drill", actor="test")
    samples = wait_until("the reference switch to v1", url,
                         lambda s: gauge(s, "model_drift_window_rows", model_version=v1) is not None)
    assert not any(dict(labels).get("model_version") == v2 for (_, labels) in samples)
    assert gauge(samples, "model_drift_window_rows", model_version=v1) == 1000
    assert gauge(samples, "model_feature_drift_detected", model_version=v1, feature="petal_length") == 1
    # Prediction drift only counts what v1 predicted: nothing yet, then the traffic serving sends it.
    assert gauge(samples, "model_prediction_drift_window_rows", model_version=v1) == 0
    deadline = time.monotonic() + 30
    while httpx.get(f"{stack.serving}/health", timeout=5).json().get("model_version") != v1:
        assert time.monotonic() < deadline, "serving did not follow the rollback"
        time.sleep(0.2)
    stack.predict(sample(reference, 400, seed=4))
    samples = wait_until("v1's predictions in the window", url, lambda s: gauge(
        s, "model_prediction_drift_window_rows", model_version=v1) == 400)
    body = httpx.get(f"{url}/drift", timeout=5).json()
    assert body["result"]["model_version"] == v1
    assert gauge(samples, "model_drift_errors_total") in (None, 0.0)
