"""deploy/healthcheck.py (the containers' health check) and deploy/bootstrap_model.py (the trainer)."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import pytest

from tests.support.procs import free_port
from tests.unit.deploy.deploy_files import REPO


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", REPO / "deploy" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = load("healthcheck")
bootstrap_model = load("bootstrap_model")


@pytest.fixture(scope="module")
def status_server() -> Iterator[str]:
    """Answers GET /<status> with that HTTP status, on 127.0.0.1."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(int(self.path.strip("/")))
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "code"), [(200, 0), (204, 0), (503, 1), (404, 1)])
def test_healthcheck_exit_status_follows_the_http_status(status_server: str, status: int, code: int) -> None:
    assert healthcheck.main([f"{status_server}/{status}", "--timeout", "2"]) == code


def test_healthcheck_fails_when_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    assert healthcheck.main([url, "--timeout", "1"]) == 1
    assert "unreachable" in capsys.readouterr().err


class FakeRegistry:
    def __init__(self, answers: list[object]) -> None:
        self.answers = answers
        self.calls = 0

    def production_version(self, *, with_metrics: bool = True) -> object | None:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Version:
    version = "3"


class Unavailable(Exception):
    pass


def run(registry: FakeRegistry, *, wait_seconds: float = 60.0) -> tuple[int, list[str], list[float]]:
    trained: list[str] = []
    slept: list[float] = []

    def train() -> int:
        trained.append("train --promote")
        return 0

    code = bootstrap_model.bootstrap(registry, train, model_name="iris-classifier", unavailable=(Unavailable,),
                                     wait_seconds=wait_seconds, sleep=slept.append, say=lambda _: None)
    return code, trained, slept


def test_trainer_trains_and_promotes_when_nothing_is_in_production() -> None:
    code, trained, _ = run(FakeRegistry([None]))
    assert (code, trained) == (0, ["train --promote"])


def test_trainer_leaves_an_existing_production_version_alone() -> None:
    code, trained, _ = run(FakeRegistry([Version()]))
    assert (code, trained) == (0, [])


def test_trainer_reports_a_refused_promotion_as_failure() -> None:
    code = bootstrap_model.bootstrap(FakeRegistry([None]), lambda: 3, model_name="m", say=lambda _: None)
    assert code == 3


def test_trainer_waits_for_a_registry_that_is_still_starting() -> None:
    registry = FakeRegistry([Unavailable("connection refused"), Unavailable("503"), None])
    code, trained, slept = run(registry)
    assert (code, trained, registry.calls, len(slept)) == (0, ["train --promote"], 3, 2)


def test_trainer_gives_up_on_a_registry_that_stays_down() -> None:
    code, trained, _ = run(FakeRegistry([Unavailable("down")] * 3), wait_seconds=0)
    assert (code, trained) == (1, [])
