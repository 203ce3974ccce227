"""`driftwatch feedback FILE`: CSV and Parquet files of outcomes, sent in batches to the service."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from driftwatch.cli import main
from quality.client import FeedbackFileError, frame_to_items, read_feedback_file, send_feedback
from tests.unit.quality.logs import append, prediction_line
from tests.unit.quality.test_quality_app import NOW, TOKEN, make


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_of_outcomes_is_joined_in_batches(tmp_path: Path, suffix: str) -> None:
    client, _, logs = make(tmp_path)
    ids = [f"{i:032x}" for i in range(25)]
    append(logs / "predictions-a.jsonl", *(prediction_line(pid, timestamp=NOW - 60 + i) for i, pid in enumerate(ids)))
    frame = pd.DataFrame({"prediction_id": [*ids, "f" * 32], "actual": ["setosa"] * 26,
                          "timestamp": ["2026-01-01T12:00:00Z"] * 26})
    path = tmp_path / f"outcomes{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    with client:
        client.app.state.monitor.run_once()
        items = frame_to_items(read_feedback_file(path))
        summary = send_feedback("http://testserver", items, token=TOKEN, batch=10, client=client)
        assert (summary.sent, summary.joined, summary.pending, summary.duplicate) == (26, 25, 1, 0)
        assert summary.unknown_ids == ["f" * 32]
        again = send_feedback("http://testserver", items, token=TOKEN, batch=10, client=client)
        assert again.duplicate == 26


def test_a_refused_batch_stops_with_the_services_message_and_the_rows(tmp_path: Path) -> None:
    client, _, _ = make(tmp_path)
    items = [{"prediction_id": "a", "actual": 1}, {"prediction_id": "b", "actual": 1, "timestamp": "nope"}]
    with client, pytest.raises(FeedbackFileError, match=r"rows 1-2 .*labels\[1\].timestamp"):
        send_feedback("http://testserver", items, token=TOKEN, client=client)


def test_files_without_the_columns_or_of_another_kind_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\n1,2\n")
    with pytest.raises(FeedbackFileError, match="no column prediction_id, actual"):
        read_feedback_file(bad)
    extra = tmp_path / "extra.csv"
    extra.write_text("prediction_id,actual,score\n1,2,3\n")
    with pytest.raises(FeedbackFileError, match="'score' is not a feedback column"):
        read_feedback_file(extra)
    other = tmp_path / "x.json"
    other.write_text("{}")
    with pytest.raises(FeedbackFileError, match=r"use a \.csv or \.parquet"):
        read_feedback_file(other)
    with pytest.raises(FeedbackFileError, match="does not exist"):
        read_feedback_file(tmp_path / "missing.csv")


def test_the_command_says_what_is_wrong_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text("prediction_id,actual\nabc,1\n")
    assert main(["feedback", str(path), "--url", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("driftwatch: error: the quality service at http://127.0.0.1:9 cannot be reached")
