"""The drift exporter as a process, against a real `mlflow server` registry and a real log folder:
gauges flip when the traffic shifts, and the reference switches after a rollback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
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
from tests.support.procs import free_port, stop_process, wait_for_http

pytestmark = pytest.mark.integration

CLASSES = ("setosa", "versicolor", "virginica")


class LogWriter:
    """Writes the prediction log the way a serving process does (DESIGN.md record, size rotation)."""

    def __init__(self, folder: Path, instance: str, *, max_bytes: int = 256 * 1024, backups: int = 3) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"predictions-{instance}.jsonl"
        self.max_bytes = max_bytes
        self.backups = backups
        self.rng = np.random.default_rng(0)

    def write(self, features: pd.DataFrame, *, version: str, model_name: str) -> None:
        for row in features.to_dict(orient="records"):
            if self.path.exists() and self.path.stat().st_size >= self.max_bytes:
                self._rotate()
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            record = {"timestamp": now, "event": "prediction", "prediction_id": uuid.uuid4().hex,
                      "features": {k: round(float(v), 4) for k, v in row.items()},
                      "prediction": {"class_id": (c := int(self.rng.integers(3))), "class_name": CLASSES[c],
                                     "probability": 0.9},
                      "model": {"name": model_name, "version": version,
                                "source": f"models:/{model_name}@production"},
                      "latency_ms": 0.5}
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")

    def _rotate(self) -> None:
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))


def sample(reference: pd.DataFrame, rows: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = reference.iloc[rng.integers(0, len(reference), rows)].reset_index(drop=True).copy()
    for name, sigmas in (shift or {}).items():
        frame[name] = frame[name] + sigmas * float(reference[name].std(ddof=0))
    return frame


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def gauge(samples: dict, name: str, **labels: str) -> float | None:
    for (sample_name, sample_labels), value in samples.items():
        if sample_name == name and set(labels.items()) <= sample_labels:
            return value
    return None


def wait_until(what: str, url: str, condition: Callable[[dict], bool], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    samples: dict = {}
    while time.monotonic() < deadline:
        samples = scrape(url)
        if condition(samples):
            return samples
        time.sleep(0.3)
    drift = httpx.get(f"{url}/drift", timeout=5).json()
    raise AssertionError(f"timed out waiting for {what}; /drift: {json.dumps(drift)[:3000]}")


@pytest.fixture
def exporter(mlflow_server: MlflowServer, tmp_path: Path) -> Iterator[tuple[str, RegistrySettings, Path]]:
    name = f"drift-{uuid.uuid4().hex[:8]}"
    settings = RegistrySettings(home=tmp_path / "home", model_name=name, tracking_uri=mlflow_server.url)
    logs = tmp_path / "predictions"
    port = free_port()
    env = {**os.environ, "DRIFTWATCH_HOME": str(settings.home), "MLFLOW_TRACKING_URI": mlflow_server.url,
           "DRIFTWATCH_MODEL_NAME": name, "DRIFTWATCH_PREDICTION_LOG_DIR": str(logs),
           "DRIFTWATCH_DRIFT_HOST": "127.0.0.1", "DRIFTWATCH_DRIFT_PORT": str(port),
           "DRIFTWATCH_DRIFT_INTERVAL_SECONDS": "1", "DRIFTWATCH_DRIFT_WINDOW_ROWS": "1000",
           "DRIFTWATCH_DRIFT_MIN_WINDOW_ROWS": "300", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    log = tmp_path / "drift-exporter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "drift_exporter"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout=90, proc=proc, log=log)
        yield f"http://127.0.0.1:{port}", settings, logs
    finally:
        stop_process(proc)


def test_gauges_flip_when_traffic_shifts_and_the_reference_switches_after_a_rollback(exporter) -> None:
    url, settings, logs = exporter
    registry = ModelRegistry(settings)
    first = train_and_register(settings, promote=True, seed=0)
    second = train_and_register(settings, promote=True, seed=1)
    v1, v2 = first.version or "", second.version or ""
    production = registry.production_version(with_metrics=False)
    assert production is not None and production.version == v2
    reference = read_reference(registry.download_reference(v2, settings.home / "ref")).features
    writer = LogWriter(logs, "serving-1")

    # Too little traffic: the row count is published, no verdict yet.
    writer.write(sample(reference, 100, seed=1), version=v2, model_name=settings.model_name)
    samples = wait_until("the first check", url,
                         lambda s: gauge(s, "model_drift_window_rows", model_version=v2) == 100)
    assert gauge(samples, "model_drift_window_sufficient", model_version=v2) == 0
    assert gauge(samples, "model_feature_drift_detected", model_version=v2, feature="petal_length") is None

    # Steady traffic like the training data: verdicts published, nothing drifted.
    writer.write(sample(reference, 900, seed=2), version=v2, model_name=settings.model_name)
    samples = wait_until("a full window", url,
                         lambda s: gauge(s, "model_drift_window_rows", model_version=v2) == 1000)
    for feature in ("sepal_length", "sepal_width", "petal_length", "petal_width"):
        assert gauge(samples, "model_feature_drift_detected", model_version=v2, feature=feature) == 0
    assert gauge(samples, "model_drift_share", model_version=v2) == 0
    assert list(logs.glob("predictions-serving-1.jsonl.*")), "the writer should have rotated its file"

    # Inputs drift: petal_length moves by one standard deviation in the newest 600 rows.
    writer.write(sample(reference, 600, seed=3, shift={"petal_length": 1.0}), version=v2,
                 model_name=settings.model_name)
    samples = wait_until("petal_length to drift", url, lambda s: gauge(
        s, "model_feature_drift_detected", model_version=v2, feature="petal_length") == 1)
    assert gauge(samples, "model_feature_drift_detected", model_version=v2, feature="sepal_width") == 0
    assert gauge(samples, "model_drift_share", model_version=v2) == 0.25
    assert gauge(samples, "model_feature_drift_p_value", model_version=v2, feature="petal_length",
                 method="ks") < 0.05 / 4

    # A rollback moves production back to v1: the exporter switches reference and drops v2's series.
    registry.rollback(reason="drill", actor="test")
    samples = wait_until("the reference switch to v1", url,
                         lambda s: gauge(s, "model_drift_window_rows", model_version=v1) is not None)
    assert not any(dict(labels).get("model_version") == v2 for (_, labels) in samples)
    assert gauge(samples, "model_drift_window_rows", model_version=v1) == 1000
    assert gauge(samples, "model_feature_drift_detected", model_version=v1, feature="petal_length") == 1
    body = httpx.get(f"{url}/drift", timeout=5).json()
    assert body["result"]["model_version"] == v1
    assert gauge(samples, "model_drift_errors_total") in (None, 0.0)
