"""The HTTP contract: auth, 4xx for bad bodies, 200 for every decision, 503 only for an unreachable
registry (and the retry then acts), exactly-once per incident, /decisions, /metrics, /health."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from model_registry import RegistrySettings
from rollback_webhook.app import create_app
from rollback_webhook.settings import WebhookSettings
from rollback_webhook.store import DecisionStore
from tests.support.procs import require_binary
from tests.unit.rollback_webhook.fakes import (
    MODEL,
    TOKEN,
    FakeRegistry,
    RecordingReloader,
    bad_release,
    load_fixture,
    version,
    with_alert,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Webhook:
    client: TestClient
    registry: FakeRegistry
    metrics: CollectorRegistry
    reloader: RecordingReloader
    store_path: Path

    def post(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post("/alerts", json=payload, headers=AUTH if headers is None else headers)

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.get_sample_value(name, labels) or 0.0

    def settle(self) -> None:
        """Wait for the background reload calls."""
        self.client.app.state.service.join_reloads(10)  # type: ignore[attr-defined]

    def decisions(self) -> list[dict[str, Any]]:
        self.settle()
        body: dict[str, Any] = self.client.get("/decisions", headers=AUTH).json()
        return list(body["decisions"])


def build(tmp_path: Path, registry: FakeRegistry | None = None, *, busy_timeout: float = 60.0,
          **settings: Any) -> Webhook:
    values: dict[str, Any] = {"token": TOKEN, **settings}
    config = WebhookSettings(registry=RegistrySettings(home=tmp_path, model_name=MODEL), **values)
    metrics = CollectorRegistry()
    fake = registry or bad_release()
    reloader = RecordingReloader()
    store_path = tmp_path / "decisions.db"
    app = create_app(config, registry=metrics, model_registry=fake, store=DecisionStore(store_path, busy_timeout_seconds=busy_timeout),
                     reloader=reloader)
    return Webhook(TestClient(app), fake, metrics, reloader, store_path)


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[Webhook]:
    hook = build(tmp_path)
    with hook.client:
        yield hook


# ---------------------------------------------------------------- auth
@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-header"),
    pytest.param({"Authorization": "Bearer wrong-token-0123456789"}, id="wrong-token"),
    pytest.param({"Authorization": f"Basic {TOKEN}"}, id="wrong-scheme"),
    pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}"}, id="prefix-of-the-token"),
    pytest.param({"Authorization": "Bearer "}, id="empty-token"),
])
def test_alerts_without_the_right_token_are_401_and_change_nothing(webhook: Webhook,
                                                                   headers: dict[str, str]) -> None:
    response = webhook.post(load_fixture("firing"), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert webhook.registry.production == "2" and webhook.registry.reads == 0
    assert webhook.client.get("/decisions", headers=headers).status_code == 401


def test_the_bearer_scheme_is_case_insensitive(webhook: Webhook) -> None:
    response = webhook.post(load_fixture("firing"), headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200


# ---------------------------------------------------------------- malformed bodies
def test_a_body_that_is_not_json_is_400(webhook: Webhook) -> None:
    response = webhook.client.post("/alerts", content=b'{"version": "4", "alerts": [', headers=AUTH)
    assert response.status_code == 400 and "not JSON" in response.json()["detail"]


@pytest.mark.parametrize("body", [
    pytest.param([], id="a-list"),
    pytest.param({"hello": "world"}, id="another-object"),
    pytest.param({**load_fixture("firing"), "version": "3"}, id="payload-version-3"),
    pytest.param({**load_fixture("firing"), "alerts": [{"status": "firing"}]}, id="alert-without-labels"),
    pytest.param("a string", id="a-json-string"),
])
def test_wrong_shapes_are_422_naming_the_problem(webhook: Webhook, body: Any) -> None:
    response = webhook.post(body)
    assert response.status_code == 422
    assert "not an Alertmanager webhook payload" in response.json()["detail"]
    assert webhook.registry.production == "2"


def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    hook = build(tmp_path, max_body_bytes=2048)
    payload = with_alert(load_fixture("firing"), annotations={"description": "x" * 4096})
    assert hook.post(payload).status_code == 413
    # answered by the limits middleware before routing, and still counted under the route it was sent to
    assert hook.client.post("/nowhere", content=b"x" * 4096).status_code == 413
    text = hook.client.get("/metrics").text
    assert 'http_requests_total{handler="/alerts",method="POST",status="413"} 1.0' in text
    assert 'http_requests_total{handler="unmatched",method="POST",status="413"} 1.0' in text


# ---------------------------------------------------------------- decisions
def test_a_firing_alert_on_production_rolls_back_quarantines_counts_and_reloads(webhook: Webhook) -> None:
    response = webhook.post(load_fixture("firing"))
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert (result["decision"], result["from_version"], result["to_version"]) == ("rolled_back", "2", "1")
    assert webhook.registry.production == "1"
    call = webhook.registry.rollback_calls[0]
    assert (call["to"], call["expected_current"], call["alertname"], call["actor"]) == (
        "1", "2", "HighErrorRate", "rollback-webhook")
    assert "HighErrorRate firing on v2 since 2026-01-01T12:00:00.123456+00:00" in call["reason"]
    assert "More than 1% of predictions fail." in call["reason"]
    assert webhook.registry.versions["2"].quarantined
    assert webhook.registry.load_checks == ["1"]
    assert webhook.value("model_rollbacks_total", model_name=MODEL, from_version="2", to_version="1",
                         alertname="HighErrorRate") == 1
    assert webhook.value("rollback_webhook_decisions_total", decision="rolled_back") == 1
    assert webhook.value("model_last_rollback_timestamp_seconds", model_name=MODEL) > 0
    webhook.settle()
    assert webhook.reloader.calls == 1
    assert webhook.value("rollback_webhook_serving_reloads_total", result="success") == 1
    (record,) = webhook.decisions()
    assert record["reloads"] == [{"url": "http://serving.test", "result": "success", "status": 200}]


@pytest.mark.parametrize(("fixture", "decision"), [
    pytest.param("resolved", "resolved", id="resolved"),
    pytest.param("unknown_model", "declined_unknown_model", id="unknown-model"),
    pytest.param("stale_version", "declined_not_production", id="stale-version"),
])
def test_declines_are_200_recorded_and_undo_nothing(webhook: Webhook, fixture: str, decision: str) -> None:
    response = webhook.post(load_fixture(fixture))
    assert response.status_code == 200
    assert [r["decision"] for r in response.json()["results"]] == [decision]
    assert webhook.registry.production == "2" and webhook.registry.rollback_calls == []
    assert webhook.value("rollback_webhook_decisions_total", decision=decision) == 1
    assert webhook.value("model_rollbacks_total", model_name=MODEL, from_version="2", to_version="1",
                         alertname="HighErrorRate") == 0
    (record,) = webhook.decisions()
    assert record["decision"] == decision and record["reason"]
    assert webhook.reloader.calls == 0


def test_a_mixed_delivery_is_decided_alert_by_alert(webhook: Webhook) -> None:
    response = webhook.post(load_fixture("mixed"))
    assert [r["decision"] for r in response.json()["results"]] == [
        "rolled_back", "resolved", "declined_not_labelled"]
    assert webhook.registry.production == "1"
    assert len(webhook.decisions()) == 3


def test_two_series_of_one_incident_in_one_delivery_roll_back_once(webhook: Webhook) -> None:
    response = webhook.post(load_fixture("duplicates"))
    assert [r["decision"] for r in response.json()["results"]] == ["rolled_back", "duplicate"]
    assert len(webhook.registry.rollback_calls) == 1
    (record,) = webhook.decisions()
    assert record["deliveries"] == 2


def test_a_truncated_delivery_decides_what_it_has_and_says_what_is_missing(webhook: Webhook) -> None:
    body = webhook.post(load_fixture("truncated")).json()
    assert body["truncated_alerts"] == 3
    assert [r["decision"] for r in body["results"]] == ["rolled_back"]


def test_dry_run_records_what_it_would_do_and_changes_nothing(tmp_path: Path) -> None:
    hook = build(tmp_path, dry_run=True)
    (result,) = hook.post(load_fixture("firing")).json()["results"]
    assert (result["decision"], result["to_version"]) == ("dry_run", "1")
    assert hook.registry.production == "2" and hook.registry.rollback_calls == []
    hook.settle()
    assert hook.reloader.calls == 0


def test_an_unloadable_previous_version_is_declined(tmp_path: Path) -> None:
    registry = bad_release()
    registry.unloadable["1"] = "model v1 does not load: ModuleNotFoundError: sklearn"
    hook = build(tmp_path, registry)
    (result,) = hook.post(load_fixture("firing")).json()["results"]
    assert result["decision"] == "declined_previous_unloadable" and "ModuleNotFoundError" in result["reason"]
    assert registry.production == "2"


def test_a_second_incident_on_the_restored_version_waits_out_the_cooldown(tmp_path: Path) -> None:
    registry = FakeRegistry([version("1"), version("2", previous="1"), version("3", previous="2")], production="3")
    hook = build(tmp_path, registry)
    first = with_alert(load_fixture("firing"), labels={"model_version": "3"})
    assert hook.post(first).json()["results"][0]["decision"] == "rolled_back"
    again = with_alert(load_fixture("firing"), labels={"model_version": "2"}, startsAt="2026-01-01T12:20:00Z")
    (result,) = hook.post(again).json()["results"]
    assert result["decision"] == "declined_cooldown" and registry.production == "2"


# ---------------------------------------------------------------- exactly once
def test_redelivery_of_a_decided_incident_is_a_duplicate(webhook: Webhook) -> None:
    payload = load_fixture("firing")
    assert webhook.post(payload).json()["results"][0]["decision"] == "rolled_back"
    for _ in range(3):
        (result,) = webhook.post(payload).json()["results"]
        assert result["decision"] == "duplicate" and result["recorded_decision"] == "rolled_back"
    assert len(webhook.registry.rollback_calls) == 1
    (record,) = webhook.decisions()
    assert record["deliveries"] == 4
    assert webhook.value("rollback_webhook_decisions_total", decision="duplicate") == 3
    webhook.settle()
    assert webhook.reloader.calls == 1


def test_decisions_persist_across_restarts(tmp_path: Path) -> None:
    registry = bad_release()
    first = build(tmp_path, registry)
    assert first.post(load_fixture("firing")).json()["results"][0]["decision"] == "rolled_back"
    # Put v2 back as if someone promoted it again: a fresh webhook must still not act on the old incident.
    registry.production = "2"
    second = build(tmp_path, registry)
    assert second.value("model_last_rollback_timestamp_seconds", model_name=MODEL) > 0
    (result,) = second.post(load_fixture("firing")).json()["results"]
    assert result["decision"] == "duplicate"
    assert len(registry.rollback_calls) == 1


# ---------------------------------------------------------------- registry faults
def test_an_unreachable_registry_is_503_and_the_retry_rolls_back(webhook: Webhook) -> None:
    webhook.registry.unavailable = True
    response = webhook.post(load_fixture("firing"))
    assert response.status_code == 503 and response.headers["retry-after"] == "10"
    assert "cannot be reached" in response.json()["detail"]
    assert webhook.decisions() == []  # nothing recorded: the retry decides afresh
    assert webhook.value("rollback_webhook_decisions_total", decision="registry_unavailable") == 1

    webhook.registry.unavailable = False
    (result,) = webhook.post(load_fixture("firing")).json()["results"]
    assert result["decision"] == "rolled_back" and result["deliveries"] == 1
    assert webhook.registry.production == "1"


def test_a_store_held_too_long_by_another_process_is_503_and_the_retry_acts(tmp_path: Path) -> None:
    hook = build(tmp_path, busy_timeout=0.2)
    other_process = DecisionStore(hook.store_path)
    with other_process.transaction():
        response = hook.post(load_fixture("firing"))
    assert response.status_code == 503 and "busy" in response.json()["detail"]
    assert hook.registry.rollback_calls == []
    assert hook.post(load_fixture("firing")).json()["results"][0]["decision"] == "rolled_back"


def test_declines_that_need_no_registry_are_answered_while_it_is_down(webhook: Webhook) -> None:
    webhook.registry.unavailable = True
    response = webhook.post(load_fixture("resolved"))
    assert response.status_code == 200 and response.json()["results"][0]["decision"] == "resolved"


def test_a_registry_lost_during_the_rollback_is_503_and_leaves_no_record(webhook: Webhook) -> None:
    original = webhook.registry.rollback

    def fail_once(**kwargs: Any) -> Any:
        webhook.registry.rollback = original  # type: ignore[method-assign]
        from model_registry.errors import RegistryUnavailable

        raise RegistryUnavailable("connection reset while moving the alias")

    webhook.registry.rollback = fail_once  # type: ignore[method-assign]
    assert webhook.post(load_fixture("firing")).status_code == 503
    assert webhook.decisions() == []
    assert webhook.post(load_fixture("firing")).json()["results"][0]["decision"] == "rolled_back"


def test_a_race_lost_to_another_rollback_is_recorded_as_not_production(webhook: Webhook) -> None:
    original = webhook.registry.rollback

    def someone_else_first(**kwargs: Any) -> Any:
        webhook.registry.production = "1"  # a person rolled back between our read and our write
        return original(**kwargs)

    webhook.registry.rollback = someone_else_first  # type: ignore[method-assign]
    (result,) = webhook.post(load_fixture("firing")).json()["results"]
    assert result["decision"] == "declined_not_production" and "production_changed" in result["reason"]


# ---------------------------------------------------------------- reading
def test_decisions_are_listed_newest_first_and_filtered(webhook: Webhook) -> None:
    webhook.post(load_fixture("stale_version"))
    webhook.post(load_fixture("firing"))
    records = webhook.decisions()
    assert [r["decision"] for r in records] == ["rolled_back", "declined_not_production"]
    filtered = webhook.client.get("/decisions", params={"decision": "rolled_back", "limit": 5}, headers=AUTH)
    assert [r["model_version"] for r in filtered.json()["decisions"]] == ["2"]
    unknown = webhook.client.get("/decisions", params={"decision": "nöpe"}, headers=AUTH)
    assert unknown.status_code == 422  # FastAPI's documented HTTPValidationError (the fuzz suite's finding)
    assert unknown.json()["detail"][0]["loc"] == ["query", "decision"]
    assert webhook.client.get("/decisions", params={"limit": 0}, headers=AUTH).status_code == 422


def test_metrics_count_requests_by_route_template(webhook: Webhook) -> None:
    webhook.post(load_fixture("firing"))
    webhook.post(load_fixture("firing"), headers={})
    webhook.client.get("/nowhere")
    text = webhook.client.get("/metrics").text
    assert 'http_requests_total{handler="/alerts",method="POST",status="200"} 1.0' in text
    assert 'http_requests_total{handler="/alerts",method="POST",status="401"} 1.0' in text
    assert 'http_requests_total{handler="unmatched",method="GET",status="404"} 1.0' in text
    # every decision series exists before the first increase
    assert 'rollback_webhook_decisions_total{decision="declined_cooldown"} 0.0' in text


def test_health_reports_the_policy(webhook: Webhook) -> None:
    body = webhook.client.get("/health").json()
    assert body["status"] == "ok" and body["model_name"] == MODEL
    assert body["policy"]["alerts"] == {"HighErrorRate": {"action": "rollback"}, "HighLatency": {"action": "rollback"},
                                        "ModelQualityDegraded": {"action": "rollback"}}


def test_health_is_503_when_the_store_cannot_be_read(webhook: Webhook) -> None:
    webhook.store_path.unlink()
    webhook.store_path.mkdir()
    assert webhook.client.get("/health").status_code == 503


def test_responses_are_json_with_one_result_per_alert(webhook: Webhook) -> None:
    body = webhook.post(load_fixture("mixed")).json()
    assert json.loads(json.dumps(body)) == body
    assert {r["alertname"] for r in body["results"]} == {"HighErrorRate", "HighLatency", "FeatureDrift"}


def test_the_answer_does_not_wait_for_slow_serving_reloads(tmp_path: Path) -> None:
    release = threading.Event()

    class SlowReloader(RecordingReloader):
        def reload_all(self) -> list[dict[str, Any]]:
            release.wait(10)  # serving loading a big model
            return super().reload_all()

    config = WebhookSettings(registry=RegistrySettings(home=tmp_path, model_name=MODEL), token=TOKEN)
    reloader = SlowReloader()
    app = create_app(config, registry=CollectorRegistry(), model_registry=bad_release(),
                     store=DecisionStore(tmp_path / "d.db"), reloader=reloader)
    client = TestClient(app)
    response = client.post("/alerts", json=load_fixture("firing"), headers=AUTH)
    assert response.json()["results"][0]["decision"] == "rolled_back"
    assert reloader.calls == 0  # answered while serving is still reloading
    release.set()
    app.state.service.join_reloads(10)
    assert reloader.calls == 1


def test_metrics_pass_promtool_lint(webhook: Webhook) -> None:
    promtool = require_binary("promtool")
    webhook.post(load_fixture("firing"))
    text = webhook.client.get("/metrics").text
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
