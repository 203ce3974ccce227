"""Shared pieces of the monitoring tests: the binaries, and configs rendered the way a stack would."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from monitoring.render import JOBS, RenderedConfig, render_stack_config
from tests.support.procs import require_binary

Render = Callable[..., RenderedConfig]


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_binary("amtool")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


@pytest.fixture
def render(tmp_path: Path) -> Render:
    """Render into a fresh folder; keyword arguments override the local defaults."""
    token = tmp_path / "webhook-token"
    token.write_text("not-a-real-token-0123456789")
    counter = iter(range(1000))

    def _render(**overrides: object) -> RenderedConfig:
        arguments: dict[str, object] = {
            "targets": {job: [f"127.0.0.1:{port}"] for job, port in zip(JOBS, (8000, 9101, 9102, 9103, 9090, 9093),
                                                                         strict=True)},
            "webhook_url": "http://127.0.0.1:9102/alerts",
            "webhook_token_file": token,
            "slack_url_file": None,
            "slack_fallback_url": "http://127.0.0.1:9199/services/local-sink",
            "grafana_url": "http://grafana.example.test:3000",
            "alertmanager_url": "http://127.0.0.1:9093",
            "timing": "production",
        }
        arguments.update(overrides)
        return render_stack_config(tmp_path / f"out{next(counter)}", **arguments)  # type: ignore[arg-type]

    return _render
