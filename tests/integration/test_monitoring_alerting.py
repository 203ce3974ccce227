"""Real Prometheus and Alertmanager on loopback with the rendered demo configuration.

Three small fake exporters serve every contract metric (version 7 of the model fails half its
requests); a capture server stands in for Slack and another for the rollback webhook. HighErrorRate
must fire on the demo clock, reach the webhook with the bearer token and Slack with a message that
names the version and carries working links; every dashboard query must return data; a down target
must hold back its job's alerts; and recovery must send "resolved" notifications.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from monitoring.dashboards_check import load_dashboards, queries_without_data
from monitoring.render import RenderedConfig, render_stack_config
from tests.support.procs import free_port, require_binary, stop_process, wait_for, wait_for_http

pytestmark = pytest.mark.integration

MODEL = "iris-classifier"
GOOD, BAD = "6", "7"
REGRESSOR = "9"  # a regressor version of the same name: only its predicted-value histogram
GRAFANA = "http://grafana.test:3000"
TOKEN = "integration-token-0123456789abcdef"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
CLASSES = ("setosa", "versicolor", "virginica")


# ---------------------------------------------------------------------- fakes
@dataclass
class Fake:
    """A loopback HTTP server: GET /metrics from ``metrics()``, every POST recorded."""

    metrics: Callable[[], str]
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Fake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = fake.metrics().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.posts.append((self.path, dict(self.headers.items()), data))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    def json_posts(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, body in self.posts]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class Traffic:
    """Counters that grow with time: 20 requests/s on v6 and on v7; while ``failing``, half of v7's fail."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.stopped_failing_at: float | None = None

    @property
    def failing(self) -> bool:
        return self.stopped_failing_at is None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def bad_errors(self) -> int:
        until = self.elapsed() if self.stopped_failing_at is None else self.stopped_failing_at
        return int(10 * until)

    def bad_answered(self) -> int:
        t = self.elapsed()
        if self.stopped_failing_at is None:
            return int(10 * t)
        return int(10 * self.stopped_failing_at + 20 * (t - self.stopped_failing_at))

    def stop_failing(self) -> None:
        self.stopped_failing_at = self.elapsed()


def serving_metrics(traffic: Traffic) -> str:
    t = traffic.elapsed()
    answered = {GOOD: int(20 * t), BAD: traffic.bad_answered()}
    lines = ["# TYPE model_predictions_total counter"]
    for version, count in answered.items():
        for i, cls in enumerate(CLASSES):
            lines.append(f'model_predictions_total{{model_name="{MODEL}",model_version="{version}",'
                         f'predicted_class="{cls}"}} {count // 3 + (1 if i < count % 3 else 0)}')
    # A regressor version's predicted values (buckets: its reference quantiles), for the regressor panel.
    lines.append("# TYPE model_predicted_value histogram")
    regressor, predicted = f'model_name="{MODEL}",model_version="{REGRESSOR}"', int(20 * t)
    for le, share in (("10.0", 0.1), ("20.0", 0.5), ("30.0", 0.9), ("+Inf", 1.0)):
        lines.append(f'model_predicted_value_bucket{{{regressor},le="{le}"}} {int(predicted * share)}')
    lines += [f"model_predicted_value_sum{{{regressor}}} {predicted * 20.0}",
              f"model_predicted_value_count{{{regressor}}} {predicted}"]
    lines.append("# TYPE model_prediction_errors_total counter")
    for version in (GOOD, BAD):
        inference = traffic.bad_errors() if version == BAD else 0
        for reason, value in (("validation", int(t)), ("inference", inference), ("unavailable", 0)):
            lines.append(f'model_prediction_errors_total{{model_name="{MODEL}",model_version="{version}",'
                         f'reason="{reason}"}} {value}')
    lines.append("# TYPE model_prediction_duration_seconds histogram")
    for version, count in answered.items():
        labels = f'model_name="{MODEL}",model_version="{version}"'
        for le in ("0.001", "0.005", "0.15", "+Inf"):
            lines.append(f'model_prediction_duration_seconds_bucket{{{labels},le="{le}"}} '
                         f'{0 if le == "0.001" else count}')
        lines.append(f"model_prediction_duration_seconds_sum{{{labels}}} {count * 0.003}")
        lines.append(f"model_prediction_duration_seconds_count{{{labels}}} {count}")
    lines += ["# TYPE http_requests_total counter",
              f'http_requests_total{{handler="/predict",method="POST",status="200"}} {sum(answered.values())}',
              f'http_requests_total{{handler="/predict",method="POST",status="500"}} {traffic.bad_errors()}',
              "# TYPE http_request_duration_seconds histogram"]
    total = sum(answered.values())
    for le in ("0.005", "0.15", "+Inf"):
        lines.append(f'http_request_duration_seconds_bucket{{handler="/predict",method="POST",le="{le}"}} {total}')
    lines += [f'http_request_duration_seconds_sum{{handler="/predict",method="POST"}} {total * 0.004}',
              f'http_request_duration_seconds_count{{handler="/predict",method="POST"}} {total}',
              "# TYPE model_info gauge",
              f'model_info{{model_name="{MODEL}",model_version="{BAD}",alias="production",run_id="abc"}} 1',
              "# TYPE model_loaded gauge", f'model_loaded{{model_name="{MODEL}"}} 1',
              "# TYPE model_reloads_total counter",
              f'model_reloads_total{{model_name="{MODEL}",result="success"}} 2',
              f'model_reloads_total{{model_name="{MODEL}",result="failure"}} 0',
              "# TYPE model_prediction_log_dropped_total counter",
              f'model_prediction_log_dropped_total{{model_name="{MODEL}"}} 0',
              "# TYPE model_prediction_log_lost_total counter",
              f'model_prediction_log_lost_total{{model_name="{MODEL}"}} 0',
              "# TYPE model_registry_poll_errors_total counter",
              f'model_registry_poll_errors_total{{model_name="{MODEL}"}} 0']
    return "\n".join(lines) + "\n"


