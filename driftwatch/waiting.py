"""Waiting for something on loopback: poll a check, or an HTTP URL, until it holds or time runs out.

One copy for the process supervisor (`driftwatch up`, the demo), the demo's steps and the tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The condition did not hold in time; the message says what was awaited and what was seen last."""


class ProcessExited(RuntimeError):
    """The process that should have answered has exited; the message carries the end of its log."""


def log_tail(path: Path | None, chars: int = 3000) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def wait_for(what: str, check: Callable[[], T | None], *, timeout: float, interval: float = 0.25,
             proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> T:
    """Call ``check`` until it returns something truthy and return that. An ``httpx.HTTPError`` counts
    as "not yet". Raises ``ProcessExited`` as soon as ``proc`` exits, ``WaitTimeout`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        if proc is not None and proc.poll() is not None:
            raise ProcessExited(f"the process for {what} exited with status {proc.returncode}; "
                                f"its log{f' ({log})' if log else ''} ends with:\n{log_tail(log)}")
        try:
            result = check()
        except httpx.HTTPError as exc:
            result, last = None, f"{type(exc).__name__}: {exc}"
        if result:
            return result
        if time.monotonic() >= deadline:
            seen = f" (last: {last})" if last else ""
            tail = log_tail(log)
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{seen}"
                              + (f"\n{tail}" if tail else ""))
        time.sleep(interval)


def wait_for_http(url: str, *, timeout: float = 60.0, ok: Callable[[httpx.Response], bool] | None = None,
                  proc: subprocess.Popen[bytes] | None = None, log: Path | None = None,
                  interval: float = 0.25) -> httpx.Response:
    """Poll ``url`` with GET until it answers 2xx (or ``ok`` holds) and return that answer."""
    accept = ok or (lambda r: r.is_success)
    statuses: list[str] = []

    def answered() -> httpx.Response | None:
        response = httpx.get(url, timeout=2.0)
        if accept(response):
            return response
        statuses[:] = [f"HTTP {response.status_code}"]
        return None

    try:
        return wait_for(url, answered, timeout=timeout, interval=interval, proc=proc, log=log)
    except WaitTimeout as exc:
        if statuses:
            raise WaitTimeout(f"{exc} ({statuses[0]})") from None
        raise
