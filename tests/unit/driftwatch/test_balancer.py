"""driftwatch.balancer: the nginx configuration in front of serving replicas, checked by nginx itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from driftwatch.balancer import BalancerConfig, nginx_binary, render_nginx_config, write_nginx_config
from tests.support.procs import IN_CI


def config(tmp_path: Path, **overrides: object) -> BalancerConfig:
    values: dict[str, object] = {"listen": "127.0.0.1:18000", "upstreams": ["127.0.0.1:18001", "127.0.0.1:18002"],
                                 "prefix": tmp_path / "nginx", "error_log": tmp_path / "logs" / "lb.log"}
    values.update(overrides)
    return BalancerConfig(**values)  # type: ignore[arg-type]


def test_every_replica_is_an_upstream_and_failed_connections_go_to_the_next(tmp_path: Path) -> None:
    text = render_nginx_config(config(tmp_path))
    assert "server 127.0.0.1:18001 max_fails=1 fail_timeout=5s;" in text
    assert "server 127.0.0.1:18002 max_fails=1 fail_timeout=5s;" in text
    assert "listen 127.0.0.1:18000;" in text
    assert "proxy_next_upstream error timeout;" in text  # never non_idempotent: a POST is not sent twice
    assert "daemon off;" in text
    assert "client_max_body_size 0;" in text  # serving enforces its own limit with its JSON 413


@pytest.mark.parametrize(("overrides", "message"), [
    ({"upstreams": []}, "at least one serving replica"),
    ({"upstreams": ["127.0.0.1:1; include /etc/passwd"]}, "must be host:port"),
    ({"listen": "8000"}, "must be host:port"),
])
def test_addresses_are_checked_before_they_reach_the_configuration(tmp_path: Path, overrides: dict[str, object],
                                                                   message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_nginx_config(config(tmp_path, **overrides))


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    try:
        binary = nginx_binary()
    except FileNotFoundError:
        if IN_CI:
            raise
        pytest.skip("nginx is not installed (make system-deps)")
    cfg = config(tmp_path)
    write_nginx_config(cfg)
    checked = subprocess.run([*cfg.argv(binary), "-t"], capture_output=True,
                             text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
