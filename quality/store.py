"""The quality store: logged predictions, their labels, and the join of the two, kept for a retention period.

Set-based and append-only, so that a million labels cost a few statements, not a million:

- ``quality_logged_predictions``: one row per logged prediction (id, model, version, time, predicted
  label or value, top-class probability), read from the prediction log. Never updated.
- ``quality_labels``: one row per labeled prediction id (actual, when it was known, when it came),
  whether its prediction has been read yet or not. Never updated: **the first label of a prediction
  wins** (``ON CONFLICT DO NOTHING``); a repeated delivery (a retried batch, a replayed file)
  changes nothing and is answered ``duplicate``; a correction is a decision for a person, not a side
  effect of a retry (docs/quality.md).
- The join is a query: ``quality_logged_predictions`` ⋈ ``quality_labels``. A label whose prediction
  has not been read yet (the log is read every few seconds, a label can be faster) is *pending*
  until it is; it expires with the retention.

Both tables are keyed by a 64-bit integer derived from the prediction id (:func:`prediction_keys`;
the table's own row key in SQLite), so the join walks integer keys in order instead of comparing
random 32-character strings: on SQLite that is the difference between B-tree lookups by text and by
row id (measured in benchmarks/bench_quality.py). Every join also compares the full id, so two ids
that share a key (odds about n²/2⁶⁵: 3·10⁻⁴ for 10⁸ ids) can never label each other's prediction.
Batches go into a temporary table (``executemany`` on SQLite, ``COPY`` with psycopg 3 on
PostgreSQL) and are merged with one statement each.

The SQL is the subset SQLite and PostgreSQL share (``ON CONFLICT DO NOTHING``, temporary tables),
run through SQLAlchemy: the embedded default is a SQLite file under ``DRIFTWATCH_HOME``;
``DRIFTWATCH_QUALITY_DATABASE_URL`` points it at a real database. A third table keeps how far each
prediction log file has been read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

PREDICTIONS = "quality_logged_predictions"
LABELS = "quality_labels"


def _schema(key_type: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE IF NOT EXISTS {PREDICTIONS} (
            key {key_type} PRIMARY KEY,
            prediction_id VARCHAR(64) NOT NULL,
            model_name VARCHAR(255) NOT NULL,
            model_version VARCHAR(64) NOT NULL,
            predicted_at DOUBLE PRECISION NOT NULL,
            predicted VARCHAR(255),
            predicted_name VARCHAR(255),
            predicted_value DOUBLE PRECISION,
            confidence DOUBLE PRECISION)""",
        f"""CREATE INDEX IF NOT EXISTS {PREDICTIONS}_version
            ON {PREDICTIONS} (model_name, model_version, predicted_at)""",
        f"""CREATE TABLE IF NOT EXISTS {LABELS} (
            key {key_type} PRIMARY KEY,
            prediction_id VARCHAR(64) NOT NULL,
            actual VARCHAR(255),
            actual_value DOUBLE PRECISION,
            labeled_at DOUBLE PRECISION NOT NULL,
            received_at DOUBLE PRECISION NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS {LABELS}_received ON {LABELS} (received_at)",
        """CREATE TABLE IF NOT EXISTS quality_log_offsets (
            file_key VARCHAR(255) PRIMARY KEY,
            read_offset BIGINT NOT NULL,
            seen_at DOUBLE PRECISION NOT NULL)""",
    )


# Each batch goes through a temporary table of the same shape as its target, keyed the same way.
_INCOMING_PREDICTIONS = ("quality_incoming_predictions",
                         ("key", "prediction_id", "model_name", "model_version", "predicted_at", "predicted",
                          "predicted_name", "predicted_value", "confidence"))
_INCOMING_LABELS = ("quality_incoming_labels", ("key", "prediction_id", "actual", "actual_value", "labeled_at"))

_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)
_MIX = 0x9E3779B97F4A7C15  # odd: multiplying by it permutes the 64-bit numbers


def prediction_key(prediction_id: str) -> int:
    """The 64-bit key of a prediction id: for an id of 32 lowercase hex characters (what serving hands
    out: 128 random bits), its high 64 bits XOR its low 64 bits times an odd constant (a bijection,
    so ids that share either half never share a key); a BLAKE2b hash of any other id."""
    if len(prediction_id) == 32 and all(c in "0123456789abcdef" for c in prediction_id):
        low = int(prediction_id[16:], 16) * _MIX & 0xFFFF_FFFF_FFFF_FFFF
        return (int(prediction_id[:16], 16) ^ low) - (1 << 63)
    return int.from_bytes(hashlib.blake2b(prediction_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "big", signed=True)


def prediction_keys(ids: Sequence[str]) -> np.ndarray:
    """:func:`prediction_key` of many ids at once (int64): vectorized for serving's hex ids."""
    keys = np.empty(len(ids), dtype=np.int64)
    if not len(ids):
        return keys
    try:
        raw = np.array(ids, dtype="S")
    except UnicodeEncodeError:
        raw = None
    if raw is None or raw.dtype.itemsize < 32:
        keys[:] = [prediction_key(pid) for pid in ids]
        return keys
    width = raw.dtype.itemsize
    chars = raw.view(np.uint8).reshape(len(ids), width)
    digits = _HEX[chars[:, :32]]
    hexadecimal = (digits < 16).all(axis=1)
    if width > 32:
        hexadecimal &= chars[:, 32] == 0  # exactly 32 characters
    pairs = digits[hexadecimal]
    halves = np.ascontiguousarray((pairs[:, 0::2] << 4) | pairs[:, 1::2]).view(">u8").astype(np.uint64)
    mixed = halves[:, 0] ^ (halves[:, 1] * np.uint64(_MIX)) ^ np.uint64(1 << 63)
    keys[hexadecimal] = mixed.view(np.int64)  # two's complement of (high ^ low * _MIX) - 2**63
    for i in np.flatnonzero(~hexadecimal).tolist():
        keys[i] = prediction_key(ids[i])
    return keys


