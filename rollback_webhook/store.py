"""The decision store: one SQLite row per incident and alert status, kept across restarts (or one
PostgreSQL row, rollback_webhook/pg_store.py, with the same guarantees across hosts).

``UNIQUE(incident_key, alert_status)`` makes "one decision per incident" a property of the file, and
a transaction opened with ``BEGIN IMMEDIATE`` holds SQLite's write lock from the look-up to the
insert, so webhook processes sharing the file decide one incident one at a time. A transaction
that fails (registry unreachable) rolls back and leaves nothing behind: the retry decides afresh.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from driftwatch.clock import iso_utc


def schema_sql(*, id_column: str, real: str) -> str:
    """The decisions table and its indexes; ``id_column`` and ``real`` are the database's spelling
    (SQLite here, PostgreSQL in rollback_webhook/pg_store.py)."""
    return f"""
CREATE TABLE IF NOT EXISTS decisions (
    {id_column},
    incident_key TEXT NOT NULL,
    alert_status TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    decided_at {real} NOT NULL,
    alertname TEXT NOT NULL,
    model_name TEXT,
    model_version TEXT,
    starts_at TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    from_version TEXT,
    to_version TEXT,
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1,
    last_delivery_at {real} NOT NULL,
    reloads TEXT,
    UNIQUE (incident_key, alert_status)
);
CREATE INDEX IF NOT EXISTS decisions_by_time ON decisions (decided_at);
CREATE INDEX IF NOT EXISTS decisions_rollbacks ON decisions (decision, model_name, decided_at);
"""


SCHEMA = schema_sql(id_column="id INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL")
ROLLED_BACK = "rolled_back"


class StoreBusyError(Exception):
    """Another webhook process held the store longer than the busy timeout; retrying later is useful."""


class StoreUnavailableError(Exception):
    """The store cannot be reached (a PostgreSQL store whose server is down); retrying later is useful."""


@dataclass(frozen=True)
class NewDecision:
    incident_key: str
    alert_status: str
    decision: str
    reason: str
    decided_at: datetime
    alertname: str
    model_name: str | None
    model_version: str | None
    starts_at: str
    fingerprint: str
    from_version: str | None
    to_version: str | None
    receiver: str
    group_key: str


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    incident_key: str
    alert_status: str
    decision: str
    reason: str
    decided_at: float
    alertname: str
    model_name: str | None
    model_version: str | None
    starts_at: str
    fingerprint: str
    from_version: str | None
    to_version: str | None
    receiver: str
    group_key: str
    deliveries: int
    last_delivery_at: float
    reloads: list[dict[str, Any]] | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["decided_at"] = iso_utc(self.decided_at)
        data["last_delivery_at"] = iso_utc(self.last_delivery_at)
        return data

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> DecisionRecord:
        data = dict(row)
        data["reloads"] = json.loads(data["reloads"]) if data["reloads"] else None
        return cls(**data)


class StoreTransaction:
    """Reads and writes inside one write transaction (see ``DecisionStore.transaction``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def find(self, incident_key: str, alert_status: str) -> DecisionRecord | None:
        row = self._conn.execute("SELECT * FROM decisions WHERE incident_key = ? AND alert_status = ?",
                                 (incident_key, alert_status)).fetchone()
        return None if row is None else DecisionRecord.from_row(row)

    def count_delivery(self, record_id: int, at: datetime) -> None:
        self._conn.execute("UPDATE decisions SET deliveries = deliveries + 1, last_delivery_at = ? WHERE id = ?",
                           (at.timestamp(), record_id))

    def rollback_times(self, model_name: str, since: datetime) -> tuple[datetime, ...]:
        rows = self._conn.execute(
            "SELECT decided_at FROM decisions WHERE decision = ? AND model_name = ? AND decided_at >= ? "
            "ORDER BY decided_at", (ROLLED_BACK, model_name, since.timestamp())).fetchall()
        return tuple(datetime.fromtimestamp(r[0], tz=UTC) for r in rows)

    def insert(self, new: NewDecision) -> DecisionRecord:
        values = asdict(new)
        values["decided_at"] = new.decided_at.timestamp()
        values["last_delivery_at"] = values["decided_at"]
        columns = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        cursor = self._conn.execute(f"INSERT INTO decisions ({columns}) VALUES ({marks})", values)
        row = self._conn.execute("SELECT * FROM decisions WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return DecisionRecord.from_row(row)


class TransactionPort(Protocol):
    """What a decision needs inside the store's write transaction (SQLite or PostgreSQL)."""

    def find(self, incident_key: str, alert_status: str) -> DecisionRecord | None: ...

    def count_delivery(self, record_id: int, at: datetime) -> None: ...

    def rollback_times(self, model_name: str, since: datetime) -> tuple[datetime, ...]: ...

    def insert(self, new: NewDecision) -> DecisionRecord: ...


class DecisionStorePort(Protocol):
    """A decision store: ``DecisionStore`` (SQLite file) or ``PostgresDecisionStore`` (rollback_webhook/pg_store.py)."""

    def transaction(self) -> AbstractContextManager[TransactionPort]: ...

    def recent(self, *, limit: int = 100, decision: str | None = None,
               model_version: str | None = None) -> list[DecisionRecord]: ...

    def set_reloads(self, record_id: int, reloads: list[dict[str, Any]]) -> None: ...

    def last_rollback_at(self, model_name: str) -> datetime | None: ...

    def check(self) -> None: ...


def is_postgres(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://", "postgresql+"))


def open_store(location: str | Path, *, password: str | None = None) -> DecisionStorePort:
    """The store at ``location``: a ``postgresql://`` URI, or a SQLite file path."""
    if is_postgres(location):
        from rollback_webhook.pg_store import PostgresDecisionStore

        dsn = str(location)
        if dsn.startswith("postgresql+"):  # SQLAlchemy-style driver suffix: libpq wants plain postgresql://
            dsn = "postgresql://" + dsn.split("://", 1)[1]
        return PostgresDecisionStore(dsn, password=password)
    return DecisionStore(Path(location))


class DecisionStore:
    def __init__(self, path: Path, *, busy_timeout_seconds: float = 60.0) -> None:
        self.path = path
        self.busy_timeout_seconds = busy_timeout_seconds
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) and short.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_seconds, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """A write transaction: other writers (threads or processes) wait until it ends. Commits when
        the block ends normally, rolls back when it raises."""
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield StoreTransaction(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def recent(self, *, limit: int = 100, decision: str | None = None,
               model_version: str | None = None) -> list[DecisionRecord]:
        """Newest first."""
        where, params = [], []
        if decision is not None:
            where.append("decision = ?")
            params.append(decision)
        if model_version is not None:
            where.append("model_version = ?")
            params.append(model_version)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with closing(self._connect()) as conn:
            rows = conn.execute(f"SELECT * FROM decisions {clause} ORDER BY decided_at DESC, id DESC LIMIT ?",
                                (*params, limit)).fetchall()
        return [DecisionRecord.from_row(r) for r in rows]

    def set_reloads(self, record_id: int, reloads: list[dict[str, Any]]) -> None:
        with closing(self._connect()) as conn:
            conn.execute("UPDATE decisions SET reloads = ? WHERE id = ?", (json.dumps(reloads), record_id))

    def last_rollback_at(self, model_name: str) -> datetime | None:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT MAX(decided_at) FROM decisions WHERE decision = ? AND model_name = ?",
                               (ROLLED_BACK, model_name)).fetchone()
        return None if row is None or row[0] is None else datetime.fromtimestamp(row[0], tz=UTC)

    def check(self) -> None:
        """Raise ``sqlite3.Error`` unless the store can be read."""
        with closing(self._connect()) as conn:
            conn.execute("SELECT COUNT(*) FROM decisions").fetchone()
