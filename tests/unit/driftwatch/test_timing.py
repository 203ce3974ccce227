from pathlib import Path

import pytest

from driftwatch.timing import recovery_floor
from monitoring.durations import parse_duration
from monitoring.render import render_stack_config


def render(tmp_path: Path, timing: str) -> Path:
    targets = {job: ["127.0.0.1:1"] for job in ("serving", "drift_exporter", "rollback_webhook", "quality",
                                                 "prometheus", "alertmanager")}
    token = tmp_path / "token"
    token.write_text("t" * 24)
    render_stack_config(tmp_path / timing, targets=targets, webhook_url="http://127.0.0.1:2/alerts",
                        webhook_token_file=token, slack_url_file=None, slack_fallback_url="http://127.0.0.1:3/x",
                        grafana_url="http://127.0.0.1:3000", alertmanager_url="http://127.0.0.1:4",
                        timing=timing)  # type: ignore[arg-type]
    return tmp_path / timing


@pytest.mark.parametrize("timing", ["production", "demo"])
def test_the_floor_adds_up_the_rendered_intervals(tmp_path: Path, timing: str) -> None:
    floor = recovery_floor(render(tmp_path, timing), poll_interval=1.0)
    assert floor["for"] > 0 and floor["scrape_interval"] > 0 and floor["group_wait"] >= 0
    parts = sum(v for k, v in floor.items() if k != "total")
    assert floor["total"] == pytest.approx(parts)


def test_the_demo_floor_is_much_shorter_than_production(tmp_path: Path) -> None:
    production = recovery_floor(render(tmp_path, "production"), poll_interval=5.0)
    demo = recovery_floor(render(tmp_path, "demo"), poll_interval=1.0)
    assert production["for"] == parse_duration("5m")
    assert demo["total"] < production["total"] / 10


def test_an_unknown_alert_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NoSuchAlert"):
        recovery_floor(render(tmp_path, "demo"), alert="NoSuchAlert", poll_interval=1.0)
