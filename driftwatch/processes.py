"""A small process supervisor: start in order, wait for health, restart what crashes, stop cleanly.

Hand-written rather than a dependency (supervisord, honcho): it is ~150 lines, needs health checks
between steps, and must stop its children from Python on Ctrl-C, in tests and in `driftwatch demo`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from driftwatch.waiting import ProcessExited, WaitTimeout, wait_for_http


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    health_url: str | None = None
    health_timeout: float = 90.0
    restart: bool = True


class ProcessFailed(RuntimeError):
    """A process exited or never became healthy; the message carries the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL: one process, not its group."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


class Supervisor:
    def __init__(self, *, say: Callable[[str], None] = print, max_restarts: int = 5,
                 restart_window: float = 60.0) -> None:
        self.say = say
        self.specs: dict[str, ProcessSpec] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, deque[float]] = {}
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.lock = threading.Lock()
        self.stopping = False

    def _spawn(self, spec: ProcessSpec) -> subprocess.Popen[bytes]:
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.env}
        with spec.log.open("ab") as out:
            return subprocess.Popen(spec.argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def start(self, spec: ProcessSpec) -> None:
        """Start one process and wait until its health URL answers 2xx (or fail with its log)."""
        with self.lock:
            self.specs[spec.name] = spec
            self.procs[spec.name] = self._spawn(spec)
        if spec.health_url:
            self.wait_healthy(spec)

    def start_together(self, specs: list[ProcessSpec]) -> None:
        """Start several processes at once (e.g. serving replicas), then wait until each is healthy."""
        with self.lock:
            for spec in specs:
                self.specs[spec.name] = spec
                self.procs[spec.name] = self._spawn(spec)
        for spec in specs:
            if spec.health_url:
                self.wait_healthy(spec)

    def wait_healthy(self, spec: ProcessSpec) -> None:
        try:
            wait_for_http(spec.health_url or "", timeout=spec.health_timeout, proc=self.procs[spec.name], log=spec.log)
        except (ProcessExited, WaitTimeout) as exc:
            raise ProcessFailed(f"{spec.name} did not become healthy: {exc}") from None

    def check(self) -> list[str]:
        """Restart children that died (within limits); return the names restarted."""
        restarted: list[str] = []
        with self.lock:
            if self.stopping:
                return restarted
            for name, proc in list(self.procs.items()):
                code = proc.poll()
                spec = self.specs[name]
                if code is None or not spec.restart:
                    continue
                times = self.restarts.setdefault(name, deque())
                now = time.monotonic()
                while times and now - times[0] > self.restart_window:
                    times.popleft()
                if len(times) >= self.max_restarts:
                    continue
                times.append(now)
                self.say(f"{name} exited with status {code}; restarting (log: {spec.log})")
                self.procs[name] = self._spawn(spec)
                restarted.append(name)
        return restarted

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM every child (newest first), wait, then SIGKILL stragglers."""
        with self.lock:
            self.stopping = True
            procs = list(reversed(self.procs.items()))
        for _, proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, proc in procs:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
