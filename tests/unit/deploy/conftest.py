"""Fixtures for the static checks of docker-compose.yml, the Dockerfile and .env.example."""

from __future__ import annotations

import pytest
import yaml

from tests.unit.deploy.deploy_files import (
    COMPOSE_FILE,
    DOCKERFILE,
    ENV_EXAMPLE,
    Compose,
    Stage,
    interpolate_tree,
    parse_dockerfile,
    read_env_file,
)


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="session")
def compose(env_example: dict[str, str]) -> Compose:
    text = COMPOSE_FILE.read_text()
    raw = yaml.safe_load(text)
    return Compose(raw=raw, resolved=interpolate_tree(raw, env_example), text=text)


@pytest.fixture(scope="session")
def dockerfile() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())
