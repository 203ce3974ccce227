"""The prediction log's writer process: frames in on stdin, JSON lines out, rotated by size.

Serving hands its predictions to this process (see ``serving.prediction_log``) so that turning them
into JSON and writing files runs on another core instead of competing with requests for the
interpreter lock. Run as ``python -m serving.log_writer DIRECTORY INSTANCE MAX_BYTES BACKUPS
[WRITTEN_SEQ]``; it imports only the standard library, orjson and ``driftwatch.prediction_record``
(where the record is built), so it starts in a fraction of a second.

With DRIFTWATCH_LOG_SEGMENTS in its environment (JSON: ``url`` s3://bucket/prefix, ``model_name``,
``segment_seconds``; set by ``serving.prediction_log`` from DRIFTWATCH_PREDICTION_LOG_S3_URL), every
file the writer closes (rotated by size, or by age once it is ``segment_seconds`` old, or at the
end of input) is a segment: it is hard-linked into ``.segments-<instance>/`` under its object name
(``driftwatch.logsegments``) and uploaded from there by a thread (``serving.log_shipper``, which
imports boto3), then the link is removed. A row reaches S3 at most ``segment_seconds`` plus one
upload after it was written.

Frames (little-endian) on stdin:

- ``M`` u32 length, JSON: a model the following rows refer to: ``key``, ``model`` (the record's
  ``model`` object), ``names`` and ``kinds`` of the features, ``class_ids``, ``class_names``,
  ``task`` (``classification`` when absent; a regressor's value travels in the probability slot).
- ``R`` one prediction of numeric features, fixed size per model: key (u16), class position (i16),
  timestamp, latency_ms, probability (doubles; NaN = null), prediction id (32 ASCII bytes), seq
  (u64), one double per feature (NaN = null).
- ``J`` u32 length, ready JSON lines (for rows the fixed layout cannot carry).

It ignores SIGINT and SIGTERM: it stops at end of input, after writing everything, so a parent's
graceful shutdown (or its death) loses nothing that reached the pipe. At end of input it writes a
``log_end`` line: serving's acknowledged ``seq`` (from the counter file
``predictions-<instance>.acked`` that serving updates before answering) against the last ``seq``
written, so rows lost with a killed serving process are counted, not silent. WRITTEN_SEQ is where a
restarted writer starts (rows before it were written or counted as dropped by serving).
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from driftwatch.logsegments import Segment
from driftwatch.prediction_record import (
    ACK,
    ack_path,
    format_timestamp,
    log_end_record,
    log_path,
    parse_record,
    prediction_record,
    read_acknowledged,
    to_lines,
)

PREDICTION_EVENT = b'"event":"prediction"'
SEGMENTS_ENV = "DRIFTWATCH_LOG_SEGMENTS"  # S3 shipping options, from serving.prediction_log
HEADER = struct.Struct("<cI")  # frame type, payload length (M and J frames)
ROW_PREFIX = struct.Struct("<cH")  # "R", model key
_INTEGER_KINDS = frozenset({"long", "integer"})


def row_struct(n_features: int) -> struct.Struct:
    """Layout of an ``R`` frame for a model with ``n_features`` numeric features."""
    return struct.Struct(f"<cHhddd32sQ{n_features}d")


@dataclass
class _Model:
    model: dict[str, str]
    names: list[str]
    integer: list[bool]  # features written back as integers
    class_ids: list[Any]
    class_names: list[str]
    layout: struct.Struct
    regression: bool = False

    @property
    def any_integer(self) -> bool:
        return any(self.integer)


class FrameDecoder:
    """Turns the byte stream into JSON lines; keeps an incomplete frame for the next ``feed``."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._models: dict[int, _Model] = {}
        self.rows = 0
        self.last_seq = 0  # highest seq written

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        buffer = self._buffer
        out: list[bytes] = []
        records: list[dict[str, Any]] = []
        offset = 0
        size = len(buffer)
        while offset < size:
            kind = buffer[offset:offset + 1]
            if kind == b"R":
                if offset + ROW_PREFIX.size > size:
                    break
                model = self._models[ROW_PREFIX.unpack_from(buffer, offset)[1]]
                layout = model.layout
                if offset + layout.size > size:
                    break
                _, _, position, timestamp, latency, probability, pid, seq, *values = layout.unpack_from(buffer, offset)
                offset += layout.size
                if model.any_integer:
                    features = {n: (int(v) if integer and v.is_integer() else v)
                                for n, v, integer in zip(model.names, values, model.integer, strict=True)}
                else:
                    features = dict(zip(model.names, values))  # noqa: B905  (the layout has one per name)
                # NaN (a missing feature, no probability) is written as null by orjson.
                if model.regression:
                    records.append(prediction_record(timestamp, pid.decode("ascii"), features, None, "",
                                                     probability, model.model, latency, seq, regression=True))
                else:
                    records.append(prediction_record(timestamp, pid.decode("ascii"), features,
                                                     model.class_ids[position], model.class_names[position],
                                                     probability, model.model, latency, seq))
                if seq > self.last_seq:
                    self.last_seq = seq
                continue
            if offset + HEADER.size > size:
                break
            kind, length = HEADER.unpack_from(buffer, offset)
            end = offset + HEADER.size + length
            if end > size:
                break
            payload = bytes(buffer[offset + HEADER.size:end])
            offset = end
            if kind == b"M":
                self._register(payload)
            elif kind == b"J":
                out.append(to_lines(records))
                records = []
                lines = payload[ACK.size:]
                out.append(lines)
                self.rows += lines.count(b"\n")
                last = int(ACK.unpack_from(payload)[0])  # a J frame starts with its last seq
                if last > self.last_seq:
                    self.last_seq = last
            else:
                raise ValueError(f"unknown frame type {kind!r} at offset {offset}")
        del buffer[:offset]
        self.rows += len(records)
        out.append(to_lines(records))
        return b"".join(out)

    def _register(self, payload: bytes) -> None:
        spec = json.loads(payload)
        self._models[int(spec["key"])] = _Model(
            model=spec["model"], names=list(spec["names"]), integer=[k in _INTEGER_KINDS for k in spec["kinds"]],
            class_ids=list(spec["class_ids"]), class_names=list(spec["class_names"]),
            layout=row_struct(len(spec["names"])), regression=spec.get("task") == "regression")

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)


