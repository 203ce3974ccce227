"""The HTTP service, in process: a fake registry, a fresh CollectorRegistry per app."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from serving.app import create_app
from serving.settings import ServingSettings
from tests.unit.serving.conftest import (
    ADMIN_TOKEN,
    MODEL_NAME,
    ROW,
    ROW_VIRGINICA,
    FakeRegistry,
    SavedModel,
    make_settings,
)

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Service:
    def __init__(self, client: TestClient, metrics: CollectorRegistry, settings: ServingSettings) -> None:
        self.client = client
        self.metrics = metrics
        self.settings = settings

    def predict(self, body: Any) -> httpx.Response:
        return self.client.post("/predict", json=body)

    def errors(self, reason: str, version: str = "1") -> float:
        return self.metrics.get_sample_value("model_prediction_errors_total", {
            "model_name": MODEL_NAME, "model_version": version, "reason": reason}) or 0.0

    def requests(self, handler: str, method: str, status: int) -> float:
        return self.metrics.get_sample_value("http_requests_total", {
            "handler": handler, "method": method, "status": str(status)}) or 0.0


def start(settings: ServingSettings, registry: FakeRegistry) -> Iterator[Service]:
    metrics = CollectorRegistry()
    app = create_app(settings, registry=metrics, model_source=registry)
    with TestClient(app) as client:
        yield Service(client, metrics, settings)


@pytest.fixture
def service(settings: ServingSettings, fake_registry: FakeRegistry) -> Iterator[Service]:
    yield from start(settings, fake_registry)


# ---------------------------------------------------------------- predictions
def test_predict_answers_class_probabilities_version_and_an_id_per_row(service: Service,
                                                                        saved_models: dict[str, SavedModel]) -> None:
    response = service.predict({"features": ROW})
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == MODEL_NAME and body["model_version"] == "1"
    [row] = body["predictions"]
    assert row["class_id"] == 0 and row["class_name"] == "setosa" and row["model_version"] == "1"
    assert len(row["prediction_id"]) == 32
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = saved_models["logreg"].estimator.predict_proba(pd.DataFrame([ROW]))[0]
    assert row["probabilities"] == pytest.approx(dict(zip(["setosa", "versicolor", "virginica"], want, strict=True)),
                                                 abs=1e-9)
    assert row["probability"] == pytest.approx(max(want), abs=1e-9)


def test_positional_and_batch_requests_answer_one_row_each(service: Service) -> None:
    positional = service.predict({"features": list(ROW_VIRGINICA.values())}).json()["predictions"]
    assert [p["class_name"] for p in positional] == ["virginica"]
    batch = service.predict({"instances": [ROW, list(ROW_VIRGINICA.values()), ROW]}).json()["predictions"]
    assert [p["class_name"] for p in batch] == ["setosa", "virginica", "setosa"]
    assert len({p["prediction_id"] for p in batch}) == 3
    assert service.metrics.get_sample_value("model_predictions_total", {
        "model_name": MODEL_NAME, "model_version": "1", "predicted_class": "setosa"}) == 2


@pytest.mark.parametrize(("content", "headers", "status", "words"), [
    pytest.param(b"{not json", {"Content-Type": "application/json"}, 400, "not valid JSON", id="not-json"),
    pytest.param(b"", {"Content-Type": "application/json"}, 400, "empty", id="empty-body"),
    pytest.param(json.dumps({"features": ROW}).encode(), {"Content-Type": "text/plain"}, 415, "text/plain",
                 id="wrong-content-type"),
    pytest.param(json.dumps({"features": ROW}).encode(), {}, 415, "no content type", id="no-content-type"),
    pytest.param(json.dumps({"features": ROW}).encode(), {"Content-Type": "application/json; charset=latin-1"}, 415,
                 "charset", id="not-utf8"),
    pytest.param(b'{"features": {"sepal_length": NaN, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}',
                 {"Content-Type": "application/json"}, 422, "features.sepal_length: must be a finite number, got NaN",
                 id="nan-literal"),
    pytest.param(b'{"features": {"sepal_length": 1e999, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}',
                 {"Content-Type": "application/json"}, 422, "features.sepal_length: must be a finite number",
                 id="overflowing-number"),
    pytest.param(json.dumps({"features": {**ROW, "petal_width": "wide"}}).encode(), {"Content-Type": "application/json"},
                 422, "features.petal_width: must be a number", id="mistyped"),
    pytest.param(json.dumps({"features": {**ROW, "colour": "red"}}).encode(), {"Content-Type": "application/json"},
                 422, "features.colour: is not a feature", id="extra"),
    pytest.param(json.dumps({"instances": []}).encode(), {"Content-Type": "application/json"}, 422, "empty",
                 id="empty-batch"),
    pytest.param(json.dumps({"instances": [ROW] * 11}).encode(), {"Content-Type": "application/json"}, 413,
                 "over the limit of 10", id="batch-over-limit"),
    pytest.param(b'{"instances": [' + b" " * 5000 + b"]}", {"Content-Type": "application/json"}, 413,
                 "DRIFTWATCH_MAX_BODY_BYTES", id="body-over-limit"),
    # issue #15: these were 500s
    pytest.param(b'{"features": {"sepal_length": 1' + b"0" * 400 + b', "sepal_width": 3.5, "petal_length": 1.4, '
                 b'"petal_width": 0.2}}', {"Content-Type": "application/json"}, 422,
                 "features.sepal_length: is out of range for a 64-bit float", id="integer-too-large-for-a-float"),
    pytest.param(b'{"features": {"\\ud800": 1}}', {"Content-Type": "application/json"}, 400,
                 "lone UTF-16 surrogate", id="lone-surrogate-in-a-field-name"),
    pytest.param(b'{"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2, '
                 b'"\xed\xa0\x80": 1}}', {"Content-Type": "application/json"}, 400, "not valid JSON",
                 id="surrogate-encoded-as-utf8"),
])
def test_bad_input_is_a_4xx_that_says_what_and_is_counted_as_validation(
        tmp_path: Path, fake_registry: FakeRegistry, content: bytes, headers: dict[str, str], status: int,
        words: str) -> None:
    for service in start(make_settings(tmp_path, max_batch=10, max_body_bytes=4096), fake_registry):
        response = service.client.post("/predict", content=content, headers=headers)
        assert response.status_code == status, response.text
        assert words in response.json()["detail"]
        assert response.json()["error"] == "validation"
        assert service.errors("validation") == 1
        assert service.requests("/predict", "POST", status) == 1
        assert service.predict({"features": ROW}).status_code == 200  # and the service goes on


def test_a_model_that_raises_is_a_500_for_that_request_counted_as_inference(
        settings: ServingSettings, saved_models: dict[str, SavedModel]) -> None:
    registry = FakeRegistry()
    registry.add(saved_models["failing"], promote=True)
    for service in start(settings, registry):
        for _ in range(3):
            response = service.predict({"features": ROW})
            assert response.status_code == 500
            assert response.json()["error"] == "inference" and "InjectedFault" in response.json()["detail"]
        assert service.errors("inference") == 3
        assert service.client.get("/health").status_code == 200
        registry.production = registry.add(saved_models["logreg"])  # the fix: roll forward
        assert service.client.post("/admin/reload", headers=AUTH).json()["result"] == "swapped"
        assert service.predict({"features": ROW}).status_code == 200


def test_injected_latency_slows_predictions_without_blocking_other_requests(
        settings: ServingSettings, saved_models: dict[str, SavedModel]) -> None:
    registry = FakeRegistry()
    registry.add(saved_models["slow"], promote=True)
    metrics = CollectorRegistry()
    app = create_app(settings, registry=metrics, model_source=registry)

    async def scenario() -> tuple[float, float]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                started = time.perf_counter()
                predictions = [asyncio.create_task(client.post("/predict", json={"features": ROW})) for _ in range(5)]
                await asyncio.sleep(0.02)
                health = await client.get("/health")
                health_at = time.perf_counter() - started
                answers = await asyncio.gather(*predictions)
                total = time.perf_counter() - started
                assert health.status_code == 200 and all(a.status_code == 200 for a in answers)
                return health_at, total

    health_at, total = asyncio.run(scenario())
    assert health_at < 0.15  # answered while five predictions were sleeping
    assert 0.2 <= total < 0.9  # the five slept together, not one after another
    assert metrics.get_sample_value("model_prediction_duration_seconds_sum", {
        "model_name": MODEL_NAME, "model_version": "1"}) >= 5 * 0.2


def test_no_model_means_503_for_health_ready_and_predictions_counted_as_unavailable(
        settings: ServingSettings, fake_registry: FakeRegistry) -> None:
    fake_registry.available = False
    for service in start(settings, fake_registry):
        assert service.client.get("/health").status_code == 503
        assert service.client.get("/ready").status_code == 503
        response = service.predict({"features": ROW})
        assert response.status_code == 503 and response.json()["error"] == "unavailable"
        assert service.errors("unavailable", version="none") == 1
        assert service.metrics.get_sample_value("model_loaded", {"model_name": MODEL_NAME}) == 0
        fake_registry.available = True
        assert service.client.post("/admin/reload", headers=AUTH).status_code == 200
        assert service.client.get("/health").json()["model_version"] == "1"
        assert service.client.get("/ready").status_code == 200


CSV_HEADER = b"sepal_length,sepal_width,petal_length,petal_width\n"


@pytest.mark.parametrize(("content", "content_type", "words"), [
    pytest.param(CSV_HEADER + b"5.1,3\r5,1.4,0.2\n", "text/csv", "row 1: has 2 values for 4 columns",
                 id="csv-carriage-return-in-an-unquoted-field"),
    pytest.param(CSV_HEADER + b"5.1,3.5,1.4," + b"1" * 200_000 + b"\n", "text/csv",
                 "row 1.petal_width: must be a finite number, got Infinity", id="csv-200000-character-field"),
    pytest.param(CSV_HEADER + b'5.1,3.5,1.4,"0.2\n', "text/csv", "is not valid CSV", id="csv-unterminated-quote"),
    pytest.param(b'{"inputs": [{"sepal_length": 1' + b"0" * 400 + b', "sepal_width": 3.5, "petal_length": 1.4, '
                 b'"petal_width": 0.2}]}', "application/json", "out of range for a 64-bit float",
                 id="integer-too-large-for-a-float"),
    pytest.param(b'{"inputs": [{"sepal_length": "1' + b"0" * 5000 + b'"}]}', "application/json",
                 "must be a finite number", id="numeric-string-of-5000-digits"),
    pytest.param(b'{"inputs": [{"\\ud800": 1}]}', "application/json", "lone UTF-16 surrogate",
                 id="lone-surrogate-in-a-field-name"),
    pytest.param(b'{"\\udc00": 1}', "application/json", "lone UTF-16 surrogate", id="lone-surrogate-as-the-key"),
])
def test_invocations_bad_input_that_was_a_500_is_a_counted_400(
        tmp_path: Path, fake_registry: FakeRegistry, content: bytes, content_type: str, words: str) -> None:
    for service in start(make_settings(tmp_path, max_body_bytes=1 << 20), fake_registry):
        response = service.client.post("/invocations", content=content, headers={"Content-Type": content_type})
        assert response.status_code == 400, response.text
        assert words in response.json()["message"]
        assert service.errors("validation") == 1
        assert service.requests("/invocations", "POST", 400) == 1


def test_a_fault_on_the_prediction_path_is_a_counted_500(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = service.client.app.state.scorer  # type: ignore[attr-defined]

    def broken(*_: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(scorer, "_rows", broken)
    response = service.predict({"features": ROW})
    assert response.status_code == 500 and response.json()["error"] == "inference"
    assert service.errors("inference") == 1
    assert service.requests("/predict", "POST", 500) == 1


# ---------------------------------------------------------------- MLflow's protocol
@pytest.fixture(scope="module")
def mlflow_server(saved_models: dict[str, SavedModel]) -> Iterator[TestClient]:
    """`mlflow models serve`'s own app (mlflow.pyfunc.scoring_server.init), in process, on the same model."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mlflow.pyfunc.load_model(str(saved_models["logreg"].model_dir))
    with TestClient(scoring_server.init(model)) as client:
        yield client


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    import io

    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buffer)
    return buffer.getvalue()


