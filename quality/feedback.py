"""Feedback: checking labels sent to ``POST /feedback`` or read from a file, before they are stored.

A request carries one label (``{"prediction_id": ..., "actual": ..., "timestamp": ...}``), a list of
them, or ``{"labels": [...]}``. ``actual`` is the true outcome: a class label of any JSON type (the
label the model predicts, or its class name) or a number for a regressor. ``timestamp`` (optional)
is when the outcome was known, as ISO 8601 or epoch seconds; without it, the time it arrives.
A request with any bad label is refused whole (4xx naming the field, e.g. ``labels[3].actual``), so
a client fixes and resends it rather than guessing which part was kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from drift_exporter.stats import normalize_category
from quality.store import Label

MAX_ID_CHARS = 64
MAX_LABEL_CHARS = 255


def feedback_schema(max_items: int) -> dict[str, Any]:
    """The JSON schema of a ``POST /feedback`` body, for OpenAPI (the parser below is what decides;
    the fuzz suite holds the two together: every body this schema describes is accepted)."""
    label = {
        "type": "object", "required": ["prediction_id", "actual"], "additionalProperties": False,
        "properties": {
            "prediction_id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS, "pattern": r"\S",
                              "description": "The prediction_id serving answered with"},
            "actual": {"description": "The true outcome: a class label (as the model predicts it, or its class "
                                      "name) or a regressor's value",
                       "anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_LABEL_CHARS, "pattern": r"\S"},
                                 {"type": "number", "minimum": -1e15, "maximum": 1e15}, {"type": "boolean"}]},
            "timestamp": {"description": "When the outcome was known (default: when it arrives)",
                          "anyOf": [{"type": "string", "format": "date-time"},
                                    {"type": "number", "exclusiveMinimum": 0, "maximum": 1e10,
                                     "description": "epoch seconds"}]},
        },
    }
    labels = {"type": "array", "items": label, "minItems": 1, "maxItems": max_items}
    return {"description": "One label, a list of them, or {\"labels\": [...]}",
            "anyOf": [label, labels, {"type": "object", "required": ["labels"], "additionalProperties": False,
                                      "properties": {"labels": labels}}]}


class FeedbackProblem(ValueError):
    def __init__(self, field: str, message: str, *, status: int = 422, items: int = 0) -> None:
        super().__init__(message)
        self.field = field
        self.status = status
        self.items = items  # labels the request carried, counted as invalid


@dataclass(frozen=True)
class ParsedFeedback:
    labels: list[Label]  # unique ids, first occurrence kept
    repeated: list[str]  # ids repeated within the request (answered as duplicates)


def _timestamp(value: Any, field: str, now: float) -> float:
    if value is None:
        return now
    if isinstance(value, bool):
        raise FeedbackProblem(field, f"{field} must be an ISO 8601 time or epoch seconds, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0:
            raise FeedbackProblem(field, f"{field} must be positive epoch seconds")
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FeedbackProblem(field, f"{field} {value[:40]!r} is not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise FeedbackProblem(field, f"{field} {value[:40]!r} has no time zone; add Z or +00:00")
        return parsed.timestamp()
    raise FeedbackProblem(field, f"{field} must be an ISO 8601 time or epoch seconds")


def label_from(item: Any, where: str, now: float) -> Label:
    """One label; ``where`` is its place in the request (``labels[3]``) for error messages."""
    prefix = f"{where}." if where else ""
    if not isinstance(item, dict):
        raise FeedbackProblem(where or "body", f"{where or 'the body'} must be an object with prediction_id and actual")
    pid = item.get("prediction_id")
    if not isinstance(pid, str) or not pid.strip():
        raise FeedbackProblem(f"{prefix}prediction_id",
                              f"{prefix}prediction_id must be the non-empty string serving answered with")
    if len(pid) > MAX_ID_CHARS:
        raise FeedbackProblem(f"{prefix}prediction_id",
                              f"{prefix}prediction_id is longer than {MAX_ID_CHARS} characters")
    if "actual" not in item:
        raise FeedbackProblem(f"{prefix}actual", f"{prefix}actual is missing: the true label or value")
    actual = item["actual"]
    if isinstance(actual, dict | list) or actual is None:
        raise FeedbackProblem(f"{prefix}actual", f"{prefix}actual must be a label (string, number or boolean), "
                                                 f"not {type(actual).__name__ if actual is not None else 'null'}")
    if isinstance(actual, float) and not math.isfinite(actual):
        raise FeedbackProblem(f"{prefix}actual", f"{prefix}actual must be a finite number")
    canonical = normalize_category(actual)
    if canonical is None:
        raise FeedbackProblem(f"{prefix}actual", f"{prefix}actual is empty")
    if len(canonical) > MAX_LABEL_CHARS:
        raise FeedbackProblem(f"{prefix}actual", f"{prefix}actual is longer than {MAX_LABEL_CHARS} characters")
    value: float | None = None
    if isinstance(actual, int | float) and not isinstance(actual, bool):
        value = float(actual)
    elif isinstance(actual, str):
        try:
            number = float(actual)
            value = number if math.isfinite(number) else None
        except ValueError:
            value = None
    unknown = set(item) - {"prediction_id", "actual", "timestamp"}
    if unknown:
        first = sorted(unknown)[0]
        raise FeedbackProblem(f"{prefix}{first}", f"{prefix}{first} is not a feedback field "
                                                  "(prediction_id, actual, timestamp)")
    return Label(pid, canonical, value, _timestamp(item.get("timestamp"), f"{prefix}timestamp", now))


def parse_items(items: list[Any], *, now: float, max_items: int, where: str = "labels") -> ParsedFeedback:
    if not items:
        raise FeedbackProblem(where, f"{where} is empty: send at least one label")
    if len(items) > max_items:
        raise FeedbackProblem(where, f"{len(items)} labels in one request; at most {max_items} "
                                     "(split the batch, or use `driftwatch feedback FILE`)", status=413,
                              items=len(items))
    labels: list[Label] = []
    seen: set[str] = set()
    repeated: list[str] = []
    for i, item in enumerate(items):
        try:
            label = label_from(item, f"{where}[{i}]", now)
        except FeedbackProblem as problem:
            problem.items = len(items)
            raise
        if label.prediction_id in seen:
            repeated.append(label.prediction_id)
            continue
        seen.add(label.prediction_id)
        labels.append(label)
    return ParsedFeedback(labels, repeated)


def parse_body(body: bytes, *, now: float, max_items: int) -> ParsedFeedback:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FeedbackProblem("body", f"the body is not JSON: {exc}", status=400) from None
    if isinstance(document, list):
        return parse_items(document, now=now, max_items=max_items, where="body")
    if isinstance(document, dict) and "labels" in document:
        extra = set(document) - {"labels"}
        if extra:
            raise FeedbackProblem(sorted(extra)[0], f"{sorted(extra)[0]} is not allowed next to labels")
        if not isinstance(document["labels"], list):
            raise FeedbackProblem("labels", "labels must be a list of {prediction_id, actual, timestamp}")
        return parse_items(document["labels"], now=now, max_items=max_items)
    label = label_from(document, "", now)
    return ParsedFeedback([label], [])
