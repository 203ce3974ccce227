"""decide_rollback over every outcome, table-driven: alert x registry state x time x policy -> decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollback_webhook.decision import Outcome, RegistryState, decide_from_alert, decide_rollback
from rollback_webhook.payload import AlertmanagerPayload
from rollback_webhook.policy import AlertPolicy, RollbackPolicy
from tests.unit.rollback_webhook.fakes import MODEL, load_fixture, version, with_alert

NOW = datetime(2026, 1, 1, 12, 10, tzinfo=UTC)
GOOD = version("1")
BAD = version("2", previous="1")
PROD_STATE = RegistryState(model_name=MODEL, production=BAD, previous=GOOD)


def firing(**labels: str | None) -> Any:
    payload = with_alert(load_fixture("firing"), labels=labels)
    return AlertmanagerPayload.model_validate(payload).alerts[0]


def resolved() -> Any:
    return AlertmanagerPayload.model_validate(load_fixture("resolved")).alerts[0]


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


@dataclass
class Case:
    alert: Any
    state: RegistryState = PROD_STATE
    policy: RollbackPolicy = field(default_factory=RollbackPolicy)
    outcome: Outcome = Outcome.ROLLED_BACK
    versions: tuple[str | None, str | None] = ("2", "1")
    says: str = ""


CASES = [
    pytest.param(Case(firing(), says="rolled back to v1"), id="firing-labelled-production-alert-rolls-back"),
    pytest.param(Case(firing(alertname="HighLatency")), id="high-latency-rolls-back-by-default"),
    pytest.param(Case(resolved(), outcome=Outcome.RESOLVED, versions=(None, None), says="resolved"),
                 id="resolved-alert-never-rolls-back"),
    pytest.param(Case(firing(rollback=None), outcome=Outcome.NOT_LABELLED, versions=(None, None),
                      says='rollback="true"'), id="alert-without-rollback-label-is-declined"),
    pytest.param(Case(firing(rollback="false"), outcome=Outcome.NOT_LABELLED, versions=(None, None)),
                 id="rollback-false-is-declined"),
    pytest.param(Case(firing(rollback="True")), id="rollback-label-is-case-insensitive"),
    pytest.param(Case(firing(model_name="fraud-scorer"), outcome=Outcome.UNKNOWN_MODEL, versions=(None, None),
                      says="fraud-scorer"), id="alert-about-another-model-is-declined"),
    pytest.param(Case(firing(model_version=None), outcome=Outcome.UNKNOWN_MODEL, versions=(None, None),
                      says="no model_name and model_version"), id="alert-without-version-label-is-declined"),
    pytest.param(Case(firing(alertname="FeatureDrift"), outcome=Outcome.NOTIFY_ONLY, versions=(None, None),
                      says="unknown alerts only notify"), id="unknown-alert-name-only-notifies-by-default"),
    pytest.param(Case(firing(alertname="HighErrorRate"),
                      policy=RollbackPolicy(alerts={"HighErrorRate": AlertPolicy(action="notify")}),
                      outcome=Outcome.NOTIFY_ONLY, versions=(None, None), says="the policy says notify only"),
                 id="policy-notify-only-declines-a-named-alert"),
    pytest.param(Case(firing(alertname="CanaryErrors"), policy=RollbackPolicy(unknown_alerts="rollback")),
                 id="unknown-alert-rolls-back-when-the-policy-allows-unknown-alerts"),
    pytest.param(Case(firing(), state=RegistryState(model_name=MODEL, production=None), outcome=Outcome.NO_PRODUCTION,
                      versions=(None, None)), id="nothing-in-production-is-declined"),
    pytest.param(Case(firing(model_version="1"), state=RegistryState(MODEL, production=BAD, previous=GOOD,
                                                                     alerted=GOOD),
                      outcome=Outcome.NOT_PRODUCTION, versions=("1", None), says="the alert is stale"),
                 id="stale-alert-about-an-older-version-is-declined"),
    pytest.param(Case(firing(), state=RegistryState(
                          MODEL, production=GOOD,
                          alerted=version("2", previous="1", quarantined=True, rolled_back_to="1",
                                          alert="HighErrorRate")),
                      outcome=Outcome.NOT_PRODUCTION, versions=("2", None), says="already rolled back to v1"),
                 id="alert-about-a-version-already-rolled-back-is-declined"),
    pytest.param(Case(firing(), state=RegistryState(MODEL, production=version("2")), outcome=Outcome.NO_PREVIOUS,
                      versions=("2", None), says="no recorded previous version"),
                 id="production-without-previous-version-is-declined"),
    pytest.param(Case(firing(), state=RegistryState(MODEL, production=BAD, previous=None),
                      outcome=Outcome.PREVIOUS_MISSING, says="does not exist"),
                 id="previous-version-missing-is-declined"),
    pytest.param(Case(firing(), state=RegistryState(MODEL, production=BAD, previous=version("1", quarantined=True)),
                      outcome=Outcome.PREVIOUS_QUARANTINED, says="quarantined (bad release)"),
                 id="quarantined-previous-version-is-declined"),
    pytest.param(Case(firing(), policy=RollbackPolicy(floor_version=2), outcome=Outcome.BELOW_FLOOR,
                      says="below the floor v2"), id="previous-below-the-floor-is-declined"),
    pytest.param(Case(firing(), policy=RollbackPolicy(floor_version=1)), id="previous-at-the-floor-rolls-back"),
    pytest.param(Case(firing(), state=RegistryState(MODEL, BAD, GOOD, recent_rollbacks=(ago(10),)),
                      outcome=Outcome.COOLDOWN, says="1200 s left"), id="within-cooldown-is-declined"),
    pytest.param(Case(firing(), state=RegistryState(MODEL, BAD, GOOD, recent_rollbacks=(ago(31),))),
                 id="after-the-cooldown-rolls-back"),
    pytest.param(Case(firing(), state=RegistryState(MODEL, BAD, GOOD, recent_rollbacks=(ago(31),)),
                      policy=RollbackPolicy(alerts={"HighErrorRate": AlertPolicy(action="rollback",
                                                                                 cooldown_seconds=3600)}),
                      outcome=Outcome.COOLDOWN), id="per-alert-cooldown-overrides-the-global-one"),
    pytest.param(Case(firing(), state=RegistryState(MODEL, BAD, GOOD, recent_rollbacks=(ago(600), ago(300), ago(60))),
                      outcome=Outcome.ROLLBACK_LIMIT, says="reach the limit of 3"),
                 id="rollback-limit-in-the-window-is-declined"),
    pytest.param(Case(firing(), state=RegistryState(MODEL, BAD, GOOD,
                                                    recent_rollbacks=(ago(3000), ago(2000), ago(60))),
                      policy=RollbackPolicy(max_rollbacks=3, max_rollbacks_window_seconds=3600)),
                 id="rollbacks-older-than-the-window-do-not-count"),
    pytest.param(Case(firing(), state=RegistryState(MODEL, BAD, GOOD, previous_load_error="no MLmodel file"),
                      outcome=Outcome.PREVIOUS_UNLOADABLE, says="does not load (no MLmodel file)"),
                 id="previous-version-that-fails-to-load-is-declined"),
    pytest.param(Case(firing(), policy=RollbackPolicy(dry_run=True), outcome=Outcome.DRY_RUN,
                      says="would roll back to v1"), id="dry-run-policy-decides-but-does-not-act"),
    pytest.param(Case(firing(), policy=RollbackPolicy(alerts={"HighErrorRate": AlertPolicy(action="rollback",
                                                                                           dry_run=True)}),
                      outcome=Outcome.DRY_RUN), id="per-alert-dry-run"),
    pytest.param(Case(firing(), state=RegistryState(MODEL, BAD, GOOD, previous_load_error="broken"),
                      policy=RollbackPolicy(dry_run=True), outcome=Outcome.PREVIOUS_UNLOADABLE),
                 id="dry-run-still-reports-an-unloadable-previous-version"),
]


@pytest.mark.parametrize("case", CASES)
def test_decide_rollback(case: Case) -> None:
    decision = decide_rollback(case.alert, case.state, NOW, case.policy)
    assert decision.outcome is case.outcome, decision.reason
    assert (decision.from_version, decision.to_version) == case.versions
    assert case.says in decision.reason
    assert decision.rolls_back == (case.outcome is Outcome.ROLLED_BACK)


def test_every_outcome_is_covered_by_the_table() -> None:
    covered = {p.values[0].outcome for p in CASES}
    assert covered == set(Outcome)


def test_the_first_reason_that_stops_a_rollback_is_the_one_recorded() -> None:
    # Quarantined previous, in cooldown and below the floor at once: the registry fact comes first.
    state = RegistryState(MODEL, BAD, version("1", quarantined=True), recent_rollbacks=(ago(1),))
    decision = decide_rollback(firing(), state, NOW, RollbackPolicy(floor_version=5))
    assert decision.outcome is Outcome.PREVIOUS_QUARANTINED


def test_decisions_that_need_no_registry_are_made_from_the_alert_alone() -> None:
    policy = RollbackPolicy()
    assert decide_from_alert(resolved(), MODEL, policy) is not None
    assert decide_from_alert(firing(alertname="FeatureDrift"), MODEL, policy) is not None
    assert decide_from_alert(firing(), MODEL, policy) is None  # depends on the registry


def test_cooldown_is_measured_from_the_newest_rollback() -> None:
    state = RegistryState(MODEL, BAD, GOOD, recent_rollbacks=(ago(29), ago(100)))
    assert decide_rollback(firing(), state, NOW, RollbackPolicy()).outcome is Outcome.COOLDOWN
    no_cooldown = RollbackPolicy(cooldown_seconds=0)
    assert decide_rollback(firing(), state, NOW, no_cooldown).outcome is Outcome.ROLLED_BACK
