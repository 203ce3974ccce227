"""The quality store: logged predictions joined with their labels, kept for a retention period.

One table holds a row per logged prediction (id, model, version, time, predicted label or value,
top-class probability) and, once its label has come, the actual label and when it was known. Labels
whose prediction id is not (yet) in the table wait in a second table: the prediction log is read
every few seconds, so a label may come first; it is joined when its prediction arrives, or expires
with the retention. A third table keeps how far each prediction log file has been read.

The SQL is the subset SQLite and PostgreSQL share (``ON CONFLICT DO NOTHING``, ``UPDATE ... FROM``,
partial indexes), run through SQLAlchemy: the embedded default is a SQLite file under
``DRIFTWATCH_HOME``; ``DRIFTWATCH_QUALITY_DATABASE_URL`` points it at a real database.

The first label of a prediction wins: a repeated delivery (a retried batch, a replayed file) changes
nothing and is answered ``duplicate``; a correction is a decision for a person, not a side effect of
a retry (docs/quality.md).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS quality_predictions (
        prediction_id VARCHAR(64) PRIMARY KEY,
        model_name VARCHAR(255) NOT NULL,
        model_version VARCHAR(64) NOT NULL,
        predicted_at DOUBLE PRECISION NOT NULL,
        predicted VARCHAR(255),
        predicted_name VARCHAR(255),
        predicted_value DOUBLE PRECISION,
        confidence DOUBLE PRECISION,
        actual VARCHAR(255),
        actual_value DOUBLE PRECISION,
        labeled_at DOUBLE PRECISION,
        received_at DOUBLE PRECISION)""",
    """CREATE INDEX IF NOT EXISTS quality_predictions_version
        ON quality_predictions (model_name, model_version, predicted_at)""",
    """CREATE INDEX IF NOT EXISTS quality_predictions_labeled
        ON quality_predictions (model_name, model_version, predicted_at) WHERE received_at IS NOT NULL""",
    """CREATE TABLE IF NOT EXISTS quality_pending_labels (
        prediction_id VARCHAR(64) PRIMARY KEY,
        actual VARCHAR(255),
        actual_value DOUBLE PRECISION,
        labeled_at DOUBLE PRECISION NOT NULL,
        received_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS quality_log_offsets (
        file_key VARCHAR(255) PRIMARY KEY,
        read_offset BIGINT NOT NULL,
        seen_at DOUBLE PRECISION NOT NULL)""",
)

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
        # Bulk writes go straight to the driver's executemany (SQLAlchemy's per-row parameter handling
        # costs ~3x on a million rows); its placeholder style is all that differs between drivers.
        self._p = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._write_lock = threading.Lock()  # one writer per process (SQLite allows one anyway)
        with self.engine.begin() as conn:
            for statement in SCHEMA:
                conn.execute(sa.text(statement))

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ predictions (from the log)
    def add_predictions(self, rows: Sequence[Prediction]) -> int:
        """Insert predictions (a known id is ignored) and join the labels that were waiting for them.
        Returns how many waiting labels were joined."""
        if not rows:
            return 0
        p = self._p
        params = [(r.prediction_id, r.model_name, r.model_version, r.predicted_at, r.predicted, r.predicted_name,
                   r.predicted_value, r.confidence) for r in rows]
        with self._write_lock, self.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO quality_predictions (prediction_id, model_name, model_version, predicted_at, predicted,"
                f" predicted_name, predicted_value, confidence) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
                " ON CONFLICT (prediction_id) DO NOTHING", params)  # type: ignore[arg-type]
            if not conn.execute(sa.text("SELECT 1 FROM quality_pending_labels LIMIT 1")).first():
                return 0
            joined = conn.execute(sa.text(
                "UPDATE quality_predictions SET actual = p.actual, actual_value = p.actual_value,"
                " labeled_at = p.labeled_at, received_at = p.received_at FROM quality_pending_labels p"
                " WHERE p.prediction_id = quality_predictions.prediction_id"
                " AND quality_predictions.received_at IS NULL")).rowcount
            conn.execute(sa.text(
                "DELETE FROM quality_pending_labels WHERE EXISTS (SELECT 1 FROM quality_predictions q"
                " WHERE q.prediction_id = quality_pending_labels.prediction_id)"))
        return int(joined or 0)

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

        Set-based: the batch goes into a temporary table and is joined with the stored predictions
        in a few statements, so a million labels cost a few database statements, not a million."""
        outcome = FeedbackOutcome([], [], [])
        if not labels:
            return outcome
        p = self._p
        with self._write_lock, self.engine.begin() as conn:
            # No key on the temporary table: the ids of a batch are unique already (feedback.parse_items),
            # and every statement below walks it once, looking each id up in the stored tables.
            conn.execute(sa.text(
                "CREATE TEMPORARY TABLE IF NOT EXISTS quality_incoming (prediction_id VARCHAR(64) NOT NULL,"
                " actual VARCHAR(255), actual_value DOUBLE PRECISION, labeled_at DOUBLE PRECISION NOT NULL)"))
            conn.execute(sa.text("DELETE FROM quality_incoming"))
            conn.exec_driver_sql(
                "INSERT INTO quality_incoming (prediction_id, actual, actual_value, labeled_at)"
                f" VALUES ({p}, {p}, {p}, {p})",
                [(label.prediction_id, label.actual, label.actual_value, label.labeled_at)
                 for label in labels])  # type: ignore[arg-type]
            waiting = conn.execute(sa.text("SELECT 1 FROM quality_pending_labels LIMIT 1")).first() is not None
            # One pass: the ids that cannot be joined now, and why (already labeled, or not logged yet).
            for pid, labeled in conn.execute(sa.text(
                    "SELECT i.prediction_id, q.received_at FROM quality_incoming i LEFT JOIN quality_predictions q"
                    " ON q.prediction_id = i.prediction_id"
                    " WHERE q.prediction_id IS NULL OR q.received_at IS NOT NULL")):
                (outcome.duplicate if labeled is not None else outcome.pending).append(pid)
            if waiting and outcome.pending:
                already = {pid for (pid,) in conn.execute(sa.text(
                    "SELECT i.prediction_id FROM quality_incoming i JOIN quality_pending_labels w"
                    " ON w.prediction_id = i.prediction_id"))}
                outcome.duplicate += [pid for pid in outcome.pending if pid in already]
                outcome.pending = [pid for pid in outcome.pending if pid not in already]
            conn.execute(sa.text(
                "UPDATE quality_predictions SET actual = i.actual, actual_value = i.actual_value,"
                " labeled_at = i.labeled_at, received_at = :r FROM quality_incoming i"
                " WHERE i.prediction_id = quality_predictions.prediction_id"
                " AND quality_predictions.received_at IS NULL"), {"r": received_at})
            if outcome.pending:
                conn.execute(sa.text(
                    "INSERT INTO quality_pending_labels (prediction_id, actual, actual_value, labeled_at, received_at)"
                    " SELECT i.prediction_id, i.actual, i.actual_value, i.labeled_at, :r FROM quality_incoming i"
                    " WHERE NOT EXISTS (SELECT 1 FROM quality_predictions q WHERE q.prediction_id = i.prediction_id)"
                    " ON CONFLICT (prediction_id) DO NOTHING"), {"r": received_at})
            conn.execute(sa.text("DELETE FROM quality_incoming"))
        not_joined = set(outcome.duplicate) | set(outcome.pending)
        outcome.joined = [label.prediction_id for label in labels if label.prediction_id not in not_joined]
        # answers keep the request's order
        order = {label.prediction_id: i for i, label in enumerate(labels)}
        outcome.duplicate.sort(key=order.__getitem__)
        outcome.pending.sort(key=order.__getitem__)
        return outcome

    # ------------------------------------------------------------------ reading
    def version_counts(self, model_name: str, *, since: float, limit: int) -> list[VersionCounts]:
        """Versions with predictions since ``since``, the newest first, with their prediction and label counts."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT model_version, COUNT(*), COUNT(received_at), MAX(predicted_at) FROM quality_predictions"
                " WHERE model_name = :m AND predicted_at >= :since GROUP BY model_version"
                " ORDER BY MAX(predicted_at) DESC LIMIT :limit"), {"m": model_name, "since": since, "limit": limit})
            return [VersionCounts(str(v), int(n), int(labeled), float(newest)) for v, n, labeled, newest in rows]

    def newest_labeled(self, model_name: str, version: str, limit: int) -> list[LabeledRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT predicted, predicted_name, predicted_value, confidence, actual, actual_value, predicted_at,"
                " labeled_at FROM quality_predictions WHERE model_name = :m AND model_version = :v"
                " AND received_at IS NOT NULL ORDER BY predicted_at DESC LIMIT :limit"),
                {"m": model_name, "v": version, "limit": limit})
            return [LabeledRow(*row) for row in rows]

    def newest_confidences(self, model_name: str, version: str, limit: int) -> list[float | None]:
        with self.engine.connect() as conn:
            return [c for (c,) in conn.execute(sa.text(
                "SELECT confidence FROM quality_predictions WHERE model_name = :m AND model_version = :v"
                " ORDER BY predicted_at DESC LIMIT :limit"), {"m": model_name, "v": version, "limit": limit})]

    def class_names(self, model_name: str, version: str) -> dict[str, str]:
        """Canonical label -> display name, as logged for this version."""
        with self.engine.connect() as conn:
            return {str(p): str(n) for p, n in conn.execute(sa.text(
                "SELECT DISTINCT predicted, predicted_name FROM quality_predictions WHERE model_name = :m"
                " AND model_version = :v AND predicted IS NOT NULL AND predicted_name IS NOT NULL"),
                {"m": model_name, "v": version})}

    def pending_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM quality_pending_labels")).scalar_one())

    # ------------------------------------------------------------------ retention
    def prune(self, older_than: float) -> tuple[int, int]:
        """Delete predictions made and waiting labels received before ``older_than``; returns both counts
        (the second one is labels that never met their prediction). Per model version, so the
        version index does the work."""
        with self._write_lock, self.engine.begin() as conn:
            versions = conn.execute(sa.text(
                "SELECT DISTINCT model_name, model_version FROM quality_predictions")).all()
            predictions = 0
            for name, version in versions:
                predictions += int(conn.execute(sa.text(
                    "DELETE FROM quality_predictions WHERE model_name = :m AND model_version = :v"
                    " AND predicted_at < :t"), {"m": name, "v": version, "t": older_than}).rowcount or 0)
            expired = conn.execute(sa.text("DELETE FROM quality_pending_labels WHERE received_at < :t"),
                                   {"t": older_than}).rowcount
        return predictions, int(expired or 0)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-131072")  # 128 MiB of pages: the indexes of a few million rows
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()
