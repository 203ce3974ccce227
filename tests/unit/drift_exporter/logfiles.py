"""Write prediction log lines in the docs/contract.md format (for window, monitor and app tests)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from driftwatch.prediction_record import prediction_record

CLASSES = ("setosa", "versicolor", "virginica")


def record(features: Mapping[str, Any], *, ts: float, version: str = "1", class_id: int = 0,
           model_name: str = "iris-classifier", prediction_id: str | None = None, seq: int = 1) -> dict[str, Any]:
    return prediction_record(ts, prediction_id or uuid.uuid4().hex, dict(features), class_id, CLASSES[class_id % 3],
                             0.9, {"name": model_name, "version": version, "source": f"models:/{model_name}@production"},
                             0.4, seq)


def line(rec: Mapping[str, Any]) -> str:
    return json.dumps(rec) + "\n"


def write_lines(path: Path, records: Iterable[Mapping[str, Any]], *, mode: str = "w") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode) as handle:
        for rec in records:
            handle.write(line(rec))