def quality_metrics() -> str:
    """The quality service's real metric families (quality/metrics.py), with a labeled window for the
    good version (a classifier) and one for a regressor version, so every quality panel has data."""
    from prometheus_client import CollectorRegistry, generate_latest

    from quality.metrics import QualityMetrics

    registry = CollectorRegistry()
    m = QualityMetrics(registry, MODEL)
    good, regressor = (MODEL, GOOD), (MODEL, REGRESSOR)
    for gauge, value in ((m.accuracy, 0.96), (m.accuracy_lower_bound, 0.93), (m.accuracy_upper_bound, 0.98),
                         (m.f1_macro, 0.95), (m.window_labeled, 500), (m.labeled_ratio, 0.4),
                         (m.label_delay, 3.0), (m.reference_accuracy, 0.967), (m.reference_accuracy_lower_bound, 0.8),
                         (m.reference_f1_macro, 0.96), (m.estimated_accuracy, 0.95), (m.estimate_rows, 500),
                         (m.estimate_error, -0.01)):
        m.set(gauge, value, *good)
    m.set(m.recall, 0.9, *good, "setosa")
    m.set(m.confusion, 120, *good, "setosa", "setosa")
    for gauge, value in ((m.mae, 1.2), (m.mae_lower_bound, 1.0), (m.mae_upper_bound, 1.4), (m.rmse, 1.6),
                         (m.reference_mae, 1.1), (m.window_labeled, 400)):
        m.set(gauge, value, *regressor)
    m.last_run.labels(MODEL).set(time.time())
    return generate_latest(registry).decode()


def drift_metrics(traffic: Traffic) -> str:
    labels = f'model_name="{MODEL}",model_version="{BAD}"'
    lines = ["# TYPE model_feature_drift_score gauge"]
    lines += [f'model_feature_drift_score{{{labels},feature="{f}",method="ks"}} 0.0{i + 2}'
              for i, f in enumerate(FEATURES)]
    lines.append("# TYPE model_feature_drift_detected gauge")
    lines += [f'model_feature_drift_detected{{{labels},feature="{f}"}} 0' for f in FEATURES]
    lines += ["# TYPE model_drift_share gauge", f"model_drift_share{{{labels}}} 0",
              "# TYPE model_prediction_drift_score gauge",
              f'model_prediction_drift_score{{{labels},method="jensenshannon"}} 0.02',
              "# TYPE model_drift_window_rows gauge", f"model_drift_window_rows{{{labels}}} 1000",
              "# TYPE model_drift_last_run_timestamp_seconds gauge",
              f'model_drift_last_run_timestamp_seconds{{model_name="{MODEL}"}} {time.time() - 2:.3f}',
              # like the real exporter without errors: no model_drift_errors_total series yet
              "# TYPE model_drift_log_corrupt_lines_total counter",
              f'model_drift_log_corrupt_lines_total{{model_name="{MODEL}"}} 0']
    return "\n".join(lines) + "\n"


