"""Helpers for tests that run real binaries on loopback: find them, pick ports, wait for them."""

from __future__ import annotations

import os
import shutil

import pytest

from driftwatch.processes import free_port, stop_process
from driftwatch.waiting import wait_for, wait_for_http

__all__ = ["IN_CI", "free_port", "require_binary", "stop_process", "wait_for", "wait_for_http"]

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
