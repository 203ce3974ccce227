"""Reading the window from the end of the prediction log: rotation, partial and corrupt lines."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from drift_exporter.window import LogReader, lines_backward, list_log_files
from tests.unit.drift_exporter.logfiles import record, write_lines

NOW = 1_800_000_000.0
FEATURES = ("a", "b", "color")
NUMERIC = frozenset({"a", "b"})


def rows(start: int, count: int, *, version: str = "1", step: float = 1.0) -> list[dict[str, object]]:
    """Records whose feature ``a`` is their sequence number; timestamps grow with it."""
    return [record({"a": i, "b": i * 0.5, "color": "red" if i % 2 else "blue"}, ts=NOW - 10_000 + i * step,
                   version=version) for i in range(start, start + count)]


def read(folder: Path, reader: LogReader | None = None, **kwargs: object):
    options: dict[str, object] = {"features": FEATURES, "numeric": NUMERIC, "max_rows": 1000,
                                  "max_age_seconds": None, "now": NOW, "model_name": "iris-classifier"}
    options.update(kwargs)
    return (reader or LogReader(folder)).read(**options)  # type: ignore[arg-type]


def test_the_window_is_the_newest_rows_across_rotations_and_instances(tmp_path: Path) -> None:
    # instance A: .2 oldest, .1, live newest; instance B interleaves in time.
    write_lines(tmp_path / "predictions-a.jsonl.2", rows(0, 100, step=2))
    write_lines(tmp_path / "predictions-a.jsonl.1", rows(100, 100, step=2))
    write_lines(tmp_path / "predictions-a.jsonl", rows(200, 100, step=2))
    write_lines(tmp_path / "predictions-b.jsonl", [record({"a": -1.0, "b": 0, "color": "red"},
                                                          ts=NOW - 10_000 + i * 2 + 1) for i in range(250, 300)])
    window = read(tmp_path, max_rows=150)
    assert window.rows == 150
    assert window.files == 4
    values = window.numeric["a"]
    # the newest 150 of both instances by time: a = 225..299 from A and 50 rows of B (a = -1)
    assert int((values == -1.0).sum()) == 50
    assert sorted(values[values >= 0].tolist()) == list(range(200, 300))[-100:]
    assert window.instances == {"a": 100, "b": 50}  # what /drift reports as rows per serving process
    assert window.oldest is not None and window.newest is not None and window.oldest < window.newest


def test_a_small_block_size_reads_lines_longer_than_a_block(tmp_path: Path) -> None:
    write_lines(tmp_path / "predictions-x.jsonl", rows(0, 40))
    window = read(tmp_path, reader=LogReader(tmp_path, block_bytes=37), max_rows=25)
    assert sorted(window.numeric["a"].tolist()) == list(range(15, 40))
    assert window.corrupt_lines == 0


def test_a_half_written_last_line_waits_for_the_next_check(tmp_path: Path) -> None:
    path = tmp_path / "predictions-x.jsonl"
    write_lines(path, rows(0, 5))
    complete = rows(5, 1)[0]
    text = __import__("json").dumps(complete)
    with path.open("a") as handle:
        handle.write(text[:30])
    reader = LogReader(tmp_path)
    first = read(tmp_path, reader)
    assert first.rows == 5 and first.corrupt_lines == 0
    with path.open("a") as handle:
        handle.write(text[30:] + "\n")
    second = read(tmp_path, reader)
    assert second.rows == 6 and 5.0 in second.numeric["a"].tolist()
    assert second.corrupt_lines == 0


def test_corrupt_lines_are_skipped_and_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "predictions-x.jsonl"
    write_lines(path, rows(0, 3))
    with path.open("a") as handle:
        handle.write("{not json\n")
        handle.write('["a", "list"]\n')
        handle.write('{"event": "prediction", "features": {"a": 1}}\n')  # no timestamp
        handle.write('{"timestamp": "yesterday", "features": {"a": 1}}\n')
        handle.write("\n")  # blank lines are not corrupt
    write_lines(path, rows(3, 2), mode="a")
    reader = LogReader(tmp_path)
    first = read(tmp_path, reader)
    assert first.rows == 5
    assert first.corrupt_lines == 4 and first.new_corrupt_lines == 4
    second = read(tmp_path, reader)
    assert second.corrupt_lines == 4 and second.new_corrupt_lines == 0


def test_an_overlong_line_is_corrupt_and_not_held_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "predictions-x.jsonl"
    write_lines(path, rows(0, 2))
    with path.open("a") as handle:
        handle.write("x" * 5000 + "\n")
    write_lines(path, rows(2, 2), mode="a")
    window = read(tmp_path, reader=LogReader(tmp_path, block_bytes=512, max_line_bytes=1000))
    assert window.rows == 4
    assert window.corrupt_lines == 1


@pytest.mark.parametrize("make", [pytest.param(lambda p: None, id="missing-folder"),
                                  pytest.param(lambda p: p.mkdir(), id="empty-folder"),
                                  pytest.param(lambda p: (p.mkdir(), (p / "predictions-x.jsonl").touch()),
                                               id="empty-file")])
def test_an_empty_or_missing_folder_is_an_empty_window(tmp_path: Path, make) -> None:
    folder = tmp_path / "predictions"
    make(folder)
    window = read(folder)
    assert window.rows == 0
    assert window.numeric["a"].size == 0 and window.categorical["color"] == []
    assert window.oldest is None


def test_rows_older_than_the_age_limit_are_left_out(tmp_path: Path) -> None:
    write_lines(tmp_path / "predictions-x.jsonl.1", rows(0, 50, step=10))
    write_lines(tmp_path / "predictions-x.jsonl", rows(50, 50, step=10))
    # row i is written at NOW - 10000 + 10 i, so an age limit of 9100.5 s keeps i >= 90
    window = read(tmp_path, max_age_seconds=10_000 - 900 + 0.5)
    assert sorted(window.numeric["a"].tolist()) == list(range(90, 100))


def test_other_models_and_other_events_are_skipped_not_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "predictions-x.jsonl"
    write_lines(path, rows(0, 3))
    write_lines(path, [record({"a": 99, "b": 1, "color": "red"}, ts=NOW - 5, model_name="other-model"),
                       {"timestamp": "2026-01-01T00:00:00Z", "event": "reload", "features": {}}], mode="a")
    window = read(tmp_path)
    assert window.rows == 3 and window.corrupt_lines == 0 and window.skipped_rows == 2


def test_values_become_columns_with_missing_and_invalid_values_as_nan_or_none(tmp_path: Path) -> None:
    write_lines(tmp_path / "predictions-x.jsonl", [
        record({"a": 1.5, "b": "2.5", "color": "red"}, ts=NOW - 3),
        record({"a": None, "b": "oops", "color": 3}, ts=NOW - 2),
        record({"b": True, "color": None}, ts=NOW - 1, version="2", class_id=2),
    ])
    window = read(tmp_path)
    assert window.numeric["a"][0] == 1.5 and np.isnan(window.numeric["a"][1:]).all()
    assert window.numeric["b"][0] == 2.5 and np.isnan(window.numeric["b"][1:]).all()
    assert window.categorical["color"] == ["red", "3", None]
    assert window.prediction_versions == ["1", "1", "2"]
    assert window.classes_of("2") == ["virginica"]


def test_a_record_seen_under_two_names_during_rotation_counts_once(tmp_path: Path) -> None:
    live = tmp_path / "predictions-x.jsonl"
    written = rows(0, 10)
    write_lines(live, written)
    os.link(live, tmp_path / "predictions-x.jsonl.1")  # the same file under its old and new name
    write_lines(tmp_path / "predictions-x.jsonl.2", written[5:])  # the same records copied by a rotation
    window = read(tmp_path)
    assert window.rows == 10


def test_a_file_removed_between_listing_and_opening_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_lines(tmp_path / "predictions-x.jsonl", rows(0, 4))
    listed = list_log_files(tmp_path)
    ghost = type(listed[0])(tmp_path / "predictions-x.jsonl.1", "x", 1)
    monkeypatch.setattr("drift_exporter.window.list_log_files", lambda folder: [*listed, ghost])
    assert read(tmp_path).rows == 4


def test_a_file_rotated_while_reading_is_still_read_from_its_open_handle(tmp_path: Path) -> None:
    live = tmp_path / "predictions-x.jsonl"
    write_lines(live, rows(0, 20))
    reader = LogReader(tmp_path, block_bytes=64)
    original = reader._rows_of

    def rotate_then_read(chain, *args, **kwargs):  # the writer rotates after the files were opened
        os.rename(live, tmp_path / "predictions-x.jsonl.1")
        write_lines(live, rows(20, 3))
        return original(chain, *args, **kwargs)

    reader._rows_of = rotate_then_read  # type: ignore[method-assign]
    window = read(tmp_path, reader)
    assert sorted(window.numeric["a"].tolist()) == list(range(20))


def test_lines_backward_returns_complete_lines_last_first_with_offsets() -> None:
    data = b"one\ntwo\n\nthree\nfour-partial"
    found = list(lines_backward(io.BytesIO(data), len(data), block=3))
    assert found == [(9, b"three"), (8, b""), (4, b"two"), (0, b"one")]
    assert list(lines_backward(io.BytesIO(b"no newline"), 10)) == []
    assert list(lines_backward(io.BytesIO(b""), 0)) == []


def test_log_files_are_listed_newest_first_per_instance(tmp_path: Path) -> None:
    for name in ("predictions-b.jsonl", "predictions-a.jsonl.10", "predictions-a.jsonl.2", "predictions-a.jsonl",
                 "other.txt", "predictions-a.jsonl.tmp"):
        (tmp_path / name).touch()
    assert [f.path.name for f in list_log_files(tmp_path)] == [
        "predictions-a.jsonl", "predictions-a.jsonl.2", "predictions-a.jsonl.10", "predictions-b.jsonl"]


def test_one_line_with_a_very_old_timestamp_does_not_cut_the_window_short(tmp_path: Path) -> None:
    recent = rows(0, 100)  # NOW - 10000 + i: all within a 20000 s age limit
    stray = record({"a": -1, "b": 0, "color": "red"}, ts=NOW - 10**8)  # a wrong clock, once
    write_lines(tmp_path / "predictions-x.jsonl.1", recent[:40])
    write_lines(tmp_path / "predictions-x.jsonl", [*recent[40:70], stray, *recent[70:]])
    window = read(tmp_path, max_age_seconds=20_000)
    assert sorted(window.numeric["a"].tolist()) == list(range(100))
    assert window.skipped_rows == 1


def test_a_run_of_old_rows_still_ends_the_scan(tmp_path: Path) -> None:
    old = [record({"a": -i, "b": 0, "color": "red"}, ts=NOW - 10**8 + i) for i in range(200)]
    write_lines(tmp_path / "predictions-x.jsonl", [*rows(1000, 5), *old, *rows(0, 10)])
    window = read(tmp_path, max_age_seconds=20_000)
    assert sorted(window.numeric["a"].tolist()) == list(range(10))  # the rows behind the run are not reached


def test_a_row_stamped_far_in_the_future_is_left_out_and_so_ages_out(tmp_path: Path) -> None:
    future = record({"a": 999, "b": 0, "color": "red"}, ts=NOW + 10**6)
    write_lines(tmp_path / "predictions-x.jsonl", [*rows(0, 10), future])
    window = read(tmp_path, max_age_seconds=20_000)
    assert 999 not in window.numeric["a"].tolist() and window.rows == 10
    assert window.newest is not None and window.newest <= NOW
    assert window.skipped_rows == 1
    slightly_ahead = record({"a": 7, "b": 0, "color": "red"}, ts=NOW + 60)  # ordinary clock skew is kept
    write_lines(tmp_path / "predictions-y.jsonl", [slightly_ahead])
    assert 7 in read(tmp_path, max_age_seconds=20_000).numeric["a"].tolist()


def test_rows_lost_with_a_killed_serving_process_are_counted_once(tmp_path: Path) -> None:
    end = {"timestamp": record({}, ts=NOW - 5)["timestamp"], "event": "log_end", "instance": "x",
           "acknowledged_seq": 15, "written_seq": 10, "lost": 5}
    clean = {**end, "instance": "y", "acknowledged_seq": 3, "written_seq": 3, "lost": 0}
    write_lines(tmp_path / "predictions-x.jsonl", [*rows(0, 10), end])
    write_lines(tmp_path / "predictions-y.jsonl", [*rows(10, 3), clean])
    reader = LogReader(tmp_path)
    first = read(tmp_path, reader, max_age_seconds=20_000)
    assert first.rows == 13 and first.new_lost_rows == 5 and first.corrupt_lines == 0
    assert read(tmp_path, reader, max_age_seconds=20_000).new_lost_rows == 0  # already counted
    # An exporter started later does not count a loss older than its window again.
    assert read(tmp_path, max_age_seconds=1).new_lost_rows == 0


def test_rows_lost_when_serving_and_its_writer_died_together_are_counted_from_the_seq_gap(tmp_path: Path) -> None:
    """No log_end line (the whole process group was killed): the counter file says 15 were acknowledged,
    the log's last row is seq 10. The gap counts once it has stood still for abandoned_seconds; a live
    writer catching up, or a clean end, counts nothing."""
    from driftwatch.prediction_record import ACK

    def seqs(start: int, count: int) -> list[dict[str, object]]:
        return [record({"a": i, "b": 0, "color": "red"}, ts=NOW - 100 + i, seq=i) for i in range(start, start + count)]

    write_lines(tmp_path / "predictions-dead.jsonl", seqs(1, 10))
    (tmp_path / "predictions-dead.acked").write_bytes(ACK.pack(15))
    write_lines(tmp_path / "predictions-live.jsonl", seqs(1, 20))
    (tmp_path / "predictions-live.acked").write_bytes(ACK.pack(22))  # 2 rows on their way to the writer
    reader = LogReader(tmp_path, abandoned_seconds=30)
    assert read(tmp_path, reader, now=NOW).new_lost_rows == 0  # first sight: maybe a writer behind
    write_lines(tmp_path / "predictions-live.jsonl", seqs(21, 2), mode="a")  # the live writer caught up
    assert read(tmp_path, reader, now=NOW + 10).new_lost_rows == 0  # not yet abandoned_seconds
    assert read(tmp_path, reader, now=NOW + 31).new_lost_rows == 5  # dead: 15 acknowledged, 10 written
    assert read(tmp_path, reader, now=NOW + 62).new_lost_rows == 0  # counted once
    # A restart under the same name starts a new counter and a new seq: nothing to count.
    write_lines(tmp_path / "predictions-dead.jsonl", seqs(1, 3), mode="a")
    (tmp_path / "predictions-dead.acked").write_bytes(ACK.pack(3))
    assert read(tmp_path, reader, now=NOW + 100).new_lost_rows == 0
    # An exporter started later does not count a gap whose rows are older than its window.
    (tmp_path / "predictions-old.jsonl").write_text("")
    write_lines(tmp_path / "predictions-old.jsonl", seqs(1, 4))
    (tmp_path / "predictions-old.acked").write_bytes(ACK.pack(9))
    later = LogReader(tmp_path, abandoned_seconds=30)
    for now in (NOW + 200, NOW + 300):
        assert read(tmp_path, later, now=now, max_age_seconds=60).new_lost_rows == 0
