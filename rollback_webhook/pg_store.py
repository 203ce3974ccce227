"""The decision store on PostgreSQL (``DRIFTWATCH_WEBHOOK_STORE=postgresql://…``), for webhook
processes on different hosts (an HA pair behind an HA pair of Alertmanagers).

Same rows and the same guarantees as the SQLite store (rollback_webhook/store.py): a transaction
starts with ``pg_advisory_xact_lock`` on one key, so webhook processes decide one incident at a
time, from the look-up to the insert; ``UNIQUE(incident_key, alert_status)`` keeps one row per
incident. A process killed while it holds the lock loses its connection, and PostgreSQL rolls its
transaction back and releases the lock at once: the next delivery decides afresh. Each call opens
its own connection (a few milliseconds), so a restarted PostgreSQL is picked up without a pool to
heal. Connection failures raise ``StoreUnavailableError`` (the webhook answers 503 and
Alertmanager retries); waiting longer than the busy timeout for the lock raises ``StoreBusyError``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import dict_row

from driftwatch.redact import redact
from rollback_webhook.store import (
    ROLLED_BACK,
    DecisionRecord,
    NewDecision,
    StoreBusyError,
    StoreUnavailableError,
    schema_sql,
)

log = logging.getLogger("rollback_webhook")

# pg_advisory_xact_lock key of the decision store (any constant; "dwdecide" as a 64-bit number).
LOCK_KEY = 0x6477646563696465

SCHEMA = schema_sql(id_column="id BIGSERIAL PRIMARY KEY", real="DOUBLE PRECISION")


def _record(row: dict[str, Any]) -> DecisionRecord:
    data = dict(row)
    data["reloads"] = json.loads(data["reloads"]) if data["reloads"] else None
    return DecisionRecord(**data)


class PgTransaction:
    """Reads and writes inside one locked transaction (see ``PostgresDecisionStore.transaction``)."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def find(self, incident_key: str, alert_status: str) -> DecisionRecord | None:
        self._cur.execute("SELECT * FROM decisions WHERE incident_key = %s AND alert_status = %s",
                          (incident_key, alert_status))
        row = self._cur.fetchone()
        return None if row is None else _record(row)

    def count_delivery(self, record_id: int, at: datetime) -> None:
        self._cur.execute("UPDATE decisions SET deliveries = deliveries + 1, last_delivery_at = %s WHERE id = %s",
                          (at.timestamp(), record_id))

    def rollback_times(self, model_name: str, since: datetime) -> tuple[datetime, ...]:
        self._cur.execute("SELECT decided_at FROM decisions WHERE decision = %s AND model_name = %s "
                          "AND decided_at >= %s ORDER BY decided_at", (ROLLED_BACK, model_name, since.timestamp()))
        return tuple(datetime.fromtimestamp(r["decided_at"], tz=UTC) for r in self._cur.fetchall())

    def insert(self, new: NewDecision) -> DecisionRecord:
        values = asdict(new)
        values["decided_at"] = new.decided_at.timestamp()
        values["last_delivery_at"] = values["decided_at"]
        columns = ", ".join(values)
        marks = ", ".join(f"%({k})s" for k in values)
        self._cur.execute(f"INSERT INTO decisions ({columns}) VALUES ({marks}) RETURNING *", values)
        return _record(self._cur.fetchone())


