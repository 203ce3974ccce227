"""The webhook's Prometheus metrics (names and labels from docs/contract.md), built on a registry passed in."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge

from driftwatch.http_metrics import HttpMetrics
from driftwatch.server_limits import ConnectionCloses
from rollback_webhook.decision import ALL_DECISION_LABELS


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry, model_name: str) -> None:
        # Connections closed by the server limits (driftwatch.server_limits), for uvicorn_options.
        self.connection_closes = ConnectionCloses(registry)
        self.registry = registry
        self.model_name = model_name
        self.rollbacks = Counter(
            "model_rollbacks",
            "Rollbacks of production done by the webhook: from_version is the release that was undone and "
            "quarantined, to_version the version serving now, alertname the alert that caused it.",
            ["model_name", "from_version", "to_version", "alertname"], registry=registry)
        self.decisions = Counter(
            "rollback_webhook_decisions",
            "Alerts the webhook answered, by decision: rolled_back, dry_run, resolved, declined_<reason> "
            "(see docs/rollback_webhook.md), duplicate (an incident already decided), registry_unavailable "
            "(answered 503 so Alertmanager retries) or error.",
            ["decision"], registry=registry)
        self.last_rollback = Gauge(
            "model_last_rollback_timestamp_seconds",
            "Unix time of the webhook's last rollback of this model (from its decision store, so it survives "
            "restarts); changes() of it marks rollbacks on dashboards.",
            ["model_name"], registry=registry)
        self.reloads = Counter(
            "rollback_webhook_serving_reloads",
            "Reload requests sent to serving instances after a rollback, by result (success, failure, skipped).",
            ["result"], registry=registry)
        self.http = HttpMetrics(registry)
        # Every series exists from the start, so rate() and alerts see the first increase.
        for label in ALL_DECISION_LABELS:
            self.decisions.labels(label)
        for result in ("success", "failure", "skipped"):
            self.reloads.labels(result)

    def count_decision(self, decision: str) -> None:
        self.decisions.labels(decision).inc()

    def count_rollback(self, from_version: str, to_version: str, alertname: str, at: datetime) -> None:
        self.rollbacks.labels(self.model_name, from_version, to_version, alertname).inc()
        self.last_rollback.labels(self.model_name).set(at.timestamp())

    def restore_last_rollback(self, at: datetime | None) -> None:
        if at is not None:
            self.last_rollback.labels(self.model_name).set(at.timestamp())
