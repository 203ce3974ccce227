"""The floor of the time to recover, read from a rendered stack configuration."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from monitoring.durations import parse_duration


def _rules(monitoring_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(monitoring_dir.rglob("*.y*ml")):
        doc = yaml.safe_load(path.read_text()) or {}
        if isinstance(doc, dict):
            for group in doc.get("groups") or []:
                yield from group.get("rules") or []


def _route_for(route: dict[str, Any], labels: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Routes in the tree that match ``labels`` (simple ``matchers`` of the form a="b" or a=b)."""
    for child in route.get("routes") or []:
        matchers = child.get("matchers") or []
        match = all(_matches(m, labels) for m in matchers)
        match = match and all(labels.get(k) == str(v) for k, v in (child.get("match") or {}).items())
        if match:
            yield {**route, **child}
            yield from _route_for({**route, **child}, labels)


def _matches(matcher: str, labels: dict[str, str]) -> bool:
    m = re.fullmatch(r'\s*(\w+)\s*(=~|!=|=)\s*"?([^"]*)"?\s*', matcher)
    if not m:
        return False
    name, op, value = m.groups()
    actual = labels.get(name, "")
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    return re.fullmatch(value, actual) is not None


def recovery_floor(monitoring_dir: Path, *, alert: str = "HighErrorRate", poll_interval: float) -> dict[str, float]:
    """Scrape interval + evaluation interval + the alert's ``for:`` + ``group_wait`` of the route that
    reaches the rollback webhook + the serving poll interval, each in seconds."""
    prometheus = yaml.safe_load((monitoring_dir / "prometheus.yml").read_text())
    scrape = parse_duration(prometheus.get("global", {}).get("scrape_interval", "1m"))
    evaluation = parse_duration(prometheus.get("global", {}).get("evaluation_interval", "1m"))
    for_ = next((parse_duration(r.get("for", "0s")) for r in _rules(monitoring_dir) if r.get("alert") == alert), None)
    if for_ is None:
        raise ValueError(f"no alert rule named {alert} under {monitoring_dir}")
    alertmanager = yaml.safe_load((monitoring_dir / "alertmanager.yml").read_text())
    root = alertmanager["route"]
    group_wait = parse_duration(root.get("group_wait", "30s"))
    for route in _route_for(root, {"alertname": alert, "rollback": "true", "severity": "critical"}):
        if "webhook" in str(route.get("receiver", "")) or "rollback" in str(route.get("receiver", "")):
            group_wait = parse_duration(route.get("group_wait", root.get("group_wait", "30s")))
            break
    parts = {"scrape_interval": scrape, "evaluation_interval": evaluation, "for": for_, "group_wait": group_wait,
             "serving_poll": poll_interval}
    parts["total"] = sum(parts.values())
    return parts
