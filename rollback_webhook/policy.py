"""The rollback policy: which alerts may undo a release, and the brakes that stop rollback loops.

Safe defaults: only ``HighErrorRate``, ``HighLatency`` and ``ModelQualityDegraded`` roll back
(symptoms a bad release causes and an older release cures; the last one from true labels); every
other alert name, even one labelled ``rollback="true"``, only notifies until it is named in the
policy. After an automatic rollback, further ones wait out a cooldown; at most ``max_rollbacks``
happen in a sliding window; a rollback never goes to a version below ``floor_version``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Action = Literal["rollback", "notify"]
# The defaults, in this one place (the settings and the policy model both take them from here).
DEFAULT_ROLLBACK_ALERTS = ("HighErrorRate", "HighLatency", "ModelQualityDegraded")
DEFAULT_UNKNOWN_ALERTS: Action = "notify"
DEFAULT_COOLDOWN_SECONDS = 1800.0
DEFAULT_MAX_ROLLBACKS = 3
DEFAULT_MAX_ROLLBACKS_WINDOW_SECONDS = 86400.0


class AlertPolicy(BaseModel):
    """What one alert name may do. Unset overrides fall back to the policy's global values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Action
    cooldown_seconds: float | None = Field(default=None, ge=0)
    dry_run: bool | None = None


class AlertRule(BaseModel):
    """The policy resolved for one alert name."""

    model_config = ConfigDict(frozen=True)

    alertname: str
    action: Action
    cooldown_seconds: float
    dry_run: bool
    named: bool  # False: the alert name is not in the policy and got the default for unknown alerts


def _default_alerts() -> dict[str, AlertPolicy]:
    return {name: AlertPolicy(action="rollback") for name in DEFAULT_ROLLBACK_ALERTS}


class RollbackPolicy(BaseModel):
    """Per-alert actions plus the global brakes. The defaults are the safe choice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alerts: Mapping[str, AlertPolicy] = Field(default_factory=_default_alerts)
    unknown_alerts: Action = DEFAULT_UNKNOWN_ALERTS
    cooldown_seconds: float = Field(default=DEFAULT_COOLDOWN_SECONDS, ge=0)
    floor_version: int | None = Field(default=None, ge=1)
    max_rollbacks: int = Field(default=DEFAULT_MAX_ROLLBACKS, ge=1)
    max_rollbacks_window_seconds: float = Field(default=DEFAULT_MAX_ROLLBACKS_WINDOW_SECONDS, ge=0)
    dry_run: bool = False

    def rule_for(self, alertname: str) -> AlertRule:
        entry = self.alerts.get(alertname)
        action = entry.action if entry is not None else self.unknown_alerts
        cooldown = entry.cooldown_seconds if entry is not None and entry.cooldown_seconds is not None \
            else self.cooldown_seconds
        dry_run = entry.dry_run if entry is not None and entry.dry_run is not None else self.dry_run
        return AlertRule(alertname=alertname, action=action, cooldown_seconds=cooldown, dry_run=dry_run,
                         named=entry is not None)

    def describe(self) -> dict[str, Any]:
        """For logs and /health: the policy as plain data."""
        return {
            "alerts": {name: entry.model_dump(exclude_none=True) for name, entry in sorted(self.alerts.items())},
            "unknown_alerts": self.unknown_alerts,
            "cooldown_seconds": self.cooldown_seconds,
            "floor_version": self.floor_version,
            "max_rollbacks": self.max_rollbacks,
            "max_rollbacks_window_seconds": self.max_rollbacks_window_seconds,
            "dry_run": self.dry_run,
        }


class PolicyFileError(ValueError):
    """The policy file cannot be used; the message names the file and the problem."""


def load_alert_policies(path: Path) -> dict[str, AlertPolicy]:
    """Per-alert entries from a YAML file::

        alerts:
          HighErrorRate: {action: rollback}
          HighLatency: {action: rollback, cooldown_seconds: 3600}
          CanaryErrors: {action: rollback, dry_run: true}
          FeatureDrift: {action: notify}
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PolicyFileError(f"policy file {path} cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"policy file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or set(raw) != {"alerts"} or not isinstance(raw["alerts"], dict):
        raise PolicyFileError(f"policy file {path} must be a mapping with one key, 'alerts', mapping alert names "
                              "to {action: rollback|notify, cooldown_seconds: N, dry_run: true|false}")
    result: dict[str, AlertPolicy] = {}
    for name, entry in raw["alerts"].items():
        try:
            result[str(name)] = AlertPolicy.model_validate(entry)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}"
                                 for e in exc.errors())
            raise PolicyFileError(f"policy file {path}, alert {name!r}: {problems}") from None
    return result