def webhook_metrics(traffic: Traffic) -> str:
    return "\n".join([
        "# TYPE model_rollbacks_total counter",
        f'model_rollbacks_total{{model_name="{MODEL}",from_version="5",to_version="{GOOD}",alertname="HighLatency"}} 1',
        "# TYPE rollback_webhook_decisions_total counter",
        'rollback_webhook_decisions_total{decision="rolled_back"} 1',
        'rollback_webhook_decisions_total{decision="duplicate"} 3',
        "# TYPE http_requests_total counter",
        'http_requests_total{handler="/alerts",method="POST",status="200"} 4',
    ]) + "\n"


# ---------------------------------------------------------------------- the stack
@dataclass
class Stack:
    traffic: Traffic
    webhook: Fake
    slack: Fake
    prometheus: str
    alertmanager: str
    rendered: RenderedConfig
    token_file: Path
    fired_after: float  # seconds from Prometheus ready (errors already flowing) to HighErrorRate firing
    webhook_after: float  # ... to the rollback webhook's first call
    slack_after: float  # ... to the first Slack message


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    return wait_for(what, check, timeout=timeout, interval=interval)


def firing(prometheus: str, name: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=2).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


def slack_messages(slack: Fake) -> list[dict[str, Any]]:
    return [m for m in slack.json_posts() if m.get("attachments")]


def start(binary: str, args: list[str], log: Path, ready: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, *args], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_http(ready, timeout=30, proc=proc, log=log)
    except BaseException:
        stop_process(proc)
        raise
    return proc


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin, alertmanager_bin = require_binary("prometheus"), require_binary("prometheus-alertmanager")
    tmp = tmp_path_factory.mktemp("monitoring-stack")
    traffic = Traffic()
    serving, drift = Fake(lambda: serving_metrics(traffic)).start(), Fake(lambda: drift_metrics(traffic)).start()
    webhook, slack = Fake(lambda: webhook_metrics(traffic)).start(), Fake(lambda: "").start()
    # The quality service: up, evaluating, with live quality for the good version.
    quality = Fake(quality_metrics).start()
    fakes = [serving, drift, webhook, slack, quality]
    prometheus_port, alertmanager_port = free_port(), free_port()
    prometheus, alertmanager = f"http://127.0.0.1:{prometheus_port}", f"http://127.0.0.1:{alertmanager_port}"
    token_file = tmp / "webhook-token"
    token_file.write_text(TOKEN + "\n")
    rendered = render_stack_config(
        tmp / "config", timing="demo",
        targets={"serving": [serving.address], "drift_exporter": [drift.address],
                 "rollback_webhook": [webhook.address], "quality": [quality.address],
                 "prometheus": [f"127.0.0.1:{prometheus_port}"],
                 "alertmanager": [f"127.0.0.1:{alertmanager_port}"]},
        webhook_url=f"http://{webhook.address}/alerts", webhook_token_file=token_file, slack_url_file=None,
        slack_fallback_url=f"http://{slack.address}/services/capture", grafana_url=GRAFANA,
        alertmanager_url=alertmanager)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start(alertmanager_bin, [
            f"--config.file={rendered.alertmanager}", f"--storage.path={tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{alertmanager_port}", f"--web.external-url={alertmanager}",
            "--cluster.listen-address="], tmp / "alertmanager.log", f"{alertmanager}/-/ready"))
        procs.append(start(prometheus_bin, [
            f"--config.file={rendered.prometheus}", f"--storage.tsdb.path={tmp / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}", f"--web.external-url={prometheus}"],
            tmp / "prometheus.log", f"{prometheus}/-/ready"))
        ready = time.monotonic()
        wait_until("HighErrorRate to fire", lambda: firing(prometheus, "HighErrorRate"), timeout=45)
        fired_after = time.monotonic() - ready
        wait_until("the webhook call", lambda: webhook.posts, timeout=15, interval=0.1)
        webhook_after = time.monotonic() - ready
        wait_until("the HighErrorRate Slack message", lambda: [
            m for m in slack_messages(slack) if "HighErrorRate" in m["attachments"][0]["title"]], timeout=15,
            interval=0.1)
        slack_after = time.monotonic() - ready
        yield Stack(traffic, webhook, slack, prometheus, alertmanager, rendered, token_file, fired_after,
                    webhook_after, slack_after)
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        for fake in fakes:
            fake.stop()


