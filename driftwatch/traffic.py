"""Steady synthetic traffic for the demo: rows like the training data, optionally shifted."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd


@dataclass
class TrafficStats:
    sent: int = 0
    status: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0


class TrafficGenerator:
    """Sends one row per request to ``POST /predict`` at ``rate`` requests/s from a background thread.

    Rows are drawn from ``reference`` with a little noise; ``shift`` moves chosen features by a number
    of their standard deviations, which is how the demo makes the world drift.
    """

    def __init__(self, url: str, reference: pd.DataFrame, *, rate: float = 20.0, seed: int = 0) -> None:
        self.url = url.rstrip("/") + "/predict"
        self.reference = reference.reset_index(drop=True)
        self.std = reference.std(ddof=0).replace(0, 1.0)
        self.rate = rate
        self.rng = np.random.default_rng(seed)
        self.shift: dict[str, float] = {}
        self.stats = TrafficStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def set_shift(self, shift: dict[str, float]) -> None:
        with self._lock:
            self.shift = dict(shift)

    def row(self) -> dict[str, float]:
        base = self.reference.iloc[int(self.rng.integers(len(self.reference)))]
        with self._lock:
            shift = dict(self.shift)
        values = {}
        for name, value in base.items():
            noisy = float(value) + float(self.rng.normal(0, 0.05)) * float(self.std[name])
            noisy += shift.get(str(name), 0.0) * float(self.std[name])
            values[str(name)] = round(noisy, 4)
        return values

    def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(self.url, json={"features": self.row()})
                    self.stats.status[response.status_code] += 1
                    if response.is_success:
                        body = response.json()
                        version = body.get("model_version") or (body.get("predictions") or [{}])[0].get(
                            "model_version")
                        if version:
                            self.stats.versions[str(version)] += 1
                except httpx.HTTPError:
                    self.stats.transport_errors += 1
                self.stats.sent += 1
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
