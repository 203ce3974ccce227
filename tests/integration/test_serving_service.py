"""The prediction service as users run it: `python -m serving` under uvicorn on loopback, a real
`mlflow server` as the registry, versions registered by `train_and_register`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from model_registry import ModelRegistry, RegistrySettings
from model_registry.faults import FaultSpec
from model_registry.training import train_and_register
from tests.conftest import MlflowServer
from tests.support.procs import free_port, require_binary, stop_process, wait_for_http

pytestmark = pytest.mark.integration

MODEL_NAME = "serving-it"
TOKEN = "integration-admin-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@dataclass
class Registered:
    settings: RegistrySettings
    registry: ModelRegistry
    logreg: str
    svm: str
    failing: str


@dataclass
class Service:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    instance: str
    home: Path

    def post(self, path: str, body: object, **kwargs: object) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, timeout=10, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10)

    def reload(self) -> httpx.Response:
        return httpx.post(f"{self.url}/admin/reload", headers=AUTH, timeout=30)

    def stop(self) -> None:
        stop_process(self.proc, timeout=30)  # SIGTERM: uvicorn's graceful shutdown


@pytest.fixture(scope="module")
def registered(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Registered:
    settings = RegistrySettings(home=tmp_path_factory.mktemp("serving-train"), model_name=MODEL_NAME,
                                tracking_uri=mlflow_server.url)
    logreg = train_and_register(settings, promote=True)
    svm = train_and_register(settings, model="svm", seed=1)
    failing = train_and_register(settings, fault=FaultSpec(error_rate=1.0), seed=2)
    assert logreg.promoted and svm.version and failing.version
    return Registered(settings, ModelRegistry(settings), str(logreg.version), svm.version, failing.version)


def start_service(server: MlflowServer, home: Path, instance: str) -> Service:
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"serving-{instance}.log"
    env = {**os.environ, "DRIFTWATCH_HOME": str(home), "MLFLOW_TRACKING_URI": server.url,
           "DRIFTWATCH_MODEL_NAME": MODEL_NAME, "DRIFTWATCH_SERVING_HOST": "127.0.0.1",
           "DRIFTWATCH_SERVING_PORT": str(port), "DRIFTWATCH_POLL_INTERVAL_SECONDS": "0.5",
           "DRIFTWATCH_ADMIN_TOKEN": TOKEN, "DRIFTWATCH_SERVING_INSTANCE": instance,
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
           "DRIFTWATCH_MAX_BATCH": "1000"}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "serving"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", timeout=120, proc=proc, log=log)
    except BaseException:
        stop_process(proc)
        raise
    return Service(url, proc, log, instance, home)


@pytest.fixture(scope="module")
def service(mlflow_server: MlflowServer, registered: Registered,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = start_service(mlflow_server, tmp_path_factory.mktemp("serving-home"), "it-main")
    yield running
    running.stop()


def promote(registered: Registered, service: Service, version: str) -> None:
    registered.registry.promote(version, actor="test")
    assert service.reload().status_code == 200
    assert service.get("/health").json()["model_version"] == version


def sample(service: Service, name: str, labels: dict[str, str]) -> float:
    for line in service.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_request_schema_comes_from_the_registered_signature(service: Service) -> None:
    document = service.get("/openapi.json").json()
    features = document["components"]["schemas"]["ServingItFeatures"]
    assert list(features["properties"]) == list(ROW)
    assert all(p["type"] == "number" for p in features["properties"].values())
    health = service.get("/health").json()
    assert health["classes"] == ["setosa", "versicolor", "virginica"] and health["source"] == "registry"
    assert health["inference_backend"] == "onnx"


def test_mlflows_own_scoring_client_works_against_the_service(service: Service) -> None:
    """ScoringServerClient is what MLflow's tools use against `mlflow models serve`."""
    import pandas as pd
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    host, port = service.url.removeprefix("http://").split(":")
    client = ScoringServerClient(host, int(port))
    client.wait_server_ready(timeout=10)
    assert client.get_version().strip()
    frame = pd.DataFrame([ROW] * 3)
    answer = client.invoke(frame)
    assert list(answer.get_predictions().iloc[:, 0]) == [0, 0, 0]


BAD_INPUTS = [
    (b'{"features": {"sepal_length": 5.1}}', "application/json", 422, "features.sepal_width: is required"),
    (json.dumps({"features": {**ROW, "x": 1}}).encode(), "application/json", 422, "features.x: is not a feature"),
    (json.dumps({"features": {**ROW, "sepal_width": "3,5"}}).encode(), "application/json", 422,
     "features.sepal_width: must be a number"),
    (b'{"features": [NaN, 3.5, 1.4, 0.2]}', "application/json", 422, "features[0] (sepal_length): must be a finite"),
    (b'{"features": [Infinity, 3.5, 1.4, 0.2]}', "application/json", 422, "got Infinity"),
    (b'{"instances": []}', "application/json", 422, "the batch is empty"),
    (json.dumps({"instances": [ROW] * 1001}).encode(), "application/json", 413, "over the limit of 1000"),
    (b"sepal_length=5.1", "application/json", 400, "not valid JSON"),
    (json.dumps({"features": ROW}).encode(), "application/x-www-form-urlencoded", 415, "send application/json"),
]


