"""`driftwatch up` / `down`: the whole stack on this machine as supervised processes.

Order: [MLflow server] → Slack sink (when no real Slack URL) → serving (one process, or N replicas
and nginx in front of them) → drift exporter → rollback webhook → quality service → Alertmanager →
Prometheus. Each must be healthy before the next starts. Logs go to ``$DRIFTWATCH_HOME/logs``;
rendered configs, tokens, Prometheus' service-discovery file and the pid file to
``$DRIFTWATCH_HOME/stack``.

With replicas (``driftwatch up --replicas N``) clients use the balancer on the serving port;
everything that must reach each replica does so directly, never through the balancer: Prometheus
scrapes each one (file-based service discovery, ``stack/targets/serving.json``), the rollback
webhook reloads each one, and the drift exporter reads each one's prediction log (one file per
replica, ``predictions-serving-<i>.jsonl``, in the shared prediction log folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftwatch.backend import LocalBackend, start_local_backend
from driftwatch.balancer import BalancerConfig, nginx_binary, write_nginx_config
from driftwatch.processes import ProcessSpec, Supervisor
from driftwatch.settings import (
    DRIFT_PORT,
    DRIFT_PORT_ENV,
    SERVING_PORT,
    SERVING_PORT_ENV,
    WEBHOOK_PORT,
    WEBHOOK_PORT_ENV,
)
from driftwatch.settings import (
    env as _env,
)

Timing = Literal["production", "demo"]
Backend = Literal["sqlite", "postgres"]


class StackSettings(BaseSettings):
    """Ports and secrets of the one-machine stack (environment prefix ``DRIFTWATCH_``)."""

    model_config = SettingsConfigDict(env_prefix="DRIFTWATCH_", extra="ignore", populate_by_name=True)

    home: Path = Path(".driftwatch")
    host: str = "127.0.0.1"
    # The same variables the services read (driftwatch.settings).
    serving_port: int = Field(default=SERVING_PORT, validation_alias=_env(SERVING_PORT_ENV, "serving_port"))
    drift_exporter_port: int = Field(default=DRIFT_PORT, validation_alias=_env(DRIFT_PORT_ENV, "drift_exporter_port"))
    webhook_port: int = Field(default=WEBHOOK_PORT, validation_alias=_env(WEBHOOK_PORT_ENV, "webhook_port"))
    quality_port: int = 9103
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    mlflow_port: int = 5000
    slack_sink_port: int = 9199
    serving_replicas: int | None = Field(
        default=None, ge=1, le=64,
        description="Serving processes behind nginx on the serving port; unset: one serving process on the "
                    "serving port itself, no balancer (docs/contract.md).")
    serving_replica_ports: str = Field(
        default="", description="Comma-separated ports of the replicas; default: the serving port + 1, + 2, ...")
    # Production timing uses the services' own variables and defaults; the demo's timing overrides them.
    poll_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    drift_interval_seconds: float = Field(default=30.0, gt=0, le=86400)
    grafana_url: str = "http://127.0.0.1:3000"
    slack_webhook_url: SecretStr | None = None
    slack_webhook_url_file: Path | None = None
    webhook_token: SecretStr | None = None
    webhook_token_file: Path | None = None
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None
    quality_token: SecretStr | None = None
    quality_token_file: Path | None = None
    model_name: str = "iris-classifier"
    registry_mode: str = "alias"
    tracking_uri: str | None = Field(default=None, validation_alias="MLFLOW_TRACKING_URI")
    # sqlite: the embedded registry (a file); postgres: `mlflow server` on a local PostgreSQL cluster
    # with artifacts in a local S3-compatible server (driftwatch/backend.py)
    backend: Backend = "sqlite"


def binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(f"{' or '.join(names)} is not installed; run `make system-deps` "
                            "(Debian packages prometheus and prometheus-alertmanager)")


def _secret_file(path: Path, given: SecretStr | None, given_file: Path | None) -> Path:
    """A secret as a file (mode 0600): the given file, the given value, or a new random token."""
    if given_file is not None:
        return given_file.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    if given is not None:
        value = given.get_secret_value()
    elif path.exists():
        return path
    else:
        value = secrets.token_urlsafe(24)
    path.write_text(value)
    path.chmod(0o600)
    return path


def _replica_ports(settings: StackSettings) -> list[int]:
    count = settings.serving_replicas or 0
    if not settings.serving_replica_ports.strip():
        return [settings.serving_port + i for i in range(1, count + 1)]
    try:
        ports = [int(p) for p in settings.serving_replica_ports.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"DRIFTWATCH_SERVING_REPLICA_PORTS must be comma-separated port numbers, got "
                         f"{settings.serving_replica_ports!r}") from None
    if len(ports) != count:
        raise ValueError(f"DRIFTWATCH_SERVING_REPLICA_PORTS names {len(ports)} ports for {count} replicas")
    if len(set(ports)) != len(ports) or settings.serving_port in ports:
        raise ValueError("every serving replica needs its own port, other than the serving (balancer) port")
    return ports


@dataclass
class StackUrls:
    serving: str  # what clients use: the balancer when there are replicas
    drift_exporter: str
    webhook: str
    quality: str
    prometheus: str
    alertmanager: str
    mlflow: str | None
    slack_sink: str | None
    serving_replicas: list[str]  # each replica directly (empty without replicas)


class Stack:
    """Renders the configuration and runs the processes of one stack."""

    def __init__(self, settings: StackSettings, *, timing: Timing = "production", with_mlflow_server: bool = False,
                 say: Callable[[str], None] = print, poll_interval: float | None = None,
                 drift_interval: float | None = None, backend: Backend | None = None) -> None:
        self.settings = settings
        self.timing = timing
        self.backend: Backend = backend or settings.backend
        # The PostgreSQL backend is always behind a tracking server.
        with_mlflow_server = with_mlflow_server or self.backend == "postgres"
        self.with_mlflow_server = with_mlflow_server
        self.local_backend: LocalBackend | None = None
        self._backend_started = False
        self.say = say
        self.home = settings.home.expanduser().resolve()
        self.dir = self.home / "stack"
        self.logs = self.home / "logs"
        self.supervisor = Supervisor(say=say)
        demo = timing == "demo"
        self.poll_interval = poll_interval if poll_interval is not None else (
            1.0 if demo else settings.poll_interval_seconds)
        self.drift_interval = drift_interval if drift_interval is not None else (
            5.0 if demo else settings.drift_interval_seconds)
        host = settings.host
        self.replica_ports = _replica_ports(settings)
        self.urls = StackUrls(
            serving=f"http://{host}:{settings.serving_port}",
            drift_exporter=f"http://{host}:{settings.drift_exporter_port}",
            webhook=f"http://{host}:{settings.webhook_port}",
            quality=f"http://{host}:{settings.quality_port}",
            prometheus=f"http://{host}:{settings.prometheus_port}",
            alertmanager=f"http://{host}:{settings.alertmanager_port}",
            mlflow=f"http://{host}:{settings.mlflow_port}" if with_mlflow_server else None,
            slack_sink=None if self._real_slack() else f"http://{host}:{settings.slack_sink_port}",
            serving_replicas=[f"http://{host}:{port}" for port in self.replica_ports],
        )
        self.webhook_token_file = _secret_file(self.dir / "webhook-token", settings.webhook_token,
                                               settings.webhook_token_file)
        self.admin_token_file = _secret_file(self.dir / "admin-token", settings.admin_token,
                                             settings.admin_token_file)
        self.quality_token_file = _secret_file(self.dir / "quality-token", settings.quality_token,
                                               settings.quality_token_file)

    # ------------------------------------------------------------------ config
    def _real_slack(self) -> bool:
        return self.settings.slack_webhook_url is not None or self.settings.slack_webhook_url_file is not None

    @property
    def slack_messages_file(self) -> Path:
        return self.logs / "slack-messages.jsonl"

    @property
    def serving_instances(self) -> list[str]:
        """``host:port`` of every serving process Prometheus scrapes and the webhook reloads."""
        if self.replica_ports:
            return [f"{self.settings.host}:{port}" for port in self.replica_ports]
        return [f"{self.settings.host}:{self.settings.serving_port}"]

    @property
    def serving_targets_file(self) -> Path:
        """Prometheus' file-based service discovery for the serving job (written by ``start``)."""
        return self.dir / "targets" / "serving.json"

    def write_serving_targets(self) -> Path:
        """Write the serving targets atomically (Prometheus watches the file and may read it any time)."""
        path = self.serving_targets_file
        path.parent.mkdir(parents=True, exist_ok=True)
        groups = [{"targets": [address], "labels": {"replica": str(i)}}
                  for i, address in enumerate(self.serving_instances, start=1)] if self.replica_ports else \
            [{"targets": self.serving_instances}]
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(groups, indent=2) + "\n")
        tmp.replace(path)
        return path

    @property
    def tracking_uri(self) -> str:
        if self.urls.mlflow:
            return self.urls.mlflow
        return self.settings.tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    def render_monitoring(self) -> Path:
        """Write prometheus.yml, rules and alertmanager.yml for this stack (see monitoring/render.py)."""
        from monitoring.render import render_stack_config

        out = self.dir / "monitoring"
        slack_file: Path | None = None
        if self.settings.slack_webhook_url_file is not None:
            slack_file = self.settings.slack_webhook_url_file.resolve()
        elif self.settings.slack_webhook_url is not None:
            slack_file = _secret_file(self.dir / "slack-url", self.settings.slack_webhook_url, None)
        s = self.settings
        render_stack_config(
            out,
            targets={
                "drift_exporter": [f"{s.host}:{s.drift_exporter_port}"],
                "rollback_webhook": [f"{s.host}:{s.webhook_port}"],
                "quality": [f"{s.host}:{s.quality_port}"],
                "prometheus": [f"{s.host}:{s.prometheus_port}"],
                "alertmanager": [f"{s.host}:{s.alertmanager_port}"],
            },
            file_sd={"serving": self.serving_targets_file},
            webhook_url=f"{self.urls.webhook}/alerts",
            webhook_token_file=self.webhook_token_file,
            slack_url_file=slack_file,
            slack_fallback_url=f"{self.urls.slack_sink}/services/local-sink" if self.urls.slack_sink else None,
            grafana_url=s.grafana_url,
            alertmanager_url=self.urls.alertmanager,
            timing=self.timing,
        )
        return out

    def _mlflow_spec(self) -> ProcessSpec:
        s = self.settings
        if self.backend == "postgres":
            if self.local_backend is None:
                raise RuntimeError("the PostgreSQL backend is not started yet (Stack.start_backend)")
            return self.local_backend.mlflow_spec(self.logs / "mlflow.log")
        return ProcessSpec(
            "mlflow", [sys.executable, "-m", "mlflow", "server", "--host", s.host, "--port", str(s.mlflow_port),
                       "--workers", "1", "--backend-store-uri", f"sqlite:///{self.home / 'mlflow.db'}",
                       "--artifacts-destination", str(self.home / "artifacts")],
            self.logs / "mlflow.log", env={}, health_url=f"{self.urls.mlflow}/health", health_timeout=180)

    def webhook_store_env(self) -> dict[str, str]:
        """The webhook's decision store: PostgreSQL with the PostgreSQL backend, else its SQLite default."""
        if self.local_backend is None:
            return {}
        return self.local_backend.webhook_store_env(self.dir / "webhook-store-password")

    def service_env(self) -> dict[str, str]:
        s = self.settings
        return {
            "DRIFTWATCH_HOME": str(self.home),
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "DRIFTWATCH_MODEL_NAME": s.model_name,
            "DRIFTWATCH_REGISTRY_MODE": s.registry_mode,
            "DRIFTWATCH_ADMIN_TOKEN_FILE": str(self.admin_token_file),
            "DRIFTWATCH_WEBHOOK_TOKEN_FILE": str(self.webhook_token_file),
            "PYTHONUNBUFFERED": "1",
        }

    def drift_window_env(self) -> dict[str, str]:
        """The demo sends 20 requests/s: a 300-row window (minimum 200) turns over in 15 s, so drift
        shows within a few checks; production keeps the exporter's defaults."""
        if self.timing != "demo":
            return {}
        return {"DRIFTWATCH_DRIFT_WINDOW_ROWS": "300", "DRIFTWATCH_DRIFT_MIN_WINDOW_ROWS": "200"}

    def quality_env(self) -> dict[str, str]:
        """Demo: an evaluation every 2 s over the newest 300 labels, so a bad release's labels take
        over the window within seconds; production keeps the service's defaults (30 s, 500)."""
        if self.timing != "demo":
            return {}
        return {"DRIFTWATCH_QUALITY_INTERVAL_SECONDS": "2", "DRIFTWATCH_QUALITY_WINDOW_LABELED": "300",
                "DRIFTWATCH_QUALITY_ESTIMATE_WINDOW": "300"}

    def webhook_env(self) -> dict[str, str]:
        """Demo: the cooldown after a rollback on the demo clock (30 min / 30 = 60 s is longer than
        the demo leaves between its two rollbacks, so 20 s); production keeps 30 minutes."""
        if self.timing != "demo":
            return {}
        return {"DRIFTWATCH_WEBHOOK_COOLDOWN_SECONDS": "20"}

    def process_specs(self) -> list[ProcessSpec]:
        s = self.settings
        py = sys.executable
        env = self.service_env()
        specs: list[ProcessSpec] = []
        if self.urls.mlflow:
            specs.append(self._mlflow_spec())
        if self.urls.slack_sink:
            specs.append(ProcessSpec(
                "slack-sink", [py, "-m", "driftwatch.slack_sink", "--host", s.host, "--port", str(s.slack_sink_port),
                               "--out", str(self.slack_messages_file)],
                self.logs / "slack-sink.log", health_url=self.urls.slack_sink))
        specs += self.serving_specs()
        specs.append(ProcessSpec(
            "drift-exporter", [py, "-m", "drift_exporter"], self.logs / "drift-exporter.log",
            env={**env, "DRIFTWATCH_DRIFT_HOST": s.host, DRIFT_PORT_ENV: str(s.drift_exporter_port),
                 "DRIFTWATCH_DRIFT_INTERVAL_SECONDS": str(self.drift_interval), **self.drift_window_env()},
            health_url=f"{self.urls.drift_exporter}/health", health_timeout=120))
        specs.append(ProcessSpec(
            "rollback-webhook", [py, "-m", "rollback_webhook"], self.logs / "rollback-webhook.log",
            env={**env, "DRIFTWATCH_WEBHOOK_HOST": s.host, WEBHOOK_PORT_ENV: str(s.webhook_port),
                 "DRIFTWATCH_SERVING_URLS": ",".join(self.urls.serving_replicas or [self.urls.serving]),
                 **self.webhook_env(), **self.webhook_store_env()},
            health_url=f"{self.urls.webhook}/health", health_timeout=120))
        specs.append(ProcessSpec(
            "quality", [py, "-m", "quality"], self.logs / "quality.log",
            env={**env, "DRIFTWATCH_QUALITY_HOST": s.host, "DRIFTWATCH_QUALITY_PORT": str(s.quality_port),
                 "DRIFTWATCH_QUALITY_TOKEN_FILE": str(self.quality_token_file), **self.quality_env()},
            health_url=f"{self.urls.quality}/health", health_timeout=120))
        monitoring = self.dir / "monitoring"
        specs.append(ProcessSpec(
            "alertmanager",
            [binary("prometheus-alertmanager", "alertmanager"),
             f"--config.file={monitoring / 'alertmanager.yml'}",
             f"--storage.path={self.home / 'alertmanager-data'}",
             f"--web.listen-address={s.host}:{s.alertmanager_port}",
             f"--web.external-url={self.urls.alertmanager}", "--cluster.listen-address="],
            self.logs / "alertmanager.log", health_url=f"{self.urls.alertmanager}/-/ready"))
        specs.append(ProcessSpec(
            "prometheus",
            [binary("prometheus"), f"--config.file={monitoring / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.home / 'prometheus-data'}",
             f"--web.listen-address={s.host}:{s.prometheus_port}",
             f"--web.external-url={self.urls.prometheus}", "--web.enable-lifecycle"],
            self.logs / "prometheus.log", health_url=f"{self.urls.prometheus}/-/ready"))
        return specs

    def balancer_config(self) -> BalancerConfig:
        s = self.settings
        return BalancerConfig(listen=f"{s.host}:{s.serving_port}", upstreams=self.serving_instances,
                              prefix=self.dir / "nginx", error_log=self.logs / "load-balancer.log")

    def serving_specs(self) -> list[ProcessSpec]:
        """One serving process on the serving port; or N replicas on their own ports and nginx on it."""
        s = self.settings
        env = {**self.service_env(), "DRIFTWATCH_SERVING_HOST": s.host,
               "DRIFTWATCH_POLL_INTERVAL_SECONDS": str(self.poll_interval)}
        if not self.replica_ports:
            return [ProcessSpec(
                "serving", [sys.executable, "-m", "serving"], self.logs / "serving.log",
                env={**env, SERVING_PORT_ENV: str(s.serving_port)},
                health_url=f"{self.urls.serving}/health", health_timeout=120)]
        specs = [ProcessSpec(
            f"serving-{i}", [sys.executable, "-m", "serving"], self.logs / f"serving-{i}.log",
            env={**env, SERVING_PORT_ENV: str(port), "DRIFTWATCH_SERVING_INSTANCE": f"serving-{i}"},
            health_url=f"{url}/health", health_timeout=120)
            for i, (port, url) in enumerate(zip(self.replica_ports, self.urls.serving_replicas, strict=True), start=1)]
        specs.append(ProcessSpec(
            "load-balancer", self.balancer_config().argv(nginx_binary()), self.logs / "load-balancer.log",
            health_url=f"{self.urls.serving}/health", health_timeout=30))
        return specs

    # ------------------------------------------------------------------ lifecycle
    def start_backend(self) -> None:
        """The registry first (training needs it before the services start): with the PostgreSQL
        backend, PostgreSQL, the S3 server and `mlflow server`; with --mlflow-server, `mlflow server`."""
        if self._backend_started:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            if self.backend == "postgres":
                self.say("starting postgresql and the s3 server ...")
                self.local_backend = start_local_backend(host=self.settings.host, mlflow_port=self.settings.mlflow_port,
                                                         logs=self.logs)
            if self.urls.mlflow:
                self.say("starting mlflow ...")
                self.supervisor.start(self._mlflow_spec())
            if self.local_backend is not None:
                self.local_backend.warm_up()
        except BaseException:
            self.stop()
            raise
        self._backend_started = True

    def start(self) -> None:
        self.start_backend()
        self.write_serving_targets()
        if self.replica_ports:
            write_nginx_config(self.balancer_config())
        self.render_monitoring()
        try:
            specs = [spec for spec in self.process_specs() if spec.name != "mlflow"]  # mlflow: start_backend
            for group in self._start_groups(specs):
                self.say(f"starting {', '.join(spec.name for spec in group)} ...")
                self.supervisor.start_together(group)
        except BaseException:
            self.stop()
            raise
        self._write_state()

    @staticmethod
    def _start_groups(specs: list[ProcessSpec]) -> list[list[ProcessSpec]]:
        """Processes in start order; serving replicas start together (each takes seconds to load)."""
        groups: list[list[ProcessSpec]] = []
        for spec in specs:
            replica = spec.name.startswith("serving-")
            if replica and groups and groups[-1][0].name.startswith("serving-"):
                groups[-1].append(spec)
            else:
                groups.append([spec])
        return groups

    def _write_state(self) -> None:
        state = {"up_pid": os.getpid(), "children": self.supervisor.pids(), "urls": self.urls.__dict__}
        (self.dir / "state.json").write_text(json.dumps(state, indent=2))

    def stop(self) -> None:
        self.supervisor.stop_all()
        if self.local_backend is not None:
            self.local_backend.stop()
            self.local_backend = None
        self._backend_started = False
        (self.dir / "state.json").unlink(missing_ok=True)

    def describe(self) -> str:
        u = self.urls
        lines = [f"serving           {u.serving}  (/predict, /docs, /metrics)"] if not u.serving_replicas else [
            f"serving           {u.serving}  (nginx in front of {len(u.serving_replicas)} replicas: /predict, /docs)",
            *(f"  replica {i}       {url}  (/metrics, /admin/reload)" for i, url in enumerate(u.serving_replicas, 1)),
        ]
        lines += [
            f"drift exporter    {u.drift_exporter}  (/drift, /report, /metrics)",
            f"rollback webhook  {u.webhook}  (/decisions)",
            f"quality           {u.quality}  (POST /feedback, /quality, /metrics)",
            f"prometheus        {u.prometheus}  (alerts: {u.prometheus}/alerts)",
            f"alertmanager      {u.alertmanager}",
        ]
        if u.mlflow:
            lines.append(f"mlflow            {u.mlflow}")
        if self.local_backend is not None:
            pg, s3 = self.local_backend.postgres, self.local_backend.s3
            lines.append(f"postgresql        {pg.host}:{pg.port}  (backend store; webhook decisions; data in {pg.dir})")
            lines.append(f"s3 (moto)         {s3.url}  (artifacts: {self.local_backend.artifacts_destination})")
        slack = "real webhook" if not u.slack_sink else f"local sink, messages in {self.slack_messages_file}"
        lines.append(f"slack             {slack}")
        lines.append(f"logs              {self.logs}")
        return "\n".join(lines)


def run_up(*, with_mlflow_server: bool = False, backend: Backend | None = None, replicas: int | None = None) -> int:
    settings = StackSettings()
    if replicas is not None:
        settings = settings.model_copy(update={"serving_replicas": replicas})
    stack = Stack(settings, with_mlflow_server=with_mlflow_server, backend=backend)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack.start()
    print("driftwatch stack is up:\n" + stack.describe() + "\nCtrl-C or `driftwatch down` stops it.", flush=True)
    try:
        while not stop.wait(1.0):
            stack.supervisor.check()
    finally:
        print("stopping ...", flush=True)
        stack.stop()
    return 0


def run_down() -> int:
    home = StackSettings().home.expanduser().resolve()
    state_file = home / "stack" / "state.json"
    if not state_file.exists():
        print(f"no stack is running from {home}")
        return 0
    state = json.loads(state_file.read_text())
    try:
        os.kill(int(state["up_pid"]), signal.SIGTERM)
    except ProcessLookupError:
        for pid in state.get("children", {}).values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGTERM)
        state_file.unlink(missing_ok=True)
    deadline = time.monotonic() + 30
    while state_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    print("driftwatch stack stopped")
    return 0
