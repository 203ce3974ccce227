"""The prediction log: docs/contract.md records, nothing lost on close, size rotation, count retention,
bounded memory, a writer process that dies."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest

from driftwatch.logsegments import Segment
from driftwatch.prediction_record import format_timestamp, parse_record, prediction_record, read_acknowledged, to_lines
from serving.log_writer import FrameDecoder, RotatingFile
from serving.prediction_log import LogModel, PredictionLog

NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
MODEL = {"name": "iris-classifier", "version": "3", "source": "models:/iris-classifier@production"}
ROW = [5.1, 3.5, 1.4, 0.2]


def iris() -> LogModel:
    return LogModel(model=MODEL, names=NAMES, kinds=("double",) * 4, class_ids=[0, 1, 2],
                    class_names=["setosa", "versicolor", "virginica"])


def pid(i: int) -> str:
    return f"{i:032x}"


def add(log: PredictionLog, model: LogModel, n: int = 1, *, start: int = 0, row: list[Any] | None = None,
        position: int | None = 0, probability: float | None = 0.97) -> None:
    log.add(1767268800.123, model, [row or ROW] * n, [pid(start + i) for i in range(n)], [position] * n,
            [probability] * n, 0.41)


def frames_of(log: PredictionLog) -> bytes:
    """What the sender would write to the writer process."""
    return b"".join(frame for frame, _, _ in log._queue)


def decode(log: PredictionLog) -> list[dict[str, Any]]:
    return [json.loads(line) for line in FrameDecoder().feed(frames_of(log)).splitlines()]


def new_log(tmp_path: Path, **kwargs: Any) -> PredictionLog:
    values: dict[str, Any] = {"max_bytes": 10_000_000, "backups": 2, "interval": 0.01}
    values.update(kwargs)
    return PredictionLog(tmp_path, "unit", **values)


def records(folder: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.glob("predictions-*.jsonl*"), key=lambda p: (len(p.name), p.name)):
        out += [json.loads(line) for line in path.read_text().splitlines()]
    return out


def lines(folder: Path) -> list[dict[str, Any]]:
    """The prediction records (the writer's log_end lines left out)."""
    return [r for r in records(folder) if r["event"] == "prediction"]


def log_ends(folder: Path) -> list[dict[str, Any]]:
    return [r for r in records(folder) if r["event"] == "log_end"]


def test_a_record_has_the_design_format(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    add(log, iris())
    assert decode(log) == [{
        "timestamp": "2026-01-01T12:00:00.123Z", "event": "prediction", "prediction_id": pid(0), "seq": 1,
        "features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
        "prediction": {"class_id": 0, "class_name": "setosa", "probability": 0.97},
        "model": {"name": "iris-classifier", "version": "3", "source": "models:/iris-classifier@production"},
        "latency_ms": 0.41,
    }]


def test_missing_values_are_null_and_integer_features_stay_integers(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    add(log, iris(), 2, row=[5.1, math.nan, 1.4, 0.2], probability=None)
    mixed = LogModel(model=MODEL, names=("count", "ratio"), kinds=("long", "double"), class_ids=[0, 1],
                     class_names=["no", "yes"])
    add(log, mixed, start=2, row=[3, 2.0], position=1)
    records = decode(log)
    assert [r["features"]["sepal_width"] for r in records[:2]] == [None, None]
    assert records[0]["prediction"]["probability"] is None
    assert records[2]["features"] == {"count": 3, "ratio": 2.0} and isinstance(records[2]["features"]["count"], int)
    assert records[2]["prediction"] == {"class_id": 1, "class_name": "yes", "probability": 0.97}


def test_rows_the_fixed_layout_cannot_carry_go_as_ready_lines(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    text = LogModel(model=MODEL, names=("city", "n"), kinds=("string", "double"), class_ids=["a"], class_names=["a"])
    add(log, text, row=["Oslo", 1.0])
    add(log, iris(), start=1, position=None)  # a class the model did not declare
    records = decode(log)
    assert records[0]["features"] == {"city": "Oslo", "n": 1.0}
    assert records[1]["prediction"]["class_name"] == "other" and records[1]["prediction"]["class_id"] is None


@pytest.mark.parametrize("kinds", [("double",) * 4, ("double", "double", "double", "string")], ids=["fast", "ready"])
def test_a_regressor_logs_its_value_and_no_class(tmp_path: Path, kinds: tuple[str, ...]) -> None:
    log = new_log(tmp_path)
    model = LogModel(model=MODEL, names=NAMES, kinds=kinds, class_ids=[], class_names=[], task="regression")
    add(log, model, 2, row=[5.1, 3.5, 1.4, 0.2 if kinds[-1] == "double" else "x"], probability=1234.5)
    records = decode(log)
    assert [r["prediction"] for r in records] == [{"value": 1234.5}] * 2


def test_string_class_labels_are_logged_as_they_are() -> None:
    model = LogModel(model=MODEL, names=("a",), kinds=("double",), class_ids=["no", "yes"], class_names=["no", "yes"])
    log = new_log(Path("/nonexistent"))
    add(log, model, row=[1.0], position=1, probability=0.8)
    assert decode(log)[0]["prediction"] == {"class_id": "yes", "class_name": "yes", "probability": 0.8}


def test_a_frame_split_across_reads_is_kept_for_the_next_read(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    add(log, iris(), 3)
    data = frames_of(log)
    decoder = FrameDecoder()
    out = b"".join(decoder.feed(data[i:i + 7]) for i in range(0, len(data), 7))
    assert [json.loads(x)["prediction_id"] for x in out.splitlines()] == [pid(0), pid(1), pid(2)]
    assert decoder.pending_bytes == 0 and decoder.rows == 3


def test_lines_are_cut_only_between_records_whatever_the_strings_hold() -> None:
    nasty = '},{"timestamp":"x"}\n{"a":1}'
    built = [prediction_record(1767268800.0 + i, nasty, {"timestamp": 1.0, nasty: 2.0}, nasty, nasty, None, MODEL,
                               0.1, i + 1) for i in range(3)]
    parsed = [json.loads(line) for line in to_lines(built).decode().splitlines()]
    assert len(parsed) == 3
    assert all(r["prediction_id"] == nasty and r["features"] == {"timestamp": 1.0, nasty: 2.0} for r in parsed)
    assert to_lines([]) == b""


def test_timestamps_are_utc_with_milliseconds() -> None:
    assert format_timestamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert format_timestamp(1767268800.9996) == "2026-01-01T12:00:00.999Z"
    assert format_timestamp(1767268801.0) == "2026-01-01T12:00:01.000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", format_timestamp(time.time()))


def test_every_prediction_is_a_line_after_close(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    log.start()
    model = iris()
    for i in range(500):
        add(log, model, 3 if i % 2 else 1, start=3 * i)
    log.close()
    expected = [pid(3 * i + j) for i in range(500) for j in range(3 if i % 2 else 1)]
    assert [r["prediction_id"] for r in lines(tmp_path)] == expected
    assert log.sent_rows == len(expected) and log.queued_rows == 0 and log.dropped_rows == 0


def test_files_rotate_by_size_at_line_boundaries_and_only_the_newest_are_kept(tmp_path: Path) -> None:
    one = to_lines([prediction_record(1767268800.0, pid(0), dict(zip(NAMES, ROW, strict=True)), 0, "setosa", 0.9,
                                      MODEL, 0.1, 1)])
    output = RotatingFile(tmp_path, "unit", max_bytes=10 * len(one), backups=2)
    data = b"".join(one.replace(pid(0).encode(), pid(i).encode()) for i in range(45))
    output.write(data[:1000])
    output.write(data[1000:])
    output.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "predictions-unit.jsonl", "predictions-unit.jsonl.1", "predictions-unit.jsonl.2"]
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= 10 * len(one)
    ids = {p.name: [json.loads(x)["prediction_id"] for x in p.read_text().splitlines()] for p in tmp_path.iterdir()}
    assert ids["predictions-unit.jsonl"] == [pid(i) for i in range(40, 45)]
    assert ids["predictions-unit.jsonl.1"] == [pid(i) for i in range(30, 40)]
    assert ids["predictions-unit.jsonl.2"] == [pid(i) for i in range(20, 30)]


def test_rows_beyond_the_queue_bound_are_dropped_and_counted_not_blocked(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = new_log(tmp_path, max_queue_rows=10, on_drop=dropped.append)
    model = iris()
    for i in range(4):  # not started: nothing is sent
        add(log, model, 3, start=3 * i)
    assert log.queued_rows == 9 and log.dropped_rows == 3 and dropped == [3]
    log.start()
    log.close()
    assert len(lines(tmp_path)) == 9


def test_appending_to_an_existing_file_continues_it(tmp_path: Path) -> None:
    for start in (0, 2):
        log = new_log(tmp_path)
        log.start()
        add(log, iris(), 2, start=start)
        log.close()
    assert [r["prediction_id"] for r in lines(tmp_path)] == [pid(i) for i in range(4)]


@pytest.mark.timeout(60)
def test_a_writer_that_dies_is_replaced_and_its_rows_counted(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = new_log(tmp_path, on_drop=dropped.append, interval=0.02)
    log.start()
    model = iris()
    add(log, model, start=0)
    deadline = time.monotonic() + 20
    while not (tmp_path / "predictions-unit.jsonl").exists() or not lines(tmp_path):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert log._writer is not None
    log._writer.kill()
    log._writer.wait()
    add(log, model, start=1)  # goes to the dead writer: counted as dropped, a new writer starts
    while not dropped and time.monotonic() < deadline:
        time.sleep(0.02)
    add(log, model, start=2)  # the new writer knows the model again
    log.close()
    assert dropped == [1]
    assert [r["prediction_id"] for r in lines(tmp_path)] == [pid(0), pid(2)]


def test_rows_are_numbered_without_gaps_in_every_frame_kind(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    add(log, iris())  # an R frame
    add(log, iris(), 3, start=1)  # a batch of R frames
    add(log, iris(), start=4, position=None)  # a ready line (J frame)
    text = LogModel(model=MODEL, names=("city",), kinds=("string",), class_ids=["a"], class_names=["a"])
    add(log, text, 2, start=5, row=["Oslo"])
    decoder = FrameDecoder()
    out = decoder.feed(frames_of(log))
    assert [json.loads(x)["seq"] for x in out.splitlines()] == [1, 2, 3, 4, 5, 6, 7]
    assert decoder.last_seq == 7


def test_a_clean_close_ends_the_file_with_a_log_end_that_lost_nothing(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    log.start()
    for i in range(50):
        add(log, iris(), 2, start=2 * i)
    log.close()
    assert [r["seq"] for r in lines(tmp_path)] == list(range(1, 101))
    [end] = log_ends(tmp_path)
    assert (end["instance"], end["acknowledged_seq"], end["written_seq"], end["lost"]) == ("unit", 100, 100, 0)
    assert read_acknowledged(tmp_path / "predictions-unit.acked") == 100


@pytest.mark.timeout(60)
def test_rows_acknowledged_but_never_handed_over_are_reported_by_the_writer(tmp_path: Path) -> None:
    """What kill -9 of serving leaves: rows still in the deque. Here the sender never runs (a long
    interval) and serving's end of the pipe is closed, as the kernel does for a killed process."""
    log = new_log(tmp_path, interval=3600)
    log.start()
    add(log, iris(), 3)
    log._send()  # handed over: written
    add(log, iris(), 4, start=3)  # acknowledged, still queued when "serving dies"
    assert log._writer is not None and log._writer.stdin is not None
    log._writer.stdin.close()
    assert log._writer.wait(30) == 0
    assert [r["seq"] for r in lines(tmp_path)] == [1, 2, 3]
    [end] = log_ends(tmp_path)
    assert (end["acknowledged_seq"], end["written_seq"], end["lost"]) == (7, 3, 4)
    parsed = parse_record(json.dumps(end).encode())
    assert parsed is not None and parsed.event == "log_end" and parsed.lost == 4


@pytest.mark.timeout(60)
def test_a_restarted_writer_does_not_count_the_rows_before_it_as_lost(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = new_log(tmp_path, on_drop=dropped.append, interval=3600)
    log.start()
    add(log, iris(), 2)
    log._send()
    deadline = time.monotonic() + 20
    while len(lines(tmp_path)) < 2:  # written before the writer is killed
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert log._writer is not None
    log._writer.kill()
    log._writer.wait()
    add(log, iris(), start=2)
    log._send()  # the dead writer: 1 row dropped (serving counts it), a new writer starts after seq 3
    add(log, iris(), start=3)
    log.close()
    assert dropped == [1]
    assert [r["seq"] for r in lines(tmp_path)] == [1, 2, 4]
    assert [e["lost"] for e in log_ends(tmp_path)] == [0]


def test_closed_files_are_reported_as_segments_with_their_rows_and_times(tmp_path: Path) -> None:
    closed: list[tuple[str, Segment]] = []
    output = RotatingFile(tmp_path, "r1", max_bytes=10_000_000, backups=3, segment_seconds=0.2,
                          on_closed=lambda path, segment: closed.append((path.read_text(), segment)))
    lines = [prediction_record(1767268800.0 + i, pid(i), {"a": i}, 0, "setosa", 0.9, MODEL, 0.4, i + 1)
             for i in range(5)]
    output.write(to_lines(lines[:3]))
    output.rotate_if_old()
    assert closed == []  # not old yet
    time.sleep(0.25)
    output.rotate_if_old()  # old: closed without any new write
    output.write(to_lines(lines[3:]))
    output.close()  # the last segment is reported too
    assert [segment for _, segment in closed] == [Segment(1767268802000, 1767268800000, 3, "r1"),
                                                  Segment(1767268804000, 1767268803000, 2, "r1")]
    assert [text.count("\n") for text, _ in closed] == [3, 2]
