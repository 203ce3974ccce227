"""The pieces the three services share (driftwatch.settings, service, clock, auth, waiting,
http_metrics): one copy each, and the disagreements the copies had are gone."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr

from drift_exporter.app import create_app as create_exporter
from drift_exporter.settings import DriftExporterSettings
from driftwatch.auth import bearer_matches, bearer_token
from driftwatch.clock import iso_utc, parse_iso
from driftwatch.service import load_settings
from driftwatch.settings import DRIFT_PORT_ENV, check_secret, read_secret
from driftwatch.stack import StackSettings
from driftwatch.waiting import ProcessExited, WaitTimeout, wait_for, wait_for_http
from quality.settings import QualitySettings
from rollback_webhook.settings import WebhookSettings
from serving.settings import ServingSettings
from tests.support.procs import free_port


@pytest.mark.parametrize("cls", [ServingSettings, DriftExporterSettings, WebhookSettings, QualitySettings])
def test_every_service_reads_the_log_level(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWATCH_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("DRIFTWATCH_WEBHOOK_TOKEN", "w" * 32)
    settings = load_settings(cls, "test")
    assert settings.log_level == "WARNING"
    assert logging.getLogger().level == logging.WARNING


def test_a_bad_setting_exits_2_with_a_sentence_naming_it(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DRIFTWATCH_LOG_LEVEL", "LOUD")
    with pytest.raises(SystemExit) as stopped:
        load_settings(DriftExporterSettings, "drift exporter")
    assert stopped.value.code == 2
    assert "drift exporter: invalid settings: DRIFTWATCH_LOG_LEVEL: Input should be" in capsys.readouterr().err


def test_driftwatch_up_and_the_exporter_read_the_same_port_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DRIFT_PORT_ENV, "9555")
    assert DRIFT_PORT_ENV == "DRIFTWATCH_DRIFT_PORT"
    assert StackSettings().drift_exporter_port == 9555
    assert DriftExporterSettings().port == 9555
    monkeypatch.setenv("DRIFTWATCH_SERVING_PORT", "8555")
    monkeypatch.setenv("DRIFTWATCH_WEBHOOK_PORT", "9556")
    assert (StackSettings().serving_port, StackSettings().webhook_port) == (8555, 9556)


def test_a_secret_comes_from_a_value_or_a_file_never_both(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  a-perfectly-long-secret-value \n")
    assert read_secret(None, path) == "a-perfectly-long-secret-value"
    assert read_secret(SecretStr(" v" * 10), None) == ("v " * 10).strip()
    assert read_secret(None, None) is None
    with pytest.raises(ValueError, match="set X or X_FILE, not both"):
        check_secret("X", SecretStr("x" * 20), path, required=False)
    with pytest.raises(ValueError, match=r"X_FILE .* does not exist"):
        check_secret("X", None, tmp_path / "missing", required=False)
    with pytest.raises(ValueError, match=r"X \(or X_FILE\) is required"):
        check_secret("X", None, None, required=True)
    with pytest.raises(ValueError, match="at least 16 characters"):
        check_secret("X", SecretStr("short"), None, required=False)
    with pytest.raises(ValueError, match="placeholder") as refused:
        check_secret("X", SecretStr("replace-me-with-something-long"), None, required=False)
    assert "replace-me-with-something-long" not in str(refused.value)  # never the value itself
    check_secret("X", None, path, required=True)


def test_time_is_written_one_way_and_read_back() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert iso_utc(moment) == "2026-01-02T03:04:05.678Z"
    assert iso_utc(moment.timestamp(), timespec="seconds") == "2026-01-02T03:04:05Z"
    assert parse_iso("2026-01-02T03:04:05.678Z") == pytest.approx(moment.timestamp(), abs=1e-3)
    assert parse_iso("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    for not_a_time in (None, 17, "yesterday", "2026-13-01T00:00:00Z"):
        assert parse_iso(not_a_time) is None


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"), ("bearer   abc  ", "abc"), ("BEARER abc", "abc"),
    ("Basic abc", None), ("Bearer", None), ("Bearer   ", None), ("", None), (None, None)])
def test_one_bearer_parser(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
    assert bearer_matches(header, "abc") is (token == "abc")


def test_waiting_returns_the_first_truthy_answer_or_says_what_it_waited_for() -> None:
    answers = iter([None, 0, "yes"])
    assert wait_for("an answer", lambda: next(answers), timeout=5, interval=0.01) == "yes"
    with pytest.raises(WaitTimeout, match="waiting for nothing"):
        wait_for("nothing", lambda: None, timeout=0.05, interval=0.01)
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(ProcessExited, match="exited with status 3"):
        wait_for("a dead process", lambda: None, timeout=5, proc=proc)  # type: ignore[arg-type]


def test_wait_for_http_polls_until_2xx_and_reports_the_last_status() -> None:
    calls: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            calls.append(1)
            self.send_response(200 if len(calls) >= 3 else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        assert wait_for_http(url, timeout=10, interval=0.01).status_code == 200
        with pytest.raises(WaitTimeout, match="HTTP 200"):
            wait_for_http(url, timeout=0.2, interval=0.01, ok=lambda r: r.status_code == 204)
    finally:
        server.shutdown()
        server.server_close()
    assert len(calls) >= 3


class _NoSource:
    def production_version(self, *, with_metrics: bool = True) -> None:
        return None

    def download_reference(self, version: str, dst: Path) -> Path:
        raise AssertionError("not called")


def test_the_drift_exporter_counts_its_http_requests_like_the_other_services(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    app = create_exporter(DriftExporterSettings(home=tmp_path), registry=registry, source=_NoSource(),
                          schedule=False)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/no-such-page").status_code == 404
        assert client.post("/health").status_code == 405
        assert client.post("/drift", content=b"x" * (1 << 20)).status_code == 413  # before routing
    text = generate_latest(registry).decode()
    assert 'http_requests_total{handler="/drift",method="POST",status="413"} 1.0' in text
    assert 'http_requests_total{handler="/health",method="GET",status="200"} 1.0' in text
    assert 'http_requests_total{handler="unmatched",method="GET",status="404"} 1.0' in text
    assert 'http_requests_total{handler="/health",method="POST",status="405"} 1.0' in text
    assert 'http_request_duration_seconds_count{handler="/health",method="GET"} 1.0' in text


def test_the_quality_token_follows_the_same_secret_rule(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="DRIFTWATCH_QUALITY_TOKEN is still the placeholder"):
        QualitySettings(token=SecretStr("replace-me-with-a-long-random-token"))
    with pytest.raises(ValueError, match="at least 16 characters"):
        QualitySettings(token=SecretStr("short"))
    assert QualitySettings(token=SecretStr(" q" * 10)).resolved_token() == ("q " * 10).strip()
