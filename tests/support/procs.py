"""Helpers for tests that run real binaries on loopback: find them, pick ports, wait for them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from driftwatch.processes import free_port

__all__ = ["IN_CI", "free_port", "require_binary", "stop_process", "wait_for_http"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str) -> str:
    """Path of a binary the tests need. In CI a missing binary fails the run; locally it skips."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not on PATH; run `make system-deps` (Debian packages prometheus, prometheus-alertmanager)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)  # only outside CI
    return path


def wait_for_http(url: str, *, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None,
                  ok: Callable[[httpx.Response], bool] | None = None, log: Path | None = None) -> None:
    """Poll `url` until it answers (2xx by default); fail with the process log if it dies or times out."""
    deadline = time.monotonic() + timeout
    last: str = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"process for {url} exited with {proc.returncode}:\n{tail}")
        try:
            response = httpx.get(url, timeout=2.0)
            if (ok or (lambda r: r.is_success))(response):
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{url} did not become ready in {timeout}s (last: {last})\n{tail}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
