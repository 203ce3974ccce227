"""The production-like registry backend on one machine: ``mlflow server`` with a PostgreSQL backend
store and S3 artifacts, against a real PostgreSQL cluster and a real S3-compatible server on
loopback (``driftwatch up --backend postgres``, the integration tests, the benchmarks).

The tracking server proxies artifacts (``--artifacts-destination s3://…``, MLflow's default
``--serve-artifacts``), so serving, the drift exporter, the webhook and the CLI only need the
tracking URI: models and references come from S3 through it. Only the server holds the S3 keys
(environment) and the database password (``PGPASSWORD``, read by libpq: it is in no command line).
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from driftwatch.objectstore import LocalS3Server, start_s3_server
from driftwatch.postgres import LocalPostgres, start_postgres
from driftwatch.processes import ProcessSpec, free_port

ARTIFACT_BUCKET = "mlflow-artifacts"
MLFLOW_DATABASE = "mlflow"
WEBHOOK_DATABASE = "webhook"


def mlflow_server_argv(host: str, port: int, backend_store_uri: str, artifacts_destination: str) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--workers", "1",
            "--backend-store-uri", backend_store_uri, "--artifacts-destination", artifacts_destination]


@dataclass
class LocalBackend:
    """A started PostgreSQL cluster and S3 server, and what an MLflow server on them needs."""

    postgres: LocalPostgres
    s3: LocalS3Server
    host: str = "127.0.0.1"
    mlflow_port: int = field(default_factory=free_port)

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def artifacts_destination(self) -> str:
        return f"s3://{ARTIFACT_BUCKET}/artifacts"

    def database_uri(self, database: str, *, with_password: bool) -> str:
        """``postgresql://user[:password]@host:port/database``; without the password, libpq reads
        ``PGPASSWORD`` or a password file."""
        pg = self.postgres
        if with_password:
            return pg.uri(database)
        return f"postgresql://{quote(pg.user, safe='')}@{pg.host}:{pg.port}/{database}"

    def mlflow_env(self) -> dict[str, str]:
        return {**self.s3.endpoint.env(), "PGPASSWORD": self.postgres.password}

    def mlflow_spec(self, log: Path) -> ProcessSpec:
        """The tracking server as a supervised process (the first start creates MLflow's tables)."""
        argv = mlflow_server_argv(self.host, self.mlflow_port, self.database_uri(MLFLOW_DATABASE, with_password=False),
                                  self.artifacts_destination)
        return ProcessSpec("mlflow", argv, log, env=self.mlflow_env(), health_url=f"{self.tracking_uri}/health",
                           health_timeout=240)

    def warm_up(self, timeout: float = 180.0) -> None:
        """The tracking server's first API call imports and connects lazily and can take longer than
        a client's timeout on a busy machine: make it once, patiently."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = httpx.get(f"{self.tracking_uri}/api/2.0/mlflow/experiments/search",
                                     params={"max_results": 1}, timeout=max(1.0, deadline - time.monotonic()))
                if response.is_success:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the MLflow server at {self.tracking_uri} did not answer its API in {timeout:.0f}s")
            time.sleep(0.5)

    def webhook_store_env(self, password_file: Path) -> dict[str, str]:
        """The webhook's decision store in this cluster, the password in a file (mode 0600)."""
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.write_text(self.postgres.password)
        password_file.chmod(0o600)
        return {"DRIFTWATCH_WEBHOOK_STORE": self.database_uri(WEBHOOK_DATABASE, with_password=False),
                "DRIFTWATCH_WEBHOOK_STORE_PASSWORD_FILE": str(password_file)}

    def stop(self) -> None:
        self.s3.stop()
        with contextlib.suppress(Exception):
            self.postgres.destroy()


def start_local_backend(*, host: str = "127.0.0.1", mlflow_port: int | None = None, logs: Path | None = None,
                        base_dir: Path | None = None) -> LocalBackend:
    """Start PostgreSQL (databases ``mlflow`` and ``webhook``) and the S3 server (bucket
    ``mlflow-artifacts``); the caller starts the MLflow server from ``mlflow_spec``."""
    postgres = start_postgres(host=host, database=MLFLOW_DATABASE, base_dir=base_dir)
    try:
        postgres.create_database(WEBHOOK_DATABASE)
        s3 = start_s3_server(host=host, log=logs / "s3.log" if logs else None, buckets=(ARTIFACT_BUCKET,))
    except BaseException:
        postgres.destroy()
        raise
    return LocalBackend(postgres=postgres, s3=s3, host=host, mlflow_port=mlflow_port or free_port(host))
