"""nginx in front of serving replicas: the configuration `driftwatch up --replicas N` runs it with.

nginx (Debian's package) runs as a plain process, never as a system service: ``nginx -p PREFIX -c
CONF -e ERROR_LOG`` with ``daemon off`` in the configuration, so the process supervisor owns it and
SIGTERM stops it. Every path it writes (pid file, temporary folders, error log) is under the
stack's folder; it listens only where it is told (the stack's host and serving port).

Choices, each one a line of the rendered configuration:

- round robin over the replicas, with keep-alive connections to them (HTTP/1.1, no ``Connection:
  close``), so a request does not pay a TCP handshake to its replica;
- a replica that refuses the connection or does not accept it within ``connect_timeout`` is
  skipped for ``fail_timeout`` and the request goes to the next one (``proxy_next_upstream error
  timeout``): nginx never sends a request twice once a replica has it, so a POST is never answered
  twice; the price is that a request a replica was answering when it died gets a 502;
- request bodies stream to the replica (``proxy_request_buffering off``) and nginx puts no limit
  of its own on their size: serving enforces ``DRIFTWATCH_MAX_BODY_BYTES`` and answers 413 with its
  JSON error, the same through the balancer as without it;
- answers are buffered in memory only (``proxy_max_temp_file_size 0``): the worker never needs to
  write files, whatever user it runs as;
- no access log (one line per prediction would cost throughput; serving counts requests).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def nginx_binary() -> str:
    """Path of nginx (Debian puts it in /usr/sbin, which a non-root PATH may lack)."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in NGINX_PATHS:
        if Path(candidate).is_file():
            return candidate
    raise FileNotFoundError("nginx is not installed; run `make system-deps` (Debian package nginx)")


@dataclass(frozen=True)
class BalancerConfig:
    """One nginx in front of ``upstreams`` (``host:port`` each), listening on ``listen``."""

    listen: str
    upstreams: Sequence[str]
    prefix: Path  # pid file, temporary folders, the rendered configuration
    error_log: Path
    worker_processes: int = 1
    connect_timeout_seconds: float = 1.0
    read_timeout_seconds: float = 60.0
    fail_timeout_seconds: float = 5.0
    keepalive: int = 32

    @property
    def conf_path(self) -> Path:
        return self.prefix / "nginx.conf"

    def argv(self, binary: str | None = None) -> list[str]:
        return [binary or nginx_binary(), "-p", f"{self.prefix}/", "-c", str(self.conf_path), "-e",
                str(self.error_log)]


def _check_address(address: str, what: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or any(c in address for c in " ;{}/\n"):
        raise ValueError(f"{what} {address!r} must be host:port")


def render_nginx_config(config: BalancerConfig) -> str:
    """The nginx configuration text (see the module docstring for the choices)."""
    _check_address(config.listen, "listen address")
    if not config.upstreams:
        raise ValueError("the load balancer needs at least one serving replica")
    for upstream in config.upstreams:
        _check_address(upstream, "replica address")
    temp = config.prefix / "temp"
    servers = "\n".join(
        f"        server {address} max_fails=1 fail_timeout={config.fail_timeout_seconds:g}s;"
        for address in config.upstreams)
    return f"""# Rendered by driftwatch/balancer.py for `driftwatch up`; changes are overwritten at the next start.
daemon off;
master_process on;
worker_processes {config.worker_processes};
pid {config.prefix / "nginx.pid"};
error_log {config.error_log} warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    client_body_temp_path {temp / "client_body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    server_tokens off;

    upstream serving_replicas {{
{servers}
        keepalive {config.keepalive};
    }}

    server {{
        listen {config.listen};

        location / {{
            proxy_pass http://serving_replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout {config.connect_timeout_seconds:g}s;
            proxy_read_timeout {config.read_timeout_seconds:g}s;
            proxy_send_timeout {config.read_timeout_seconds:g}s;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries {len(config.upstreams)};
            client_max_body_size 0;
            proxy_request_buffering off;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""


def write_nginx_config(config: BalancerConfig) -> Path:
    """Write the configuration and create the folders nginx writes to."""
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (config.prefix / "temp" / name).mkdir(parents=True, exist_ok=True)
    config.error_log.parent.mkdir(parents=True, exist_ok=True)
    config.conf_path.write_text(render_nginx_config(config))
    return config.conf_path
