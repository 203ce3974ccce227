"""Prediction logs through S3: three serving replicas' log writers (the real processes) upload their
closed segments to a real S3 server (moto's, on loopback); the drift exporter's window read from S3
holds exactly the rows of the same window read from one local log with every row, and the drift
result is the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from drift_exporter.check import compute_drift
from drift_exporter.decisions import DriftPolicy
from drift_exporter.reference import prepare_reference
from drift_exporter.segments import SegmentSource
from drift_exporter.window import LogReader
from driftwatch.logsegments import S3Location, Segment
from driftwatch.objectstore import start_s3_server
from model_registry.reference import build_reference
from serving.prediction_log import LogModel, PredictionLog

pytestmark = pytest.mark.integration

NAMES = ("f0", "f1", "f2", "f3")
MODEL = {"name": "fleet-model", "version": "1", "source": "models:/fleet-model@production"}
REPLICAS, ROWS, WINDOW = 3, 900, 500
T0 = 1_767_268_800.0


def test_the_window_from_three_replicas_segments_in_s3_equals_the_window_of_one_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(ROWS, len(NAMES)))
    model = LogModel(model=MODEL, names=NAMES, kinds=("double",) * len(NAMES), class_ids=[0, 1],
                     class_names=["a", "b"])
    with start_s3_server(log=tmp_path / "s3.log", buckets=("logs",)) as s3:
        for name, value in s3.endpoint.env().items():
            monkeypatch.setenv(name, value)  # the writer processes and boto3 read them
        # Three replicas, each its own log folder (no shared disk); small files, so segments close
        # by size many times; rows interleave in time across the replicas.
        logs = [PredictionLog(tmp_path / f"host-{i}", f"replica-{i}", max_bytes=8192, backups=1000, interval=0.01,
                              s3_url="s3://logs/predictions", model_name=MODEL["name"], segment_seconds=3600)
                for i in range(REPLICAS)]
        for log in logs:
            log.start()
        for i in range(ROWS):
            logs[i % REPLICAS].add(T0 + i * 0.01, model, [values[i].tolist()], [f"{i:032x}"], [i % 2],
                                   [0.9], 1.0)
        for log in logs:
            log.close()  # the writer ships its last segment before it exits

        client = s3.endpoint.client()
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="logs", Prefix="predictions/fleet-model/")["Contents"]]
        segments = [Segment.parse(key.rsplit("/", 1)[1]) for key in keys]
        assert all(segments) and {s.instance for s in segments if s} == {f"replica-{i}" for i in range(REPLICAS)}
        assert sum(s.rows for s in segments if s) == ROWS
        assert len(keys) > 3 * REPLICAS  # rotated by size, not one file each
        for i in range(REPLICAS):  # nothing left waiting for an upload
            assert not list((tmp_path / f"host-{i}" / f".segments-replica-{i}").iterdir())

        # The same rows in one local log, in time order.
        every_line = [line for i in range(REPLICAS) for path in (tmp_path / f"host-{i}").glob("predictions-*")
                      for line in path.read_text().splitlines() if '"event":"prediction"' in line]
        every_line.sort(key=lambda line: json.loads(line)["timestamp"])
        assert len(every_line) == ROWS
        single = tmp_path / "one-log"
        single.mkdir()
        (single / "predictions-all.jsonl").write_text("\n".join(every_line) + "\n")

        source = SegmentSource(S3Location.parse("s3://logs/predictions"), MODEL["name"], tmp_path / "cache")
        read = {"features": NAMES, "numeric": frozenset(NAMES), "max_rows": WINDOW, "max_age_seconds": None,
                "now": T0 + 60, "model_name": MODEL["name"]}
        files = source.sync(max_rows=WINDOW, max_age_seconds=None, now=T0 + 60)
        from_s3 = LogReader(tmp_path / "cache").read(files=files, **read)  # type: ignore[arg-type]
        from_one = LogReader(single).read(**read)  # type: ignore[arg-type]
        # only the segments the window needs were downloaded
        assert source.downloads == len(files) < len(keys)

    assert from_s3.rows == from_one.rows == WINDOW
    assert set(from_s3.instances) == {f"replica-{i}" for i in range(REPLICAS)}
    for name in NAMES:
        np.testing.assert_array_equal(from_s3.numeric[name], from_one.numeric[name])
    assert from_s3.prediction_classes == from_one.prediction_classes
    assert (from_s3.oldest, from_s3.newest) == (from_one.oldest, from_one.newest)

    train = pd.DataFrame(rng.normal(size=(2000, len(NAMES))), columns=list(NAMES))
    fitted = LogisticRegression().fit(train, (train["f0"] > 0).astype(int))
    reference = prepare_reference(build_reference(fitted, train, ["a", "b"], model_name=MODEL["name"],
                                                  max_rows=2000), model_name=MODEL["name"], version="1")
    policy = DriftPolicy(min_window_rows=100)
    assert compute_drift(reference, from_s3, policy).to_dict() == compute_drift(reference, from_one, policy).to_dict()
