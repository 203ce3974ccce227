"""The v4 payload models against the fixtures, and the incident key that makes delivery exactly-once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from rollback_webhook.payload import AlertmanagerPayload
from tests.unit.rollback_webhook.fakes import FIXTURES, load_fixture, with_alert

FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_fixture_is_a_valid_payload(name: str) -> None:
    payload = AlertmanagerPayload.model_validate(load_fixture(name))
    assert payload.version == "4" and payload.alerts
    assert all(a.starts_at.tzinfo is not None for a in payload.alerts)


def test_firing_fixture_names_the_release() -> None:
    alert = AlertmanagerPayload.model_validate(load_fixture("firing")).alerts[0]
    assert (alert.alertname, alert.model_name, alert.model_version, alert.wants_rollback) == (
        "HighErrorRate", "iris-classifier", "2", True)
    assert alert.starts_at == datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)  # nanoseconds cut to micro


def test_incident_key_is_alertname_model_version_and_start() -> None:
    alert = AlertmanagerPayload.model_validate(load_fixture("firing")).alerts[0]
    assert alert.incident_key == "HighErrorRate|iris-classifier|2|2026-01-01T12:00:00.123456+00:00"


def test_the_same_start_in_another_time_zone_is_the_same_incident() -> None:
    base = load_fixture("firing")
    shifted = with_alert(base, startsAt="2026-01-01T13:00:00.123456+01:00")
    keys = {AlertmanagerPayload.model_validate(p).alerts[0].incident_key for p in (base, shifted)}
    assert len(keys) == 1


def test_duplicate_series_of_one_incident_share_the_key_but_not_the_fingerprint() -> None:
    alerts = AlertmanagerPayload.model_validate(load_fixture("duplicates")).alerts
    assert alerts[0].fingerprint != alerts[1].fingerprint
    assert alerts[0].incident_key == alerts[1].incident_key


def test_a_new_firing_of_the_same_alert_is_a_new_incident() -> None:
    base = load_fixture("firing")
    refired = with_alert(base, startsAt="2026-01-01T14:00:00Z")
    first, second = (AlertmanagerPayload.model_validate(p).alerts[0] for p in (base, refired))
    assert first.fingerprint == second.fingerprint and first.incident_key != second.incident_key


def test_truncated_count_and_unknown_fields_are_accepted() -> None:
    payload = load_fixture("truncated")
    payload["someFutureField"] = {"x": 1}
    payload["alerts"][0]["silenceURL"] = "http://x"
    assert AlertmanagerPayload.model_validate(payload).truncated_alerts == 3


@pytest.mark.parametrize("change", [
    pytest.param({"version": "3"}, id="older-payload-version"),
    pytest.param({"status": "pending"}, id="unknown-status"),
    pytest.param({"alerts": "HighErrorRate"}, id="alerts-not-a-list"),
    pytest.param({"alerts": [{"status": "firing", "labels": {"alertname": "X"}}]}, id="alert-without-startsAt"),
    pytest.param({"alerts": [{"status": "firing", "labels": ["a"], "startsAt": "2026-01-01T00:00:00Z"}]},
                 id="labels-not-a-mapping"),
    pytest.param({"alerts": [{"status": "firing", "labels": {"n": 3}, "startsAt": "2026-01-01T00:00:00Z"}]},
                 id="label-value-not-a-string"),
    pytest.param({"alerts": [{"status": "firing", "labels": {}, "startsAt": "yesterday"}]}, id="unparsable-time"),
    pytest.param({"alerts": [{"status": "firing", "labels": {}, "startsAt": "2026-01-01T00:00:00"}]},
                 id="time-without-zone"),
    pytest.param({"truncatedAlerts": -1}, id="negative-truncated-count"),
])
def test_wrong_shapes_are_refused(change: dict[str, object]) -> None:
    payload = load_fixture("firing")
    payload.update(change)
    with pytest.raises(ValidationError):
        AlertmanagerPayload.model_validate(payload)


def test_missing_version_is_refused() -> None:
    payload = load_fixture("firing")
    del payload["version"]
    with pytest.raises(ValidationError, match="version"):
        AlertmanagerPayload.model_validate(payload)
