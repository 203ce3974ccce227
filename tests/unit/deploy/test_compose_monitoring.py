"""The monitoring side of docker-compose.yml: Prometheus, Alertmanager and Grafana configuration."""

from __future__ import annotations

import filecmp
import importlib.util
import json
import re
import subprocess
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.procs import require_binary
from tests.unit.deploy.deploy_files import REPO, Compose

DEPLOY_MONITORING = REPO / "deploy" / "monitoring"
GRAFANA = REPO / "monitoring" / "grafana"


def load_render_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_render_monitoring", REPO / "deploy" / "render_monitoring.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flag(command: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in command if a.startswith(f"{name}=")]
    assert len(values) == 1, f"{name} in {command}"
    return values[0]


def host_path(compose: Compose, service: str, container_path: str) -> Path:
    """The repository file a container path comes from, through the service's bind mounts."""
    target = PurePosixPath(container_path)
    for mount in compose.volumes(service):
        if mount.is_host_path and (target == PurePosixPath(mount.target)
                                   or PurePosixPath(mount.target) in target.parents):
            relative = target.relative_to(mount.target)
            return (REPO / mount.source / relative).resolve()
    raise AssertionError(f"{service}: nothing from the repository is mounted at {container_path}")


def secret_paths(compose: Compose, service: str) -> set[str]:
    return {s.get("target") if str(s.get("target", "")).startswith("/") else f"/run/secrets/{s.get('target') or s['source']}"
            for s in compose.secrets(service)}


@pytest.fixture(scope="module")
def prometheus_config(compose: Compose) -> dict[str, Any]:
    path = host_path(compose, "prometheus", flag(compose.command("prometheus"), "--config.file"))
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


@pytest.fixture(scope="module")
def alertmanager_config(compose: Compose) -> dict[str, Any]:
    path = host_path(compose, "alertmanager", flag(compose.command("alertmanager"), "--config.file"))
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


def container_port(compose: Compose, service: str) -> int:
    ports = {p.container_port for p in compose.published_ports(service)} | {
        int(p) for p in compose.services[service].get("expose") or []}
    assert len(ports) == 1, (service, ports)
    return ports.pop()


# ------------------------------------------------------------------ rendered files are current
def test_committed_compose_monitoring_config_is_what_the_renderer_writes(tmp_path: Path) -> None:
    load_render_script().render(tmp_path)
    rendered = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(DEPLOY_MONITORING).as_posix() for p in DEPLOY_MONITORING.rglob("*")
                       if p.is_file())
    assert rendered == committed
    stale = [name for name in rendered if not filecmp.cmp(tmp_path / name, DEPLOY_MONITORING / name, shallow=False)]
    assert stale == [], f"run `.venv/bin/python deploy/render_monitoring.py` and commit: {stale} are out of date"


