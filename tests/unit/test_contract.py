"""docs/contract.md against the code: the metrics each service registers, the alerts the rules
define and the ports the settings use are exactly the ones the contract's tables list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic_settings import BaseSettings

from drift_exporter.metrics import DriftMetrics
from drift_exporter.settings import DriftExporterSettings
from monitoring.contract import CONTRACT_METRICS
from quality.metrics import QualityMetrics
from quality.settings import QualitySettings
from rollback_webhook.metrics import WebhookMetrics
from rollback_webhook.settings import WebhookSettings
from serving.metrics import ServingMetrics
from serving.settings import ServingSettings
from tests.unit.deploy.deploy_files import field_default

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract.md"
ALERT_RULES = sorted((ROOT / "monitoring" / "alerts").glob("*.rules.yml"))


def table(heading: str) -> list[list[str]]:
    """The rows of the first Markdown table under ``## heading`` (cells stripped, header skipped)."""
    text = CONTRACT.read_text()
    section = re.split(r"^## ", text, flags=re.M)
    body = next(s for s in section if s.startswith(heading))
    lines = body.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows[2:]]


def name(cell: str) -> str:
    found = re.fullmatch(r"`([^`]+)`", cell)
    assert found, f"contract table cell {cell!r} must be a single name in backticks"
    return found.group(1)


def contract_metrics() -> dict[str, tuple[str, tuple[str, ...], set[str]]]:
    rows = table("Metrics contract")
    out: dict[str, tuple[str, tuple[str, ...], set[str]]] = {}
    for metric, kind, labels, source in rows:
        assert name(metric) not in out, f"{metric} listed twice"
        out[name(metric)] = (kind, tuple(label.strip() for label in labels.split(",") if label.strip()),
                             {s.strip() for s in source.split(",")})
    return out


def registered(registry: CollectorRegistry) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Scraped name -> (type, label names) of every family on a registry."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    # The private map is the only way to reach label names of families that have no series yet.
    for collector in list(registry._collector_to_names):
        labelnames = tuple(getattr(collector, "labelnames", None) or getattr(collector, "_labelnames", ()))
        for family in collector.collect():
            scraped = f"{family.name}_total" if family.type == "counter" else family.name
            found[scraped] = (family.type, labelnames)
    return found


SERVICES = {
    "serving": ServingMetrics,
    "exporter": DriftMetrics,
    "webhook": WebhookMetrics,
    "quality": QualityMetrics,
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_metric_a_service_registers_is_in_the_contract_with_its_type_and_labels(service: str) -> None:
    registry = CollectorRegistry()
    SERVICES[service](registry, "any-model")
    contract = contract_metrics()
    for metric, (kind, labels) in registered(registry).items():
        assert metric in contract, f"{service} registers {metric}, which docs/contract.md does not list"
        listed_kind, listed_labels, sources = contract[metric]
        assert kind == listed_kind, f"{metric}: {service} registers a {kind}, the contract says {listed_kind}"
        assert service in sources, f"{metric}: the contract does not name {service} as a source"
        if labels:
            assert labels == listed_labels, f"{metric}: {service} uses labels {labels}, the contract {listed_labels}"


def test_every_contract_metric_is_registered_by_the_services_it_names() -> None:
    exported: dict[str, set[str]] = {}
    for service, metrics in SERVICES.items():
        registry = CollectorRegistry()
        metrics(registry, "any-model")
        for metric in registered(registry):
            exported.setdefault(metric, set()).add(service)
    for metric, (_, _, sources) in contract_metrics().items():
        assert sources <= exported.get(metric, set()), f"docs/contract.md lists {metric} from {sources}; " \
                                                       f"registered by {exported.get(metric, set()) or 'nobody'}"


def test_the_metrics_dashboards_may_read_are_contract_metrics() -> None:
    contract = contract_metrics()
    for metric, kind in CONTRACT_METRICS.items():
        assert metric in contract and contract[metric][0] == kind, metric


def rule_alerts() -> dict[str, dict[str, str]]:
    alerts: dict[str, dict[str, str]] = {}
    for path in ALERT_RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    alerts[rule["alert"]] = rule.get("labels") or {}
    return alerts


def test_the_alert_table_lists_exactly_the_alerts_the_rules_define_with_severity_and_rollback() -> None:
    rows = {name(alert): (severity, rollback) for alert, severity, rollback, _ in table("Alerts contract")}
    rules = rule_alerts()
    assert set(rows) == set(rules)
    for alert, labels in rules.items():
        severity, rollback = rows[alert]
        assert labels.get("severity") == severity, alert
        assert labels.get("rollback", "") == rollback, alert


@pytest.mark.parametrize(("process", "settings"), [
    ("serving", ServingSettings), ("drift-exporter", DriftExporterSettings), ("rollback-webhook", WebhookSettings),
    ("quality", QualitySettings)])
def test_each_service_listens_on_the_contract_port_under_the_contract_setting(
        process: str, settings: type[BaseSettings]) -> None:
    rows = {name(row[0]): row for row in table("Ports and processes")}
    _, port, setting, _ = rows[process]
    assert field_default(settings, name(setting)) == int(port)
