"""The prediction log: one JSON line per prediction, written off the request path by another process.

The request path packs each prediction into a fixed binary frame (``struct``, ~1 µs; the layout is
in ``serving.log_writer``) and appends it to a deque. A sender thread moves the frames to a writer
process through a pipe every ``interval`` seconds; the writer process turns them into JSON lines,
appends them to ``predictions-<instance>.jsonl``, rotates the file by size (``.1`` is the newest
rotation) and keeps ``backups`` rotations.

Why a process: formatting JSON costs a few microseconds per prediction, and in this process it
would hold the interpreter lock that requests need (measured: 5-13% of one-row throughput,
depending on what else the machine runs). In the writer process it runs on another core.

``close()`` sends everything waiting and ends the writer's input; the writer writes the rest, fsyncs
and exits, so a clean shutdown loses nothing. When the writer falls behind by ``max_queue_rows``
rows, new rows are dropped and counted instead of slowing requests or growing memory. If the writer
process dies, the rows in flight are counted as dropped and a new writer is started.

Every row taken gets the next ``seq`` (1, 2, ...), and before the request is answered the last one
goes into ``predictions-<instance>.acked``, a memory-mapped 8-byte counter. If this process is
killed (kill -9), the rows still in the deque are lost; the kernel keeps the counter, the writer
reads it when its input ends and writes a ``log_end`` line saying how many acknowledged rows it never
got. The loss is bounded by what one sender pass carries: the rows acknowledged in the last
``interval`` (50 ms) plus a frame cut in the middle of a pipe write.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from driftwatch.prediction_record import ACK, ack_path, log_path, prediction_record, to_lines
from serving.log_writer import HEADER, SEGMENTS_ENV, row_struct

logger = logging.getLogger(__name__)

NUMERIC_KINDS = frozenset({"double", "float", "long", "integer"})
NAN = float("nan")
RESTART_AFTER_SECONDS = 5.0


@dataclass
class LogModel:
    """What every line of one served version shares; built once per loaded version."""

    model: dict[str, str]  # the record's "model" object
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    class_ids: list[Any]
    class_names: list[str]
    task: str = "classification"
    numeric: bool = field(init=False)

    def __post_init__(self) -> None:
        self.numeric = all(kind in NUMERIC_KINDS for kind in self.kinds)


class PredictionLog:
    """The request path's side of the log: frames, a sender thread, the writer process."""

    def __init__(self, directory: Path, instance: str, *, max_bytes: int, backups: int,
                 max_queue_rows: int = 200_000, interval: float = 0.05,
                 on_drop: Callable[[int], None] | None = None, s3_url: str | None = None,
                 model_name: str | None = None, segment_seconds: float = 60.0) -> None:
        self.directory = directory
        self.instance = instance
        self.path = log_path(directory, instance)
        # what the writer process is started with (serving.log_writer's command line)
        self.writer_args = [str(directory), instance, str(max_bytes), str(backups)]
        self.max_queue_rows = max_queue_rows
        self.interval = interval
        self.on_drop = on_drop
        # closed segments go to S3 (serving.log_shipper) when an S3 location is given
        self.s3 = (s3_url, model_name or "", segment_seconds) if s3_url else None
        self.dropped_rows = 0
        self.sent_rows = 0
        self._queue: deque[tuple[bytes, int, int]] = deque()  # frame, rows, last seq in it (0: none)
        self._seq = 0  # last seq given out (request path)
        self._accounted_seq = 0  # last seq written to the pipe or counted as dropped (sender)
        self._ack: mmap.mmap | None = None
        # Each counter has one writer thread, so no update is lost without a lock.
        self._enqueued_rows = 0  # request path
        self._dequeued_rows = 0  # sender
        self._models: dict[int, tuple[int, Any, LogModel]] = {}  # id(LogModel) -> (key, layout, model)
        self._frames_of_models: list[bytes] = []  # every M frame, re-sent to a restarted writer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer: subprocess.Popen[bytes] | None = None
        self._restart_at = 0.0

    # ------------------------------------------------------------------ request path (event loop thread)
    def add(self, timestamp: float, model: LogModel, rows: list[list[Any]], ids: list[str],
            positions: Sequence[int | None], probabilities: Sequence[float | None], latency_ms: float) -> None:
        """One request's predictions (values of ``rows`` in ``model.names`` order)."""
        n = len(rows)
        if self._enqueued_rows - self._dequeued_rows + n > self.max_queue_rows:
            self._drop(n)
            return
        entry = self._models.get(id(model))
        if entry is None:
            entry = self._register(model)
        key, layout, _ = entry
        first = self._seq + 1
        self._seq = last = self._seq + n
        if layout is not None and n == 1 and positions[0] is not None and len(ids[0]) == 32:
            probability = probabilities[0]
            frame: bytes = layout.pack(b"R", key, positions[0], timestamp, latency_ms,
                                       NAN if probability is None else probability, ids[0].encode(), first, *rows[0])
        else:
            frame = self._frames(key, layout, model, timestamp, rows, ids, positions, probabilities, latency_ms, first)
        self._enqueued_rows += n
        self._queue.append((frame, n, last))
        if self._ack is not None:
            ACK.pack_into(self._ack, 0, last)  # acknowledged: the answer goes out after this

    def _frames(self, key: int, layout: Any, model: LogModel, timestamp: float, rows: list[list[Any]],
                ids: list[str], positions: Sequence[int | None], probabilities: Sequence[float | None],
                latency_ms: float, first_seq: int) -> bytes:
        parts = []
        for seq, (row, pid, position, probability) in enumerate(zip(rows, ids, positions, probabilities, strict=True),
                                                                 start=first_seq):
            if layout is not None and position is not None and len(pid) == 32:
                parts.append(layout.pack(b"R", key, position, timestamp, latency_ms,
                                         NAN if probability is None else probability, pid.encode(), seq, *row))
            else:  # non-numeric features or a class the model did not declare: a ready line
                regression = model.task == "regression"
                known = position is not None and not regression
                class_id = model.class_ids[position] if known and position is not None else None
                class_name = model.class_names[position] if known and position is not None else "other"
                line = to_lines([prediction_record(timestamp, pid, dict(zip(model.names, row, strict=True)), class_id,
                                                   class_name, probability, model.model, latency_ms, seq,
                                                   regression=regression)])
                parts.append(HEADER.pack(b"J", ACK.size + len(line)) + ACK.pack(seq) + line)
        return b"".join(parts)

    def _register(self, model: LogModel) -> tuple[int, Any, LogModel]:
        key = len(self._frames_of_models)
        layout = row_struct(len(model.names)) if model.numeric else None
        spec = orjson.dumps({"key": key, "model": model.model, "names": model.names, "kinds": model.kinds,
                             "class_ids": model.class_ids, "class_names": model.class_names,
                             "task": model.task})
        frame = HEADER.pack(b"M", len(spec)) + spec
        self._frames_of_models.append(frame)
        self._queue.append((frame, 0, 0))
        entry = (key, layout, model)  # keeps the model alive, so its id() is not reused
        self._models[id(model)] = entry
        return entry

    def _drop(self, rows: int) -> None:
        self.dropped_rows += rows
        if self.on_drop is not None:
            self.on_drop(rows)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        counter = ack_path(self.directory, self.instance)
        with counter.open("w+b") as handle:  # a new process starts at 0 (a new writer, new seq)
            handle.write(ACK.pack(0))
            handle.flush()
            self._ack = mmap.mmap(handle.fileno(), ACK.size)
        self._writer = self._spawn()
        self._thread = threading.Thread(target=self._run, name="prediction-log-sender", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Send everything waiting, end the writer's input and wait for it to write, fsync and exit."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error("prediction log: the sender did not finish in %.0f s; %d rows may be lost",
                             timeout, self.queued_rows)
                return
            self._thread = None
        self._send()  # anything added after the thread's last pass
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if writer.stdin is not None:
            with contextlib.suppress(OSError):  # a writer that died already: wait() reports it
                writer.stdin.close()
        try:
            code = writer.wait(timeout)
        except subprocess.TimeoutExpired:
            writer.kill()
            code = writer.wait()
            logger.error("prediction log: the writer did not finish in %.0f s and was killed", timeout)
        if code != 0:
            logger.error("prediction log: the writer exited with %s", code)

    @property
    def queued_rows(self) -> int:
        return self._enqueued_rows - self._dequeued_rows

    # ------------------------------------------------------------------ sender thread
    def _spawn(self) -> subprocess.Popen[bytes]:
        # Its own session: a Ctrl-C in a terminal reaches serving, which then closes the pipe.
        env = None
        if self.s3 is not None:  # the writer ships closed segments (serving.log_shipper)
            url, model_name, seconds = self.s3
            env = {**os.environ, SEGMENTS_ENV: orjson.dumps({"url": url, "model_name": model_name,
                                                             "segment_seconds": seconds}).decode()}
        return subprocess.Popen(
            [sys.executable, "-m", "serving.log_writer", *self.writer_args, str(self._accounted_seq)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._send()
            except Exception:  # boundary of the sender thread: keep going, say why
                logger.exception("prediction log: sending to the writer failed")

    def _send(self) -> None:
        queue = self._queue
        if not queue:
            return
        chunks: list[bytes] = []
        rows = 0
        last_seq = 0
        while queue:
            frame, count, last = queue.popleft()
            chunks.append(frame)
            rows += count
            last_seq = max(last_seq, last)
        data = b"".join(chunks)
        try:
            self._write(data)
            self.sent_rows += rows
        except OSError as exc:  # the writer died: these rows are lost, counted; start another one
            logger.error("prediction log: the writer is gone (%s); %d rows dropped", exc, rows)
            self._drop(rows)
            self._accounted_seq = max(self._accounted_seq, last_seq)
            self._restart()
        else:
            self._accounted_seq = max(self._accounted_seq, last_seq)
        finally:
            self._dequeued_rows += rows

    def _write(self, data: bytes) -> None:
        writer = self._writer
        if writer is None or writer.stdin is None:
            raise BrokenPipeError("no writer process")
        fd = writer.stdin.fileno()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)  # blocks while the pipe is full; releases the interpreter lock
            view = view[written:]

    def _restart(self) -> None:
        if time.monotonic() < self._restart_at:
            return
        self._restart_at = time.monotonic() + RESTART_AFTER_SECONDS
        old, self._writer = self._writer, None
        if old is not None:
            old.kill()
            old.wait()
        writer = self._spawn()
        self._writer = writer
        try:
            self._write(b"".join(self._frames_of_models))  # the new writer needs the models again
        except OSError:
            logger.exception("prediction log: the new writer does not take input either")
