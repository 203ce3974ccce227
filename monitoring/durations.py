"""Prometheus/Alertmanager durations (``30s``, ``1m30s``, ``500ms``): parse them and write them back."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
DURATION = r"(?:\d+(?:ms|s|m|h|d|w|y))+"


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``1m30s``; raises ValueError naming the text otherwise."""
    text = str(text).strip()
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{text!r} is not a Prometheus duration (e.g. 30s, 1m30s, 500ms)")
    return total


def format_duration(seconds: float) -> str:
    """The shortest duration text for ``seconds`` (whole milliseconds): ``90`` -> ``1m30s``."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative ({seconds}s)")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