NAMES = list(ROW)
SPLIT = {"columns": NAMES, "data": [list(ROW.values()), list(ROW_VIRGINICA.values())]}
# Valid and invalid bodies; the invalid ones include the cases of MLflow's own
# tests/pyfunc/test_scoring_server.py that apply to a model with a column signature.
INVOCATIONS = [
    pytest.param(json.dumps({"dataframe_split": SPLIT}), "application/json", id="dataframe_split"),
    pytest.param(json.dumps({"dataframe_split": SPLIT}), "application/json; charset=UTF-8", id="charset-parameter"),
    pytest.param(json.dumps({"dataframe_split": {"index": [3], "columns": NAMES[::-1],
                                                 "data": [list(ROW_VIRGINICA.values())[::-1]]}}),
                 "application/json", id="dataframe_split-reordered"),
    pytest.param(json.dumps({"dataframe_records": [ROW, ROW_VIRGINICA]}), "application/json", id="dataframe_records"),
    pytest.param(json.dumps({"instances": [ROW_VIRGINICA, ROW]}), "application/json", id="instances"),
    pytest.param(json.dumps({"inputs": {k: [ROW[k], ROW_VIRGINICA[k]] for k in NAMES}}), "application/json",
                 id="inputs-columns"),
    pytest.param(json.dumps({"inputs": [{**ROW, "extra": 1}], "params": {}}), "application/json",
                 id="inputs-extra-column"),
    pytest.param(json.dumps({"inputs": [{**ROW, "sepal_length": "5.1"}]}), "application/json; charset=utf-8",
                 id="numeric-string"),
    pytest.param("petal_width,petal_length,sepal_width,sepal_length\n2.3,5.2,3.0,6.7\n", "text/csv", id="csv"),
    pytest.param(_parquet([ROW, ROW_VIRGINICA]), "application/vnd.apache.parquet", id="parquet"),
    pytest.param(_parquet([ROW_VIRGINICA] * 10_000), "application/vnd.apache.parquet", id="parquet-10000-rows"),
    pytest.param(json.dumps({"dataframe_records": [ROW, ROW_VIRGINICA] * 5_000}), "application/json",
                 id="json-10000-rows"),
    pytest.param(json.dumps({"inputs": [list(ROW.values())]}), "application/json", id="bad-positional"),
    pytest.param(json.dumps({"dataframe_records": [{"sepal_length": 1.0}]}), "application/json", id="bad-missing"),
    pytest.param(json.dumps({"inputs": []}), "application/json", id="bad-empty"),
    pytest.param(json.dumps({"inputs": [ROW], "instances": [ROW]}), "application/json", id="bad-two-formats"),
    pytest.param(json.dumps({"not": "a serialized dataframe"}), "application/json", id="bad-no-format"),
    pytest.param(json.dumps({"dataframe_records": [{**ROW, "petal_width": "abc"}]}), "application/json",
                 id="bad-string"),
    pytest.param(json.dumps({"dataframe_split": [ROW]}), "application/json", id="bad-split-as-records"),
    pytest.param(json.dumps({"dataframe_records": SPLIT}), "application/json", id="bad-records-as-split"),
    pytest.param("this is,,,, not valid json", "application/json", id="bad-not-json"),
    pytest.param(json.dumps([ROW]), "application/json", id="bad-list"),
    pytest.param(json.dumps(1), "application/json", id="bad-number"),
    pytest.param("", "text/csv", id="bad-empty-csv"),
    pytest.param(b"not parquet", "application/vnd.apache.parquet", id="bad-parquet"),
    pytest.param(json.dumps({"inputs": [ROW]}), "text/plain", id="bad-content-type"),
    pytest.param(json.dumps({"inputs": [ROW]}), "application/json; something=something", id="bad-content-parameter"),
    pytest.param(json.dumps({"inputs": [ROW]}), "application/json; charset=latin-1", id="bad-charset"),
]