def _by_key(ids: Sequence[str]) -> tuple[np.ndarray, list[int], list[int]]:
    """Keys, the positions of the first occurrence of each key in key order, and the positions whose
    key an earlier id had (two ids sharing a key: the later one is refused like a duplicate)."""
    keys = prediction_keys(ids)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return keys, order[first].tolist(), sorted(order[~first].tolist())


@dataclass(frozen=True)
class Prediction:
    prediction_id: str
    model_name: str
    model_version: str
    predicted_at: float
    predicted: str | None  # canonical class label (classification)
    predicted_name: str | None  # the class's display name
    predicted_value: float | None  # regression
    confidence: float | None  # top-class probability


@dataclass(frozen=True)
class Label:
    prediction_id: str
    actual: str | None  # canonical label
    actual_value: float | None  # the actual as a number, when it is one
    labeled_at: float  # when the outcome was known (the feedback's timestamp, or its arrival)


@dataclass
class FeedbackOutcome:
    joined: list[str]  # labeled a known prediction
    pending: list[str]  # prediction id not seen (yet): kept, joined when the prediction is read
    duplicate: list[str]  # the prediction already had a label (or one is waiting): first label wins


@dataclass(frozen=True)
class LabeledRow:
    predicted: str | None
    predicted_name: str | None
    predicted_value: float | None
    confidence: float | None
    actual: str | None
    actual_value: float | None
    predicted_at: float
    labeled_at: float


@dataclass(frozen=True)
class VersionCounts:
    model_version: str
    predictions: int
    labeled: int
    newest: float


