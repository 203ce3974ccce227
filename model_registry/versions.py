"""What Driftwatch knows about one model version, and the tag names it keeps on versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

TAG_PREFIX = "driftwatch."
TAG_PREVIOUS_VERSION = "driftwatch.previous_version"
TAG_PROMOTED_AT = "driftwatch.promoted_at"
TAG_PROMOTED_BY = "driftwatch.promoted_by"
TAG_PROMOTION_REASON = "driftwatch.promotion_reason"
TAG_QUARANTINED = "driftwatch.quarantined"
TAG_QUARANTINE_REASON = "driftwatch.quarantine_reason"
TAG_QUARANTINED_AT = "driftwatch.quarantined_at"
TAG_QUARANTINED_BY = "driftwatch.quarantined_by"
TAG_QUARANTINE_ALERT = "driftwatch.quarantine_alert"
TAG_ROLLED_BACK_TO = "driftwatch.rolled_back_to"
TAG_QUARANTINE_INCIDENT = "driftwatch.quarantine_incident"  # the webhook's incident key (alert, version, startsAt)
TAG_FAULT = "driftwatch.fault"
TAG_MODEL_KIND = "driftwatch.model"
TAG_TASK = "driftwatch.task"  # classification | regression (model_registry.tasks)

QUARANTINE_TAGS = (
    TAG_QUARANTINED, TAG_QUARANTINE_REASON, TAG_QUARANTINED_AT, TAG_QUARANTINED_BY,
    TAG_QUARANTINE_ALERT, TAG_ROLLED_BACK_TO, TAG_QUARANTINE_INCIDENT,
)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str | None
    source: str
    created_at: datetime
    aliases: tuple[str, ...] = ()
    stage: str = "None"
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def quarantined(self) -> bool:
        return self.tags.get(TAG_QUARANTINED, "").lower() == "true"

    @property
    def quarantine_reason(self) -> str | None:
        return self.tags.get(TAG_QUARANTINE_REASON) if self.quarantined else None

    @property
    def previous_version(self) -> str | None:
        return self.tags.get(TAG_PREVIOUS_VERSION) or None

    @property
    def fault(self) -> str | None:
        return self.tags.get(TAG_FAULT) or None

    @property
    def task(self) -> str | None:
        return self.tags.get(TAG_TASK) or None

    @property
    def number(self) -> int:
        return int(self.version)


@dataclass(frozen=True)
class PromotionResult:
    version: str
    previous: str | None
    changed: bool = True


@dataclass(frozen=True)
class RollbackResult:
    from_version: str
    to_version: str
