"""The prediction log: one JSON line per prediction, written by a background thread.

Three stages, none of them on the request's critical path:

1. The request path adds its predictions (a tuple of references, ~0.2 µs) to a pending list.
2. Every ``encode_rows`` rows, and every ``interval`` seconds from a small task, the pending
   predictions are encoded in one go on the event loop thread: one orjson call for the lot.
   Encoding in bulk costs less than half of encoding each request as it comes (the serialiser's
   code and data stay in the CPU caches), and doing it on the loop thread rather than in the
   writer avoids two threads taking turns on the interpreter lock.
3. The writer thread writes the encoded lines to ``predictions-<instance>.jsonl``, rotates the file
   by size (``.1`` is the newest rotation) and keeps ``backups`` rotations.

``close()`` encodes and writes everything still waiting, then flushes and fsyncs: a clean shutdown
loses nothing. When the writer falls behind by ``max_queue_rows`` rows, new rows are dropped and
counted instead of slowing requests or growing memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

logger = logging.getLogger(__name__)

# One request's predictions as the request path hands them over: (timestamp, model object, feature
# names, rows, prediction ids, class ids, class names, probabilities, latency_ms).
Pending = tuple[float, dict[str, str], Sequence[str], list[list[Any]], list[str], list[Any], list[str],
                list[Any], float]
_RECORD_START = b'{"timestamp":'
_BETWEEN_RECORDS = b'},{"timestamp":'

_second_cache: tuple[int, str] = (-1, "")
_milli_cache: tuple[int, str] = (-1, "")


def format_timestamp(epoch: float) -> str:
    """``2026-01-01T12:00:00.123Z`` (UTC, milliseconds, truncated). Cached per millisecond and per
    second: under load many predictions share both, and strftime is the slow part."""
    global _second_cache, _milli_cache
    # The microsecond added absorbs float error (1767268800.123 is stored as ...122999).
    millis = int(epoch * 1000 + 0.001)
    cached_millis, stamp = _milli_cache
    if millis == cached_millis:
        return stamp
    second, fraction = divmod(millis, 1000)
    cached_second, prefix = _second_cache
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_cache = (second, prefix)
    stamp = f"{prefix}.{fraction:03d}Z"
    _milli_cache = (millis, stamp)
    return stamp


def model_json(name: str, version: str, source: str) -> dict[str, str]:
    """The ``model`` object of a record (one shared dict per loaded version)."""
    return {"name": name, "version": version, "source": source}


def encode_records(pending: Sequence[Pending]) -> bytes:
    """JSON lines in the DESIGN.md record format, one per prediction (a missing value, NaN, is written
    as null). One orjson call serialises the list; the list is then cut into lines where one record
    ends and the next begins: ``},{"timestamp":`` cannot occur anywhere else, because a quote inside
    a JSON string is always escaped and no record holds a list of objects."""
    records: list[dict[str, Any]] = []
    append = records.append
    for timestamp, model, names, rows, ids, class_ids, class_names, probabilities, latency_ms in pending:
        stamp = format_timestamp(timestamp)
        latency = round(latency_ms, 3)
        for row, pid, cid, cname, prob in zip(rows, ids, class_ids, class_names, probabilities):  # noqa: B905
            append({"timestamp": stamp, "event": "prediction", "prediction_id": pid,
                    "features": dict(zip(names, row)),  # noqa: B905  (rows were validated against names)
                    "prediction": {"class_id": cid, "class_name": cname, "probability": prob},
                    "model": model, "latency_ms": latency})
    if not records:
        return b""
    data = orjson.dumps(records, option=orjson.OPT_SERIALIZE_NUMPY)
    return data[1:-1].replace(_BETWEEN_RECORDS, b"}\n" + _RECORD_START) + b"\n"


class PredictionLog:
    """Asynchronous JSONL writer with size rotation and count retention."""

    def __init__(self, directory: Path, instance: str, *, max_bytes: int, backups: int,
                 max_queue_rows: int = 200_000, interval: float = 0.05, encode_rows: int = 64,
                 on_drop: Callable[[int], None] | None = None) -> None:
        self.directory = directory
        self.path = directory / f"predictions-{instance}.jsonl"
        self.max_bytes = max_bytes
        self.backups = backups
        self.max_queue_rows = max_queue_rows
        self.interval = interval
        self.on_drop = on_drop
        self.encode_rows = encode_rows
        self._pending: list[Pending] = []  # event loop thread only
        self._pending_rows = 0
        self.written_rows = 0
        self.dropped_rows = 0
        self._queue: deque[tuple[bytes, int]] = deque()
        # Each counter has one writer thread, so no update is lost without a lock.
        self._enqueued_rows = 0  # request path
        self._dequeued_rows = 0  # writer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: IO[bytes] | None = None
        self._size = 0

    # ------------------------------------------------------------------ request path (event loop thread)
    def add(self, pending: Pending) -> None:
        """One request's predictions; encoded with others soon (see the module docstring)."""
        self._pending.append(pending)
        self._pending_rows += len(pending[3])
        if self._pending_rows >= self.encode_rows:
            self.encode_pending()

    def encode_pending(self) -> None:
        """Encode what the request path added and hand it to the writer."""
        if not self._pending:
            return
        pending, rows = self._pending, self._pending_rows
        self._pending, self._pending_rows = [], 0
        try:
            data = encode_records(pending)
        except (TypeError, ValueError) as exc:  # boundary: a value orjson cannot write loses these rows, counted
            logger.error("prediction log: %d rows could not be encoded (%s); dropped", rows, exc)
            self.dropped_rows += rows
            if self.on_drop is not None:
                self.on_drop(rows)
            return
        self.append(data, rows)

    async def encode_periodically(self) -> None:
        """So that lines reach the file within ``interval`` seconds when traffic is light."""
        while True:
            await asyncio.sleep(self.interval)
            self.encode_pending()

    def append(self, lines: bytes, rows: int) -> None:
        """Queue ``rows`` encoded predictions for the writer (any thread)."""
        if self._enqueued_rows - self._dequeued_rows + rows > self.max_queue_rows:
            self.dropped_rows += rows
            if self.on_drop is not None:
                self.on_drop(rows)
            return
        self._enqueued_rows += rows
        self._queue.append((lines, rows))

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything waiting, flush and fsync, and stop the writer. Call ``encode_pending()``
        on the event loop first (``close`` may run in another thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error("prediction log: the writer did not finish in %.0f s; %d rows may be lost",
                             timeout, self.queued_rows)
                return
            self._thread = None
        self._drain()  # anything appended after the thread's last pass
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    @property
    def queued_rows(self) -> int:
        return self._enqueued_rows - self._dequeued_rows

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._drain()
            except Exception:  # boundary of the writer thread: keep writing later, say why now
                logger.exception("prediction log: writing failed; will retry")
                time.sleep(1.0)
        # close() drains what is left after join

    def _drain(self) -> None:
        if not self._queue or self._file is None:
            return
        chunks: list[bytes] = []
        pending = 0
        rows = 0
        queue = self._queue
        while queue:
            data, count = queue.popleft()
            rows += count
            if self._size + pending + len(data) > self.max_bytes and (self._size or pending):
                self._write(chunks)
                chunks, pending = [], 0
                self._rotate()
            chunks.append(data)
            pending += len(data)
        self._write(chunks)
        self._dequeued_rows += rows
        self.written_rows += rows

    def _write(self, chunks: list[bytes]) -> None:
        if not chunks or self._file is None:
            return
        data = b"".join(chunks)
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _open(self) -> None:
        self._file = self.path.open("ab")
        self._size = self._file.tell()

    def _rotate(self) -> None:
        """predictions.jsonl -> .1 -> .2 ... ; the oldest beyond ``backups`` is deleted."""
        if self._file is not None:
            self._file.close()
        oldest = self.path.with_name(f"{self.path.name}.{self.backups}")
        oldest.unlink(missing_ok=True)
        for n in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{n}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._open()
