"""Reads new lines of every serving process's prediction log into the quality store.

Serving writes ``predictions-<instance>.jsonl`` per process and rotates it by renaming (the same
file keeps its inode as ``.1``, ``.2``, ...). Each file is read from where the last pass stopped,
keyed by device and inode, so a rotation neither re-reads nor skips lines; a file that shrank below
its offset (an inode reused) is read from the start. Only whole lines are read; a half-written last
line waits for the next pass. Offsets are saved after the rows they cover are stored: a restart
re-reads at most one pass, and the store ignores ids it has.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from drift_exporter.stats import normalize_category
from drift_exporter.window import list_log_files
from driftwatch.prediction_record import EVENT_PREDICTION, parse_record
from quality.store import Prediction, QualityStore

log = logging.getLogger("quality")
READ_BYTES = 8 * 1024 * 1024  # per file and pass: a long backlog is read over several passes


@dataclass
class IngestResult:
    rows: int = 0
    corrupt: int = 0
    skipped: int = 0  # other models, other events, older than the retention
    joined: int = 0  # waiting labels that met their prediction
    files: int = 0


def parse_prediction(line: bytes, model_name: str, oldest: float) -> Prediction | bool | None:
    """A prediction of ``model_name``; False for a valid line to skip; None for a corrupt one."""
    record = parse_record(line)  # the one parser of the record (driftwatch/prediction_record.py)
    if record is None:
        return None
    if record.event != EVENT_PREDICTION or not isinstance(record.raw.get("model"), dict):
        return False
    if record.model_name not in (None, model_name):
        return False
    pid = record.prediction_id
    timestamp = record.timestamp
    prediction = record.raw.get("prediction")
    version = normalize_category(record.model_version)
    if not pid or not isinstance(prediction, dict) or not version:
        return None
    if timestamp < oldest:
        return False
    value = prediction.get("value")
    probability = prediction.get("probability")
    confidence = float(probability) if isinstance(probability, int | float) and not isinstance(probability, bool) \
        else None
    if value is not None and "class_id" not in prediction:
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        return Prediction(pid, model_name, version, timestamp, None, None,
                          float(number) if number is not None and math.isfinite(number) else None, None)
    predicted = normalize_category(prediction.get("class_id"))
    name = prediction.get("class_name")
    return Prediction(pid, model_name, version, timestamp, predicted,
                      str(name) if name is not None else predicted, None, confidence)


class LogIngester:
    def __init__(self, folder: Path, store: QualityStore, model_name: str, *, batch_rows: int = 20_000) -> None:
        self.folder = folder
        self.store = store
        self.model_name = model_name
        self.batch_rows = batch_rows

    def run_once(self, *, oldest: float, now: float) -> IngestResult:
        result = IngestResult()
        offsets = self.store.log_offsets()
        new_offsets: dict[str, int] = {}
        for log_file in list_log_files(self.folder):
            try:
                handle = log_file.path.open("rb")
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                continue  # rotated away between listing and opening
            with handle:
                info = os.fstat(handle.fileno())
                key = f"{info.st_dev}:{info.st_ino}"
                if key in new_offsets:
                    continue  # the same file under its old and new name during a rotation
                result.files += 1
                offset = offsets.get(key, 0)
                if info.st_size < offset:
                    offset = 0
                new_offsets[key] = self._read(handle, offset, min(info.st_size, offset + READ_BYTES), oldest, result)
        self.store.save_log_offsets(new_offsets, now)
        return result

    def _read(self, handle: object, offset: int, end: int, oldest: float, result: IngestResult) -> int:
        assert hasattr(handle, "seek") and hasattr(handle, "read")
        if end <= offset:
            return offset
        handle.seek(offset)
        data: bytes = handle.read(end - offset)
        last = data.rfind(b"\n")
        if last < 0:
            return offset  # no whole line yet
        rows: list[Prediction] = []
        for line in data[:last].split(b"\n"):
            if not line.strip():
                continue
            parsed = parse_prediction(line, self.model_name, oldest)
            if parsed is None:
                result.corrupt += 1
            elif parsed is False:
                result.skipped += 1
            elif isinstance(parsed, Prediction):
                rows.append(parsed)
            if len(rows) >= self.batch_rows:
                result.joined += self.store.add_predictions(rows)
                result.rows += len(rows)
                rows = []
        result.joined += self.store.add_predictions(rows)
        result.rows += len(rows)
        return offset + last + 1
