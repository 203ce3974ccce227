"""The demo scenario on the production backend: `mlflow server` on a real PostgreSQL with artifacts
in a real S3-compatible server, the webhook's decisions in PostgreSQL. One rollback, and no
credential (database password, S3 secret key, a password in the tracking URI) in any answer or
log line of the run, including the error answers while the registry is down."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftwatch.scenario import run_scenario
from driftwatch.stack import Stack, StackSettings
from tests.support.procs import free_port, require_binary

pytestmark = pytest.mark.integration

TRACKING_PASSWORD = "tracking-" + secrets.token_urlsafe(12)


class CredentialedStack(Stack):
    """Every part reaches MLflow with ``user:password@`` in its tracking URI (MLflow's server
    ignores it; the point is that no part shows it)."""

    @property
    def tracking_uri(self) -> str:
        return super().tracking_uri.replace("http://", f"http://scanner:{TRACKING_PASSWORD}@", 1)


def answers(stack: Stack, token: str, bad_version: str, second: int) -> dict[str, str]:
    """The body of every GET endpoint of the three services, and of an alert delivery (a new incident
    for each ``second``: a repeated one is answered from the decision store without the registry)."""
    u = stack.urls
    auth = {"Authorization": f"Bearer {token}"}
    out: dict[str, str] = {}
    for url in (f"{u.serving}/health", f"{u.serving}/ready", f"{u.serving}/metadata", f"{u.serving}/metrics",
                f"{u.serving}/openapi.json", f"{u.drift_exporter}/health", f"{u.drift_exporter}/drift",
                f"{u.drift_exporter}/metrics", f"{u.drift_exporter}/report", f"{u.webhook}/health",
                f"{u.webhook}/metrics", f"{u.quality}/health", f"{u.quality}/metrics"):
        out[url] = httpx.get(url, timeout=120).text
    out["decisions"] = httpx.get(f"{u.webhook}/decisions", headers=auth, timeout=30).text
    labels = {"alertname": "HighErrorRate", "model_name": stack.settings.model_name, "model_version": bad_version,
              "rollback": "true", "severity": "critical"}
    body: dict[str, Any] = {
        "version": "4", "status": "firing", "receiver": "rollback-webhook", "groupKey": "{}", "truncatedAlerts": 0,
        "groupLabels": {}, "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                    "startsAt": f"2026-01-01T00:00:{second:02d}Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://127.0.0.1:9090", "fingerprint": "00"}]}
    response = httpx.post(f"{u.webhook}/alerts", json=body, headers=auth, timeout=60)
    out["alerts"] = f"{response.status_code} {response.text}"
    out["bad-predict"] = httpx.post(f"{u.serving}/predict", json={"nope": 1}, timeout=30).text
    return out


@pytest.mark.timeout(1500)  # the whole demo on PostgreSQL + S3: ~10 min at a load average of 20 on 2 cores
def test_the_demo_scenario_on_postgres_and_s3_rolls_back_once_and_never_shows_a_credential(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    for name in ("prometheus", "prometheus-alertmanager"):
        require_binary(name)
    # Uploads through the tracking server to S3 can take more than the suite's 10 s on a busy machine.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    settings = StackSettings(
        home=tmp_path / "home", serving_port=free_port(), drift_exporter_port=free_port(),
        webhook_port=free_port(), prometheus_port=free_port(), alertmanager_port=free_port(),
        slack_sink_port=free_port(), quality_port=free_port(), mlflow_port=free_port(),
        backend="postgres")
    stack = CredentialedStack(settings, timing="demo", say=lambda _: None)
    try:
        result = run_scenario(stack, drift=False, quality=False)
        assert result.failure is None, result.report()
        assert result.ok, result.report()
        assert result.checks["exactly one rollback"]
        backend = stack.local_backend
        assert backend is not None and result.bad_version is not None
        # The models are in S3 (through the tracking server), the registry in PostgreSQL.
        keys = [o["Key"] for o in backend.s3.endpoint.client().list_objects_v2(
            Bucket="mlflow-artifacts", Prefix="artifacts/")["Contents"]]
        assert any(k.endswith("/MLmodel") for k in keys) and any("/reference/" in k for k in keys)
        import psycopg

        with psycopg.connect(backend.postgres.uri("mlflow")) as conn:
            versions = conn.execute("SELECT version FROM model_versions WHERE name = %s ORDER BY version",
                                    (settings.model_name,)).fetchall()
        assert [v[0] for v in versions] == [1, 2]
        with psycopg.connect(backend.postgres.uri("webhook")) as conn:
            rolled = conn.execute("SELECT COUNT(*) FROM decisions WHERE decision = 'rolled_back'").fetchone()
        assert rolled == (1,)

        token = stack.webhook_token_file.read_text().strip()
        seen = answers(stack, token, result.bad_version, second=1)

        # The registry goes away: the answers that carry its errors are the ones that used to leak.
        mlflow = stack.supervisor.procs["mlflow"]
        mlflow.terminate()
        mlflow.wait(timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = httpx.get(f"{stack.urls.serving}/health", timeout=30).json()
            if health["registry"]["registry_reachable"] is False:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"serving did not notice the registry is down: {health}")
        time.sleep(stack.drift_interval + 1)  # one drift check without the registry (it keeps the last reference)
        down = answers(stack, token, result.bad_version, second=2)
        assert down["alerts"].startswith("503"), down["alerts"]
        last_error = health["registry"]["last_error"]
        assert "127.0.0.1" in last_error and "***" in last_error, last_error  # the URI is there, redacted

        secret_values = {"tracking URI password": TRACKING_PASSWORD, "PostgreSQL password": backend.postgres.password,
                         "S3 secret key": backend.s3.endpoint.credentials.secret_access_key}
        texts = {**seen, **{f"down {k}": v for k, v in down.items()}}
        for log in [*stack.logs.glob("*.log"), backend.postgres.log]:
            texts[str(log)] = log.read_text(errors="replace")
        captured = capfd.readouterr()  # what training printed in this process (MLflow prints URLs)
        texts["stdout"], texts["stderr"] = captured.out, captured.err
        leaks = [(what, where) for where, text in texts.items() for what, value in secret_values.items()
                 if value in text]
        assert leaks == [], f"credentials shown: {leaks}"
    finally:
        stack.stop()
