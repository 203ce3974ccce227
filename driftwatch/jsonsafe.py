"""JSON that always encodes: for error replies and log lines that quote what a client sent, and
answers whose statistics may be NaN (``finite``).

Python strings may hold lone UTF-16 surrogates (``json.loads('"\\ud800"')`` makes one); UTF-8 cannot
encode them, so orjson refuses the whole document and an error reply or a log line would itself
fail. Here such characters are written as the six visible characters ``\\udXXX`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson


def encodable(value: Any) -> Any:
    """``value`` with every string (keys included) made UTF-8 encodable."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(v) for v in value]
    return value


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float made None (JSON has no NaN): what /drift and /quality
    answer for a statistic that could not be computed."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """``orjson.dumps``; on a string it cannot encode, the same document made encodable."""
    try:
        return orjson.dumps(value, default=default)
    except TypeError:
        return orjson.dumps(encodable(value), default=default)