def test_every_kind_of_bad_input_is_a_4xx_naming_the_problem_counted_as_validation(service: Service) -> None:
    version = service.get("/health").json()["model_version"]
    before = sample(service, "model_prediction_errors_total", {"model_version": version, "reason": "validation"})
    for content, content_type, status, words in BAD_INPUTS:
        response = httpx.post(f"{service.url}/predict", content=content, headers={"Content-Type": content_type},
                              timeout=10)
        assert response.status_code == status, (content[:80], response.text)
        assert words in response.json()["detail"]
    after = sample(service, "model_prediction_errors_total", {"model_version": version, "reason": "validation"})
    assert after - before == len(BAD_INPUTS)
    assert service.post("/predict", {"features": ROW}).status_code == 200


def test_promtool_finds_nothing_to_complain_about_in_metrics(service: Service) -> None:
    promtool = require_binary("promtool")
    service.post("/predict", {"features": ROW})
    service.get("/nope")
    text = service.get("/metrics").text
    for name in ("model_predictions_total", "model_prediction_errors_total", "model_prediction_duration_seconds",
                 "http_requests_total", "http_request_duration_seconds", "model_info", "model_loaded",
                 "model_reloads_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in text or f"# TYPE {name}" in text, name
    checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    assert checked.stdout.decode().strip() == "" and checked.stderr.decode().strip() == ""


@dataclass
class Load:
    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    statuses: Counter[int] = field(default_factory=Counter)
    versions: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.post(f"{self.url}/predict", json={"instances": [ROW, ROW]})
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.versions.append(response.json()["model_version"])
                else:
                    self.failures.append(response.text[:200])


def test_an_alias_move_under_continuous_load_fails_no_request(registered: Registered, service: Service) -> None:
    promote(registered, service, registered.logreg)
    load = Load(service.url)
    threads = [threading.Thread(target=load.run) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        registered.registry.promote(registered.svm, actor="test")  # the poll (0.5 s) picks it up
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not load.versions or load.versions[-1] != registered.svm):
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(30)
    assert load.failures == [] and set(load.statuses) == {200}
    assert load.versions[0] == registered.logreg and load.versions[-1] == registered.svm
    switch = load.versions.index(registered.svm)
    assert set(load.versions[switch:]) == {registered.svm}  # once swapped, never the old one again
    assert sum(load.statuses.values()) > 50


def test_a_faulty_version_answers_500_counted_as_inference_until_rolled_back(registered: Registered,
                                                                           service: Service) -> None:
    promote(registered, service, registered.svm)
    registered.registry.promote(registered.failing, actor="test")
    reload = service.reload().json()  # the 0.5 s poll may have swapped first: then "unchanged"
    assert reload["result"] in ("swapped", "unchanged") and reload["model_version"] == registered.failing
    for _ in range(5):
        response = service.post("/predict", {"features": ROW})
        assert response.status_code == 500 and "InjectedFault" in response.json()["detail"]
    assert sample(service, "model_prediction_errors_total",
                  {"model_version": registered.failing, "reason": "inference"}) == 5
    assert service.get("/health").status_code == 200
    registered.registry.rollback(reason="test drill", actor="test", alertname="HighErrorRate")
    assert service.reload().json()["model_version"] == registered.svm
    assert service.post("/predict", {"features": ROW}).status_code == 200


def test_registry_outage_keeps_serving_and_a_restart_serves_the_local_copy(
        mlflow_server: MlflowServer, registered: Registered, service: Service) -> None:
    version = service.get("/health").json()["model_version"]
    mlflow_server.stop()
    try:
        reload = service.reload()
        assert reload.status_code == 503 and reload.json()["model_version"] == version
        assert service.post("/predict", {"features": ROW}).status_code == 200
        health = service.get("/health").json()
        assert health["registry"]["registry_reachable"] is False and health["model_version"] == version

        # A second process on the same DRIFTWATCH_HOME starts with the registry still down.
        restarted = start_service(mlflow_server, service.home, "it-restart")
        try:
            health = restarted.get("/health").json()
            assert health["source"] == "cache" and health["model_version"] == version
            assert any("local copy" in w for w in health["warnings"])
            assert restarted.get("/metadata").json()["model"]["loaded_from"] == "cache"
            ids = []
            for i in range(40):
                body = {"instances": [ROW] * 3} if i % 4 == 0 else {"features": ROW}
                response = restarted.post("/predict", body)
                assert response.status_code == 200
                ids += [p["prediction_id"] for p in response.json()["predictions"]]
        finally:
            restarted.stop()
        # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal so the exit status says why.
        assert restarted.proc.returncode == -15
        assert "Application shutdown complete" in restarted.log.read_text()
        # N predictions -> N lines, everything flushed by the graceful stop.
        log = service.home / "predictions" / "predictions-it-restart.jsonl"
        everything = [json.loads(line) for line in log.read_text().splitlines()]
        records = [r for r in everything if r["event"] == "prediction"]
        assert [r["prediction_id"] for r in records] == ids
        assert everything[-1]["event"] == "log_end" and everything[-1]["lost"] == 0
        assert {r["model"]["version"] for r in records} == {version}
    finally:
        mlflow_server.start()
    assert service.reload().status_code == 200
    assert service.get("/health").json()["registry"]["registry_reachable"] is True
