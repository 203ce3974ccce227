"""Structured application logs shared by every Driftwatch service: one JSON object per line on stderr."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterable
from typing import Any

from driftwatch import jsonsafe
from driftwatch.clock import iso_utc
from driftwatch.redact import redact

# Attributes every LogRecord has, and uvicorn's terminal-colour duplicate of the message.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "color_message"}
CHATTY = ("mlflow", "alembic", "urllib3", "httpx", "skl2onnx", "apscheduler")


class JsonFormatter(logging.Formatter):
    """``{"timestamp", "level", "logger", "message", ...extra fields, "exception"}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        # jsonsafe: a message quoting a client's bad input may hold lone surrogates; orjson alone would
        # refuse it and logging would print a raw traceback instead of the line.
        return redact(jsonsafe.dumps(entry, default=str).decode())


def configure_logging(level: str = "INFO", *, quiet: Iterable[str] = CHATTY) -> None:
    """Send every logger (uvicorn's included) through one JSON handler on stderr; libraries that are
    chatty about things the services do on purpose log warnings only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    for name in quiet:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
