"""Alertmanager's webhook payload, version 4, as pydantic models.

Required is what a decision needs (``version``, ``status``, ``alerts`` and, per alert, ``status``,
``labels`` and ``startsAt``); the rest is kept for the record when present. Fields Alertmanager
may add later are ignored rather than refused, so an upgrade never turns alerts into 4xx answers.

Values that are well-formed but absurd (a ``model_version`` no registry can hold, a ``startsAt`` in
year 1 or 9999 that has no UTC equivalent) are accepted here and declined per alert by the
decision, so one such alert never blocks the genuine alerts of the same delivery (issue #15).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

AlertStatus = Literal["firing", "resolved"]
MAX_ALERTS = 1000
# Registry versions are positive integers stored as 64-bit signed SQL integers (MLflow).
MAX_REGISTRY_VERSION = 2**63 - 1
_VERSION_TEXT = re.compile(r"[0-9]{1,19}")


def is_registry_version(text: str) -> bool:
    """True when ``text`` could name a registry version: a whole number from 1 to 2^63-1."""
    return _VERSION_TEXT.fullmatch(text) is not None and 1 <= int(text) <= MAX_REGISTRY_VERSION


def utc_text(moment: datetime) -> str:
    """``moment`` in UTC to the microsecond; a moment with no UTC equivalent (year 1 east of UTC,
    year 9999 west of it) keeps its own offset rather than raising."""
    try:
        return moment.astimezone(UTC).isoformat(timespec="microseconds")
    except OverflowError:
        return moment.isoformat(timespec="microseconds")


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def model_name(self) -> str | None:
        return self.labels.get("model_name") or None

    @property
    def model_version(self) -> str | None:
        return self.labels.get("model_version") or None

    @property
    def wants_rollback(self) -> bool:
        return self.labels.get("rollback", "").strip().lower() == "true"

    @property
    def incident_key(self) -> str:
        """One incident: the same alert on the same version since the same moment. Alertmanager HA
        peers, retries and ``repeat_interval`` re-sends all carry the same key; a new firing of the
        same alert has a new ``startsAt`` and so a new key (``fingerprint`` would not change)."""
        return "|".join((self.alertname, self.model_name or "", self.model_version or "", utc_text(self.starts_at)))


class AlertmanagerPayload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    version: Literal["4"]
    status: AlertStatus
    alerts: list[Alert] = Field(max_length=MAX_ALERTS)
    receiver: str = ""
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