@pytest.mark.parametrize(("body", "content_type"), INVOCATIONS)
def test_invocations_answers_like_mlflow_models_serve(service: Service, mlflow_server: TestClient, body: str | bytes,
                                                      content_type: str) -> None:
    """Status, content type, predictions, and for errors MLflow's error_code, error_class and sqlstate."""
    content = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": content_type}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = mlflow_server.post("/invocations", content=content, headers=headers)
    got = service.client.post("/invocations", content=content, headers=headers)
    assert got.status_code == want.status_code, got.text
    assert got.headers["content-type"].split(";")[0] == want.headers["content-type"].split(";")[0]
    if want.status_code == 200:
        assert got.json() == want.json()
    elif want.headers["content-type"].startswith("application/json"):
        fields = ("error_code", "error_class", "sqlstate")
        assert {k: got.json()[k] for k in fields} == {k: want.json()[k] for k in fields}, (got.text, want.text[:300])
        assert got.json()["message"]


def test_version_ping_and_health_answer_like_mlflow_models_serve(service: Service, mlflow_server: TestClient) -> None:
    for path in ("/version", "/ping", "/health"):
        want, got = mlflow_server.get(path), service.client.get(path)
        assert got.status_code == want.status_code == 200
        assert got.headers["content-type"] == want.headers["content-type"]
    assert service.client.get("/version").text == mlflow_server.get("/version").text