class PostgresDecisionStore:
    """The decision store in a PostgreSQL database (``dsn``: a ``postgresql://`` URI)."""

    def __init__(self, dsn: str, *, password: str | None = None, busy_timeout_seconds: float = 60.0,
                 connect_timeout_seconds: float = 5.0) -> None:
        self._dsn = dsn
        self._password = password
        self.busy_timeout_seconds = busy_timeout_seconds
        self.connect_timeout_seconds = connect_timeout_seconds
        self._schema_ready = False
        try:
            self._ensure_schema()
        except StoreUnavailableError as exc:  # created at the first use instead; /health says why meanwhile
            log.warning("decision store not reachable at start-up", extra={"error": str(exc)})

    def __repr__(self) -> str:
        return f"PostgresDecisionStore({redact(self._dsn)!r})"

    @property
    def description(self) -> str:
        return redact(self._dsn)

    # ------------------------------------------------------------------ connections
    def _connect(self) -> Any:
        kwargs: dict[str, Any] = {"connect_timeout": max(1, int(self.connect_timeout_seconds)),
                                  "row_factory": dict_row,
                                  "application_name": "driftwatch-rollback-webhook"}
        if self._password is not None:
            kwargs["password"] = self._password
        try:
            return psycopg.connect(self._dsn, **kwargs)
        except psycopg.Error as exc:
            raise StoreUnavailableError(f"the decision store (PostgreSQL) cannot be reached: "
                                        f"{redact(_first_line(exc))}") from None

    @contextmanager
    def _session(self, *, lock: bool) -> Iterator[Any]:
        """A cursor in one transaction; committed at the end, rolled back on errors. psycopg errors
        become ``StoreUnavailableError``/``StoreBusyError``; other exceptions pass unchanged."""
        if not self._schema_ready:
            self._ensure_schema()
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                if lock:
                    cur.execute("SELECT set_config('lock_timeout', %s, true)",
                                (f"{int(self.busy_timeout_seconds * 1000)}ms",))
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                yield cur
            conn.commit()
        except psycopg.errors.LockNotAvailable as exc:
            _rollback_quietly(conn)
            raise StoreBusyError(f"another webhook process held the decision store for more than "
                                 f"{self.busy_timeout_seconds:.0f}s ({_first_line(exc)})") from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            _rollback_quietly(conn)
            raise StoreUnavailableError(f"the decision store (PostgreSQL) failed: {redact(_first_line(exc))}") from None
        except BaseException:
            _rollback_quietly(conn)
            raise
        finally:
            conn.close()

    def _ensure_schema(self) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                # Two processes starting together: the lock keeps CREATE ... IF NOT EXISTS from racing.
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                for statement in filter(None, (part.strip() for part in SCHEMA.split(";"))):
                    cur.execute(statement)
            conn.commit()
        except psycopg.Error as exc:
            _rollback_quietly(conn)
            raise StoreUnavailableError(f"the decision store (PostgreSQL) failed: {redact(_first_line(exc))}") from None
        finally:
            conn.close()
        self._schema_ready = True

    # ------------------------------------------------------------------ the store API
    @contextmanager
    def transaction(self) -> Iterator[PgTransaction]:
        with self._session(lock=True) as cur:
            yield PgTransaction(cur)

    def recent(self, *, limit: int = 100, decision: str | None = None,
               model_version: str | None = None) -> list[DecisionRecord]:
        where, params = [], []
        if decision is not None:
            where.append("decision = %s")
            params.append(decision)
        if model_version is not None:
            where.append("model_version = %s")
            params.append(model_version)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._session(lock=False) as cur:
            cur.execute(f"SELECT * FROM decisions {clause} ORDER BY decided_at DESC, id DESC LIMIT %s",
                        (*params, limit))
            return [_record(r) for r in cur.fetchall()]

    def set_reloads(self, record_id: int, reloads: list[dict[str, Any]]) -> None:
        with self._session(lock=False) as cur:
            cur.execute("UPDATE decisions SET reloads = %s WHERE id = %s", (json.dumps(reloads), record_id))

    def last_rollback_at(self, model_name: str) -> datetime | None:
        with self._session(lock=False) as cur:
            cur.execute("SELECT MAX(decided_at) AS at FROM decisions WHERE decision = %s AND model_name = %s",
                        (ROLLED_BACK, model_name))
            row = cur.fetchone()
        return None if row is None or row["at"] is None else datetime.fromtimestamp(row["at"], tz=UTC)

    def check(self) -> None:
        """Raise ``StoreUnavailableError`` unless the store can be read."""
        with self._session(lock=False) as cur:
            cur.execute("SELECT COUNT(*) FROM decisions")
            cur.fetchone()


def _rollback_quietly(conn: Any) -> None:
    with suppress(psycopg.Error):
        conn.rollback()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
