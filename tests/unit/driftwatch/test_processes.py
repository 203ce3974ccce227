import sys
import time
from pathlib import Path

import httpx
import pytest

from driftwatch.processes import ProcessFailed, ProcessSpec, Supervisor
from tests.support.procs import free_port


def http_server_spec(tmp_path: Path, name: str = "web") -> ProcessSpec:
    port = free_port()
    return ProcessSpec(name, [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                       tmp_path / f"{name}.log", health_url=f"http://127.0.0.1:{port}/", health_timeout=20)


def test_a_crashed_process_is_restarted_and_stop_all_ends_everything(tmp_path: Path) -> None:
    messages: list[str] = []
    supervisor = Supervisor(say=messages.append)
    spec = http_server_spec(tmp_path)
    try:
        supervisor.start(spec)
        first = supervisor.procs["web"]
        first.kill()
        first.wait(5)
        assert supervisor.check() == ["web"]
        assert "web exited" in messages[0]
        supervisor.wait_healthy(spec)
        assert httpx.get(spec.health_url or "").status_code == 200
    finally:
        supervisor.stop_all(timeout=5)
    assert all(p.poll() is not None for p in supervisor.procs.values())
    assert supervisor.check() == []  # nothing is restarted once stopping


def test_restarts_stop_after_the_limit(tmp_path: Path) -> None:
    supervisor = Supervisor(say=lambda _: None, max_restarts=2)
    spec = ProcessSpec("dies", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "dies.log")
    supervisor.start(spec)
    restarted = 0
    for _ in range(6):
        supervisor.procs["dies"].wait(5)
        restarted += len(supervisor.check())
    assert restarted == 2
    supervisor.stop_all(timeout=2)


def test_a_process_that_dies_during_start_up_fails_with_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor(say=lambda _: None)
    spec = ProcessSpec("broken", [sys.executable, "-c", "print('config is wrong'); raise SystemExit(2)"],
                       tmp_path / "broken.log", health_url=f"http://127.0.0.1:{free_port()}/", health_timeout=10)
    started = time.monotonic()
    with pytest.raises(ProcessFailed, match="config is wrong"):
        supervisor.start(spec)
    assert time.monotonic() - started < 9
    supervisor.stop_all(timeout=2)