def _line_ms(line: bytes) -> int:
    """The epoch milliseconds of a record's timestamp (now, for a line that is not a record)."""
    record = parse_record(line)
    return int((record.timestamp if record is not None else time.time()) * 1000 + 0.5)


class RotatingFile:
    """``predictions-<instance>.jsonl``, rotated by size to ``.1`` (newest), ``.2``, ...; ``backups`` kept.

    With ``on_closed``, each file it closes is reported as a :class:`Segment` (rows, first and last
    row's time) before it is renamed, and it also closes the live file once it is
    ``segment_seconds`` old (``rotate_if_old``) and at ``close``."""

    def __init__(self, directory: Path, instance: str, *, max_bytes: int, backups: int,
                 segment_seconds: float | None = None,
                 on_closed: Callable[[Path, Segment], None] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = log_path(directory, instance)
        self.instance = instance
        self.max_bytes = max_bytes
        self.backups = backups
        self.segment_seconds = segment_seconds
        self.on_closed = on_closed
        self._rows = 0
        self._first_ms = self._last_ms = 0
        self._opened_at = 0.0
        self._file: IO[bytes] = self.path.open("ab")
        self._size = self._file.tell()
        if on_closed is not None and self._size:  # left by an earlier run: account for its lines
            self._track(self.path.read_bytes())

    def _track(self, chunk: bytes) -> None:
        end = len(chunk) - 1  # chunks are whole lines: the last byte is a newline
        if not chunk.count(b"\n"):
            return
        count = chunk.count(PREDICTION_EVENT)  # rows, not the log_end line (orjson writes it exactly so)
        if self._rows == 0:
            self._first_ms = _line_ms(chunk[:chunk.index(b"\n")])
            self._opened_at = time.monotonic()
        self._last_ms = _line_ms(chunk[chunk.rfind(b"\n", 0, end) + 1:end])
        self._rows += count

    def rotate_if_old(self) -> None:
        """Close the live file when it holds rows and is ``segment_seconds`` old."""
        if self.segment_seconds and self._rows and time.monotonic() - self._opened_at >= self.segment_seconds:
            self._file.flush()
            self._rotate()

    def write(self, data: bytes) -> None:
        """Append whole lines, rotating first when they would not fit (a file holds at least one line)."""
        start = 0
        while start < len(data):
            room = self.max_bytes - self._size
            if len(data) - start <= room:
                chunk = data[start:]
            else:
                cut = data.rfind(b"\n", start, start + max(room, 0)) if room > 0 else -1
                if cut < 0:
                    if self._size:
                        self._rotate()
                        continue
                    cut = data.find(b"\n", start)  # one line longer than max_bytes: it gets a file
                chunk = data[start:cut + 1]
            self._file.write(chunk)
            if self.on_closed is not None:
                self._track(chunk)
            self._size += len(chunk)
            start += len(chunk)
            if start < len(data):
                self._rotate()
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        if self.on_closed is not None and self._rows:
            self._rotate()  # the last segment is shipped too
        self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        if self.on_closed is not None and self._rows:
            self.on_closed(self.path, Segment(self._last_ms, self._first_ms, self._rows, self.instance))
        self._rows = 0
        self.path.with_name(f"{self.path.name}.{self.backups}").unlink(missing_ok=True)
        for n in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{n}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("ab")
        self._size = 0


def _say(message: str, level: str = "ERROR") -> None:
    line = {"timestamp": format_timestamp(time.time()), "level": level,
            "logger": "serving.log_writer", "message": message}
    sys.stderr.write(json.dumps(line) + "\n")
    sys.stderr.flush()


def end_of_input(decoder: FrameDecoder, acknowledged: int | None, instance: str) -> bytes:
    """The ``log_end`` line (nothing when serving kept no counter file)."""
    if acknowledged is None:
        return b""
    written = decoder.last_seq
    lost = acknowledged - written
    if lost > 0:
        _say(f"prediction log writer: serving ended with {lost} acknowledged rows not handed over "
             f"(acknowledged seq {acknowledged}, written {written}); counted by the drift exporter", "WARNING")
    return to_lines([log_end_record(time.time(), instance=instance, acknowledged_seq=acknowledged,
                                    written_seq=written)])


def main() -> None:
    directory, instance, max_bytes, backups = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # stop at end of input, not before
    shipper = None
    segment_seconds: float | None = None
    segments = os.environ.get(SEGMENTS_ENV)
    if segments:
        from serving.log_shipper import SegmentShipper

        options = json.loads(segments)
        segment_seconds = float(options["segment_seconds"])
        shipper = SegmentShipper.for_log(directory, instance, options["url"], options["model_name"], say=_say)
        shipper.start()
    output = RotatingFile(directory, instance, max_bytes=max_bytes, backups=backups,
                          segment_seconds=segment_seconds, on_closed=shipper.add if shipper else None)
    decoder = FrameDecoder()
    decoder.last_seq = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    try:
        while True:
            if segment_seconds is not None:  # wake up to close an old segment even without traffic
                ready, _, _ = select.select([0], [], [], min(1.0, segment_seconds))
                output.rotate_if_old()
                if not ready:
                    continue
            data = os.read(0, 1 << 20)
            if not data:
                break
            output.write(decoder.feed(data))
        if decoder.pending_bytes:
            _say(f"prediction log writer: input ended inside a frame ({decoder.pending_bytes} bytes dropped)")
        output.write(end_of_input(decoder, read_acknowledged(ack_path(directory, instance)), instance))
    except Exception as exc:  # boundary of the process: say why, keep what was written
        _say(f"prediction log writer stopped: {type(exc).__name__}: {exc}")
        raise SystemExit(1) from exc
    finally:
        output.close()
        if shipper is not None:
            shipper.close()


if __name__ == "__main__":
    main()
