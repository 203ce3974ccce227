"""The exporter service with a fake registry and a real log folder: metrics, switches, errors, routes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from drift_exporter.app import create_app
from drift_exporter.settings import DriftExporterSettings
from model_registry import RegistrySettings
from model_registry.errors import RegistryError, RegistryUnavailable
from model_registry.reference import build_reference, write_reference
from model_registry.versions import VersionInfo
from tests.support.procs import require_binary
from tests.unit.drift_exporter.logfiles import record, write_lines

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
NOW = 1_800_000_000.0


class _Model:
    classes_ = np.array([0, 1, 2])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        scores = np.stack([-frame["petal_length"], frame["sepal_width"] * 0, frame["petal_length"] - 4], axis=1)
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(frame).argmax(axis=1)]


class FakeRegistry:
    """Production version and reference folders, like model_registry.ModelRegistry."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.features = pd.DataFrame({n: rng.normal(3.0 + i, 0.5, 120).round(1) for i, n in enumerate(FEATURES)})
        self.production: str | None = "1"
        self.unavailable = False
        self.broken_references: set[str] = set()
        self.downloads: list[str] = []
        self.calls = 0

    def production_version(self, *, with_metrics: bool = True) -> VersionInfo | None:
        self.calls += 1
        if self.unavailable:
            raise RegistryUnavailable("the registry at http://127.0.0.1:1 cannot be reached")
        if self.production is None:
            return None
        return VersionInfo(name="iris-classifier", version=self.production, run_id="r", source="s",
                           created_at=datetime.now(UTC))

    def download_reference(self, version: str, dst: Path) -> Path:
        self.downloads.append(version)
        if version in self.broken_references:
            raise RegistryError(f"v{version} has no run, so no reference data")
        reference = build_reference(_Model(), self.features, ["setosa", "versicolor", "virginica"],
                                    model_name="iris-classifier", max_rows=1000)
        return write_reference(reference, dst / "reference")


def traffic(folder: Path, rows: int, *, version: str = "1", shift: dict[str, float] | None = None,
            seed: int = 1, name: str = "predictions-test.jsonl", class_id: int | None = None) -> None:
    rng = np.random.default_rng(seed)
    base = FakeRegistry().features
    records = []
    for i in range(rows):
        row = base.iloc[int(rng.integers(len(base)))].to_dict()
        for feature, amount in (shift or {}).items():
            row[feature] += amount
        records.append(record(row, ts=NOW - rows + i, version=version,
                              class_id=int(rng.integers(3)) if class_id is None else class_id))
    write_lines(folder / name, records, mode="a")


@pytest.fixture
def setup(tmp_path: Path):
    logs = tmp_path / "predictions"
    logs.mkdir()
    settings = DriftExporterSettings(registry=RegistrySettings(home=tmp_path), prediction_log_dir=logs,
                                     window_rows=1000, min_window_rows=200, window_max_age_seconds=0)
    source = FakeRegistry()
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry, source=source, clock=lambda: NOW, schedule=False)
    return app, source, registry, logs


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"model_name": "iris-classifier", **labels})


def test_a_check_publishes_the_contract_metrics_for_the_production_version(setup) -> None:
    app, _, registry, logs = setup
    traffic(logs, 1000)
    result = app.state.monitor.run_once()
    assert result is not None and result.status == "ok"
    assert value(registry, "model_drift_window_rows", model_version="1") == 1000
    assert value(registry, "model_drift_window_sufficient", model_version="1") == 1
    assert value(registry, "model_drift_share", model_version="1") == 0.0
    for feature in FEATURES:
        assert value(registry, "model_feature_drift_detected", model_version="1", feature=feature) == 0
        assert value(registry, "model_feature_drift_score", model_version="1", feature=feature, method="ks") is not None
        assert value(registry, "model_feature_drift_p_value", model_version="1", feature=feature, method="ks") > 0.05
        assert value(registry, "model_feature_missing_share", model_version="1", feature=feature) == 0
    assert value(registry, "model_prediction_drift_score", model_version="1", method="chisquare") is not None
    assert value(registry, "model_drift_last_run_timestamp_seconds") == NOW
    assert value(registry, "model_drift_runs_total") == 1
    assert value(registry, "model_drift_run_duration_seconds_count") == 1