class QualityStore:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            parsed = sa.engine.make_url(url)
            if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
                parsed = parsed.set(drivername="postgresql+psycopg2")  # SQLAlchemy 2.1's default is psycopg 3
            self.engine = sa.create_engine(parsed, pool_pre_ping=True)
        self.dialect = self.engine.dialect.name
        # SQLite: INTEGER PRIMARY KEY is the row id itself (no second B-tree); PostgreSQL: 64 bits.
        key_type = "INTEGER" if self.dialect == "sqlite" else "BIGINT"
        self._key_type = key_type
        self._copy = self.dialect == "postgresql" and self.engine.dialect.driver == "psycopg"
        # Bulk writes go straight to the driver (COPY, or executemany: SQLAlchemy's per-row parameter
        # handling costs ~3x on a million rows); its placeholder style is all that differs.
        self._p = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        # SQLite plans a join as nested loops; walking the predictions by the version index would look
        # each label up in random key order. For statements over whole versions it must scan in key
        # order instead: "+column" keeps SQLite off an index, CROSS JOIN fixes the loop order
        # (PostgreSQL plans these as hash joins by itself and knows neither spelling).
        sqlite = self.dialect == "sqlite"
        self._scan = "+" if sqlite else ""
        self._outer_labels = "CROSS JOIN" if sqlite else "JOIN"
        self._write_lock = threading.Lock()  # one writer per process (SQLite allows one anyway)
        with self.engine.begin() as conn:
            new_store = not sa.inspect(conn).has_table(PREDICTIONS)
            for statement in _schema(key_type):
                conn.execute(sa.text(statement))
            if new_store:
                # A store from before this layout (or a new one): read the prediction log from the start.
                conn.execute(sa.text("DELETE FROM quality_log_offsets"))

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ bulk loading
    def _incoming(self, conn: Connection, table: tuple[str, tuple[str, ...]], rows: Iterable[tuple[Any, ...]],
                  types: Sequence[str]) -> None:
        """An empty temporary table ``table`` (per connection), filled with ``rows``."""
        name, columns = table
        definition = ", ".join(f"{c} {t}" for c, t in zip(columns, types, strict=True))
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({definition})"))
        conn.execute(sa.text(f"{'DELETE FROM' if self.dialect == 'sqlite' else 'TRUNCATE'} {name}"))
        if self._copy:
            raw: Any = conn.connection.driver_connection  # psycopg 3: COPY, in this transaction
            with raw.cursor() as cursor, cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join([self._p] * len(columns))
            conn.exec_driver_sql(f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({placeholders})",
                                 list(rows))  # type: ignore[arg-type]
        if self.dialect == "postgresql":
            # Autovacuum never sees temporary tables: without statistics the planner guesses a few rows
            # and may join a million of them by nested loops.
            conn.execute(sa.text(f"ANALYZE {name}"))

    # ------------------------------------------------------------------ predictions (from the log)
    def add_predictions(self, rows: Sequence[Prediction]) -> int:
        """Store predictions (a known id is ignored). Returns how many waiting labels they meet."""
        if not rows:
            return 0
        keys, unique, _ = _by_key([r.prediction_id for r in rows])
        key_list = keys.tolist()
        chosen = map(rows.__getitem__, unique)
        incoming = [(key_list[i], r.prediction_id, r.model_name, r.model_version, r.predicted_at, r.predicted,
                     r.predicted_name, r.predicted_value, r.confidence) for i, r in zip(unique, chosen, strict=True)]
        name, columns = _INCOMING_PREDICTIONS
        with self._write_lock, self.engine.begin() as conn:
            self._incoming(conn, _INCOMING_PREDICTIONS, incoming,
                           (f"{self._key_type} PRIMARY KEY", "VARCHAR(64)", "VARCHAR(255)", "VARCHAR(64)",
                            "DOUBLE PRECISION", "VARCHAR(255)", "VARCHAR(255)", "DOUBLE PRECISION",
                            "DOUBLE PRECISION"))
            joined = 0
            if conn.execute(sa.text(f"SELECT 1 FROM {LABELS} LIMIT 1")).first():
                joined = int(conn.execute(sa.text(
                    f"SELECT COUNT(*) FROM {name} i JOIN {LABELS} l ON l.key = i.key"
                    f" AND l.prediction_id = i.prediction_id WHERE NOT EXISTS (SELECT 1 FROM {PREDICTIONS} p"
                    " WHERE p.key = i.key)")).scalar_one())
            conn.execute(sa.text(
                f"INSERT INTO {PREDICTIONS} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {name}"
                " WHERE true ON CONFLICT (key) DO NOTHING"))
        return joined

    def log_offsets(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {str(k): int(v) for k, v in conn.execute(sa.text(
                "SELECT file_key, read_offset FROM quality_log_offsets"))}

    def save_log_offsets(self, offsets: dict[str, int], now: float, *, forget_others: bool = True) -> None:
        with self._write_lock, self.engine.begin() as conn:
            if forget_others:
                conn.execute(sa.text("DELETE FROM quality_log_offsets"))
            if offsets:
                conn.execute(sa.text(
                    "INSERT INTO quality_log_offsets (file_key, read_offset, seen_at) VALUES (:k, :o, :t)"
                    " ON CONFLICT (file_key) DO UPDATE SET read_offset = excluded.read_offset,"
                    " seen_at = excluded.seen_at"), [{"k": k, "o": o, "t": now} for k, o in offsets.items()])

    # ------------------------------------------------------------------ labels (feedback)
    def add_labels(self, labels: Sequence[Label], received_at: float) -> FeedbackOutcome:
        """Label predictions; the first label of a prediction wins. ``labels`` must have unique ids.

        Set-based: the batch goes into a temporary table in key order, one statement finds the
        labels that cannot be joined now (already labeled, or prediction not read yet) and one
        appends the batch to the labels table."""
        outcome = FeedbackOutcome([], [], [])
        if not labels:
            return outcome
        keys, unique, collided = _by_key([label.prediction_id for label in labels])
        key_list = keys.tolist()
        incoming = [(key_list[i], label.prediction_id, label.actual, label.actual_value, label.labeled_at)
                    for i, label in zip(unique, map(labels.__getitem__, unique), strict=True)]
        name, columns = _INCOMING_LABELS
        with self._write_lock, self.engine.begin() as conn:
            self._incoming(conn, _INCOMING_LABELS, incoming,
                           (f"{self._key_type} PRIMARY KEY", "VARCHAR(64)", "VARCHAR(255)", "DOUBLE PRECISION",
                            "DOUBLE PRECISION"))
            for pid, labeled in conn.execute(sa.text(
                    f"SELECT i.prediction_id, l.key FROM {name} i LEFT JOIN {LABELS} l ON l.key = i.key"
                    f" LEFT JOIN {PREDICTIONS} p ON p.key = i.key AND p.prediction_id = i.prediction_id"
                    " WHERE l.key IS NOT NULL OR p.key IS NULL")):
                (outcome.duplicate if labeled is not None else outcome.pending).append(pid)
            conn.execute(sa.text(
                f"INSERT INTO {LABELS} ({', '.join(columns)}, received_at) SELECT {', '.join(columns)}, :r"
                f" FROM {name} WHERE true ON CONFLICT (key) DO NOTHING"), {"r": received_at})
        outcome.duplicate += [labels[i].prediction_id for i in collided]
        not_joined = set(outcome.duplicate) | set(outcome.pending)
        outcome.joined = [label.prediction_id for label in labels if label.prediction_id not in not_joined]
        if not_joined:  # answers keep the request's order
            order = {label.prediction_id: i for i, label in enumerate(labels)}
            outcome.duplicate.sort(key=order.__getitem__)
            outcome.pending.sort(key=order.__getitem__)
        return outcome

    # ------------------------------------------------------------------ reading (the join)
    def version_counts(self, model_name: str, *, since: float, limit: int) -> list[VersionCounts]:
        """Versions with predictions since ``since``, the newest first, with their prediction and label counts."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(
                f"SELECT p.model_version, COUNT(*), COUNT(l.key), MAX(p.predicted_at) FROM {PREDICTIONS} p"
                f" LEFT JOIN {LABELS} l ON l.key = p.key AND l.prediction_id = p.prediction_id"
                f" WHERE {self._scan}p.model_name = :m AND p.predicted_at >= :since GROUP BY p.model_version"
                " ORDER BY MAX(p.predicted_at) DESC LIMIT :limit"), {"m": model_name, "since": since, "limit": limit})
            return [VersionCounts(str(v), int(n), int(labeled), float(newest)) for v, n, labeled, newest in rows]

    def newest_labeled(self, model_name: str, version: str, limit: int) -> list[LabeledRow]:
        """The newest ``limit`` labeled predictions of a version. Its newest predictions are taken from
        the version index a slice at a time (twice ``limit``, then four times more each round) and
        joined with their labels, so the work follows the labels' delay, never the table's size."""
        scan = 2 * limit
        with self.engine.connect() as conn:
            while True:
                rows = conn.execute(sa.text(
                    "SELECT p.predicted, p.predicted_name, p.predicted_value, p.confidence, l.actual, l.actual_value,"
                    f" p.predicted_at, l.labeled_at FROM (SELECT key, prediction_id, predicted, predicted_name,"
                    f" predicted_value, confidence, predicted_at FROM {PREDICTIONS} WHERE model_name = :m"
                    " AND model_version = :v ORDER BY predicted_at DESC LIMIT :scan) p"
                    f" JOIN {LABELS} l ON l.key = p.key AND l.prediction_id = p.prediction_id"
                    " ORDER BY p.predicted_at DESC LIMIT :limit"),
                    {"m": model_name, "v": version, "limit": limit, "scan": scan}).all()
                if len(rows) >= limit or not conn.execute(sa.text(
                        f"SELECT 1 FROM {PREDICTIONS} WHERE model_name = :m AND model_version = :v"
                        " ORDER BY predicted_at DESC LIMIT 1 OFFSET :scan"),
                        {"m": model_name, "v": version, "scan": scan}).first():
                    return [LabeledRow(*row) for row in rows]
                scan *= 4

    def newest_confidences(self, model_name: str, version: str, limit: int) -> list[float | None]:
        with self.engine.connect() as conn:
            return [c for (c,) in conn.execute(sa.text(
                f"SELECT confidence FROM {PREDICTIONS} WHERE model_name = :m AND model_version = :v"
                " ORDER BY predicted_at DESC LIMIT :limit"), {"m": model_name, "v": version, "limit": limit})]

    def class_names(self, model_name: str, version: str) -> dict[str, str]:
        """Canonical label -> display name, as logged for this version."""
        with self.engine.connect() as conn:
            return {str(p): str(n) for p, n in conn.execute(sa.text(
                f"SELECT DISTINCT predicted, predicted_name FROM {PREDICTIONS} WHERE model_name = :m"
                " AND model_version = :v AND predicted IS NOT NULL AND predicted_name IS NOT NULL"),
                {"m": model_name, "v": version})}

    def pending_count(self) -> int:
        """Labels whose prediction has not been read (yet)."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(
                f"SELECT COUNT(*) FROM {LABELS} l WHERE NOT EXISTS (SELECT 1 FROM {PREDICTIONS} p"
                " WHERE p.key = l.key AND p.prediction_id = l.prediction_id)")).scalar_one())

    def joined_count(self, model_name: str) -> int:
        """Predictions of ``model_name`` with their label: the whole join, in one statement."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(
                f"SELECT COUNT(*) FROM {LABELS} l {self._outer_labels} {PREDICTIONS} p ON p.key = l.key"
                " AND p.prediction_id = l.prediction_id WHERE p.model_name = :m"), {"m": model_name}).scalar_one())

    # ------------------------------------------------------------------ retention
    def prune(self, older_than: float) -> tuple[int, int]:
        """Delete predictions made before ``older_than`` with their labels, and labels received before it
        that never met their prediction; returns both counts (the second one: labels never joined).
        Per model version, so the version index does the work."""
        with self._write_lock, self.engine.begin() as conn:
            expired = conn.execute(sa.text(
                f"DELETE FROM {LABELS} WHERE received_at < :t AND NOT EXISTS (SELECT 1 FROM {PREDICTIONS} p"
                f" WHERE p.key = {LABELS}.key AND p.prediction_id = {LABELS}.prediction_id)"),
                {"t": older_than}).rowcount
            versions = conn.execute(sa.text(f"SELECT DISTINCT model_name, model_version FROM {PREDICTIONS}")).all()
            predictions = 0
            for name, version in versions:
                where = {"m": name, "v": version, "t": older_than}
                conn.execute(sa.text(
                    f"DELETE FROM {LABELS} WHERE key IN (SELECT key FROM {PREDICTIONS} WHERE model_name = :m"
                    " AND model_version = :v AND predicted_at < :t)"), where)
                predictions += int(conn.execute(sa.text(
                    f"DELETE FROM {PREDICTIONS} WHERE model_name = :m AND model_version = :v"
                    " AND predicted_at < :t"), where).rowcount or 0)
        return predictions, int(expired or 0)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-131072")  # 128 MiB of pages: the indexes of a few million rows
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()