def test_prometheus_accepts_the_compose_config() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "config", str(DEPLOY_MONITORING / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_accepts_the_compose_config() -> None:
    amtool = require_binary("amtool")
    result = subprocess.run([amtool, "check-config", str(DEPLOY_MONITORING / "alertmanager.yml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ Prometheus
def test_prometheus_reads_the_mounted_config(compose: Compose) -> None:
    config = host_path(compose, "prometheus", flag(compose.command("prometheus"), "--config.file"))
    assert config == (DEPLOY_MONITORING / "prometheus.yml").resolve()


def test_every_rule_file_prometheus_references_is_mounted_and_exists(compose: Compose,
                                                                    prometheus_config: dict[str, Any]) -> None:
    config_dir = PurePosixPath(flag(compose.command("prometheus"), "--config.file")).parent
    patterns = prometheus_config.get("rule_files") or []
    assert patterns, "no rule files: no alert would ever fire"
    found: list[Path] = []
    for pattern in patterns:
        container_glob = PurePosixPath(pattern) if pattern.startswith("/") else config_dir / pattern
        folder = host_path(compose, "prometheus", str(container_glob.parent))
        matches = sorted(folder.glob(container_glob.name))
        assert matches, f"{pattern} matches no file in {folder}"
        found += matches
    alerts = {rule.get("alert") for path in found for group in yaml.safe_load(path.read_text())["groups"]
              for rule in group["rules"]}
    assert {"HighErrorRate", "HighLatency", "InstanceDown", "ModelRolledBack"} <= alerts


def test_scrape_targets_are_compose_services_on_their_ports(compose: Compose,
                                                            prometheus_config: dict[str, Any]) -> None:
    expected_job = {"serving": "serving", "drift_exporter": "drift-exporter", "rollback_webhook": "rollback-webhook",
                    "quality": "quality", "alertmanager": "alertmanager", "prometheus": "prometheus"}
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    assert set(jobs) == set(expected_job)
    for job_name, job in jobs.items():
        service = expected_job[job_name]
        if "dns_sd_configs" in job:
            # every replica of the service: Docker's DNS answers its name with each one's address
            (sd,) = job["dns_sd_configs"]
            assert (sd["names"], sd["type"], sd["port"]) == ([service], "A", container_port(compose, service))
            assert "deploy" in compose.services[service], f"{job_name}: DNS discovery for a service without replicas"
            continue
        targets = [t for sc in job["static_configs"] for t in sc["targets"]]
        assert len(targets) == 1, (job_name, targets)
        host, port = targets[0].rsplit(":", 1)
        assert host in {service, "localhost"} and (host == service or service == "prometheus"), targets
        assert int(port) == container_port(compose, service), (job_name, targets)


def test_prometheus_sends_alerts_to_the_compose_alertmanager(compose: Compose,
                                                            prometheus_config: dict[str, Any]) -> None:
    targets = [t for am in prometheus_config["alerting"]["alertmanagers"] for sc in am["static_configs"]
               for t in sc["targets"]]
    assert targets == [f"alertmanager:{container_port(compose, 'alertmanager')}"]


# ------------------------------------------------------------------ Alertmanager
def test_alertmanager_calls_the_rollback_webhook_with_the_mounted_token(compose: Compose,
                                                                       alertmanager_config: dict[str, Any]) -> None:
    hooks = [h for r in alertmanager_config["receivers"] for h in r.get("webhook_configs") or []]
    assert hooks, "no webhook receiver: nothing would ever roll back"
    for hook in hooks:
        assert hook["url"] == f"http://rollback-webhook:{container_port(compose, 'rollback-webhook')}/alerts"
        credentials = hook["http_config"]["authorization"]["credentials_file"]
        assert credentials in secret_paths(compose, "alertmanager")
    secret = next(s for s in compose.secrets("alertmanager") if f"/run/secrets/{s['source']}" == credentials)
    assert secret["source"] == "webhook_token"
    assert secret["source"] in {s["source"] for s in compose.secrets("rollback-webhook")}, \
        "Alertmanager and the webhook must share one token"


def test_alertmanager_reads_the_slack_url_from_the_mounted_secret(compose: Compose,
                                                                 alertmanager_config: dict[str, Any]) -> None:
    slacks = [s for r in alertmanager_config["receivers"] for s in r.get("slack_configs") or []]
    assert slacks
    for slack in slacks:
        assert "api_url" not in slack, "a Slack URL is a secret: only api_url_file belongs in the config"
        assert slack["api_url_file"] in secret_paths(compose, "alertmanager")
    global_config = alertmanager_config.get("global") or {}
    assert "slack_api_url" not in global_config


def test_links_in_alerts_point_where_compose_publishes_grafana(compose: Compose) -> None:
    root_url = compose.environment("grafana")["GF_SERVER_ROOT_URL"]
    port = container_port(compose, "grafana")
    assert root_url == f"http://localhost:{port}"
    links = re.findall(r"dashboard_url: (\S+)", "".join(p.read_text() for p in (DEPLOY_MONITORING / "rules").glob("*.yml")))
    assert links and all(link.startswith(root_url + "/") for link in links), links[:3]


# ------------------------------------------------------------------ Grafana
def grafana_provisioning(kind: str) -> list[dict[str, Any]]:
    documents = [yaml.safe_load(p.read_text()) for p in sorted((GRAFANA / "provisioning" / kind).glob("*.y*ml"))]
    assert documents, f"no {kind} provisioning files"
    return documents


def test_grafana_provisioning_is_mounted_where_grafana_reads_it(compose: Compose) -> None:
    # /etc/grafana/provisioning is the image's GF_PATHS_PROVISIONING
    assert "GF_PATHS_PROVISIONING" not in compose.environment("grafana")
    assert host_path(compose, "grafana", "/etc/grafana/provisioning") == (GRAFANA / "provisioning").resolve()


def test_dashboards_are_mounted_where_the_dashboard_provider_looks(compose: Compose) -> None:
    providers = [p for doc in grafana_provisioning("dashboards") for p in doc["providers"]]
    assert providers
    for provider in providers:
        folder = host_path(compose, "grafana", provider["options"]["path"])
        dashboards = sorted(folder.glob("*.json"))
        assert dashboards, f"provider {provider['name']} would find no dashboard in {folder}"
        for path in dashboards:
            assert json.loads(path.read_text())["uid"], path


def test_grafana_home_dashboard_is_a_mounted_dashboard(compose: Compose) -> None:
    home = compose.environment("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(compose, "grafana", home).is_file()


def test_grafana_datasource_is_the_compose_prometheus(compose: Compose, prometheus_config: dict[str, Any]) -> None:
    sources = [s for doc in grafana_provisioning("datasources") for s in doc["datasources"]]
    prometheus = [s for s in sources if s["type"] == "prometheus"]
    assert len(prometheus) == 1
    source = prometheus[0]
    assert source["url"] == f"http://prometheus:{container_port(compose, 'prometheus')}"
    assert source["jsonData"]["timeInterval"] == prometheus_config["global"]["scrape_interval"]
    image_version = compose.services["prometheus"]["image"].rsplit(":v", 1)[1]
    assert source["jsonData"].get("prometheusVersion", image_version) == image_version


def test_grafana_admin_password_comes_from_its_secret_file(compose: Compose) -> None:
    env = compose.environment("grafana")
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] in secret_paths(compose, "grafana")


@pytest.mark.parametrize(("service", "tool"), [("prometheus", "promtool"), ("alertmanager", "amtool")])
def test_monitoring_images_are_the_versions_ci_checks_the_configs_with(compose: Compose, service: str,
                                                                       tool: str) -> None:
    output = subprocess.run([require_binary(tool), "--version"], capture_output=True, text=True, timeout=30,
                            check=False)
    match = re.search(r"version (\d+\.\d+\.\d+)", output.stdout + output.stderr)
    assert match, output
    assert compose.services[service]["image"].endswith(f":v{match.group(1)}")