def test_shifted_traffic_flips_the_gauges_of_that_feature(setup) -> None:
    app, _, registry, logs = setup
    traffic(logs, 1000, shift={"petal_length": 1.0})
    app.state.monitor.run_once()
    assert value(registry, "model_feature_drift_detected", model_version="1", feature="petal_length") == 1
    assert value(registry, "model_feature_drift_detected", model_version="1", feature="sepal_length") == 0
    assert value(registry, "model_drift_share", model_version="1") == 0.25
    assert value(registry, "model_dataset_drift_detected", model_version="1") == 0


def test_a_production_change_switches_reference_and_removes_the_old_versions_series(setup) -> None:
    app, source, registry, logs = setup
    traffic(logs, 600, version="1")
    app.state.monitor.run_once()
    assert value(registry, "model_drift_window_rows", model_version="1") == 600
    source.production = "2"  # a rollback or a promotion
    traffic(logs, 300, version="2", seed=2)
    result = app.state.monitor.run_once()
    assert result is not None and result.model_version == "2"
    assert source.downloads == ["1", "2"]
    assert value(registry, "model_drift_window_rows", model_version="2") == 900
    assert value(registry, "model_prediction_drift_window_rows", model_version="2") == 300
    exposition = generate_latest(registry).decode()
    assert 'model_version="1"' not in exposition
    # Back to v1: its prepared reference is reused, not downloaded again.
    source.production = "1"
    app.state.monitor.run_once()
    assert source.downloads == ["1", "2"]
    assert 'model_version="2"' not in generate_latest(registry).decode()


def test_below_the_minimum_window_only_the_row_count_is_published(setup) -> None:
    app, _, registry, logs = setup
    traffic(logs, 150, shift={"petal_length": 3.0})
    result = app.state.monitor.run_once()
    assert result is not None and result.status == "insufficient_window"
    assert value(registry, "model_drift_window_rows", model_version="1") == 150
    assert value(registry, "model_drift_window_sufficient", model_version="1") == 0
    assert value(registry, "model_feature_drift_detected", model_version="1", feature="petal_length") is None
    assert value(registry, "model_drift_share", model_version="1") is None
    # Enough rows later: verdicts appear.
    traffic(logs, 100, shift={"petal_length": 3.0}, seed=3)
    app.state.monitor.run_once()
    assert value(registry, "model_feature_drift_detected", model_version="1", feature="petal_length") == 1


def test_no_production_version_clears_the_drift_series(setup) -> None:
    app, source, registry, logs = setup
    traffic(logs, 500)
    app.state.monitor.run_once()
    source.production = None
    assert app.state.monitor.run_once() is None
    assert "model_version=" not in generate_latest(registry).decode()
    body = TestClient(app).get("/drift").json()
    assert body["run"]["status"] == "no_production" and body["result"] is None


def test_an_unreachable_registry_keeps_checking_the_known_version_and_counts_it(setup) -> None:
    app, source, registry, logs = setup
    traffic(logs, 500)
    app.state.monitor.run_once()
    source.unavailable = True
    result = app.state.monitor.run_once()
    assert result is not None and result.model_version == "1"
    assert value(registry, "model_drift_errors_total", reason="registry_unavailable") == 1
    assert value(registry, "model_drift_window_rows", model_version="1") == 500


def test_an_unreachable_registry_before_the_first_reference_is_an_error_not_a_crash(tmp_path: Path) -> None:
    source = FakeRegistry()
    source.unavailable = True
    registry = CollectorRegistry()
    settings = DriftExporterSettings(registry=RegistrySettings(home=tmp_path), prediction_log_dir=tmp_path / "none")
    app = create_app(settings, registry=registry, source=source, clock=lambda: NOW, schedule=False)
    assert app.state.monitor.run_once() is None
    assert value(registry, "model_drift_errors_total", reason="registry_unavailable") == 1
    assert value(registry, "model_drift_last_run_timestamp_seconds") is None
    body = TestClient(app).get("/drift").json()
    assert body["run"]["status"] == "error" and "cannot be reached" in body["run"]["error"]


def test_a_production_version_without_reference_removes_the_old_verdicts_and_says_why(setup) -> None:
    app, source, registry, logs = setup
    traffic(logs, 500)
    app.state.monitor.run_once()
    source.production = "3"
    source.broken_references.add("3")
    assert app.state.monitor.run_once() is None
    assert value(registry, "model_drift_errors_total", reason="reference") == 1
    assert "model_version=" not in generate_latest(registry).decode()


def test_corrupt_lines_are_counted_once_across_checks(setup) -> None:
    app, _, registry, logs = setup
    traffic(logs, 300)
    with (logs / "predictions-test.jsonl").open("a") as handle:
        handle.write("garbage\n{\n")
    traffic(logs, 10, seed=4)
    app.state.monitor.run_once()
    app.state.monitor.run_once()
    assert value(registry, "model_drift_log_corrupt_lines_total") == 2


