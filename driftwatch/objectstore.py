"""A local S3-compatible object store: moto's S3 server, run as a process on loopback.

Used by ``driftwatch up --backend postgres`` (MLflow's artifact store), by tests and benchmarks,
and by anything else that ships files to S3 (prediction logs). One copy of "start a local S3
server", here.

Why moto's server (PyPI ``moto[server]``): it installs with pip like every other Python dependency
(no binary download, no Debian package exists for MinIO), speaks the S3 REST API that boto3 and
MLflow use (SigV4 requests, path-style addressing, multipart uploads, listing), starts in about a
second and needs no data folder. Its limits, which the production target does not have: it keeps
objects in memory (a restart empties it) and it does not check the keys it is sent. The compose
file runs real MinIO instead (docs/production-backend.md).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from driftwatch.processes import ProcessSpec, free_port, stop_process
from driftwatch.waiting import WaitTimeout, wait_for_http

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair; ``repr`` never shows the secret."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = DEFAULT_REGION

    @classmethod
    def generate(cls) -> S3Credentials:
        return cls(access_key_id="DW" + secrets.token_hex(9).upper(), secret_access_key=secrets.token_urlsafe(30))

    def env(self) -> dict[str, str]:
        """The environment boto3 (and so MLflow) reads."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
                "AWS_DEFAULT_REGION": self.region}


@dataclass(frozen=True)
class S3Endpoint:
    """Where an S3-compatible server answers, and the keys to use."""

    url: str
    credentials: S3Credentials

    def env(self) -> dict[str, str]:
        """Environment for a process that uses this endpoint through boto3 or MLflow."""
        return {**self.credentials.env(), "MLFLOW_S3_ENDPOINT_URL": self.url, "AWS_ENDPOINT_URL_S3": self.url}

    def client(self) -> Any:
        """A boto3 S3 client for this endpoint (path-style addressing: works on loopback)."""
        import boto3
        from botocore.config import Config

        c = self.credentials
        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=c.access_key_id,
                            aws_secret_access_key=c.secret_access_key, region_name=c.region,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                                          connect_timeout=5, read_timeout=30))

    def ensure_bucket(self, bucket: str) -> None:
        """Create ``bucket`` unless it exists."""
        client = self.client()
        try:
            client.head_bucket(Bucket=bucket)
        except Exception:
            client.create_bucket(Bucket=bucket)


def s3_server_argv(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]


def s3_server_spec(host: str, port: int, log: Path, *, name: str = "s3") -> ProcessSpec:
    """The S3 server as a process for :class:`driftwatch.processes.Supervisor`. Its health URL is the
    moto API's reset-free status page, so a health check stores nothing."""
    return ProcessSpec(name, s3_server_argv(host, port), log, env={}, health_url=f"http://{host}:{port}/moto-api/",
                       health_timeout=60, restart=False)


class LocalS3Server:
    """A moto S3 server process on loopback; ``with start_s3_server(...) as s3:`` stops it at the end."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, log: Path | None = None,
                 credentials: S3Credentials | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log = log
        self.endpoint = S3Endpoint(f"http://{host}:{self.port}", credentials or S3Credentials.generate())
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.endpoint.url

    def start(self, timeout: float = 60.0) -> LocalS3Server:
        out: Any = subprocess.DEVNULL
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            out = self.log.open("ab")
        try:
            self.process = subprocess.Popen(s3_server_argv(self.host, self.port), stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        try:
            wait_for_http(f"{self.url}/moto-api/", timeout=timeout, proc=self.process, log=self.log, interval=0.1)
        except WaitTimeout:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            stop_process(proc, timeout)

    def __enter__(self) -> LocalS3Server:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_s3_server(*, host: str = "127.0.0.1", port: int | None = None, log: Path | None = None,
                    credentials: S3Credentials | None = None, buckets: tuple[str, ...] = ()) -> LocalS3Server:
    """Start moto's S3 server on ``host:port`` (a free port by default), wait until it answers,
    create ``buckets``, and return it (``server.endpoint`` has the URL and keys; ``server.stop()``)."""
    server = LocalS3Server(host=host, port=port, log=log, credentials=credentials).start()
    try:
        for bucket in buckets:
            server.endpoint.ensure_bucket(bucket)
    except BaseException:
        server.stop()
        raise
    return server
