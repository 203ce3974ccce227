"""The committed monitoring files as data, for the tests that check them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
MONITORING = REPO / "monitoring"
ALERT_RULES = MONITORING / "alerts" / "driftwatch.rules.yml"
RECORDING_RULES = MONITORING / "prometheus" / "recording.rules.yml"
PROMTOOL_TESTS = sorted([*(MONITORING / "alerts" / "tests").glob("*.test.yml"),
                         *(MONITORING / "prometheus" / "tests").glob("*.test.yml")])


def alerts() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(ALERT_RULES.read_text())
    return {r["alert"]: r for g in document["groups"] for r in g["rules"] if "alert" in r}


def recordings() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(RECORDING_RULES.read_text())
    return {r["record"]: r for g in document["groups"] for r in g["rules"]}


def alert_cases() -> dict[str, list[dict[str, Any]]]:
    """alertname -> every alert_rule_test case of the promtool test files."""
    cases: dict[str, list[dict[str, Any]]] = {}
    for path in PROMTOOL_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test") or []:
                cases.setdefault(case["alertname"], []).append(case)
    return cases
