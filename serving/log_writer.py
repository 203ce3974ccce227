"""The prediction log's writer process: frames in on stdin, JSON lines out, rotated by size.

Serving hands its predictions to this process (see ``serving.prediction_log``) so that turning them
into JSON and writing files runs on another core instead of competing with requests for the
interpreter lock. Run as ``python -m serving.log_writer DIRECTORY INSTANCE MAX_BYTES BACKUPS``; it
imports only the standard library and orjson, so it starts in a fraction of a second.

Frames (little-endian) on stdin:

- ``M`` u32 length, JSON: a model the following rows refer to: ``key``, ``model`` (the record's
  ``model`` object), ``names`` and ``kinds`` of the features, ``class_ids``, ``class_names``.
- ``R`` one prediction of numeric features, fixed size per model: key (u16), class position (i16),
  timestamp, latency_ms, probability (doubles; NaN = null), prediction id (32 ASCII bytes), one
  double per feature (NaN = null).
- ``J`` u32 length, ready JSON lines (for rows the fixed layout cannot carry).

It ignores SIGINT and SIGTERM: it stops at end of input, after writing everything, so a parent's
graceful shutdown (or its death) loses nothing that reached the pipe.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

HEADER = struct.Struct("<cI")  # frame type, payload length (M and J frames)
ROW_PREFIX = struct.Struct("<cH")  # "R", model key
_BETWEEN_RECORDS = b'},{"timestamp":'
_INTEGER_KINDS = frozenset({"long", "integer"})
_second_cache: tuple[int, str] = (-1, "")


def row_struct(n_features: int) -> struct.Struct:
    """Layout of an ``R`` frame for a model with ``n_features`` numeric features."""
    return struct.Struct(f"<cHhddd32s{n_features}d")


_milli_cache: tuple[int, str] = (-1, "")


def format_timestamp(epoch: float) -> str:
    """``2026-01-01T12:00:00.123Z`` (UTC, milliseconds, truncated); cached per millisecond and second."""
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


def record(timestamp: float, prediction_id: str, features: dict[str, Any], class_id: Any, class_name: str,
           probability: float | None, model: dict[str, str], latency_ms: float) -> dict[str, Any]:
    """One prediction in the docs/contract.md record format."""
    return {"timestamp": format_timestamp(timestamp), "event": "prediction", "prediction_id": prediction_id,
            "features": features,
            "prediction": {"class_id": class_id, "class_name": class_name, "probability": probability},
            "model": model, "latency_ms": round(latency_ms, 3)}


def to_lines(records: list[dict[str, Any]]) -> bytes:
    """JSON lines. One orjson call serialises the list, which is then cut where one record ends and
    the next begins: ``},{"timestamp":`` cannot occur anywhere else, because a quote inside a JSON
    string is always escaped and no record holds a list of objects. NaN is written as null."""
    if not records:
        return b""
    data = orjson.dumps(records, option=orjson.OPT_SERIALIZE_NUMPY)
    return data[1:-1].replace(_BETWEEN_RECORDS, b'}\n{"timestamp":') + b"\n"


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
                _, _, position, timestamp, latency, probability, pid, *values = layout.unpack_from(buffer, offset)
                offset += layout.size
                if model.any_integer:
                    features = {n: (int(v) if integer and v.is_integer() else v)
                                for n, v, integer in zip(model.names, values, model.integer, strict=True)}
                else:
                    features = dict(zip(model.names, values))  # noqa: B905  (the layout has one per name)
                # NaN (a missing feature, no probability) is written as null by orjson.
                records.append({"timestamp": format_timestamp(timestamp), "event": "prediction",
                                "prediction_id": pid.decode("ascii"), "features": features,
                                "prediction": {"class_id": model.class_ids[position],
                                               "class_name": model.class_names[position], "probability": probability},
                                "model": model.model, "latency_ms": round(latency, 3)})
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
                out.append(payload)
                self.rows += payload.count(b"\n")
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


def _say(message: str) -> None:
    line = {"timestamp": format_timestamp(datetime.now(UTC).timestamp()), "level": "ERROR",
            "logger": "serving.log_writer", "message": message}
    sys.stderr.write(json.dumps(line) + "\n")
    sys.stderr.flush()


def main() -> None:
    directory, instance, max_bytes, backups = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # stop at end of input, not before
    output = RotatingFile(Path(directory), instance, max_bytes=max_bytes, backups=backups)
    decoder = FrameDecoder()
    try:
        while True:
            data = os.read(0, 1 << 20)
            if not data:
                break
            output.write(decoder.feed(data))
    except Exception as exc:  # boundary of the process: say why, keep what was written
        _say(f"prediction log writer stopped: {type(exc).__name__}: {exc}")
        raise SystemExit(1) from exc
    finally:
        output.close()
    if decoder.pending_bytes:
        _say(f"prediction log writer: input ended inside a frame ({decoder.pending_bytes} bytes dropped)")


if __name__ == "__main__":
    main()
