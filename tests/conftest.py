"""Shared fixtures. Servers start on 127.0.0.1 with free ports and stop by themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import free_port, stop_process, wait_for_http

# MLflow's HTTP client retries for minutes by default; tests want fast, clear failures.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


@dataclass
class MlflowServer:
    url: str
    port: int
    root: Path
    proc: subprocess.Popen[bytes] | None
    log: Path

    def start(self) -> None:
        """(Re)start the server on the same port and stores (used by fault tests)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server",
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                 "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                 "--artifacts-destination", str(self.root / "artifacts")],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            # Generous: on a loaded 2-core machine the server's imports alone can take minutes.
            wait_for_http(f"{self.url}/health", timeout=240, proc=self.proc, log=self.log)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real `mlflow server` on loopback, shared by the session (tests use distinct model names)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    server = MlflowServer(url=f"http://127.0.0.1:{port}", port=port, root=root, proc=None,
                          log=root / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def driftwatch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DRIFTWATCH_HOME with the embedded SQLite registry, isolated from the user's."""
    home = tmp_path / "home"
    monkeypatch.setenv("DRIFTWATCH_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return home
