"""The prediction log's writer process: frames in on stdin, JSON lines out, rotated by size.

Serving hands its predictions to this process (see ``serving.prediction_log``) so that turning them
into JSON and writing files runs on another core instead of competing with requests for the
interpreter lock. Run as ``python -m serving.log_writer DIRECTORY INSTANCE MAX_BYTES BACKUPS
[WRITTEN_SEQ]``; it imports only the standard library, orjson and ``driftwatch.prediction_record``
(where the record is built), so it starts in a fraction of a second.

Frames (little-endian) on stdin:

- ``M`` u32 length, JSON: a model the following rows refer to: ``key``, ``model`` (the record's
  ``model`` object), ``names`` and ``kinds`` of the features, ``class_ids``, ``class_names``.
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
import signal
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from driftwatch.prediction_record import format_timestamp, log_end_record, prediction_record, to_lines

HEADER = struct.Struct("<cI")  # frame type, payload length (M and J frames)
ROW_PREFIX = struct.Struct("<cH")  # "R", model key
ACK = struct.Struct("<Q")  # the counter file: serving's last acknowledged seq
_INTEGER_KINDS = frozenset({"long", "integer"})


def row_struct(n_features: int) -> struct.Struct:
    """Layout of an ``R`` frame for a model with ``n_features`` numeric features."""
    return struct.Struct(f"<cHhddd32sQ{n_features}d")


def ack_path(directory: Path, instance: str) -> Path:
    """The counter file of one serving process (8 bytes, little-endian u64)."""
    return directory / f"predictions-{instance}.acked"


def read_acknowledged(path: Path) -> int | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return int(ACK.unpack_from(data)[0]) if len(data) >= ACK.size else None


@dataclass
class _Model:
    model: dict[str, str]
    names: list[str]
    integer: list[bool]  # features written back as integers
    class_ids: list[Any]
    class_names: list[str]
    layout: struct.Struct

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
                records.append(prediction_record(timestamp, pid.decode("ascii"), features, model.class_ids[position],
                                                 model.class_names[position], probability, model.model, latency, seq))
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
            layout=row_struct(len(spec["names"])))

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)


class RotatingFile:
    """``predictions-<instance>.jsonl``, rotated by size to ``.1`` (newest), ``.2``, ...; ``backups`` kept."""

    def __init__(self, directory: Path, instance: str, *, max_bytes: int, backups: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"predictions-{instance}.jsonl"
        self.max_bytes = max_bytes
        self.backups = backups
        self._file: IO[bytes] = self.path.open("ab")
        self._size = self._file.tell()

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
            self._size += len(chunk)
            start += len(chunk)
            if start < len(data):
                self._rotate()
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def _rotate(self) -> None:
        self._file.close()
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
    output = RotatingFile(directory, instance, max_bytes=max_bytes, backups=backups)
    decoder = FrameDecoder()
    decoder.last_seq = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    try:
        while True:
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


if __name__ == "__main__":
    main()
