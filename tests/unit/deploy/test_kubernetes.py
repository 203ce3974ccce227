"""deploy/kubernetes/: generated files current, every overlay builds and validates offline, and the
manifests agree with the services, the monitoring sources and the contract (docs/contract.md)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from drift_exporter.settings import DriftExporterSettings
from monitoring import kubernetes as k8s
from monitoring.render import JOBS, PROMETHEUS_CONFIG, RUNBOOK_PLACEHOLDER, alertmanager_source, rule_documents
from quality.settings import QualitySettings
from rollback_webhook.settings import WebhookSettings
from serving.settings import ServingSettings
from tests.unit.deploy.deploy_files import REPO, environment_names
from tests.unit.deploy.kubernetes_files import (
    BASE,
    COMPONENTS,
    KUBERNETES_VERSIONS,
    OVERLAYS,
    Build,
    crd_errors,
    is_custom,
    kubernetes_errors,
    kustomize,
)

DOCS = REPO / "docs" / "kubernetes.md"
# Deployment -> (settings class, port setting, contract port)
SERVICES: dict[str, tuple[type[BaseSettings], str, int]] = {
    "serving": (ServingSettings, "DRIFTWATCH_SERVING_PORT", 8000),
    "drift-exporter": (DriftExporterSettings, "DRIFTWATCH_DRIFT_PORT", 9101),
    "rollback-webhook": (WebhookSettings, "DRIFTWATCH_WEBHOOK_PORT", 9102),
    "quality": (QualitySettings, "DRIFTWATCH_QUALITY_PORT", 9103),
}
# Service -> contract job name (docs/contract.md: alerts, inhibition and dashboards select on it)
SCRAPED = {"serving": "serving", "drift-exporter": "drift_exporter", "rollback-webhook": "rollback_webhook",
           "quality": "quality"}
SECRET_ENV = re.compile(r"(TOKEN|PASSWORD|SECRET|_KEY|CREDENTIALS?)$")


@pytest.fixture(scope="module", params=OVERLAYS, ids=[p.name for p in OVERLAYS])
def build(request: pytest.FixtureRequest) -> Build:
    overlay: Path = request.param
    return Build(overlay, kustomize(overlay))


@pytest.fixture(scope="module")
def base() -> Build:
    return Build(BASE, kustomize(BASE))


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def env_of(container: dict[str, Any], build: Build) -> dict[str, str | None]:
    """The container's environment: its env values (None for valueFrom) and its ConfigMaps' data."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(build.by_prefix("ConfigMap", source["configMapRef"]["name"].rsplit("-", 1)[0])["data"])
    for item in container.get("env") or []:
        env[item["name"]] = item.get("value")
    return env


# ---------------------------------------------------------------------- one source
def test_generated_files_are_what_render_kubernetes_writes_now(tmp_path: Path) -> None:
    """deploy/render_kubernetes.py after any change under monitoring/, like render_monitoring.py."""
    k8s.write(tmp_path, runbook_url=RUNBOOK_PLACEHOLDER)
    rendered = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed_json = sorted(p.relative_to(COMPONENTS) for p in COMPONENTS.rglob("dashboards/*.json"))
    assert [p for p in rendered if p.suffix == ".json"] == committed_json, "stale or missing dashboard files"
    for relative in rendered:
        assert (COMPONENTS / relative).read_text() == (tmp_path / relative).read_text(), (
            f"{relative} is out of date: run `.venv/bin/python deploy/render_kubernetes.py` and commit the result")


def test_prometheus_rule_holds_every_source_rule_unchanged_but_for_the_namespace_label() -> None:
    rule = k8s.prometheus_rule(runbook_url=RUNBOOK_PLACEHOLDER, grafana_url=k8s.DEFAULT_GRAFANA_URL)
    expected = [g for _, doc in rule_documents(runbook_url=RUNBOOK_PLACEHOLDER, grafana_url=k8s.DEFAULT_GRAFANA_URL)
                for g in doc["groups"]]
    generated = copy.deepcopy(rule["spec"]["groups"])
    for group in generated:
        for r in group["rules"]:
            if "alert" in r:
                assert r["labels"].pop("namespace") == k8s.NAMESPACE
    assert generated == expected


