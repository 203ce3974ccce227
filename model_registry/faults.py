"""Deliberately faulty versions for drills: a share of predictions fail, or each one is slowed.

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

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse ``errors=0.5``, ``latency=0.25`` or both, comma-separated."""
        error_rate, latency = 0.0, 0.0
        if not text.strip():
            raise ValueError("empty fault; use errors=SHARE (0..1) or latency=SECONDS")
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
            else:
                raise ValueError(f"unknown fault {key!r}; use errors=SHARE or latency=SECONDS")
        return cls(error_rate=error_rate, latency_seconds=latency)

    def describe(self) -> str:
        parts = []
        if self.error_rate:
            parts.append(f"errors={self.error_rate:g}")
        if self.latency_seconds:
            parts.append(f"latency={self.latency_seconds:g}")
        return ",".join(parts)


class FaultyClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Wraps a fitted classifier; fails a share ``error_rate`` of calls and sleeps ``latency_seconds``."""

    def __init__(self, estimator: Any = None, error_rate: float = 0.0, latency_seconds: float = 0.0) -> None:
        self.estimator = estimator
        self.error_rate = error_rate
        self.latency_seconds = latency_seconds

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
        return np.asarray(self.estimator.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        self.inject()
        return np.asarray(self.estimator.predict_proba(X))