# ---------------------------------------------------------------- operations
def test_admin_reload_needs_the_bearer_token(service: Service, fake_registry: FakeRegistry,
                                             saved_models: dict[str, SavedModel]) -> None:
    assert service.client.post("/admin/reload").status_code == 401
    assert service.client.post("/admin/reload", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    unchanged = service.client.post("/admin/reload", headers=AUTH)
    assert unchanged.status_code == 200 and unchanged.json()["result"] == "unchanged"
    fake_registry.production = fake_registry.add(saved_models["svm"])
    swapped = service.client.post("/admin/reload", headers=AUTH).json()
    assert swapped["result"] == "swapped" and swapped["model_version"] == "2" and swapped["previous_version"] == "1"
    assert service.predict({"features": ROW}).json()["model_version"] == "2"
    fake_registry.available = False
    down = service.client.post("/admin/reload", headers=AUTH)
    assert down.status_code == 503 and down.json()["model_version"] == "2"
    assert service.predict({"features": ROW}).status_code == 200


def test_admin_reload_is_refused_when_no_token_is_configured(tmp_path: Path, fake_registry: FakeRegistry) -> None:
    for service in start(make_settings(tmp_path, admin_token=None), fake_registry):
        response = service.client.post("/admin/reload", headers=AUTH)
        assert response.status_code == 403 and "DRIFTWATCH_ADMIN_TOKEN" in response.json()["detail"]


def test_health_and_metadata_say_what_is_served_and_from_where(service: Service) -> None:
    health = service.client.get("/health").json()
    assert health["model_version"] == "1" and health["source"] == "registry"
    assert health["classes"] == ["setosa", "versicolor", "virginica"]
    service.predict({"instances": [ROW, ROW]})
    meta = service.client.get("/metadata").json()
    assert meta["model"]["name"] == MODEL_NAME and meta["model"]["version"] == "1"
    assert meta["model"]["uri"] == "models:/iris-classifier@production" and meta["model"]["alias"] == "production"
    assert meta["model"]["run_id"] == "run1" and meta["model"]["loaded_from"] == "registry"
    assert [f["name"] for f in meta["model"]["features"]] == NAMES
    assert meta["deployment"]["git_commit"] == "0123abc" and meta["deployment"]["api_version"] == "1"
    assert meta["deployment"]["predictions_total"] == 2 and meta["deployment"]["uptime_seconds"] >= 0
    assert meta["deployment"]["started_at"].endswith("Z")
    assert meta["config"]["registry_mode"] == "alias" and meta["config"]["tracking_uri"] == "sqlite:///unused.db"


def test_the_tracking_uri_is_shown_without_credentials(tmp_path: Path, fake_registry: FakeRegistry) -> None:
    from model_registry import RegistrySettings

    settings = make_settings(tmp_path, registry=RegistrySettings(
        home=tmp_path, model_name=MODEL_NAME, tracking_uri="https://alice:s3cret@mlflow.example:5000/"))
    for service in start(settings, fake_registry):
        shown = service.client.get("/metadata").json()["config"]["tracking_uri"]
        assert "s3cret" not in shown and "alice" not in shown and "mlflow.example:5000" in shown


def test_health_says_when_it_serves_the_local_copy(tmp_path: Path, fake_registry: FakeRegistry) -> None:
    for _ in start(make_settings(tmp_path), fake_registry):
        pass
    fake_registry.available = False
    for service in start(make_settings(tmp_path), fake_registry):
        health = service.client.get("/health")
        assert health.status_code == 200
        assert health.json()["source"] == "cache" and health.json()["registry"]["registry_reachable"] is False
        assert "local copy" in " ".join(health.json()["warnings"])
        assert service.client.get("/metadata").json()["model"]["loaded_from"] == "cache"
        assert service.predict({"features": ROW}).status_code == 200


def test_metrics_route_uses_route_templates_and_bounds_unknown_paths(service: Service) -> None:
    service.predict({"features": ROW})
    for path in ("/wp-admin", "/x/1", "/x/2"):
        assert service.client.get(path).status_code == 404
    assert service.client.get("/predict").status_code == 405
    text = service.client.get("/metrics").text
    assert 'http_requests_total{handler="/predict",method="POST",status="200"} 1.0' in text
    assert 'http_requests_total{handler="unmatched",method="GET",status="404"} 3.0' in text
    assert 'http_requests_total{handler="/predict",method="GET",status="405"} 1.0' in text
    assert "wp-admin" not in text
    assert 'model_prediction_duration_seconds_bucket{le="0.15",model_name="iris-classifier",model_version="1"} 1.0' in text


def test_openapi_shows_the_signatures_feature_names(service: Service) -> None:
    document = service.client.get("/openapi.json").json()
    assert list(document["components"]["schemas"]["IrisClassifierFeatures"]["properties"]) == NAMES
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/IrisClassifierPredictRequest"}
    assert service.client.get("/docs").status_code == 200


def test_every_prediction_is_in_the_log_after_shutdown(settings: ServingSettings, fake_registry: FakeRegistry) -> None:
    ids = []
    for service in start(settings, fake_registry):
        for i in range(20):
            body = {"instances": [ROW, ROW_VIRGINICA]} if i % 2 else {"features": ROW}
            ids += [p["prediction_id"] for p in service.predict(body).json()["predictions"]]
        service.client.post("/invocations", json={"inputs": [ROW]})
        service.predict({"features": {"bad": 1}})  # refused: not logged
    path = settings.resolved_log_dir / "predictions-test.jsonl"
    everything = [json.loads(line) for line in path.read_text().splitlines()]
    records = [r for r in everything if r["event"] == "prediction"]
    assert len(records) == 31
    assert [r["prediction_id"] for r in records[:30]] == ids
    assert [r["seq"] for r in records] == list(range(1, 32))
    assert everything[-1]["event"] == "log_end" and everything[-1]["lost"] == 0  # nothing lost on shutdown
    assert {r["model"]["version"] for r in records} == {"1"}
    assert records[1]["features"] == ROW and records[1]["prediction"]["class_name"] == "setosa"


def test_metrics_and_log_can_be_switched_off(tmp_path: Path, fake_registry: FakeRegistry) -> None:
    settings = make_settings(tmp_path, metrics_enabled=False, prediction_log_enabled=False)
    for service in start(settings, fake_registry):
        assert service.predict({"features": ROW}).status_code == 200
        assert service.client.get("/metrics").status_code == 404
        assert list(service.metrics.collect()) == []
    assert not (tmp_path / "predictions").exists()