# ---------------------------------------------------------------------- tests
def test_high_error_rate_fires_on_the_demo_clock_for_the_bad_version_only(stack: Stack) -> None:
    # scrape 1s + recording rule + for 10s; the demo needs it well within 30-40 s
    print(f"demo timing: HighErrorRate firing {stack.fired_after:.1f}s, rollback webhook called "
          f"{stack.webhook_after:.1f}s, Slack message {stack.slack_after:.1f}s after Prometheus was ready")
    assert stack.fired_after < 30 and stack.webhook_after < 35
    alerts = firing(stack.prometheus, "HighErrorRate")
    assert [a["labels"]["model_version"] for a in alerts] == [BAD]
    labels = alerts[0]["labels"]
    assert labels["rollback"] == "true" and labels["severity"] == "critical" and labels["model_name"] == MODEL
    assert float(alerts[0]["value"]) == pytest.approx(0.5, abs=0.05)


def test_the_rollback_webhook_gets_the_alert_with_the_bearer_token(stack: Stack) -> None:
    path, headers, body = stack.webhook.posts[0]
    assert path == "/alerts"
    assert {k.lower(): v for k, v in headers.items()}["authorization"] == f"Bearer {TOKEN}"
    payload = json.loads(body)
    assert payload["version"] == "4" and payload["receiver"] == "rollback-webhook" and payload["status"] == "firing"
    (alert,) = payload["alerts"]
    assert alert["labels"]["alertname"] == "HighErrorRate" and alert["labels"]["model_version"] == BAD
    assert alert["startsAt"] and alert["fingerprint"]


def links(message: dict[str, Any]) -> dict[str, str]:
    attachment = message["attachments"][0]
    found = {label: url for url, label in re.findall(r"<([^|>]+)\|([^>]+)>", attachment["text"])}
    found.update({f"button {a['text']}": a["url"] for a in attachment.get("actions", [])})
    return found


def test_slack_gets_a_message_naming_the_version_with_working_links(stack: Stack) -> None:
    message = next(m for m in slack_messages(stack.slack) if "HighErrorRate" in m["attachments"][0]["title"])
    attachment = message["attachments"][0]
    assert message["channel"] == "#driftwatch-oncall"
    assert attachment["title"] == f"[FIRING:1] HighErrorRate | {MODEL} version {BAD}"
    assert f"{MODEL} version {BAD} failed 50% of its prediction requests" in attachment["text"]
    assert f"Model `{MODEL}` version `{BAD}`" in attachment["text"]
    assert attachment["color"] == "danger"
    found = links(message)
    assert {"Runbook", "Dashboard", "Silence", "Prometheus"} <= found.keys()
    assert found["button Runbook"] == found["Runbook"] and found["button Silence"] == found["Silence"]

    # runbook: this checkout's docs/runbooks.md, at the alert's own section
    runbook = urlsplit(found["Runbook"])
    assert runbook.scheme == "file" and runbook.fragment == "higherrorrate"
    assert "\n## HighErrorRate\n" in Path(unquote(runbook.path)).read_text()

    # dashboard: the panel of the error ratio, for this model and version
    dashboard = urlsplit(found["Dashboard"])
    assert found["Dashboard"].startswith(f"{GRAFANA}/d/driftwatch-serving/") and attachment["title_link"] == \
        found["Dashboard"]
    query = parse_qs(dashboard.query)
    assert query["var-model"] == [MODEL] and query["var-version"] == [BAD]
    serving = next(m for m in load_dashboards().values() if m["uid"] == "driftwatch-serving")
    panel = next(p for p in serving["panels"] if p["id"] == int(query["viewPanel"][0]))
    assert panel["title"] == "Error ratio by version"

    # silence: opens on this Alertmanager, pre-filled with matchers that select exactly this alert
    silence = found["Silence"]
    assert silence.startswith(f"{stack.alertmanager}/#/silences/new?filter=")
    assert httpx.get(silence.split("#")[0], timeout=5, follow_redirects=True).status_code == 200
    matchers = re.findall(r'(\w+)="([^"]*)"', unquote(silence.split("filter=", 1)[1]))
    assert dict(matchers) == {"alertname": "HighErrorRate", "model_name": MODEL, "model_version": BAD}
    selected = httpx.get(f"{stack.alertmanager}/api/v2/alerts",
                         params=[("filter", f'{k}="{v}"') for k, v in matchers], timeout=5).json()
    assert [a["labels"]["model_version"] for a in selected] == [BAD]

    # the Prometheus link opens the alert's expression
    generator = found["Prometheus"]
    assert generator.startswith(f"{stack.prometheus}/graph?")
    assert httpx.get(generator, timeout=5, follow_redirects=True).status_code == 200


