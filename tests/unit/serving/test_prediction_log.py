"""The prediction log: DESIGN.md records, nothing lost on close, size rotation, count retention."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

from serving.prediction_log import Pending, PredictionLog, encode_records, format_timestamp, model_json

MODEL = model_json("iris-classifier", "3", "models:/iris-classifier@production")
NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def pending(rows: int = 1, *, start: int = 0, values: list[Any] | None = None) -> Pending:
    return (1767268800.123, MODEL, NAMES, [values or [5.1, 3.5, 1.4, 0.2]] * rows,
            [f"id{start + i:04d}" for i in range(rows)], [0] * rows, ["setosa"] * rows, [0.97] * rows, 0.41)


def encoded(rows: int = 1, *, start: int = 0, values: list[Any] | None = None) -> bytes:
    return encode_records([pending(rows, start=start, values=values)])


def lines(folder: Path) -> list[dict[str, object]]:
    out = []
    for path in sorted(folder.iterdir()):
        out += [json.loads(line) for line in path.read_text().splitlines()]
    return out


def test_a_record_has_the_design_format() -> None:
    record = json.loads(encoded())
    assert record == {
        "timestamp": "2026-01-01T12:00:00.123Z", "event": "prediction", "prediction_id": "id0000",
        "features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
        "prediction": {"class_id": 0, "class_name": "setosa", "probability": 0.97},
        "model": {"name": "iris-classifier", "version": "3", "source": "models:/iris-classifier@production"},
        "latency_ms": 0.41,
    }


def test_a_batch_is_one_line_per_row_and_a_missing_value_is_null() -> None:
    data = encoded(3, values=[5.1, math.nan, 1.4, 0.2])
    records = [json.loads(line) for line in data.decode().splitlines()]
    assert data.endswith(b"\n") and len(records) == 3
    assert [r["prediction_id"] for r in records] == ["id0000", "id0001", "id0002"]
    assert all(r["features"]["sepal_width"] is None for r in records)


def test_lines_are_cut_only_between_records_whatever_the_strings_hold() -> None:
    nasty = '},{"timestamp":"x"}\n{"a":1}'
    names = ("timestamp", nasty)
    batches: list[Pending] = [
        (1767268800.0 + i, MODEL, names, [[1.0, 2.0]], [nasty], [nasty], [nasty], [None], 0.1) for i in range(3)]
    data = encode_records(batches)
    records = [json.loads(line) for line in data.decode().splitlines()]
    assert len(records) == 3
    assert all(r["prediction_id"] == nasty and r["features"] == {"timestamp": 1.0, nasty: 2.0} for r in records)
    assert encode_records([]) == b""


def test_the_request_path_hands_over_in_bulk_and_close_writes_the_rest(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "unit", max_bytes=10_000_000, backups=1, encode_rows=4, interval=60)
    log.start()
    for i in range(3):
        log.add(pending(1, start=i))
    assert log.queued_rows == 0  # below encode_rows: still pending on the loop
    log.add(pending(2, start=3))
    assert log.queued_rows + log.written_rows == 5  # encoded and handed to the writer
    log.add(pending(1, start=5))
    log.encode_pending()
    log.close()
    assert [r["prediction_id"] for r in lines(tmp_path)] == [f"id{i:04d}" for i in range(6)]


def test_rows_that_cannot_be_encoded_are_dropped_and_counted_not_raised(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = PredictionLog(tmp_path, "unit", max_bytes=10_000_000, backups=1, on_drop=dropped.append)
    log.start()
    bad = pending(2)
    log.add((*bad[:5], [object(), object()], *bad[6:]))  # type: ignore[arg-type]
    log.add(pending(1, start=7))
    log.encode_pending()
    log.close()
    assert dropped == [3] and log.dropped_rows == 3 and lines(tmp_path) == []


def test_timestamps_are_utc_with_milliseconds() -> None:
    assert format_timestamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert format_timestamp(1767268800.9996) == "2026-01-01T12:00:00.999Z"
    assert format_timestamp(1767268801.0) == "2026-01-01T12:00:01.000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", format_timestamp(time.time()))


def test_every_prediction_is_a_line_after_close(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "unit", max_bytes=10_000_000, backups=2, interval=0.01)
    log.start()
    for i in range(500):
        log.append(encoded(3, start=3 * i), 3)
    log.close()
    records = lines(tmp_path)
    assert len(records) == 1500
    assert [r["prediction_id"] for r in records] == [f"id{i:04d}" for i in range(1500)]
    assert log.path.name == "predictions-unit.jsonl"
    assert log.written_rows == 1500 and log.queued_rows == 0


def test_files_rotate_by_size_and_only_the_newest_rotations_are_kept(tmp_path: Path) -> None:
    one_line = len(encoded())
    log = PredictionLog(tmp_path, "unit", max_bytes=10 * one_line, backups=2, interval=0.01)
    log.start()
    for i in range(45):
        log.append(encoded(1, start=i), 1)
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["predictions-unit.jsonl", "predictions-unit.jsonl.1", "predictions-unit.jsonl.2"]
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= 10 * one_line
    newest_rotation = [json.loads(x)["prediction_id"]
                       for x in (tmp_path / "predictions-unit.jsonl.1").read_text().splitlines()]
    live = [json.loads(x)["prediction_id"] for x in (tmp_path / "predictions-unit.jsonl").read_text().splitlines()]
    assert live == [f"id{i:04d}" for i in range(40, 45)]
    assert newest_rotation == [f"id{i:04d}" for i in range(30, 40)]


def test_rows_beyond_the_queue_bound_are_dropped_and_counted_not_blocked(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = PredictionLog(tmp_path, "unit", max_bytes=10_000_000, backups=1, max_queue_rows=10, on_drop=dropped.append)
    for i in range(4):  # not started: nothing drains
        log.append(encoded(3, start=3 * i), 3)
    assert log.queued_rows == 9 and log.dropped_rows == 3 and dropped == [3]
    log.start()
    log.close()
    assert len(lines(tmp_path)) == 9


def test_appending_to_an_existing_file_continues_it(tmp_path: Path) -> None:
    for _ in range(2):
        log = PredictionLog(tmp_path, "unit", max_bytes=10_000_000, backups=1)
        log.start()
        log.append(encoded(2), 2)
        log.close()
    assert len(lines(tmp_path)) == 4
