"""docker-compose.yml against the compose specification, and as compose itself would read it."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit.deploy.deploy_files import (
    COMPOSE_FILE,
    Compose,
    InterpolationError,
    compose_schema,
    interpolate,
    variables_used,
)

ONE_SHOT = {"trainer", "minio-bucket"}


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_is_valid_against_the_compose_specification(compose: Compose) -> None:
    assert schema_errors(compose.raw) == []


def test_compose_file_stays_valid_once_the_example_env_is_interpolated(compose: Compose) -> None:
    assert schema_errors(compose.resolved) == []


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        pytest.param(lambda d: d["services"]["serving"].update(helthcheck={}), "services/serving",
                     id="misspelled-service-key"),
        pytest.param(lambda d: d["services"]["serving"]["depends_on"]["trainer"].update(condition="finished"),
                     "services/serving/depends_on", id="unknown-depends-on-condition"),
        pytest.param(lambda d: d["secrets"]["admin_token"].update(value="x"), "secrets/admin_token",
                     id="unknown-secret-source"),
    ],
)
def test_the_schema_check_catches_mistakes_compose_would_refuse(compose: Compose, mutate: Any, where: str) -> None:
    broken = copy.deepcopy(compose.raw)
    mutate(broken)
    errors = schema_errors(broken)
    assert errors, "the schema accepted a broken file: the check would be vacuous"
    assert any(e.startswith(where) for e in errors), errors


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "value", "EMPTY": ""}
    assert interpolate("${SET:-d}|${EMPTY:-d}|${EMPTY-d}|${UNSET-d}|$$SET|$SET", env) == "value|d||d|$SET|value"
    assert interpolate("${SET:+alt}|${EMPTY:+alt}|${EMPTY+alt}", env) == "alt||alt"
    with pytest.raises(InterpolationError):
        interpolate("${EMPTY:?must be set}", env)


def test_every_variable_is_in_env_example_or_has_a_default(compose: Compose, env_example: dict[str, str]) -> None:
    missing = sorted({u.name for u in variables_used(compose.text) if not u.has_default and u.name not in env_example})
    assert missing == [], f"set in .env.example or give a ${{VAR:-default}}: {missing}"


def test_every_secret_comes_from_a_variable_in_env_example(compose: Compose, env_example: dict[str, str]) -> None:
    for name, secret in compose.resolved["secrets"].items():
        assert set(secret) == {"environment"}, f"secret {name} should come from .env, not a file in the repo"
        assert secret["environment"] in env_example, f"secret {name}: {secret['environment']} not in .env.example"


def test_depends_on_names_services_with_conditions_they_can_meet(compose: Compose) -> None:
    for name, service in compose.services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in compose.services, f"{name} depends on unknown service {dependency}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in compose.services[dependency], f"{name} waits for {dependency} to be healthy"
            elif condition == "service_completed_successfully":
                assert compose.services[dependency].get("restart", "no") == "no", \
                    f"{name} waits for {dependency} to finish, but it restarts"
            else:
                pytest.fail(f"{name} -> {dependency}: condition {condition}")


def test_the_trainer_finishes_before_the_services_that_need_a_model_start(compose: Compose) -> None:
    for name in ("serving", "drift-exporter"):
        assert compose.services[name]["depends_on"]["trainer"] == {"condition": "service_completed_successfully"}
    assert compose.services["trainer"]["depends_on"]["mlflow"] == {"condition": "service_healthy"}


def test_every_long_running_service_has_a_healthcheck_and_restarts(compose: Compose) -> None:
    for name, service in compose.services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no"
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test", [None])[0] == "CMD", f"{name}: healthcheck missing or not exec form"
        assert service.get("restart") == "unless-stopped", name


def test_named_volumes_and_secrets_are_declared_and_used(compose: Compose) -> None:
    declared_volumes = set(compose.resolved.get("volumes") or {})
    declared_secrets = set(compose.resolved.get("secrets") or {})
    used_volumes = {m.source for s in compose.services for m in compose.volumes(s)
                    if not m.is_host_path and not m.is_anonymous}
    used_secrets = {x["source"] for s in compose.services for x in compose.secrets(s)}
    assert used_volumes == declared_volumes
    assert used_secrets == declared_secrets


def test_published_ports_bind_to_loopback_unless_told_otherwise(compose: Compose) -> None:
    raw_ports = [p for s in compose.raw["services"].values() for p in s.get("ports") or []]
    assert raw_ports, "nothing is published"
    for port in raw_ports:
        assert str(port).startswith("${DRIFTWATCH_BIND_ADDRESS:-127.0.0.1}:"), port
    for name in compose.services:
        for port in compose.published_ports(name):
            assert port.host_ip == "127.0.0.1", (name, port)
            assert port.host_port == port.container_port, (name, port)


def test_python_services_share_one_locally_built_non_root_image(compose: Compose) -> None:
    python_services = [s for s in compose.services if compose.uses_driftwatch_image(s)]
    assert set(python_services) >= {"mlflow", "trainer", "serving", "drift-exporter", "rollback-webhook"}
    for name in python_services:
        service = compose.services[name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
        assert service["image"] == "driftwatch:local"
        assert service["user"] == "10001:10001"
        assert service["cap_drop"] == ["ALL"]


def test_third_party_images_are_pinned_to_a_version(compose: Compose) -> None:
    for name, service in compose.services.items():
        if compose.uses_driftwatch_image(name):
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and any(c.isdigit() for c in tag), f"{name}: {image}"


def test_the_compose_file_parses_with_a_yaml_1_2_reader_the_same_way() -> None:
    # compose reads YAML 1.2 (0o444 is an octal number there); PyYAML reads 1.1. The check-jsonschema
    # loader (ruamel) is 1.2: both must accept the file.
    from ruamel.yaml import YAML

    data = YAML(typ="safe", pure=True).load(COMPOSE_FILE.read_text())
    assert schema_errors(data) == []
    modes = {x.get("mode") for s in data["services"].values() for x in s.get("secrets") or [] if isinstance(x, dict)}
    assert modes == {0o444}
    assert yaml.safe_load(COMPOSE_FILE.read_text())["name"] == data["name"] == "driftwatch"


def test_secret_files_are_readable_by_the_service_whoever_compose_makes_the_owner(compose: Compose) -> None:
    # Some compose releases ignore uid/gid for secrets from environment variables (root-owned file):
    # the mode must let the service's non-root user read it either way.
    mounts = [(name, s) for name in compose.services for s in compose.secrets(name)]
    assert mounts
    for name, secret in mounts:
        mode = secret["mode"] if isinstance(secret["mode"], int) else int(str(secret["mode"]), 0)
        assert mode & 0o444 == 0o444 and mode & 0o222 == 0, f"{name}: {secret}"
        assert secret["uid"].isdigit() and secret["gid"].isdigit(), f"{name}: numeric owner expected"
