"""train → register → promote → rollback → versions against a real `mlflow server` and the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_registry import ModelRegistry, RegistrySettings, RollbackRefused
from model_registry.errors import PromotionRefused
from model_registry.faults import FaultSpec
from model_registry.reference import read_reference
from model_registry.training import train_and_register
from tests.conftest import MlflowServer

pytestmark = pytest.mark.integration


def settings_for(server: MlflowServer, name: str, mode: str, tmp_path: Path) -> RegistrySettings:
    return RegistrySettings(home=tmp_path, model_name=name, registry_mode=mode, tracking_uri=server.url)


@pytest.mark.parametrize("mode", ["alias", "stage"])
def test_promote_then_rollback_moves_production_back_and_quarantines_the_bad_version(
        mlflow_server: MlflowServer, tmp_path: Path, mode: str) -> None:
    settings = settings_for(mlflow_server, f"workflow-{mode}", mode, tmp_path)
    registry = ModelRegistry(settings)
    good = train_and_register(settings, promote=True)
    assert good.promoted and good.version == "1"
    bad = train_and_register(settings, model="svm", fault=FaultSpec(error_rate=0.5), register=True)
    promotion = registry.promote(bad.version or "", actor="test")
    assert (promotion.version, promotion.previous) == ("2", "1")
    production = registry.production_version()
    assert production is not None and production.version == "2"
    assert production.previous_version == "1" and production.fault == "errors=0.5"

    result = registry.rollback(reason="HighErrorRate fired", actor="test", alertname="HighErrorRate")
    assert (result.from_version, result.to_version) == ("2", "1")
    production = registry.production_version()
    assert production is not None and production.version == "1"
    versions = {v.version: v for v in registry.list_versions()}
    assert versions["2"].quarantined
    assert versions["2"].quarantine_reason == "HighErrorRate fired"
    assert versions["2"].tags["driftwatch.quarantine_alert"] == "HighErrorRate"
    assert versions["2"].tags["driftwatch.quarantined_by"] == "test"
    if mode == "alias":
        assert versions["1"].aliases == ("production",) and versions["2"].aliases == ()
    else:
        assert (versions["1"].stage, versions["2"].stage) == ("Production", "Archived")
    assert versions["1"].metrics["test_accuracy"] >= 0.85

    # The bad version can no longer come back by accident, and a second rollback has nowhere to go.
    with pytest.raises(PromotionRefused, match="quarantined"):
        registry.promote("2")
    with pytest.raises(RollbackRefused) as refused:
        registry.rollback(reason="again", actor="test")
    assert refused.value.code == "no_previous"
    production = registry.production_version()
    assert production is not None and production.version == "1"


def test_reference_data_and_model_download_from_the_server(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    settings = settings_for(mlflow_server, "workflow-artifacts", "alias", tmp_path)
    registry = ModelRegistry(settings)
    result = train_and_register(settings, promote=True)
    reference = read_reference(registry.download_reference(result.version or "", tmp_path / "ref"))
    assert reference.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert reference.class_names == ["setosa", "versicolor", "virginica"]
    assert len(reference.features) == reference.metadata["rows"] == 120
    model_dir = registry.download_model(result.version or "", tmp_path / "model")
    assert (model_dir / "MLmodel").is_file()
    registry.check_loadable(result.version or "")


def test_rollback_to_a_quarantined_version_changes_nothing(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    settings = settings_for(mlflow_server, "workflow-refuse", "alias", tmp_path)
    registry = ModelRegistry(settings)
    for _ in range(3):
        train_and_register(settings, register=True)
    registry.promote("1")
    registry.promote("2")
    registry.rollback(reason="bad", actor="test")  # 2 quarantined, 1 in production
    registry.promote("3")
    before = {v.version: (v.aliases, dict(v.tags)) for v in registry.list_versions(with_metrics=False)}
    with pytest.raises(RollbackRefused) as refused:
        registry.rollback(to="2", reason="oops", actor="test")
    assert refused.value.code == "target_quarantined"
    after = {v.version: (v.aliases, dict(v.tags)) for v in registry.list_versions(with_metrics=False)}
    assert after == before


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driftwatch", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def test_the_cli_works_on_the_embedded_sqlite_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "DRIFTWATCH_"))}
    env["DRIFTWATCH_HOME"] = str(tmp_path / "home")
    trained = run_cli("train", "--promote", env=env)
    assert trained.returncode == 0, trained.stderr
    assert "promoted v1" in trained.stdout
    faulty = run_cli("train", "--fault", "errors=0.5", "--register", env=env)
    assert faulty.returncode == 0, faulty.stderr
    assert "v2" in faulty.stdout and "errors=0.5" in faulty.stdout
    assert run_cli("promote", "2", env=env).returncode == 0
    rolled = run_cli("rollback", "--reason", "drill", env=env)
    assert rolled.returncode == 0, rolled.stderr
    assert "now serving v1" in rolled.stdout
    table = run_cli("versions", env=env)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["VERSION", "ALIAS", "MODEL"]
    row2 = next(line for line in lines if line.startswith("2 "))
    row1 = next(line for line in lines if line.startswith("1 "))
    assert "production" in row1 and "drill" in row2 and "fault errors=0.5" in row2
    assert (tmp_path / "home" / "mlflow.db").is_file()
    assert any((tmp_path / "home" / "artifacts").rglob("reference/features.parquet"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("promote", "42"), "does not exist", id="unknown-version"),
        pytest.param(("train", "--fault", "errors=nope"), "not a number", id="malformed-fault"),
        pytest.param(("rollback",), "is not registered", id="missing-model"),
    ],
)
def test_cli_errors_are_one_line_and_non_zero(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "DRIFTWATCH_"))}
    env["DRIFTWATCH_HOME"] = str(tmp_path / "home")
    env["DRIFTWATCH_MODEL_NAME"] = "never-registered"
    result = run_cli(*args, env=env)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("driftwatch: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_cli_says_when_the_registry_is_unreachable(tmp_path: Path) -> None:
    env = dict(os.environ, DRIFTWATCH_HOME=str(tmp_path), MLFLOW_TRACKING_URI="http://127.0.0.1:9",
               MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    result = run_cli("versions", env=env)
    assert result.returncode == 1
    assert "cannot be reached" in result.stderr and "MLFLOW_TRACKING_URI" in result.stderr


def test_promote_refuses_without_reference_data_or_with_inputs_production_clients_cannot_send(
        mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """Issue #11 item 4 (docs/contract.md, promote guards): each refusal says which columns, and
    ``force`` overrides it on the record. Signatures are read from the ``MLmodel`` file alone."""
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from model_registry.register import register

    settings = settings_for(mlflow_server, "guards", "alias", tmp_path)
    registry = ModelRegistry(settings)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"floor area": rng.normal(80, 20, 300), "rooms (n)": rng.integers(1, 6, 300).astype(float)})
    target = 2.5 * frame["floor area"] + 10 * frame["rooms (n)"]
    first = register(LinearRegression().fit(frame, target), frame, target, x_holdout=frame.tail(60),
                     y_holdout=target.tail(60), promote=True, settings=settings, registry=registry, actor="test")
    assert first.promoted and first.version == "1"

    # Another column set: one of production's columns missing, one new, one retyped.
    other = frame.drop(columns=["rooms (n)"]).assign(**{"garden?": rng.normal(size=300)})
    other["floor area"] = other["floor area"].round().astype("int64")
    second = register(LinearRegression().fit(other, target), other, target, settings=settings, registry=registry)
    with pytest.raises(PromotionRefused) as refused:
        registry.promote(second.version or "", actor="test")
    message = str(refused.value)
    assert "lacks production's input columns" in message and "rooms (n)" in message
    assert "garden?" in message and "floor area (double -> long)" in message and "--force" in message
    assert registry.production_version() is not None and registry.production_version().version == "1"  # type: ignore[union-attr]

    # Another task: a classifier on the same columns cannot replace a regressor unasked.
    labels = np.where(target > target.median(), "high", "low")
    third = register(LogisticRegression(max_iter=500).fit(frame, labels), frame, labels, settings=settings,
                     registry=registry)
    with pytest.raises(PromotionRefused, match="is a classification model, production v1 a regression model"):
        registry.promote(third.version or "", actor="test")

    # A version logged without driftwatch (no reference data) cannot be watched, so it is refused.
    mlflow.set_tracking_uri(settings.tracking_uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LinearRegression().fit(frame, target), name="model",
                                        input_example=frame.head(2), registered_model_name=settings.model_name)
    bare = str(info.registered_model_version)
    with pytest.raises(PromotionRefused, match=f"v{bare} has no reference data"):
        registry.promote(bare, actor="test")

    forced = registry.promote(second.version or "", actor="test", force=True)
    assert (forced.version, forced.previous) == (second.version, "1")
