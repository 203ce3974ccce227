"""Write prediction log lines in the docs/contract.md format (for window, monitor and app tests)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CLASSES = ("setosa", "versicolor", "virginica")


def record(features: Mapping[str, Any], *, ts: float, version: str = "1", class_id: int = 0,
           model_name: str = "iris-classifier", prediction_id: str | None = None) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "timestamp": stamp, "event": "prediction", "prediction_id": prediction_id or uuid.uuid4().hex,
        "features": dict(features),
        "prediction": {"class_id": class_id, "class_name": CLASSES[class_id % 3], "probability": 0.9},
        "model": {"name": model_name, "version": version, "source": f"models:/{model_name}@production"},
        "latency_ms": 0.4,
    }


def line(rec: Mapping[str, Any]) -> str:
    return json.dumps(rec) + "\n"


def write_lines(path: Path, records: Iterable[Mapping[str, Any]], *, mode: str = "w") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode) as handle:
        for rec in records:
            handle.write(line(rec))
