"""Steady synthetic traffic for the demo: rows like the training data, optionally shifted, and
optionally the true outcome of each prediction sent to the quality service after a delay."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pandas as pd


@dataclass
class TrafficStats:
    sent: int = 0
    status: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0
    labels_sent: int = 0
    label_errors: int = 0


class TrafficGenerator:
    """Sends one row per request to ``POST /predict`` at ``rate`` requests/s from a background thread.

    Rows are drawn from ``reference`` with a little noise; ``shift`` moves chosen features by a number
    of their standard deviations, which is how the demo makes the world drift.
    """

    def __init__(self, url: str, reference: pd.DataFrame, *, rate: float = 20.0, seed: int = 0,
                 truth: pd.Series | None = None) -> None:
        self.url = url.rstrip("/") + "/predict"
        self.reference = reference.reset_index(drop=True)
        self.truth = None if truth is None else truth.reset_index(drop=True)
        self.std = reference.std(ddof=0).replace(0, 1.0)
        self.rate = rate
        self.rng = np.random.default_rng(seed)
        self.shift: dict[str, float] = {}
        self.stats = TrafficStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._labels: deque[tuple[float, dict[str, Any]]] = deque()
        self._feedback: tuple[str, float, str | None] | None = None  # url, delay, token
        self._feedback_thread: threading.Thread | None = None

    def send_labels(self, quality_url: str, *, delay: float, token: str | None = None) -> None:
        """From now on, send each prediction's true outcome (``truth``) to ``quality_url`` ``delay`` seconds
        after the prediction, in batches, as a label feed would."""
        if self.truth is None:
            raise ValueError("no truth given: TrafficGenerator(truth=...) is needed to send labels")
        self._feedback = (quality_url.rstrip("/") + "/feedback", delay, token)
        if self._feedback_thread is None:
            self._feedback_thread = threading.Thread(target=self._send_labels, name="demo-labels", daemon=True)
            self._feedback_thread.start()

    def stop_labels(self) -> None:
        self._feedback = None
        self._labels.clear()

    def _send_labels(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.wait(0.25):
                feedback = self._feedback
                if feedback is None:
                    continue
                url, _, token = feedback
                now = time.monotonic()
                due = []
                while self._labels and self._labels[0][0] <= now:
                    due.append(self._labels.popleft()[1])
                if not due:
                    continue
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                try:
                    response = client.post(url, json={"labels": due}, headers=headers)
                    if response.is_success:
                        self.stats.labels_sent += len(due)
                    else:
                        self.stats.label_errors += len(due)
                except httpx.HTTPError:
                    self.stats.label_errors += len(due)

    def set_shift(self, shift: dict[str, float]) -> None:
        with self._lock:
            self.shift = dict(shift)

    def row(self) -> dict[str, float]:
        return self.draw()[0]

    def draw(self) -> tuple[dict[str, float], Any]:
        """A row and its true outcome (None without ``truth``)."""
        index = int(self.rng.integers(len(self.reference)))
        base = self.reference.iloc[index]
        with self._lock:
            shift = dict(self.shift)
        values = {}
        for name, value in base.items():
            noisy = float(value) + float(self.rng.normal(0, 0.05)) * float(self.std[name])
            noisy += shift.get(str(name), 0.0) * float(self.std[name])
            values[str(name)] = round(noisy, 4)
        actual: Any = None if self.truth is None else self.truth.iloc[index]
        return values, actual.item() if hasattr(actual, "item") else actual

    def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                try:
                    features, actual = self.draw()
                    response = client.post(self.url, json={"features": features})
                    self.stats.status[response.status_code] += 1
                    if response.is_success:
                        body = response.json()
                        feedback = self._feedback
                        if feedback is not None and actual is not None:
                            for prediction in body.get("predictions") or []:
                                self._labels.append((time.monotonic() + feedback[1],
                                                     {"prediction_id": prediction["prediction_id"],
                                                      "actual": actual}))
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
        if self._feedback_thread is not None:
            self._feedback_thread.join(timeout=10)
