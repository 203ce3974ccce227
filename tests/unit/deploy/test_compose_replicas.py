"""docker-compose.yml runs serving as several replicas: nginx in front of them on the serving port,
Prometheus scraping each one by DNS discovery (test_compose_monitoring.py), the webhook reloading
every one (test_compose_consistency.py), one prediction log file per replica."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.procs import require_binary
from tests.unit.deploy.deploy_files import REPO, Compose

NGINX_CONF = REPO / "deploy" / "nginx" / "serving.conf"
SERVING_PORT = 8000  # docs/contract.md
DOCKER_DNS = "127.0.0.11"


def nginx() -> str:
    """Debian's nginx (in /usr/sbin, which a non-root PATH may lack)."""
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else require_binary("nginx")


def nginx_test(conf: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on ``conf`` included in http{} the way the nginx image's nginx.conf includes conf.d/."""
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
                    f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
                    f"  proxy_temp_path {tmp_path}/proxy;\n  include {conf};\n}}\n")
    return subprocess.run([nginx(), "-t", "-q", "-p", str(tmp_path), "-c", str(main)], capture_output=True,
                          text=True, timeout=60, check=False)


def test_serving_runs_several_replicas_that_publish_nothing_themselves(compose: Compose) -> None:
    serving = compose.services["serving"]
    assert int(serving["deploy"]["replicas"]) >= 2
    assert not compose.published_ports("serving"), "replicas cannot share a published host port"
    assert [int(p) for p in serving["expose"]] == [SERVING_PORT]
    # no state shared between replicas but the prediction log volume
    shared = {m.source for m in compose.volumes("serving") if not m.is_anonymous and not m.is_host_path}
    assert shared == {"prediction-logs"}


def test_the_balancer_publishes_the_serving_port_and_runs_the_checked_config(compose: Compose) -> None:
    balancer = compose.services["serving-balancer"]
    assert [(p.container_port, p.host_port) for p in compose.published_ports("serving-balancer")] == [
        (SERVING_PORT, SERVING_PORT)]
    mounts = {m.target: m for m in compose.volumes("serving-balancer")}
    mount = mounts["/etc/nginx/conf.d/default.conf"]
    assert (REPO / mount.source).resolve() == NGINX_CONF and mount.read_only
    assert balancer["depends_on"]["serving"]["condition"] == "service_healthy"


def test_the_balancer_image_is_the_nginx_that_checks_its_config_here(compose: Compose) -> None:
    version = subprocess.run([nginx(), "-v"], capture_output=True, text=True, timeout=30, check=False).stderr
    found = re.search(r"nginx/(\d+\.\d+\.\d+)", version)
    assert found, version
    assert compose.services["serving-balancer"]["image"] == f"nginx:{found[1]}-alpine"


def test_nginx_accepts_the_balancer_config(tmp_path: Path) -> None:
    result = nginx_test(NGINX_CONF, tmp_path)
    assert result.returncode == 0, result.stderr


def test_nginx_check_is_not_vacuous(tmp_path: Path) -> None:
    broken = tmp_path / "broken.conf"
    broken.write_text(NGINX_CONF.read_text().replace("proxy_pass $serving;", "proxy_pass $serving"))
    assert nginx_test(broken, tmp_path).returncode != 0


def test_the_balancer_resolves_the_replicas_at_run_time_through_dockers_dns() -> None:
    """A fixed upstream would be resolved once at start-up: re-created replicas (new addresses) and
    replicas added by `--scale` would never get traffic."""
    conf = NGINX_CONF.read_text()
    assert re.search(rf"^resolver {re.escape(DOCKER_DNS)} valid=\d+s", conf, flags=re.M)
    assert re.search(rf"set \$serving http://serving:{SERVING_PORT};", conf)
    assert "proxy_pass $serving;" in conf
    assert f"listen {SERVING_PORT};" in conf
    # requests that reached a replica are not re-sent elsewhere (a prediction would be logged twice)
    next_upstream = re.search(r"proxy_next_upstream ([^;]+);", conf)
    assert next_upstream and "non_idempotent" not in next_upstream[1]