def test_alertmanager_config_mirrors_the_source_routing() -> None:
    source = alertmanager_source()
    config = k8s.alertmanager_config()["spec"]

    def tree(route: dict[str, Any], matchers_key: str) -> list[Any]:
        return [route["receiver"], sorted(str(m) for m in route.get(matchers_key) or []),
                [tree(child, matchers_key) for child in route.get("routes") or []]]

    def source_tree(route: dict[str, Any]) -> list[Any]:
        return [route["receiver"], sorted(str(k8s.matcher(m)) for m in route.get("matchers") or []),
                [source_tree(child) for child in route.get("routes") or []]]

    assert tree(config["route"], "matchers") == source_tree(source["route"])
    assert [r["name"] for r in config["receivers"]] == [r["name"] for r in source["receivers"]]
    slack = [c for r in config["receivers"] for c in r.get("slackConfigs") or []]
    assert len(slack) == sum(len(r.get("slack_configs") or []) for r in source["receivers"])
    assert all(c["apiURL"] == {"name": k8s.SECRET_NAME, "key": k8s.SLACK_URL_KEY} for c in slack)
    (hook,) = [c for r in config["receivers"] for c in r.get("webhookConfigs") or []]
    assert hook["httpConfig"]["authorization"]["credentials"] == {"name": k8s.SECRET_NAME, "key": k8s.WEBHOOK_TOKEN_KEY}
    assert len(config["inhibitRules"]) == len(source["inhibit_rules"])


def test_alertmanager_translation_refuses_what_it_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    source = alertmanager_source()
    source["receivers"][0]["slack_configs"][0]["new_option"] = True
    monkeypatch.setattr(k8s, "alertmanager_source", lambda: source)
    with pytest.raises(ValueError, match="new_option"):
        k8s.alertmanager_config()


@pytest.mark.parametrize(("text", "expected"), [
    ('rollback="true"', {"name": "rollback", "value": "true", "matchType": "="}),
    ('severity=~"warning|info"', {"name": "severity", "value": "warning|info", "matchType": "=~"}),
    ('job!="x\\"y"', {"name": "job", "value": 'x"y', "matchType": "!="}),
    ("team=ml", {"name": "team", "value": "ml", "matchType": "="}),
])
def test_matchers_are_parsed_like_alertmanager(text: str, expected: dict[str, str]) -> None:
    assert k8s.matcher(text) == expected


def test_dashboards_differ_from_the_sources_only_in_the_datasource_default() -> None:
    for name, text in k8s.dashboards("some-uid").items():
        source = json.loads((k8s.DASHBOARDS / name).read_text())
        generated = json.loads(text)
        (variable,) = [v for v in generated["templating"]["list"] if v["type"] == "datasource"]
        assert variable["current"]["value"] == "some-uid"
        variable["current"] = next(v for v in source["templating"]["list"] if v["type"] == "datasource")["current"]
        assert generated == source


