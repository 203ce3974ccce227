"""Alertmanager's webhook payload, version 4, as pydantic models.

Required is what a decision needs (``version``, ``status``, ``alerts`` and, per alert, ``status``,
``labels`` and ``startsAt``); the rest is kept for the record when present. Fields Alertmanager
may add later are ignored rather than refused, so an upgrade never turns alerts into 4xx answers.
"""

from __future__ import annotations

from datetime import UTC
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

AlertStatus = Literal["firing", "resolved"]
MAX_ALERTS = 1000


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
        started = self.starts_at.astimezone(UTC).isoformat(timespec="microseconds")
        return "|".join((self.alertname, self.model_name or "", self.model_version or "", started))


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
