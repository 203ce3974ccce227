"""Application logs are one JSON object per line, with the extra fields a record carries."""

from __future__ import annotations

import json
import logging

from driftwatch.logs import JsonFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    item = logging.LogRecord("serving.model_store", logging.WARNING, __file__, 1, message, ("v2",), None)
    for key, value in extra.items():
        setattr(item, key, value)
    return item


def test_a_log_line_is_json_with_level_logger_message_and_extras() -> None:
    line = JsonFormatter().format(record("loading %s failed", model_version="2", event="reload_failed",
                                         color_message="\x1b[31mcoloured\x1b[0m"))
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "serving.model_store"
    assert entry["message"] == "loading v2 failed"
    assert entry["model_version"] == "2" and entry["event"] == "reload_failed"
    assert "color_message" not in entry and entry["timestamp"].endswith("Z")


def test_an_exception_is_kept_in_the_same_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        item = record("failed %s")
        item.exc_info = sys.exc_info()
    line = JsonFormatter().format(item)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_a_message_quoting_a_lone_surrogate_is_still_one_json_line() -> None:
    """Issue #15: a client's field name "\\ud800" in a message made orjson refuse the line, and
    logging printed a raw traceback instead."""
    try:
        raise KeyError("\ud800")
    except KeyError:
        import sys

        item = record("bad field %s", field="\udc00")
        item.args = ("\ud800",)
        item.exc_info = sys.exc_info()
    line = JsonFormatter().format(item)
    entry = json.loads(line)
    assert "\n" not in line and entry["message"] == "bad field \\ud800" and entry["field"] == "\\udc00"
    assert "KeyError" in entry["exception"]
