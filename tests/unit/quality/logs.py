"""Prediction log lines as serving writes them (the record module serving's writer uses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftwatch.prediction_record import prediction_record, to_lines


def prediction_line(pid: str, *, version: str = "1", class_id: Any = 0, class_name: str = "setosa",
                    probability: float | None = 0.9, timestamp: float = 1_767_268_800.0,
                    model_name: str = "iris-classifier") -> bytes:
    return to_lines([prediction_record(timestamp, pid, {"x": 1.0}, class_id, class_name, probability,
                                       {"name": model_name, "version": version, "source": "models:/m@production"},
                                       1.0, 1)])


def append(path: Path, *lines: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        for line in lines:
            handle.write(line)
