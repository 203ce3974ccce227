"""Live quality for models other than the demo's, end to end: a real regressor and a classifier with
string class labels, each registered with `model_registry.register` (the embedded SQLite registry),
served by `python -m serving` and watched by `python -m quality` on loopback. Predictions go through
/predict, the true outcomes through POST /feedback; the quality service's /metrics must carry MAE and
RMSE (regressor) and accuracy, recall and confusion by class name (classifier) per version, next to
the version's reference quality from its holdout (docs/quality.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LinearRegression, LogisticRegression

from model_registry import RegistrySettings
from model_registry.register import register
from tests.support.procs import free_port, stop_process, wait_for_http

pytestmark = pytest.mark.integration

TOKEN = "quality-your-model-token-0123"


@dataclass
class Running:
    serving: str
    quality: str
    version: str


def _features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({"floor area": rng.uniform(30, 200, n), "rooms": rng.integers(1, 7, n).astype(float)})


def _registry(home: Path) -> str:
    """The embedded registry under ``home``, named explicitly (other tests leave MLFLOW_TRACKING_URI set)."""
    return f"sqlite:///{home / 'mlflow.db'}"


def _start(home: Path, name: str, module: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DRIFTWATCH_HOME": str(home), "DRIFTWATCH_MODEL_NAME": name, "PYTHONUNBUFFERED": "1",
           "DRIFTWATCH_PREDICTION_LOG_FLUSH_SECONDS": "0.2", "MLFLOW_TRACKING_URI": _registry(home)}
    if module == "serving":
        env.update({"DRIFTWATCH_SERVING_HOST": "127.0.0.1", "DRIFTWATCH_SERVING_PORT": str(port)})
    else:
        env.update({"DRIFTWATCH_QUALITY_HOST": "127.0.0.1", "DRIFTWATCH_QUALITY_PORT": str(port),
                    "DRIFTWATCH_QUALITY_TOKEN": TOKEN, "DRIFTWATCH_QUALITY_INTERVAL_SECONDS": "1",
                    "DRIFTWATCH_QUALITY_WINDOW_LABELED": "100"})
    with (home / f"{module}.log").open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Running]]:
    rng = np.random.default_rng(3)
    x = _features(rng, 400)
    price = 3.0 * x["floor area"] + 10.0 * x["rooms"] + rng.normal(0, 20, len(x))
    churn = np.where(x["floor area"] + rng.normal(0, 25, len(x)) > 115, "moves", "stays")
    homes = {"houses": tmp_path_factory.mktemp("houses"), "tenants": tmp_path_factory.mktemp("tenants")}
    versions = {}
    for name, model, y in (("houses", LinearRegression(), price), ("tenants", LogisticRegression(), churn)):
        model.fit(x[:300], y[:300])
        result = register(model, x[:300], y[:300], x_holdout=x[300:], y_holdout=y[300:], name=name, promote=True,
                          settings=RegistrySettings(home=homes[name], model_name=name,
                                                    tracking_uri=_registry(homes[name])))
        assert result.promoted, result
        versions[name] = str(result.version)
    ports = {name: {"serving": free_port(), "quality": free_port()} for name in homes}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # as `driftwatch up` does: serving first, then the services that read the same registry
        for module in ("serving", "quality"):
            started = {name: _start(homes[name], name, module, ports[name][module]) for name in homes}
            procs += started.values()
            for name, proc in started.items():
                wait_for_http(f"http://127.0.0.1:{ports[name][module]}/health", timeout=120, proc=proc,
                              log=homes[name] / f"{module}.log")
        yield {name: Running(f"http://127.0.0.1:{ports[name]['serving']}",
                             f"http://127.0.0.1:{ports[name]['quality']}", versions[name]) for name in homes}
    finally:
        for proc in procs:
            stop_process(proc, timeout=30)


def _predict_and_label(running: Running, rows: pd.DataFrame, truth: list[object]) -> list[dict[str, object]]:
    answer = httpx.post(f"{running.serving}/predict", json={"instances": rows.to_dict(orient="records")}, timeout=30)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    feedback = [{"prediction_id": p["prediction_id"], "actual": t} for p, t in zip(predictions, truth, strict=True)]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    # labels may come before the quality service has read the predictions from the log: pending, joined later
    sent = httpx.post(f"{running.quality}/feedback", json={"labels": feedback}, headers=headers, timeout=30)
    assert sent.status_code == 200, sent.text
    assert sent.json()["joined"] + sent.json()["pending"] == len(feedback)
    return predictions  # type: ignore[no-any-return]


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _metrics(running: Running) -> Samples:
    body = httpx.get(f"{running.quality}/metrics", timeout=30).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def _evaluated(running: Running, labeled: int) -> Samples:
    """/metrics once an evaluation (every second) covered ``labeled`` labeled predictions of the version."""
    deadline = time.monotonic() + 60
    while True:
        samples = _metrics(running)
        try:
            if _sample(samples, "model_quality_window_labeled", model_version=running.version) == labeled:
                return samples
        except AssertionError:
            pass
        assert time.monotonic() < deadline, f"no evaluation over {labeled} labels: {samples}"
        time.sleep(0.3)


def _sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    for (n, items), value in samples.items():
        if n == name and all(dict(items).get(k) == v for k, v in labels.items()):
            return value
    raise AssertionError(f"{name}{labels} not exported; have {sorted({n for n, _ in samples})}")


def test_a_regressor_gets_live_mae_and_rmse_per_version_next_to_its_reference(models: dict[str, Running]) -> None:
    running = models["houses"]
    rng = np.random.default_rng(11)
    rows = _features(rng, 60)
    truth = (3.0 * rows["floor area"] + 10.0 * rows["rooms"] + rng.normal(0, 20, len(rows))).tolist()
    predicted = [p["value"] for p in _predict_and_label(running, rows, truth)]
    errors = np.abs(np.array(predicted) - np.array(truth))
    samples = _evaluated(running, 60)
    version = {"model_name": "houses", "model_version": running.version}
    assert _sample(samples, "model_quality_mae", **version) == pytest.approx(errors.mean(), rel=1e-6)
    assert _sample(samples, "model_quality_rmse", **version) == pytest.approx(np.sqrt((errors ** 2).mean()), rel=1e-6)
    reference = _sample(samples, "model_quality_reference_mae", **version)
    assert 5 < reference < 40 and _sample(samples, "model_quality_reference_rmse", **version) >= reference
    assert _sample(samples, "model_quality_mae_lower_bound", **version) < 1.25 * reference  # healthy: no alert
    assert _sample(samples, "model_quality_labeled_ratio", **version) == 1.0
    # the world moved (prices up by 150) while the model did not: live MAE leaves the reference behind
    more = _features(rng, 60)
    shifted = (3.0 * more["floor area"] + 10.0 * more["rooms"] + 150.0).tolist()
    _predict_and_label(running, more, shifted)
    samples = _evaluated(running, 100)  # the window: the newest 100 labeled predictions
    assert _sample(samples, "model_quality_mae_lower_bound", **version) > 1.25 * reference  # the alert's condition
    assert _sample(samples, "model_quality_mae", **version) > 3 * reference
    assert not [n for n, _ in samples if n == "model_quality_accuracy"]  # no classification series for a regressor


def test_a_classifier_with_string_labels_gets_accuracy_recall_and_confusion_by_class(
        models: dict[str, Running]) -> None:
    running = models["tenants"]
    rng = np.random.default_rng(12)
    rows = _features(rng, 80)
    truth = np.where(rows["floor area"] > 115, "moves", "stays").tolist()
    predictions = _predict_and_label(running, rows, truth)
    predicted = [p["class_name"] for p in predictions]
    assert set(predicted) <= {"moves", "stays"} and {p["class_id"] for p in predictions} <= {"moves", "stays"}
    samples = _evaluated(running, 80)
    version = {"model_name": "tenants", "model_version": running.version}
    right = [p == t for p, t in zip(predicted, truth, strict=True)]
    assert _sample(samples, "model_quality_accuracy", **version) == pytest.approx(np.mean(right))
    moves = [p == "moves" for p, t in zip(predicted, truth, strict=True) if t == "moves"]
    assert _sample(samples, "model_quality_recall", **version, **{"class": "moves"}) == pytest.approx(np.mean(moves))
    assert _sample(samples, "model_quality_confusion", **version, actual_class="moves",
                   predicted_class="moves") == sum(moves)
    assert 0.6 < _sample(samples, "model_quality_reference_accuracy", **version) <= 1.0
    assert 0 < _sample(samples, "model_quality_estimated_accuracy", **version) <= 1.0  # CBPE from the holdout
    assert not [n for n, _ in samples if n == "model_quality_mae"]
