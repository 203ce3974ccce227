"""docker-compose.yml against the rest of the project: ports, settings, mounts, the prediction log."""

from __future__ import annotations

import re

import pytest
from pydantic_settings import BaseSettings

from drift_exporter.settings import DriftExporterSettings
from driftwatch.stack import Stack, StackSettings
from model_registry.settings import RegistrySettings
from rollback_webhook.settings import WebhookSettings
from serving.settings import ServingSettings
from tests.unit.deploy.deploy_files import REPO, Compose, environment_names, field_default

# docs/contract.md, "Ports and processes": the contract every part and every user relies on.
CONTRACT_PORTS = {
    "serving": 8000,
    "drift-exporter": 9101,
    "rollback-webhook": 9102,
    "mlflow": 5000,
    "prometheus": 9090,
    "alertmanager": 9093,
    "grafana": 3000,
}
# compose service -> the process of the same name that `driftwatch up` starts
STACK_PROCESS = {"serving": "serving", "drift-exporter": "drift-exporter", "rollback-webhook": "rollback-webhook",
                 "mlflow": "mlflow", "slack-sink": "slack-sink"}
PREDICTION_LOG_DIR = "/var/lib/driftwatch/predictions"
SETTINGS: dict[str, type[BaseSettings]] = {
    "trainer": RegistrySettings,
    "serving": ServingSettings,
    "drift-exporter": DriftExporterSettings,
    "rollback-webhook": WebhookSettings,
}


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Environment `driftwatch up` gives each process: the settings names the services read."""
    import driftwatch.stack

    home = tmp_path_factory.mktemp("stack-home")
    original = driftwatch.stack.binary
    driftwatch.stack.binary = lambda *names: names[0]  # no need for prometheus here
    try:
        stack = Stack(StackSettings(home=home), with_mlflow_server=True, say=lambda _: None)
        return {spec.name: spec.env for spec in stack.process_specs()}
    finally:
        driftwatch.stack.binary = original


def port_of(url: str) -> int:
    match = re.match(r"https?://[^/:]+:(\d+)", url)
    assert match, url
    return int(match.group(1))


# Who publishes each contract port: the serving replicas are reached through their load balancer.
PUBLISHED_BY = {"serving": "serving-balancer"}


def test_container_ports_are_the_design_ports(compose: Compose) -> None:
    for name, port in CONTRACT_PORTS.items():
        publisher = PUBLISHED_BY.get(name, name)
        assert [p.container_port for p in compose.published_ports(publisher)] == [port], publisher
    assert [int(p) for p in compose.services["serving"]["expose"]] == [CONTRACT_PORTS["serving"]]


def test_design_ports_are_the_defaults_of_the_service_settings() -> None:
    assert field_default(ServingSettings, "DRIFTWATCH_SERVING_PORT") == CONTRACT_PORTS["serving"]
    assert field_default(DriftExporterSettings, "DRIFTWATCH_DRIFT_PORT") == CONTRACT_PORTS["drift-exporter"]
    assert field_default(WebhookSettings, "DRIFTWATCH_WEBHOOK_PORT") == CONTRACT_PORTS["rollback-webhook"]


def test_design_ports_are_the_defaults_of_the_stack_settings() -> None:
    s = StackSettings()
    assert {"serving": s.serving_port, "drift-exporter": s.drift_exporter_port, "rollback-webhook": s.webhook_port,
            "mlflow": s.mlflow_port, "prometheus": s.prometheus_port, "alertmanager": s.alertmanager_port,
            "grafana": port_of(s.grafana_url)} == CONTRACT_PORTS


def test_each_service_is_told_to_listen_on_its_port_on_all_interfaces(compose: Compose) -> None:
    for name in ("serving", "drift-exporter", "rollback-webhook"):
        env = compose.environment(name)
        port_keys = [k for k in env if k.endswith("_PORT")]
        host_keys = [k for k in env if k.endswith("_HOST")]
        assert len(port_keys) == 1 and len(host_keys) == 1, (name, env)
        assert int(env[port_keys[0]]) == CONTRACT_PORTS[name]
        assert env[host_keys[0]] == "0.0.0.0", f"{name} would listen on loopback inside its container"
    command = compose.command("mlflow")
    assert "--host=0.0.0.0" in command and f"--port={CONTRACT_PORTS['mlflow']}" in command


def test_healthchecks_probe_the_port_each_service_listens_on(compose: Compose) -> None:
    for name, service in compose.services.items():
        if "healthcheck" not in service:
            continue
        url = next((arg for arg in service["healthcheck"]["test"] if arg.startswith("http")), None)
        if url is None:  # PostgreSQL: pg_isready on its own port
            assert service["healthcheck"]["test"][1] == "pg_isready" and "127.0.0.1" in service["healthcheck"]["test"]
            continue
        listening = {p.container_port for p in compose.published_ports(name)}
        listening |= {int(p) for p in service.get("expose") or []}
        assert port_of(url) in listening, (name, url)
        assert url.startswith("http://127.0.0.1:"), "health checks run inside the container"


def test_every_setting_compose_passes_is_one_the_service_reads(compose: Compose) -> None:
    # pydantic-settings ignores unknown variables (extra="ignore"): a misspelt name would be dropped
    # silently and the service would run on its default.
    for name, settings in SETTINGS.items():
        known = environment_names(settings)
        passed = {k for k in compose.environment(name) if k.startswith(("DRIFTWATCH_", "MLFLOW_"))}
        assert passed - known == set(), f"{name}: {sorted(passed - known)} are not settings of {settings.__name__}"


def test_the_settings_name_reader_finds_aliases_and_nested_registry_settings() -> None:
    names = environment_names(ServingSettings)
    assert {"DRIFTWATCH_SERVING_PORT", "DRIFTWATCH_ADMIN_TOKEN_FILE", "MLFLOW_TRACKING_URI",
            "DRIFTWATCH_MODEL_NAME", "DRIFTWATCH_HOME"} <= names
    assert "DRIFTWATCH_REGISTRY" not in names and "DRIFTWATCH_PORT" not in names


def test_compose_gives_each_service_the_names_driftwatch_up_gives_it(compose: Compose,
                                                                     stack_env: dict[str, dict[str, str]]) -> None:
    # `driftwatch up` runs the same services as processes: where it sets a listen address, a port
    # or the serving URLs, compose must set the same variable.
    for name, process in STACK_PROCESS.items():
        if process not in stack_env:
            continue
        specific = {k for k in stack_env[process] if k.endswith(("_HOST", "_PORT", "_URLS"))}
        missing = specific - set(compose.environment(name))
        assert missing == set(), f"{name}: compose does not set {missing}"


def test_token_files_the_stack_passes_are_mounted_as_secrets_where_compose_sets_them(compose: Compose) -> None:
    for name in compose.services:
        env = compose.environment(name)
        mounted = {s.get("target") or s["source"] for s in compose.secrets(name)}
        for key, value in env.items():
            if key.endswith("__FILE") or key.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), (name, key, value)
                assert value.removeprefix("/run/secrets/") in mounted, f"{name}: {key} points at an unmounted secret"


def test_services_that_authenticate_get_their_tokens(compose: Compose) -> None:
    assert compose.environment("serving")["DRIFTWATCH_ADMIN_TOKEN_FILE"] == "/run/secrets/admin_token"
    webhook = compose.environment("rollback-webhook")
    assert webhook["DRIFTWATCH_WEBHOOK_TOKEN_FILE"] == "/run/secrets/webhook_token"
    assert webhook["DRIFTWATCH_ADMIN_TOKEN_FILE"] == "/run/secrets/admin_token"
    assert {s["source"] for s in compose.secrets("alertmanager")} == {"webhook_token", "slack_webhook_url"}


def test_the_rollback_webhook_reloads_every_serving_replica_by_its_compose_name(compose: Compose) -> None:
    webhook = compose.environment("rollback-webhook")
    assert webhook["DRIFTWATCH_SERVING_URLS"].split(",") == [f"http://serving:{CONTRACT_PORTS['serving']}"]
    # the name resolves to every replica; each address is told to reload, not one behind the balancer
    assert webhook["DRIFTWATCH_SERVING_URLS_RESOLVE_ALL"] == "true"


def test_every_registry_client_uses_the_compose_mlflow(compose: Compose) -> None:
    for name in ("trainer", "serving", "drift-exporter", "rollback-webhook"):
        assert compose.environment(name)["MLFLOW_TRACKING_URI"] == f"http://mlflow:{CONTRACT_PORTS['mlflow']}"
    allowed = next(a for a in compose.command("mlflow") if a.startswith("--allowed-hosts="))
    hosts = allowed.split("=", 1)[1].split(",")
    # MLflow 3 answers 403 to an unknown Host header (its health endpoint excepted, so a health
    # check alone would not notice): the name the clients use must be allowed, with its port.
    assert {"mlflow", f"mlflow:{CONTRACT_PORTS['mlflow']}"} <= set(hosts)


def test_mlflow_keeps_its_backend_store_in_postgres_and_artifacts_in_minio_with_credentials_from_files(
        compose: Compose) -> None:
    command = compose.command("mlflow")
    backend = next(a for a in command if a.startswith("--backend-store-uri=")).split("=", 1)[1]
    artifacts = next(a for a in command if a.startswith("--artifacts-destination=")).split("=", 1)[1]
    postgres = compose.environment("postgres")
    assert backend == f"postgresql://{postgres['POSTGRES_USER']}@postgres:5432/{postgres['POSTGRES_DB']}"
    assert artifacts.startswith("s3://mlflow-artifacts/") and "mc mb --ignore-existing local/mlflow-artifacts" in " ".join(
        compose.command("minio-bucket"))
    assert command[:3] == ["python", "-m", "driftwatch.secret_env"]  # reads the *_FILE secrets, then runs mlflow
    env = compose.environment("mlflow")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    from driftwatch.secret_env import NAMES

    for name in ("PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert name in NAMES and name not in env and env[f"{name}_FILE"].startswith("/run/secrets/")
    # The same secret files on both sides of each connection.
    assert postgres["POSTGRES_PASSWORD_FILE"] == env["PGPASSWORD_FILE"]
    minio = compose.environment("minio")
    assert (minio["MINIO_ROOT_USER_FILE"], minio["MINIO_ROOT_PASSWORD_FILE"]) == (
        env["AWS_ACCESS_KEY_ID_FILE"], env["AWS_SECRET_ACCESS_KEY_FILE"])
    webhook = compose.environment("rollback-webhook")
    assert webhook["DRIFTWATCH_WEBHOOK_STORE"] == "postgresql://driftwatch@postgres:5432/webhook"
    assert webhook["DRIFTWATCH_WEBHOOK_STORE_PASSWORD_FILE"] == env["PGPASSWORD_FILE"]
    assert "CREATE DATABASE webhook OWNER driftwatch" in (
        REPO / "deploy" / "postgres" / "initdb" / "10-webhook-database.sql").read_text()


def test_prediction_log_volume_is_shared_by_serving_and_drift_exporter_where_the_setting_points(
        compose: Compose) -> None:
    for name, writable in (("serving", True), ("drift-exporter", False)):
        env = compose.environment(name)
        assert env["DRIFTWATCH_PREDICTION_LOG_DIR"] == PREDICTION_LOG_DIR
        # the default ($DRIFTWATCH_HOME/predictions) is the same folder, should the setting be dropped
        assert f"{env['DRIFTWATCH_HOME']}/predictions" == PREDICTION_LOG_DIR
        mounts = [m for m in compose.volumes(name) if m.target == PREDICTION_LOG_DIR]
        assert [m.source for m in mounts] == ["prediction-logs"], name
        assert mounts[0].read_only is not writable, f"{name}: read_only should be {not writable}"
    # replicas must not share a log file: each keeps the default instance name (hostname-pid)
    assert "DRIFTWATCH_SERVING_INSTANCE" not in compose.environment("serving")


def test_every_mounted_host_path_exists_in_the_repository(compose: Compose) -> None:
    host_mounts = [(name, m) for name in compose.services for m in compose.volumes(name) if m.is_host_path]
    assert host_mounts, "no configuration is mounted"
    for name, mount in host_mounts:
        assert mount.source.startswith("./"), f"{name}: {mount.source} is not relative to the repository"
        assert (REPO / mount.source).exists(), f"{name}: {mount.source} does not exist"
        assert mount.read_only, f"{name}: configuration {mount.source} should be mounted read-only"
