"""No alert can wedge a delivery (issue #15): a ``model_version`` of 2^64 or more, a ``startsAt`` in
year 1 or 9999, or an alert the registry fails on for a reason a retry cannot cure is declined or
answered ``error`` on its own, and the genuine alert in the same group is still decided."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model_registry import VersionInfo
from model_registry.errors import RegistryError, RegistryUnavailable
from rollback_webhook.payload import MAX_REGISTRY_VERSION, is_registry_version
from tests.unit.rollback_webhook.fakes import FakeRegistry, load_fixture, version
from tests.unit.rollback_webhook.test_webhook_app import Webhook, build


class MlflowLikeRegistry(FakeRegistry):
    """Fails like MLflow's SQL store on a version too large for a SQL integer. Before the fix such an
    error was taken for "registry unavailable": 503 for the whole delivery, retried forever."""

    def __init__(self) -> None:
        super().__init__([version("1"), version("2", previous="1")], production="2")
        self.asked: list[str] = []
        self.broken_versions: set[str] = set()

    def get_version(self, version: str, *, with_metrics: bool = True) -> VersionInfo:
        self.asked.append(version)
        if int(version) > MAX_REGISTRY_VERSION:
            raise RegistryUnavailable("Python int too large to convert to SQLite INTEGER")
        if version in self.broken_versions:
            raise RegistryError("(sqlite3.IntegrityError) an unrelated SQL error")
        return super().get_version(version, with_metrics=with_metrics)


@pytest.fixture
def hook(tmp_path: Path) -> Iterator[Webhook]:
    webhook = build(tmp_path, MlflowLikeRegistry())
    with webhook.client:
        yield webhook


def group(*changes: dict[str, Any]) -> dict[str, Any]:
    """One delivery: an alert per entry of ``changes`` (labels under "labels", fields otherwise),
    then the genuine HighErrorRate on production v2."""
    payload = load_fixture("firing")
    genuine = payload["alerts"][0]
    alerts = []
    for change in changes:
        alert = copy.deepcopy(genuine)
        alert["labels"].update(change.get("labels", {}))
        alert.update({k: v for k, v in change.items() if k != "labels"})
        alerts.append(alert)
    payload["alerts"] = [*alerts, genuine]
    return payload


@pytest.mark.parametrize("bad_version", [str(2**64), str(2**64 + 1), str(2**63), "9" * 400, "0", "v2", "\uff12"])
def test_a_version_no_registry_can_hold_is_declined_and_the_genuine_alert_still_rolls_back(
        hook: Webhook, bad_version: str) -> None:
    response = hook.post(group({"labels": {"model_version": bad_version}}))
    assert response.status_code == 200, response.text
    bad, genuine = response.json()["results"]
    assert bad["decision"] == "declined_unknown_model" and "no registry version can be" in bad["reason"]
    assert genuine["decision"] == "rolled_back" and hook.registry.production == "1"
    assert bad_version not in hook.registry.asked  # declined without asking the registry
    # Recorded: Alertmanager's re-send of the same group is answered from the store.
    again = hook.post(group({"labels": {"model_version": bad_version}})).json()["results"]
    assert [r["decision"] for r in again] == ["duplicate", "duplicate"]


@pytest.mark.parametrize("starts_at", [
    "0001-01-01T00:00:00+01:00",  # year 1 east of UTC: no UTC equivalent
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999-01:00",  # year 9999 west of UTC: no UTC equivalent
    "9999-12-31T23:59:59Z",
])
def test_a_starts_at_near_year_1_or_9999_is_decided_and_does_not_block_the_group(hook: Webhook,
                                                                                  starts_at: str) -> None:
    # The odd alert names v1 (not production): declined; the genuine one on v2 rolls back.
    response = hook.post(group({"labels": {"model_version": "1"}, "startsAt": starts_at}))
    assert response.status_code == 200, response.text
    odd, genuine = response.json()["results"]
    assert odd["decision"] == "declined_not_production"
    assert genuine["decision"] == "rolled_back"
    decided = {d["incident_key"] for d in hook.decisions()}
    assert odd["incident_key"] in decided and genuine["incident_key"] in decided


def test_the_odd_starts_at_is_its_own_incident(hook: Webhook) -> None:
    first = hook.post(group({"labels": {"model_version": "1"}, "startsAt": "0001-01-01T00:00:00+01:00"}))
    second = hook.post(group({"labels": {"model_version": "1"}, "startsAt": "0001-01-01T00:00:00+02:00"}))
    keys = {first.json()["results"][0]["incident_key"], second.json()["results"][0]["incident_key"]}
    assert len(keys) == 2


def test_a_registry_error_a_retry_cannot_cure_is_an_error_for_that_alert_only(hook: Webhook) -> None:
    registry: MlflowLikeRegistry = hook.registry  # type: ignore[assignment]
    registry.versions["7"] = version("7")
    registry.broken_versions.add("7")
    response = hook.post(group({"labels": {"model_version": "7"}}))
    assert response.status_code == 200, response.text
    broken, genuine = response.json()["results"]
    assert broken["decision"] == "error" and "an unrelated SQL error" in broken["reason"]
    assert genuine["decision"] == "rolled_back"
    assert hook.value("rollback_webhook_decisions_total", decision="error") == 1
    # Not recorded: a later re-send is decided afresh (and is no longer blocked by anything).
    registry.broken_versions.clear()
    again = hook.post(group({"labels": {"model_version": "7"}})).json()["results"]
    assert again[0]["decision"] == "declined_not_production" and again[1]["decision"] == "duplicate"


def test_an_unreachable_registry_still_decides_the_alerts_that_do_not_need_it_then_answers_503(
        hook: Webhook) -> None:
    hook.registry.unavailable = True
    payload = group({"labels": {"model_version": str(2**64)}}, {"status": "resolved"})
    response = hook.post(payload)
    assert response.status_code == 503 and response.headers["retry-after"]
    hook.registry.unavailable = False
    results = hook.post(payload).json()["results"]
    assert [r["decision"] for r in results] == ["duplicate", "duplicate", "rolled_back"]


@pytest.mark.parametrize(("text", "valid"), [
    ("1", True), ("42", True), (str(MAX_REGISTRY_VERSION), True), (str(MAX_REGISTRY_VERSION + 1), False),
    ("0", False), ("-1", False), ("1.0", False), (" 1", False), ("", False), ("²", False)])
def test_what_counts_as_a_registry_version(text: str, valid: bool) -> None:
    assert is_registry_version(text) is valid
