"""Exactly once under concurrency: many threads, and two "processes" (services with their own locks)
sharing one store file, deliver the same incident while the registry is slow."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client import CollectorRegistry

from rollback_webhook.metrics import WebhookMetrics
from rollback_webhook.payload import AlertmanagerPayload
from rollback_webhook.policy import RollbackPolicy
from rollback_webhook.service import RollbackService
from rollback_webhook.store import DecisionStore
from tests.unit.rollback_webhook.fakes import (
    MODEL,
    FakeRegistry,
    RecordingReloader,
    bad_release,
    load_fixture,
    with_alert,
)


def service(store_path: Path, registry: FakeRegistry) -> tuple[RollbackService, CollectorRegistry]:
    metrics = CollectorRegistry()
    return RollbackService(model_name=MODEL, policy=RollbackPolicy(), registry=registry,
                           store=DecisionStore(store_path), metrics=WebhookMetrics(metrics, MODEL),
                           reloader=RecordingReloader()), metrics


def deliver_concurrently(services: list[RollbackService], payload: AlertmanagerPayload, n: int) -> list[str]:
    barrier = threading.Barrier(n)

    def one(i: int) -> str:
        barrier.wait()
        (result,) = services[i % len(services)].handle(payload)
        return result.decision

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_fifty_parallel_deliveries_roll_back_once(tmp_path: Path) -> None:
    registry = bad_release()
    registry.rollback_delay = 0.05  # widen the window a missing lock would lose
    svc, metrics = service(tmp_path / "d.db", registry)
    payload = AlertmanagerPayload.model_validate(load_fixture("firing"))
    decisions = deliver_concurrently([svc], payload, 50)
    assert sorted(set(decisions)) == ["duplicate", "rolled_back"] and decisions.count("rolled_back") == 1
    assert len(registry.rollback_calls) == 1
    (record,) = svc.store.recent()
    assert record.deliveries == 50
    assert metrics.get_sample_value("rollback_webhook_decisions_total", {"decision": "duplicate"}) == 49


def test_two_processes_sharing_the_store_roll_back_once(tmp_path: Path) -> None:
    registry = bad_release()
    registry.rollback_delay = 0.05
    first, _ = service(tmp_path / "d.db", registry)
    second, _ = service(tmp_path / "d.db", registry)
    payload = AlertmanagerPayload.model_validate(load_fixture("firing"))
    decisions = deliver_concurrently([first, second], payload, 20)
    assert decisions.count("rolled_back") == 1 and decisions.count("duplicate") == 19
    assert len(registry.rollback_calls) == 1


def test_two_alerts_about_one_bad_release_at_once_give_one_rollback(tmp_path: Path) -> None:
    registry = bad_release()
    registry.rollback_delay = 0.05
    svc, _ = service(tmp_path / "d.db", registry)
    errors = AlertmanagerPayload.model_validate(load_fixture("firing"))
    latency = AlertmanagerPayload.model_validate(with_alert(load_fixture("firing"), labels={"alertname": "HighLatency"}))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [f.result()[0] for f in [pool.submit(svc.handle, errors), pool.submit(svc.handle, latency)]]
    assert sorted(r.decision for r in results) == ["declined_not_production", "rolled_back"]
    declined = next(r for r in results if r.decision == "declined_not_production")
    assert "already rolled back to v1" in declined.reason
    assert len(registry.rollback_calls) == 1


def test_a_rollback_whose_process_died_before_recording_is_recorded_once_by_the_retry(tmp_path: Path) -> None:
    """A webhook moved production back, then died before its commit (killed, or its store went
    away): the registry shows the incident's quarantine tag, the store has no row. The retry
    records the rollback (one audit record) and does not act again."""
    registry = bad_release()
    payload = AlertmanagerPayload.model_validate(load_fixture("firing"))
    (alert,) = payload.alerts
    registry.rollback(reason="first delivery", actor="rollback-webhook", alertname=alert.alertname,
                      expected_current="2", incident=alert.incident_key)
    svc, _ = service(tmp_path / "d.db", registry)
    (result,) = svc.handle(payload)
    assert result.decision == "rolled_back" and "recorded now" in result.reason
    assert (result.record.from_version, result.record.to_version) == ("2", "1")
    assert len(registry.rollback_calls) == 1  # only the first delivery's
    (again,) = svc.handle(payload)
    assert again.decision == "duplicate"
    assert [r.decision for r in svc.store.recent()] == ["rolled_back"]


def test_another_incidents_rollback_is_not_taken_for_this_one(tmp_path: Path) -> None:
    registry = bad_release()
    payload = AlertmanagerPayload.model_validate(load_fixture("firing"))
    registry.rollback(reason="manual", actor="someone", expected_current="2", incident="HighLatency|other|2|x")
    svc, _ = service(tmp_path / "d.db", registry)
    (result,) = svc.handle(payload)
    assert result.decision == "declined_not_production"
