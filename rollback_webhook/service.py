"""One delivery, alert by alert: look the incident up, decide, act, record — exactly once.

Per alert, under a process lock (threads) and inside a store write transaction (processes):
  1. an incident already in the store is a duplicate: count the delivery, answer its decision;
  2. otherwise gather the registry state, decide (pure), and roll back when the decision says so;
  3. record the decision; the commit makes it final.
An unreachable registry raises ``RegistryUnreachable`` out of the transaction, so nothing is
recorded and Alertmanager's retry decides afresh. Serving is told to reload after the commit,
outside the lock (best effort, it also polls).

Every alert of a delivery is decided before the answer: an alert that fails for a reason a retry
cannot cure (any other registry error, a bug) is answered as ``error`` and not recorded (a later
re-send is decided afresh), and the others are still decided; the answer is 503 only when some
alert needs a retry (registry unreachable, store busy), after the rest have been decided.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from driftwatch.clock import utc_now
from model_registry.errors import RegistryUnavailable, RollbackRefused, VersionNotFound
from rollback_webhook.actions import ACTOR, RegistryPort, Reloader, load_error, read_versions
from rollback_webhook.decision import (
    DUPLICATE,
    ERROR,
    REGISTRY_UNAVAILABLE,
    Outcome,
    RegistryState,
    RollbackDecision,
    decide_from_alert,
    decide_rollback,
)
from rollback_webhook.metrics import WebhookMetrics
from rollback_webhook.payload import Alert, AlertmanagerPayload
from rollback_webhook.policy import RollbackPolicy
from rollback_webhook.store import (
    DecisionRecord,
    DecisionStorePort,
    NewDecision,
    StoreBusyError,
    StoreUnavailableError,
    TransactionPort,
)

log = logging.getLogger("rollback_webhook")
MAX_QUARANTINE_REASON_CHARS = 500

# The registry re-checks the target when it acts; a refusal then means the world changed between
# reading and acting (another rollback or promotion won the race).
REFUSAL_OUTCOMES = {
    "no_production": Outcome.NO_PRODUCTION,
    "production_changed": Outcome.NOT_PRODUCTION,
    "same_version": Outcome.NOT_PRODUCTION,
    "no_previous": Outcome.NO_PREVIOUS,
    "target_missing": Outcome.PREVIOUS_MISSING,
    "target_quarantined": Outcome.PREVIOUS_QUARANTINED,
}


# Failures of the decision store itself (not of one alert): the whole delivery fails and is retried.
STORE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)


class RetryLater(Exception):
    """Nothing was recorded and a retry is useful: the answer is 503."""


class RegistryUnreachable(RetryLater):
    """The registry could not be reached or failed."""


class StoreBusy(RetryLater):
    """Another webhook process held the decision store longer than the busy timeout."""


class StoreDown(RetryLater):
    """The decision store cannot be reached (PostgreSQL down): nothing was recorded."""


@dataclass(frozen=True)
class AlertResult:
    """The answer about one alert of a delivery."""

    record: DecisionRecord
    decision: str  # the record's decision, or "duplicate"
    reason: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, for the log

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "decision": self.decision, "reason": self.reason, "incident_key": r.incident_key,
            "alertname": r.alertname, "status": r.alert_status, "model_name": r.model_name,
            "model_version": r.model_version, "from_version": r.from_version, "to_version": r.to_version,
            "decided_at": r.to_dict()["decided_at"], "recorded_decision": r.decision, "deliveries": r.deliveries,
        }


class RollbackService:
    def __init__(self, *, model_name: str, policy: RollbackPolicy, registry: RegistryPort, store: DecisionStorePort,
                 metrics: WebhookMetrics, reloader: Reloader, clock: Callable[[], datetime] = utc_now,
                 reload_in_background: bool = True) -> None:
        self.model_name = model_name
        self.policy = policy
        self.registry = registry
        self.store = store
        self.metrics = metrics
        self.reloader = reloader
        self.reload_in_background = reload_in_background
        self._reload_threads: list[threading.Thread] = []
        self.clock = clock
        self._lock = threading.Lock()

    def handle(self, payload: AlertmanagerPayload) -> list[AlertResult]:
        """Decide every alert of the delivery in order. Raises the first ``RetryLater`` (an alert that
        needs an unreachable registry or found the store busy) only after every other alert has been
        decided and recorded; an alert that fails otherwise is answered as ``error``."""
        if payload.truncated_alerts:
            log.warning("Alertmanager truncated the delivery; the missing alerts cannot be decided",
                        extra={"truncated_alerts": payload.truncated_alerts, "receiver": payload.receiver})
        results: list[AlertResult] = []
        retry: RetryLater | None = None
        for alert in payload.alerts:
            try:
                results.append(self.handle_alert(alert, payload))
            except RetryLater as exc:
                retry = retry or exc
            except STORE_ERRORS:
                raise  # the store fails every alert alike: 500, and Alertmanager retries the delivery
            except Exception as exc:  # counted and logged by handle_alert; the other alerts still count
                results.append(self._undecided(alert, payload, exc))
        if retry is not None:
            raise retry
        return results

    def _undecided(self, alert: Alert, payload: AlertmanagerPayload, exc: Exception) -> AlertResult:
        """The answer about an alert that could not be decided (nothing recorded)."""
        now = self.clock().timestamp()
        reason = f"could not be decided ({type(exc).__name__}: {str(exc)[:300]}); not recorded, a re-send is decided " \
                 "afresh"
        record = DecisionRecord(
            id=0, incident_key=alert.incident_key, alert_status=alert.status, decision=ERROR, reason=reason,
            decided_at=now, alertname=alert.alertname, model_name=alert.model_name, model_version=alert.model_version,
            starts_at=alert.starts_at.isoformat(), fingerprint=alert.fingerprint, from_version=None, to_version=None,
            receiver=payload.receiver, group_key=payload.group_key, deliveries=0, last_delivery_at=now, reloads=None)
        return AlertResult(record, ERROR, reason)

    def handle_alert(self, alert: Alert, payload: AlertmanagerPayload) -> AlertResult:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        try:
            with self._lock:
                timings["wait"] = time.perf_counter() - started
                result = self._decide_once(alert, payload, timings)
        except RegistryUnreachable:
            self.metrics.count_decision(REGISTRY_UNAVAILABLE)
            raise
        except StoreUnavailableError as exc:
            self.metrics.count_decision(ERROR)
            log.warning("decision store unavailable", extra={"incident_key": alert.incident_key, "error": str(exc)})
            raise StoreDown(f"{exc}; retry later") from exc
        except StoreBusyError as exc:
            self.metrics.count_decision(ERROR)
            log.warning("decision store busy", extra={"incident_key": alert.incident_key, "error": str(exc)})
            raise StoreBusy(f"the decision store is busy ({exc}); retry later") from exc
        except sqlite3.OperationalError as exc:
            self.metrics.count_decision(ERROR)
            if "locked" not in str(exc) and "busy" not in str(exc):
                log.exception("the decision store failed", extra={"incident_key": alert.incident_key})
                raise
            # Another process is deciding, slowly (a slow registry); its decision will be final.
            log.warning("decision store busy", extra={"incident_key": alert.incident_key, "error": str(exc)})
            raise StoreBusy(f"the decision store is busy ({exc}); retry later") from exc
        except Exception:
            self.metrics.count_decision(ERROR)
            log.exception("deciding an alert failed", extra={"incident_key": alert.incident_key})
            raise
        self.metrics.count_decision(result.decision)
        record = result.record
        if result.decision == Outcome.ROLLED_BACK:
            assert record.from_version is not None and record.to_version is not None
            self.metrics.count_rollback(record.from_version, record.to_version, record.alertname,
                                        datetime.fromtimestamp(record.decided_at, tz=UTC))
            self._start_reload(record)
        timings["total"] = time.perf_counter() - started
        level = logging.WARNING if result.decision == Outcome.ROLLED_BACK else logging.INFO
        log.log(level, result.reason, extra={
            "decision": result.decision, "incident_key": record.incident_key, "deliveries": record.deliveries,
            "seconds": {k: round(v, 4) for k, v in timings.items()}})
        return replace(result, timings=timings)

    # ------------------------------------------------------------------ inside the lock
    def _decide_once(self, alert: Alert, payload: AlertmanagerPayload, timings: dict[str, float]) -> AlertResult:
        key = alert.incident_key
        now = self.clock()
        with self.store.transaction() as tx:
            existing = tx.find(key, alert.status)
            if existing is not None:
                tx.count_delivery(existing.id, now)
                counted = replace(existing, deliveries=existing.deliveries + 1, last_delivery_at=now.timestamp())
                return AlertResult(counted, DUPLICATE,
                                   f"incident already decided at {counted.to_dict()['decided_at']}: {existing.decision}"
                                   f" ({existing.reason}); delivery {counted.deliveries}")
            decision = self._decide(alert, tx, now, timings)
            if decision.rolls_back:
                step = time.perf_counter()
                decision = self._roll_back(alert, decision)
                timings["rollback"] = time.perf_counter() - step
            record = tx.insert(NewDecision(
                incident_key=key, alert_status=alert.status, decision=decision.outcome.value, reason=decision.reason,
                decided_at=now, alertname=alert.alertname, model_name=alert.model_name,
                model_version=alert.model_version, starts_at=alert.starts_at.isoformat(),
                fingerprint=alert.fingerprint, from_version=decision.from_version, to_version=decision.to_version,
                receiver=payload.receiver, group_key=payload.group_key,
            ))
        return AlertResult(record, record.decision, record.reason)

    def _decide(self, alert: Alert, tx: TransactionPort, now: datetime,
                timings: dict[str, float]) -> RollbackDecision:
        early = decide_from_alert(alert, self.model_name, self.policy)
        if early is not None:
            return early
        rule = self.policy.rule_for(alert.alertname)
        lookback = max(self.policy.max_rollbacks_window_seconds, rule.cooldown_seconds)
        recent = tx.rollback_times(self.model_name, now - timedelta(seconds=lookback))
        try:
            step = time.perf_counter()
            versions = read_versions(self.registry, alert.model_version)
            timings["read_registry"] = time.perf_counter() - step
            state = RegistryState(model_name=self.model_name, production=versions.production,
                                  previous=versions.previous, alerted=versions.alerted, recent_rollbacks=recent)
            decision = decide_rollback(alert, state, now, self.policy)
            # Loading a model is the slow check: only when everything else says roll back.
            if decision.would_roll_back and decision.to_version is not None:
                step = time.perf_counter()
                error = load_error(self.registry, decision.to_version)
                timings["load_check"] = time.perf_counter() - step
                if error is not None:
                    decision = decide_rollback(alert, replace(state, previous_load_error=error), now, self.policy)
        except RegistryUnavailable as exc:
            raise RegistryUnreachable(str(exc)) from exc
        return decision

    def _roll_back(self, alert: Alert, decision: RollbackDecision) -> RollbackDecision:
        summary = alert.annotations.get("summary", "")
        reason = f"{alert.alertname} firing on v{decision.from_version} since {alert.starts_at.isoformat()}"
        if summary:
            reason += f": {summary}"
        try:
            result = self.registry.rollback(
                to=decision.to_version, reason=reason[:MAX_QUARANTINE_REASON_CHARS], actor=ACTOR,
                alertname=alert.alertname, expected_current=decision.from_version, incident=alert.incident_key)
        except RollbackRefused as exc:
            outcome = REFUSAL_OUTCOMES.get(exc.code, Outcome.NOT_PRODUCTION)
            return RollbackDecision(outcome, f"the registry refused the rollback ({exc.code}): {exc}",
                                    from_version=decision.from_version, to_version=decision.to_version)
        except VersionNotFound as exc:
            return RollbackDecision(Outcome.NO_PRODUCTION, f"the registry refused the rollback: {exc}",
                                    from_version=decision.from_version, to_version=decision.to_version)
        except RegistryUnavailable as exc:
            raise RegistryUnreachable(str(exc)) from exc
        return RollbackDecision(
            Outcome.ROLLED_BACK,
            f"{alert.alertname} on v{result.from_version}: rolled back to v{result.to_version}; "
            f"v{result.from_version} quarantined",
            from_version=result.from_version, to_version=result.to_version)

    # ------------------------------------------------------------------ after the commit
    def _start_reload(self, record: DecisionRecord) -> None:
        """Serving loads the model before it answers a reload, which can take longer than
        Alertmanager waits for the webhook: the answer does not wait for it."""
        if not self.reload_in_background:
            self._reload_serving(record)
            return
        thread = threading.Thread(target=self._reload_serving, args=(record,), name="serving-reload", daemon=True)
        self._reload_threads = [t for t in self._reload_threads if t.is_alive()] + [thread]
        thread.start()

    def join_reloads(self, timeout: float | None = None) -> None:
        """Wait for reloads started so far (tests, and a clean shutdown)."""
        for thread in list(self._reload_threads):
            thread.join(timeout)

    def _reload_serving(self, record: DecisionRecord) -> None:
        started = time.perf_counter()
        try:
            reloads = self.reloader.reload_all()
        except Exception:  # best effort: serving polls anyway
            log.exception("telling serving to reload failed")
            return
        for entry in reloads:
            self.metrics.reloads.labels(str(entry.get("result", "failure"))).inc()
        if reloads:
            try:
                self.store.set_reloads(record.id, reloads)
            except (sqlite3.Error, StoreUnavailableError):
                log.exception("recording the reload results failed", extra={"incident_key": record.incident_key})
            log.info("serving told to reload", extra={"reloads": reloads, "incident_key": record.incident_key,
                                                      "seconds": round(time.perf_counter() - started, 4)})
