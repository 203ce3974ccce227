"""A registry double with the real rollback rules (model_registry.rollback), payload fixtures, helpers."""

from __future__ import annotations

import copy
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model_registry import RollbackResult, VersionInfo
from model_registry.errors import RegistryError, RegistryUnavailable, VersionNotFound
from model_registry.rollback import choose_rollback_target
from model_registry.versions import (
    TAG_PREVIOUS_VERSION,
    TAG_QUARANTINE_ALERT,
    TAG_QUARANTINE_INCIDENT,
    TAG_QUARANTINE_REASON,
    TAG_QUARANTINED,
    TAG_QUARANTINED_AT,
    TAG_QUARANTINED_BY,
    TAG_ROLLED_BACK_TO,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "alertmanager"
MODEL = "iris-classifier"
TOKEN = "test-token-0123456789abcdef"


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def with_alert(payload: dict[str, Any], index: int = 0, *, labels: dict[str, str | None] | None = None,
               **fields: Any) -> dict[str, Any]:
    """A copy of ``payload`` with one alert's labels (None deletes) or fields changed."""
    out = copy.deepcopy(payload)
    alert = out["alerts"][index]
    for key, value in (labels or {}).items():
        if value is None:
            alert["labels"].pop(key, None)
        else:
            alert["labels"][key] = value
    alert.update(fields)
    return out


def version(number: str, *, previous: str | None = None, quarantined: bool = False,
            rolled_back_to: str | None = None, alert: str | None = None) -> VersionInfo:
    tags: dict[str, str] = {}
    if previous is not None:
        tags[TAG_PREVIOUS_VERSION] = previous
    if quarantined:
        tags.update({TAG_QUARANTINED: "true", TAG_QUARANTINE_REASON: "bad release",
                     TAG_QUARANTINED_AT: "2026-01-01T12:01:00+00:00", TAG_QUARANTINED_BY: "test"})
    if rolled_back_to is not None:
        tags[TAG_ROLLED_BACK_TO] = rolled_back_to
    if alert is not None:
        tags[TAG_QUARANTINE_ALERT] = alert
    return VersionInfo(name=MODEL, version=number, run_id=f"run-{number}", source=f"models:/m/{number}",
                       created_at=datetime(2026, 1, 1, tzinfo=UTC), tags=tags)


class FakeRegistry:
    """Versions in memory; ``rollback`` follows the real target rules and tags like ModelRegistry."""

    def __init__(self, versions: list[VersionInfo], production: str | None) -> None:
        self.versions = {v.version: v for v in versions}
        self.production = production
        self.unavailable = False
        self.unloadable: dict[str, str] = {}
        self.rollback_delay = 0.0
        self.rollback_calls: list[dict[str, Any]] = []
        self.load_checks: list[str] = []
        self.reads = 0
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.unavailable:
            raise RegistryUnavailable("the registry at http://127.0.0.1:1 cannot be reached (test)")

    def production_version(self, *, with_metrics: bool = True) -> VersionInfo | None:
        self._check()
        self.reads += 1
        return None if self.production is None else self.versions[self.production]

    def get_version(self, version: str, *, with_metrics: bool = True) -> VersionInfo:
        self._check()
        if version not in self.versions:
            raise VersionNotFound(f"version {version} does not exist")
        return self.versions[version]

    def check_loadable(self, version: str) -> None:
        self._check()
        self.load_checks.append(version)
        if version in self.unloadable:
            raise RegistryError(self.unloadable[version])

    def rollback(self, *, to: str | None = None, reason: str, actor: str, alertname: str | None = None,
                 expected_current: str | None = None, incident: str | None = None) -> RollbackResult:
        self._check()
        # Read, wait, write: like MLflow, not atomic; the webhook must serialise callers itself.
        current = None if self.production is None else self.versions[self.production]
        target = choose_rollback_target(current, self.versions, requested=to, expected_current=expected_current)
        assert current is not None
        if self.rollback_delay:
            time.sleep(self.rollback_delay)
        with self._lock:
            self.rollback_calls.append({"to": to, "reason": reason, "actor": actor, "alertname": alertname,
                                        "expected_current": expected_current})
            tags = dict(current.tags)
            tags.update({TAG_QUARANTINED: "true", TAG_QUARANTINE_REASON: reason, TAG_QUARANTINED_BY: actor,
                         TAG_QUARANTINED_AT: "2026-01-01T12:05:00+00:00", TAG_ROLLED_BACK_TO: target.version})
            if alertname:
                tags[TAG_QUARANTINE_ALERT] = alertname
            if incident:
                tags[TAG_QUARANTINE_INCIDENT] = incident
            self.versions[current.version] = VersionInfo(
                name=current.name, version=current.version, run_id=current.run_id, source=current.source,
                created_at=current.created_at, tags=tags)
            self.production = target.version
        return RollbackResult(from_version=current.version, to_version=target.version)


def bad_release() -> FakeRegistry:
    """v1 good, v2 promoted over it and in production."""
    return FakeRegistry([version("1"), version("2", previous="1")], production="2")


class RecordingReloader:
    def __init__(self) -> None:
        self.calls = 0

    def reload_all(self) -> list[dict[str, Any]]:
        self.calls += 1
        return [{"url": "http://serving.test", "result": "success", "status": 200}]