# ---------------------------------------------------------------------- offline validation
def test_there_is_an_overlay_and_it_uses_both_monitoring_components() -> None:
    assert OVERLAYS, "deploy/kubernetes/overlays/ has no overlay"
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
        assert {Path(c).name for c in kustomization.get("components") or []} >= {"prometheus-operator",
                                                                                  "grafana-dashboards"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_kubernetes_resource_validates_against_the_strict_schemas(build: Build, base: Build,
                                                                        version: str) -> None:
    for resources in (build.resources, base.resources):
        problems = {f"{r['kind']}/{r['metadata']['name']}": kubernetes_errors(r, version)
                    for r in resources if not is_custom(r)}
        assert not {k: v for k, v in problems.items() if v}


def test_every_custom_resource_validates_against_the_prometheus_operator_crd_schemas(build: Build) -> None:
    custom = [r for r in build.resources if is_custom(r)]
    assert {r["kind"] for r in custom} == {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig"}
    # Child routes are free-form JSON in the CRD: validate each as the top route of a copy as well.
    extra = []
    for config in (r for r in custom if r["kind"] == "AlertmanagerConfig"):
        stack = list(config["spec"]["route"].get("routes") or [])
        while stack:
            child = stack.pop()
            stack.extend(child.get("routes") or [])
            copy_ = copy.deepcopy(config)
            copy_["spec"]["route"] = {k: v for k, v in child.items() if k != "routes"}
            extra.append(copy_)
    results = crd_errors(custom + extra)
    assert [r for r in results if r["errors"]] == []


def test_the_validators_reject_broken_resources(build: Build) -> None:
    """Not vacuous: a typo in a Deployment and a bad duration in a PrometheusRule are caught."""
    deployment = copy.deepcopy(build.get("Deployment", "serving"))
    deployment["spec"]["replica"] = 3  # unknown field
    assert kubernetes_errors(deployment, "latest")
    probe = copy.deepcopy(build.get("Deployment", "serving"))
    probe["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = 5
    assert kubernetes_errors(probe, "latest")
    rule = copy.deepcopy(build.get("PrometheusRule", "driftwatch"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    monitor = copy.deepcopy(build.get("ServiceMonitor", "driftwatch"))
    monitor["spec"]["endpoints"][0]["scheme"] = "ftp"
    unknown = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRules", "metadata": {"name": "x"}}
    results = crd_errors([rule, monitor, unknown])
    assert all(r["errors"] for r in results), results


# ---------------------------------------------------------------------- the application
def test_serving_runs_three_replicas_with_probes_on_ready_and_health(build: Build) -> None:
    deployment = build.get("Deployment", "serving")
    assert deployment["spec"]["replicas"] == 3
    (container,) = containers(deployment)
    port = next(p for p in container["ports"] if p["name"] == "http")
    assert port["containerPort"] == 8000 == int(str(env_of(container, build)["DRIFTWATCH_SERVING_PORT"]))
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"


def test_serving_has_a_disruption_budget_and_an_autoscaler_that_keep_replicas(build: Build) -> None:
    deployment = build.get("Deployment", "serving")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = build.get("PodDisruptionBudget", "serving")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert 1 <= pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    hpa = build.get("HorizontalPodAutoscaler", "serving")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "serving"}
    assert hpa["spec"]["minReplicas"] >= deployment["spec"]["replicas"] > pdb["spec"]["minAvailable"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_gets_only_settings_it_reads_and_listens_on_its_contract_port(build: Build, name: str) -> None:
    settings, port_setting, port = SERVICES[name]
    (container,) = containers(build.get("Deployment", name))
    env = env_of(container, build)
    unknown = sorted(set(env) - environment_names(settings))
    assert not unknown, f"{name} is given settings it does not read (a typo is ignored silently): {unknown}"
    assert env[port_setting] == str(port)
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert container["command"][:2] == ["driftwatch", name if name != "serving" else "serve"]


def test_every_container_is_bounded_and_meets_the_restricted_pod_security_standard(build: Build) -> None:
    for deployment in build.of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's user (docs/docker.md)
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert security["readOnlyRootFilesystem"] is True
    namespace = build.of_kind("Namespace")
    if namespace:
        assert namespace[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_service_selects_pods_and_ports_that_exist(build: Build) -> None:
    pods = [(d["spec"]["template"]["metadata"]["labels"], containers(d)) for d in build.of_kind("Deployment")]
    for service in build.of_kind("Service"):
        selector = service["spec"]["selector"]
        matching = [cs for labels, cs in pods if selector.items() <= labels.items()]
        assert matching, f"Service {service['metadata']['name']} selects no pods"
        names = {p["name"] for cs in matching for c in cs for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names


def test_secrets_are_referenced_never_written(build: Build) -> None:
    assert not build.of_kind("Secret"), "a Secret in the manifests would put a credential in git"
    for deployment in build.of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        mounts = {v["name"]: v["secret"] for v in pod.get("volumes") or [] if "secret" in v}
        for container in pod["containers"]:
            env = env_of(container, build)
            literal = [n for n, v in env.items() if SECRET_ENV.search(n) and v is not None]
            assert not literal, f"{deployment['metadata']['name']}: secret settings with literal values: {literal}"
            paths = {f"{m['mountPath']}/{item['path']}": (mounts[m["name"]]["secretName"], item["key"])
                     for m in container.get("volumeMounts") or [] if m["name"] in mounts
                     for item in mounts[m["name"]]["items"]}
            for name, value in env.items():
                if name.endswith("_FILE"):
                    assert value in paths, f"{deployment['metadata']['name']}: {name}={value} is no mounted secret"
                    assert paths[value] == (k8s.SECRET_NAME, Path(str(value)).name)


def test_every_secret_key_the_manifests_read_is_documented(build: Build) -> None:
    docs = DOCS.read_text()
    keys = {item["key"] for d in build.of_kind("Deployment") for v in d["spec"]["template"]["spec"].get("volumes") or []
            if "secret" in v for item in v["secret"]["items"]}
    keys |= {k8s.SLACK_URL_KEY, k8s.WEBHOOK_TOKEN_KEY}
    assert k8s.SECRET_NAME in docs
    assert not [k for k in keys if f"{k}=" not in docs], "docs/kubernetes.md should show how to create each key"


def test_every_replica_writes_its_own_log_on_the_shared_volume_the_exporter_reads(build: Build) -> None:
    serving = build.get("Deployment", "serving")
    exporter = build.get("Deployment", "drift-exporter")

    def log_mount(deployment: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        (container,) = containers(deployment)
        directory = str(env_of(container, build)["DRIFTWATCH_PREDICTION_LOG_DIR"])
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
        (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
        return directory, mount, volume

    _, serving_mount, serving_volume = log_mount(serving)
    _, exporter_mount, exporter_volume = log_mount(exporter)
    claim = serving_volume["persistentVolumeClaim"]["claimName"]
    assert exporter_volume["persistentVolumeClaim"]["claimName"] == claim
    assert not serving_mount.get("readOnly") and exporter_mount["readOnly"] is True
    assert build.get("PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]
    (container,) = containers(serving)
    (instance,) = [e for e in container["env"] if e["name"] == "DRIFTWATCH_SERVING_INSTANCE"]
    assert instance["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}, "one log file per pod"


def test_the_webhook_reloads_every_serving_replica_through_the_headless_service(build: Build) -> None:
    (container,) = containers(build.get("Deployment", "rollback-webhook"))
    env = env_of(container, build)
    assert env["DRIFTWATCH_SERVING_URLS_RESOLVE_ALL"] == "true"
    url = urlsplit(str(env["DRIFTWATCH_SERVING_URLS"]))
    headless = build.get("Service", str(url.hostname))
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == build.get("Service", "serving")["spec"]["selector"]
    assert url.port == headless["spec"]["ports"][0]["port"] == 8000


# ---------------------------------------------------------------------- monitoring in the cluster
def test_the_service_monitor_scrapes_the_three_services_under_their_contract_job_names(build: Build) -> None:
    monitor = build.get("ServiceMonitor", "driftwatch")
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = {s["metadata"]["name"]: s for s in build.of_kind("Service")
                if selector.items() <= s["metadata"]["labels"].items()}
    assert set(selected) == set(SCRAPED), "the headless Service must not be scraped (each pod twice)"
    job_label = monitor["spec"]["jobLabel"]
    assert {n: s["metadata"]["labels"][job_label] for n, s in selected.items()} == SCRAPED
    assert set(SCRAPED.values()) <= set(JOBS)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in selected.values())
    assert endpoint["path"] == "/metrics"
    interval = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"]
    assert endpoint["interval"] == interval, "rules and dashboards are written for this scrape interval"


def test_alerts_carry_the_namespace_and_the_webhook_url_names_it(build: Build) -> None:
    """The operator routes an AlertmanagerConfig's alerts by namespace label; Alertmanager reaches the
    webhook across namespaces: both follow the overlay's namespace (its replacements)."""
    rule = build.get("PrometheusRule", "driftwatch")
    namespace = rule["metadata"]["namespace"]
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts and all(r["labels"]["namespace"] == namespace for r in alerts)
    config = build.get("AlertmanagerConfig", "driftwatch")
    assert config["metadata"]["namespace"] == namespace
    (hook,) = [c for r in config["spec"]["receivers"] for c in r.get("webhookConfigs") or []]
    url = urlsplit(hook["url"])
    assert (url.hostname, url.port, url.path) == (f"rollback-webhook.{namespace}.svc", 9102, "/alerts")
    service = build.get("Service", "rollback-webhook")
    assert service["spec"]["ports"][0]["port"] == url.port


def test_the_dashboards_are_config_maps_for_the_grafana_sidecar(build: Build) -> None:
    maps = [m for m in build.of_kind("ConfigMap") if m["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    files = {name: text for m in maps for name, text in m["data"].items()}
    assert files == k8s.dashboards()
    uids = {json.loads(text)["uid"] for text in files.values()}
    assert len(uids) == len(files)
    # kubectl apply keeps the whole object in an annotation limited to 256 KiB.
    assert all(len(text.encode()) < 200 * 1024 for text in files.values())


def test_every_overlay_replaces_the_image_of_every_container(build: Build) -> None:
    images = {c["image"] for d in build.of_kind("Deployment") for c in containers(d)}
    assert len(images) == 1 and images != {"driftwatch"}, images
