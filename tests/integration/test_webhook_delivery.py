"""The rollback webhook as processes against a real `mlflow server` and real Alertmanagers: parallel
and duplicate deliveries roll back once, a stopped registry is 503 and the retry acts, and an alert
routed by Alertmanager moves production back and tells serving to reload."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from model_registry import ModelRegistry, RegistrySettings
from model_registry.training import train_and_register
from monitoring.render import JOBS, render_stack_config
from tests.conftest import MlflowServer
from tests.support.procs import free_port, require_binary, stop_process, wait_for, wait_for_http

pytestmark = pytest.mark.integration

MODEL = "webhook-integration"
TOKEN = "integration-webhook-token-0123456789"
ADMIN_TOKEN = "integration-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T | None], timeout: float = 30.0) -> T:
    return wait_for(what, check, timeout=timeout, interval=0.2)


# ---------------------------------------------------------------- serving stand-in
@dataclass
class ReloadRecorder:
    url: str
    calls: list[str] = field(default_factory=list)  # reloads, with their Authorization header
    other_posts: list[str] = field(default_factory=list)  # Slack messages from Alertmanager


@pytest.fixture(scope="module")
def serving_stub() -> Iterator[ReloadRecorder]:
    """Answers POST /admin/reload like serving does (recording the Authorization header), and
    stands in for Slack too (any other POST)."""
    recorder = ReloadRecorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/admin/reload":
                recorder.calls.append(f"{self.path} {self.headers.get('Authorization', '')}")
            else:
                recorder.other_posts.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recorder
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- registry with two versions
@dataclass
class Release:
    registry: ModelRegistry
    good: str
    bad: str

    def go_bad(self) -> None:
        """Production on the bad version, recorded as replacing the good one."""
        self.registry.promote(self.good, actor="test", force=True)
        self.registry.promote(self.bad, actor="test", force=True, reason="a release that goes bad")
        production = self.registry.production_version(with_metrics=False)
        assert production is not None and production.version == self.bad
        assert production.previous_version == self.good

    def production(self) -> str | None:
        production = self.registry.production_version(with_metrics=False)
        return None if production is None else production.version


def make_release(tracking_uri: str, home: Path) -> Release:
    """v1 trained and promoted, v2 registered from the same artifacts."""
    settings = RegistrySettings(home=home, model_name=MODEL, tracking_uri=tracking_uri)
    registry = ModelRegistry(settings)
    good = train_and_register(settings, promote=True, actor="test")
    assert good.version is not None
    # The "bad" release is a second version of the same artifacts: the webhook acts on alerts and
    # registry state, never on the model's behaviour, so one training run is enough.
    info = registry.get_version(good.version, with_metrics=False)
    model_id = info.source.removeprefix("models:/") if info.source.startswith("models:/m-") else None
    bad = registry.client.create_model_version(MODEL, source=info.source, run_id=info.run_id, model_id=model_id,
                                               tags={"driftwatch.fault": "errors=0.5"})
    return Release(registry=registry, good=good.version, bad=str(bad.version))


@pytest.fixture(scope="module")
def release(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Release:
    return make_release(mlflow_server.url, tmp_path_factory.mktemp("webhook-trainer"))


# ---------------------------------------------------------------- webhook processes
@dataclass
class WebhookProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def post(self, payload: Any, timeout: float = 30.0) -> httpx.Response:
        return httpx.post(f"{self.url}/alerts", json=payload, headers=AUTH, timeout=timeout)

    def decisions(self, **params: Any) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/decisions", params=params, headers=AUTH, timeout=10)
        response.raise_for_status()
        return list(response.json()["decisions"])

    def incident(self, key: str) -> list[dict[str, Any]]:
        return [d for d in self.decisions(limit=1000) if d["incident_key"] == key and d["alert_status"] == "firing"]

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()))


def start_webhook(root: Path, name: str, *, mlflow: MlflowServer, store: Path, serving_url: str) -> WebhookProcess:
    port = free_port()
    token_file = root / "webhook-token"
    token_file.write_text(TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWATCH_")}
    env.update({
        "DRIFTWATCH_HOME": str(root / name), "MLFLOW_TRACKING_URI": mlflow.url, "DRIFTWATCH_MODEL_NAME": MODEL,
        "DRIFTWATCH_WEBHOOK_HOST": "127.0.0.1", "DRIFTWATCH_WEBHOOK_PORT": str(port),
        "DRIFTWATCH_WEBHOOK_TOKEN_FILE": str(token_file), "DRIFTWATCH_ADMIN_TOKEN": ADMIN_TOKEN,
        "DRIFTWATCH_SERVING_URLS": serving_url, "DRIFTWATCH_WEBHOOK_STORE": str(store),
        # Every test here rolls the same model back once; the loop brakes have their unit tests.
        "DRIFTWATCH_WEBHOOK_COOLDOWN_SECONDS": "0", "DRIFTWATCH_WEBHOOK_MAX_ROLLBACKS": "1000",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    })
    log = root / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rollback_webhook"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return WebhookProcess(url=f"http://127.0.0.1:{port}", proc=proc, log=log)


@pytest.fixture(scope="module")
def webhooks(mlflow_server: MlflowServer, serving_stub: ReloadRecorder,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebhookProcess, WebhookProcess]]:
    """Two webhook processes sharing one decision store (as two replicas on one host would)."""
    root = tmp_path_factory.mktemp("webhooks")
    store = root / "decisions.db"
    started = [start_webhook(root, name, mlflow=mlflow_server, store=store, serving_url=serving_stub.url)
               for name in ("a", "b")]
    try:
        for hook in started:
            wait_for_http(f"{hook.url}/health", timeout=90, proc=hook.proc, log=hook.log)
        yield started[0], started[1]
    finally:
        for hook in started:
            stop_process(hook.proc)


def payload(release: Release, starts_at: datetime, alertname: str = "HighErrorRate") -> dict[str, Any]:
    labels = {"alertname": alertname, "model_name": MODEL, "model_version": release.bad, "rollback": "true",
              "severity": "critical", "job": "serving", "instance": "127.0.0.1:8000"}
    return {
        "version": "4", "status": "firing", "receiver": "rollback-webhook", "groupKey": "{}:{}",
        "truncatedAlerts": 0, "groupLabels": {"alertname": alertname}, "commonLabels": labels,
        "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
        "alerts": [{"status": "firing", "labels": labels,
                    "annotations": {"summary": "A model version fails more than 1% of its prediction requests."},
                    "startsAt": starts_at.isoformat().replace("+00:00", "Z"), "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": "0123456789abcdef"}],
    }


def incident_key(release: Release, starts_at: datetime, alertname: str = "HighErrorRate") -> str:
    return f"{alertname}|{MODEL}|{release.bad}|{starts_at.astimezone(UTC).isoformat(timespec='microseconds')}"


def assert_rolled_back_once(release: Release, hooks: tuple[WebhookProcess, ...], key: str) -> dict[str, Any]:
    assert release.production() == release.good
    bad = release.registry.get_version(release.bad, with_metrics=False)
    assert bad.quarantined
    assert bad.tags["driftwatch.quarantined_by"] == "rollback-webhook"
    assert bad.tags["driftwatch.quarantine_alert"] == "HighErrorRate"
    assert bad.tags["driftwatch.rolled_back_to"] == release.good
    records = hooks[0].incident(key)
    assert [r["decision"] for r in records] == ["rolled_back"], records
    return records[0]


def rollbacks_counted(hooks: tuple[WebhookProcess, ...], release: Release) -> float:
    return sum(h.metric("model_rollbacks_total", model_name=MODEL, from_version=release.bad,
                        to_version=release.good) for h in hooks)


# ---------------------------------------------------------------- tests
def test_fifty_parallel_deliveries_to_two_processes_roll_back_once(
        release: Release, webhooks: tuple[WebhookProcess, WebhookProcess], serving_stub: ReloadRecorder) -> None:
    release.go_bad()
    started = datetime.now(UTC).replace(microsecond=123456)
    body = payload(release, started)
    before = rollbacks_counted(webhooks, release)
    reloads_before = len(serving_stub.calls)
    barrier = threading.Barrier(50)

    def deliver(i: int) -> httpx.Response:
        barrier.wait()
        return webhooks[i % 2].post(body, timeout=60)

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(deliver, range(50)))

    assert [r.status_code for r in responses] == [200] * 50
    decisions = [r.json()["results"][0]["decision"] for r in responses]
    assert decisions.count("rolled_back") == 1 and decisions.count("duplicate") == 49
    record = assert_rolled_back_once(release, webhooks, incident_key(release, started))
    assert record["deliveries"] == 50
    assert rollbacks_counted(webhooks, release) - before == 1
    # Serving was told to reload once, with the admin token.
    wait_until("the reload call", lambda: len(serving_stub.calls) > reloads_before)
    assert serving_stub.calls[reloads_before:] == [f"/admin/reload Bearer {ADMIN_TOKEN}"]


def test_a_stopped_registry_is_503_and_the_retried_delivery_rolls_back(
        release: Release, webhooks: tuple[WebhookProcess, WebhookProcess], mlflow_server: MlflowServer) -> None:
    release.go_bad()
    started = datetime.now(UTC).replace(microsecond=654321)
    body = payload(release, started)
    hook = webhooks[0]
    mlflow_server.stop()
    try:
        t0 = time.monotonic()
        refused = hook.post(body)
        elapsed = time.monotonic() - t0
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] and "cannot be reached" in refused.json()["detail"]
        assert elapsed < 15, f"the 503 took {elapsed:.1f}s"
        assert hook.incident(incident_key(release, started)) == []  # the retry must decide afresh
    finally:
        mlflow_server.start()
    retried = hook.post(body)
    assert retried.status_code == 200
    assert retried.json()["results"][0]["decision"] == "rolled_back"
    record = assert_rolled_back_once(release, webhooks, incident_key(release, started))
    assert record["deliveries"] == 1


# ---------------------------------------------------------------- with real Alertmanagers
@dataclass
class Alertmanager:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def post_alert(self, labels: dict[str, str], starts_at: datetime) -> None:
        alert = {"labels": labels, "annotations": {"summary": "A model version fails more than 1% of requests."},
                 "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
                 "generatorURL": "http://127.0.0.1:9090/graph"}
        response = httpx.post(f"{self.url}/api/v2/alerts", json=[alert], timeout=10)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def alertmanagers(webhooks: tuple[WebhookProcess, WebhookProcess], serving_stub: ReloadRecorder,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Alertmanager, Alertmanager]]:
    """Two independent Alertmanagers (no cluster: both deliver everything) running the project's
    configuration (monitoring/alertmanager/alertmanager.yml, rendered for demo timing) with the
    rollback webhook at process a and Slack at the stand-in."""
    binary = require_binary("prometheus-alertmanager")
    root = tmp_path_factory.mktemp("alertmanagers")
    token_file = root / "webhook-token"
    token_file.write_text(TOKEN)
    ports = [free_port(), free_port()]
    rendered = render_stack_config(
        root / "config",
        targets={job: [f"127.0.0.1:{free_port()}"] for job in JOBS},
        webhook_url=f"{webhooks[0].url}/alerts", webhook_token_file=token_file, slack_url_file=None,
        slack_fallback_url=f"{serving_stub.url}/services/local-sink", grafana_url="http://127.0.0.1:3000",
        alertmanager_url=f"http://127.0.0.1:{ports[0]}", timing="demo")
    config = rendered.alertmanager
    started: list[Alertmanager] = []
    try:
        for name, port in zip(("am1", "am2"), ports, strict=True):
            log = root / f"{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [binary, f"--config.file={config}", f"--storage.path={root / name}",
                     f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            started.append(Alertmanager(url=f"http://127.0.0.1:{port}", proc=proc, log=log))
        for am in started:
            wait_for_http(f"{am.url}/-/ready", timeout=30, proc=am.proc, log=am.log)
        yield started[0], started[1]
    finally:
        for am in started:
            stop_process(am.proc)


def alert_labels(release: Release, instance: str) -> dict[str, str]:
    # A distinct instance per test: Alertmanager merges an alert with the same labels into the one
    # it already has (keeping the first startsAt), which would hide the second incident. The
    # project's routes group by alertname, model and version, so both tests' alerts share a group.
    return {"alertname": "HighErrorRate", "model_name": MODEL, "model_version": release.bad, "rollback": "true",
            "severity": "critical", "job": "serving", "instance": instance}


def test_an_alert_routed_by_alertmanager_moves_production_back(
        release: Release, webhooks: tuple[WebhookProcess, WebhookProcess],
        alertmanagers: tuple[Alertmanager, Alertmanager], serving_stub: ReloadRecorder) -> None:
    release.go_bad()
    reloads_before = len(serving_stub.calls)
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    alertmanagers[0].post_alert(alert_labels(release, "serving-1:8000"), started)
    key = incident_key(release, started)
    wait_until("the webhook to decide the alert", lambda: webhooks[0].incident(key))
    record = assert_rolled_back_once(release, webhooks, key)
    assert record["receiver"] == "rollback-webhook" and record["deliveries"] == 1
    wait_until("the reload call", lambda: len(serving_stub.calls) > reloads_before)
    # The same alert also reached people (the route continues to Slack).
    wait_until("the Slack message", lambda: serving_stub.other_posts)


def test_two_alertmanagers_delivering_the_same_alert_give_one_rollback(
        release: Release, webhooks: tuple[WebhookProcess, WebhookProcess],
        alertmanagers: tuple[Alertmanager, Alertmanager]) -> None:
    release.go_bad()
    before = rollbacks_counted(webhooks, release)
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    for am in alertmanagers:
        am.post_alert(alert_labels(release, "serving-2:8000"), started)
    key = incident_key(release, started)
    both = wait_until("both Alertmanagers to deliver",
                      lambda: [r for r in webhooks[0].incident(key) if r["deliveries"] >= 2])
    assert both[0]["decision"] == "rolled_back"
    assert_rolled_back_once(release, webhooks, key)
    assert rollbacks_counted(webhooks, release) - before == 1
