"""Time as the services write and read it: UTC, ISO 8601 with a ``Z``, e.g. ``2026-01-01T12:00:00.123Z``.

One copy, so every JSON answer, log line and registry tag writes time the same way."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

TimeSpec = Literal["seconds", "milliseconds", "microseconds"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_utc(moment: float | datetime | None = None, *, timespec: TimeSpec = "milliseconds") -> str:
    """``moment`` (epoch seconds or an aware datetime; default now) as ISO 8601 UTC ending in ``Z``."""
    if moment is None:
        moment = time.time()
    when = moment.astimezone(UTC) if isinstance(moment, datetime) else datetime.fromtimestamp(moment, tz=UTC)
    return when.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_iso(value: object) -> float | None:
    """Epoch seconds of an ISO 8601 string (a time without zone is taken as UTC); None when it is
    not one, or names a moment outside what a timestamp can hold."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError, OSError):
        return None