def test_every_dashboard_panel_query_returns_data(stack: Stack) -> None:
    # ALERTS has HighErrorRate firing; the recording rules have a few evaluations behind them
    assert queries_without_data(stack.prometheus) == []


def test_a_down_target_holds_back_the_alerts_of_its_job(stack: Stack) -> None:
    now = datetime.now(UTC)
    window = {"startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=5)).isoformat()}
    posted = httpx.post(f"{stack.alertmanager}/api/v2/alerts", json=[
        {"labels": {"alertname": "InstanceDown", "severity": "critical", "job": "drift_exporter",
                    "instance": "127.0.0.1:1"}, **window},
        {"labels": {"alertname": "FeatureDrift", "severity": "warning", "job": "drift_exporter",
                    "model_name": MODEL, "model_version": BAD, "feature": "petal_width"}, **window},
        {"labels": {"alertname": "FeatureDrift", "severity": "warning", "job": "other_exporter",
                    "model_name": MODEL, "model_version": BAD, "feature": "petal_width"}, **window},
    ], timeout=5)
    assert posted.status_code == 200

    def states() -> dict[str, list[str]]:
        alerts = httpx.get(f"{stack.alertmanager}/api/v2/alerts", params={"filter": 'alertname="FeatureDrift"'},
                           timeout=5).json()
        return {a["labels"]["job"]: a["status"]["inhibitedBy"] for a in alerts}

    found = wait_until("inhibition", lambda: (s := states()) and s.get("drift_exporter") and s, timeout=10)
    assert found["drift_exporter"] and found["other_exporter"] == []
    # the held-back alert is never sent; the other one and the page for the down target are
    wait_until("the InstanceDown page", lambda: any("InstanceDown" in m["attachments"][0]["title"]
                                                    for m in slack_messages(stack.slack)), timeout=15)
    wait_until("the FeatureDrift message", lambda: any("FeatureDrift" in m["attachments"][0]["title"]
                                                       for m in slack_messages(stack.slack)), timeout=15)
    drift_texts = [m["attachments"][0]["text"] for m in slack_messages(stack.slack)
                   if "FeatureDrift" in m["attachments"][0]["title"]]
    assert drift_texts and all("drift_exporter" not in t for t in drift_texts)
    assert all(m["channel"] == "#driftwatch-ml" for m in slack_messages(stack.slack)
               if "FeatureDrift" in m["attachments"][0]["title"])


def test_recovery_sends_resolved_to_slack_and_the_webhook(stack: Stack) -> None:
    stack.traffic.stop_failing()
    wait_until("HighErrorRate to resolve", lambda: not firing(stack.prometheus, "HighErrorRate"), timeout=30)
    resolved = wait_until(
        "a resolved Slack message",
        lambda: [m for m in slack_messages(stack.slack) if m["attachments"][0]["title"].startswith("[RESOLVED]")
                 and "HighErrorRate" in m["attachments"][0]["title"]], timeout=30)
    assert resolved[0]["attachments"][0]["color"] == "good"
    assert "*RESOLVED:*" in resolved[0]["attachments"][0]["text"]
    wait_until("a resolved webhook call", lambda: any(p["status"] == "resolved" for p in stack.webhook.json_posts()),
               timeout=15)
