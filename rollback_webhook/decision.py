"""Whether one alert should roll production back: a pure function of the alert, the registry state,
the time and the policy. No I/O here; ``rollback_webhook.service`` gathers the state and acts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from model_registry import VersionInfo
from model_registry.versions import (
    TAG_QUARANTINE_ALERT,
    TAG_QUARANTINE_INCIDENT,
    TAG_QUARANTINED_AT,
    TAG_ROLLED_BACK_TO,
)
from rollback_webhook.payload import Alert, is_registry_version
from rollback_webhook.policy import RollbackPolicy


class Outcome(StrEnum):
    """One named outcome per case; the value is the ``decision`` label and the stored decision."""

    ROLLED_BACK = "rolled_back"
    DRY_RUN = "dry_run"
    RESOLVED = "resolved"
    NOT_LABELLED = "declined_not_labelled"
    UNKNOWN_MODEL = "declined_unknown_model"
    NOTIFY_ONLY = "declined_notify_only"
    NO_PRODUCTION = "declined_no_production"
    NOT_PRODUCTION = "declined_not_production"
    NO_PREVIOUS = "declined_no_previous"
    PREVIOUS_MISSING = "declined_previous_missing"
    PREVIOUS_QUARANTINED = "declined_previous_quarantined"
    BELOW_FLOOR = "declined_below_floor"
    COOLDOWN = "declined_cooldown"
    ROLLBACK_LIMIT = "declined_rollback_limit"
    PREVIOUS_UNLOADABLE = "declined_previous_unloadable"


# Answers that are not decisions about an alert but are counted next to them.
DUPLICATE = "duplicate"
REGISTRY_UNAVAILABLE = "registry_unavailable"
ERROR = "error"
ALL_DECISION_LABELS = (*(o.value for o in Outcome), DUPLICATE, REGISTRY_UNAVAILABLE, ERROR)


@dataclass(frozen=True)
class RegistryState:
    """What the decision needs to know about the world, read just before deciding.

    ``previous`` is the version production's ``driftwatch.previous_version`` tag names (None when
    there is no tag or that version does not exist); ``alerted`` is the version the alert names
    when it is not production (for a useful reason); ``previous_load_error`` says why the previous
    version does not load (None: it loads, or was not checked yet); ``recent_rollbacks`` are the
    times of this webhook's rollbacks of the model, from the decision store.
    """

    model_name: str
    production: VersionInfo | None
    previous: VersionInfo | None = None
    alerted: VersionInfo | None = None
    previous_load_error: str | None = None
    recent_rollbacks: tuple[datetime, ...] = ()


@dataclass(frozen=True)
class RollbackDecision:
    outcome: Outcome
    reason: str
    from_version: str | None = None
    to_version: str | None = None

    already_done: bool = False  # rolled back by an earlier delivery that died before recording it

    @property
    def rolls_back(self) -> bool:
        """The registry must be told to roll back (not when an earlier delivery already did)."""
        return self.outcome is Outcome.ROLLED_BACK and not self.already_done

    @property
    def would_roll_back(self) -> bool:
        """Rolls back, or would if the policy were not a dry run."""
        return self.outcome in (Outcome.ROLLED_BACK, Outcome.DRY_RUN)


def decide_rollback(alert: Alert, state: RegistryState, now: datetime, policy: RollbackPolicy) -> RollbackDecision:
    """The decision for one alert. Checks run from what the alert says, through the policy, to the
    registry, so the recorded reason is the first thing that stops a rollback."""
    early = decide_from_alert(alert, state.model_name, policy)
    if early is not None:
        return early
    name = alert.alertname or "(no alertname)"
    version = alert.model_version
    assert version is not None  # decide_from_alert declines alerts without one
    rule = policy.rule_for(alert.alertname)

    production = state.production
    if production is None:
        return RollbackDecision(Outcome.NO_PRODUCTION,
                                f"{name} on v{version}, but no version of {state.model_name!r} is in production")
    current = production.version
    if current != version and _rolled_back_by_this_incident(alert, state.alerted, current):
        return RollbackDecision(
            Outcome.ROLLED_BACK,
            f"{name} on v{version}: rolled back to v{current} by an earlier delivery of this incident whose "
            "process or store stopped before recording it; recorded now",
            from_version=version, to_version=current, already_done=True)
    if current != version:
        return RollbackDecision(Outcome.NOT_PRODUCTION, _not_production_reason(name, version, current, state.alerted),
                                from_version=version)
    previous = production.previous_version
    if previous is None:
        return RollbackDecision(Outcome.NO_PREVIOUS,
                                f"{name} on v{current}, but v{current} has no recorded previous version",
                                from_version=current)
    if state.previous is None or state.previous.version != previous:
        return RollbackDecision(Outcome.PREVIOUS_MISSING,
                                f"{name} on v{current}: its previous version v{previous} does not exist",
                                from_version=current, to_version=previous)
    if state.previous.quarantined:
        return RollbackDecision(
            Outcome.PREVIOUS_QUARANTINED,
            f"{name} on v{current}: its previous version v{previous} is quarantined "
            f"({state.previous.quarantine_reason or 'no reason recorded'})",
            from_version=current, to_version=previous)
    if policy.floor_version is not None and int(previous) < policy.floor_version:
        return RollbackDecision(
            Outcome.BELOW_FLOOR,
            f"{name} on v{current}: its previous version v{previous} is below the floor v{policy.floor_version}",
            from_version=current, to_version=previous)
    last = max(state.recent_rollbacks, default=None)
    if last is not None and now - last < timedelta(seconds=rule.cooldown_seconds):
        wait = rule.cooldown_seconds - (now - last).total_seconds()
        return RollbackDecision(
            Outcome.COOLDOWN,
            f"{name} on v{current}: the last automatic rollback was {(now - last).total_seconds():.0f} s ago, "
            f"within the {rule.cooldown_seconds:.0f} s cooldown ({wait:.0f} s left); a person should look",
            from_version=current, to_version=previous)
    window_start = now - timedelta(seconds=policy.max_rollbacks_window_seconds)
    in_window = sum(1 for t in state.recent_rollbacks if t > window_start)
    if in_window >= policy.max_rollbacks:
        return RollbackDecision(
            Outcome.ROLLBACK_LIMIT,
            f"{name} on v{current}: {in_window} automatic rollbacks in the last "
            f"{policy.max_rollbacks_window_seconds:.0f} s reach the limit of {policy.max_rollbacks}; "
            "a person should look",
            from_version=current, to_version=previous)
    if state.previous_load_error is not None:
        return RollbackDecision(
            Outcome.PREVIOUS_UNLOADABLE,
            f"{name} on v{current}: its previous version v{previous} does not load ({state.previous_load_error})",
            from_version=current, to_version=previous)
    if rule.dry_run:
        return RollbackDecision(Outcome.DRY_RUN, f"dry run: {name} on v{current} would roll back to v{previous}",
                                from_version=current, to_version=previous)
    return RollbackDecision(Outcome.ROLLED_BACK, f"{name} on v{current}: rolled back to v{previous}",
                            from_version=current, to_version=previous)


def decide_from_alert(alert: Alert, model_name: str, policy: RollbackPolicy) -> RollbackDecision | None:
    """The decision when the alert and the policy alone settle it (resolved, not labelled, another
    model, notify only); None when it depends on the registry. Saves registry calls for alerts the
    webhook would decline anyway."""
    name = alert.alertname or "(no alertname)"
    if alert.status == "resolved":
        return RollbackDecision(Outcome.RESOLVED, f"{name} resolved; a resolved alert never rolls back")
    if not alert.wants_rollback:
        return RollbackDecision(Outcome.NOT_LABELLED,
                                f'{name} is not labelled rollback="true"; it is for people, not for the webhook')
    if alert.model_name is None or alert.model_version is None:
        return RollbackDecision(Outcome.UNKNOWN_MODEL,
                                f"{name} has no model_name and model_version labels, so it names no release to undo")
    if alert.model_name != model_name:
        return RollbackDecision(Outcome.UNKNOWN_MODEL,
                                f"{name} is about model {alert.model_name!r}; this webhook watches {model_name!r}")
    if not is_registry_version(alert.model_version):
        return RollbackDecision(Outcome.UNKNOWN_MODEL,
                                f"{name} names model_version {alert.model_version[:40]!r}, which no registry version "
                                "can be (a whole number from 1 to 2^63-1), so it names no release to undo")
    rule = policy.rule_for(alert.alertname)
    if rule.action == "notify":
        why = "the policy says notify only" if rule.named else "it is not in the policy, and unknown alerts only notify"
        return RollbackDecision(Outcome.NOTIFY_ONLY, f"{name} on v{alert.model_version}: {why}")
    return None


def _rolled_back_by_this_incident(alert: Alert, alerted: VersionInfo | None, production: str) -> bool:
    """The registry shows this incident's rollback (quarantine tag with its key, production on the
    target) but the store has no record of it: a webhook acted, then died before its commit."""
    return (alerted is not None and alerted.quarantined
            and alerted.tags.get(TAG_QUARANTINE_INCIDENT) == alert.incident_key
            and alerted.tags.get(TAG_ROLLED_BACK_TO) == production)


def _not_production_reason(name: str, version: str, current: str, alerted: VersionInfo | None) -> str:
    if alerted is not None and alerted.quarantined and alerted.tags.get(TAG_ROLLED_BACK_TO):
        by_alert = alerted.tags.get(TAG_QUARANTINE_ALERT) or "a manual rollback"
        when = alerted.tags.get(TAG_QUARANTINED_AT) or "an unknown time"
        return (f"{name} on v{version}, but v{version} was already rolled back to "
                f"v{alerted.tags[TAG_ROLLED_BACK_TO]} ({by_alert}, {when}); production is v{current}")
    return f"{name} on v{version}, but production is v{current}: the alert is stale"
