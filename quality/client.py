"""``driftwatch feedback FILE``: send a CSV or Parquet file of outcomes to the quality service.

Columns: ``prediction_id``, ``actual`` and optionally ``timestamp`` (ISO 8601 or epoch seconds).
The file is sent in batches; a batch the service refuses stops the run with the service's message
(which names the row, as ``labels[i]`` of that batch, and the field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd

REQUIRED = ("prediction_id", "actual")


class FeedbackFileError(ValueError):
    pass


@dataclass
class FeedbackSummary:
    sent: int = 0
    joined: int = 0
    pending: int = 0
    duplicate: int = 0
    unknown_ids: list[str] = field(default_factory=list)


def read_feedback_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FeedbackFileError(f"{path} does not exist or is not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            frame = pd.read_csv(path, dtype={"prediction_id": str}, keep_default_na=False, na_values=[""])
        else:
            raise FeedbackFileError(f"{path}: use a .csv or .parquet file")
    except (ValueError, OSError) as exc:
        if isinstance(exc, FeedbackFileError):
            raise
        raise FeedbackFileError(f"{path} cannot be read: {exc}") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise FeedbackFileError(f"{path} has no column {', '.join(missing)} (needs prediction_id, actual, "
                                "optionally timestamp)")
    extra = sorted(set(frame.columns) - {"prediction_id", "actual", "timestamp"})
    if extra:
        raise FeedbackFileError(f"{path}: column {extra[0]!r} is not a feedback column "
                                "(prediction_id, actual, timestamp)")
    return frame


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def frame_to_items(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [c for c in ("prediction_id", "actual", "timestamp") if c in frame.columns]
    items = []
    for values in zip(*(frame[c].tolist() for c in columns), strict=True):
        item = {c: _plain(v) for c, v in zip(columns, values, strict=True)}
        if item.get("timestamp") is None:
            item.pop("timestamp", None)
        items.append(item)
    return items


def send_feedback(url: str, items: list[dict[str, Any]], *, token: str | None = None, batch: int = 10_000,
                  timeout: float = 120.0, client: httpx.Client | None = None) -> FeedbackSummary:
    summary = FeedbackSummary()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    endpoint = url.rstrip("/") + "/feedback"
    own = client is None
    http = client or httpx.Client(timeout=timeout)
    try:
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            response = http.post(endpoint, content=orjson.dumps({"labels": chunk}), headers=headers)
            if response.status_code != 200:
                try:
                    body = response.json()
                    detail = body.get("detail", response.text)
                except ValueError:
                    detail = response.text[:300]
                where = f"rows {start + 1}-{start + len(chunk)}"
                raise FeedbackFileError(f"the quality service refused {where} (HTTP {response.status_code}): "
                                        f"{detail}; {summary.sent} labels were stored before")
            body = response.json()
            summary.sent += len(chunk)
            summary.joined += int(body["joined"])
            summary.pending += int(body["pending"])
            summary.duplicate += int(body["duplicate"])
            summary.unknown_ids.extend(body.get("unknown_ids", [])[: max(0, 20 - len(summary.unknown_ids))])
    finally:
        if own:
            http.close()
    return summary
