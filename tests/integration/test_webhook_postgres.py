"""The webhook's decision store on PostgreSQL, against `mlflow server` on the same PostgreSQL with
artifacts in S3 (one cluster and one S3 server for the module):

- HA: two webhook processes behind two real Alertmanagers clustered with each other; a webhook is
  killed (SIGKILL) at a random moment of each incident and restarted: one rollback and one audit
  record per incident;
- fault: PostgreSQL stopped for 30 s during traffic and during an alert: serving keeps answering
  from its loaded model, the webhook answers 503, and the retry after PostgreSQL is back rolls
  back exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftwatch.backend import LocalBackend, start_local_backend
from driftwatch.processes import Supervisor
from driftwatch.traffic import TrafficGenerator
from model_registry.reference import read_reference
from monitoring.render import JOBS, render_stack_config
from tests.integration.test_webhook_delivery import Alertmanager, Release, make_release, payload, wait_until
from tests.support.procs import free_port, require_binary, stop_process, wait_for_http

pytestmark = pytest.mark.integration

MODEL = "webhook-integration"  # payload() in test_webhook_delivery names this model
TOKEN = "pg-webhook-token-0123456789abcdef"
ADMIN_TOKEN = "pg-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Backend:
    local: LocalBackend
    supervisor: Supervisor
    root: Path

    @property
    def tracking_uri(self) -> str:
        return self.local.tracking_uri


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    root = tmp_path_factory.mktemp("pg-backend")
    local = start_local_backend(logs=root)
    supervisor = Supervisor(say=lambda _: None)
    patch = pytest.MonkeyPatch()
    # Uploads through the tracking server to S3 can take more than the suite's 10 s on a busy machine.
    patch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    try:
        supervisor.start(local.mlflow_spec(root / "mlflow.log"))
        local.warm_up()
        yield Backend(local, supervisor, root)
    finally:
        patch.undo()
        supervisor.stop_all()
        local.stop()


@pytest.fixture(scope="module")
def release(backend: Backend) -> Release:
    return make_release(backend.tracking_uri, backend.root / "trainer")


# ---------------------------------------------------------------- webhook processes on the PostgreSQL store
@dataclass
class Hook:
    name: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "rollback_webhook"], env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_http(f"{self.url}/health", timeout=120, proc=self.proc, log=self.log)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def post(self, body: Any) -> httpx.Response:
        return httpx.post(f"{self.url}/alerts", json=body, headers=AUTH, timeout=60)


def make_hook(backend: Backend, name: str) -> Hook:
    root = backend.root / name
    root.mkdir(exist_ok=True)
    token_file = root / "token"
    token_file.write_text(TOKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTWATCH_", "AWS_", "PG"))}
    env.update({
        "DRIFTWATCH_HOME": str(root), "MLFLOW_TRACKING_URI": backend.tracking_uri, "DRIFTWATCH_MODEL_NAME": MODEL,
        "DRIFTWATCH_WEBHOOK_HOST": "127.0.0.1", "DRIFTWATCH_WEBHOOK_TOKEN_FILE": str(token_file),
        "DRIFTWATCH_ADMIN_TOKEN": ADMIN_TOKEN,
        **backend.local.webhook_store_env(root / "store-password"),
        "DRIFTWATCH_WEBHOOK_COOLDOWN_SECONDS": "0", "DRIFTWATCH_WEBHOOK_MAX_ROLLBACKS": "1000",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    })
    port = free_port()
    env["DRIFTWATCH_WEBHOOK_PORT"] = str(port)
    return Hook(name=name, port=port, env=env, log=root / "webhook.log")


@pytest.fixture(scope="module")
def hooks(backend: Backend) -> Iterator[tuple[Hook, Hook]]:
    pair = (make_hook(backend, "hook-a"), make_hook(backend, "hook-b"))
    try:
        for hook in pair:
            hook.start()
        yield pair
    finally:
        for hook in pair:
            if hook.proc is not None:
                stop_process(hook.proc)


def decisions(hook: Hook, key: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{hook.url}/decisions", params={"limit": 1000}, headers=AUTH, timeout=30)
    response.raise_for_status()
    return [d for d in response.json()["decisions"] if d["incident_key"] == key and d["alert_status"] == "firing"]


def audit_rows(backend: Backend, key: str) -> list[tuple[str, int]]:
    import psycopg

    with psycopg.connect(backend.local.postgres.uri("webhook")) as conn:
        rows = conn.execute("SELECT decision, deliveries FROM decisions WHERE incident_key = %s AND "
                            "alert_status = 'firing'", (key,)).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def incident(release: Release, starts_at: datetime) -> str:
    return f"HighErrorRate|{MODEL}|{release.bad}|{starts_at.astimezone(UTC).isoformat(timespec='microseconds')}"


# ---------------------------------------------------------------- two clustered Alertmanagers
@pytest.fixture(scope="module")
def alertmanagers(backend: Backend, hooks: tuple[Hook, Hook]) -> Iterator[tuple[Alertmanager, Alertmanager]]:
    """Alertmanager 1 delivers to webhook a, Alertmanager 2 to webhook b; they gossip their
    notification logs, so the second sends only when the first has not delivered."""
    binary = require_binary("prometheus-alertmanager")
    root = backend.root / "alertmanagers"
    web = [free_port(), free_port()]
    cluster = [free_port(), free_port()]
    started: list[Alertmanager] = []
    try:
        for i, hook in enumerate(hooks):
            token_file = root / f"token-{i}"
            root.mkdir(exist_ok=True)
            token_file.write_text(TOKEN)
            rendered = render_stack_config(
                root / f"config-{i}",
                targets={job: [f"127.0.0.1:{free_port()}"] for job in JOBS},
                webhook_url=f"{hook.url}/alerts", webhook_token_file=token_file, slack_url_file=None,
                slack_fallback_url="http://127.0.0.1:9/services/none", grafana_url="http://127.0.0.1:3000",
                alertmanager_url=f"http://127.0.0.1:{web[i]}", timing="demo")
            log = root / f"am{i}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [binary, f"--config.file={rendered.alertmanager}", f"--storage.path={root / f'data{i}'}",
                     f"--web.listen-address=127.0.0.1:{web[i]}",
                     f"--cluster.listen-address=127.0.0.1:{cluster[i]}",
                     f"--cluster.advertise-address=127.0.0.1:{cluster[i]}",
                     f"--cluster.peer=127.0.0.1:{cluster[1 - i]}", "--cluster.peer-timeout=2s",
                     "--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=2s", "--log.level=warn"],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            started.append(Alertmanager(url=f"http://127.0.0.1:{web[i]}", proc=proc, log=log))
        for am in started:
            wait_for_http(f"{am.url}/-/ready", timeout=60, proc=am.proc, log=am.log)
        wait_until("the two Alertmanagers to form a cluster", lambda: all(
            len(httpx.get(f"{am.url}/api/v2/status", timeout=5).json()["cluster"]["peers"]) == 2 for am in started),
            timeout=60)
        yield started[0], started[1]
    finally:
        for am in started:
            stop_process(am.proc)


def test_two_webhooks_behind_two_clustered_alertmanagers_roll_back_once_per_incident_when_one_is_killed(
        backend: Backend, release: Release, hooks: tuple[Hook, Hook],
        alertmanagers: tuple[Alertmanager, Alertmanager]) -> None:
    rng = random.Random(13)
    for n in range(3):
        release.go_bad()
        starts_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5 + n)
        key = incident(release, starts_at)
        labels = {"alertname": "HighErrorRate", "model_name": MODEL, "model_version": release.bad,
                  "rollback": "true", "severity": "critical", "job": "serving", "instance": f"serving-{n}:8000"}
        victim = hooks[n % 2]
        for am in alertmanagers:  # Prometheus sends every alert to every Alertmanager
            am.post_alert(labels, starts_at)
        time.sleep(rng.uniform(0.0, 2.5))  # anywhere from before the delivery to after the decision
        victim.kill()
        time.sleep(1.0)
        victim.start()
        wait_until(f"incident {n}: production back on the good version",
                   lambda: release.production() == release.good, timeout=120)
        wait_until(f"incident {n}: its audit record", lambda k=key: audit_rows(backend, k), timeout=60)
        time.sleep(3)  # late deliveries (the other Alertmanager, retries) must not add anything
        rows = audit_rows(backend, key)
        assert [decision for decision, _ in rows] == ["rolled_back"], rows
        bad = release.registry.get_version(release.bad, with_metrics=False)
        assert bad.quarantined and bad.tags["driftwatch.quarantine_incident"] == key
        assert bad.tags["driftwatch.rolled_back_to"] == release.good
        # Both webhook processes answer the same record from the shared store.
        assert [d["decision"] for d in decisions(hooks[0], key)] == ["rolled_back"]
        assert decisions(hooks[0], key) == decisions(hooks[1], key)


def test_parallel_deliveries_to_both_processes_give_one_record(
        backend: Backend, release: Release, hooks: tuple[Hook, Hook]) -> None:
    release.go_bad()
    starts_at = datetime.now(UTC).replace(microsecond=424242)
    body = payload(release, starts_at)
    results: list[int] = []

    def deliver(i: int) -> None:
        results.append(hooks[i % 2].post(body).status_code)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 20
    assert audit_rows(backend, incident(release, starts_at)) == [("rolled_back", 20)]


# ---------------------------------------------------------------- PostgreSQL stopped for 30 s
def start_serving(backend: Backend) -> tuple[subprocess.Popen[bytes], str, Path]:
    root = backend.root / "serving"
    root.mkdir(exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTWATCH_", "AWS_", "PG"))}
    env.update({"DRIFTWATCH_HOME": str(root), "MLFLOW_TRACKING_URI": backend.tracking_uri,
                "DRIFTWATCH_MODEL_NAME": MODEL, "DRIFTWATCH_SERVING_HOST": "127.0.0.1",
                "DRIFTWATCH_SERVING_PORT": str(port), "DRIFTWATCH_POLL_INTERVAL_SECONDS": "1",
                "DRIFTWATCH_ADMIN_TOKEN": ADMIN_TOKEN, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"})
    log = root / "serving.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "serving"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/health", timeout=180, proc=proc, log=log)
    return proc, url, log


def test_postgres_down_for_30s_serving_answers_webhook_503_and_the_retry_rolls_back_once(
        backend: Backend, release: Release, hooks: tuple[Hook, Hook]) -> None:
    release.go_bad()
    proc, serving, _ = start_serving(backend)
    traffic: TrafficGenerator | None = None
    try:
        wait_until("serving to load the bad release",
                   lambda: httpx.get(f"{serving}/health", timeout=5).json().get("model_version") == release.bad,
                   timeout=60)
        reference = read_reference(release.registry.download_reference(release.good, backend.root / "ref"))
        traffic = TrafficGenerator(serving, reference.features, rate=20.0)
        traffic.start()
        starts_at = datetime.now(UTC).replace(microsecond=777777)
        body = payload(release, starts_at)
        key = incident(release, starts_at)

        sent_before = traffic.stats.sent
        backend.local.postgres.stop()
        stopped_at = time.monotonic()
        try:
            refused = [hooks[0].post(body), hooks[1].post(body)]
            assert [r.status_code for r in refused] == [503, 503], [r.text for r in refused]
            assert all(r.headers.get("retry-after") for r in refused)
            health = httpx.get(f"{serving}/health", timeout=10)
            assert health.status_code == 200 and health.json()["model_version"] == release.bad
            time.sleep(max(0.0, 30 - (time.monotonic() - stopped_at)))
            down_for = time.monotonic() - stopped_at
            assert traffic.stats.sent - sent_before > 300, "traffic did not run while PostgreSQL was down"
            again = hooks[0].post(body)
            assert again.status_code == 503
        finally:
            backend.local.postgres.start()
        assert down_for >= 30
        failed = traffic.stats.transport_errors + sum(n for code, n in traffic.stats.status.items() if code != 200)
        assert failed == 0, f"serving failed {failed} requests while PostgreSQL was down: {traffic.stats}"

        retried = wait_until("the retry to be decided", lambda: (r := hooks[1].post(body)).status_code == 200 and r,
                             timeout=60)
        assert retried.json()["results"][0]["decision"] == "rolled_back"
        assert hooks[0].post(body).json()["results"][0]["decision"] == "duplicate"
        assert audit_rows(backend, key) == [("rolled_back", 2)]
        assert release.production() == release.good
    finally:
        if traffic is not None:
            traffic.stop()
        stop_process(proc)