def test_drift_health_and_report_routes(setup) -> None:
    app, _, _, logs = setup
    client = TestClient(app)
    assert client.get("/report").status_code == 503  # nothing checked yet
    traffic(logs, 400, shift={"sepal_width": 2.0})
    app.state.monitor.run_once()
    body = client.get("/drift").json()
    assert body["run"]["status"] == "ok" and body["run"]["production_version"] == "1"
    features = {f["feature"]: f for f in body["result"]["features"]}
    assert features["sepal_width"]["detected"] is True and features["sepal_width"]["method"] == "ks"
    assert client.get("/health").json()["status"] == "ok"
    report = client.get("/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "sepal_width" in report.text and len(report.text) > 10_000


def test_metrics_pass_promtool_lint(setup) -> None:
    promtool = require_binary("promtool")
    app, _, _, logs = setup
    traffic(logs, 300)
    app.state.monitor.run_once()
    exposition = TestClient(app).get("/metrics")
    assert exposition.headers["content-type"].startswith("text/plain")
    checked = subprocess.run([promtool, "check", "metrics"], input=exposition.content, capture_output=True,
                             timeout=30)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def test_the_scheduler_checks_at_start_and_never_runs_two_checks_at_once(tmp_path: Path) -> None:
    active = 0
    most = 0
    lock = threading.Lock()

    class SlowRegistry(FakeRegistry):
        def production_version(self, *, with_metrics: bool = True) -> VersionInfo | None:
            nonlocal active, most
            with lock:
                active += 1
                most = max(most, active)
            time.sleep(0.3)
            with lock:
                active -= 1
            return super().production_version()

    source = SlowRegistry()
    settings = DriftExporterSettings(registry=RegistrySettings(home=tmp_path), prediction_log_dir=tmp_path,
                                     interval_seconds=0.05)
    app = create_app(settings, registry=CollectorRegistry(), source=source)
    with TestClient(app) as client:
        deadline = time.monotonic() + 10
        while source.calls < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/health").json()["scheduler_running"] is True
    assert source.calls >= 3
    assert most == 1
    assert app.state.scheduler is not None and not app.state.scheduler.running


def test_settings_come_from_the_environment_names_and_refuse_impossible_windows(monkeypatch: pytest.MonkeyPatch,
                                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("DRIFTWATCH_HOME", str(tmp_path))
    monkeypatch.setenv("DRIFTWATCH_DRIFT_PORT", "9999")
    monkeypatch.setenv("DRIFTWATCH_DRIFT_INTERVAL_SECONDS", "5")
    monkeypatch.setenv("DRIFTWATCH_DRIFT_MULTIPLE_TESTING", "bh")
    monkeypatch.setenv("DRIFTWATCH_DRIFT_NUMERIC_METHOD", "anderson")
    settings = DriftExporterSettings()
    assert (settings.port, settings.interval_seconds, settings.multiple_testing) == (9999, 5.0, "bh")
    assert settings.policy().numeric_method == "anderson"
    assert settings.resolved_log_dir == (tmp_path / "predictions").resolve()
    # By default a verdict needs a full window.
    assert settings.policy().min_window_rows == settings.window_rows == 2000
    assert DriftExporterSettings(window_rows=300).policy().min_window_rows == 300
    with pytest.raises(ValueError, match="no check could ever publish a verdict"):
        DriftExporterSettings(window_rows=100, min_window_rows=200)
    with pytest.raises(ValueError):
        DriftExporterSettings(multiple_testing="holm")


def test_logs_are_one_json_object_per_line() -> None:
    import json
    import logging

    from driftwatch.logs import JsonFormatter

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("drift_exporter", logging.WARNING, __file__, 1, "check failed: %s", ("x",),
                                   sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "WARNING" and entry["message"] == "check failed: x"
    assert entry["timestamp"].endswith("Z") and "RuntimeError: boom" in entry["exception"]


def test_invalid_settings_stop_the_process_with_one_line_naming_the_setting(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from drift_exporter.__main__ import main

    monkeypatch.setenv("DRIFTWATCH_HOME", str(tmp_path))
    monkeypatch.setenv("DRIFTWATCH_DRIFT_WINDOW_ROWS", "many")
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("drift exporter: invalid settings:") and "DRIFTWATCH_DRIFT_WINDOW_ROWS" in error
    assert len(error.splitlines()) == 1
