"""A throwaway PostgreSQL cluster on loopback (initdb + pg_ctl in a temporary folder).

Used by ``driftwatch up --backend postgres``, the integration tests and the benchmarks. PostgreSQL
refuses to run as root, so as root the cluster runs as the ``postgres`` system user (created by
Debian's package) through ``runuser``; the folder is created for that user. Password
authentication (scram-sha-256) is on for every connection, so URIs carry a real password.

Debian puts the server binaries in ``/usr/lib/postgresql/<major>/bin`` (not on PATH);
``pg_bin_dir`` finds the newest one, or the directory given by ``DRIFTWATCH_PG_BIN``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from driftwatch.processes import free_port

SERVICE_USER = "postgres"
INSTALL_HINT = "install Debian's postgresql package (`make system-deps`)"


class PostgresError(RuntimeError):
    """The local cluster could not be created, started or stopped."""


def pg_bin_dir() -> Path:
    """The folder with initdb, pg_ctl and postgres."""
    given = os.environ.get("DRIFTWATCH_PG_BIN")
    candidates: list[Path] = [Path(given)] if given else []
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    candidates += versions
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise PostgresError(f"PostgreSQL server binaries (initdb, pg_ctl) not found; {INSTALL_HINT}")


def postgres_uri(user: str, password: str, host: str, port: int, database: str) -> str:
    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(database, safe='')}"


class LocalPostgres:
    """One cluster: ``start()`` creates it (first time) and starts it; ``stop()``/``start()`` again keep
    its data (the fault tests stop it for a while); ``destroy()`` removes the folder."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, user: str = "driftwatch",
                 password: str | None = None, database: str = "driftwatch", base_dir: Path | None = None) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", user) or not re.fullmatch(r"[a-z_][a-z0-9_]*", database):
            raise ValueError("user and database must be lower-case identifiers")
        self.host = host
        self.port = port or free_port(host)
        self.user = user
        self.password = password or secrets.token_urlsafe(24)
        self.database = database
        self.bin = pg_bin_dir()
        self._run_as = self._service_user()
        self.dir = Path(tempfile.mkdtemp(prefix="driftwatch-pg-", dir=base_dir))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._chown(self.dir)
        self._initialised = False

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _service_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise PostgresError(f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as; "
                                f"{INSTALL_HINT}") from None

    def _chown(self, path: Path) -> None:
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def _cmd(self, name: str, *args: str) -> list[str]:
        argv = [str(self.bin / name), *args]
        if self._run_as is not None:
            return ["runuser", "-u", SERVICE_USER, "--", *argv]
        return argv

    def _run(self, name: str, *args: str, timeout: float = 120.0) -> None:
        done = subprocess.run(self._cmd(name, *args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=self.dir, check=False)
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""
            raise PostgresError(f"{name} failed ({done.returncode}): {done.stderr.strip()[-1500:]}\n{tail}")

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _init(self) -> None:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            self._run("initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "-A", "scram-sha-256",
                      "-E", "UTF8", "--locale=C", "--no-sync")
        finally:
            pwfile.unlink(missing_ok=True)
        self._initialised = True

    def start(self, timeout: float = 60.0) -> LocalPostgres:
        if not self._initialised:
            self._init()
        options = (f"-h {self.host} -p {self.port} -k {self.dir} -c fsync=off -c synchronous_commit=off "
                   f"-c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(timeout)),
                  "-o", options, timeout=timeout + 10)
        self._create_database()
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60", timeout=70)

    def destroy(self) -> None:
        with contextlib.suppress(PostgresError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.destroy()

    # ------------------------------------------------------------------ databases
    def uri(self, database: str | None = None) -> str:
        return postgres_uri(self.user, self.password, self.host, self.port, database or self.database)

    def create_database(self, name: str) -> str:
        """Create database ``name`` unless it exists; return its URI."""
        import psycopg

        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError("database names must be lower-case identifiers")
        with psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                             dbname="postgres", connect_timeout=10, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.uri(name)

    def _create_database(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.create_database(self.database)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise PostgresError(f"could not create database {self.database}: {type(exc).__name__}") from None
                time.sleep(0.2)


def start_postgres(**kwargs: object) -> LocalPostgres:
    """Create and start a throwaway cluster (see :class:`LocalPostgres` for the arguments)."""
    server = LocalPostgres(**kwargs)  # type: ignore[arg-type]
    try:
        return server.start()
    except BaseException:
        server.destroy()
        raise
