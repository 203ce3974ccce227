"""Deliberately faulty versions for drills: a share of predictions fail, each one is slowed, or a
share of them is silently wrong (``flip``: another class is answered, with the confidence the right
one had; no error, no extra latency, same inputs: only labels can tell).

The wrapper is a real scikit-learn estimator, pickled with the model, so a faulty version loads
and serves like any other (``mlflow models serve`` included) and misbehaves where it would in life:
at prediction time.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class InjectedFault(RuntimeError):
    """Raised by a faulty version on purpose (a drill)."""


@dataclass(frozen=True)
class FaultSpec:
    error_rate: float = 0.0
    latency_seconds: float = 0.0
    flip_rate: float = 0.0

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse ``errors=0.5``, ``latency=0.25``, ``flip=0.3`` or several, comma-separated."""
        error_rate, latency, flip = 0.0, 0.0, 0.0
        if not text.strip():
            raise ValueError("empty fault; use errors=SHARE (0..1), latency=SECONDS or flip=SHARE (0..1)")
        for part in text.split(","):
            key, sep, raw = part.strip().partition("=")
            if not sep:
                raise ValueError(f"fault {part!r} has no '='; use errors=0.5 or latency=0.25")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"fault {key}={raw!r}: {raw!r} is not a number") from None
            if key == "errors":
                if not 0.0 < value <= 1.0:
                    raise ValueError(f"fault errors={raw}: the share must be in (0, 1]")
                error_rate = value
            elif key == "latency":
                if not 0.0 < value <= 60.0:
                    raise ValueError(f"fault latency={raw}: seconds must be in (0, 60]")
                latency = value
            elif key == "flip":
                if not 0.0 < value <= 1.0:
                    raise ValueError(f"fault flip={raw}: the share must be in (0, 1]")
                flip = value
            else:
                raise ValueError(f"unknown fault {key!r}; use errors=SHARE, latency=SECONDS or flip=SHARE")
        return cls(error_rate=error_rate, latency_seconds=latency, flip_rate=flip)

    def describe(self) -> str:
        parts = []
        if self.error_rate:
            parts.append(f"errors={self.error_rate:g}")
        if self.latency_seconds:
            parts.append(f"latency={self.latency_seconds:g}")
        if self.flip_rate:
            parts.append(f"flip={self.flip_rate:g}")
        return ",".join(parts)


def flip_labels(labels: np.ndarray, proba: np.ndarray | None, classes: np.ndarray, rate: float,
                rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Answer the next class (in ``classes`` order) instead of the predicted one for a share ``rate``
    of rows, and rotate those rows' probabilities the same way, so the wrong class carries the
    confidence the right one had. One draw per row."""
    rng = rng or np.random.default_rng()
    labels = np.asarray(labels).copy()
    if len(classes) < 2 or rate <= 0:
        return labels, proba
    flip = rng.random(len(labels)) < rate
    if not flip.any():
        return labels, proba
    index = {c.item() if isinstance(c, np.generic) else c: i for i, c in enumerate(classes)}
    for row in np.flatnonzero(flip):
        value = labels[row]
        position = index.get(value.item() if isinstance(value, np.generic) else value)
        if position is not None:
            labels[row] = classes[(position + 1) % len(classes)]
    if proba is not None:
        proba = np.asarray(proba).copy()
        proba[flip] = np.roll(proba[flip], 1, axis=1)
    return labels, proba


class FaultyClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Wraps a fitted classifier; fails a share ``error_rate`` of calls, sleeps ``latency_seconds`` and
    answers another class for a share ``flip_rate`` of rows."""

    def __init__(self, estimator: Any = None, error_rate: float = 0.0, latency_seconds: float = 0.0,
                 flip_rate: float = 0.0) -> None:
        self.estimator = estimator
        self.error_rate = error_rate
        self.latency_seconds = latency_seconds
        self.flip_rate = flip_rate

    def fit(self, X: Any, y: Any) -> FaultyClassifier:
        self.estimator.fit(X, y)
        return self

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.estimator.classes_)

    @property
    def feature_names_in_(self) -> np.ndarray:
        return np.asarray(self.estimator.feature_names_in_)

    def inject(self) -> None:
        """Apply the fault for one call: sleep, then maybe raise."""
        if self.latency_seconds > 0:
            time.sleep(self.latency_seconds)
        if self.error_rate > 0 and random.random() < self.error_rate:
            raise InjectedFault(f"injected fault (errors={self.error_rate:g}) for a drill")

    def predict(self, X: Any) -> np.ndarray:
        self.inject()
        labels = np.asarray(self.estimator.predict(X))
        return flip_labels(labels, None, self.classes_, getattr(self, "flip_rate", 0.0))[0]

    def predict_proba(self, X: Any) -> np.ndarray:
        self.inject()
        proba = np.asarray(self.estimator.predict_proba(X))
        if not getattr(self, "flip_rate", 0.0):
            return proba
        labels = self.classes_[proba.argmax(axis=1)]
        flipped = flip_labels(labels, proba, self.classes_, self.flip_rate)[1]
        return proba if flipped is None else flipped
