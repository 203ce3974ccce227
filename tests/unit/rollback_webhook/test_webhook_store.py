"""The decision store: one record per incident and status, durable, all-or-nothing, shared by processes."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollback_webhook.store import DecisionStore, NewDecision

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KEY = "HighErrorRate|m|2|t0"


def new(key: str = KEY, *, status: str = "firing", decision: str = "rolled_back",
        at: datetime = T0, model: str = "m") -> NewDecision:
    return NewDecision(incident_key=key, alert_status=status, decision=decision, reason="why", decided_at=at,
                       alertname="HighErrorRate", model_name=model, model_version="2", starts_at="t0",
                       fingerprint="f", from_version="2", to_version="1", receiver="r", group_key="g")


def test_a_decision_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with DecisionStore(path).transaction() as tx:
        tx.insert(new())
    with DecisionStore(path).transaction() as tx:
        found = tx.find(KEY, "firing")
    assert found is not None and found.decision == "rolled_back" and found.deliveries == 1


def test_firing_and_resolved_of_one_incident_are_two_records_newest_first(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "d.db")
    with store.transaction() as tx:
        tx.insert(new())
        tx.insert(new(status="resolved", decision="resolved", at=T0 + timedelta(minutes=5)))
    assert [r.decision for r in store.recent()] == ["resolved", "rolled_back"]
    assert [r.decision for r in store.recent(decision="rolled_back")] == ["rolled_back"]
    assert store.recent()[0].to_dict()["decided_at"] == "2026-01-01T12:05:00.000Z"


def test_the_same_incident_cannot_be_recorded_twice(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "d.db")
    with store.transaction() as tx:
        tx.insert(new())
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as tx:
        tx.insert(new(decision="declined_cooldown"))
    assert len(store.recent()) == 1


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "d.db")
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.insert(new())
        raise RuntimeError("registry went away after the insert")
    assert store.recent() == []


def test_deliveries_are_counted_on_the_record(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "d.db")
    with store.transaction() as tx:
        record = tx.insert(new())
        tx.count_delivery(record.id, T0 + timedelta(seconds=30))
    (again,) = store.recent()
    assert again.deliveries == 2 and again.last_delivery_at == (T0 + timedelta(seconds=30)).timestamp()


def test_rollback_times_are_per_model_and_since_a_time(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "d.db")
    with store.transaction() as tx:
        tx.insert(new("a", at=T0))
        tx.insert(new("b", at=T0 + timedelta(hours=2)))
        tx.insert(new("c", at=T0 + timedelta(hours=3), model="other"))
        tx.insert(new("d", at=T0 + timedelta(hours=3), decision="declined_cooldown"))
        assert tx.rollback_times("m", T0 + timedelta(hours=1)) == (T0 + timedelta(hours=2),)
    assert store.last_rollback_at("m") == T0 + timedelta(hours=2)
    assert store.last_rollback_at("nothing") is None


def test_writers_on_separate_connections_take_turns(tmp_path: Path) -> None:
    # What two webhook processes do: look up, then insert if absent, each in its own write
    # transaction on its own connection. Exactly one insert may win.
    path = tmp_path / "d.db"
    DecisionStore(path)
    inserted: list[int] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        store = DecisionStore(path)
        barrier.wait()
        with store.transaction() as tx:
            if tx.find(KEY, "firing") is None:
                inserted.append(tx.insert(new()).id)
            else:
                existing = tx.find(KEY, "firing")
                assert existing is not None
                tx.count_delivery(existing.id, T0)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(inserted) == 1
    (record,) = DecisionStore(path).recent()
    assert record.deliveries == 8


def test_reload_results_are_kept_with_the_decision(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "d.db")
    with store.transaction() as tx:
        record = tx.insert(new())
    store.set_reloads(record.id, [{"url": "http://s:8000", "result": "success", "status": 200}])
    assert store.recent()[0].reloads == [{"url": "http://s:8000", "result": "success", "status": 200}]
