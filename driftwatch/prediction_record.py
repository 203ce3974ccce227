"""The prediction log record (docs/contract.md, "Prediction log record"): built and read here only.

Serving's writer process builds the lines (``prediction_record``, ``to_lines``); the drift exporter
and anything else reading the log parses them (``parse_record``). Imports only the standard library,
orjson and ``driftwatch.clock``, so the writer process starts in a fraction of a second.

Two events:

- ``prediction``: one answered prediction. ``seq`` numbers the rows one serving process
  acknowledged, from 1, without gaps (rows dropped because the writer fell behind get none: serving
  counts those itself).
- ``log_end``: written by the writer process when serving's side of the pipe closes. On a clean
  shutdown ``lost`` is 0. When serving died (kill -9) the rows it had acknowledged but not yet handed
  to the writer are gone: ``acknowledged_seq`` (read from the counter file serving updates before it
  answers, see ``serving.prediction_log``) minus ``written_seq`` is that loss, which the exporter
  counts (``model_prediction_log_lost_total``).

The counter file ``predictions-<instance>.acked`` (8 bytes, little-endian u64: ``ack_path``,
``read_acknowledged``) is part of the log: when serving *and* its writer die together (kill -9 of
the process group, a container) no ``log_end`` line is written, and the drift exporter finds the
loss as the gap between that counter and the last ``seq`` written (``drift_exporter.window``).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from driftwatch.clock import parse_iso

EVENT_PREDICTION = "prediction"
EVENT_LOG_END = "log_end"
_BETWEEN_RECORDS = b'},{"timestamp":'
_second_cache: tuple[int, str] = (-1, "")
_milli_cache: tuple[int, str] = (-1, "")


ACK = struct.Struct("<Q")  # the counter file: serving's last acknowledged seq


# One file per serving process, rotated by size to .1 (newest), .2, ...
LOG_NAME = re.compile(r"^predictions-(?P<instance>.+)\.jsonl(?:\.(?P<rotation>\d+))?$")


def log_path(directory: Path, instance: str) -> Path:
    """The live log file of one serving process."""
    return directory / f"predictions-{instance}.jsonl"


def ack_path(directory: Path, instance: str) -> Path:
    """The counter file of one serving process (8 bytes, little-endian u64)."""
    return directory / f"predictions-{instance}.acked"


def read_acknowledged(path: Path) -> int | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return int(ACK.unpack_from(data)[0]) if len(data) >= ACK.size else None


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


def prediction_record(timestamp: float, prediction_id: str, features: dict[str, Any], class_id: Any,
                      class_name: str, probability: float | None, model: dict[str, str], latency_ms: float,
                      seq: int, *, regression: bool = False) -> dict[str, Any]:
    """One ``prediction`` line as a dict (NaN, for a missing value, is written as null). A classifier's
    ``prediction`` is ``{class_id, class_name, probability}``; a regressor's is ``{value}``, the value
    passed as ``probability`` (the slot the binary frames share)."""
    prediction: dict[str, Any] = ({"value": probability} if regression else
                                  {"class_id": class_id, "class_name": class_name, "probability": probability})
    return {"timestamp": format_timestamp(timestamp), "event": EVENT_PREDICTION, "prediction_id": prediction_id,
            "seq": seq, "features": features, "prediction": prediction, "model": model,
            "latency_ms": round(latency_ms, 3)}


def log_end_record(timestamp: float, *, instance: str, acknowledged_seq: int, written_seq: int) -> dict[str, Any]:
    """The writer's last line for one serving process: how many acknowledged rows never reached it."""
    return {"timestamp": format_timestamp(timestamp), "event": EVENT_LOG_END, "instance": instance,
            "acknowledged_seq": acknowledged_seq, "written_seq": written_seq,
            "lost": max(0, acknowledged_seq - written_seq)}


def to_lines(records: list[dict[str, Any]]) -> bytes:
    """JSON lines. One orjson call serialises the list, which is then cut where one record ends and
    the next begins: ``},{"timestamp":`` cannot occur anywhere else, because a quote inside a JSON
    string is always escaped and no record holds a list of objects. NaN is written as null."""
    if not records:
        return b""
    data = orjson.dumps(records, option=orjson.OPT_SERIALIZE_NUMPY)
    return data[1:-1].replace(_BETWEEN_RECORDS, b'}\n{"timestamp":') + b"\n"


@dataclass(frozen=True)
class Record:
    """A parsed line. For ``prediction`` events ``features`` is a dict; ``class_name`` is the predicted
    class name (or its id when the name is missing); the other fields are None when absent."""

    event: str
    timestamp: float
    features: dict[str, Any]
    class_name: Any
    model_name: Any
    model_version: Any
    prediction_id: str | None
    seq: int | None
    raw: dict[str, Any]

    @property
    def value(self) -> float:
        """A regressor's predicted value (NaN when the record has none)."""
        prediction = self.raw.get("prediction")
        raw = prediction.get("value") if isinstance(prediction, dict) else None
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return float("nan")
        return float(raw)

    @property
    def lost(self) -> int:
        """For ``log_end``: acknowledged rows that never reached the log."""
        acknowledged, written = self.raw.get("acknowledged_seq"), self.raw.get("written_seq")
        if isinstance(acknowledged, int) and isinstance(written, int):
            return max(0, acknowledged - written)
        return 0


def parse_record(line: bytes) -> Record | None:
    """The record on one line, or None when the line is not one (not JSON, not an object, a
    prediction without a readable timestamp or features). Events other than the two above parse
    with what they carry, so readers can skip them."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    event = data.get("event", EVENT_PREDICTION)
    if not isinstance(event, str):
        return None
    timestamp = parse_iso(data.get("timestamp"))
    model = data.get("model")
    model_name = model.get("name") if isinstance(model, dict) else None
    model_version = model.get("version") if isinstance(model, dict) else None
    features = data.get("features")
    if event == EVENT_PREDICTION and (timestamp is None or not isinstance(features, dict)):
        return None
    prediction = data.get("prediction")
    class_name = prediction.get("class_name", prediction.get("class_id")) if isinstance(prediction, dict) else None
    prediction_id = data.get("prediction_id")
    seq = data.get("seq")
    return Record(event=event, timestamp=timestamp if timestamp is not None else float("nan"),
                  features=features if isinstance(features, dict) else {}, class_name=class_name,
                  model_name=model_name, model_version=model_version,
                  prediction_id=prediction_id if isinstance(prediction_id, str) else None,
                  seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None, raw=data)
